//! The OpenAPI 3.1 document of the public surface. Handlers carry `#[utoipa::path]`, and
//! the router is built from those annotations (`utoipa_axum::routes!`), so a route and its
//! description cannot drift apart. Published at `/api/v1/openapi.json` and `/openapi.json`.

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use keyplane_common::{error::FieldViolation, error_body::ErrorBody};
use serde_json::{Map, Value, json};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
};

/// Where the versioned routes live: the document's server, so that a client's base URL is
/// `https://host/api/v1` and its paths read like the seed's (`/developers/orgs`).
const BASE: &str = "/api/v1";

/// Operations served under [`BASE`] and at one more prefix: the document lists the path
/// once, with both servers (`/api/ensure-dev-org` is the seed's address for it).
const ALSO_AT: &[(&str, &str)] = &[("/openapi.json", "/"), ("/ensure-dev-org", "/api")];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Keyplane",
        description = "The developer control plane: accounts and sessions, orgs and members, API keys \
            (shown once, stored as SHA-256, scoped, pinned, expiring, revocable, rotatable with a grace \
            period), hourly usage, the audit log, advisors answering with RFC 9421 signatures, and MCP \
            tokens. Every non-2xx response is an `Error`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        openapi,
        described::mcp,
        described::census_verb,
        crate::rest::dataplane::described::list_families,
        crate::rest::dataplane::described::create_family,
        crate::rest::dataplane::described::get_family,
    ),
    components(schemas(ErrorBody, FieldViolation)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "platform", description = "Health, readiness, this document and the session-signing keys"),
        (name = "auth", description = "Accounts, sessions, who-am-I and key verification"),
        (name = "orgs", description = "Organizations, members and the audit log"),
        (name = "invitations", description = "How anybody joins an org"),
        (name = "keys", description = "API keys of an org"),
        (name = "usage", description = "Hourly usage, as the gateways counted it"),
        (name = "advisors", description = "Advisor agents, consultations and their Ed25519 payload keys"),
        (name = "mcp", description = "MCP tokens and the Model Context Protocol endpoint"),
        (name = "data-plane", description = "The platform's backends, behind an API key: every route of the gateway's route table under `/developer/`, forwarded with the verified identity. Described here: the shipped families backend."),
        (name = "secret-scanning", description = "GitHub's secret-scanning partner alerts"),
    )
)]
pub struct Document;

/// The credentials of the contract's table, one scheme each.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |format: &str, description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format(format)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            "session",
            bearer("JWT", "A session bearer from `/auth/login` or `/auth/signup`, or an external OIDC issuer's."),
        );
        components.add_security_scheme(
            "api_key",
            bearer("phosra_test_… / phosra_live_…", "An API key of the org (`Authorization: Bearer phosra_…`)."),
        );
        components.add_security_scheme(
            "mcp_token",
            bearer("phosra_mcp_…", "An MCP token from `POST /mcp-tokens`, accepted on `/mcp` only."),
        );
        components.add_security_scheme(
            "http_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Signature",
                "An RFC 9421 HTTP Message Signature by an Ed25519 key (`Signature-Input`, `Signature`), \
                 over `@method`, `@path` and `content-digest` (RFC 9530), `created` within 300 s.",
            ))),
        );
        components.add_security_scheme(
            "github_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Github-Public-Key-Signature",
                "GitHub's ECDSA signature over the raw body, with `Github-Public-Key-Identifier`.",
            ))),
        );
    }
}

/// The document as clients read it: paths relative to [`BASE`] (the root server kept on
/// those outside it), and every operation's errors described by the one `Error` shape.
fn publish(document: utoipa::openapi::OpenApi) -> Value {
    let mut document = serde_json::to_value(document).expect("the document serializes");
    document["openapi"] = json!("3.1.0");
    document["servers"] = json!([{ "url": BASE, "description": "this gateway" }]);
    let paths = document["paths"].as_object_mut().map(std::mem::take).unwrap_or_default();
    let mut published = Map::new();
    for (path, mut item) in paths {
        for operation in item.as_object_mut().into_iter().flat_map(|ops| ops.values_mut()) {
            describe_errors(operation);
        }
        let key = match path.strip_prefix(BASE) {
            Some(rest) => {
                if let Some((_, also)) = ALSO_AT.iter().find(|(path, _)| *path == rest) {
                    item["servers"] = json!([{ "url": BASE }, { "url": also }]);
                }
                rest.to_owned()
            }
            None => {
                item["servers"] = json!([{ "url": "/" }]);
                path
            }
        };
        published.insert(key, item);
    }
    document["paths"] = Value::Object(published);
    document
}

/// Adds the `Error` body to every error response an annotation names, and a `default`
/// response for the rest (a 429 or a 503 can meet any route).
fn describe_errors(operation: &mut Value) {
    let error = json!({ "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } });
    let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { return };
    for (status, response) in responses.iter_mut() {
        if status.starts_with('4') || status.starts_with('5') {
            response["content"] = error.clone();
        }
    }
    responses.insert(
        "default".into(),
        json!({ "description": "An error: `error` is the status text, `code` a stable machine code", "content": error }),
    );
}

/// The published document, served as it was built.
#[derive(Clone)]
pub struct Published(Bytes);

impl Published {
    pub fn new(document: utoipa::openapi::OpenApi) -> Self {
        Self(Bytes::from(serde_json::to_vec(&publish(document)).expect("the document serializes")))
    }
}

impl IntoResponse for Published {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
        response
    }
}

/// `GET /api/v1/openapi.json` (and `/openapi.json`): this document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "getOpenApi",
    tag = "platform",
    responses((status = 200, description = "The OpenAPI 3.1 document of this whole surface", body = Object))
)]
#[allow(dead_code)] // described here, answered by the route that holds the built document
pub fn openapi() {}

/// Operations served by something other than a handler of `rest` (the MCP server, the
/// census guard): described here, routed in `rest::router`.
#[allow(dead_code)] // read by the OpenAPI derive, never called
pub mod described {
    /// `POST /mcp`: the Model Context Protocol server.
    #[utoipa::path(
        post,
        path = "/mcp",
        operation_id = "mcp",
        tag = "mcp",
        description = "A Model Context Protocol server (streamable HTTP, JSON-RPC 2.0; `GET` opens the \
            event stream and `DELETE` ends the session, as the protocol says). Its tools act on the \
            token's org within the token's scopes.",
        request_body(content = Object, description = "A JSON-RPC 2.0 request", content_type = "application/json"),
        security(("mcp_token" = [])),
        responses(
            (status = 200, description = "A JSON-RPC 2.0 response, or an event stream", body = Object),
            (status = 401, description = "No MCP token, or another credential (`use_mcp_token`)"),
        )
    )]
    pub fn mcp() {}

    /// `/api/v1/ocss/census/{verb}`: census verbs take a signature, never a key or session.
    #[utoipa::path(
        post,
        path = "/api/v1/ocss/census/{verb}",
        operation_id = "censusVerb",
        tag = "platform",
        description = "Reserved for OCSS census verbs, authenticated by RFC 9421 Ed25519 signatures \
            alone: any method, and a key or a session is refused (`signature_required`). No verb is \
            served yet, so a signed call is 404.",
        params(("verb" = String, Path, description = "The census verb")),
        security(("http_signature" = [])),
        responses(
            (status = 401, description = "Not signed, or a key or session was sent (`signature_required`)"),
            (status = 404, description = "No such verb"),
        )
    )]
    pub fn census_verb() {}
}
