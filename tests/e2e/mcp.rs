//! The MCP server at /mcp, through the official Rust MCP client over streamable HTTP: an
//! MCP token acts on its org within its scopes; nothing else gets in; a revoked token is
//! refused within a second.

use keyplane_e2e::{Api, Platform, User, eventually};
use rmcp::{
    ServiceExt,
    model::{CallToolRequestParams, CallToolResult},
    service::{RoleClient, RunningService},
    transport::{StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig},
};
use serde_json::{Value, json};

async fn connect(api: &Api, token: &str) -> Result<RunningService<RoleClient, ()>, String> {
    let config = StreamableHttpClientTransportConfig::with_uri(api.url("/mcp")).auth_header(token.to_owned());
    ().serve(StreamableHttpClientTransport::from_config(config)).await.map_err(|e| e.to_string())
}

async fn call(client: &RunningService<RoleClient, ()>, tool: &str, arguments: Value) -> (bool, Value) {
    let params =
        CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments.as_object().cloned().unwrap_or_default());
    let result: CallToolResult = client.call_tool(params).await.expect("the tool answers");
    let text = result.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone()).unwrap_or_default();
    (result.is_error != Some(true), serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn mcp_token(api: &Api, user: &User, org: &str, scopes: Value) -> (String, String) {
    let reply = api
        .post("/api/v1/mcp-tokens", Some(&user.token), json!({"name": "agent", "org_id": org, "scopes": scopes}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    (reply.str("id"), reply.str("plain"))
}

/// The routes that serve a key's cached grant take an API key only: an MCP token (cached
/// as a grant of its own kind) and a session are refused there, and verify tells an MCP
/// token nothing, though the token is valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_token_is_no_api_key_on_the_key_routes() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (_, token) = mcp_token(&p.api, &user, &org, json!(["read:families", "read:keys"])).await;
    for _ in 0..2 {
        for (path, bearer) in
            [("/api/v1/keys/self", &token), ("/api/v1/developer/families", &token), ("/api/v1/keys/self", &user.token)]
        {
            let reply = p.api.get(path, Some(bearer)).await;
            assert_eq!((reply.status, reply.error_code()), (401, "use_api_key"), "{path}");
        }
        let verdict = p.api.post("/api/v1/keys/verify", None, json!({"key": token})).await;
        assert_eq!(verdict.body, json!({"valid": false, "code": "invalid_api_key"}));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_lists_and_creates_keys_through_a_real_mcp_client() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (_, existing) = p.api.key(&user.token, &org, json!({"name": "existing", "environment": "test"})).await;
    let (token_id, token) =
        mcp_token(&p.api, &user, &org, json!(["read:keys", "write:keys", "read:families", "read:usage", "read:orgs"]))
            .await;

    let client = connect(&p.api, &token).await.expect("an MCP token connects");
    let tools: Vec<String> = client.list_all_tools().await.unwrap().into_iter().map(|t| t.name.to_string()).collect();
    for tool in [
        "whoami",
        "list_keys",
        "create_key",
        "revoke_key",
        "get_usage",
        "list_audit_events",
        "list_advisors",
        "consult_advisor",
    ] {
        assert!(tools.iter().any(|t| t == tool), "{tool} missing from {tools:?}");
    }
    let (ok, me) = call(&client, "whoami", json!({})).await;
    assert!(ok && me["org_id"] == org.as_str(), "{me}");

    let (ok, listed) = call(&client, "list_keys", json!({})).await;
    assert!(ok, "{listed}");
    assert_eq!(listed["data"][0]["name"], "existing");
    let (ok, created) = call(
        &client,
        "create_key",
        json!({"name": "made by an agent", "environment": "test", "scopes": ["read:families"]}),
    )
    .await;
    assert!(ok, "{created}");
    let secret = created["key"].as_str().unwrap().to_owned();
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&secret)).await.status, 200, "the agent's key works");
    // No more than the token holds: the scope check happens in the keys service.
    let (ok, refused) =
        call(&client, "create_key", json!({"name": "wider", "environment": "test", "scopes": ["write:orgs"]})).await;
    assert!(!ok && refused["code"] == "insufficient_scope", "{refused}");
    let (ok, usage) =
        call(&client, "get_usage", json!({"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"})).await;
    assert!(ok && usage["granularity"] == "hour", "{usage}");
    let (ok, advisors) = call(&client, "list_advisors", json!({})).await;
    assert!(ok && advisors["data"] == json!([]), "{advisors}");
    // The audit log is an admin's and needs write:orgs, which this token lacks.
    let (ok, audit) = call(&client, "list_audit_events", json!({})).await;
    assert!(!ok && audit["code"] == "insufficient_scope", "{audit}");
    drop(client);

    // Nothing but an MCP token gets in: a key, a session, nothing at all.
    for bearer in [existing.as_str(), user.token.as_str()] {
        let refused = connect(&p.api, bearer).await;
        assert!(refused.is_err(), "a non-MCP credential connected");
    }
    let bare = p.api.post("/mcp", None, json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await;
    assert_eq!((bare.status, bare.error_code()), (401, "unauthenticated"));
    let with_key =
        p.api.post("/mcp", Some(&existing), json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await;
    assert_eq!((with_key.status, with_key.error_code()), (401, "use_mcp_token"));

    // Revoked: refused within a second, a client already connected included.
    let client = connect(&p.api, &token).await.unwrap();
    assert_eq!(p.api.delete(&format!("/api/v1/mcp-tokens/{token_id}"), Some(&user.token)).await.status, 200);
    let refused = eventually(std::time::Duration::from_secs(1), || async {
        let params = CallToolRequestParams::new("whoami");
        client.call_tool(params).await.is_err()
    })
    .await;
    assert!(refused, "a revoked MCP token still called a tool");
    assert!(connect(&p.api, &token).await.is_err());
}

/// Whether `token` still acts on `org` through /mcp, as an agent would use it.
async fn acts_on(api: &Api, token: &str, org: &str) -> bool {
    let Ok(client) = connect(api, token).await else { return false };
    let params = CallToolRequestParams::new("whoami");
    let Ok(result) = client.call_tool(params).await else { return false };
    let text = result.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone()).unwrap_or_default();
    let me: Value = serde_json::from_str(&text).unwrap_or_default();
    result.is_error != Some(true) && me["org_id"] == org
}

/// The caller's listed token `id`, if any.
async fn listed(api: &Api, user: &User, id: &str) -> Option<Value> {
    let reply = api.get("/api/v1/mcp-tokens", Some(&user.token)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["data"].as_array().unwrap().iter().find(|t| t["id"] == id).cloned()
}

/// A raw call of /mcp with `token`: what a revoked token's holder sees.
async fn raw_mcp(api: &Api, token: &str) -> keyplane_e2e::Reply {
    api.post("/mcp", Some(token), json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await
}

/// A body /mcp cannot read gets the contract's answer, as on every other route: JSON that
/// is not JSON is 400 `invalid_json` naming where (rmcp's own answer was 415 "send
/// application/json"), and a credential is still checked first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_on_mcp_is_400_invalid_json() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (_, token) = mcp_token(&p.api, &user, &org, json!(["read:keys"])).await;
    let sent_as = |bearer: &str, content_type: &str| {
        p.api
            .http
            .post(p.api.url("/mcp"))
            .bearer_auth(bearer)
            .header("content-type", content_type)
            .header("accept", "application/json, text/event-stream")
            .body("{bad json")
    };
    let call = |bearer: &str| sent_as(bearer, "application/json");
    let reply = p.api.send(call(&token)).await;
    assert_eq!((reply.status, reply.error_code()), (400, "invalid_json"), "{}", reply.text);
    assert!(reply.body["message"].as_str().unwrap().contains("line 1 column"), "{}", reply.text);
    // JSON, but no JSON-RPC message: named, not rmcp's 415.
    let shapeless = p.api.send(call(&token).body("{}")).await;
    assert_eq!((shapeless.status, shapeless.error_code()), (400, "validation_failed"), "{}", shapeless.text);
    // Not sent as JSON at all: rmcp's 415 stands, in the contract's shape.
    let plain = p.api.send(sent_as(&token, "text/plain")).await;
    assert_eq!((plain.status, plain.error_code()), (415, "unsupported_media_type"), "{}", plain.text);
    let unknown = p.api.send(call("phosra_mcp_not_a_token")).await;
    assert_eq!(unknown.status, 401, "the credential first: {}", unknown.text);
    // A good call still goes through, its body passed on whole.
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}});
    let good = p.api.send(call(&token).body(initialize.to_string())).await;
    assert_eq!(good.status, 200, "{}", good.text);
    assert_eq!(good.body["id"], 1, "{}", good.text);
}

/// Revoking an MCP token takes its owner or an admin of its org: another plain member of
/// the org is told the token does not exist (404) and the token keeps working; an admin
/// revokes it, and it is refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_member_cannot_revoke_anothers_mcp_token_but_an_admin_can() {
    let p = Platform::start().await;
    let owner = p.api.signup().await;
    let (org, _) = p.api.dev_org(&owner, false).await;
    let (bob, carol, admin) =
        (p.api.verified_signup().await, p.api.verified_signup().await, p.api.verified_signup().await);
    p.api.join(&owner.token, &org, &bob, "member").await;
    p.api.join(&owner.token, &org, &carol, "member").await;
    p.api.join(&owner.token, &org, &admin, "admin").await;
    let (id, token) = mcp_token(&p.api, &bob, &org, json!(["read:keys"])).await;
    assert!(acts_on(&p.api, &token, &org).await, "the fresh token works");
    let path = format!("/api/v1/mcp-tokens/{id}");

    let refused = p.api.delete(&path, Some(&carol.token)).await;
    assert_eq!((refused.status, refused.error_code()), (404, "mcp_token_not_found"), "{}", refused.text);
    // Exactly what a token that does not exist answers.
    let unknown = p.api.delete(&format!("/api/v1/mcp-tokens/{}", uuid::Uuid::now_v7()), Some(&carol.token)).await;
    assert_eq!((unknown.status, unknown.error_code()), (404, "mcp_token_not_found"), "{}", unknown.text);
    let kept = listed(&p.api, &bob, &id).await.expect("bob's token is still listed");
    assert!(kept["revoked_at"].is_null(), "{kept}");
    assert!(acts_on(&p.api, &token, &org).await, "a plain member's refused revocation stopped the token");
    // Nor may a key, even the owner's full-permission one, nor the token itself: MCP tokens
    // are managed with a session.
    let owners_key = p.api.key(&owner.token, &org, json!({"name": "full", "environment": "live"})).await.1;
    for bearer in [owners_key.as_str(), token.as_str()] {
        let refused = p.api.delete(&path, Some(bearer)).await;
        assert_eq!(refused.status, 401, "{}", refused.text);
        assert_eq!(refused.error_code(), "session_required", "{}", refused.text);
    }
    assert!(acts_on(&p.api, &token, &org).await, "a refused key or token stopped the token");

    let revoked = p.api.delete(&path, Some(&admin.token)).await;
    assert_eq!(revoked.status, 200, "an admin revokes a member's token: {}", revoked.text);
    assert_eq!((revoked.str("id"), revoked.body["revoked_at"].is_string()), (id.clone(), true), "{}", revoked.text);
    let refused_now =
        eventually(std::time::Duration::from_secs(1), || async { raw_mcp(&p.api, &token).await.status == 401 }).await;
    assert!(refused_now, "the revoked token still opens /mcp after a second");
    let reply = raw_mcp(&p.api, &token).await;
    assert_eq!((reply.status, reply.error_code()), (401, "key_revoked"), "{}", reply.text);
    assert!(!acts_on(&p.api, &token, &org).await, "a revoked token still called a tool");
    assert!(listed(&p.api, &bob, &id).await.expect("still listed")["revoked_at"].is_string());
}

/// A user of another org, an owner there, cannot revoke this org's MCP token: 404, as
/// for a token that does not exist, and the token keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_orgs_user_cannot_revoke_an_mcp_token() {
    let p = Platform::start().await;
    let alice = p.api.signup().await;
    let (org, _) = p.api.dev_org(&alice, false).await;
    let (id, token) = mcp_token(&p.api, &alice, &org, json!(["read:keys"])).await;
    let mallory = p.api.signup().await;
    let (org_m, _) = p.api.dev_org(&mallory, false).await;
    assert_ne!(org, org_m);

    let refused = p.api.delete(&format!("/api/v1/mcp-tokens/{id}"), Some(&mallory.token)).await;
    assert_eq!((refused.status, refused.error_code()), (404, "mcp_token_not_found"), "{}", refused.text);
    let unknown = p.api.delete(&format!("/api/v1/mcp-tokens/{}", uuid::Uuid::now_v7()), Some(&mallory.token)).await;
    assert_eq!((unknown.status, unknown.error_code()), (404, "mcp_token_not_found"), "{}", unknown.text);
    assert!(listed(&p.api, &mallory, &id).await.is_none(), "another org's token is listed to Mallory");
    assert!(listed(&p.api, &alice, &id).await.expect("alice's token is still listed")["revoked_at"].is_null());
    assert!(acts_on(&p.api, &token, &org).await, "another org's user stopped the token");
}
