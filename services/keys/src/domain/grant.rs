//! What a new key or token may be given: checked against the catalogue, the clock, and
//! the caller (a key never grants more than it holds).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use keyplane_common::{
    credential::Environment, error::FieldViolation, principal::Principal, rate_limit::RateLimit, scope::Scopes,
};
use uuid::Uuid;

use super::key::Credential;

use crate::error::Error;

pub const MAX_NAME_LEN: usize = 100;
pub const MAX_RESOURCE_IDS: usize = 100;
pub const MAX_RESOURCE_ID_LEN: usize = 128;
pub const BOOTSTRAP_KEY_NAME: &str = "First key (bootstrap)";

/// The membership a credential is made on (its creator's, when the org authorized the
/// call): it is stored only if that membership has not ended meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Membership {
    pub user_id: Uuid,
    pub since: DateTime<Utc>,
}

/// The scopes, pins and rate limit a new credential gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub scopes: Scopes,
    pub resource_ids: Vec<String>,
    pub rate_limit: Option<RateLimit>,
}

/// What a new credential asks for, before it is bounded by its creator.
pub struct Request<'a> {
    pub scopes: Option<&'a [String]>,
    pub resource_ids: &'a [String],
    /// None for MCP tokens, which have no environment.
    pub environment: Option<Environment>,
    pub expires_at: Option<DateTime<Utc>>,
    pub rate_limit: Option<RateLimit>,
    /// The rate of a key without one of its own (the gateway's default for keys).
    pub default_rate: RateLimit,
}

/// Decides the grant of a credential made by `caller`. A user's omitted scopes mean full
/// permission. A key or token creating a credential bounds it in everything: it must list
/// the scopes (omitted would mean full permission, more than it holds), and the child
/// gets no scope, pin, environment or lifetime its parent lacks.
pub fn grant(caller: &Principal, requested: &Request<'_>) -> Result<Grant, Error> {
    let scopes = match requested.scopes {
        Some(list) => Some(Scopes::parse(list).map_err(|e| Error::InvalidScope(e.to_string()))?),
        None => None,
    };
    let pins = resource_ids(requested.resource_ids)?;
    let Some(parent) = parent_of(caller) else {
        return Ok(Grant {
            scopes: scopes.unwrap_or(Scopes::Full),
            resource_ids: pins,
            rate_limit: requested.rate_limit,
        });
    };
    let rate_limit = rate_within(parent.rate_limit, requested.default_rate, requested.rate_limit)?;
    let scopes = scopes.ok_or(Error::ScopesRequired)?;
    if !parent.scopes.covers(&scopes) {
        return Err(Error::InsufficientScope);
    }
    if let (Some(theirs), Some(wanted)) = (parent.environment, requested.environment)
        && theirs != wanted
    {
        return Err(Error::EnvironmentNotAllowed(theirs));
    }
    if let Some(limit) = parent.expires_at
        && requested.expires_at.is_none_or(|wanted| wanted > limit)
    {
        return Err(Error::ExpiryNotAllowed(limit));
    }
    let resource_ids = if parent.pins.is_empty() {
        pins
    } else if pins.is_empty() {
        parent.pins.to_vec()
    } else {
        let held: BTreeSet<&String> = parent.pins.iter().collect();
        if !pins.iter().all(|p| held.contains(p)) {
            return Err(Error::ResourceNotAllowed);
        }
        pins
    };
    Ok(Grant { scopes, resource_ids, rate_limit })
}

/// A key gives no more rate than it has itself (its own limit, or the default) to a key
/// it makes or changes; a child that names none inherits the parent's own limit.
pub fn rate_within(
    parent: Option<RateLimit>,
    default: RateLimit,
    wanted: Option<RateLimit>,
) -> Result<Option<RateLimit>, Error> {
    let bound = parent.unwrap_or(default);
    match wanted {
        Some(wanted) if !wanted.within(bound) => Err(Error::RateLimitNotAllowed(bound)),
        Some(wanted) => Ok(Some(wanted)),
        None => Ok(parent),
    }
}

/// The rate limit `caller` may set on an existing key (on update), by the same rule;
/// people are bounded by the operator's ceiling alone (checked apart).
pub fn rate_change(
    caller: &Principal,
    default: RateLimit,
    wanted: Option<RateLimit>,
) -> Result<Option<RateLimit>, Error> {
    match parent_of(caller) {
        Some(parent) => rate_within(parent.rate_limit, default, wanted),
        None => Ok(wanted),
    }
}

/// Whether a key or token `caller` holds everything `target` holds (its scopes, its
/// environment, no longer a lifetime, its pins): what taking over `target`'s secret takes.
pub fn covers(caller: &Principal, target: &Credential) -> Result<(), Error> {
    let Some(parent) = parent_of(caller) else { return Ok(()) };
    if !parent.scopes.covers(&target.scopes) {
        return Err(Error::InsufficientScope);
    }
    if let (Some(theirs), Some(wanted)) = (parent.environment, target.environment)
        && theirs != wanted
    {
        return Err(Error::EnvironmentNotAllowed(theirs));
    }
    if let Some(limit) = parent.expires_at
        && target.expires_at.is_none_or(|t| t > limit)
    {
        return Err(Error::ExpiryNotAllowed(limit));
    }
    let within_pins = parent.pins.is_empty()
        || (!target.resource_ids.is_empty() && target.resource_ids.iter().all(|p| parent.pins.contains(p)));
    if !within_pins {
        return Err(Error::ResourceNotAllowed);
    }
    Ok(())
}

fn parent_of(caller: &Principal) -> Option<Parent<'_>> {
    match caller {
        Principal::ApiKey(key) => Some(Parent {
            scopes: &key.scopes,
            pins: &key.resource_ids,
            environment: Some(key.environment),
            expires_at: key.expires_at,
            rate_limit: key.rate_limit,
        }),
        Principal::McpToken(token) => Some(Parent {
            scopes: &token.scopes,
            pins: &[],
            environment: None,
            expires_at: token.expires_at,
            rate_limit: None,
        }),
        Principal::User(_) | Principal::Service { .. } => None,
    }
}

/// What the credential making another one holds.
struct Parent<'a> {
    scopes: &'a Scopes,
    pins: &'a [String],
    environment: Option<Environment>,
    expires_at: Option<DateTime<Utc>>,
    rate_limit: Option<RateLimit>,
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

#[cfg(test)]
mod tests {
    use keyplane_common::principal::{KeyPrincipal, UserPrincipal};
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

    fn key(scopes: &[&str], pins: &[&str]) -> KeyPrincipal {
        KeyPrincipal {
            key_id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            name: "k".into(),
            prefix: "p".into(),
            environment: Environment::Test,
            scopes: Scopes::parse(scopes).unwrap(),
            resource_ids: pins.iter().map(|s| (*s).to_owned()).collect(),
            expires_at: None,
            grace_ends_at: None,
            revision: 1,
            rate_limit: None,
            created_by: None,
        }
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    fn asks<'a>(scopes: Option<&'a [String]>, pins: &'a [String]) -> Request<'a> {
        Request {
            scopes,
            resource_ids: pins,
            environment: Some(Environment::Test),
            expires_at: None,
            rate_limit: None,
            default_rate: RateLimit { requests: 6000, per_seconds: 60 },
        }
    }

    #[test]
    fn users_get_full_permission_by_default() {
        assert_eq!(grant(&user(), &asks(None, &[])).unwrap().scopes, Scopes::Full);
    }

    #[test]
    fn a_key_never_grants_more_than_it_holds() {
        let caller = Principal::ApiKey(key(&["read:keys", "write:keys"], &[]));
        assert!(matches!(grant(&caller, &asks(None, &[])), Err(Error::ScopesRequired)), "omitted means full");
        assert!(grant(&caller, &asks(Some(&strings(&["read:keys"])), &[])).is_ok());
        let wider = strings(&["write:orgs"]);
        assert!(matches!(grant(&caller, &asks(Some(&wider), &[])), Err(Error::InsufficientScope)));
    }

    #[test]
    fn a_child_key_stays_in_its_parents_environment_and_lifetime() {
        let now = Utc::now();
        let mut parent = key(&["write:keys"], &[]);
        parent.expires_at = Some(now + chrono::Duration::days(1));
        let caller = Principal::ApiKey(parent);
        let scopes = strings(&["write:keys"]);
        let live = Request { environment: Some(Environment::Live), ..asks(Some(&scopes), &[]) };
        assert!(matches!(grant(&caller, &live), Err(Error::EnvironmentNotAllowed(Environment::Test))));
        assert!(matches!(grant(&caller, &asks(Some(&scopes), &[])), Err(Error::ExpiryNotAllowed(_))), "no expiry");
        let later = Request { expires_at: Some(now + chrono::Duration::days(2)), ..asks(Some(&scopes), &[]) };
        assert!(matches!(grant(&caller, &later), Err(Error::ExpiryNotAllowed(_))));
        let sooner = Request { expires_at: Some(now + chrono::Duration::hours(1)), ..asks(Some(&scopes), &[]) };
        assert!(grant(&caller, &sooner).is_ok());
    }

    #[test]
    fn a_pinned_key_only_grants_its_pins() {
        let caller = Principal::ApiKey(key(&["write:keys"], &["fam_1", "fam_2"]));
        let scopes = strings(&["write:keys"]);
        assert_eq!(grant(&caller, &asks(Some(&scopes), &[])).unwrap().resource_ids, strings(&["fam_1", "fam_2"]));
        let one = strings(&["fam_2"]);
        assert_eq!(grant(&caller, &asks(Some(&scopes), &one)).unwrap().resource_ids, one);
        let other = strings(&["fam_3"]);
        assert!(matches!(grant(&caller, &asks(Some(&scopes), &other)), Err(Error::ResourceNotAllowed)));
    }

    #[test]
    fn a_child_key_gets_no_more_rate_than_its_parent() {
        let rate = |s: &str| RateLimit::parse(s).unwrap();
        let mut parent = key(&["write:keys"], &[]);
        parent.rate_limit = Some(rate("100/60"));
        let caller = Principal::ApiKey(parent);
        let scopes = strings(&["write:keys"]);
        assert_eq!(grant(&caller, &asks(Some(&scopes), &[])).unwrap().rate_limit, Some(rate("100/60")), "inherited");
        let slower = Request { rate_limit: Some(rate("10/60")), ..asks(Some(&scopes), &[]) };
        assert_eq!(grant(&caller, &slower).unwrap().rate_limit, Some(rate("10/60")));
        let faster = Request { rate_limit: Some(rate("2/1")), ..asks(Some(&scopes), &[]) };
        assert!(matches!(grant(&caller, &faster), Err(Error::RateLimitNotAllowed(_))));
        let longer = Request { rate_limit: Some(rate("7200/86400")), ..asks(Some(&scopes), &[]) };
        assert!(
            matches!(grant(&caller, &longer), Err(Error::RateLimitNotAllowed(_))),
            "the same average, a bigger burst"
        );
        let default = rate("6000/60");
        assert!(matches!(rate_change(&caller, default, Some(rate("1000/60"))), Err(Error::RateLimitNotAllowed(_))));
        assert_eq!(grant(&user(), &faster).unwrap().rate_limit, Some(rate("2/1")), "a user's own choice");
        // A key without a limit of its own has the default, and gives no more.
        let unlimited = Principal::ApiKey(key(&["write:keys"], &[]));
        let above_default = Request { rate_limit: Some(rate("60000/60")), ..asks(Some(&scopes), &[]) };
        assert!(matches!(grant(&unlimited, &above_default), Err(Error::RateLimitNotAllowed(_))));
        assert!(matches!(rate_change(&unlimited, default, Some(rate("60000/60"))), Err(Error::RateLimitNotAllowed(_))));
    }

    #[test]
    fn unknown_scopes_and_bad_pins_are_refused() {
        let unknown = strings(&["calls:create"]);
        assert!(matches!(grant(&user(), &asks(Some(&unknown), &[])), Err(Error::InvalidScope(_))));
        assert!(resource_ids(&strings(&["ok-1", "ok-1"])).unwrap().len() == 1);
        assert!(resource_ids(&strings(&["has space"])).is_err());
        assert!(resource_ids(&strings(&[""])).is_err());
    }

    #[test]
    fn expiry_is_in_the_future() {
        let now = Utc::now();
        assert!(expiry(Some(now - chrono::Duration::seconds(1)), now).is_err());
        assert!(expiry(Some(now + chrono::Duration::seconds(1)), now).is_ok());
    }
}
