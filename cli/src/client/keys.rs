//! `keyplane keys list|create|revoke|rotate`. A secret is printed once, alone on standard
//! output, with the warning on standard error.

use anyhow::{Result, anyhow};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{
    Connection,
    http::{Client, Request},
    orgs::OrgChoice,
    pages::Seen,
    print_json,
    table::{Table, cell, time_cell},
    terminal::say,
    time::{parse_duration, parse_time},
    warn_shown_once,
};

#[derive(clap::Subcommand)]
pub enum Verb {
    /// The org's keys (never their secrets).
    List {
        #[command(flatten)]
        org: OrgChoice,
    },
    /// Mint a key; its secret is printed this once.
    Create {
        #[command(flatten)]
        org: OrgChoice,
        /// What the key is for, as lists show it.
        #[arg(long)]
        name: String,
        /// Data made with test keys is invisible to live keys, and the other way round.
        #[arg(long, value_enum, default_value_t = Environment::Test)]
        environment: Environment,
        /// A scope the key may use (repeat, or separate with commas) [default: every scope].
        #[arg(long = "scope", value_name = "SCOPE", value_delimiter = ',')]
        scopes: Vec<String>,
        /// A data-plane resource the key is pinned to (repeat, or separate with commas).
        #[arg(long = "resource", value_name = "ID", value_delimiter = ',')]
        resources: Vec<String>,
        /// When the key stops working: RFC 3339 (2030-01-01T12:00:00Z) or a date (midnight UTC).
        #[arg(long, value_parser = parse_time)]
        expires_at: Option<DateTime<Utc>>,
    },
    /// Revoke a key now: every gateway refuses it within a second.
    Revoke {
        #[command(flatten)]
        org: OrgChoice,
        key_id: Uuid,
    },
    /// A new secret for the same key; the old secret works on for the grace period.
    Rotate {
        #[command(flatten)]
        org: OrgChoice,
        key_id: Uuid,
        /// How long the old secret keeps working: seconds, or 30m, 12h, 7d [default: 1 day].
        #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
        grace_period: Option<u64>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Environment {
    Test,
    Live,
}

impl Environment {
    fn as_str(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::Live => "live",
        }
    }
}

pub async fn run(connection: &Connection, verb: Verb) -> Result<()> {
    let mut client = connection.signed_in()?;
    match verb {
        Verb::List { org } => {
            let org = org.id(&mut client).await?;
            let keys = all(&mut client, &org).await?;
            if connection.json {
                print_json(&Value::Array(keys));
            } else {
                list(&keys);
            }
        }
        Verb::Create { org, name, environment, scopes, resources, expires_at } => {
            let org = org.id(&mut client).await?;
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            body.insert("environment".into(), json!(environment.as_str()));
            // No scopes at all is a full-permission key: the field is left out, not emptied.
            if !scopes.is_empty() {
                body.insert("scopes".into(), json!(scopes));
            }
            body.insert("resource_ids".into(), json!(resources));
            if let Some(at) = expires_at {
                body.insert("expires_at".into(), json!(super::time::query(at)));
            }
            let path = format!("/api/v1/developers/orgs/{org}/keys");
            let key = client.send(Request::post(path, Value::Object(body))).await?.body;
            warn_shown_once(&format!(
                "Created key {:?} ({}, {})",
                cell(&key["name"]),
                cell(&key["id"]),
                cell(&key["environment"])
            ));
            secret(&key, connection.json)?;
        }
        Verb::Revoke { org, key_id } => {
            let org = org.id(&mut client).await?;
            let key = client.send(Request::delete(format!("/api/v1/developers/orgs/{org}/keys/{key_id}"))).await?.body;
            if connection.json {
                print_json(&key);
            } else {
                say(&format!("Revoked key {:?} ({key_id}).", cell(&key["name"])));
            }
        }
        Verb::Rotate { org, key_id, grace_period } => {
            let org = org.id(&mut client).await?;
            let body = grace_period.map_or(json!({}), |seconds| json!({"grace_period_seconds": seconds}));
            let path = format!("/api/v1/developers/orgs/{org}/keys/{key_id}/regenerate");
            let key = client.send(Request::post(path, body)).await?.body;
            let until = match &key["grace_ends_at"] {
                Value::Null => "the previous secret no longer works".to_owned(),
                at => format!("the previous secret works until {} UTC", time_cell(at)),
            };
            warn_shown_once(&format!("Rotated key {:?} ({key_id}): {until}", cell(&key["name"])));
            secret(&key, connection.json)?;
        }
    }
    Ok(())
}

/// Every key of the org: the plain-array list, its pages linked by `Link` headers.
async fn all(client: &mut Client, org: &str) -> Result<Vec<Value>> {
    let mut keys = Vec::new();
    let mut seen = Seen::default();
    let mut request = Request::get(format!("/api/v1/developers/orgs/{org}/keys")).query("limit", "100");
    loop {
        let page = client.send(request).await?;
        keys.extend(page.body.as_array().cloned().unwrap_or_default());
        match page.next_page()? {
            Some(next) => {
                seen.first_time(&next)?;
                request = Request::get(next);
            }
            None => return Ok(keys),
        }
    }
}

fn list(keys: &[Value]) {
    let mut table =
        Table::new(&["ID", "NAME", "ENV", "PREFIX", "STATUS", "CREATED (UTC)", "LAST USED", "EXPIRES", "SCOPES"]);
    for key in keys {
        table.row(vec![
            cell(&key["id"]),
            cell(&key["name"]),
            cell(&key["environment"]),
            cell(&key["prefix"]),
            cell(&key["status"]),
            time_cell(&key["created_at"]),
            time_cell(&key["last_used_at"]),
            time_cell(&key["expires_at"]),
            cell(&key["scopes"]),
        ]);
    }
    table.print();
}

/// The new secret alone (so `$(keyplane keys create …)` is the key), or the API's JSON.
/// No secret in the answer is an error, never a placeholder a script would take for one.
fn secret(key: &Value, json: bool) -> Result<()> {
    let secret = key["key"].as_str().ok_or_else(|| anyhow!("the gateway's answer has no key"))?;
    if json {
        print_json(key);
    } else {
        say(secret);
    }
    Ok(())
}
