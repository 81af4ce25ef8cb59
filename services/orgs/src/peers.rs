//! What the orgs service asks of its peers, in its own terms: users from identity (and
//! the mail it sends for us), credential revocation from keys. A peer's refusal passes
//! through to our caller as it is; a user that does not exist is None.

use std::sync::Arc;

use keyplane_common::{grpc::Outbound, internal_auth::Caller, mail::OutgoingMail, outbox, time};
use keyplane_proto::{
    identity::v1::{
        BatchGetUsersRequest, FindUserByEmailRequest, GetUserRequest, SendMailRequest, User,
        identity_service_client::IdentityServiceClient,
    },
    keys::v1::{RevokeMemberCredentialsRequest, RevokeOrgCredentialsRequest, keys_service_client::KeysServiceClient},
};
use tonic::{Code, Status, transport::Channel};
use uuid::Uuid;

use crate::{
    domain::{org::UserInfo, revocation::Revocation},
    error::Error,
};

#[derive(Clone)]
pub struct Identity {
    client: IdentityServiceClient<Channel>,
    outbound: Outbound,
}

fn user_info(user: User) -> Result<UserInfo, Error> {
    let id = Uuid::parse_str(&user.id).map_err(|_| Error::internal("identity answered a bad user id"))?;
    Ok(UserInfo { id, email: user.email, name: user.name, email_verified: user.email_verified })
}

/// NOT_FOUND from identity means "no such user"; anything else is the peer's to say.
fn found(answer: Result<tonic::Response<User>, Status>) -> Result<Option<UserInfo>, Error> {
    match answer {
        Ok(user) => user_info(user.into_inner()).map(Some),
        Err(status) if status.code() == Code::NotFound => Ok(None),
        Err(status) => Err(Error::upstream(status)),
    }
}

impl Identity {
    pub fn new(client: IdentityServiceClient<Channel>, outbound: Outbound) -> Self {
        Self { client, outbound }
    }

    pub async fn user(&self, id: Uuid) -> Result<Option<UserInfo>, Error> {
        let request = self.outbound.request(GetUserRequest { id: id.to_string() }, None);
        found(self.client.clone().get_user(request).await)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserInfo>, Error> {
        let request = self.outbound.request(FindUserByEmailRequest { email: email.to_owned() }, None);
        found(self.client.clone().find_user_by_email(request).await)
    }

    pub async fn users(&self, ids: &[Uuid]) -> Result<Vec<UserInfo>, Error> {
        let request =
            self.outbound.request(BatchGetUsersRequest { ids: ids.iter().map(Uuid::to_string).collect() }, None);
        let answer = self.client.clone().batch_get_users(request).await.map_err(Error::upstream)?;
        answer.into_inner().users.into_iter().map(user_info).collect()
    }

    /// The outbox relay's delivery: queued mail goes to identity's mailer, which sends each
    /// mail id once.
    pub fn deliver_mail(&self) -> outbox::Deliver {
        let identity = self.clone();
        Arc::new(move |payloads| {
            let identity = identity.clone();
            Box::pin(async move {
                for payload in payloads {
                    let Ok(mail) = serde_json::from_value::<OutgoingMail>(payload) else { continue };
                    let request = identity.outbound.request(SendMailRequest { mail: Some(mail.to_proto()) }, None);
                    identity.client.clone().send_mail(request).await.map_err(|status| status.to_string())?;
                }
                Ok(())
            })
        })
    }
}

#[derive(Clone)]
pub struct Keys {
    client: KeysServiceClient<Channel>,
    outbound: Outbound,
}

impl Keys {
    pub fn new(client: KeysServiceClient<Channel>, outbound: Outbound) -> Self {
        Self { client, outbound }
    }

    /// Delivers a revocation decided here, as this service (keys takes it from orgs
    /// only); the caller's origin goes along for the audit trail.
    pub async fn revoke(&self, caller: &Caller, revocation: &Revocation) -> Result<u32, Error> {
        let as_orgs = caller.as_service("orgs");
        let answer = match revocation {
            Revocation::Org { org_id } => {
                let request = RevokeOrgCredentialsRequest { org_id: org_id.to_string() };
                self.client.clone().revoke_org_credentials(self.outbound.request_as(request, &as_orgs)).await
            }
            Revocation::Member { org_id, user_id, member_since } => {
                let request = RevokeMemberCredentialsRequest {
                    org_id: org_id.to_string(),
                    user_id: user_id.to_string(),
                    member_since: Some(time::to_proto(*member_since)),
                };
                self.client.clone().revoke_member_credentials(self.outbound.request_as(request, &as_orgs)).await
            }
        };
        Ok(answer.map_err(Error::upstream)?.into_inner().revoked)
    }

    /// The outbox relay's delivery of revocations keys could not take at once.
    pub fn deliver_revocations(&self) -> outbox::Deliver {
        let keys = self.clone();
        Arc::new(move |payloads| {
            let keys = keys.clone();
            Box::pin(async move {
                let origin = Caller { service: "orgs".into(), ..Caller::default() };
                for payload in payloads {
                    let Ok(revocation) = serde_json::from_value::<Revocation>(payload) else { continue };
                    keys.revoke(&origin, &revocation).await.map_err(|e| e.to_string())?;
                }
                Ok(())
            })
        })
    }
}
