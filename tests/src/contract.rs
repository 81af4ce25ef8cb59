//! The OpenAPI document as a check on every answer the suite gets through [`crate::Api`]:
//! a route the gateway serves must be in the document, a success status must be one it
//! names, and every JSON body must match the schema documented for its status, with no
//! field the schema does not name.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use serde_json::{Value, json};

pub struct Contract {
    operations: Vec<Operation>,
    components: Value,
    /// Compiled schemas by (operation, response key).
    validators: Mutex<HashMap<(usize, String), std::sync::Arc<jsonschema::Validator>>>,
}

struct Operation {
    id: String,
    method: String,
    /// The real path, server included, split at `/`; `None` is a `{parameter}`.
    segments: Vec<Option<String>>,
    responses: Value,
}

impl Operation {
    fn matches(&self, method: &str, path: &str) -> bool {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        self.method.eq_ignore_ascii_case(method)
            && parts.len() == self.segments.len()
            && self.segments.iter().zip(&parts).all(|(s, p)| s.as_deref().is_none_or(|s| s == *p))
    }
}

/// An operation of the document at one real path (its server's prefix included).
pub struct Served {
    pub method: String,
    pub path: String,
    pub id: String,
    pub responses: Value,
}

/// Every operation of `document` with the real paths it is served at: its path under each
/// server of its path item, or of the document.
pub fn operations(document: &Value) -> Vec<Served> {
    let mut found = Vec::new();
    let default_servers = document["servers"].as_array().cloned().unwrap_or_else(|| vec![json!({"url": "/"})]);
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        let servers = item["servers"].as_array().cloned().unwrap_or_else(|| default_servers.clone());
        for (method, operation) in item.as_object().into_iter().flatten() {
            if method == "servers" || method == "parameters" {
                continue;
            }
            for server in &servers {
                let base = server["url"].as_str().unwrap_or("/").trim_end_matches('/');
                found.push(Served {
                    method: method.to_ascii_uppercase(),
                    path: format!("{base}{path}"),
                    id: operation["operationId"].as_str().unwrap_or_default().to_owned(),
                    responses: operation["responses"].clone(),
                });
            }
        }
    }
    found
}

impl Contract {
    pub fn new(document: &Value) -> Self {
        let mut known = Vec::new();
        for Served { method, path, id, responses } in operations(document) {
            let segments = path
                .split('/')
                .map(|s| if s.starts_with('{') && s.ends_with('}') { None } else { Some(s.to_owned()) })
                .collect();
            known.push(Operation { id, method, segments, responses });
        }
        Self { operations: known, components: strict(document["components"].clone()), validators: Mutex::default() }
    }

    /// Whether the answer `status`/`body` to `method path` is what the document says.
    pub fn check(&self, method: &str, path: &str, status: u16, content_type: &str, body: &str) -> Result<(), String> {
        let Some((index, operation)) = self.operations.iter().enumerate().find(|(_, o)| o.matches(method, path)) else {
            // Unknown routes and unknown methods are the fallbacks' answers, not served routes;
            // the data plane's other routes are the route table's (an operator's), forwarded
            // as they are: the document describes the shipped families backend's.
            let fallback = (status == 404 && body.contains("\"not_found\""))
                || (status == 405 && body.contains("method_not_allowed"))
                || path.starts_with("/api/v1/developer/");
            return if fallback {
                Ok(())
            } else {
                Err(format!("{method} {path} answered {status} but is not in the OpenAPI document"))
            };
        };
        let key = if operation.responses.get(status.to_string()).is_some() {
            status.to_string()
        } else if (200..300).contains(&status) {
            return Err(format!(
                "{} ({method} {path}) answered {status}, a success the document does not name",
                operation.id
            ));
        } else {
            "default".to_owned()
        };
        let Some(schema) = operation.responses[&key]["content"]["application/json"].get("schema") else {
            return Ok(());
        };
        if body.is_empty() || !content_type.starts_with("application/json") {
            return Ok(());
        }
        let instance: Value = serde_json::from_str(body)
            .map_err(|e| format!("{} answered {status} with invalid JSON: {e}", operation.id))?;
        let validator = self.validator(index, &key, schema)?;
        let problems: Vec<String> =
            validator.iter_errors(&instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} ({method} {path}) answered {status} with a body its schema refuses: {}\nbody: {body}",
                operation.id,
                problems.join("; ")
            ))
        }
    }

    fn validator(
        &self,
        index: usize,
        key: &str,
        schema: &Value,
    ) -> Result<std::sync::Arc<jsonschema::Validator>, String> {
        let mut validators = self.validators.lock().expect("validators");
        if let Some(v) = validators.get(&(index, key.to_owned())) {
            return Ok(v.clone());
        }
        // The response's schema beside the document's components, so `#/components/…` resolves.
        let root = json!({ "allOf": [strict_root(schema.clone())], "components": self.components });
        let validator = jsonschema::draft202012::options().should_validate_formats(true).build(&root).map_err(|e| {
            format!("the document's schema for {} {key} does not compile: {e}", self.operations[index].id)
        })?;
        let validator = std::sync::Arc::new(validator);
        validators.insert((index, key.to_owned()), validator.clone());
        Ok(validator)
    }
}

/// The components with every object schema closed (`unevaluatedProperties: false`), so an
/// undocumented field fails; except those another schema extends through `allOf` (a
/// flattened struct), which the extending schema closes instead.
fn strict(mut components: Value) -> Value {
    let mut extended = HashSet::new();
    collect_all_of_refs(&components, &mut extended);
    if let Some(schemas) = components.get_mut("schemas").and_then(Value::as_object_mut) {
        for (name, schema) in schemas.iter_mut() {
            if !extended.contains(&format!("#/components/schemas/{name}")) {
                *schema = strict_root(schema.take());
            }
        }
    }
    components
}

fn strict_root(mut schema: Value) -> Value {
    if schema.get("properties").is_some() || schema.get("allOf").is_some() {
        schema["unevaluatedProperties"] = json!(false);
    }
    schema
}

fn collect_all_of_refs(value: &Value, into: &mut HashSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(parts)) = map.get("allOf") {
                for part in parts {
                    if let Some(r) = part.get("$ref").and_then(Value::as_str) {
                        into.insert(r.to_owned());
                    }
                }
            }
            map.values().for_each(|v| collect_all_of_refs(v, into));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_all_of_refs(v, into)),
        _ => {}
    }
}
