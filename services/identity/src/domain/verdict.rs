//! Deciding on an API key or MCP token from its stored record, at the moment of use.

use chrono::{DateTime, Utc};
use keyplane_common::{
    credential::CredentialType,
    key_record::KeyRecord,
    principal::{KeyPrincipal, McpPrincipal, Principal},
};

use crate::error::Error;

/// The principal a record stands for now, or why it stands for none.
pub fn evaluate(presented: CredentialType, record: Option<&KeyRecord>, now: DateTime<Utc>) -> Result<Principal, Error> {
    let unknown = || match presented {
        CredentialType::ApiKey(_) => Error::InvalidApiKey,
        CredentialType::McpToken => Error::InvalidMcpToken,
    };
    // A secret of one kind (a test key, say) is never read as another (a live key).
    let record = record.filter(|r| r.credential_type == presented).ok_or_else(unknown)?;
    if record.revoked_at.is_some() {
        return Err(Error::KeyRevoked);
    }
    if record.is_previous_secret && record.previous_secret_until.is_none_or(|end| end <= now) {
        // A regenerated key's old secret, past its grace period.
        return Err(Error::KeyRevoked);
    }
    if record.expires_at.is_some_and(|t| t <= now) {
        return Err(Error::KeyExpired);
    }
    Ok(match presented {
        CredentialType::ApiKey(environment) => Principal::ApiKey(KeyPrincipal {
            key_id: record.id,
            org_id: record.org_id,
            name: record.name.clone(),
            prefix: record.prefix.clone(),
            environment,
            scopes: record.scopes.clone(),
            resource_ids: record.resource_ids.clone(),
            expires_at: record.expires_at,
            grace_ends_at: if record.is_previous_secret { record.previous_secret_until } else { None },
            created_by: record.created_by,
            revision: record.revision,
            rate_limit: record.rate_limit,
        }),
        CredentialType::McpToken => Principal::McpToken(McpPrincipal {
            token_id: record.id,
            org_id: record.org_id,
            user_id: record.created_by.ok_or_else(|| Error::internal("an MCP token without its creator"))?,
            name: record.name.clone(),
            prefix: record.prefix.clone(),
            scopes: record.scopes.clone(),
            expires_at: record.expires_at,
            revision: record.revision,
        }),
    })
}

#[cfg(test)]
mod tests {
    use keyplane_common::{credential::Environment, scope::Scopes};
    use uuid::Uuid;

    use super::*;

    const TEST: CredentialType = CredentialType::ApiKey(Environment::Test);

    fn record() -> KeyRecord {
        KeyRecord {
            credential_type: TEST,
            id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            name: "k".into(),
            prefix: "phosra_test_abcd".into(),
            scopes: Scopes::Full,
            resource_ids: vec![],
            expires_at: None,
            revoked_at: None,
            previous_secret_until: None,
            is_previous_secret: false,
            created_by: Some(Uuid::now_v7()),
            revision: 1,
            rate_limit: None,
        }
    }

    #[test]
    fn a_live_record_is_a_principal() {
        let p = evaluate(TEST, Some(&record()), Utc::now()).unwrap();
        assert!(matches!(p, Principal::ApiKey(k) if k.scopes.is_full() && k.grace_ends_at.is_none()));
    }

    #[test]
    fn unknown_revoked_expired_and_mismatched_are_told_apart() {
        let now = Utc::now();
        assert!(matches!(evaluate(TEST, None, now), Err(Error::InvalidApiKey)));
        let revoked = KeyRecord { revoked_at: Some(now), ..record() };
        assert!(matches!(evaluate(TEST, Some(&revoked), now), Err(Error::KeyRevoked)));
        let expired = KeyRecord { expires_at: Some(now), ..record() };
        assert!(matches!(evaluate(TEST, Some(&expired), now), Err(Error::KeyExpired)));
        let live = CredentialType::ApiKey(Environment::Live);
        assert!(matches!(evaluate(live, Some(&record()), now), Err(Error::InvalidApiKey)));
        assert!(matches!(evaluate(CredentialType::McpToken, Some(&record()), now), Err(Error::InvalidMcpToken)));
    }

    #[test]
    fn an_old_secret_works_until_its_grace_ends() {
        let now = Utc::now();
        let old = KeyRecord {
            is_previous_secret: true,
            previous_secret_until: Some(now + chrono::Duration::seconds(10)),
            ..record()
        };
        let p = evaluate(TEST, Some(&old), now).unwrap();
        assert!(matches!(p, Principal::ApiKey(k) if k.grace_ends_at.is_some()));
        assert!(matches!(evaluate(TEST, Some(&old), now + chrono::Duration::seconds(11)), Err(Error::KeyRevoked)));
    }
}
