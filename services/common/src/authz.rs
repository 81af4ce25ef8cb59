//! Who may do what in an org: the one table of actions, roles and scopes.
//!
//! The orgs service answers `Authorize` from these rules; other services only name the
//! action they are about to perform.

use std::fmt;

/// A member's role. Ordered: each role can do everything the one before it can.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "member" => Some(Self::Member),
            "admin" => Some(Self::Admin),
            "owner" => Some(Self::Owner),
            _ => None,
        }
    }
}

/// The wire form: `ROLE_UNSPECIFIED` reads as no role (keys, tokens, services).
impl Role {
    pub fn from_proto(value: i32) -> Option<Self> {
        use keyplane_proto::orgs::v1::Role as Pb;
        match Pb::try_from(value).ok()? {
            Pb::Owner => Some(Self::Owner),
            Pb::Admin => Some(Self::Admin),
            Pb::Member => Some(Self::Member),
            Pb::Unspecified => None,
        }
    }

    pub fn to_proto(role: Option<Self>) -> keyplane_proto::orgs::v1::Role {
        use keyplane_proto::orgs::v1::Role as Pb;
        match role {
            Some(Self::Owner) => Pb::Owner,
            Some(Self::Admin) => Pb::Admin,
            Some(Self::Member) => Pb::Member,
            None => Pb::Unspecified,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a principal can be authorized for within an org.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    OrgRead,
    OrgUpdate,
    OrgDelete,
    MembersRead,
    MembersWrite,
    /// Bringing people in or changing their role: people do this, never a key.
    MembersGrant,
    KeysRead,
    KeysWrite,
    UsageRead,
    AuditRead,
    AdvisorsRead,
    AdvisorsWrite,
    McpTokensCreate,
    McpTokensAdmin,
}

impl Action {
    pub const ALL: &'static [Action] = &[
        Self::OrgRead,
        Self::OrgUpdate,
        Self::OrgDelete,
        Self::MembersRead,
        Self::MembersWrite,
        Self::MembersGrant,
        Self::KeysRead,
        Self::KeysWrite,
        Self::UsageRead,
        Self::AuditRead,
        Self::AdvisorsRead,
        Self::AdvisorsWrite,
        Self::McpTokensCreate,
        Self::McpTokensAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrgRead => "org.read",
            Self::OrgUpdate => "org.update",
            Self::OrgDelete => "org.delete",
            Self::MembersRead => "members.read",
            Self::MembersWrite => "members.write",
            Self::MembersGrant => "members.grant",
            Self::KeysRead => "keys.read",
            Self::KeysWrite => "keys.write",
            Self::UsageRead => "usage.read",
            Self::AuditRead => "audit.read",
            Self::AdvisorsRead => "advisors.read",
            Self::AdvisorsWrite => "advisors.write",
            Self::McpTokensCreate => "mcp_tokens.create",
            Self::McpTokensAdmin => "mcp_tokens.admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.as_str() == s)
    }

    /// The least role a member needs.
    pub fn min_role(self) -> Role {
        match self {
            Self::OrgRead
            | Self::MembersRead
            | Self::KeysRead
            | Self::UsageRead
            | Self::AdvisorsRead
            | Self::McpTokensCreate => Role::Member,
            Self::OrgUpdate
            | Self::MembersWrite
            | Self::MembersGrant
            | Self::KeysWrite
            | Self::AuditRead
            | Self::AdvisorsWrite
            | Self::McpTokensAdmin => Role::Admin,
            Self::OrgDelete => Role::Owner,
        }
    }

    /// The scope an API key (or MCP token) needs; None: keys may never do it.
    pub fn key_scope(self) -> Option<&'static str> {
        match self {
            Self::OrgRead | Self::MembersRead => Some("read:orgs"),
            Self::OrgUpdate | Self::OrgDelete | Self::MembersWrite | Self::AuditRead => Some("write:orgs"),
            Self::KeysRead => Some("read:keys"),
            Self::KeysWrite => Some("write:keys"),
            Self::UsageRead => Some("read:usage"),
            // A key that could invite would hand a person more than the key holds: a
            // test-only, pinned or expiring key inviting an admin who then mints anything.
            Self::MembersGrant => None,
            Self::AdvisorsRead | Self::AdvisorsWrite | Self::McpTokensCreate | Self::McpTokensAdmin => None,
        }
    }
}

impl Action {
    /// The scope an MCP token needs: a key's, and for reading and consulting advisors
    /// (session-only for keys, as the seed has it) `read:orgs`, so that an agent can ask
    /// an advisor through the MCP server.
    pub fn mcp_scope(self) -> Option<&'static str> {
        match self {
            Self::AdvisorsRead => Some("read:orgs"),
            other => other.key_scope(),
        }
    }
}

/// The least role whose member may hold `scope` on a key or token: the least role of any
/// action the scope opens. Data-plane scopes open no management action: any member.
pub fn scope_min_role(scope: &str) -> Role {
    Action::ALL.iter().filter(|a| a.key_scope() == Some(scope)).map(|a| a.min_role()).min().unwrap_or(Role::Member)
}

impl Role {
    /// Whether a member of this role may hold every scope in `scopes` (full permission
    /// includes every scope of the catalogue).
    pub fn may_hold(self, scopes: &crate::scope::Scopes) -> bool {
        scopes.effective().iter().all(|s| scope_min_role(s) <= self)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_by_name() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(*a));
        }
        assert_eq!(Action::parse("keys.delete_everything"), None);
    }

    #[test]
    fn scopes_need_the_role_of_what_they_open() {
        use crate::scope::Scopes;
        assert_eq!(scope_min_role("read:keys"), Role::Member);
        assert_eq!(scope_min_role("write:keys"), Role::Admin);
        assert_eq!(scope_min_role("write:orgs"), Role::Admin);
        assert_eq!(scope_min_role("read:families"), Role::Member);
        assert!(!Role::Member.may_hold(&Scopes::Full));
        assert!(Role::Member.may_hold(&Scopes::parse(&["read:keys", "read:usage"]).unwrap()));
        assert!(Role::Admin.may_hold(&Scopes::Full));
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Owner > Role::Admin && Role::Admin > Role::Member);
        assert!(Role::Admin >= Action::KeysWrite.min_role());
        assert!(Role::Member < Action::KeysWrite.min_role());
    }
}
