//! Benchmarks of the running bot (release build), printed as a table: start-to-ready, idle RSS,
//! `/deploy` acknowledgement latency at a fixed rate over 100 environments, `history` on a store
//! of 100,000 runs, restart with 1,000 runs awaiting their checklist, and on the demo
//! environment: failed requests through the router during a switch, and the time from a fault
//! starting to traffic back on the old colour. Run with `cargo bench --bench greenlight`; one
//! group of rows with `cargo bench --bench greenlight -- ack` (or `rss`, `store`, `demo`,
//! `slack`); `GREENLIGHT_BENCH_BIN=<path>` runs another build of the bot. The `ack` rows run a
//! fresh bot each: 200/s and 500/s on a quiet disk, and 200/s while a background writer keeps
//! the disk busy.

use greenlight::core::checklist::Checklist;
use greenlight::core::engine::{EnvState, Phase, Run, RunKind};
use greenlight::core::{EnvName, Platform, RunId, UserId};
use greenlight::store::Store;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The bot under test: this build's, or another one's (`GREENLIGHT_BENCH_BIN`, to compare a
/// change with the build before it on the same rows).
fn bin() -> String {
    std::env::var("GREENLIGHT_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_greenlight").to_string())
}

fn envs_config(n: usize) -> String {
    let mut s = String::from(
        "[bot]\ntimezone = \"UTC\"\n[users.alice]\ngroups = [\"deployers\", \"reviewers\"]\n[users.bob]\ngroups = [\"deployers\", \"reviewers\"]\n",
    );
    for i in 0..n {
        s.push_str(&format!(
            "[environments.env{i}]\ndisplay_name = \"Env {i}\"\n[environments.env{i}.deploy]\ndriver = \"command\"\ndeploy_idle = [\"true\"]\nswitch = [\"true\"]\nlive = \"none\"\nblue_url = \"http://127.0.0.1:9\"\ngreen_url = \"http://127.0.0.1:9\"\n[[environments.env{i}.checklist]]\ntext = \"CI passed\"\ngroup = \"reviewers\"\n"
        ));
    }
    s
}

struct Bot {
    child: Child,
    url: String,
    ready: Duration,
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path) -> Bot {
    let t = Instant::now();
    let mut child = Command::new(bin())
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(dir.join("g.toml"))
        .arg("--data")
        .arg(dir.join("data"))
        .env("GREENLIGHT_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().trim_start_matches("listening on ").to_string();
    Bot {
        child,
        url,
        ready: t.elapsed(),
    }
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn post(client: &reqwest::Client, url: &str, user: &str, text: &str) -> u16 {
    client
        .post(format!("{url}/api/local/messages"))
        .json(&serde_json::json!({"user": user, "text": text}))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn ack_bench(rows: &mut Vec<(String, String, String)>) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("g.toml"), envs_config(100)).unwrap();
    // Start-to-ready: the listening line, then a first command answered.
    let bot = start(tmp.path());
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let t = Instant::now();
    assert_eq!(post(&client, &bot.url, "alice", "/deploy help").await, 201);
    let first_cmd = t.elapsed();
    rows.push((
        "start -> ready (listening line; first command answered)".into(),
        format!(
            "{:.0} ms; +{:.1} ms",
            bot.ready.as_secs_f64() * 1e3,
            first_cmd.as_secs_f64() * 1e3
        ),
        "< 200 ms".into(),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    rows.push((
        "idle RSS, 100 environments".into(),
        format!("{:.1} MB", rss_kib(bot.child.id()) as f64 / 1024.0),
        "< 12 MB".into(),
    ));
    drop(bot);
    ack_row(rows, 200, None).await;
    ack_row(rows, 500, None).await;
    ack_row(rows, 200, Some(Busy::default())).await;
}

/// The bot's idle RSS with the shipped configuration (`config/greenlight.toml`: the demo
/// environment, local driver).
async fn rss_default(rows: &mut Vec<(String, String, String)>) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("g.toml"), demo_config()).unwrap();
    let bot = start(tmp.path());
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    assert_eq!(post(&client, &bot.url, "alice", "/deploy help").await, 201);
    tokio::time::sleep(Duration::from_secs(2)).await;
    rows.push((
        "idle RSS, the shipped config (demo environment)".into(),
        format!("{:.1} MB", rss_kib(bot.child.id()) as f64 / 1024.0),
        "< 12 MB".into(),
    ));
}

/// A background writer that keeps the disk busy: 1 MiB writes to a file beside the bot's
/// store, fsynced every 16 MiB, the file kept under 256 MiB (rewritten from the start) and the
/// writer stopped after `limit`; the file is removed when it stops. A probe beside it times a
/// 4 KiB write + fsync every 20 ms, so that the row says how busy the disk was.
#[derive(Default)]
struct Busy {
    stop: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<f64>>>,
}

impl Busy {
    fn start(&mut self, dir: &Path, limit: Duration) {
        use std::io::{Seek, Write};
        let (stop, file) = (self.stop.clone(), dir.join("busy-writer.bin"));
        self.threads.push(std::thread::spawn(move || {
            let until = Instant::now() + limit;
            let mut f = std::fs::File::create(&file).unwrap();
            let chunk = vec![0x5au8; 1 << 20];
            let mut written = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                f.write_all(&chunk).unwrap();
                written += 1;
                if written.is_multiple_of(16) {
                    f.sync_data().unwrap();
                }
                if written >= 256 {
                    f.seek(std::io::SeekFrom::Start(0)).unwrap();
                    written = 0;
                }
            }
            drop(f);
            let _ = std::fs::remove_file(&file);
            Vec::new()
        }));
        let (stop, probe) = (self.stop.clone(), dir.join("busy-probe.bin"));
        self.threads.push(std::thread::spawn(move || {
            use std::io::Write;
            let until = Instant::now() + limit;
            let mut f = std::fs::File::create(&probe).unwrap();
            let mut times = Vec::new();
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                let t = Instant::now();
                f.write_all(&[1u8; 4096]).unwrap();
                f.sync_data().unwrap();
                times.push(t.elapsed().as_secs_f64() * 1e3);
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(f);
            let _ = std::fs::remove_file(&probe);
            times
        }));
    }

    /// Stops the writer and the probe; the probe's fsync times.
    fn stop(self) -> Vec<f64> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    }
}

/// `/deploy` over 100 environments at `rate`/s for 10 s, each followed 2.5 ms later by a
/// cancel of the previous run there, so that every /deploy creates and writes a run; on a
/// fresh bot, with the disk kept busy when `busy` is given.
async fn ack_row(rows: &mut Vec<(String, String, String)>, rate: u64, mut busy: Option<Busy>) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("g.toml"), envs_config(100)).unwrap();
    let bot = start(tmp.path());
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    assert_eq!(post(&client, &bot.url, "alice", "/deploy help").await, 201);
    let secs = 10u64;
    if let Some(b) = &mut busy {
        b.start(tmp.path(), Duration::from_secs(secs + 20));
        // Let the writer fill the page cache before the load starts.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let lat = Arc::new(std::sync::Mutex::new(Vec::new()));
    let fails = Arc::new(AtomicU64::new(0));
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut handles = Vec::new();
    for i in 0..rate * secs {
        tick.tick().await;
        let (c, u, lat, fails) = (client.clone(), bot.url.clone(), lat.clone(), fails.clone());
        handles.push(tokio::spawn(async move {
            let env = i % 100;
            if i >= 100 {
                // run numbers are 1-based and assigned in order of creation
                let prev = i - 100 + 1;
                if post(&c, &u, "bob", &format!("/deploy cancel {prev}")).await != 201 {
                    fails.fetch_add(1, Ordering::Relaxed);
                }
            }
            let t = Instant::now();
            let s = post(&c, &u, "alice", &format!("/deploy v1.0.{i} env{env}")).await;
            lat.lock().unwrap().push(t.elapsed().as_secs_f64() * 1e3);
            if s != 201 {
                fails.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let disk = busy.map(|b| {
        let mut f = b.stop();
        format!(
            "; disk probe fsync p50 {:.2} ms, p99 {:.1} ms, max {:.0} ms",
            pct(&mut f, 0.5),
            pct(&mut f, 0.99),
            pct(&mut f, 1.0)
        )
    });
    let mut v = lat.lock().unwrap().clone();
    let (p50, p99, max) = (pct(&mut v, 0.5), pct(&mut v, 0.99), pct(&mut v, 1.0));
    // How many runs were really created (each deploy must have found its env free)?
    let mut created = 0;
    for e in 0..100 {
        let r = client
            .get(format!("{}/api/history/env{e}", bot.url))
            .send()
            .await
            .unwrap();
        created += r.json::<Vec<serde_json::Value>>().await.unwrap().len();
    }
    let (what, target) = match disk {
        Some(_) => (
            "busy disk (a background writer)",
            "p99 < 50 ms, max < 500 ms",
        ),
        None => ("quiet disk", "p99 < 5 ms"),
    };
    rows.push((
        format!("/deploy acknowledged (run + checklist written and flushed), {rate}/s over 100 envs plus {rate}/s cancels, {} requests, {what}", rate * secs),
        format!(
            "p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.1} ms; {created} runs created, {} non-201{}",
            fails.load(Ordering::Relaxed),
            disk.unwrap_or_default()
        ),
        target.into(),
    ));
    rows.push((
        format!("RSS after the load ({rate}/s, {what})"),
        format!("{:.1} MB", rss_kib(bot.child.id()) as f64 / 1024.0),
        "".into(),
    ));
}

fn run(id: u64, env: &str, phase: Phase, now: chrono::DateTime<chrono::Utc>) -> Run {
    Run {
        ended: phase.is_terminal().then_some(now),
        phase,
        checklist: Checklist::new([("CI passed".to_string(), "reviewers".to_string(), 1)]),
        checklist_expires: now + chrono::Duration::hours(4),
        outcome: phase.is_terminal().then(|| "succeeded".to_string()),
        ..Run::new(
            RunId(id),
            RunKind::Deploy,
            EnvName::new(env),
            format!("v1.0.{id}"),
            UserId::new("alice"),
            Platform::Local,
            now,
        )
    }
}

fn store_bench(rows: &mut Vec<(String, String, String)>) {
    let tmp = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now();
    {
        let store = Store::open(&tmp.path().join("data"), 8 << 20).unwrap();
        let t = Instant::now();
        for chunk in (1..=100_000u64).collect::<Vec<_>>().chunks(1000) {
            let mut ws = store.begin();
            for &id in chunk {
                ws.put_run(&run(id, &format!("env{}", id % 100), Phase::Succeeded, now));
            }
            ws.put_next_run(chunk[chunk.len() - 1] + 1);
            ws.commit().unwrap();
        }
        let fill = t.elapsed();
        let mut times = Vec::new();
        for i in 0..50 {
            let t = Instant::now();
            let h = store
                .history(&EnvName::new(format!("env{}", i % 100)), 20)
                .unwrap();
            times.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(h.len(), 20);
        }
        let t = Instant::now();
        let all = store.history(&EnvName::new("env7"), usize::MAX).unwrap();
        let whole = t.elapsed();
        assert_eq!(all.len(), 1000);
        rows.push((
            format!(
                "history on a store of 100,000 runs (in process; filled in {:.1} s)",
                fill.as_secs_f64()
            ),
            format!(
                "last 20: p50 {:.2} ms, max {:.2} ms; all 1,000 of one env: {:.1} ms",
                pct(&mut times, 0.5),
                pct(&mut times, 1.0),
                whole.as_secs_f64() * 1e3
            ),
            "< 50 ms".into(),
        ));
    }
    // Restart with 1,000 runs awaiting their checklist.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("g.toml"), envs_config(1000)).unwrap();
    {
        let store = Store::open(&tmp.path().join("data"), 8 << 20).unwrap();
        let mut ws = store.begin();
        for id in 1..=1000u64 {
            let env = format!("env{}", id - 1);
            ws.put_run(&run(id, &env, Phase::AwaitingChecklist, now));
            ws.put_env(
                &EnvName::new(env),
                &EnvState {
                    active_run: Some(RunId(id)),
                    ..Default::default()
                },
            );
        }
        ws.put_next_run(1001);
        ws.commit().unwrap();
    }
    let bot = start(tmp.path());
    rows.push((
        "restart resuming 1,000 runs awaiting their checklist (each says so in its thread)".into(),
        format!("{:.0} ms to listening", bot.ready.as_secs_f64() * 1e3),
        "< 2 s".into(),
    ));
}

fn demo_config() -> String {
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/greenlight.toml"),
    )
    .unwrap();
    base.replace("port = 8181", "port = 0")
        .replace("port = 8182", "port = 0")
        .replace(
            "duration = \"20s\"\ninterval = \"4s\"",
            "duration = \"6s\"\ninterval = \"2s\"",
        )
}

async fn wait_text(
    client: &reqwest::Client,
    url: &str,
    needle: &str,
    timeout: Duration,
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let msgs: Vec<serde_json::Value> = client
            .get(format!("{url}/api/local/messages"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(m) = msgs
            .iter()
            .find(|m| m["text"].as_str().unwrap_or("").contains(needle))
        {
            return m.clone();
        }
        assert!(Instant::now() < deadline, "timed out waiting for {needle}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn approve_run(client: &reqwest::Client, url: &str, run: u64, user: &str) {
    let parent = wait_text(
        client,
        url,
        &format!("(run {run})"),
        Duration::from_secs(10),
    )
    .await;
    let msgs: Vec<serde_json::Value> = client
        .get(format!("{url}/api/local/messages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for m in msgs
        .iter()
        .filter(|m| m["thread_id"] == parent["id"] && m["text"].as_str().unwrap().starts_with('⬜'))
    {
        client
            .post(format!("{url}/api/local/reactions"))
            .json(&serde_json::json!({"user": user, "message_id": m["id"], "emoji": "white_check_mark"}))
            .send()
            .await
            .unwrap();
    }
}

async fn demo_bench(rows: &mut Vec<(String, String, String)>) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("g.toml"), demo_config()).unwrap();
    let bot = start(tmp.path());
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    post(&client, &bot.url, "alice", "/deploy v1.2.0 staging").await;
    approve_run(&client, &bot.url, 1, "bob").await;
    wait_text(&client, &bot.url, "Run 1 stable", Duration::from_secs(60)).await;
    let id = post_id(&client, &bot.url, "carol", "/deploy status staging").await;
    let status = wait_after(&client, &bot.url, &id).await;
    let router = status
        .split("traffic at ")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_string();

    // Load through the router during a healthy switch (blue -> green).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (c, r, stop, ok, failed) = (
            client.clone(),
            router.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                match c.get(format!("{r}/version")).send().await {
                    Ok(resp) if resp.status().is_success() => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    post(&client, &bot.url, "alice", "/deploy v1.2.1 staging").await;
    approve_run(&client, &bot.url, 2, "bob").await;
    wait_text(&client, &bot.url, "Run 2 stable", Duration::from_secs(60)).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    rows.push((
        "requests through the demo router across a switch (200/s, whole run)".into(),
        format!(
            "{} ok, {} failed",
            ok.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed)
        ),
        "0 failed".into(),
    ));

    // Fault -> traffic back on the old colour.
    post(&client, &bot.url, "bob", "/deploy v1.3.0-faulty staging").await;
    approve_run(&client, &bot.url, 3, "alice").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut fault_start = None;
    let back;
    loop {
        let r = client.get(format!("{router}/version")).send().await;
        let colour = r.ok().and_then(|r| {
            r.headers()
                .get("x-greenlight-colour")
                .map(|v| v.to_str().unwrap().to_string())
        });
        match (fault_start, colour.as_deref()) {
            (None, Some("blue")) => fault_start = Some(Instant::now()),
            (Some(t), Some("green")) => {
                back = t.elapsed();
                break;
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "no rollback");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    rows.push((
        "fault starts (faulty version live) -> traffic back on the old colour, interval 2 s".into(),
        format!("{:.2} s", back.as_secs_f64()),
        "< interval + 1 s = 3 s".into(),
    ));
}

async fn post_id(client: &reqwest::Client, url: &str, user: &str, text: &str) -> u64 {
    let r: serde_json::Value = client
        .post(format!("{url}/api/local/messages"))
        .json(&serde_json::json!({"user": user, "text": text}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["id"].as_str().unwrap().parse().unwrap()
}

async fn wait_after(client: &reqwest::Client, url: &str, id: &u64) -> String {
    loop {
        let msgs: Vec<serde_json::Value> = client
            .get(format!("{url}/api/local/messages"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(m) = msgs.iter().find(|m| {
            m["user"] == "greenlight" && m["id"].as_str().unwrap().parse::<u64>().unwrap() > *id
        }) {
            return m["text"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Slack Web API that says ok to everything (the outbox's deliveries and response URLs).
async fn ok_slack() -> String {
    use axum::routing::post;
    let n = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().fallback(post(move || {
        let n = n.clone();
        async move {
            let ts = format!("1700000000.{:06}", n.fetch_add(1, Ordering::Relaxed));
            axum::Json(serde_json::json!({"ok": true, "channel": "C1", "ts": ts, "message": {"type": "message", "text": "", "ts": ts}}))
        }
    }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}")
}

fn slack_sign(secret: &str, ts: i64, body: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(format!("v0:{ts}:{body}").as_bytes());
    let bytes = m.finalize().into_bytes();
    format!(
        "v0={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

async fn slack_bench(rows: &mut Vec<(String, String, String)>) {
    let fake = ok_slack().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = envs_config(100)
        .replace("[users.alice]\n", "[users.alice]\nslack = \"U01ALICE\"\n")
        .replace("[users.bob]\n", "[users.bob]\nslack = \"U01BOB\"\n");
    for i in 0..100 {
        cfg = cfg.replace(
            &format!("display_name = \"Env {i}\"\n"),
            &format!("display_name = \"Env {i}\"\nslack_channel = \"C{i:03}\"\n"),
        );
    }
    cfg = format!("[slack]\nmode = \"http\"\napi_url = \"{fake}/api/\"\n{cfg}");
    std::fs::write(tmp.path().join("g.toml"), cfg).unwrap();
    let secret = "bench-signing-secret";
    let mut child = Command::new(bin())
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(tmp.path().join("g.toml"))
        .arg("--data")
        .arg(tmp.path().join("data"))
        .env("GREENLIGHT_LOG", "warn")
        .env("SLACK_BOT_TOKEN", "xoxb-bench")
        .env("SLACK_SIGNING_SECRET", secret)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().trim_start_matches("listening on ").to_string();
    let bot = Bot {
        child,
        url,
        ready: Duration::ZERO,
    };
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let body = |user: &str, text: &str, trigger: u64| {
        format!(
            "token=x&team_id=T1&team_domain=b&channel_id=C001&channel_name=d&user_id={user}&user_name=u&command=%2Fdeploy&text={}&api_app_id=A1&is_enterprise_install=false&response_url={}&trigger_id=t{trigger}",
            text.replace(' ', "+"),
            format!("{fake}/response").replace(':', "%3A").replace('/', "%2F")
        )
    };
    let rate = 200u64;
    let secs = 10u64;
    let lat = Arc::new(std::sync::Mutex::new(Vec::new()));
    let fails = Arc::new(AtomicU64::new(0));
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut handles = Vec::new();
    for i in 0..rate * secs {
        tick.tick().await;
        let ts = chrono::Utc::now().timestamp();
        let deploy = body("U01ALICE", &format!("v1.0.{i} env{}", i % 100), 2 * i);
        let cancel = (i >= 100).then(|| body("U01BOB", &format!("cancel {}", i - 99), 2 * i + 1));
        let (c, u, lat, fails) = (client.clone(), bot.url.clone(), lat.clone(), fails.clone());
        let sign = |b: &str| slack_sign(secret, ts, b);
        let (sd, sc) = (sign(&deploy), cancel.as_deref().map(sign));
        handles.push(tokio::spawn(async move {
            let send = |b: String, sig: String| {
                c.post(format!("{u}/slack/commands"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("x-slack-request-timestamp", ts.to_string())
                    .header("x-slack-signature", sig)
                    .body(b)
                    .send()
            };
            if let (Some(b), Some(sig)) = (cancel, sc) {
                if !matches!(send(b, sig).await, Ok(r) if r.status().is_success()) {
                    fails.fetch_add(1, Ordering::Relaxed);
                }
            }
            let t = Instant::now();
            let ok = matches!(send(deploy, sd).await, Ok(r) if r.status().is_success());
            lat.lock().unwrap().push(t.elapsed().as_secs_f64() * 1e3);
            if !ok {
                fails.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let mut created = 0;
    for e in 0..100 {
        let r = client
            .get(format!("{}/api/history/env{e}", bot.url))
            .send()
            .await
            .unwrap();
        created += r.json::<Vec<serde_json::Value>>().await.unwrap().len();
    }
    let mut v = lat.lock().unwrap().clone();
    rows.push((
        format!("signed Slack /slack/commands `/deploy` acknowledged (verified, deduplicated, run + outbox written and flushed), {rate}/s over 100 envs plus {rate}/s cancels"),
        format!("p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms; {created} runs created, {} failed", pct(&mut v, 0.5), pct(&mut v, 0.99), pct(&mut v, 1.0), fails.load(Ordering::Relaxed)),
        "p99 < 10 ms at 200/s".into(),
    ));
}

fn main() {
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    let want = |s: &str| only.as_deref().is_none_or(|o| s == o);
    if want("ack") {
        rt.block_on(ack_bench(&mut rows));
    }
    if want("rss") {
        rt.block_on(rss_default(&mut rows));
    }
    if want("store") {
        store_bench(&mut rows);
    }
    if want("demo") {
        rt.block_on(demo_bench(&mut rows));
    }
    if want("slack") {
        rt.block_on(slack_bench(&mut rows));
    }
    println!("\n| what | measured | target |\n|---|---|---|");
    for (w, m, t) in rows {
        println!("| {w} | {m} | {t} |");
    }
}
