//! Regenerating a key: same id, a new secret. The secret it had keeps working for the
//! grace period (so stragglers can move over), and the one before that stops at once:
//! at most two secrets of a key ever work.

use chrono::{DateTime, Utc};
use keyplane_common::{credential::Secret, error::FieldViolation};

use super::key::{Credential, Kind, PreviousSecret, Status};
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

/// The key after regeneration with `new_secret`, or why it cannot be regenerated.
pub fn regenerate(
    key: &Credential,
    new_secret: &Secret,
    grace_secs: i64,
    now: DateTime<Utc>,
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
            bootstrap: false,
        };
        Credential::mint(mint, &secret(), now)
    }

    #[test]
    fn the_old_secret_works_for_the_grace_period_and_the_one_before_stops() {
        let now = Utc::now();
        let first = key(now);
        let second = regenerate(&first, &secret(), 3600, now).unwrap();
        assert_eq!(second.id, first.id, "same key");
        assert_eq!(second.previous, Some(PreviousSecret { hash: first.hash, until: now + chrono::Duration::hours(1) }));
        assert!(second.revision > first.revision);
        let third = regenerate(&second, &secret(), 3600, now).unwrap();
        assert_eq!(third.previous.map(|p| p.hash), Some(second.hash));
        assert!(third.record_for(&first.hash).is_none(), "the secret before last works no more");
        assert!(third.record_for(&second.hash).is_some() && third.record_for(&third.hash).is_some());
    }

    #[test]
    fn no_grace_means_the_old_secret_stops_at_once() {
        let now = Utc::now();
        let first = key(now);
        let second = regenerate(&first, &secret(), 0, now).unwrap();
        assert_eq!(second.previous, None);
        assert!(second.record_for(&first.hash).is_none());
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
        assert!(matches!(regenerate(&revoked, &secret(), 60, now), Err(Error::KeyRevoked)));
        let expired = Credential { expires_at: Some(now), ..key(now) };
        assert!(matches!(regenerate(&expired, &secret(), 60, now), Err(Error::KeyExpired)));
        let token = Credential { kind: Kind::McpToken, ..key(now) };
        assert!(matches!(regenerate(&token, &secret(), 60, now), Err(Error::KeyNotFound)));
        let _ = SecretHash::of("unused");
    }
}
