//! The authorization decision: who may do what on an org.

use keyplane_common::{
    authz::{Action, Role},
    principal::Principal,
};
use uuid::Uuid;

use crate::error::Error;

/// Decides whether `principal` may do `action` on `org_id`. A user's membership (their
/// role, if any) is looked up by the caller. Answers the member's role, or None for
/// keys, tokens and services.
///
/// To a principal with no business in the org, the org does not exist.
pub fn decide(
    principal: &Principal,
    org_id: Uuid,
    membership: Option<Role>,
    action: Action,
) -> Result<Option<Role>, Error> {
    match principal {
        Principal::User(_) => {
            let role = membership.ok_or(Error::OrgNotFound)?;
            if role >= action.min_role() {
                Ok(Some(role))
            } else {
                Err(Error::InsufficientRole(action.min_role().as_str()))
            }
        }
        Principal::ApiKey(key) => scoped(key.org_id, &key.scopes, org_id, action),
        Principal::McpToken(token) => scoped(token.org_id, &token.scopes, org_id, action),
        Principal::Service { .. } => Ok(None),
    }
}

fn scoped(
    own_org: Uuid,
    scopes: &keyplane_common::scope::Scopes,
    org_id: Uuid,
    action: Action,
) -> Result<Option<Role>, Error> {
    if own_org != org_id {
        return Err(Error::OrgNotFound);
    }
    match action.key_scope() {
        None => Err(Error::Forbidden("this needs a signed-in user, not a key")),
        Some(scope) if scopes.allows(scope) => Ok(None),
        Some(scope) => Err(Error::InsufficientScope(scope)),
    }
}

#[cfg(test)]
mod tests {
    use keyplane_common::{
        credential::Environment,
        principal::{KeyPrincipal, UserPrincipal},
        scope::Scopes,
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

    fn key(org: Uuid, scopes: &[&str]) -> Principal {
        Principal::ApiKey(KeyPrincipal {
            key_id: Uuid::now_v7(),
            org_id: org,
            name: "k".into(),
            prefix: "p".into(),
            environment: Environment::Test,
            scopes: Scopes::parse(scopes).unwrap(),
            resource_ids: vec![],
            expires_at: None,
            grace_ends_at: None,
            created_by: None,
        })
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
        assert!(decide(&key(org, &["read:keys"]), org, None, Action::KeysRead).is_ok());
        assert!(matches!(
            decide(&key(org, &["read:keys"]), org, None, Action::KeysWrite),
            Err(Error::InsufficientScope("write:keys"))
        ));
        assert!(matches!(
            decide(&key(org, &["read:keys"]), Uuid::now_v7(), None, Action::KeysRead),
            Err(Error::OrgNotFound)
        ));
        assert!(matches!(decide(&key(org, &[]), org, None, Action::AdvisorsWrite), Err(Error::Forbidden(_))));
    }
}
