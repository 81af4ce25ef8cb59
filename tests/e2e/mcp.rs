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
