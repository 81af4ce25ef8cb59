//! The IdentityService gRPC surface: proto in, use case, proto out.

use std::sync::Arc;

use keyplane_common::{error::FieldViolation, internal_auth::split, mail::OutgoingMail, time};
use keyplane_proto::identity::v1::{self as pb, identity_service_server::IdentityService};
use tonic::{Request, Response, Status};

use crate::{
    domain::user::{DevMail, User},
    error::Error,
    service::{IssuedSession, Service},
};

pub struct IdentityGrpc {
    service: Arc<Service>,
}

impl IdentityGrpc {
    pub fn new(service: Arc<Service>) -> Self {
        Self { service }
    }
}

fn user(u: &User) -> pb::User {
    pb::User {
        id: u.id.to_string(),
        email: u.email.clone(),
        name: u.name.clone(),
        created_at: Some(time::to_proto(u.created_at)),
        email_verified: u.email_verified,
    }
}

fn dev_mail(m: &DevMail) -> pb::DevMail {
    pb::DevMail { mail: Some(m.mail.to_proto()), sent_at: Some(time::to_proto(m.sent_at)) }
}

fn tokens(issued: IssuedSession) -> pb::SessionTokens {
    pb::SessionTokens {
        user: Some(user(&issued.user)),
        access_token: issued.access_token,
        token_type: "Bearer".into(),
        expires_in: i64::try_from(issued.expires_in.as_secs()).unwrap_or(i64::MAX),
        refresh_token: issued.refresh_token.expose().to_owned(),
    }
}

#[tonic::async_trait]
impl IdentityService for IdentityGrpc {
    async fn signup(&self, request: Request<pb::SignupRequest>) -> Result<Response<pb::SessionTokens>, Status> {
        let r = request.into_inner();
        Ok(Response::new(tokens(self.service.signup(&r.email, &r.password, &r.name).await?)))
    }

    async fn login(&self, request: Request<pb::LoginRequest>) -> Result<Response<pb::SessionTokens>, Status> {
        let (caller, r) = split(request)?;
        Ok(Response::new(tokens(self.service.login(&r.email, &r.password, &caller).await?)))
    }

    async fn refresh(&self, request: Request<pb::RefreshRequest>) -> Result<Response<pb::SessionTokens>, Status> {
        Ok(Response::new(tokens(self.service.refresh(&request.into_inner().refresh_token).await?)))
    }

    async fn logout(&self, request: Request<pb::LogoutRequest>) -> Result<Response<pb::LogoutResponse>, Status> {
        let (caller, _) = split(request)?;
        self.service.logout(caller.principal()?).await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let r = request.into_inner();
        let (principal, revision) = self.service.authenticate(&r.credential, r.min_revision).await?;
        Ok(Response::new(pb::AuthenticateResponse { principal: Some((&principal).into()), revision }))
    }

    async fn get_jwks(&self, _: Request<pb::GetJwksRequest>) -> Result<Response<pb::GetJwksResponse>, Status> {
        Ok(Response::new(pb::GetJwksResponse { keys: self.service.bearer.ring.jwks() }))
    }

    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Result<Response<pb::User>, Status> {
        Ok(Response::new(user(&self.service.user(&request.into_inner().id).await?)))
    }

    async fn batch_get_users(
        &self,
        request: Request<pb::BatchGetUsersRequest>,
    ) -> Result<Response<pb::BatchGetUsersResponse>, Status> {
        let users = self.service.users(&request.into_inner().ids).await?;
        Ok(Response::new(pb::BatchGetUsersResponse { users: users.iter().map(user).collect() }))
    }

    async fn find_user_by_email(
        &self,
        request: Request<pb::FindUserByEmailRequest>,
    ) -> Result<Response<pb::User>, Status> {
        Ok(Response::new(user(&self.service.user_by_email(&request.into_inner().email).await?)))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::RotateSigningKeyResponse>, Status> {
        let (caller, _) = split(request)?;
        let kid = self.service.rotate_signing_key(&caller).await?;
        tracing::info!(kid = %kid, "session signing key rotated");
        Ok(Response::new(pb::RotateSigningKeyResponse { kid }))
    }

    async fn verify_email(&self, request: Request<pb::VerifyEmailRequest>) -> Result<Response<pb::User>, Status> {
        Ok(Response::new(user(&self.service.verify_email(&request.into_inner().token).await?)))
    }

    async fn resend_verification(
        &self,
        request: Request<pb::ResendVerificationRequest>,
    ) -> Result<Response<pb::ResendVerificationResponse>, Status> {
        let (caller, _) = split(request)?;
        self.service.resend_verification(caller.principal()?).await?;
        Ok(Response::new(pb::ResendVerificationResponse {}))
    }

    async fn send_mail(&self, request: Request<pb::SendMailRequest>) -> Result<Response<pb::SendMailResponse>, Status> {
        let mail = request.into_inner().mail.and_then(OutgoingMail::from_proto).ok_or_else(|| {
            Error::Validation(vec![FieldViolation::new("mail", "needs an id, an address and a kind")])
        })?;
        self.service.send_mail(mail).await?;
        Ok(Response::new(pb::SendMailResponse {}))
    }

    async fn list_dev_mailbox(
        &self,
        request: Request<pb::ListDevMailboxRequest>,
    ) -> Result<Response<pb::ListDevMailboxResponse>, Status> {
        let mails = self.service.dev_mailbox(&request.into_inner().to).await?;
        Ok(Response::new(pb::ListDevMailboxResponse { mails: mails.iter().map(dev_mail).collect() }))
    }
}
