//! Signing up, in and out. Tokens go to the session file only, never to the screen.

use anyhow::Result;
use serde_json::json;

use super::{
    Connection,
    http::{Request, is_unauthorized},
    print_json, prompt,
    session::{Session, SessionFile},
    terminal::say,
};

#[derive(clap::Args)]
pub struct LoginArgs {
    #[arg(long)]
    email: String,
    /// Read the password from standard input instead of asking for it.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(clap::Args)]
pub struct SignupArgs {
    #[arg(long)]
    email: String,
    /// Your name, as your orgs' members see it.
    #[arg(long)]
    name: Option<String>,
    /// Your developer org's name [default: "<your name>'s org"].
    #[arg(long)]
    org_name: Option<String>,
    /// Read the password from standard input instead of asking for it (twice).
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    connection: Connection,
}

pub async fn login(args: LoginArgs) -> Result<()> {
    let file = SessionFile::locate()?;
    // A broken session file must not stand in the way of a new one.
    let previous = file.load().ok().flatten();
    let gateway = args.connection.gateway(previous.as_ref())?;
    let password = prompt::password(args.password_stdin, false).await?;
    let body = json!({"email": args.email, "password": password});
    let reply = gateway.send(&Request::post("/api/v1/auth/login", body), None).await?;
    // The developer org stays known across logins of the same user to the same gateway.
    let dev_org_id = previous.filter(|p| p.url == gateway.url() && p.email == args.email).and_then(|p| p.dev_org_id);
    let session = Session {
        url: gateway.url(),
        email: args.email,
        access_token: reply.str("access_token")?,
        refresh_token: reply.str("refresh_token")?,
        dev_org_id,
    };
    file.save(&session)?;
    if args.connection.json {
        print_json(&reply.body["user"]);
    } else {
        say(&format!("Logged in to {} as {}.", session.url, session.email));
    }
    Ok(())
}

pub async fn signup(args: SignupArgs) -> Result<()> {
    let file = SessionFile::locate()?;
    let previous = file.load().ok().flatten();
    let gateway = args.connection.gateway(previous.as_ref())?;
    let password = prompt::password(args.password_stdin, true).await?;
    let body = json!({"email": args.email, "password": password, "name": args.name.unwrap_or_default()});
    let signed_up = gateway.send(&Request::post("/api/v1/auth/signup", body), None).await?;
    let session = Session {
        url: gateway.url(),
        email: args.email,
        access_token: signed_up.str("access_token")?,
        refresh_token: signed_up.str("refresh_token")?,
        dev_org_id: None,
    };
    file.save(&session)?;

    // Every developer gets an org to hold their keys, as the console makes on first visit.
    let mut client = args.connection.signed_in()?;
    let org =
        client.send(Request::post("/api/ensure-dev-org", json!({"name": args.org_name.unwrap_or_default()}))).await?;
    client.remember_dev_org(&org.str("id")?)?;
    if args.connection.json {
        print_json(&json!({"user": signed_up.body["user"], "org": org.body}));
    } else {
        say(&format!("Signed up to {} as {}; a mail to verify the address is on its way.", session.url, session.email));
        say(&format!("Your developer org: {} ({}, {}).", org.str("name")?, org.str("slug")?, org.str("id")?));
    }
    Ok(())
}

pub async fn logout(connection: &Connection) -> Result<()> {
    let mut client = connection.signed_in()?;
    match client.send(Request::post("/api/v1/auth/logout", json!({}))).await {
        // Refused even after a refresh: the session had ended already.
        Err(e) if is_unauthorized(&e) => {}
        // Kept, so that logging out can be tried again once the gateway answers.
        Err(e) => return Err(e.context("still logged in")),
        Ok(_) => {}
    }
    SessionFile::locate()?.delete()?;
    if !connection.json {
        say(&format!("Logged out of {}.", client.session.url));
    }
    Ok(())
}
