//! `loadtest`: load for `serve` with a built-in OpenAI-compatible fake
//! provider, and the check of the performance targets.
//!
//! ```text
//! cargo build --release -p chatkit-engine-examples --bin serve --bin loadtest
//! $CARGO_TARGET_DIR/release/loadtest --users 32 --turns 20          # starts serve itself
//! $CARGO_TARGET_DIR/release/loadtest --open-streams 2000 --turns 0
//! $CARGO_TARGET_DIR/release/loadtest --help
//! ```
//!
//! Phases (each one skipped when its count is 0):
//!
//! 1. **turns**: `--users` concurrent users, each `--turns` turns (a
//!    `threads.create`, then `threads.add_user_message`s); `--tool-ratio` of
//!    the users ask for a tool on every turn (`create_task`/`list_tasks`).
//!    Reports turns/s, time to response headers, to the first event, to the
//!    first text delta and to the end of the turn (p50/p90/p99/max), errors
//!    by kind, server CPU per turn and the server's RSS over the run.
//! 2. **items.list**: one thread with at least 50 items, then
//!    `--list-requests` sequential `items.list` calls of 50 items.
//! 3. **open streams**: `--open-streams` turns held open by the fake
//!    provider after their first text delta; the server's RSS growth divided
//!    by the number of open streams.
//!
//! Several replicas: give `--url` once per replica; the turns phase sends
//! each request to the next one (round-robin, no stickiness: a user's
//! consecutive turns land on different replicas). A turn refused with
//! `thread_busy` (its thread's previous turn died with a killed replica and
//! holds the lease until it expires) is retried, as a ChatKit client may
//! (`allow_retry`), and counted apart; a request whose connection is refused
//! goes to the next replica, as a load balancer's would. `--verify-items`
//! then reads every thread back and counts the stored items of completed
//! turns that are missing; `--summary-json` writes the counts, with the
//! errors per replica, for scripts.
//!
//! Without `--url` the tool starts the `serve` binary next to itself as a
//! child process (fresh SQLite file in a temp directory unless
//! `--database-url`), pointed at the fake provider, so it can read the
//! server's CPU time and RSS from `/proc`. With `--url` it targets a running
//! server (give `--pid` for CPU/RSS, `--jwt-secret` if it verifies
//! HS256 tokens, and start it with `OPENAI_BASE_URL` set to the fake
//! provider, whose port `--provider-port` fixes).

// Shared with examples/tests/faults.rs, which uses parts this binary does not.
#[allow(dead_code)]
#[path = "../loadtest/mod.rs"]
mod loadtest;

use clap::Parser;
use loadtest::client::{self, Samples, TurnOptions, TurnTiming};
use loadtest::provider::{FakeProvider, HOLD_MARKER, ProviderConfig, TOOL_MARKER};
use loadtest::server::{self, ServeChild};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

const CPU_TARGET_MS: f64 = 1.0;
const FIRST_EVENT_P99_TARGET_MS: f64 = 10.0;
const STREAM_RSS_TARGET_KIB: f64 = 20.0;
const LIST_P99_TARGET_MS: f64 = 2.0;
/// Streams the open-streams phase multiplexes on one HTTP/2 connection
/// (browsers allow about 100).
const STREAMS_PER_HTTP2_CONNECTION: usize = 100;

/// Load for `serve` with a built-in fake model provider (loopback only).
#[derive(Clone, Debug, Parser)]
#[command(name = "loadtest", max_term_width = 100)]
struct Args {
    /// Target a running server (http://127.0.0.1:PORT) instead of starting
    /// `serve`; repeat it for several replicas (round-robin). Only loopback
    /// addresses are accepted.
    #[arg(long)]
    url: Vec<String>,

    /// After the turns phase, read every thread back and count the items of
    /// completed turns that are not stored (any missing one fails the run).
    #[arg(long)]
    verify_items: bool,

    /// Write the turns phase's counts as JSON to this file.
    #[arg(long)]
    summary_json: Option<PathBuf>,

    /// With --url: the process id of the server (any host: uvicorn, `next
    /// start`, ...), whose CPU time (user + system) and RSS are read from
    /// `/proc` before, during (every 0.5 s) and after each phase.
    #[arg(long = "pid", visible_alias = "server-pid")]
    server_pid: Option<u32>,

    /// Sign HS256 tokens with this secret (the server's JWT_SECRET) instead
    /// of using the development sign-in (`POST /api/dev/token`).
    #[arg(long, hide_env_values = true)]
    jwt_secret: Option<String>,

    /// The `serve` binary to start (default: next to this binary).
    #[arg(long)]
    serve_bin: Option<PathBuf>,

    /// DATABASE_URL of the started server (default: a new SQLite file in a
    /// temporary directory).
    #[arg(long)]
    database_url: Option<String>,

    /// RUST_LOG of the started server (its log goes to a file in the
    /// temporary directory).
    #[arg(long, default_value = "warn")]
    server_log: String,

    /// Concurrent users of the turns phase.
    #[arg(long, default_value_t = 32)]
    users: usize,

    /// Turns per user (0 skips the phase).
    #[arg(long, default_value_t = 10)]
    turns: usize,

    /// Share of users whose turns call a tool (0.0 to 1.0).
    #[arg(long, default_value_t = 0.5)]
    tool_ratio: f64,

    /// Text tokens per fake answer.
    #[arg(long, default_value_t = 20)]
    answer_tokens: usize,

    /// Pause of the fake provider before each text token, in milliseconds.
    #[arg(long, default_value_t = 0)]
    token_delay_ms: u64,

    /// Mean pause of each user before each turn, in milliseconds: a person
    /// reading the answer and typing. Each pause is drawn uniformly from
    /// 0 to twice this, so users do not send in lockstep. 0 sends every turn
    /// the moment the previous one ends (a closed loop that saturates the
    /// machine).
    #[arg(long, default_value_t = 0)]
    think_ms: u64,

    /// Port of the fake provider (0 picks one; fix it when the server is
    /// started by hand with OPENAI_BASE_URL=http://127.0.0.1:PORT/v1).
    #[arg(long, default_value_t = 0)]
    provider_port: u16,

    /// `items.list` requests of 50 items to time (0 skips the phase).
    #[arg(long, default_value_t = 0)]
    list_requests: usize,

    /// Streams to hold open at once (0 skips the phase).
    #[arg(long, default_value_t = 0)]
    open_streams: usize,

    /// The started server speaks HTTP/2 to the fake provider
    /// (`OPENAI_HTTP2_PRIOR_KNOWLEDGE=true`), so its model calls share one
    /// connection, as they do with an HTTPS provider that offers HTTP/2.
    /// Without it every open answer has its own HTTP/1.1 connection.
    #[arg(long)]
    provider_http2: bool,

    /// The open-streams phase talks to the server over HTTP/2 (h2c with
    /// prior knowledge), 100 streams to a connection, as a browser does over
    /// HTTPS or a proxy speaking HTTP/2 to its upstream. Without it every
    /// open stream has its own HTTP/1.1 connection.
    #[arg(long)]
    client_http2: bool,

    /// Per-request time limit, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("loadtest: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Where the server under load runs and how to call it.
struct Target {
    base: String,
    /// Every replica (round-robin in the turns phase); `base` is the first.
    bases: Vec<String>,
    pid: Option<u32>,
    child: Option<ServeChild>,
    jwt_secret: Option<String>,
    database: String,
}

struct Report {
    lines: Vec<String>,
    targets: Vec<String>,
}

impl Report {
    fn line(&mut self, line: impl Into<String>) {
        let line = line.into();
        println!("{line}");
        self.lines.push(line);
    }

    fn target(&mut self, name: &str, value: Option<f64>, limit: f64, unit: &str, note: &str) {
        let line = match value {
            Some(v) => format!(
                "  {name:<44} {v:>9.3} {unit:<4} target < {limit} {unit}: {}{note}",
                if v < limit { "MET" } else { "MISSED" }
            ),
            None => format!("  {name:<44} not measured{note}"),
        };
        self.targets.push(line);
    }
}

async fn run(args: Args) -> Result<(), String> {
    raise_nofile_limit();
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let provider = FakeProvider::start(
        ProviderConfig {
            answer_tokens: args.answer_tokens.max(1),
            token_delay: Duration::from_millis(args.token_delay_ms),
        },
        args.provider_port,
    )
    .await
    .map_err(|e| format!("cannot start the fake provider: {e}"))?;
    let tmp = std::env::temp_dir().join(format!("chatkit-loadtest-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;

    let mut target = start_target(&args, &provider, &tmp)?;
    let http = client::http_client()?;
    for base in &target.bases {
        wait_ready(&http, base, timeout).await?;
    }

    let mut report = Report {
        lines: Vec::new(),
        targets: Vec::new(),
    };
    report.line(format!(
        "loadtest: server {} (pid {}), database {}, fake provider {} ({} tokens, {} ms/token), \
         think time {} ms",
        target.bases.join(" "),
        target
            .pid
            .map_or_else(|| "unknown".to_owned(), |p| p.to_string()),
        target.database,
        provider.base_url(),
        args.answer_tokens.max(1),
        args.token_delay_ms,
        args.think_ms
    ));
    if let Some(pid) = target.pid {
        report.line(format!(
            "server at start: RSS {} KiB",
            server::rss_kib(pid).unwrap_or(0)
        ));
    }

    let result = async {
        if args.turns > 0 && args.users > 0 {
            turns_phase(&args, &target, &http, &provider, timeout, &mut report).await?;
        }
        if args.list_requests > 0 {
            list_phase(&args, &target, &http, timeout, &mut report).await?;
        }
        if args.open_streams > 0 {
            streams_phase(&args, &target, &http, &provider, timeout, &mut report).await?;
        }
        Ok::<(), String>(())
    }
    .await;

    println!("\ntargets (checked by this tool, never by timed tests):");
    for line in &report.targets {
        println!("{line}");
    }
    provider.release_held();
    if let Some(mut child) = target.child.take() {
        child.terminate(Duration::from_secs(10));
    }
    provider.stop();
    if result.is_ok() && args.database_url.is_none() && args.url.is_empty() {
        let _ = std::fs::remove_dir_all(&tmp);
    } else {
        println!("server log and data kept in {}", tmp.display());
    }
    result
}

fn start_target(
    args: &Args,
    provider: &FakeProvider,
    tmp: &std::path::Path,
) -> Result<Target, String> {
    if !args.url.is_empty() {
        let mut bases = Vec::with_capacity(args.url.len());
        for url in &args.url {
            let url = url.trim_end_matches('/').to_owned();
            let host = url
                .strip_prefix("http://")
                .and_then(|rest| rest.split('/').next())
                .ok_or("--url must be http://127.0.0.1:PORT (loopback only)")?;
            let loopback = host.starts_with("127.")
                || host.starts_with("[::1]")
                || host.starts_with("localhost");
            if !loopback {
                return Err(format!("--url must be a loopback address (got {url})"));
            }
            bases.push(url);
        }
        println!(
            "targeting {}; their OPENAI_BASE_URL must be {} (use --provider-port to fix the port)",
            bases.join(" "),
            provider.base_url()
        );
        return Ok(Target {
            base: bases[0].clone(),
            bases,
            pid: args.server_pid,
            child: None,
            jwt_secret: args.jwt_secret.clone(),
            database: "(the server's)".into(),
        });
    }
    let bin = match &args.serve_bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find this binary: {e}"))?
            .with_file_name("serve"),
    };
    let database = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/chatkit.db", tmp.display()));
    let secret = match &args.jwt_secret {
        Some(secret) => secret.clone(),
        None => random_secret()?,
    };
    let env = [
        ("DATABASE_URL", database.clone()),
        ("OPENAI_API_KEY", "loadtest-key".to_owned()),
        ("OPENAI_BASE_URL", provider.base_url()),
        ("CHAT_MODEL", "loadtest-model".to_owned()),
        ("JWT_SECRET", secret.clone()),
        ("RUST_LOG", args.server_log.clone()),
        ("SHUTDOWN_GRACE_SECS", "5".to_owned()),
        (
            "OPENAI_HTTP2_PRIOR_KNOWLEDGE",
            args.provider_http2.to_string(),
        ),
    ];
    let log = tmp.join("serve.log");
    let child = ServeChild::spawn(&bin, &env, &log, Duration::from_secs(60)).map_err(|e| {
        format!("{e}\n(build it with `cargo build --release -p chatkit-engine-examples --bin serve`, or pass --serve-bin)")
    })?;
    Ok(Target {
        base: child.base_url(),
        bases: vec![child.base_url()],
        pid: Some(child.pid()),
        child: Some(child),
        jwt_secret: Some(secret),
        database: chatkit_engine::config::redact_url(&database),
    })
}

fn random_secret() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Raises the soft open-files limit to the hard one (inherited by the
/// started server); each open stream costs two descriptors on each side.
fn raise_nofile_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && current < maximum
    {
        let raised = rustix::process::Rlimit {
            current: Some(maximum),
            maximum: Some(maximum),
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            println!("open files limit raised from {current} to {maximum}");
        }
    }
}

fn nofile_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

async fn wait_ready(http: &reqwest::Client, base: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        // A host without a `/readyz` route (the FastAPI or Next.js example)
        // answers 404: it is listening, which is all a `--url` target needs.
        let ok = http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success() || r.status() == reqwest::StatusCode::NOT_FOUND);
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{base}/readyz did not answer 200 within {timeout:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn token_for(http: &reqwest::Client, target: &Target, user: &str) -> Result<String, String> {
    match &target.jwt_secret {
        Some(secret) => client::sign_token(secret, user),
        None => client::dev_token(http, &target.base, user).await,
    }
}

/// A user's pauses between turns: uniform in `0..=2 * mean`, from a small
/// deterministic generator (splitmix64) so runs are repeatable.
struct ThinkTime {
    mean_ms: u64,
    state: u64,
}

impl ThinkTime {
    fn new(mean_ms: u64, user: u64) -> Self {
        Self {
            mean_ms,
            state: user.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03,
        }
    }

    async fn pause(&mut self) {
        if self.mean_ms == 0 {
            return;
        }
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let ms = z % self.mean_ms.saturating_mul(2).saturating_add(1);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

fn run_id() -> String {
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Default)]
struct PhaseStats {
    headers: Samples,
    first_event: Samples,
    first_delta: Samples,
    end: Samples,
    ok: u64,
    errors: BTreeMap<String, u64>,
    /// Errors by replica (base URL), then kind.
    errors_by_url: BTreeMap<String, BTreeMap<String, u64>>,
    /// Turns retried because their thread was busy.
    busy_retries: u64,
    /// Requests sent to the next replica after a refused connection.
    failovers: u64,
}

impl PhaseStats {
    fn add(&mut self, base: &str, t: &TurnTiming) {
        match &t.error {
            Some(kind) => {
                *self.errors.entry(kind.clone()).or_default() += 1;
                *self
                    .errors_by_url
                    .entry(base.to_owned())
                    .or_default()
                    .entry(kind.clone())
                    .or_default() += 1;
            }
            None => {
                self.ok += 1;
                if let Some(d) = t.headers {
                    self.headers.push(d);
                }
                if let Some(d) = t.first_event {
                    self.first_event.push(d);
                }
                if let Some(d) = t.first_delta {
                    self.first_delta.push(d);
                }
                if let Some(d) = t.end {
                    self.end.push(d);
                }
            }
        }
    }

    fn merge(&mut self, other: PhaseStats) {
        self.headers.extend(&other.headers);
        self.first_event.extend(&other.first_event);
        self.first_delta.extend(&other.first_delta);
        self.end.extend(&other.end);
        self.ok += other.ok;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (url, kinds) in other.errors_by_url {
            let entry = self.errors_by_url.entry(url).or_default();
            for (k, v) in kinds {
                *entry.entry(k).or_default() += v;
            }
        }
        self.busy_retries += other.busy_retries;
        self.failovers += other.failovers;
    }
}

async fn turns_phase(
    args: &Args,
    target: &Target,
    http: &reqwest::Client,
    provider: &FakeProvider,
    timeout: Duration,
    report: &mut Report,
) -> Result<(), String> {
    let run = run_id();
    let bases = Arc::new(target.bases.clone());
    let tool_users = ((args.users as f64) * args.tool_ratio.clamp(0.0, 1.0)).round() as usize;
    let mut tokens = Vec::with_capacity(args.users);
    for i in 0..args.users {
        tokens.push(token_for(http, target, &format!("load-{run}-{i}")).await?);
    }
    let total = (args.users * args.turns) as u64;
    report.line(format!(
        "\n== turns: {} users x {} turns = {total} turns ({tool_users} users call a tool every turn)",
        args.users, args.turns
    ));

    let done = Arc::new(AtomicU64::new(0));
    let calls_before = provider.calls();
    let cpu_before = target.pid.and_then(server::cpu_time);
    let rss_before = target.pid.and_then(server::rss_kib);
    let sampler = target.pid.map(|pid| {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut samples: Vec<(u64, u64)> = Vec::new();
            let mut cpu: Vec<(Instant, server::CpuTime)> = Vec::new();
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let Some(rss) = server::rss_kib(pid) else {
                    break;
                };
                let n = done.load(Ordering::Relaxed);
                samples.push((n, rss));
                if let Some(time) = server::cpu_time(pid) {
                    cpu.push((Instant::now(), time));
                }
                if n >= total {
                    break;
                }
            }
            (samples, cpu)
        })
    });

    let started = Instant::now();
    let mut handles = Vec::with_capacity(args.users);
    for (i, token) in tokens.iter().cloned().enumerate() {
        let http = http.clone();
        let bases = Arc::clone(&bases);
        let done = Arc::clone(&done);
        let turns = args.turns;
        let tool = i < tool_users;
        let mut think = ThinkTime::new(args.think_ms, i as u64);
        handles.push(tokio::spawn(async move {
            let mut stats = PhaseStats::default();
            let mut completed = UserTurns::default();
            let mut thread_id: Option<String> = None;
            let options = TurnOptions {
                timeout,
                stop_at_first_delta: false,
            };
            // Round-robin over the replicas, offset per user.
            let mut next = i;
            for t in 0..turns {
                think.pause().await;
                let text = if tool {
                    format!("{TOOL_MARKER} please add task number {t}")
                } else {
                    format!("hello, this is message {t}")
                };
                let busy_until = Instant::now() + timeout;
                let mut refused = 0;
                let (base, timing) = loop {
                    let base = &bases[next % bases.len()];
                    next += 1;
                    let body = match &thread_id {
                        Some(id) => client::add_message_body(id, &text),
                        None => client::create_body(&text),
                    };
                    let url = format!("{base}/chatkit");
                    let (timing, _) = client::stream_turn(&http, &url, &token, body, options).await;
                    match timing.error.as_deref() {
                        Some(kind)
                            if client::never_reached_a_server(kind) && refused < bases.len() =>
                        {
                            refused += 1;
                            stats.failovers += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Some(client::BUSY_ERROR) if Instant::now() < busy_until => {
                            stats.busy_retries += 1;
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        _ => break (base.clone(), timing),
                    }
                };
                if thread_id.is_none() {
                    thread_id.clone_from(&timing.thread_id);
                }
                if timing.error.is_none()
                    && let Some(id) = &thread_id
                {
                    completed.record(id, &text);
                }
                stats.add(&base, &timing);
                done.fetch_add(1, Ordering::Relaxed);
            }
            (stats, completed)
        }));
    }
    let mut stats = PhaseStats::default();
    let mut completed = Vec::with_capacity(args.users);
    for handle in handles {
        match handle.await {
            Ok((s, turns)) => {
                stats.merge(s);
                completed.push(turns);
            }
            Err(err) => {
                *stats
                    .errors
                    .entry(format!("task_failed: {err}"))
                    .or_default() += 1
            }
        }
    }
    let wall = started.elapsed();
    let cpu_after = target.pid.and_then(server::cpu_time);
    let rss_after = target.pid.and_then(server::rss_kib);
    let (samples, cpu_samples) = match sampler {
        Some(handle) => handle.await.unwrap_or_default(),
        None => (Vec::new(), Vec::new()),
    };

    let failed: u64 = stats.errors.values().sum();
    report.line(format!(
        "wall {:.2} s, {} ok, {failed} failed, {:.1} turns/s; {} model calls ({} tool calls in total)",
        wall.as_secs_f64(),
        stats.ok,
        stats.ok as f64 / wall.as_secs_f64().max(1e-9),
        provider.calls() - calls_before,
        provider.tool_calls()
    ));
    report.line("latency, ms (from request sent):");
    report.line(format!("  response headers  {}", stats.headers.summary()));
    report.line(format!(
        "  first event       {}",
        stats.first_event.summary()
    ));
    report.line(format!(
        "  first text delta  {}",
        stats.first_delta.summary()
    ));
    report.line(format!("  end of turn       {}", stats.end.summary()));
    if stats.errors.is_empty() {
        report.line("errors: none");
    } else {
        report.line("errors by kind:");
        for (kind, n) in &stats.errors {
            report.line(format!("  {kind:<40} {n}"));
        }
        if bases.len() > 1 {
            report.line("errors by replica:");
            for (url, kinds) in &stats.errors_by_url {
                let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
                report.line(format!("  {url:<40} {}", kinds.join(", ")));
            }
        }
    }
    if stats.busy_retries > 0 || stats.failovers > 0 {
        report.line(format!(
            "retried: {} turns refused as thread_busy, {} requests moved to the next replica \
             after a refused connection",
            stats.busy_retries, stats.failovers
        ));
    }
    let lost = if args.verify_items {
        let lost = verify_items(http, &bases, &tokens, &completed, timeout).await?;
        report.line(format!(
            "stored items: {lost} items of completed turns missing ({} completed turns checked)",
            stats.ok
        ));
        Some(lost)
    } else {
        None
    };
    if let Some(path) = &args.summary_json {
        let summary = serde_json::json!({
            "turns": total,
            "ok": stats.ok,
            "errors": stats.errors,
            "errors_by_url": stats.errors_by_url,
            "busy_retries": stats.busy_retries,
            "failovers": stats.failovers,
            "lost_items": lost,
        });
        std::fs::write(path, summary.to_string())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(lost) = lost
        && lost > 0
    {
        return Err(format!(
            "{lost} stored items of completed turns are missing"
        ));
    }
    let cpu_per_turn = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) if stats.ok > 0 => {
            let used = b.since(&a);
            let turns = (stats.ok + failed) as f64;
            let per_turn = |d: Duration| d.as_secs_f64() * 1000.0 / turns;
            let ms = per_turn(used.total());
            report.line(format!(
                "server CPU: {:.0} ms over the phase = {ms:.3} ms per turn: {:.3} user + {:.3} \
                 kernel ({:.0}% of one core; /proc tick {} ms)",
                used.total().as_secs_f64() * 1000.0,
                per_turn(used.user),
                per_turn(used.system),
                used.total().as_secs_f64() * 100.0 / wall.as_secs_f64().max(1e-9),
                1000 / server::clock_ticks_per_sec()
            ));
            Some(ms)
        }
        _ => {
            report.line("server CPU: unknown (no server pid)");
            None
        }
    };
    if let (Some(a), Some(b)) = (rss_before, rss_after) {
        let during = samples.iter().map(|(_, rss)| *rss);
        let (low, high) = during.fold((a.min(b), a.max(b)), |(lo, hi), rss| {
            (lo.min(rss), hi.max(rss))
        });
        report.line(format!(
            "server RSS: {a} KiB before, {b} KiB after, {:.1}-{:.1} MiB over the phase",
            low as f64 / 1024.0,
            high as f64 / 1024.0
        ));
    }
    if let Some(line) = cpu_band(&cpu_samples) {
        report.line(line);
    }
    let growth = memory_growth(&samples, total, report);
    let db = if target.database.starts_with("sqlite") {
        " (SQLite: database work is inside the server process)"
    } else {
        ""
    };
    report.target("engine CPU per turn", cpu_per_turn, CPU_TARGET_MS, "ms", db);
    let at = if args.users == 32 {
        String::new()
    } else {
        format!(" (at {} users, target is for 32)", args.users)
    };
    report.target(
        "p99 time to first event (32 users, loopback)",
        stats.first_event.percentile_ms(99.0),
        FIRST_EVENT_P99_TARGET_MS,
        "ms",
        &at,
    );
    match growth {
        Some((kib, turns)) => report.targets.push(format!(
            "  {:<44} {kib:>+9} KiB between the first 20% and the end of {turns} turns (target: none over 100,000 turns)",
            "memory growth"
        )),
        None => report.targets.push(format!("  {:<44} not measured", "memory growth")),
    }
    Ok(())
}

/// The server's CPU use between consecutive samples, as a share of one
/// core: its median and range over the phase (a host whose use swings, a
/// GC or a stalled event loop, shows here).
fn cpu_band(samples: &[(Instant, server::CpuTime)]) -> Option<String> {
    let mut shares: Vec<f64> = samples
        .windows(2)
        .filter_map(|pair| {
            let wall = pair[1].0.duration_since(pair[0].0).as_secs_f64();
            (wall > 0.0).then(|| pair[1].1.since(&pair[0].1).total().as_secs_f64() * 100.0 / wall)
        })
        .collect();
    if shares.is_empty() {
        return None;
    }
    shares.sort_by(f64::total_cmp);
    Some(format!(
        "server CPU over the phase, % of one core per 0.5 s sample: median {:.0}, {:.0}-{:.0}",
        shares[shares.len() / 2],
        shares[0],
        shares[shares.len() - 1]
    ))
}

/// The turns of one user that completed, by thread: the user's texts.
#[derive(Default)]
struct UserTurns {
    threads: BTreeMap<String, Vec<String>>,
}

impl UserTurns {
    fn record(&mut self, thread_id: &str, text: &str) {
        self.threads
            .entry(thread_id.to_owned())
            .or_default()
            .push(text.to_owned());
    }
}

/// Reads each user's threads back (round-robin over the replicas too) and
/// counts what completed turns left missing: a user message not stored, or
/// fewer assistant answers than completed turns.
async fn verify_items(
    http: &reqwest::Client,
    bases: &[String],
    tokens: &[String],
    completed: &[UserTurns],
    timeout: Duration,
) -> Result<u64, String> {
    let mut lost = 0u64;
    let mut next = 0usize;
    for (token, turns) in tokens.iter().zip(completed) {
        for (thread_id, texts) in &turns.threads {
            let mut users: Vec<String> = Vec::new();
            let mut answers = 0usize;
            let mut after: Option<String> = None;
            loop {
                let url = format!("{}/chatkit", bases[next % bases.len()]);
                next += 1;
                let body = client::items_page_body(thread_id, 100, after.as_deref());
                let (_, page) = client::json_request(http, &url, token, body, timeout)
                    .await
                    .map_err(|e| format!("items.list of {thread_id} failed: {e}"))?;
                let data = page["data"].as_array().cloned().unwrap_or_default();
                for item in &data {
                    match item["type"].as_str() {
                        Some("user_message") => users.push(
                            item["content"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(|part| part["text"].as_str())
                                .collect(),
                        ),
                        Some("assistant_message") => answers += 1,
                        _ => {}
                    }
                }
                match (page["has_more"].as_bool(), data.last()) {
                    (Some(true), Some(last)) => after = last["id"].as_str().map(str::to_owned),
                    _ => break,
                }
            }
            lost += texts.iter().filter(|text| !users.contains(text)).count() as u64;
            lost += texts.len().saturating_sub(answers) as u64;
        }
    }
    Ok(lost)
}

/// RSS after 20% of the turns (warm-up) and at the end; prints the curve.
fn memory_growth(samples: &[(u64, u64)], total: u64, report: &mut Report) -> Option<(i64, u64)> {
    if samples.len() < 2 {
        return None;
    }
    let mut curve = Vec::new();
    for tenth in 1..=10u64 {
        let mark = total * tenth / 10;
        if let Some((n, rss)) = samples.iter().find(|(n, _)| *n >= mark) {
            curve.push(format!("{n}:{rss}"));
        }
    }
    report.line(format!("server RSS (turns:KiB) {}", curve.join(" ")));
    let warm = samples.iter().find(|(n, _)| *n >= total / 5)?;
    let last = samples.last()?;
    Some((last.1 as i64 - warm.1 as i64, last.0))
}

async fn list_phase(
    args: &Args,
    target: &Target,
    http: &reqwest::Client,
    timeout: Duration,
    report: &mut Report,
) -> Result<(), String> {
    let url = format!("{}/chatkit", target.base);
    let token = token_for(http, target, &format!("load-list-{}", run_id())).await?;
    let options = TurnOptions {
        timeout,
        stop_at_first_delta: false,
    };
    let (first, _) =
        client::stream_turn(http, &url, &token, client::create_body("hello"), options).await;
    let thread_id = first
        .thread_id
        .ok_or_else(|| format!("items.list phase: threads.create failed: {:?}", first.error))?;
    // Each turn adds the user message and the answer.
    let mut items = 0usize;
    for i in 0..60 {
        let body = client::items_list_body(&thread_id, 50);
        let (_, page) = client::json_request(http, &url, &token, body, timeout)
            .await
            .map_err(|e| format!("items.list failed: {e}"))?;
        items = page["data"].as_array().map_or(0, Vec::len);
        if items >= 50 {
            break;
        }
        let body = client::add_message_body(&thread_id, &format!("message {i}"));
        let (t, _) = client::stream_turn(http, &url, &token, body, options).await;
        if let Some(err) = t.error {
            return Err(format!("items.list phase: turn failed: {err}"));
        }
    }
    if items < 50 {
        return Err(format!(
            "items.list phase: the thread has only {items} items"
        ));
    }
    report.line(format!(
        "\n== items.list: {} sequential requests of 50 items (database {})",
        args.list_requests, target.database
    ));
    let mut samples = Samples::default();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..(args.list_requests + 20) {
        let body = client::items_list_body(&thread_id, 50);
        match client::json_request(http, &url, &token, body, timeout).await {
            Ok((elapsed, _)) if i >= 20 => samples.push(elapsed),
            Ok(_) => {}
            Err(e) => *errors.entry(e).or_default() += 1,
        }
    }
    report.line(format!("  items.list (50)   {}", samples.summary()));
    if !errors.is_empty() {
        report.line(format!("  errors: {errors:?}"));
    }
    let note = if target.database.starts_with("postgres") {
        String::new()
    } else {
        format!(
            " (on {}, target is for Postgres)",
            target.database.split(':').next().unwrap_or("?")
        )
    };
    report.target(
        "items.list of 50 items p99 (Postgres)",
        samples.percentile_ms(99.0),
        LIST_P99_TARGET_MS,
        "ms",
        &note,
    );
    Ok(())
}

async fn streams_phase(
    args: &Args,
    target: &Target,
    http: &reqwest::Client,
    provider: &FakeProvider,
    timeout: Duration,
    report: &mut Report,
) -> Result<(), String> {
    let n = args.open_streams;
    if let Some(limit) = nofile_limit() {
        // Each stream: a client socket here and in the server, plus a
        // provider socket on each side unless the model calls share one
        // HTTP/2 connection.
        let client_sockets = if args.client_http2 {
            n.div_ceil(STREAMS_PER_HTTP2_CONNECTION) as u64
        } else {
            n as u64
        };
        let provider_sockets = if args.provider_http2 { 0 } else { n as u64 };
        let needed = client_sockets + provider_sockets + 200;
        if needed > limit {
            return Err(format!(
                "{n} open streams need about {needed} open files per process; the limit is {limit} \
                 (raise `ulimit -n` or open fewer streams)"
            ));
        }
    }
    let url = format!("{}/chatkit", target.base);
    // Over HTTP/2, one client (one connection) per 100 streams; reqwest
    // keeps a single HTTP/2 connection per host and queues beyond it.
    let clients = if args.client_http2 {
        (0..n.div_ceil(STREAMS_PER_HTTP2_CONNECTION))
            .map(|_| client::http2_client())
            .collect::<Result<Vec<_>, _>>()?
    } else {
        vec![http.clone()]
    };
    let connections = if args.client_http2 { clients.len() } else { n };
    let run = run_id();
    let users = n.div_ceil(10).max(1);
    let mut tokens = Vec::with_capacity(users);
    for i in 0..users {
        tokens.push(token_for(http, target, &format!("stream-{run}-{i}")).await?);
    }
    report.line(format!(
        "\n== open streams: {n} turns held open after their first text delta ({users} users, \
         {connections} {} connections)",
        if args.client_http2 {
            "HTTP/2"
        } else {
            "HTTP/1.1"
        }
    ));
    // Let the allocator settle after earlier phases.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = target.pid.and_then(server::rss_kib);
    let fds_before = target.pid.and_then(server::open_fds);
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(64));
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let http = clients[(i / STREAMS_PER_HTTP2_CONNECTION) % clients.len()].clone();
        let url = url.clone();
        let token = tokens[i % users].clone();
        let gate = Arc::clone(&gate);
        handles.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let options = TurnOptions {
                timeout,
                stop_at_first_delta: true,
            };
            let body = client::create_body(&format!("{HOLD_MARKER} stream {i}"));
            let (timing, open) = client::stream_turn(&http, &url, &token, body, options).await;
            drop(permit);
            (timing, open)
        }));
    }
    let mut open = Vec::with_capacity(n);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut first_delta = Samples::default();
    for handle in handles {
        match handle.await {
            Ok((timing, Some(res))) => {
                if let Some(d) = timing.first_delta {
                    first_delta.push(d);
                }
                open.push(res);
            }
            Ok((timing, None)) => {
                let kind = timing.error.unwrap_or_else(|| "ended_early".into());
                *errors.entry(kind).or_default() += 1;
            }
            Err(err) => *errors.entry(format!("task_failed: {err}")).or_default() += 1,
        }
    }
    let opened_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_open = target.pid.and_then(server::rss_kib);
    let fds_open = target.pid.and_then(server::open_fds);
    report.line(format!(
        "{} streams open after {:.2} s; time to first text delta {}",
        open.len(),
        opened_in.as_secs_f64(),
        first_delta.summary()
    ));
    if !errors.is_empty() {
        report.line(format!("errors while opening: {errors:?}"));
    }
    let per_stream = match (rss_before, rss_open) {
        (Some(a), Some(b)) if !open.is_empty() => {
            let per = (b as f64 - a as f64) / open.len() as f64;
            report.line(format!(
                "server RSS {a} KiB before, {b} KiB with the streams open: {per:.1} KiB per open \
                 stream; server open files {} -> {}",
                fds_before.unwrap_or(0),
                fds_open.unwrap_or(0)
            ));
            // The server holds every client connection; if the process does
            // not, the pid is not the server's (a wrapper such as a profiler
            // started it).
            let grew = fds_open
                .unwrap_or(0)
                .saturating_sub(fds_before.unwrap_or(0));
            let held = if args.client_http2 {
                clients.len()
            } else {
                open.len()
            };
            if grew < held / 2 {
                report.line(format!(
                    "pid {} did not open the streams' connections: not measured",
                    target.pid.unwrap_or(0)
                ));
                None
            } else {
                Some(per)
            }
        }
        _ => None,
    };

    // Let the held answers finish and read every stream to its end.
    provider.release_held();
    let count = open.len();
    let mut drains = Vec::with_capacity(count);
    for mut res in open {
        drains.push(tokio::spawn(async move {
            let read = async {
                let mut errored = false;
                loop {
                    match res.chunk().await {
                        Ok(Some(chunk)) => {
                            if chunk.windows(16).any(|w| w == b"{\"type\":\"error\"") {
                                errored = true;
                            }
                        }
                        Ok(None) => return !errored,
                        Err(_) => return false,
                    }
                }
            };
            tokio::time::timeout(timeout, read).await.unwrap_or(false)
        }));
    }
    let mut finished = 0usize;
    for handle in drains {
        if handle.await.unwrap_or(false) {
            finished += 1;
        }
    }
    report.line(format!(
        "released: {finished} of {count} streams finished cleanly; server RSS afterwards {} KiB",
        target.pid.and_then(server::rss_kib).unwrap_or(0)
    ));
    let note = if n < 10_000 {
        format!(" ({n} streams; target is for 10,000)")
    } else {
        String::new()
    };
    report.target(
        "RSS per open stream",
        per_stream,
        STREAM_RSS_TARGET_KIB,
        "KiB",
        &note,
    );
    Ok(())
}
