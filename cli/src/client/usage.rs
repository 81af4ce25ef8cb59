//! `keyplane usage`: an org's requests per hour, as the gateways counted them.

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{
    Connection,
    http::Request,
    orgs::OrgChoice,
    print_json,
    table::{Table, cell, time_cell},
    time::{parse_time, query},
};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    org: OrgChoice,
    /// From this time: RFC 3339 or a date [default: 24 hours ago].
    #[arg(long, value_parser = parse_time)]
    from: Option<DateTime<Utc>>,
    /// Until this time: RFC 3339 or a date [default: now].
    #[arg(long, value_parser = parse_time)]
    to: Option<DateTime<Utc>>,
    /// Only this key's requests.
    #[arg(long, value_name = "KEY_ID")]
    key: Option<Uuid>,
    #[command(flatten)]
    connection: Connection,
}

pub async fn run(args: Args) -> Result<()> {
    let mut client = args.connection.signed_in()?;
    let org = args.org.id(&mut client).await?;
    let to = args.to.unwrap_or_else(Utc::now);
    let from = args.from.unwrap_or(to - chrono::Duration::hours(24));
    let mut request =
        Request::get(format!("/api/v1/developers/orgs/{org}/usage")).query("from", query(from)).query("to", query(to));
    if let Some(key) = args.key {
        request = request.query("key_id", key.to_string());
    }
    let usage = client.send(request).await?.body;
    if args.connection.json {
        print_json(&usage);
        return Ok(());
    }
    let hours = usage["data"].as_array().cloned().unwrap_or_default();
    let mut table = Table::new(&["HOUR (UTC)", "REQUESTS", "ERRORS", "BY STATUS"]);
    let (mut requests, mut errors) = (0, 0);
    for hour in &hours {
        requests += hour["requests"].as_u64().unwrap_or(0);
        errors += hour["errors"].as_u64().unwrap_or(0);
        table.row(vec![
            time_cell(&hour["hour"]),
            cell(&hour["requests"]),
            cell(&hour["errors"]),
            by_status(&hour["by_status"]),
        ]);
    }
    table.row(vec!["total".to_owned(), requests.to_string(), errors.to_string(), String::new()]);
    table.print();
    Ok(())
}

/// `{"2xx": 9, "4xx": 1}` as `2xx=9 4xx=1`.
fn by_status(counts: &Value) -> String {
    let counts = counts.as_object().into_iter().flatten();
    counts.map(|(class, n)| format!("{class}={n}")).collect::<Vec<_>>().join(" ")
}
