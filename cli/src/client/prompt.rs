//! The password: from standard input (for scripts), or asked on the terminal without echo.
//! Echo is switched with `stty` rather than a terminal crate: the workspace forbids the
//! unsafe code a termios call takes, and `stty` is on every Unix.

use std::{
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Read, Write},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail, ensure};

/// Reads the password from standard input, or asks for it (twice with `confirm`).
pub async fn password(from_stdin: bool, confirm: bool) -> Result<String> {
    if from_stdin {
        return from_standard_input();
    }
    let password = ask("Password: ").await?;
    if confirm && ask("Password (again): ").await? != password {
        bail!("the two passwords differ");
    }
    Ok(password)
}

/// Everything on standard input but one final line break, as `docker login --password-stdin`.
fn from_standard_input() -> Result<String> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).context("cannot read the password from standard input")?;
    let password = text.strip_suffix('\n').map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
    ensure!(!password.is_empty(), "no password on standard input");
    Ok(password.to_owned())
}

/// Asks on the terminal. Ctrl-C while echo is off would leave the terminal mute, so it
/// is caught here: echo comes back, then the process ends as interrupted.
async fn ask(prompt: &'static str) -> Result<String> {
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let asking = tokio::task::spawn_blocking(move || ask_blocking(prompt));
    tokio::select! {
        answer = asking => {
            // tokio's handler stays installed for the rest of the process: Ctrl-C must
            // still end it (during the request that follows, say), as it would by default.
            tokio::spawn(async move {
                interrupt.recv().await;
                std::process::exit(130);
            });
            answer?
        }
        _ = interrupt.recv() => {
            if let Ok(tty) = terminal() {
                let _ = stty(&tty, "echo");
                let _ = (&tty).write_all(b"\n");
            }
            std::process::exit(130);
        }
    }
}

fn ask_blocking(prompt: &str) -> Result<String> {
    let tty = terminal()?;
    (&tty).write_all(prompt.as_bytes())?;
    let mut line = String::new();
    {
        let _muted = EchoOff::on(&tty)?;
        BufReader::new(&tty).read_line(&mut line)?;
    }
    (&tty).write_all(b"\n")?;
    let password = line.trim_end_matches(['\r', '\n']);
    ensure!(!password.is_empty(), "no password given");
    Ok(password.to_owned())
}

fn terminal() -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to ask for the password on: pass it with --password-stdin")
}

/// Echo off while it lives.
struct EchoOff<'a>(&'a File);

impl<'a> EchoOff<'a> {
    fn on(tty: &'a File) -> Result<Self> {
        stty(tty, "-echo")?;
        Ok(Self(tty))
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        let _ = stty(self.0, "echo");
    }
}

fn stty(tty: &File, setting: &str) -> Result<()> {
    let status = Command::new("stty")
        .arg(setting)
        .stdin(tty.try_clone()?)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("cannot run stty to hide the password")?;
    ensure!(status.success(), "stty {setting} failed: pass the password with --password-stdin");
    Ok(())
}
