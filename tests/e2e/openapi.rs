//! The OpenAPI document: complete, true, and named as the seed's SDK names things. Every
//! other test checks the answers it gets against the document too (see `keyplane_e2e::contract`):
//! a route served but not documented fails there.

use std::collections::HashSet;

use keyplane_e2e::{Platform, contract};
use reqwest::Method;
use serde_json::Value;

/// Seed 001's operations: its function names, methods and paths (under `/api/v1`).
const SEED_OPERATIONS: &[(&str, &str, &str)] = &[
    ("listOrgs", "GET", "/developers/orgs"),
    ("createOrg", "POST", "/developers/orgs"),
    ("getOrg", "GET", "/developers/orgs/{org_id}"),
    ("updateOrg", "PUT", "/developers/orgs/{org_id}"),
    ("deleteOrg", "DELETE", "/developers/orgs/{org_id}"),
    ("listOrgMembers", "GET", "/developers/orgs/{org_id}/members"),
    ("listApiKeys", "GET", "/developers/orgs/{org_id}/keys"),
    ("createApiKey", "POST", "/developers/orgs/{org_id}/keys"),
    ("revokeApiKey", "DELETE", "/developers/orgs/{org_id}/keys/{key_id}"),
    ("regenerateApiKey", "POST", "/developers/orgs/{org_id}/keys/{key_id}/regenerate"),
    ("getOrgUsage", "GET", "/developers/orgs/{org_id}/usage"),
    ("registerAdvisor", "POST", "/advisors/register"),
    ("consultAdvisor", "POST", "/advisors/consult"),
    ("declareAdvisorPayloadKey", "POST", "/advisors/{id}/payload-key"),
    ("listMcpTokens", "GET", "/mcp-tokens"),
    ("createMcpToken", "POST", "/mcp-tokens"),
    ("revokeMcpToken", "DELETE", "/mcp-tokens/{id}"),
];

async fn document(p: &Platform, path: &str) -> (Value, String) {
    let response = reqwest::get(format!("{}{path}", p.api.base)).await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    assert_eq!(response.headers()["content-type"], "application/json");
    let text = response.text().await.unwrap();
    (serde_json::from_str(&text).unwrap(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_openapi_3_1_named_as_the_seed_and_secured_by_the_contract_credentials() {
    let p = Platform::start().await;
    let (doc, text) = document(&p, "/api/v1/openapi.json").await;
    let (_, at_root) = document(&p, "/openapi.json").await;
    assert_eq!(text, at_root, "one document at both addresses");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    assert_eq!(doc["servers"][0]["url"], "/api/v1", "paths read like the seed's, under /api/v1");

    for (id, method, path) in SEED_OPERATIONS {
        let operation = &doc["paths"][path][method.to_ascii_lowercase()];
        assert_eq!(operation["operationId"], *id, "{method} {path}");
    }
    let mut ids = HashSet::new();
    for served in contract::operations(&doc) {
        assert!(!served.id.is_empty(), "{} {} has no operationId", served.method, served.path);
        // The same operation may be served under two servers; an id names one operation.
        ids.insert((served.id.clone(), served.method.clone()));
        let responses = served.responses.as_object().unwrap();
        // Census verbs are reserved: none is served yet, so none succeeds.
        let reserved = served.id == "censusVerb";
        assert!(reserved || responses.keys().any(|s| s.starts_with('2')), "{}: no success response", served.id);
        assert_eq!(
            responses["default"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/Error",
            "{}: errors are the contract's one shape",
            served.id
        );
    }
    let unique: HashSet<_> = ids.iter().map(|(id, _)| id).collect();
    assert_eq!(unique.len(), ids.len(), "operation ids are unique");

    let schemes = &doc["components"]["securitySchemes"];
    for scheme in ["session", "api_key", "mcp_token", "http_signature"] {
        assert!(schemes[scheme].is_object(), "no {scheme} security scheme");
    }
    let security = |path: &str, method: &str| doc["paths"][path][method]["security"].to_string();
    assert!(security("/developers/orgs", "post").contains("api_key"), "management takes a key");
    assert!(security("/developers/orgs", "post").contains("session"), "management takes a session");
    assert!(
        security("/mcp-tokens", "post").contains("session") && !security("/mcp-tokens", "post").contains("api_key")
    );
    assert!(security("/mcp", "post").contains("mcp_token"));
    assert!(security("/advisors/{id}/payload-key", "post").contains("http_signature"));
    assert!(security("/developer/families", "get").contains("read:families"), "scopes are named");

    // The seed's one-time secrets, under the seed's names.
    let schemas = &doc["components"]["schemas"];
    let secret_of = |name: &str, field: &str| schemas[name].to_string().contains(&format!("\"{field}\""));
    assert!(secret_of("DeveloperApiKeyWithSecret", "key"), "{}", schemas["DeveloperApiKeyWithSecret"]);
    assert!(secret_of("CreatedMcpToken", "plain"), "{}", schemas["CreatedMcpToken"]);
    let error = &schemas["Error"];
    for field in ["error", "code", "message"] {
        assert!(error["required"].as_array().unwrap().iter().any(|f| f == field), "Error.{field} is required");
    }
    p.stop().await.unwrap();
}

/// Every documented operation is served: without credentials each answers something other
/// than the router's "no such route" or "method not allowed".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served() {
    let p = Platform::start().await;
    let (doc, _) = document(&p, "/api/v1/openapi.json").await;
    let operations = contract::operations(&doc);
    assert!(operations.len() >= 55, "{} operations", operations.len());
    let http = reqwest::Client::new();
    for served in operations {
        let path = served
            .path
            .split('/')
            .map(|s| if s.starts_with('{') { "0190b7c4-6f7b-7a3c-9d1e-2f3a4b5c6d7e" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(served.method.as_bytes()).unwrap();
        let mut request = http.request(method.clone(), format!("{}{path}", p.api.base));
        if method == Method::POST || method == Method::PUT || method == Method::PATCH {
            request = request.header("content-type", "application/json").body("{}");
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_ne!(status, 405, "{} {path} ({}) is documented but not served", served.method, served.id);
        assert!(
            !(status == 404 && body.contains("no such route")),
            "{} {path} ({}) is documented but not served",
            served.method,
            served.id
        );
    }
    p.stop().await.unwrap();
}

/// The check every test's answers go through refuses what it should: a served route the
/// document lacks, a success it does not name, a field it does not describe, a wrong type.
#[test]
fn the_answer_check_refuses_undocumented_routes_statuses_and_fields() {
    let document = serde_json::json!({
        "openapi": "3.1.0",
        "servers": [{"url": "/api/v1"}],
        "paths": {"/things/{id}": {"get": {"operationId": "getThing", "responses": {
            "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
            "default": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        }}}},
        "components": {"schemas": {
            "Thing": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
            "Error": {"type": "object", "required": ["code"], "properties": {"code": {"type": "string"}}}
        }}
    });
    let contract = keyplane_e2e::contract::Contract::new(&document);
    let json = "application/json";
    assert!(contract.check("GET", "/api/v1/things/7", 200, json, r#"{"id":"7"}"#).is_ok());
    assert!(contract.check("GET", "/api/v1/things/7", 404, json, r#"{"code":"not_found"}"#).is_ok());
    assert!(contract.check("GET", "/api/v1/things/7", 200, json, r#"{"id":"7","secret":"x"}"#).is_err());
    assert!(contract.check("GET", "/api/v1/things/7", 200, json, r#"{"id":7}"#).is_err());
    assert!(contract.check("GET", "/api/v1/things/7", 201, json, r#"{"id":"7"}"#).is_err());
    assert!(contract.check("GET", "/api/v1/things/7", 500, json, r#"{"message":"no code"}"#).is_err());
    assert!(contract.check("GET", "/api/v1/other", 200, json, "{}").is_err());
    assert!(contract.check("GET", "/api/v1/other", 404, json, r#"{"code":"not_found"}"#).is_ok());
}

/// The document's `security` is true about keys: an owner's full-permission key is never
/// refused for being a key where the document says a key may call, and never let in where
/// the document names only a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_credentials_are_the_ones_each_route_takes() {
    let p = Platform::start().await;
    let owner = p.api.verified_signup().await;
    let (org, key) = p.api.dev_org(&owner, true).await;
    let key = key.expect("a full-permission bootstrap key");
    let (doc, _) = document(&p, "/api/v1/openapi.json").await;
    let http = reqwest::Client::new();
    let mut checked = 0;
    for served in contract::operations(&doc) {
        let security = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(|item| item.get(served.method.to_ascii_lowercase()))
            .find(|op| op["operationId"] == served.id.as_str())
            .map(|op| op["security"].to_string())
            .unwrap_or_default();
        let takes_key = security.contains("api_key");
        let session_only = security.contains("session") && !takes_key;
        if !takes_key && !session_only {
            continue;
        }
        let path = served
            .path
            .replace("{org_id}", &org)
            .split('/')
            .map(|s| if s.starts_with('{') { "0190b7c4-6f7b-7a3c-9d1e-2f3a4b5c6d7e" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(served.method.as_bytes()).unwrap();
        // DELETE of the org itself would end the test's org: its key path is the same as GET's.
        if served.id == "deleteOrg" {
            continue;
        }
        let mut request = http.request(method.clone(), format!("{}{path}", p.api.base)).bearer_auth(&key);
        if method == Method::POST || method == Method::PUT || method == Method::PATCH {
            let body = if served.id == "updateOrgMemberRole" {
                r#"{"role":"member"}"#
            } else {
                r#"{"email":"x@example.com","role":"member"}"#
            };
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        let refused_as_key = body.contains("session_required") || body.contains("signed-in user");
        if takes_key {
            assert!(
                !refused_as_key && status != 401,
                "{} is documented to take a key but refuses one: {status} {body}",
                served.id
            );
        } else {
            // Refused as a key, by the gateway (401 session_required) or by the service
            // (403: a signed-in user's action), never for another reason.
            assert!(
                (status == 401 || status == 403) && refused_as_key,
                "{} is documented session-only but a key got {status} {body}",
                served.id
            );
        }
        checked += 1;
    }
    assert!(checked >= 30, "{checked} operations checked");
    p.stop().await.unwrap();
}
