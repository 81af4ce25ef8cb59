//! The authorization decision: who may do what on an org.
//!
//! A key or MCP token acts for the user who created it, and is never stronger than that
//! user is *now*: its power is the intersection of its scopes and its creator's current
//! role, decided at every use (as GitHub does for fine-grained tokens and app user
//! tokens). A creator demoted takes their keys down with them; a creator removed from the
//! org has their keys revoked (and, should one slip through, they hold no role here).

use keyplane_common::{
    authz::{Action, Role},
    principal::Principal,
    scope::Scopes,
};
use uuid::Uuid;

use crate::error::Error;

/// Decides whether `principal` may do `action` on `org_id`. `acting_role` is the current
/// role of the user the principal acts for (the user itself, or the creator of a key or
/// token), looked up by the caller. Answers that role, or None for services.
///
/// To a principal with no business in the org, the org does not exist.
pub fn decide(
    principal: &Principal,
    org_id: Uuid,
    acting_role: Option<Role>,
    action: Action,
) -> Result<Option<Role>, Error> {
    match principal {
        Principal::User(_) => {
            let role = acting_role.ok_or(Error::OrgNotFound)?;
            if role >= action.min_role() {
                Ok(Some(role))
            } else {
                Err(Error::InsufficientRole(action.min_role().as_str()))
            }
        }
        Principal::ApiKey(key) => {
            if key.org_id != org_id {
                return Err(Error::OrgNotFound);
            }
            // A regenerated key's old secret is for stragglers on the data plane only:
            // it must never manage the key that replaced it (or anything else).
            if key.grace_ends_at.is_some() {
                return Err(Error::KeyInGrace);
            }
            on_behalf(&key.scopes, action.key_scope(), acting_role, action)
        }
        Principal::McpToken(token) => {
            if token.org_id != org_id {
                return Err(Error::OrgNotFound);
            }
            on_behalf(&token.scopes, action.mcp_scope(), acting_role, action)
        }
        Principal::Service { .. } => Ok(None),
    }
}

/// A credential acting for its creator: its scope, and its creator's role, must both allow.
fn on_behalf(
    scopes: &Scopes,
    needed: Option<&'static str>,
    creator_role: Option<Role>,
    action: Action,
) -> Result<Option<Role>, Error> {
    match needed {
        None => return Err(Error::Forbidden("this needs a signed-in user, not a key")),
        Some(scope) if !scopes.allows(scope) => return Err(Error::InsufficientScope(scope)),
        Some(_) => {}
    }
    let role = creator_role.ok_or(Error::CreatorNotMember)?;
    if role < action.min_role() {
        return Err(Error::CreatorRoleTooLow(action.min_role().as_str()));
    }
    Ok(Some(role))
}

/// Who changes an org's membership, decided again under the org's lock with the role the
/// actor holds there and then: a check made before the lock could be overtaken by the
/// actor's own demotion or removal (invitations, say, racing a demotion would outlive it).
#[derive(Clone, Copy)]
pub struct Actor<'a> {
    pub principal: &'a Principal,
    pub action: Action,
}

impl Actor<'_> {
    /// The user whose role counts: the principal itself, or a key's or token's creator.
    pub fn user_id(&self) -> Option<Uuid> {
        match self.principal {
            Principal::Service { .. } => None,
            principal => principal.user_id(),
        }
    }

    /// Decides with the actor's current `role`; answers whether it acts as an owner in
    /// its own session.
    pub fn decide(&self, org_id: Uuid, role: Option<Role>) -> Result<bool, Error> {
        decide(self.principal, org_id, role, self.action)?;
        Ok(is_owner_session(self.principal, role))
    }
}

/// Whether the principal is an owner signed in as itself: what granting or taking away
/// the owner role takes (never a key, whoever made it).
pub fn is_owner_session(principal: &Principal, role: Option<Role>) -> bool {
    matches!(principal, Principal::User(_)) && role == Some(Role::Owner)
}

#[cfg(test)]
mod tests {
    use keyplane_common::{
        credential::Environment,
        principal::{KeyPrincipal, UserPrincipal},
    };

    use super::*;

    fn user() -> Principal {
        Principal::User(UserPrincipal {
            user_id: Uuid::now_v7(),
            session_id: None,
            email: "a@b.co".into(),
            name: "a".into(),
            issuer: "keyplane".into(),
        })
    }

    fn key(org: Uuid, scopes: Scopes) -> KeyPrincipal {
        KeyPrincipal {
            key_id: Uuid::now_v7(),
            org_id: org,
            name: "k".into(),
            prefix: "p".into(),
            environment: Environment::Test,
            scopes,
            resource_ids: vec![],
            expires_at: None,
            grace_ends_at: None,
            revision: 1,
            rate_limit: None,
            created_by: Some(Uuid::now_v7()),
        }
    }

    #[test]
    fn roles_gate_users() {
        let org = Uuid::now_v7();
        assert!(matches!(decide(&user(), org, None, Action::OrgRead), Err(Error::OrgNotFound)));
        assert_eq!(decide(&user(), org, Some(Role::Member), Action::KeysRead).unwrap(), Some(Role::Member));
        assert!(matches!(
            decide(&user(), org, Some(Role::Member), Action::KeysWrite),
            Err(Error::InsufficientRole("admin"))
        ));
        assert!(matches!(
            decide(&user(), org, Some(Role::Admin), Action::OrgDelete),
            Err(Error::InsufficientRole("owner"))
        ));
        assert!(decide(&user(), org, Some(Role::Owner), Action::OrgDelete).is_ok());
    }

    #[test]
    fn scopes_gate_keys_and_other_orgs_do_not_exist() {
        let org = Uuid::now_v7();
        let reader = Principal::ApiKey(key(org, Scopes::parse(&["read:keys"]).unwrap()));
        assert!(decide(&reader, org, Some(Role::Admin), Action::KeysRead).is_ok());
        assert!(matches!(
            decide(&reader, org, Some(Role::Admin), Action::KeysWrite),
            Err(Error::InsufficientScope("write:keys"))
        ));
        assert!(matches!(
            decide(&reader, Uuid::now_v7(), Some(Role::Admin), Action::KeysRead),
            Err(Error::OrgNotFound)
        ));
        assert!(matches!(decide(&reader, org, Some(Role::Admin), Action::AdvisorsWrite), Err(Error::Forbidden(_))));
    }

    #[test]
    fn a_key_is_never_stronger_than_its_creator_now() {
        let org = Uuid::now_v7();
        let full = Principal::ApiKey(key(org, Scopes::Full));
        assert!(decide(&full, org, Some(Role::Owner), Action::OrgDelete).is_ok(), "an owner's full key may");
        assert!(matches!(
            decide(&full, org, Some(Role::Admin), Action::OrgDelete),
            Err(Error::CreatorRoleTooLow("owner"))
        ));
        assert!(matches!(
            decide(&full, org, Some(Role::Member), Action::KeysWrite),
            Err(Error::CreatorRoleTooLow("admin"))
        ));
        assert!(matches!(decide(&full, org, None, Action::KeysRead), Err(Error::CreatorNotMember)));
    }

    #[test]
    fn a_secret_in_its_grace_period_manages_nothing() {
        let org = Uuid::now_v7();
        let mut old = key(org, Scopes::Full);
        old.grace_ends_at = Some(chrono::Utc::now());
        assert!(matches!(
            decide(&Principal::ApiKey(old), org, Some(Role::Owner), Action::KeysRead),
            Err(Error::KeyInGrace)
        ));
    }
}
