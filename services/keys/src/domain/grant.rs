//! What a new key or token may be given: checked against the catalogue, the clock, and
//! the caller (a key never grants more than it holds).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use keyplane_common::{error::FieldViolation, principal::Principal, scope::Scopes};

use crate::error::Error;

pub const MAX_NAME_LEN: usize = 100;
pub const MAX_RESOURCE_IDS: usize = 100;
pub const MAX_RESOURCE_ID_LEN: usize = 128;
pub const DEFAULT_GRACE_SECS: i64 = 86_400;
pub const MAX_GRACE_SECS: i64 = 604_800;
pub const BOOTSTRAP_KEY_NAME: &str = "First key (bootstrap)";

/// The scopes and pins a new credential gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub scopes: Scopes,
    pub resource_ids: Vec<String>,
}

/// Decides the grant of a credential made by `caller`. Omitted scopes mean full
/// permission for a user, and the caller's own scopes for a key.
pub fn grant(
    caller: &Principal,
    requested_scopes: Option<&[String]>,
    requested_pins: &[String],
) -> Result<Grant, Error> {
    let requested = match requested_scopes {
        Some(list) => Some(Scopes::parse(list).map_err(|e| Error::InvalidScope(e.to_string()))?),
        None => None,
    };
    let pins = resource_ids(requested_pins)?;
    let (held_scopes, held_pins) = match caller {
        Principal::ApiKey(key) => (Some(&key.scopes), Some(&key.resource_ids)),
        Principal::McpToken(token) => (Some(&token.scopes), None),
        Principal::User(_) | Principal::Service { .. } => (None, None),
    };
    let scopes = match (requested, held_scopes) {
        (Some(wanted), Some(held)) if !held.covers(&wanted) => return Err(Error::InsufficientScope),
        (Some(wanted), _) => wanted,
        (None, Some(held)) => held.clone(),
        (None, None) => Scopes::Full,
    };
    let resource_ids = match held_pins.filter(|held| !held.is_empty()) {
        None => pins,
        Some(held) if pins.is_empty() => held.clone(),
        Some(held) => {
            let held: BTreeSet<&String> = held.iter().collect();
            if !pins.iter().all(|p| held.contains(p)) {
                return Err(Error::ResourceNotAllowed);
            }
            pins
        }
    };
    Ok(Grant { scopes, resource_ids })
}

/// Resource ids: at most 100, each 1 to 128 of `[A-Za-z0-9_.:-]`, duplicates dropped.
pub fn resource_ids(raw: &[String]) -> Result<Vec<String>, FieldViolation> {
    if raw.len() > MAX_RESOURCE_IDS {
        return Err(FieldViolation::new("resource_ids", format!("must list at most {MAX_RESOURCE_IDS} ids")));
    }
    let mut seen = BTreeSet::new();
    let mut ids = Vec::new();
    for id in raw {
        let valid = (1..=MAX_RESOURCE_ID_LEN).contains(&id.len())
            && id.chars().all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c));
        if !valid {
            return Err(FieldViolation::new(
                "resource_ids",
                format!(
                    "{id:?} is not a resource id (1 to {MAX_RESOURCE_ID_LEN} letters, digits, '_', '.', ':' or '-')"
                ),
            ));
        }
        if seen.insert(id.clone()) {
            ids.push(id.clone());
        }
    }
    Ok(ids)
}

/// An expiry must lie in the future.
pub fn expiry(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, FieldViolation> {
    match expires_at {
        Some(t) if t <= now => Err(FieldViolation::new("expires_at", "must be in the future")),
        other => Ok(other),
    }
}

/// The grace period of a regeneration, in seconds: 0 to 604800, 86400 when omitted.
pub fn grace_period(requested: Option<i64>) -> Result<i64, FieldViolation> {
    match requested {
        None => Ok(DEFAULT_GRACE_SECS),
        Some(s) if (0..=MAX_GRACE_SECS).contains(&s) => Ok(s),
        Some(_) => Err(FieldViolation::new("grace_period_seconds", format!("must be between 0 and {MAX_GRACE_SECS}"))),
    }
}

#[cfg(test)]
mod tests {
    use keyplane_common::{
        credential::Environment,
        principal::{KeyPrincipal, UserPrincipal},
    };
    use uuid::Uuid;

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

    fn key(scopes: &[&str], pins: &[&str]) -> Principal {
        Principal::ApiKey(KeyPrincipal {
            key_id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            name: "k".into(),
            prefix: "p".into(),
            environment: Environment::Test,
            scopes: Scopes::parse(scopes).unwrap(),
            resource_ids: pins.iter().map(|s| (*s).to_owned()).collect(),
            expires_at: None,
            grace_ends_at: None,
            created_by: None,
        })
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn users_get_full_permission_by_default() {
        assert_eq!(grant(&user(), None, &[]).unwrap().scopes, Scopes::Full);
    }

    #[test]
    fn a_key_never_grants_more_than_it_holds() {
        let caller = key(&["read:keys", "write:keys"], &[]);
        let inherited = grant(&caller, None, &[]).unwrap();
        assert_eq!(inherited.scopes, Scopes::parse(&["read:keys", "write:keys"]).unwrap());
        assert!(grant(&caller, Some(&strings(&["read:keys"])), &[]).is_ok());
        assert!(matches!(grant(&caller, Some(&strings(&["write:orgs"])), &[]), Err(Error::InsufficientScope)));
    }

    #[test]
    fn a_pinned_key_only_grants_its_pins() {
        let caller = key(&["write:keys"], &["fam_1", "fam_2"]);
        assert_eq!(grant(&caller, None, &[]).unwrap().resource_ids, strings(&["fam_1", "fam_2"]));
        assert_eq!(grant(&caller, None, &strings(&["fam_2"])).unwrap().resource_ids, strings(&["fam_2"]));
        assert!(matches!(grant(&caller, None, &strings(&["fam_3"])), Err(Error::ResourceNotAllowed)));
    }

    #[test]
    fn unknown_scopes_and_bad_pins_are_refused() {
        assert!(matches!(grant(&user(), Some(&strings(&["calls:create"])), &[]), Err(Error::InvalidScope(_))));
        assert!(resource_ids(&strings(&["ok-1", "ok-1"])).unwrap().len() == 1);
        assert!(resource_ids(&strings(&["has space"])).is_err());
        assert!(resource_ids(&strings(&[""])).is_err());
    }

    #[test]
    fn grace_and_expiry_are_bounded() {
        assert_eq!(grace_period(None).unwrap(), 86_400);
        assert_eq!(grace_period(Some(0)).unwrap(), 0);
        assert!(grace_period(Some(604_801)).is_err());
        assert!(grace_period(Some(-1)).is_err());
        let now = Utc::now();
        assert!(expiry(Some(now - chrono::Duration::seconds(1)), now).is_err());
        assert!(expiry(Some(now + chrono::Duration::seconds(1)), now).is_ok());
    }
}
