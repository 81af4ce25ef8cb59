//! The internal gRPC surface: health and reflection on every service, and no principal
//! believed from a caller that cannot prove it is inside the system.

use keyplane_common::{
    config::Target,
    error::code_of,
    internal_auth::{InternalAuth, METADATA_KEY},
    principal::{Principal, UserPrincipal},
};
use keyplane_e2e::Platform;
use keyplane_proto::{
    keys::v1::{ListKeysRequest, keys_service_client::KeysServiceClient},
    orgs::v1::{ListOrgsRequest, orgs_service_client::OrgsServiceClient},
};
use tonic::{Code, Request};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_answers_health_and_reflection() {
    let p = Platform::start().await;
    for (target, name) in [
        (Target::Identity, "keyplane.identity.v1.IdentityService"),
        (Target::Keys, "keyplane.keys.v1.KeysService"),
        (Target::Orgs, "keyplane.orgs.v1.OrgsService"),
        (Target::Usage, "keyplane.usage.v1.UsageService"),
        (Target::Advisors, "keyplane.advisors.v1.AdvisorsService"),
    ] {
        let mut health = HealthClient::new(p.channel(target));
        for service in ["", name] {
            let status =
                health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner().status();
            assert_eq!(status, ServingStatus::Serving, "{target} {service:?}");
        }
        let mut reflection = ServerReflectionClient::new(p.channel(target));
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers =
            reflection.server_reflection_info(futures_util::stream::iter([request])).await.unwrap().into_inner();
        let answer = answers.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
            panic!("a service list")
        };
        let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
        assert!(names.contains(&name) && names.contains(&"grpc.health.v1.Health"), "{target}: {names:?}");

        // The older protocol, for clients that speak only it (grpcio-reflection, old grpcurl).
        use tonic_reflection::pb::v1alpha as alpha;
        let mut reflection = alpha::server_reflection_client::ServerReflectionClient::new(p.channel(target));
        let request = alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                name.to_owned(),
            )),
        };
        let mut answers =
            reflection.server_reflection_info(futures_util::stream::iter([request])).await.unwrap().into_inner();
        let answer = answers.message().await.unwrap().unwrap();
        let Some(alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
            answer.message_response
        else {
            panic!("{target}: v1alpha reflection answers the file that declares {name}")
        };
        assert!(!files.file_descriptor_proto.is_empty(), "{target}");
    }
}

fn admin_of_everything() -> Principal {
    Principal::User(UserPrincipal {
        user_id: uuid::Uuid::now_v7(),
        session_id: None,
        email: "mallory@example.com".into(),
        name: "Mallory".into(),
        issuer: "keyplane".into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_principal_sent_straight_to_a_service_is_refused() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, true).await;
    let mut keys = KeysServiceClient::new(p.channel(Target::Keys));
    let list = || ListKeysRequest { org_id: org.clone(), page: None };

    // No proof at all, a principal in plain metadata, a token signed with another secret,
    // and an unsigned token: all refused before the handler runs.
    let mut plain = Request::new(list());
    plain
        .metadata_mut()
        .insert("x-keyplane-principal", serde_json::to_string(&admin_of_everything()).unwrap().parse().unwrap());
    let mut other_secret = Request::new(list());
    InternalAuth::new("gateway", &[b"not the platform's secret, but long enough".to_vec()])
        .attach(other_secret.metadata_mut(), Some(&admin_of_everything()));
    let mut unsigned = Request::new(list());
    let payload = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        br#"{"iss":"gateway","aud":"keyplane-internal","exp":9999999999}"#,
    );
    unsigned.metadata_mut().insert(METADATA_KEY, format!("eyJhbGciOiJub25lIn0.{payload}.").parse().unwrap());
    for (case, request) in [
        ("none", Request::new(list())),
        ("plain metadata", plain),
        ("other secret", other_secret),
        ("unsigned", unsigned),
    ] {
        let status = keys.list_keys(request).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{case}");
        assert_eq!(code_of(&status), "internal_auth_required", "{case}");
    }

    // With the platform's secret the same call is believed, and still authorized:
    // a user who is not a member gets NOT_FOUND, the member gets the keys.
    let auth = p.internal_auth("gateway");
    let mut stranger = Request::new(list());
    auth.attach(stranger.metadata_mut(), Some(&admin_of_everything()));
    assert_eq!(keys.list_keys(stranger).await.unwrap_err().code(), Code::NotFound);
    let member = Principal::User(UserPrincipal {
        user_id: user.id.parse().unwrap(),
        session_id: None,
        email: user.email.clone(),
        name: "Dev".into(),
        issuer: "keyplane".into(),
    });
    let mut request = Request::new(list());
    auth.attach(request.metadata_mut(), Some(&member));
    assert_eq!(keys.list_keys(request).await.unwrap().into_inner().keys.len(), 1);

    let mut orgs = OrgsServiceClient::new(p.channel(Target::Orgs));
    assert_eq!(orgs.list_orgs(ListOrgsRequest { page: None }).await.unwrap_err().code(), Code::Unauthenticated);
}

/// Bulk revocation (an org deleted, a member gone) is the orgs service's to ask, acting as
/// itself: another service holding the internal secret, or one claiming to be orgs, or a
/// user, is refused, and nothing is revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_orgs_may_revoke_an_orgs_or_a_members_credentials() {
    use keyplane_proto::keys::v1::{RevokeMemberCredentialsRequest, RevokeOrgCredentialsRequest};
    let p = Platform::start().await;
    let (owner, org) = p.api.verified_owner().await;
    let (_, key) = p.api.key(&owner.token, &org, serde_json::json!({"name": "ci", "environment": "test"})).await;
    let user = Principal::User(UserPrincipal {
        user_id: owner.id.parse().unwrap(),
        session_id: None,
        email: owner.email.clone(),
        name: String::new(),
        issuer: "keyplane".into(),
    });
    let service = |name: &str| Principal::Service { name: name.into() };
    let mut keys = KeysServiceClient::new(p.channel(Target::Keys));
    for (signer, acting) in
        [("gateway", service("gateway")), ("usage", service("orgs")), ("advisors", service("advisors")), ("orgs", user)]
    {
        let mut whole = Request::new(RevokeOrgCredentialsRequest { org_id: org.clone() });
        p.internal_auth(signer).attach(whole.metadata_mut(), Some(&acting));
        let refused = keys.revoke_org_credentials(whole).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "org's credentials, {signer} acting as {acting:?}");
        let mut member = Request::new(RevokeMemberCredentialsRequest {
            org_id: org.clone(),
            user_id: owner.id.clone(),
            member_since: None,
        });
        p.internal_auth(signer).attach(member.metadata_mut(), Some(&acting));
        let refused = keys.revoke_member_credentials(member).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "member's credentials, {signer} acting as {acting:?}");
    }
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&key)).await.status, 200, "nothing was revoked");
    // The orgs service itself may: the key stops.
    let mut whole = Request::new(RevokeOrgCredentialsRequest { org_id: org.clone() });
    p.internal_auth("orgs").attach(whole.metadata_mut(), Some(&service("orgs")));
    keys.revoke_org_credentials(whole).await.unwrap();
    let refused = keyplane_e2e::eventually(std::time::Duration::from_secs(2), || async {
        p.api.get("/api/v1/developer/families", Some(&key)).await.status == 401
    })
    .await;
    assert!(refused, "revoked by orgs");
}
