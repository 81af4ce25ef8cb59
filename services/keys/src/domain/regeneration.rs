//! Regenerating a key: same id, a new secret. The secret it had keeps working for the
//! grace period (so stragglers can move over), and the one before that stops at once:
//! at most two secrets of a key ever work.

use chrono::{DateTime, Utc};
use keyplane_common::{authz::Role, credential::Secret, error::FieldViolation, principal::Principal};

use super::{
    grant,
    key::{Credential, Kind, PreviousSecret, Status},
};
use crate::error::Error;

pub const DEFAULT_GRACE_SECS: i64 = 86_400;
pub const MAX_GRACE_SECS: i64 = 604_800;

/// The grace period of a regeneration, in seconds: 0 to 604800, 86400 when omitted.
pub fn grace_period(requested: Option<i64>) -> Result<i64, FieldViolation> {
    match requested {
        None => Ok(DEFAULT_GRACE_SECS),
        Some(s) if (0..=MAX_GRACE_SECS).contains(&s) => Ok(s),
        Some(_) => Err(FieldViolation::new("grace_period_seconds", format!("must be between 0 and {MAX_GRACE_SECS}"))),
    }
}

/// Whether `caller` may regenerate `target`. A new secret acts with the key's creator's
/// role, so regenerating is taking the key over: only its creator may (itself, or through
/// a key or token that holds everything the target holds), or an owner. A key asking to
/// regenerate itself must present its current secret: a secret that was just rotated out
/// cannot rotate the key again.
pub fn may_regenerate(caller: &Principal, caller_role: Option<Role>, target: &Credential) -> Result<(), Error> {
    if let Principal::ApiKey(key) = caller
        && key.key_id == target.id
        && key.revision != target.revision
    {
        return Err(Error::StaleSecret);
    }
    if matches!(caller, Principal::Service { .. }) {
        return Ok(());
    }
    let own = caller.user_id().is_some_and(|user| Some(user) == target.created_by);
    if !own && caller_role != Some(Role::Owner) {
        return Err(Error::NotCreator);
    }
    grant::covers(caller, target)
}

/// The key after regeneration with `new_secret` by the user `by` (None: a service), or why
/// it cannot be regenerated. The new secret is in the regenerator's hands, so the key is
/// theirs from now on: it acts with their role, and goes with them when they leave the
/// org (an owner who took over an admin's key and was then removed kept it before).
pub fn regenerate(
    key: &Credential,
    new_secret: &Secret,
    grace_secs: i64,
    now: DateTime<Utc>,
    by: Option<uuid::Uuid>,
) -> Result<Credential, Error> {
    if key.kind != Kind::ApiKey {
        return Err(Error::KeyNotFound);
    }
    match key.status(now) {
        // A revoked or expired key is not brought back by a new secret.
        Status::Revoked => return Err(Error::KeyRevoked),
        Status::Expired => return Err(Error::KeyExpired),
        Status::Active => {}
    }
    let previous =
        (grace_secs > 0).then(|| PreviousSecret { hash: key.hash, until: now + chrono::Duration::seconds(grace_secs) });
    Ok(Credential {
        hash: new_secret.hash(),
        prefix: new_secret.display_prefix().to_owned(),
        previous,
        revision: key.revision + 1,
        created_by: by.or(key.created_by),
        ..key.clone()
    })
}

#[cfg(test)]
mod tests {
    use keyplane_common::{
        credential::{CredentialType, Environment, KeyFormat, SecretHash},
        scope::Scopes,
    };
    use uuid::Uuid;

    use super::*;
    use crate::domain::key::Mint;

    fn secret() -> Secret {
        KeyFormat::default().generate(CredentialType::ApiKey(Environment::Live))
    }

    fn key(now: DateTime<Utc>) -> Credential {
        let mint = Mint {
            kind: Kind::ApiKey,
            org_id: Uuid::now_v7(),
            created_by: None,
            name: "k".into(),
            environment: Some(Environment::Live),
            scopes: Scopes::Full,
            resource_ids: vec![],
            expires_at: None,
            rate_limit: None,
            bootstrap: false,
        };
        Credential::mint(mint, &secret(), now)
    }

    #[test]
    fn the_old_secret_works_for_the_grace_period_and_the_one_before_stops() {
        let now = Utc::now();
        let first = key(now);
        let second = regenerate(&first, &secret(), 3600, now, first.created_by).unwrap();
        assert_eq!(second.id, first.id, "same key");
        assert_eq!(second.previous, Some(PreviousSecret { hash: first.hash, until: now + chrono::Duration::hours(1) }));
        assert!(second.revision > first.revision);
        let third = regenerate(&second, &secret(), 3600, now, None).unwrap();
        assert_eq!(third.previous.map(|p| p.hash), Some(second.hash));
        assert!(third.record_for(&first.hash).is_none(), "the secret before last works no more");
        assert!(third.record_for(&second.hash).is_some() && third.record_for(&third.hash).is_some());
        assert_eq!(third.created_by, first.created_by, "a service's regeneration keeps the holder");
    }

    #[test]
    fn the_regenerator_holds_the_key_from_then_on() {
        let now = Utc::now();
        let first = key(now);
        let owner = Uuid::now_v7();
        assert_eq!(regenerate(&first, &secret(), 60, now, Some(owner)).unwrap().created_by, Some(owner));
    }

    #[test]
    fn no_grace_means_the_old_secret_stops_at_once() {
        let now = Utc::now();
        let first = key(now);
        let second = regenerate(&first, &secret(), 0, now, None).unwrap();
        assert_eq!(second.previous, None);
        assert!(second.record_for(&first.hash).is_none());
    }

    fn user(id: Uuid) -> Principal {
        Principal::User(keyplane_common::principal::UserPrincipal {
            user_id: id,
            session_id: None,
            email: "a@b.co".into(),
            name: "a".into(),
            issuer: "keyplane".into(),
        })
    }

    fn key_of(target: &Credential, scopes: Scopes) -> Principal {
        Principal::ApiKey(keyplane_common::principal::KeyPrincipal {
            key_id: Uuid::now_v7(),
            org_id: target.org_id,
            name: "k".into(),
            prefix: "p".into(),
            environment: Environment::Live,
            scopes,
            resource_ids: vec![],
            expires_at: None,
            grace_ends_at: None,
            created_by: target.created_by,
            revision: 1,
            rate_limit: None,
        })
    }

    #[test]
    fn only_the_creator_or_an_owner_takes_a_key_over() {
        let creator = Uuid::now_v7();
        let target = Credential { created_by: Some(creator), ..key(Utc::now()) };
        assert!(may_regenerate(&user(creator), Some(Role::Admin), &target).is_ok());
        assert!(matches!(may_regenerate(&user(Uuid::now_v7()), Some(Role::Admin), &target), Err(Error::NotCreator)));
        assert!(may_regenerate(&user(Uuid::now_v7()), Some(Role::Owner), &target).is_ok());
        // The creator's narrower key cannot take over the creator's full one.
        let narrow = key_of(&target, Scopes::parse(&["write:keys"]).unwrap());
        assert!(matches!(may_regenerate(&narrow, Some(Role::Admin), &target), Err(Error::InsufficientScope)));
        assert!(may_regenerate(&key_of(&target, Scopes::Full), Some(Role::Admin), &target).is_ok());
    }

    #[test]
    fn a_rotated_out_secret_cannot_rotate_its_key_again() {
        let creator = Uuid::now_v7();
        let target = Credential { created_by: Some(creator), revision: 2, ..key(Utc::now()) };
        let Principal::ApiKey(mut itself) = key_of(&target, Scopes::Full) else { unreachable!() };
        itself.key_id = target.id;
        itself.revision = 1;
        assert!(matches!(
            may_regenerate(&Principal::ApiKey(itself.clone()), Some(Role::Admin), &target),
            Err(Error::StaleSecret)
        ));
        itself.revision = 2;
        assert!(may_regenerate(&Principal::ApiKey(itself), Some(Role::Admin), &target).is_ok());
    }

    #[test]
    fn the_grace_period_is_bounded() {
        assert_eq!(grace_period(None).unwrap(), 86_400);
        assert_eq!(grace_period(Some(0)).unwrap(), 0);
        assert!(grace_period(Some(604_801)).is_err());
        assert!(grace_period(Some(-1)).is_err());
    }

    #[test]
    fn revoked_and_expired_keys_stay_dead() {
        let now = Utc::now();
        let revoked = Credential { revoked_at: Some(now), ..key(now) };
        assert!(matches!(regenerate(&revoked, &secret(), 60, now, None), Err(Error::KeyRevoked)));
        let expired = Credential { expires_at: Some(now), ..key(now) };
        assert!(matches!(regenerate(&expired, &secret(), 60, now, None), Err(Error::KeyExpired)));
        let token = Credential { kind: Kind::McpToken, ..key(now) };
        assert!(matches!(regenerate(&token, &secret(), 60, now, None), Err(Error::KeyNotFound)));
        let _ = SecretHash::of("unused");
    }
}
