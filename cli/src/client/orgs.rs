//! `keyplane orgs list|create|get|ensure`, and which org a command means when `--org` is
//! not given.

use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};

use super::{
    Connection,
    http::{Client, Request},
    pages::Seen,
    print_json,
    table::{Table, cell, time_cell},
    terminal::say,
    warn_shown_once,
};

#[derive(clap::Subcommand)]
pub enum Verb {
    /// The orgs you belong to (`*`: the default `--org`).
    List,
    /// Create an org; you become its owner.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        website_url: Option<String>,
    },
    /// One org.
    Get {
        #[command(flatten)]
        org: OrgChoice,
    },
    /// Your developer org, made on first use; with --bootstrap-key also its first key.
    Ensure {
        /// The org's name, if it is made now [default: "<your name>'s org"].
        #[arg(long)]
        name: Option<String>,
        /// Also mint the org's first (test) key, unless it has an active key.
        #[arg(long)]
        bootstrap_key: bool,
    },
}

/// `--org`, which every verb about one org takes.
#[derive(clap::Args)]
pub struct OrgChoice {
    /// The org's id or slug [default: your developer org, else your only org].
    #[arg(long, value_name = "ID|SLUG")]
    pub org: Option<String>,
}

impl OrgChoice {
    /// The org's id: as given, found by slug, or the default.
    pub async fn id(&self, client: &mut Client) -> Result<String> {
        if let Some(org) = &self.org {
            if uuid::Uuid::try_parse(org).is_ok() {
                return Ok(org.clone());
            }
            let orgs = all(client).await?;
            return match orgs.iter().find(|o| o["slug"] == org.as_str()) {
                Some(found) => Ok(cell(&found["id"])),
                None => bail!("you belong to no org with the slug {org:?}: see `keyplane orgs list`"),
            };
        }
        if let Some(dev_org) = &client.session.dev_org_id {
            return Ok(dev_org.clone());
        }
        match all(client).await?.as_slice() {
            [only] => Ok(cell(&only["id"])),
            [] => bail!("you belong to no org: make one with `keyplane orgs ensure` or `keyplane orgs create`"),
            many => {
                let slugs: Vec<String> = many.iter().map(|o| cell(&o["slug"])).collect();
                bail!("you belong to {} orgs: choose one with --org ({})", many.len(), slugs.join(", "))
            }
        }
    }
}

/// Every org the user belongs to, all pages.
async fn all(client: &mut Client) -> Result<Vec<Value>> {
    let mut orgs = Vec::new();
    let mut cursor = None;
    let mut seen = Seen::default();
    loop {
        let mut request = Request::get("/api/v1/developers/orgs").query("limit", "100");
        if let Some(cursor) = cursor {
            request = request.query("cursor", cursor);
        }
        let page = client.send(request).await?.body;
        orgs.extend(page["data"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => {
                seen.first_time(next)?;
                cursor = Some(next.to_owned());
            }
            None => return Ok(orgs),
        }
    }
}

pub async fn run(connection: &Connection, verb: Verb) -> Result<()> {
    let mut client = connection.signed_in()?;
    match verb {
        Verb::List => {
            let orgs = all(&mut client).await?;
            if connection.json {
                print_json(&json!({"data": orgs, "next_cursor": null}));
                return Ok(());
            }
            let default = client.session.dev_org_id.clone().unwrap_or_default();
            let mut table = Table::new(&["", "ID", "SLUG", "NAME", "CREATED (UTC)"]);
            for org in &orgs {
                let marker = if org["id"] == default.as_str() { "*" } else { "" };
                let cells = [cell(&org["id"]), cell(&org["slug"]), cell(&org["name"]), time_cell(&org["created_at"])];
                table.row([vec![marker.to_owned()], cells.to_vec()].concat());
            }
            table.print();
        }
        Verb::Create { name, description, website_url } => {
            let body = json!({
                "name": name,
                "description": description.unwrap_or_default(),
                "website_url": website_url.unwrap_or_default(),
            });
            let org = client.send(Request::post("/api/v1/developers/orgs", body)).await?.body;
            show(&org, connection.json);
        }
        Verb::Get { org } => {
            let id = org.id(&mut client).await?;
            let org = client.send(Request::get(format!("/api/v1/developers/orgs/{id}"))).await?.body;
            show(&org, connection.json);
        }
        Verb::Ensure { name, bootstrap_key } => {
            let body = json!({"name": name.unwrap_or_default(), "bootstrap_key": bootstrap_key});
            let org = client.send(Request::post("/api/ensure-dev-org", body)).await?.body;
            let id = org["id"].as_str().ok_or_else(|| anyhow!("the gateway's answer has no id"))?;
            client.remember_dev_org(id)?;
            match org["first_key"]["key"].as_str() {
                // A new secret goes alone to stdout, as `keys create` prints it.
                Some(key) if !connection.json => {
                    let minted = format!(
                        "Minted the first key ({}) of org {}",
                        cell(&org["first_key"]["id"]),
                        cell(&org["slug"])
                    );
                    warn_shown_once(&minted);
                    say(key);
                }
                Some(_) => {
                    warn_shown_once(&format!("Minted the org's first key ({})", cell(&org["first_key"]["id"])));
                    show(&org, true);
                }
                None => show(&org, connection.json),
            }
        }
    }
    Ok(())
}

/// One org: the API's JSON, or its fields one per line.
fn show(org: &Value, json: bool) {
    if json {
        print_json(org);
        return;
    }
    let mut table = Table::new(&["FIELD", "VALUE"]);
    for field in ["id", "slug", "name", "description", "website_url"] {
        table.row(vec![field.to_owned(), cell(&org[field])]);
    }
    for field in ["created_at", "updated_at"] {
        table.row(vec![field.to_owned(), time_cell(&org[field])]);
    }
    table.print();
}
