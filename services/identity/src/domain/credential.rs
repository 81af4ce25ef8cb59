//! Deciding on an API key or MCP token from its stored record, at the moment of use.

use chrono::{DateTime, Utc};
use keyplane_common::{
    credential::CredentialType,
    principal::{KeyPrincipal, McpPrincipal, Principal, environment_from_proto},
    scope::Scopes,
    time,
};
use keyplane_proto::keys::v1::{CredentialKind, CredentialRecord};
use uuid::Uuid;

use crate::error::Error;

/// The principal a record stands for now, or why it stands for none.
pub fn evaluate(
    presented: CredentialType,
    record: Option<&CredentialRecord>,
    now: DateTime<Utc>,
) -> Result<Principal, Error> {
    let unknown = || match presented {
        CredentialType::ApiKey(_) => Error::InvalidApiKey,
        CredentialType::McpToken => Error::InvalidMcpToken,
    };
    let record = record.ok_or_else(unknown)?;
    let kind = CredentialKind::try_from(record.kind).unwrap_or(CredentialKind::Unspecified);
    let environment = environment_from_proto(record.environment);
    let matches = match presented {
        CredentialType::ApiKey(env) => kind == CredentialKind::ApiKey && environment == Some(env),
        CredentialType::McpToken => kind == CredentialKind::McpToken,
    };
    if !matches {
        return Err(unknown());
    }
    if record.revoked_at.is_some() {
        return Err(Error::KeyRevoked);
    }
    let grace_ends_at = record.grace_ends_at.as_ref().and_then(time::from_proto);
    if record.previous_secret && grace_ends_at.is_none_or(|end| end <= now) {
        // A regenerated key's old secret, past its grace period.
        return Err(Error::KeyRevoked);
    }
    let expires_at = record.expires_at.as_ref().and_then(time::from_proto);
    if expires_at.is_some_and(|t| t <= now) {
        return Err(Error::KeyExpired);
    }
    let id = |s: &str| Uuid::parse_str(s).map_err(|_| Error::internal(format!("stored credential with bad id {s:?}")));
    let scopes = Scopes::from_parts(record.full_access, &record.scopes);
    Ok(match presented {
        CredentialType::ApiKey(environment) => Principal::ApiKey(KeyPrincipal {
            key_id: id(&record.id)?,
            org_id: id(&record.org_id)?,
            name: record.name.clone(),
            prefix: record.prefix.clone(),
            environment,
            scopes,
            resource_ids: record.resource_ids.clone(),
            expires_at,
            grace_ends_at: if record.previous_secret { grace_ends_at } else { None },
            created_by: if record.created_by.is_empty() { None } else { Some(id(&record.created_by)?) },
        }),
        CredentialType::McpToken => Principal::McpToken(McpPrincipal {
            token_id: id(&record.id)?,
            org_id: id(&record.org_id)?,
            user_id: id(&record.created_by)?,
            name: record.name.clone(),
            prefix: record.prefix.clone(),
            scopes,
            expires_at,
        }),
    })
}

#[cfg(test)]
mod tests {
    use keyplane_common::credential::Environment;
    use keyplane_proto::types::v1::Environment as PbEnv;

    use super::*;

    fn record() -> CredentialRecord {
        CredentialRecord {
            kind: CredentialKind::ApiKey.into(),
            id: Uuid::now_v7().to_string(),
            org_id: Uuid::now_v7().to_string(),
            environment: PbEnv::Test.into(),
            full_access: true,
            ..Default::default()
        }
    }

    const TEST: CredentialType = CredentialType::ApiKey(Environment::Test);

    #[test]
    fn a_live_record_is_a_principal() {
        let p = evaluate(TEST, Some(&record()), Utc::now()).unwrap();
        assert!(matches!(p, Principal::ApiKey(k) if k.scopes.is_full() && k.grace_ends_at.is_none()));
    }

    #[test]
    fn unknown_revoked_expired_and_mismatched_are_told_apart() {
        let now = Utc::now();
        assert!(matches!(evaluate(TEST, None, now), Err(Error::InvalidApiKey)));
        let revoked = CredentialRecord { revoked_at: Some(time::to_proto(now)), ..record() };
        assert!(matches!(evaluate(TEST, Some(&revoked), now), Err(Error::KeyRevoked)));
        let expired = CredentialRecord { expires_at: Some(time::to_proto(now)), ..record() };
        assert!(matches!(evaluate(TEST, Some(&expired), now), Err(Error::KeyExpired)));
        let live = CredentialType::ApiKey(Environment::Live);
        assert!(matches!(evaluate(live, Some(&record()), now), Err(Error::InvalidApiKey)));
    }

    #[test]
    fn an_old_secret_works_until_its_grace_ends() {
        let now = Utc::now();
        let old = CredentialRecord {
            previous_secret: true,
            grace_ends_at: Some(time::to_proto(now + chrono::Duration::seconds(10))),
            ..record()
        };
        let p = evaluate(TEST, Some(&old), now).unwrap();
        assert!(matches!(p, Principal::ApiKey(k) if k.grace_ends_at.is_some()));
        assert!(matches!(evaluate(TEST, Some(&old), now + chrono::Duration::seconds(11)), Err(Error::KeyRevoked)));
    }
}
