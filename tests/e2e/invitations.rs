//! Joining an org: an invitation, answered from a verified address. Email verification
//! through the mailer (the development mailbox here).

use keyplane_e2e::{Api, Platform, User};
use serde_json::json;

async fn invite(api: &Api, bearer: &str, org: &str, email: &str, role: &str) -> keyplane_e2e::Reply {
    api.post(&format!("/api/v1/developers/orgs/{org}/invitations"), Some(bearer), json!({"email": email, "role": role}))
        .await
}

async fn member_ids(api: &Api, owner: &User, org: &str) -> Vec<String> {
    let listed = api.get(&format!("/api/v1/developers/orgs/{org}/members"), Some(&owner.token)).await;
    listed.body["data"].as_array().unwrap().iter().map(|m| m["user_id"].as_str().unwrap().to_owned()).collect()
}

/// Security review item 3: an impostor signs up with the invitee's address before the
/// invitation. Adding that address used to make the impostor a member at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impostor_with_the_invited_address_cannot_join() {
    let p = Platform::start().await;
    let owner = p.api.signup().await;
    let (org, _) = p.api.dev_org(&owner, false).await;
    let address = format!("cfo-{}@victim.example", uuid::Uuid::new_v4().simple());
    let impostor = p
        .api
        .post("/api/v1/auth/signup", None, json!({"email": address, "password": "correct horse battery staple"}))
        .await;
    assert_eq!(impostor.status, 201, "signing up still gives a session at once: {}", impostor.text);
    assert_eq!(impostor.body["user"]["email_verified"], false);
    let impostor_token = impostor.str("access_token");
    let impostor_id = impostor.body["user"]["id"].as_str().unwrap().to_owned();

    let added = p
        .api
        .post(
            &format!("/api/v1/developers/orgs/{org}/members"),
            Some(&owner.token),
            json!({"email": address, "role": "admin"}),
        )
        .await;
    assert_eq!(added.status, 202, "adding a member invites it: {}", added.text);
    assert_eq!((added.str("status"), added.str("role")), ("pending".to_owned(), "admin".to_owned()));
    assert!(!member_ids(&p.api, &owner, &org).await.contains(&impostor_id), "nobody joins before accepting");

    let mine = p.api.get("/api/v1/invitations", Some(&impostor_token)).await;
    assert_eq!((mine.status, mine.body["data"].clone()), (200, json!([])), "an unverified address sees none");
    let id = added.str("id");
    let accept = p.api.post(&format!("/api/v1/invitations/{id}/accept"), Some(&impostor_token), json!({})).await;
    assert_eq!((accept.status, accept.error_code()), (403, "email_unverified"));
    let decline = p.api.post(&format!("/api/v1/invitations/{id}/decline"), Some(&impostor_token), json!({})).await;
    assert_eq!((decline.status, decline.error_code()), (403, "email_unverified"));
    assert!(!member_ids(&p.api, &owner, &org).await.contains(&impostor_id));

    // Anybody else, verified or not, is told the invitation does not exist.
    let stranger = p.api.verified_signup().await;
    let other = p.api.post(&format!("/api/v1/invitations/{id}/accept"), Some(&stranger.token), json!({})).await;
    assert_eq!((other.status, other.error_code()), (404, "invitation_not_found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invitee_joins_by_accepting_from_its_verified_address() {
    let p = Platform::start().await;
    let owner = p.api.signup().await;
    let (org, _) = p.api.dev_org(&owner, false).await;
    let invitee = p.api.signup().await;
    let invited = invite(&p.api, &owner.token, &org, &invitee.email, "member").await;
    assert_eq!(invited.status, 201, "{}", invited.text);
    let id = invited.str("id");
    let expires = chrono::DateTime::parse_from_rfc3339(&invited.str("expires_at")).unwrap();
    let week = chrono::Utc::now() + chrono::Duration::days(7);
    assert!((expires.timestamp() - week.timestamp()).abs() < 60, "invitations last 7 days");

    // The mailer told the address.
    let mails = p.api.mailbox(&invitee.email, "invitation").await;
    assert_eq!(mails.first().map(|m| m["invitation_id"].clone()), Some(json!(id)), "{mails:?}");
    assert!(mails[0]["body"].as_str().unwrap().contains("Acme Corp"));

    p.api.verify_email(&invitee).await;
    let mine = p.api.get("/api/v1/invitations", Some(&invitee.token)).await;
    assert_eq!(mine.body["data"][0]["id"], id.as_str(), "{}", mine.text);
    assert_eq!(mine.body["data"][0]["org_name"], "Acme Corp");

    let accepted = p.api.post(&format!("/api/v1/invitations/{id}/accept"), Some(&invitee.token), json!({})).await;
    assert_eq!((accepted.status, accepted.str("role")), (200, "member".to_owned()), "{}", accepted.text);
    assert!(member_ids(&p.api, &owner, &org).await.contains(&invitee.id));
    let again = p.api.post(&format!("/api/v1/invitations/{id}/accept"), Some(&invitee.token), json!({})).await;
    assert_eq!((again.status, again.error_code()), (409, "invitation_not_pending"));

    let listed = p.api.get(&format!("/api/v1/developers/orgs/{org}/invitations"), Some(&owner.token)).await;
    assert_eq!(listed.body["data"][0]["status"], "accepted", "{}", listed.text);
    let audit = p.api.get(&format!("/api/v1/developers/orgs/{org}/audit-log"), Some(&owner.token)).await;
    let actions: Vec<&str> =
        audit.body["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"invitation.created") && actions.contains(&"invitation.accepted"), "{actions:?}");
    assert!(actions.contains(&"member.added"), "{actions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_are_declined_revoked_and_never_doubled() {
    let p = Platform::start().await;
    let owner = p.api.signup().await;
    let (org, _) = p.api.dev_org(&owner, false).await;
    let invitee = p.api.verified_signup().await;

    let first = invite(&p.api, &owner.token, &org, &invitee.email, "member").await;
    let twice = invite(&p.api, &owner.token, &org, &invitee.email.to_uppercase(), "admin").await;
    assert_eq!((twice.status, twice.error_code()), (409, "already_invited"));
    let declined =
        p.api.post(&format!("/api/v1/invitations/{}/decline", first.str("id")), Some(&invitee.token), json!({})).await;
    assert_eq!((declined.status, declined.str("status")), (200, "declined".to_owned()), "{}", declined.text);

    let second = invite(&p.api, &owner.token, &org, &invitee.email, "member").await;
    let path = format!("/api/v1/developers/orgs/{org}/invitations/{}", second.str("id"));
    let revoked = p.api.delete(&path, Some(&owner.token)).await;
    assert_eq!((revoked.status, revoked.str("status")), (200, "revoked".to_owned()), "{}", revoked.text);
    let late =
        p.api.post(&format!("/api/v1/invitations/{}/accept", second.str("id")), Some(&invitee.token), json!({})).await;
    assert_eq!((late.status, late.error_code()), (409, "invitation_not_pending"));
    assert!(!member_ids(&p.api, &owner, &org).await.contains(&invitee.id));

    let statuses: Vec<String> =
        p.api.get(&format!("/api/v1/developers/orgs/{org}/invitations"), Some(&owner.token)).await.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["status"].as_str().unwrap().to_owned())
            .collect();
    assert_eq!(statuses, ["declined", "revoked"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_owners_session_invites_an_owner() {
    let p = Platform::start().await;
    let (owner, admin) = (p.api.signup().await, p.api.verified_signup().await);
    let (org, _) = p.api.dev_org(&owner, false).await;
    p.api.join(&owner.token, &org, &admin, "admin").await;
    let by_admin = invite(&p.api, &admin.token, &org, "boss@example.com", "owner").await;
    assert_eq!((by_admin.status, by_admin.error_code()), (403, "owner_session_required"));
    let (_, owner_key) = p.api.key(&owner.token, &org, json!({"name": "k", "environment": "test"})).await;
    let by_key = invite(&p.api, &owner_key, &org, "boss@example.com", "owner").await;
    assert_eq!((by_key.status, by_key.error_code()), (403, "forbidden"), "never a key");
    let by_owner = invite(&p.api, &owner.token, &org, "boss@example.com", "owner").await;
    assert_eq!(by_owner.status, 201, "{}", by_owner.text);
    let bad = invite(&p.api, &owner.token, &org, "not an address", "member").await;
    assert_eq!((bad.status, bad.error_code()), (400, "validation_failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_tokens_work_once_and_can_be_resent() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let token = p.api.mailbox(&user.email, "verify_email").await[0]["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("kpev_"));
    let resent = p.api.post("/api/v1/auth/verify-email/resend", Some(&user.token), json!({})).await;
    assert_eq!(resent.status, 202, "{}", resent.text);
    let two = keyplane_e2e::eventually(std::time::Duration::from_secs(10), || async {
        p.api.mailbox(&user.email, "verify_email").await.len() == 2
    })
    .await;
    assert!(two, "a second verification mail");

    let verified = p.api.post("/api/v1/auth/verify-email", None, json!({"token": token})).await;
    assert_eq!((verified.status, verified.body["user"]["email_verified"].clone()), (200, json!(true)));
    let spent = p.api.post("/api/v1/auth/verify-email", None, json!({"token": token})).await;
    assert_eq!((spent.status, spent.error_code()), (400, "invalid_verification_token"));
    let bogus = p.api.post("/api/v1/auth/verify-email", None, json!({"token": "kpev_nope"})).await;
    assert_eq!((bogus.status, bogus.error_code()), (400, "invalid_verification_token"));
    let again = p.api.post("/api/v1/auth/verify-email/resend", Some(&user.token), json!({})).await;
    assert_eq!((again.status, again.error_code()), (409, "already_verified"));
    let me = p.api.get("/api/v1/auth/me", Some(&user.token)).await;
    assert_eq!(me.body["user"]["email_verified"], true);
}

/// With SMTP configured, verification mail goes out by SMTP (and the token in it works).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_out_by_smtp_when_it_is_configured() {
    let sink = keyplane_e2e::smtp::SmtpSink::start().await;
    let p = Platform::start_with(&[("KEYPLANE_SMTP_URL", sink.url())]).await;
    let user = p.api.signup().await;
    let sent = keyplane_e2e::eventually(std::time::Duration::from_secs(10), || async {
        sink.mails().iter().any(|m| m.to.contains(&user.email))
    })
    .await;
    assert!(sent, "no mail reached the SMTP server");
    let mail = sink.mails().into_iter().find(|m| m.to.contains(&user.email)).unwrap();
    assert!(mail.data.contains("Subject: Verify your email address"), "{}", mail.data);
    let token = mail.data.split_whitespace().find(|w| w.contains("kpev_")).expect("a token in the mail");
    let token = &token[token.find("kpev_").unwrap()..];
    let token: String = token.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect();
    let verified = p.api.post("/api/v1/auth/verify-email", None, json!({"token": token})).await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    assert!(
        p.api.get(&format!("/dev/mailbox?to={}", user.email), None).await.body == json!([]),
        "SMTP instead of the mailbox"
    );
}
