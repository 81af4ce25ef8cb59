//! The AdvisorsService gRPC surface: proto in, use case, proto out.

use std::sync::Arc;

use keyplane_common::{httpsig::Message, internal_auth::split, page::Page, time};
use keyplane_proto::{
    advisors::v1::{self as pb, advisors_service_server::AdvisorsService},
    types::v1::{PageInfo, PageRequest},
};
use tonic::{Request, Response, Status};

use crate::{
    domain::{advisor::Advisor, consultation::Consultation, payload_key::PayloadKey},
    error::Error,
    service::Service,
};

pub struct AdvisorsGrpc {
    service: Arc<Service>,
}

impl AdvisorsGrpc {
    pub fn new(service: Arc<Service>) -> Self {
        Self { service }
    }
}

fn advisor(a: &Advisor) -> pb::Advisor {
    pb::Advisor {
        id: a.id.to_string(),
        org_id: a.org_id.to_string(),
        name: a.name.clone(),
        description: a.description.clone(),
        endpoint_url: a.endpoint_url.clone(),
        status: a.status.clone(),
        created_at: Some(time::to_proto(a.created_at)),
    }
}

fn consultation(c: &Consultation) -> pb::Consultation {
    pb::Consultation {
        id: c.id.to_string(),
        advisor_id: c.advisor_id.to_string(),
        org_id: c.org_id.to_string(),
        question: c.question.clone(),
        context_json: c.context_json.clone(),
        status: c.status.clone(),
        created_at: Some(time::to_proto(c.created_at)),
        response: c.answer.as_ref().map(|a| {
            let header = |name: &str| a.signed.header_values(name).collect::<Vec<_>>().join(", ");
            pb::SignedResponse {
                answer: a.text.clone(),
                answered_at: Some(time::to_proto(a.answered_at)),
                key_id: a.key_id.clone(),
                signature_input: header("signature-input"),
                signature: header("signature"),
                content_digest: header("content-digest"),
                signed_request: Some(a.signed.to_proto()),
            }
        }),
        delivery: c.delivery.as_ref().map(|d| pb::Delivery {
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            last_error: d.last_error.clone().unwrap_or_default(),
            delivered_at: d.delivered_at.map(time::to_proto),
        }),
    }
}

fn payload_key(k: &PayloadKey) -> pb::PayloadKey {
    pb::PayloadKey {
        kty: "OKP".into(),
        crv: "Ed25519".into(),
        kid: k.kid.clone(),
        x: k.public_x.clone(),
        declared_at: Some(time::to_proto(k.declared_at)),
        status: k.status.clone(),
    }
}

fn page(request: Option<&PageRequest>) -> Result<Page, Error> {
    Page::from_proto(request).map_err(Error::from)
}

fn signed(request: Option<&keyplane_proto::types::v1::HttpRequest>) -> Result<Message, Error> {
    request.map(Message::from_proto).ok_or_else(|| {
        Error::InvalidSignature(keyplane_common::httpsig::Refusal::Malformed("no signed request".into()))
    })
}

#[tonic::async_trait]
impl AdvisorsService for AdvisorsGrpc {
    async fn register_advisor(
        &self,
        request: Request<pb::RegisterAdvisorRequest>,
    ) -> Result<Response<pb::Advisor>, Status> {
        let (caller, r) = split(request)?;
        let registered = self.service.register(&caller, &r.org_id, &r.name, &r.description, &r.endpoint_url).await?;
        Ok(Response::new(advisor(&registered)))
    }

    async fn list_advisors(
        &self,
        request: Request<pb::ListAdvisorsRequest>,
    ) -> Result<Response<pb::ListAdvisorsResponse>, Status> {
        let (caller, r) = split(request)?;
        let page = page(r.page.as_ref())?;
        let listed = self.service.list(&caller, &r.org_id, page).await?;
        let (listed, next_cursor) = page.split(listed, |a| a.id);
        Ok(Response::new(pb::ListAdvisorsResponse {
            advisors: listed.iter().map(advisor).collect(),
            page: Some(PageInfo { next_cursor }),
        }))
    }

    async fn get_advisor(&self, request: Request<pb::GetAdvisorRequest>) -> Result<Response<pb::Advisor>, Status> {
        let (caller, r) = split(request)?;
        Ok(Response::new(advisor(&self.service.get(&caller, &r.advisor_id).await?)))
    }

    async fn consult(&self, request: Request<pb::ConsultRequest>) -> Result<Response<pb::Consultation>, Status> {
        let (caller, r) = split(request)?;
        let created = self.service.consult(&caller, &r.advisor_id, &r.question, &r.context_json).await?;
        Ok(Response::new(consultation(&created)))
    }

    async fn get_consultation(
        &self,
        request: Request<pb::GetConsultationRequest>,
    ) -> Result<Response<pb::Consultation>, Status> {
        let (caller, r) = split(request)?;
        Ok(Response::new(consultation(&self.service.consultation(&caller, &r.consultation_id).await?)))
    }

    async fn declare_payload_key(
        &self,
        request: Request<pb::DeclarePayloadKeyRequest>,
    ) -> Result<Response<pb::PayloadKey>, Status> {
        let (caller, r) = split(request)?;
        let declared = self.service.declare_key(&caller, &r.advisor_id, &signed(r.signed_request.as_ref())?).await?;
        Ok(Response::new(payload_key(&declared)))
    }

    async fn list_payload_keys(
        &self,
        request: Request<pb::ListPayloadKeysRequest>,
    ) -> Result<Response<pb::ListPayloadKeysResponse>, Status> {
        let keys = self.service.keys(&request.into_inner().advisor_id).await?;
        Ok(Response::new(pb::ListPayloadKeysResponse { keys: keys.iter().map(payload_key).collect() }))
    }

    async fn retire_payload_key(
        &self,
        request: Request<pb::RetirePayloadKeyRequest>,
    ) -> Result<Response<pb::PayloadKey>, Status> {
        let (caller, r) = split(request)?;
        Ok(Response::new(payload_key(&self.service.retire_key(&caller, &r.advisor_id, &r.key_id).await?)))
    }

    async fn respond_to_consultation(
        &self,
        request: Request<pb::RespondToConsultationRequest>,
    ) -> Result<Response<pb::Consultation>, Status> {
        let (caller, r) = split(request)?;
        let message = signed(r.signed_request.as_ref())?;
        let answered = self.service.respond(&caller, &r.advisor_id, &r.consultation_id, &message).await?;
        Ok(Response::new(consultation(&answered)))
    }

    async fn list_delivery_keys(
        &self,
        _: Request<pb::ListDeliveryKeysRequest>,
    ) -> Result<Response<pb::ListPayloadKeysResponse>, Status> {
        let keys = self
            .service
            .delivery_keys
            .public()
            .iter()
            .map(|(kid, x, created_at)| pb::PayloadKey {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                kid: kid.clone(),
                x: x.clone(),
                declared_at: Some(time::to_proto(*created_at)),
                status: "active".into(),
            })
            .collect();
        Ok(Response::new(pb::ListPayloadKeysResponse { keys }))
    }
}
