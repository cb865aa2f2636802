//! Server-level fault tests: the real `serve` binary runs as a child process
//! against the load tool's fake model provider.
//!
//! - `serve` killed with SIGKILL in the middle of a streamed answer and
//!   started again on the same database: the user message and every item the
//!   stream had completed are there, and the thread takes a new message.
//! - PostgreSQL restarted in the middle of a load (a private cluster made with
//!   `initdb`, never the machine's shared server): requests during the outage
//!   fail cleanly (a JSON error or an `error` event, never a hang or a cut
//!   stream), and the server recovers by itself. `#[ignore]`d because it
//!   needs PostgreSQL's server binaries (and, as root, `runuser`);
//!   `scripts/stages/70-faults.sh` runs it.
//!
//! No timing assertions: every wait has a generous bound that only turns a
//! hang into a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../src/loadtest/mod.rs"]
mod loadtest;

use loadtest::client::{self, TurnOptions};
use loadtest::provider::{FakeProvider, HOLD_MARKER, ProviderConfig, TOOL_MARKER};
use loadtest::server::ServeChild;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SECRET: &str = "faults-test-secret-0123456789abcdef0123456789";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

fn temp_dir(tag: &str) -> PathBuf {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let dir = std::env::temp_dir().join(format!("chatkit-faults-{tag}-{suffix}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn start_serve(database_url: &str, provider: &FakeProvider, dir: &Path) -> ServeChild {
    let env = [
        ("DATABASE_URL", database_url.to_owned()),
        ("OPENAI_API_KEY", "faults-key".to_owned()),
        ("OPENAI_BASE_URL", provider.base_url()),
        ("CHAT_MODEL", "faults-model".to_owned()),
        ("JWT_SECRET", SECRET.to_owned()),
        ("RUST_LOG", "info".to_owned()),
        ("SHUTDOWN_GRACE_SECS", "2".to_owned()),
    ];
    ServeChild::spawn(
        Path::new(env!("CARGO_BIN_EXE_serve")),
        &env,
        &dir.join("serve.log"),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("serve does not start: {e}"))
}

fn options() -> TurnOptions {
    TurnOptions {
        timeout: REQUEST_TIMEOUT,
        stop_at_first_delta: false,
    }
}

/// Reads SSE frames from `res` until one contains `needle`; returns every
/// frame read, parsed.
async fn read_until(res: &mut reqwest::Response, needle: &str) -> Vec<Value> {
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        let chunk = tokio::time::timeout_at(deadline.into(), res.chunk())
            .await
            .expect("the stream goes on")
            .expect("the stream is not broken")
            .expect("the stream has not ended");
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = buf.drain(..pos + 2).collect();
            let text = String::from_utf8(frame).unwrap();
            let data = text.trim().strip_prefix("data:").unwrap().trim().to_owned();
            let found = data.contains(needle);
            frames.push(serde_json::from_str::<Value>(&data).unwrap());
            if found {
                return frames;
            }
        }
    }
}

async fn list_items(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    thread_id: &str,
) -> Vec<Value> {
    let body = client::items_list_body(thread_id, 100);
    let (_, page) = client::json_request(
        http,
        &format!("{base}/chatkit"),
        token,
        body,
        REQUEST_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("items.list fails: {e}"));
    page["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_keeps_the_user_message_and_completed_items() {
    let dir = temp_dir("sigkill");
    let db = format!("sqlite://{}/chatkit.db", dir.display());
    let provider = FakeProvider::start(ProviderConfig::default(), 0)
        .await
        .unwrap();
    let http = client::http_client().unwrap();
    let token = client::sign_token(SECRET, "kill-user").unwrap();

    let mut serve = start_serve(&db, &provider, &dir);
    let url = format!("{}/chatkit", serve.base_url());
    // A tool call (create_task), then an answer the provider holds after its
    // first token: the turn is mid-stream, with completed items behind it.
    let text = format!("{TOOL_MARKER} {HOLD_MARKER} add a task to water the plants");
    let mut res = http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(client::create_body(&text))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let frames = read_until(&mut res, "text_delta").await;
    let thread_id = frames
        .iter()
        .find(|f| f["type"] == "thread.created")
        .and_then(|f| f["thread"]["id"].as_str())
        .expect("thread.created")
        .to_owned();
    let done: Vec<(String, String)> = frames
        .iter()
        .filter(|f| f["type"] == "thread.item.done")
        .map(|f| {
            (
                f["item"]["id"].as_str().unwrap().to_owned(),
                f["item"]["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        done.iter().any(|(_, kind)| kind == "user_message"),
        "the user message was done before the answer: {done:?}"
    );
    assert!(frames.iter().all(|f| f["type"] != "error"), "{frames:?}");

    serve.kill();
    drop(res);

    let mut serve = start_serve(&db, &provider, &dir);
    let base = serve.base_url();
    let items = list_items(&http, &base, &token, &thread_id).await;
    let ids: Vec<&str> = items.iter().filter_map(|i| i["id"].as_str()).collect();
    for (id, kind) in &done {
        assert!(
            ids.contains(&id.as_str()),
            "completed {kind} item {id} is missing after the restart; items: {items:?}"
        );
    }
    let user = items
        .iter()
        .find(|i| i["type"] == "user_message")
        .expect("the user message survives");
    assert!(user.to_string().contains("water the plants"), "{user}");

    // The thread takes a new message and answers it completely.
    let (turn, _) = client::stream_turn(
        &http,
        &format!("{base}/chatkit"),
        &token,
        client::add_message_body(&thread_id, "and now a plain question"),
        options(),
    )
    .await;
    assert_eq!(turn.error, None, "the follow-up turn fails: {turn:?}");
    assert!(turn.first_delta.is_some());
    let after = list_items(&http, &base, &token, &thread_id).await;
    assert!(after.len() > items.len(), "{after:?}");
    assert!(
        after
            .iter()
            .any(|i| i["type"] == "user_message" && i.to_string().contains("plain question"))
    );
    assert!(
        after
            .last()
            .is_some_and(|i| i["type"] == "assistant_message"),
        "{after:?}"
    );

    serve.terminate(Duration::from_secs(10));
    provider.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL restart

/// A private PostgreSQL cluster in a temp dir, stopped and removed on drop.
struct PrivateCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PrivateCluster {
    fn pg_bin() -> PathBuf {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        versions.sort_by_key(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(0)
        });
        let bin = versions
            .into_iter()
            .rev()
            .map(|v| v.join("bin"))
            .find(|b| b.join("initdb").exists())
            .or_else(|| {
                let out = Command::new("pg_config").arg("--bindir").output().ok()?;
                let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
                dir.join("initdb").exists().then_some(dir)
            });
        bin.expect(
            "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin \
             or pg_config --bindir: install postgresql",
        )
    }

    fn run(&self, program: &str, args: &[&str]) -> std::process::Output {
        let exe = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        command
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()))
    }

    fn check(&self, program: &str, args: &[&str]) {
        let out = self.run(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn create() -> Self {
        let bin = Self::pg_bin();
        let dir = temp_dir("pg");
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if as_postgres {
            // PostgreSQL refuses to run as root: the cluster belongs to the
            // `postgres` user.
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown of {} failed", dir.display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let cluster = Self {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = cluster.data_dir();
        cluster.check(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        cluster.start();
        cluster
    }

    fn data_dir(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log").display().to_string();
        self.check(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-o",
                &opts,
                "-l",
                &log,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    fn stop(&self) {
        self.check(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            ],
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A failure is clean when the server said so: an HTTP error with a JSON
/// error body, or an `error` event that ends the stream. Connection errors,
/// cut streams, streams without an answer and hangs are not.
fn is_clean_failure(kind: &str) -> bool {
    (kind.starts_with("http_5") || kind.starts_with("error_event")) && !kind.contains("timeout")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts a private PostgreSQL cluster (initdb/pg_ctl; as root through runuser -u postgres); \
            run by scripts/stages/70-faults.sh"]
async fn postgres_restart_mid_load_fails_cleanly_and_recovers() {
    let cluster = PrivateCluster::create();
    let dir = temp_dir("pg-serve");
    let provider = FakeProvider::start(ProviderConfig::default(), 0)
        .await
        .unwrap();
    let mut serve = start_serve(&cluster.url(), &provider, &dir);
    let base = serve.base_url();
    let url = format!("{base}/chatkit");
    let http = client::http_client().unwrap();

    // The load: 4 users, each one thread, turn after turn until told to stop
    // (and never more than 500 turns each).
    let stop = Arc::new(AtomicBool::new(false));
    let succeeded = Arc::new(AtomicU64::new(0));
    let mut users = Vec::new();
    for u in 0..4 {
        let http = http.clone();
        let url = url.clone();
        let stop = Arc::clone(&stop);
        let succeeded = Arc::clone(&succeeded);
        let token = client::sign_token(SECRET, &format!("pg-user-{u}")).unwrap();
        users.push(tokio::spawn(async move {
            let mut outcomes: Vec<(Instant, Option<String>)> = Vec::new();
            let mut thread_id: Option<String> = None;
            for t in 0..500 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let text = if u % 2 == 0 {
                    format!("{TOOL_MARKER} add task {t}")
                } else {
                    format!("message {t}")
                };
                let body = match &thread_id {
                    Some(id) => client::add_message_body(id, &text),
                    None => client::create_body(&text),
                };
                let (turn, _) = client::stream_turn(&http, &url, &token, body, options()).await;
                if thread_id.is_none() {
                    thread_id.clone_from(&turn.thread_id);
                }
                if turn.error.is_none() {
                    succeeded.fetch_add(1, Ordering::Relaxed);
                }
                outcomes.push((Instant::now(), turn.error));
                if outcomes.last().is_some_and(|(_, e)| e.is_some()) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            outcomes
        }));
    }

    // The load's turns succeed before the outage.
    wait_for(Duration::from_secs(60), || async {
        succeeded.load(Ordering::Relaxed) >= 8
    })
    .await
    .expect("the load's turns succeed before the outage");

    let outage_started = Instant::now();
    cluster.stop();
    // While PostgreSQL is down: readiness says so, and a request fails cleanly.
    let token = client::sign_token(SECRET, "pg-probe").unwrap();
    let (turn, _) = client::stream_turn(
        &http,
        &url,
        &token,
        client::create_body("during outage"),
        options(),
    )
    .await;
    let kind = turn.error.expect("a turn fails while PostgreSQL is down");
    eprintln!("a request during the outage: {kind}");
    assert!(
        is_clean_failure(&kind),
        "unclean failure during the outage: {kind}"
    );
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "readyz while PostgreSQL is down");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(serve.is_running(), "serve survives the outage");
    cluster.start();
    let outage_ended = Instant::now();

    // The server recovers by itself: readiness, then whole turns.
    wait_for(Duration::from_secs(60), || async {
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await
    .expect("readyz is 200 again after PostgreSQL is back");
    wait_for(Duration::from_secs(60), || async {
        let (turn, _) =
            client::stream_turn(&http, &url, &token, client::create_body("after"), options()).await;
        turn.error.is_none()
    })
    .await
    .expect("turns succeed again after PostgreSQL is back");
    // Let the load run on the recovered server for a moment, then stop it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for user in users {
        outcomes.extend(user.await.unwrap());
    }

    let failures: Vec<&String> = outcomes.iter().filter_map(|(_, e)| e.as_ref()).collect();
    eprintln!(
        "{} turns under load, {} failed: {failures:?}",
        outcomes.len(),
        failures.len()
    );
    let unclean: Vec<&&String> = failures.iter().filter(|k| !is_clean_failure(k)).collect();
    assert!(
        unclean.is_empty(),
        "unclean failures under load: {unclean:?}"
    );
    // Failures only around the outage; the load's last turns succeed.
    let recovered_after = outage_ended + Duration::from_secs(30);
    let late_failures: Vec<_> = outcomes
        .iter()
        .filter(|(at, e)| e.is_some() && *at > recovered_after)
        .collect();
    assert!(
        late_failures.is_empty(),
        "failures long after recovery: {late_failures:?}"
    );
    assert!(
        outcomes
            .iter()
            .any(|(at, e)| e.is_none() && *at > outage_ended),
        "the load's turns succeed again after the outage"
    );
    assert!(
        outcomes
            .iter()
            .any(|(at, e)| e.is_none() && *at < outage_started),
        "the load's turns succeeded before the outage"
    );
    assert!(serve.is_running());

    serve.terminate(Duration::from_secs(10));
    provider.stop();
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Polls `check` every 250 ms until it is true or `limit` has passed.
async fn wait_for<F, Fut>(limit: Duration, mut check: F) -> Result<(), ()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
