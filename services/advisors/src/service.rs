//! The advisors use cases: register and list advisors, declare and retire their payload
//! keys (proved by a signature of the key itself), consult an advisor, and take its signed
//! answer.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use keyplane_common::{
    audit::AuditRecord,
    authz::Action,
    error::{FieldViolation, Kind},
    httpsig::{self, Message, Refusal},
    internal_auth::Caller,
    orgs_peer::OrgsPeer,
    page::Page,
    principal::Principal,
    text,
    time::Clock,
};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    delivery_keys::DeliveryKeys,
    domain::{
        advisor::{self, Advisor},
        consultation::{self, Answer, Consultation, Delivery, DeliveryStatus},
        payload_key::{self, PayloadKey},
        proof,
    },
    error::Error,
    store::Store,
};

pub struct Service {
    pub store: Store,
    pub orgs: OrgsPeer,
    pub clock: Clock,
    pub delivery_keys: Arc<DeliveryKeys>,
    /// Wakes the deliverer after a consultation to an advisor with an endpoint.
    pub deliveries: Arc<Notify>,
    /// Wakes the audit relay after a commit.
    pub relay: Arc<Notify>,
}

fn audit(caller: &Caller, principal: &Principal, org_id: Uuid, action: &str, target: (&str, String)) -> AuditRecord {
    AuditRecord::new(org_id, principal, action, target).from_caller(caller)
}

fn uuid(raw: &str, not_found: Error) -> Result<Uuid, Error> {
    Uuid::parse_str(raw).map_err(|_| not_found)
}

impl Service {
    /// May the caller do `action` on the org; to a stranger, `hidden` (the thing it asked
    /// about does not exist for it).
    async fn authorize(&self, caller: &Caller, org_id: Uuid, action: Action, hidden: Error) -> Result<(), Error> {
        match self.orgs.authorize(caller.principal()?, org_id, action).await {
            Ok(_) => Ok(()),
            Err(status) if Kind::from_grpc_code(status.code()) == Kind::NotFound => Err(hidden),
            Err(status) => Err(Error::upstream(status)),
        }
    }

    /// An advisor the caller may `action` on.
    async fn advisor_for(&self, caller: &Caller, id: &str, action: Action) -> Result<Advisor, Error> {
        let advisor = self.store.advisor(uuid(id, Error::AdvisorNotFound)?).await?.ok_or(Error::AdvisorNotFound)?;
        self.authorize(caller, advisor.org_id, action, Error::AdvisorNotFound).await?;
        Ok(advisor)
    }

    pub async fn register(
        &self,
        caller: &Caller,
        org: &str,
        name: &str,
        description: &str,
        endpoint_url: &str,
    ) -> Result<Advisor, Error> {
        let principal = caller.principal()?;
        let org_id = uuid(org, Error::Validation(vec![FieldViolation::new("org_id", "must be an org's id")]))?;
        self.orgs.authorize(principal, org_id, Action::AdvisorsWrite).await.map_err(Error::upstream)?;
        let (name, description, endpoint_url) =
            advisor::fields(name, description, endpoint_url).map_err(Error::Validation)?;
        let advisor = Advisor {
            id: Uuid::now_v7(),
            org_id,
            name,
            description,
            endpoint_url,
            status: "active".into(),
            created_by: principal.user_id(),
            created_at: self.clock.now(),
        };
        let event = audit(caller, principal, org_id, "advisor.registered", ("advisor", advisor.id.to_string()))
            .with_metadata(serde_json::json!({ "name": advisor.name, "endpoint_url": advisor.endpoint_url }));
        let advisor = self.store.insert_advisor(&advisor, &event).await?;
        self.relay.notify_one();
        Ok(advisor)
    }

    pub async fn list(&self, caller: &Caller, org: &str, page: Page) -> Result<Vec<Advisor>, Error> {
        let org_id = uuid(org, Error::Validation(vec![FieldViolation::new("org_id", "must be an org's id")]))?;
        self.orgs.authorize(caller.principal()?, org_id, Action::AdvisorsRead).await.map_err(Error::upstream)?;
        self.store.advisors_of(org_id, &page).await
    }

    pub async fn get(&self, caller: &Caller, id: &str) -> Result<Advisor, Error> {
        self.advisor_for(caller, id, Action::AdvisorsRead).await
    }

    pub async fn consult(
        &self,
        caller: &Caller,
        advisor_id: &str,
        question: &str,
        context_json: &str,
    ) -> Result<Consultation, Error> {
        let principal = caller.principal()?;
        let advisor = self.advisor_for(caller, advisor_id, Action::AdvisorsRead).await?;
        let mut violations = Vec::new();
        let question = text::long_text("question", question, consultation::MAX_QUESTION_LEN)
            .map_err(|v| violations.push(v))
            .unwrap_or_default();
        let context = if context_json.is_empty() { "{}" } else { context_json };
        let is_object = serde_json::from_str::<serde_json::Value>(context).is_ok_and(|v| v.is_object());
        if !is_object || context.len() > consultation::MAX_CONTEXT_BYTES {
            violations.push(FieldViolation::new("context", "must be a JSON object of at most 64 KiB"));
        }
        if !violations.is_empty() {
            return Err(Error::Validation(violations));
        }
        let consultation = Consultation {
            id: Uuid::now_v7(),
            advisor_id: advisor.id,
            org_id: advisor.org_id,
            question,
            context_json: context.to_owned(),
            status: consultation::PENDING.into(),
            requested_by: principal.cache_key(),
            created_at: self.clock.now(),
            answer: None,
            delivery: (!advisor.endpoint_url.is_empty()).then_some(Delivery {
                status: DeliveryStatus::Pending,
                attempts: 0,
                last_error: None,
                delivered_at: None,
            }),
        };
        let event = audit(
            caller,
            principal,
            advisor.org_id,
            "consultation.created",
            ("consultation", consultation.id.to_string()),
        )
        .with_metadata(serde_json::json!({ "advisor_id": advisor.id }));
        let consultation = self.store.insert_consultation(&consultation, &event).await?;
        self.relay.notify_one();
        self.deliveries.notify_one();
        Ok(consultation)
    }

    pub async fn consultation(&self, caller: &Caller, id: &str) -> Result<Consultation, Error> {
        let found = self
            .store
            .consultation(uuid(id, Error::ConsultationNotFound)?)
            .await?
            .ok_or(Error::ConsultationNotFound)?;
        self.authorize(caller, found.org_id, Action::AdvisorsRead, Error::ConsultationNotFound).await?;
        Ok(found)
    }

    /// Declares a payload key: an admin's session, and the request signed by the very key
    /// it declares (possession), over method, path and the body's digest.
    pub async fn declare_key(&self, caller: &Caller, advisor_id: &str, signed: &Message) -> Result<PayloadKey, Error> {
        let principal = caller.principal()?;
        if !matches!(principal, Principal::User(_)) {
            return Err(Error::SessionRequired);
        }
        let advisor = self.advisor_for(caller, advisor_id, Action::AdvisorsWrite).await?;
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            key_id: String,
            public_key: String,
        }
        let body: Body = serde_json::from_slice(&signed.body).map_err(|e| {
            Error::Validation(vec![FieldViolation::new("body", format!("must be {{key_id, public_key}}: {e}"))])
        })?;
        let kid = payload_key::kid(&body.key_id)?;
        let public = payload_key::public_key(&body.public_key)?;
        let now = self.clock.now();
        let verified =
            httpsig::verify(signed, &proof::policy(now.timestamp()), |keyid| (keyid == kid).then_some(public))
                .map_err(Error::InvalidSignature)?;
        self.spend(advisor.id, &verified, now).await?;
        let key = PayloadKey {
            advisor_id: advisor.id,
            kid,
            public_x: body.public_key,
            status: payload_key::ACTIVE.into(),
            declared_at: now,
        };
        let event = audit(
            caller,
            principal,
            advisor.org_id,
            "advisor.payload_key_declared",
            ("advisor", advisor.id.to_string()),
        )
        .with_metadata(serde_json::json!({ "kid": key.kid, "x": key.public_x }));
        let key = self.store.insert_key(&key, &event).await?;
        self.relay.notify_one();
        Ok(key)
    }

    pub async fn retire_key(&self, caller: &Caller, advisor_id: &str, kid: &str) -> Result<PayloadKey, Error> {
        let principal = caller.principal()?;
        let advisor = self.advisor_for(caller, advisor_id, Action::AdvisorsWrite).await?;
        self.store.key(advisor.id, kid).await?.ok_or(Error::PayloadKeyNotFound)?;
        let event = audit(
            caller,
            principal,
            advisor.org_id,
            "advisor.payload_key_retired",
            ("advisor", advisor.id.to_string()),
        )
        .with_metadata(serde_json::json!({ "kid": kid }));
        let key = self.store.retire_key(advisor.id, kid, self.clock.now(), &event).await?;
        self.relay.notify_one();
        Ok(key)
    }

    /// An advisor's keys, for anyone (federation): active and retired.
    pub async fn keys(&self, advisor_id: &str) -> Result<Vec<PayloadKey>, Error> {
        let advisor =
            self.store.advisor(uuid(advisor_id, Error::AdvisorNotFound)?).await?.ok_or(Error::AdvisorNotFound)?;
        self.store.keys(advisor.id).await
    }

    /// An advisor's answer: signed by one of its active keys over method, path and the
    /// body's digest; kept as it was signed.
    pub async fn respond(
        &self,
        caller: &Caller,
        advisor_id: &str,
        consultation_id: &str,
        signed: &Message,
    ) -> Result<Consultation, Error> {
        let advisor =
            self.store.advisor(uuid(advisor_id, Error::AdvisorNotFound)?).await?.ok_or(Error::AdvisorNotFound)?;
        let found = self.store.consultation(uuid(consultation_id, Error::ConsultationNotFound)?).await?;
        let consultation = found.filter(|c| c.advisor_id == advisor.id).ok_or(Error::ConsultationNotFound)?;
        let keys = self.store.keys(advisor.id).await?;
        let now = self.clock.now();
        let verified = httpsig::verify(signed, &proof::policy(now.timestamp()), |keyid| {
            keys.iter().find(|k| k.kid == keyid && k.is_active()).and_then(PayloadKey::verifying_key)
        })
        .map_err(Error::InvalidSignature)?;
        self.spend(advisor.id, &verified, now).await?;
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            answer: String,
        }
        let body: Body = serde_json::from_slice(&signed.body)
            .map_err(|e| Error::Validation(vec![FieldViolation::new("body", format!("must be {{answer}}: {e}"))]))?;
        text::long_text("answer", &body.answer, consultation::MAX_QUESTION_LEN * 5)?;
        let answer = Answer {
            // As signed (less the space around it), not in NFC as other text is kept: anyone
            // may check the answer shown against the signed body.
            text: body.answer.trim().to_owned(),
            answered_at: now,
            key_id: verified.keyid.clone(),
            signed: signed.keep_covered(&verified.covered),
        };
        let mut event = AuditRecord::platform(
            ("advisor_key", verified.keyid),
            "consultation.answered",
            ("consultation", consultation.id.to_string()),
        )
        .from_caller(caller)
        .with_metadata(serde_json::json!({ "advisor_id": advisor.id }));
        event.org_id = consultation.org_id;
        let answered = self.store.answer(consultation.id, &answer, &event).await?;
        self.relay.notify_one();
        Ok(answered)
    }

    /// A signature is good once: its nonce when it has one, else the signature itself,
    /// noted in the database every replica shares.
    async fn spend(&self, advisor_id: Uuid, verified: &httpsig::Verified, now: DateTime<Utc>) -> Result<(), Error> {
        let once = match &verified.nonce {
            Some(nonce) => format!("nonce:{nonce}"),
            None => format!("signature:{}", verified.fingerprint),
        };
        if self.store.note_nonce(advisor_id, &verified.keyid, &once, now).await? {
            Ok(())
        } else {
            Err(Error::InvalidSignature(Refusal::ReplayedNonce))
        }
    }

    /// Forgets nonces older than any signature still fresh enough to be replayed.
    pub async fn forget_old_nonces(&self) -> Result<(), Error> {
        let horizon = chrono::Duration::from_std(proof::MAX_AGE * 2).unwrap_or_default();
        self.store.forget_nonces_before(self.clock.now() - horizon).await
    }
}
