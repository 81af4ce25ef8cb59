//! `keyplane audit`: an org's audit log, newest first.

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{
    Connection,
    http::Request,
    orgs::OrgChoice,
    pages::Seen,
    print_json,
    table::{Table, cell, time_cell},
    time::{parse_time, query},
};

/// The API's largest page.
const PAGE: usize = 100;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    org: OrgChoice,
    /// Only events of this action (api_key.created, member.added, …).
    #[arg(long)]
    action: Option<String>,
    /// From this time: RFC 3339 or a date.
    #[arg(long, value_parser = parse_time)]
    from: Option<DateTime<Utc>>,
    /// Until this time: RFC 3339 or a date.
    #[arg(long, value_parser = parse_time)]
    to: Option<DateTime<Utc>>,
    /// At most this many events.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    limit: u32,
    #[command(flatten)]
    connection: Connection,
}

pub async fn run(args: Args) -> Result<()> {
    let mut client = args.connection.signed_in()?;
    let org = args.org.id(&mut client).await?;
    let wanted = args.limit as usize;
    let mut events: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut seen = Seen::default();
    // Pages of at most 100 until `limit` events or the last page.
    loop {
        let page_size = (wanted - events.len()).min(PAGE);
        let mut request =
            Request::get(format!("/api/v1/developers/orgs/{org}/audit-log")).query("limit", page_size.to_string());
        let filters = [
            ("action", args.action.clone()),
            ("from", args.from.map(query)),
            ("to", args.to.map(query)),
            ("cursor", cursor.take()),
        ];
        for (name, value) in filters {
            if let Some(value) = value {
                request = request.query(name, value);
            }
        }
        let page = client.send(request).await?.body;
        events.extend(page["data"].as_array().cloned().unwrap_or_default());
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        match &cursor {
            Some(next) if events.len() < wanted => seen.first_time(next)?,
            _ => break,
        }
    }
    if args.connection.json {
        print_json(&json!({"data": events, "next_cursor": cursor}));
        return Ok(());
    }
    let mut table = Table::new(&["AT (UTC)", "ACTION", "ACTOR", "TARGET", "IP"]);
    for event in &events {
        table.row(vec![
            time_cell(&event["at"]),
            cell(&event["action"]),
            party(&event["actor"]),
            party(&event["target"]),
            cell(&event["ip"]),
        ]);
    }
    table.print();
    Ok(())
}

/// `{type, id}` as `type:id`, the form the API's `actor` filter takes.
fn party(party: &Value) -> String {
    format!("{}:{}", cell(&party["type"]), cell(&party["id"]))
}
