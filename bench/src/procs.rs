//! The processes of a run: each pinned to a core when there are two or more (the servers
//! under test on one, the load generator on the other), stopped when dropped.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

/// Which core the servers run on, and which the load generator: apart when there are two.
#[derive(Clone, Copy, Debug)]
pub struct Cores {
    pub servers: Option<usize>,
    pub load: Option<usize>,
    pub count: usize,
}

impl Cores {
    pub fn detect() -> Self {
        let count = std::thread::available_parallelism().map_or(1, |n| n.get());
        let taskset = Command::new("taskset").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
        if count >= 2 && taskset {
            Self { servers: Some(0), load: Some(1), count }
        } else {
            Self { servers: None, load: None, count }
        }
    }
}

/// A command pinned to `core` (when given).
pub fn pinned(core: Option<usize>, program: &str) -> Command {
    match core {
        Some(core) => {
            let mut command = Command::new("taskset");
            command.arg("-c").arg(core.to_string()).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// Pins this process, every thread of it, to `core` (when given).
pub fn pin_self(core: Option<usize>) -> anyhow::Result<()> {
    let Some(core) = core else { return Ok(()) };
    let pid = std::process::id().to_string();
    let status =
        Command::new("taskset").args(["-a", "-p", "-c", &core.to_string(), &pid]).stdout(Stdio::null()).status()?;
    anyhow::ensure!(status.success(), "taskset could not pin the harness to core {core}");
    Ok(())
}

/// A child process, killed when dropped.
pub struct Running {
    child: Child,
}

impl Running {
    /// Starts `command` (`name` is for the error), its output going to `log`.
    pub fn start(name: &str, mut command: Command, log: &std::path::Path) -> anyhow::Result<Self> {
        let file = std::fs::File::create(log)?;
        let child = command
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {name}: {e}"))?;
        Ok(Self { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's resident memory, in KiB (its `VmRSS`).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now, for a server started next. Below the kernel's ephemeral
/// range: a port the kernel hands out (`bind` to port 0) can be taken by another process's
/// outgoing connection before the server binds it, which failed a run with "address in
/// use". Taken in turn from a start of this run's own, so never twice in one run.
pub fn free_port() -> anyhow::Result<u16> {
    static TAKEN: AtomicU32 = AtomicU32::new(0);
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    // Up to 12,000 ports just under the range, above the privileged ones.
    let low = ephemeral.saturating_sub(12_000).max(1_024);
    let span = ephemeral.saturating_sub(low).max(1);
    let start = std::process::id() % span;
    for _ in 0..span.min(2_000) {
        let taken = TAKEN.fetch_add(1, Ordering::Relaxed);
        let Ok(port) = u16::try_from(low + (start + taken) % span) else { continue };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    // A kernel whose ephemeral range starts low: its own choice, as before.
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something accepts connections at `port`.
pub fn wait_listening(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!("{what} did not listen on {port}")
}

/// Installs what the harness needs with apt-get, once, when it is missing (as root).
pub fn ensure_tools() -> anyhow::Result<()> {
    let missing: Vec<&str> = [("wrk", "wrk"), ("nginx", "nginx-light"), ("taskset", "util-linux")]
        .into_iter()
        .filter(|(tool, _)| which(tool).is_none())
        .map(|(_, package)| package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("bench: installing {}", missing.join(" "));
    let ok =
        Command::new("apt-get").args(["install", "-y", "-q"]).args(&missing).stdout(Stdio::null()).status()?.success()
            || (Command::new("apt-get").args(["update", "-q"]).stdout(Stdio::null()).status()?.success()
                && Command::new("apt-get")
                    .args(["install", "-y", "-q"])
                    .args(&missing)
                    .stdout(Stdio::null())
                    .status()?
                    .success());
    anyhow::ensure!(ok, "could not install {}: run `sudo apt-get install -y {}`", missing.join(" "), missing.join(" "));
    Ok(())
}

pub fn which(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]).map(|d| d.join(tool)).find(|p| p.is_file())
}
