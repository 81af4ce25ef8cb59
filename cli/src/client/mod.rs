//! `keyplane signup|login|logout|orgs|keys|usage|audit`: a developer's verbs over the public
//! REST API of a running gateway, with the session kept in the user's config directory.

mod audit;
mod auth;
mod body;
mod http;
mod keys;
mod orgs;
mod pages;
mod prompt;
mod session;
mod table;
mod terminal;
mod time;
mod usage;

use std::process::ExitCode;

use anyhow::{Result, anyhow, ensure};
use serde_json::Value;

use self::{
    http::{Client, Gateway},
    session::{Session, SessionFile},
};

/// Where `keyplane up` serves.
const DEFAULT_URL: &str = "http://127.0.0.1:8080";

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create an account on the gateway, sign in, and make your developer org.
    Signup(auth::SignupArgs),
    /// Sign in; the session is kept in $XDG_CONFIG_HOME/keyplane/session.json (mode 0600).
    Login(auth::LoginArgs),
    /// End the session on the gateway and forget it here.
    Logout {
        #[command(flatten)]
        connection: Connection,
    },
    /// The orgs you belong to.
    Orgs {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        verb: orgs::Verb,
    },
    /// An org's API keys.
    Keys {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        verb: keys::Verb,
    },
    /// An org's requests per hour.
    Usage(usage::Args),
    /// An org's audit log.
    Audit(audit::Args),
}

/// Options every client verb takes, before or after its name.
#[derive(clap::Args)]
pub struct Connection {
    /// The gateway [default: the session's, else http://127.0.0.1:8080].
    #[arg(long, global = true, env = "KEYPLANE_URL", value_name = "URL")]
    url: Option<String>,
    /// Print the API's JSON rather than a table.
    #[arg(long, global = true)]
    json: bool,
}

impl Connection {
    /// The gateway to talk to: this option (or KEYPLANE_URL), else the session's, else
    /// the local platform.
    fn gateway(&self, session: Option<&Session>) -> Result<Gateway> {
        let url = self.url.as_deref().or(session.map(|s| s.url.as_str())).unwrap_or(DEFAULT_URL);
        Gateway::new(url)
    }

    /// The signed-in client. The session's tokens go only to the gateway that issued them.
    fn signed_in(&self) -> Result<Client> {
        let file = SessionFile::locate()?;
        let session = file
            .load()?
            .ok_or_else(|| anyhow!("not logged in: run `keyplane login --email …` or `keyplane signup`"))?;
        let gateway = self.gateway(Some(&session))?;
        ensure!(
            gateway.url() == session.url,
            "you are logged in to {}, not {}: run `keyplane login --url {}`",
            session.url,
            gateway.url(),
            gateway.url()
        );
        Ok(Client::new(gateway, session, file))
    }
}

pub async fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Signup(args) => auth::signup(args).await,
        Command::Login(args) => auth::login(args).await,
        Command::Logout { connection } => auth::logout(&connection).await,
        Command::Orgs { connection, verb } => orgs::run(&connection, verb).await,
        Command::Keys { connection, verb } => keys::run(&connection, verb).await,
        Command::Usage(args) => usage::run(args).await,
        Command::Audit(args) => audit::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The causes on one line, never a backtrace; the API's words in it made safe.
            terminal::warn(&format!("keyplane: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

fn print_json(value: &Value) {
    println!("{}", terminal::json(value));
}

/// What is printed once and never again goes with this on standard error, so that
/// `KEY=$(keyplane keys create …)` captures the secret alone.
fn warn_shown_once(what: &str) {
    terminal::warn(&format!("keyplane: {what}. Copy the secret now: it is shown this once and cannot be shown again."));
}
