//! The advisors service's storage: advisors, their payload keys, consultations with their
//! signed answers and deliveries, seen nonces, and the platform's delivery keys. Every
//! audited change commits with its event (the outbox).

mod entities;

use base64::Engine;
use chrono::{DateTime, Utc};
use keyplane_common::{audit::AuditRecord, db::is_unique_violation, httpsig::Message, outbox, page::Page};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait, sea_query::Expr,
};
use uuid::Uuid;

pub use entities::delivery_keys::Model as DeliveryKeyRow;
use entities::{advisors, consultations, delivery_keys, payload_keys, seen_nonces};

use crate::{
    domain::{
        advisor::Advisor,
        consultation::{ANSWERED, Answer, Consultation, Delivery, DeliveryStatus, PENDING},
        payload_key::{ACTIVE, PayloadKey, RETIRED},
    },
    error::Error,
};

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

/// What a delivery attempt came to.
pub struct Attempt {
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub error: Option<String>,
    pub next_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl Store {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    pub async fn insert_advisor(&self, advisor: &Advisor, audit: &AuditRecord) -> Result<Advisor, Error> {
        let txn = self.db.begin().await?;
        let row = advisors::ActiveModel {
            id: Set(advisor.id),
            org_id: Set(advisor.org_id),
            name: Set(advisor.name.clone()),
            description: Set(advisor.description.clone()),
            endpoint_url: Set(advisor.endpoint_url.clone()),
            status: Set(advisor.status.clone()),
            created_by: Set(advisor.created_by),
            created_at: Set(advisor.created_at),
        }
        .insert(&txn)
        .await?;
        outbox::enqueue_audit(&txn, std::slice::from_ref(audit)).await?;
        txn.commit().await?;
        Ok(to_advisor(row))
    }

    pub async fn advisor(&self, id: Uuid) -> Result<Option<Advisor>, Error> {
        Ok(advisors::Entity::find_by_id(id).one(&self.db).await?.map(to_advisor))
    }

    pub async fn advisors_of(&self, org_id: Uuid, page: &Page) -> Result<Vec<Advisor>, Error> {
        let select = advisors::Entity::find().filter(advisors::Column::OrgId.eq(org_id));
        Ok(page.apply(select, advisors::Column::Id).all(&self.db).await?.into_iter().map(to_advisor).collect())
    }

    pub async fn insert_key(&self, key: &PayloadKey, audit: &AuditRecord) -> Result<PayloadKey, Error> {
        let txn = self.db.begin().await?;
        let inserted = payload_keys::ActiveModel {
            advisor_id: Set(key.advisor_id),
            kid: Set(key.kid.clone()),
            public_x: Set(key.public_x.clone()),
            status: Set(ACTIVE.to_owned()),
            declared_at: Set(key.declared_at),
            retired_at: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(|e| if is_unique_violation(&e) { Error::KeyAlreadyDeclared(key.kid.clone()) } else { e.into() })?;
        outbox::enqueue_audit(&txn, std::slice::from_ref(audit)).await?;
        txn.commit().await?;
        Ok(to_key(inserted))
    }

    /// An advisor's keys, oldest first, retired ones too.
    pub async fn keys(&self, advisor_id: Uuid) -> Result<Vec<PayloadKey>, Error> {
        let rows = payload_keys::Entity::find()
            .filter(payload_keys::Column::AdvisorId.eq(advisor_id))
            .order_by_asc(payload_keys::Column::DeclaredAt)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(to_key).collect())
    }

    pub async fn key(&self, advisor_id: Uuid, kid: &str) -> Result<Option<PayloadKey>, Error> {
        Ok(payload_keys::Entity::find_by_id((advisor_id, kid.to_owned())).one(&self.db).await?.map(to_key))
    }

    pub async fn retire_key(
        &self,
        advisor_id: Uuid,
        kid: &str,
        now: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<PayloadKey, Error> {
        let txn = self.db.begin().await?;
        let updated = payload_keys::Entity::update_many()
            .col_expr(payload_keys::Column::Status, Expr::value(RETIRED))
            .col_expr(payload_keys::Column::RetiredAt, Expr::value(now))
            .filter(payload_keys::Column::AdvisorId.eq(advisor_id))
            .filter(payload_keys::Column::Kid.eq(kid))
            .filter(payload_keys::Column::Status.eq(ACTIVE))
            .exec(&txn)
            .await?;
        if updated.rows_affected > 0 {
            outbox::enqueue_audit(&txn, std::slice::from_ref(audit)).await?;
        }
        let row = payload_keys::Entity::find_by_id((advisor_id, kid.to_owned()))
            .one(&txn)
            .await?
            .ok_or(Error::PayloadKeyNotFound)?;
        txn.commit().await?;
        Ok(to_key(row))
    }

    pub async fn insert_consultation(&self, c: &Consultation, audit: &AuditRecord) -> Result<Consultation, Error> {
        let txn = self.db.begin().await?;
        let delivery = c.delivery.as_ref();
        let row = consultations::ActiveModel {
            id: Set(c.id),
            advisor_id: Set(c.advisor_id),
            org_id: Set(c.org_id),
            question: Set(c.question.clone()),
            context_json: Set(c.context_json.clone()),
            status: Set(c.status.clone()),
            requested_by: Set(c.requested_by.clone()),
            created_at: Set(c.created_at),
            answered_at: Set(None),
            answer: Set(None),
            response_key_id: Set(None),
            signed_request: Set(None),
            delivery_status: Set(delivery.map(|d| d.status.as_str().to_owned())),
            delivery_attempts: Set(0),
            delivery_last_error: Set(None),
            delivered_at: Set(None),
            next_delivery_at: Set(delivery.map(|_| c.created_at)),
        }
        .insert(&txn)
        .await?;
        outbox::enqueue_audit(&txn, std::slice::from_ref(audit)).await?;
        txn.commit().await?;
        to_consultation(row)
    }

    pub async fn consultation(&self, id: Uuid) -> Result<Option<Consultation>, Error> {
        consultations::Entity::find_by_id(id).one(&self.db).await?.map(to_consultation).transpose()
    }

    /// Stores the signed answer of a pending consultation; a second answer is refused.
    pub async fn answer(&self, id: Uuid, answer: &Answer, audit: &AuditRecord) -> Result<Consultation, Error> {
        let txn = self.db.begin().await?;
        let updated = consultations::Entity::update_many()
            .col_expr(consultations::Column::Status, Expr::value(ANSWERED))
            .col_expr(consultations::Column::AnsweredAt, Expr::value(answer.answered_at))
            .col_expr(consultations::Column::Answer, Expr::value(answer.text.clone()))
            .col_expr(consultations::Column::ResponseKeyId, Expr::value(answer.key_id.clone()))
            .col_expr(consultations::Column::SignedRequest, Expr::value(message_to_json(&answer.signed)))
            .filter(consultations::Column::Id.eq(id))
            .filter(consultations::Column::Status.eq(PENDING))
            .exec(&txn)
            .await?;
        if updated.rows_affected == 0 {
            return Err(Error::AlreadyAnswered);
        }
        outbox::enqueue_audit(&txn, std::slice::from_ref(audit)).await?;
        let row = consultations::Entity::find_by_id(id).one(&txn).await?.ok_or(Error::ConsultationNotFound)?;
        txn.commit().await?;
        to_consultation(row)
    }

    /// Notes a signature's nonce; false when it was seen before (a replay).
    pub async fn note_nonce(
        &self,
        advisor_id: Uuid,
        kid: &str,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let row = seen_nonces::ActiveModel {
            advisor_id: Set(advisor_id),
            kid: Set(kid.to_owned()),
            nonce: Set(nonce.to_owned()),
            seen_at: Set(now),
        };
        match seen_nonces::Entity::insert(row).exec_without_returning(&self.db).await {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn forget_nonces_before(&self, before: DateTime<Utc>) -> Result<(), Error> {
        seen_nonces::Entity::delete_many().filter(seen_nonces::Column::SeenAt.lt(before)).exec(&self.db).await?;
        Ok(())
    }

    /// Claims consultations whose delivery is due, at most `per_advisor` of one advisor:
    /// each claimed one is leased (not due again) until `lease` has passed, so that two
    /// replicas never deliver one consultation at once. Answers them with the endpoint.
    pub async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u64,
        per_advisor: usize,
    ) -> Result<Vec<(Consultation, String)>, Error> {
        let rows = consultations::Entity::find()
            .filter(consultations::Column::DeliveryStatus.eq(DeliveryStatus::Pending.as_str()))
            .filter(consultations::Column::NextDeliveryAt.lte(now))
            .order_by_asc(consultations::Column::NextDeliveryAt)
            .limit(limit)
            .all(&self.db)
            .await?;
        let mut per: std::collections::HashMap<Uuid, usize> = std::collections::HashMap::new();
        let mut claimed = Vec::new();
        for row in rows {
            let taken = per.entry(row.advisor_id).or_default();
            if *taken >= per_advisor {
                continue;
            }
            let won = consultations::Entity::update_many()
                .col_expr(consultations::Column::NextDeliveryAt, Expr::value(now + lease))
                .filter(consultations::Column::Id.eq(row.id))
                .filter(consultations::Column::DeliveryStatus.eq(DeliveryStatus::Pending.as_str()))
                .filter(consultations::Column::NextDeliveryAt.lte(now))
                .exec(&self.db)
                .await?;
            if won.rows_affected == 1 {
                *taken += 1;
                let endpoint = self.advisor(row.advisor_id).await?.map(|a| a.endpoint_url).unwrap_or_default();
                claimed.push((to_consultation(row)?, endpoint));
            }
        }
        Ok(claimed)
    }

    pub async fn record_attempt(&self, id: Uuid, attempt: &Attempt) -> Result<(), Error> {
        consultations::Entity::update_many()
            .col_expr(consultations::Column::DeliveryStatus, Expr::value(attempt.status.as_str()))
            .col_expr(
                consultations::Column::DeliveryAttempts,
                Expr::value(i32::try_from(attempt.attempts).unwrap_or(i32::MAX)),
            )
            .col_expr(consultations::Column::DeliveryLastError, Expr::value(attempt.error.clone()))
            .col_expr(consultations::Column::NextDeliveryAt, Expr::value(attempt.next_at))
            .col_expr(consultations::Column::DeliveredAt, Expr::value(attempt.delivered_at))
            .filter(consultations::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    pub async fn delivery_keys(&self) -> Result<Vec<DeliveryKeyRow>, Error> {
        Ok(delivery_keys::Entity::find().order_by_asc(delivery_keys::Column::CreatedAt).all(&self.db).await?)
    }

    /// Adds the first delivery key, unless another replica got there first.
    pub async fn add_first_delivery_key(&self, key: DeliveryKeyRow) -> Result<(), Error> {
        let txn = self.db.begin().await?;
        if delivery_keys::Entity::find().one(&txn).await?.is_none() {
            delivery_keys::ActiveModel::from(key).insert(&txn).await?;
        }
        txn.commit().await?;
        Ok(())
    }
}

fn to_advisor(row: advisors::Model) -> Advisor {
    Advisor {
        id: row.id,
        org_id: row.org_id,
        name: row.name,
        description: row.description,
        endpoint_url: row.endpoint_url,
        status: row.status,
        created_by: row.created_by,
        created_at: row.created_at,
    }
}

fn to_key(row: payload_keys::Model) -> PayloadKey {
    PayloadKey {
        advisor_id: row.advisor_id,
        kid: row.kid,
        public_x: row.public_x,
        status: row.status,
        declared_at: row.declared_at,
    }
}

fn to_consultation(row: consultations::Model) -> Result<Consultation, Error> {
    let answer = match (row.answer, row.answered_at, row.response_key_id, row.signed_request) {
        (Some(text), Some(answered_at), Some(key_id), Some(signed)) => Some(Answer {
            text,
            answered_at,
            key_id,
            signed: message_from_json(&signed)
                .ok_or_else(|| Error::internal(format!("consultation {} has a bad signed request", row.id)))?,
        }),
        _ => None,
    };
    let delivery = row.delivery_status.as_deref().and_then(DeliveryStatus::parse).map(|status| Delivery {
        status,
        attempts: u32::try_from(row.delivery_attempts).unwrap_or(0),
        last_error: row.delivery_last_error,
        delivered_at: row.delivered_at,
    });
    Ok(Consultation {
        id: row.id,
        advisor_id: row.advisor_id,
        org_id: row.org_id,
        question: row.question,
        context_json: row.context_json,
        status: row.status,
        requested_by: row.requested_by,
        created_at: row.created_at,
        answer,
        delivery,
    })
}

/// A signed request as stored: every part, the body base64.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredMessage {
    method: String,
    scheme: String,
    authority: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: String,
}

fn message_to_json(m: &Message) -> serde_json::Value {
    serde_json::to_value(StoredMessage {
        method: m.method.clone(),
        scheme: m.scheme.clone(),
        authority: m.authority.clone(),
        path: m.path.clone(),
        query: m.query.clone(),
        headers: m.headers.clone(),
        body: base64::engine::general_purpose::STANDARD.encode(&m.body),
    })
    .unwrap_or_default()
}

fn message_from_json(value: &serde_json::Value) -> Option<Message> {
    let stored: StoredMessage = serde_json::from_value(value.clone()).ok()?;
    Some(Message {
        method: stored.method,
        scheme: stored.scheme,
        authority: stored.authority,
        path: stored.path,
        query: stored.query,
        headers: stored.headers,
        body: base64::engine::general_purpose::STANDARD.decode(stored.body).ok()?,
    })
}
