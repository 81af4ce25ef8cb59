//! `keyplane`: run the platform, one of its services, or its migrations; or, as a
//! developer, sign in to a gateway and manage orgs and keys.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use keyplane_cli::{client, migrate, platform, single};
use keyplane_common::config::{CommonConfig, Env, Mode, Target};

#[derive(Parser)]
#[command(name = "keyplane", version, about = "Keyplane: a self-hostable developer control plane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Platform(PlatformCommand),
    #[command(flatten)]
    Client(client::Command),
    /// Print a shell completion script: `source <(keyplane completions bash)`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum PlatformCommand {
    /// Every service and the gateway in one process (SQLite and an in-process cache by default).
    Up,
    /// One service of a deployment.
    Serve {
        /// identity, keys, orgs, usage, advisors, families or gateway.
        #[arg(long, value_parser = parse_target)]
        target: Target,
        /// Only read and check the configuration, name every problem, and exit (2 on problems).
        #[arg(long)]
        check: bool,
    },
    /// Apply the database migrations of one service, or of all of them.
    Migrate {
        #[arg(long, value_parser = parse_target)]
        target: Option<Target>,
        /// Apply nothing: wait until the migrations are applied (by the migrations Job).
        #[arg(long)]
        wait: bool,
        /// How long `--wait` waits, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
}

fn parse_target(s: &str) -> Result<Target, String> {
    Target::parse(s).ok_or_else(|| {
        let names: Vec<_> = Target::ALL.iter().map(|t| t.name()).collect();
        format!("unknown target {s:?}; choose one of {}", names.join(", "))
    })
}

/// mimalloc: per-request allocations cost about half of glibc's here (`make bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Platform(command) => run_platform(command).await,
        Command::Client(command) => client::run(command).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "keyplane", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}

async fn run_platform(command: PlatformCommand) -> ExitCode {
    let service = match &command {
        PlatformCommand::Serve { target, .. } => format!("keyplane-{target}"),
        _ => "keyplane".to_owned(),
    };
    let _telemetry = match keyplane_common::telemetry::init(&service) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("keyplane: telemetry: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        PlatformCommand::Up => up().await,
        PlatformCommand::Serve { target, check } => serve(target, check).await,
        PlatformCommand::Migrate { target, wait, timeout } => {
            migrate_databases(target, wait.then(|| std::time::Duration::from_secs(timeout))).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(e)) => {
            eprintln!("keyplane: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("keyplane: {e:#}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Config(keyplane_common::config::ConfigError),
    Run(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self::Run(e)
    }
}

async fn up() -> Result<(), Failure> {
    let env = Env::from_process();
    // Bind first: a port of 0 gets a real one, which peers then call. A bad address is
    // reported with every other problem by the full read below.
    let listeners = {
        let mut probe = env.clone();
        let common = CommonConfig::from_env(&mut probe, Mode::AllInOne);
        platform::Listeners::bind(|t| common.listen_addr(&mut probe.clone(), t, Mode::AllInOne))
            .await
            .map_err(|e| Failure::Run(anyhow::anyhow!("cannot bind the platform's ports: {e}")))?
    };
    let config = platform::PlatformConfig::from_env(env, |t| listeners.addr(t)).map_err(Failure::Config)?;
    tracing::info!(url = %format!("http://{}", listeners.addr(Target::Gateway)), "keyplane is up");
    platform::run(config, listeners, keyplane_cli::shutdown::on_signal()).await?;
    Ok(())
}

async fn serve(target: Target, check: bool) -> Result<(), Failure> {
    let config = single::SingleConfig::from_env(Env::from_process(), target).map_err(Failure::Config)?;
    if check {
        println!("keyplane: the configuration of {target} is complete");
        return Ok(());
    }
    single::run(config, keyplane_cli::shutdown::on_signal()).await?;
    Ok(())
}

/// Applies the migrations, or with `wait` waits until they are applied.
async fn migrate_databases(target: Option<Target>, wait: Option<std::time::Duration>) -> Result<(), Failure> {
    let mut env = Env::from_process();
    let common = CommonConfig::from_env(&mut env, Mode::AllInOne);
    let targets: Vec<(Target, String)> = Target::ALL
        .iter()
        .filter(|t| **t != Target::Gateway && target.is_none_or(|only| only == **t))
        .map(|t| (*t, common.database_url(&mut env, *t)))
        .collect();
    env.finish().map_err(Failure::Config)?;
    match wait {
        Some(timeout) => migrate::wait(&targets, timeout).await?,
        None => migrate::run(&targets).await?,
    }
    Ok(())
}
