//! Starting the real `serve` binary as a child process, and reading a
//! process's CPU time and resident memory from `/proc`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Every environment variable `serve` reads, removed from the child's
/// environment before the caller's settings are applied, so that the
/// caller's shell cannot change what is measured.
const SERVE_ENV: &[&str] = &[
    "HOST",
    "PORT",
    "DATABASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_HTTP2_PRIOR_KNOWLEDGE",
    "CHAT_MODEL",
    "JWKS_URL",
    "JWKS",
    "JWT_SECRET",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_LEEWAY_SECS",
    "JWKS_REFRESH_SECS",
    "CORS_ORIGINS",
    "MAX_BODY_BYTES",
    "SHUTDOWN_GRACE_SECS",
    "CHATKIT_WORKFLOW_ID",
    "CHATKIT_API_BASE",
    "CHATKIT_DEV_STREAM_DELAY_MS",
    "LOG_FORMAT",
    "MAX_TURNS",
    "HISTORY_ITEMS",
    "TOOL_TIMEOUT_SECS",
    "RUST_LOG",
    "DATABASE_URL_DIRECT",
    "DATABASE_POOLER",
    "TURN_LEASE_SECS",
    "MCP_STATELESS",
];

/// A `serve` child process.
pub struct ServeChild {
    child: Child,
    addr: SocketAddr,
}

impl ServeChild {
    /// Starts `bin` with `HOST=127.0.0.1`, `PORT=0` and `env`, its stderr
    /// appended to `log`, and waits up to `timeout` for the banner that
    /// names the bound address.
    pub fn spawn(
        bin: &Path,
        env: &[(&str, String)],
        log: &Path,
        timeout: Duration,
    ) -> Result<Self, String> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let mut command = Command::new(bin);
        for name in SERVE_ENV {
            command.env_remove(name);
        }
        command.env("HOST", "127.0.0.1").env("PORT", "0");
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err("serve's stdout is not captured".into());
        };
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        // Reads the banner, then drains stdout until serve exits.
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent && let Some(addr) = banner_addr(&line) {
                    sent = tx.send(addr).is_ok();
                }
            }
        });
        let deadline = Instant::now() + timeout;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(addr) => return Ok(Self { child, addr }),
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(format!(
                            "serve exited with {status} before listening (log: {})",
                            log.display()
                        ));
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "serve did not print its address within {timeout:?} (log: {})",
                        log.display()
                    ));
                }
            }
        }
    }

    /// The address serve listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (through `kill(1)`), up to `grace` to exit, then SIGKILL.
    pub fn terminate(&mut self, grace: Duration) {
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if sent {
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if !self.is_running() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.kill();
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        if self.is_running() {
            self.kill();
        }
    }
}

/// The address in serve's banner line `... listening on http://ADDR`.
pub fn banner_addr(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("listening on http://")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// CPU time a process used so far.
#[derive(Clone, Copy, Debug)]
pub struct CpuTime {
    /// In the process's own code (user mode).
    pub user: Duration,
    /// In the kernel on its behalf (system calls: sockets, files).
    pub system: Duration,
}

impl CpuTime {
    /// User + system.
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// The time used between `earlier` and this reading.
    pub fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// User and system CPU time of `pid` so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Option<CpuTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) in parens.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = clock_ticks_per_sec();
    let time = |t: u64| Duration::from_micros(t * 1_000_000 / ticks);
    Some(CpuTime {
        user: time(utime),
        system: time(stime),
    })
}

/// Resident set size of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Open file descriptors of `pid`.
pub fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

/// `getconf CLK_TCK` (the unit of `/proc/<pid>/stat` times); 100 when it
/// cannot be read.
pub fn clock_ticks_per_sec() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}
