//! Blue-green on a real load balancer: real `haproxy` and `prometheus` processes on loopback in
//! front of two demo-app instances, deployed by a script through the `command` driver.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Prometheus' scrape interval in these tests. A breach is only seen at the first check after a
/// scrape has picked it up, so the scrape interval is part of breach -> traffic back: with 1 s a
/// fault starting just before a check was seen one interval late.
const SCRAPE_INTERVAL: &str = "200ms";
/// The bot's PromQL rate window (5x the scrape interval). A p99 over the window rises only once
/// more than 1% of the window's requests are slow: with 5 s of healthy traffic at 100-200
/// requests/s and slow requests holding the load generator's workers (about 7-13 slow
/// answers/s), that took most of a second more than with 1 s.
const WINDOW: &str = "1s";
/// The bot's monitoring interval.
pub const MONITOR_INTERVAL: Duration = Duration::from_secs(2);

/// A free port from the kernel (HAProxy and Prometheus cannot report a port-0 bind), never one
/// this process was given before: two calls in a row could otherwise return the same port (the
/// first listener is closed before the second bind), and green's deploy then found blue's app.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The setup: demo apps per colour (managed by deploy.sh), HAProxy, Prometheus, the bot.
pub struct Lb {
    pub dir: tempfile::TempDir,
    pub prometheus_url: String,
    pub frontend: String,
    pub socket: PathBuf,
    pub ports: [u16; 2],
    /// The PromQL rate window the bot is configured with.
    pub window: String,
    /// Prometheus' scrape interval.
    pub scrape_interval: String,
    haproxy: Option<Proc>,
    prometheus: Option<Proc>,
    pub bot: Bot,
}

impl Drop for Lb {
    fn drop(&mut self) {
        // The demo apps were started detached by deploy.sh: stop them.
        for c in ["blue", "green"] {
            if let Ok(pid) = std::fs::read_to_string(self.dir.path().join(format!("{c}.pid"))) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
        self.haproxy.take();
        self.prometheus.take();
    }
}

pub const DEPLOY_SH: &str = r#"#!/bin/sh
# deploy.sh VERSION COLOUR: (re)start the demo app of COLOUR on its port with VERSION.
dir=$(dirname "$0")
port=$(cat "$dir/$2.port")
[ -f "$dir/$2.pid" ] && kill "$(cat "$dir/$2.pid")" 2>/dev/null
rm -f "$dir/$2.pid"
case "$1" in
  *-broken*) echo "image pulled but the container crashes at start"; exit 0 ;;
  *-wrongtag*) reported="v0.0.1" ;;
  *) reported="$1" ;;
esac
setsid "$GREENLIGHT_BIN" demo-app --listen "127.0.0.1:$port" --version "$reported" --colour "$2" >/dev/null 2>&1 &
echo $! > "$dir/$2.pid"
i=0
until "$GREENLIGHT_BIN" healthcheck --url "http://127.0.0.1:$port" 2>/dev/null; do
  i=$((i+1)); [ $i -gt 100 ] && { echo "demo app did not start"; exit 1; }
  sleep 0.1
done
"#;

pub const TEARDOWN_SH: &str = r#"#!/bin/sh
dir=$(dirname "$0")
[ -f "$dir/$1.pid" ] && kill "$(cat "$dir/$1.pid")" 2>/dev/null
rm -f "$dir/$1.pid"
exit 0
"#;

pub fn write_exec(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

async fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Lb {
    pub async fn start(socket_present: bool) -> Lb {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ports = [free_port(), free_port()];
        let (fport, pport) = (free_port(), free_port());
        std::fs::write(d.join("blue.port"), ports[0].to_string()).unwrap();
        std::fs::write(d.join("green.port"), ports[1].to_string()).unwrap();
        write_exec(&d.join("deploy.sh"), DEPLOY_SH);
        write_exec(&d.join("teardown.sh"), TEARDOWN_SH);
        // blue runs v1.0.0 and is live; green is empty.
        let st = Command::new(d.join("deploy.sh"))
            .args(["v1.0.0", "blue"])
            .env("GREENLIGHT_BIN", BIN)
            .status()
            .unwrap();
        assert!(st.success());

        let socket = d.join("ha.sock");
        let cfg = format!(
            "global\n  stats socket {} mode 600 level admin\n  log stderr local0 err\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n  retries 2\n  option redispatch\nfrontend fe\n  bind 127.0.0.1:{fport}\n  default_backend app\nbackend app\n  option httpchk GET /healthz\n  server blue 127.0.0.1:{} check inter 200ms rise 1 fall 2\n  server green 127.0.0.1:{} check inter 200ms rise 1 fall 2 disabled\n",
            socket.display(),
            ports[0],
            ports[1]
        );
        std::fs::write(d.join("haproxy.cfg"), cfg).unwrap();
        let check = Command::new("haproxy")
            .args(["-c", "-f"])
            .arg(d.join("haproxy.cfg"))
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let haproxy = Proc(
            Command::new("haproxy")
                .args(["-db", "-f"])
                .arg(d.join("haproxy.cfg"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let s2 = socket.clone();
        wait_until("the HAProxy socket", SHORT, move || s2.exists()).await;

        let prom_cfg = format!(
            "global:\n  scrape_interval: {SCRAPE_INTERVAL}\n  evaluation_interval: {SCRAPE_INTERVAL}\nscrape_configs:\n  - job_name: demo\n    static_configs:\n      - targets: ['127.0.0.1:{}', '127.0.0.1:{}']\n",
            ports[0], ports[1]
        );
        std::fs::write(d.join("prometheus.yml"), prom_cfg).unwrap();
        let prometheus = Proc(
            Command::new("prometheus")
                .arg(format!(
                    "--config.file={}",
                    d.join("prometheus.yml").display()
                ))
                .arg(format!("--storage.tsdb.path={}", d.join("tsdb").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let deadline = Instant::now() + LONG;
        loop {
            if let Ok(r) = http
                .get(format!("http://127.0.0.1:{pport}/-/ready"))
                .send()
                .await
            {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "prometheus never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let socket_cfg = if socket_present {
            socket.display().to_string()
        } else {
            d.join("missing.sock").display().to_string()
        };
        let extra = format!(
            r#"
[environments.lb]
display_name = "LB"
[environments.lb.deploy]
driver = "command"
deploy_idle = ["{d}/deploy.sh", "{{version}}", "{{colour}}"]
teardown = ["{d}/teardown.sh", "{{colour}}"]
timeout = "30s"
blue_url = "http://127.0.0.1:{p0}"
green_url = "http://127.0.0.1:{p1}"
[environments.lb.traffic]
driver = "haproxy"
socket = "unix:{socket_cfg}"
backend = "app"
[environments.lb.metrics]
provider = "prometheus"
url = "http://127.0.0.1:{pport}"
window = "{WINDOW}"
timeout = "2s"
[environments.lb.health]
timeout = "3s"
interval = "200ms"
[environments.lb.monitor]
duration = "16s"
interval = "{monitor_interval}"
min_requests = 5
[[environments.lb.checklist]]
text = "CI passed"
group = "reviewers"
[[environments.lb.smoke]]
name = "reports the deployed version"
path = "/version"
expect_body_contains = "{{version}}"
[[environments.lb.smoke]]
name = "login/auth works"
method = "POST"
path = "/login"
body = {{ user = "demo", password = "demo" }}
capture = {{ token = "/token" }}
[[environments.lb.smoke]]
name = "checkout works"
method = "POST"
path = "/checkout"
headers = {{ Authorization = "Bearer {{token}}" }}
body = {{ item = "x", qty = 1 }}
critical = true
"#,
            d = d.display(),
            monitor_interval = humantime::format_duration(MONITOR_INTERVAL),
            p0 = ports[0],
            p1 = ports[1],
        );
        std::fs::write(d.join("greenlight.toml"), test_config(&extra)).unwrap();
        let bot = Bot::start_with(d, &[], &[("GREENLIGHT_BIN", BIN)]).await;
        Lb {
            prometheus_url: format!("http://127.0.0.1:{pport}"),
            frontend: format!("http://127.0.0.1:{fport}"),
            socket,
            ports,
            window: WINDOW.into(),
            scrape_interval: SCRAPE_INTERVAL.into(),
            haproxy: Some(haproxy),
            prometheus: Some(prometheus),
            bot,
            dir,
        }
    }

    /// The colour HAProxy really sends traffic to, read over its admin socket (None while none,
    /// or both in the middle of a switch).
    pub async fn live(&self) -> Option<String> {
        let h = greenlight::deploy::haproxy::HaproxyDriver::new(
            greenlight::deploy::haproxy::Socket::parse(&self.socket.display().to_string()),
            "app",
        );
        match h.live().await {
            Ok(c) => c.map(|c| c.to_string()),
            // Mid-switch both colours take traffic for an instant (ready, then drain): no
            // single live colour yet.
            Err(e) if e.contains("both blue and green") => None,
            Err(e) => panic!("cannot read HAProxy's state: {e}"),
        }
    }

    /// Waits until Prometheus has request data for `colour`.
    pub async fn wait_metrics(&self, colour: &str) {
        let cfg: greenlight::metrics::prometheus::PrometheusConfig = serde_json::from_value(
            serde_json::json!({"url": self.prometheus_url, "window": WINDOW}),
        )
        .unwrap();
        let p = greenlight::metrics::prometheus::Prometheus::new(cfg).unwrap();
        let deadline = Instant::now() + LONG;
        while !matches!(
            p.sample(colour, "lb").await,
            greenlight::core::analysis::Sample::Data(_)
        ) {
            assert!(
                Instant::now() < deadline,
                "prometheus never had data for {colour}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until Prometheus counts at least `n` requests to `colour` in the window: after a
    /// switch back, the old colour's window refills over a scrape or two, and a baseline taken
    /// before that would be too thin to judge latency by (the trigger is then skipped).
    pub async fn wait_requests(&self, colour: &str, n: f64) {
        let cfg: greenlight::metrics::prometheus::PrometheusConfig = serde_json::from_value(
            serde_json::json!({"url": self.prometheus_url, "window": WINDOW}),
        )
        .unwrap();
        let p = greenlight::metrics::prometheus::Prometheus::new(cfg).unwrap();
        let deadline = Instant::now() + LONG;
        loop {
            if let greenlight::core::analysis::Sample::Data(m) = p.sample(colour, "lb").await {
                if m.requests >= n {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{colour} never had {n} requests in the window"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until no sample of `colour` is left in Prometheus' rate window (its last process was
    /// stopped), so the next deploy of that colour is judged on its own data only.
    pub async fn wait_window_clear(&self, colour: &str) {
        let cfg: greenlight::metrics::prometheus::PrometheusConfig =
            serde_json::from_value(serde_json::json!({"url": self.prometheus_url})).unwrap();
        let p = greenlight::metrics::prometheus::Prometheus::new(cfg).unwrap();
        let q = format!(
            r#"sum(count_over_time(http_requests_total{{color="{colour}"}}[{}]))"#,
            self.window
        );
        let deadline = Instant::now() + LONG;
        while p.query_scalar(&q).await != Ok(None) {
            assert!(
                Instant::now() < deadline,
                "{colour} kept samples in the window"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn kill_prometheus(&mut self) {
        self.prometheus.take();
    }

    /// Tells the demo app on `colour` it is live (a -faulty/-slow version starts misbehaving).
    pub async fn arm(&self, colour: &str) {
        let port = if colour == "blue" {
            self.ports[0]
        } else {
            self.ports[1]
        };
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/_demo/live"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

/// One measured rollback: from the moment the fault starts (the bad version armed) to HAProxy
/// sending traffic to the old colour again.
pub struct Rollback {
    pub run: u64,
    pub version: String,
    /// Fault armed -> HAProxy back on the old colour.
    pub took: Duration,
    /// The run's status lines (each monitoring check, the trigger).
    pub status: Vec<String>,
    /// What the bot did, as `+seconds what` lines relative to the arming (from the run's events).
    pub events: Vec<String>,
}

impl Lb {
    /// Deploys `version` (a `-faulty` or `-slow` one) as run `run` onto `bad`, arms it
    /// `arm_after` after HAProxy sends it the traffic (the fault's phase within the monitoring
    /// interval), and measures until traffic is back on `good`. Waits for the run to end rolled
    /// back and unlocks the environment. Polls, never sleeps to synchronise.
    pub async fn measure_rollback(
        &self,
        run: u64,
        version: &str,
        bad: &str,
        good: &str,
        arm_after: Duration,
    ) -> Rollback {
        let bot = &self.bot;
        bot.say("bob", &format!("/deploy {version} lb")).await;
        bot.approve_all(run, "alice").await;
        wait_until_live(self, bad).await;
        // The fault's start, not a synchronisation: where in the interval the breach begins.
        tokio::time::sleep(arm_after).await;
        self.arm(bad).await;
        let (armed, armed_wall) = (Instant::now(), chrono::Utc::now());
        // Poll HAProxy's state tightly: this is the measured figure.
        let deadline = armed + LONG;
        let took = loop {
            if self.live().await.as_deref() == Some(good) {
                break armed.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "traffic never came back to {good}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        bot.wait_text(&format!("Run {run} rolled back"), LONG).await;
        let (_, r) = bot.get_json(&format!("/api/runs/{run}")).await;
        assert_eq!(r["run"]["version"], version, "{r}");
        let status = r["run"]["status"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let events = r["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| {
                        let at: chrono::DateTime<chrono::Utc> = e["at"].as_str()?.parse().ok()?;
                        let rel = (at - armed_wall).num_milliseconds() as f64 / 1000.0;
                        Some(format!("{rel:+.3}s {}", e["what"].as_str()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let id = bot.say("alice", "/deploy unlock lb").await;
        bot.answer_to(&id).await;
        Rollback {
            run,
            version: version.to_string(),
            took,
            status,
            events,
        }
    }
}

/// Steady traffic through the HAProxy frontend (bounded: stops when told, at most 10 minutes).
pub struct Load {
    stop: Arc<AtomicBool>,
    pub ok: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(url: &str, workers: usize, every: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let tasks = (0..workers)
            .map(|_| {
                let (stop, ok, failed, c, u) = (
                    stop.clone(),
                    ok.clone(),
                    failed.clone(),
                    client.clone(),
                    url.to_string(),
                );
                tokio::spawn(async move {
                    let end = Instant::now() + Duration::from_secs(600);
                    let mut tick = tokio::time::interval(every);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                        tick.tick().await;
                        match c.get(format!("{u}/dashboard")).send().await {
                            // 401 is the app answering (no token): a served request.
                            Ok(r) if r.status().as_u16() < 500 => {
                                ok.fetch_add(1, Ordering::Relaxed)
                            }
                            _ => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    pub async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_switch_prometheus_analysis_and_rollbacks() {
    let lb = Lb::start(true).await;
    let bot = &lb.bot;
    assert_eq!(lb.live().await.as_deref(), Some("blue"));
    let load = Load::start(&lb.frontend, 2, Duration::from_millis(20));
    lb.wait_metrics("blue").await;

    // 1. A healthy deploy: traffic moves to green, confirmed through HAProxy.
    bot.say("alice", "/deploy v1.1.0 lb").await;
    bot.approve_all(1, "bob").await;
    bot.wait_text("✅ Deployment successful. Monitoring.", LONG)
        .await;
    assert_eq!(lb.live().await.as_deref(), Some("green"));
    bot.wait_text("Run 1 stable", LONG).await;
    let msgs = bot.messages().await;
    let st = msgs
        .iter()
        .find(|m| text(m).starts_with("Run 1 status"))
        .map(text)
        .unwrap();
    assert!(
        st.contains("📏 baseline from blue"),
        "the baseline came from Prometheus: {st}"
    );
    assert!(
        st.contains("✔ check") && st.contains("error rate"),
        "measured values posted: {st}"
    );
    let (_, body) = bot.get_text(&format!("{}/version", lb.frontend)).await;
    assert!(body.contains("v1.1.0"), "{body}");

    // 2. An error spike after the switch: the faulty version told it is live.
    bot.say("bob", "/deploy v1.2.0-faulty lb").await;
    bot.approve_all(2, "alice").await;
    wait_until_live(&lb, "blue").await;
    lb.arm("blue").await;
    let fail = bot
        .wait_text("❌ Deployment failed. Rolling back. Reason:", LONG)
        .await;
    assert!(
        text(&fail).contains("error rate") && text(&fail).contains("above the 1.0% threshold"),
        "{}",
        text(&fail)
    );
    let alert = bot
        .wait_for("incident alert", LONG, |m| m["channel"] == "incidents")
        .await;
    assert!(
        text(&alert).contains("v1.2.0-faulty") && text(&alert).contains("locked"),
        "{}",
        text(&alert)
    );
    bot.wait_text("Run 2 rolled back", LONG).await;
    assert_eq!(
        lb.live().await.as_deref(),
        Some("green"),
        "traffic is back on the old colour"
    );
    let id = bot.say("alice", "/deploy v1.2.1 lb").await;
    assert!(
        text(&bot.answer_to(&id).await).contains("locked"),
        "the environment is locked"
    );
    bot.say("alice", "/deploy unlock lb").await;

    // 3. A latency spike, judged against a baseline of green's steady traffic (min_requests is 5).
    lb.wait_requests("green", 20.0).await;
    bot.say("alice", "/deploy v1.2.1-slow lb").await;
    bot.approve_all(3, "bob").await;
    wait_until_live(&lb, "blue").await;
    lb.arm("blue").await;
    let fail = bot
        .wait_for("latency rollback", LONG, |m| {
            text(m).starts_with("❌ Deployment failed. Rolling back.") && text(m).contains("p99")
        })
        .await;
    assert!(
        text(&fail).contains("more than 200% above the baseline"),
        "{}",
        text(&fail)
    );
    bot.wait_text("Run 3 rolled back", LONG).await;
    assert_eq!(lb.live().await.as_deref(), Some("green"));

    let (ok, failed) = load.stop().await;
    assert!(ok > 100, "{ok}");
    // Requests the faulty version failed on purpose are 5xx; count only transport failures
    // during the healthy switch in the benchmark, here just report.
    eprintln!("load through haproxy: {ok} ok, {failed} failed (faulty version included)");
}

/// Issue 10, item 9: breach -> traffic back on the old colour within one monitoring interval plus
/// 1 s, for latency spikes as for error spikes, wherever in the interval the fault starts: right
/// at the switch, just before a check (on `main` a latency spike there waited for the next check,
/// pushed back by the previous check's slow critical-path steps: 4.0 s and more), and late in the
/// run when the rate window is full of healthy traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breach_to_traffic_back_within_one_interval_plus_one_second() {
    let lb = Lb::start(true).await;
    let load = Load::start(&lb.frontend, 2, Duration::from_millis(20));
    lb.wait_metrics("blue").await;
    let limit = MONITOR_INTERVAL + Duration::from_secs(1);
    let cases = [
        ("slow", 0.0),
        ("slow", 1.8),
        ("slow", 3.9),
        ("slow", 5.4),
        ("faulty", 0.0),
        ("faulty", 1.8),
    ];
    let mut measured = Vec::new();
    // Blue (v1.0.0) stays live: every bad version goes to green and is rolled back.
    for (i, (kind, phase)) in cases.into_iter().enumerate() {
        lb.wait_window_clear("green").await;
        let r = lb
            .measure_rollback(
                i as u64 + 1,
                &format!("v3.{i}.0-{kind}"),
                "green",
                "blue",
                Duration::from_secs_f64(phase),
            )
            .await;
        let trigger = r
            .status
            .iter()
            .find(|l| l.starts_with('✖'))
            .cloned()
            .unwrap_or_default();
        if kind == "slow" {
            assert!(trigger.contains("p99 latency"), "{kind}: {trigger}");
        } else {
            assert!(
                trigger.contains("error rate") || trigger.contains("core business flow"),
                "{kind}: {trigger}"
            );
        }
        measured.push((phase, trigger, r));
    }
    load.stop().await;
    let report: Vec<String> = measured
        .iter()
        .map(|(phase, trigger, r)| {
            format!(
                "run {} {} armed {phase:.1} s after the switch: traffic back after {:.2} s \
                 ({trigger})\n    {}",
                r.run,
                r.version,
                r.took.as_secs_f64(),
                r.events.join("\n    ")
            )
        })
        .collect();
    let report = format!(
        "Prometheus scrape {}, window {}, interval {MONITOR_INTERVAL:?}:\n{}",
        lb.scrape_interval,
        lb.window,
        report.join("\n")
    );
    eprintln!("breach -> traffic back: {report}");
    assert!(
        measured.iter().all(|(_, _, r)| r.took <= limit),
        "breach -> traffic back must stay within {limit:?} (interval + 1 s); {report}"
    );
}

async fn wait_until_live(lb: &Lb, colour: &str) {
    let deadline = Instant::now() + LONG;
    while lb.live().await.as_deref() != Some(colour) {
        assert!(Instant::now() < deadline, "{colour} never became live");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_health_or_smoke_never_switches_and_no_data_is_not_success() {
    let mut lb = Lb::start(true).await;
    let load = Load::start(&lb.frontend, 2, Duration::from_millis(20));
    lb.wait_metrics("blue").await;

    // Green fails its health check: no switch.
    lb.bot.say("alice", "/deploy v2.0.0-broken lb").await;
    lb.bot.approve_all(1, "bob").await;
    let m = lb
        .bot
        .wait_text("❌ Deployment failed. Reason:", LONG)
        .await;
    assert!(
        text(&m).contains("health check") && text(&m).contains("blue stays live"),
        "{}",
        text(&m)
    );
    assert_eq!(lb.live().await.as_deref(), Some("blue"));

    // A failing smoke step (the wrong image reports another version): no switch.
    lb.bot.say("alice", "/deploy v2.0.1-wrongtag lb").await;
    lb.bot.approve_all(2, "bob").await;
    let m = lb
        .bot
        .wait_for("smoke failure", LONG, |m| {
            text(m).contains("smoke test \"reports the deployed version\" failed")
        })
        .await;
    assert!(text(&m).contains("blue stays live"), "{}", text(&m));
    assert_eq!(lb.live().await.as_deref(), Some("blue"));

    // Prometheus stopped during monitoring: inconclusive, reported, never a success.
    lb.bot.say("alice", "/deploy v2.1.0 lb").await;
    lb.bot.approve_all(3, "bob").await;
    lb.bot
        .wait_for("run 3 switched", LONG, |m| {
            text(m).starts_with("Run 3 status") && text(m).contains("monitoring for")
        })
        .await;
    lb.kill_prometheus();
    let end = lb.bot.wait_text("Run 3: monitoring of v2.1.0", LONG).await;
    assert!(
        text(&end).contains("inconclusive") && text(&end).contains("not marked stable"),
        "{}",
        text(&end)
    );
    let msgs = lb.bot.messages().await;
    let st = msgs
        .iter()
        .find(|m| text(m).starts_with("Run 3 status"))
        .map(text)
        .unwrap();
    assert!(
        st.contains("inconclusive (no metrics data: prometheus"),
        "{st}"
    );
    assert_eq!(count(&msgs, "Run 3 stable"), 0);
    let (_, run) = lb.bot.get_json("/api/runs/3").await;
    assert_eq!(run["run"]["phase"], "unverified");
    load.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_haproxy_socket_refuses_the_deploy_and_touches_nothing() {
    // HAProxy serves blue; greenlight starts on a fresh data directory with a socket path
    // that does not exist: it cannot see which colour is live, so it deploys nothing.
    let lb = Lb::start(false).await;
    let load = Load::start(&lb.frontend, 2, Duration::from_millis(50));
    let blue_pid = std::fs::read_to_string(lb.dir.path().join("blue.pid")).unwrap();
    let id = lb.bot.say("alice", "/deploy v1.5.0 lb").await;
    let ans = text(&lb.bot.answer_to(&id).await);
    assert!(
        ans.starts_with("Refused: greenlight cannot see which colour is live on LB: HAProxy:")
            && ans.contains("missing.sock")
            && !ans.contains('\n')
            && !ans.contains("Usage:"),
        "one line that says why: {ans}"
    );
    let id = lb.bot.say("carol", "/deploy status lb").await;
    let st = text(&lb.bot.answer_to(&id).await);
    assert!(st.contains("LB: ⚠️ live colour unknown (HAProxy:"), "{st}");
    let id = lb.bot.say("carol", "/deploy why-not v1.5.0 lb").await;
    let wn = text(&lb.bot.answer_to(&id).await);
    assert!(
        wn.contains("• greenlight cannot see which colour is live on LB"),
        "{wn}"
    );
    let (_, run) = lb.bot.get_json("/api/runs/1").await;
    assert!(run.get("run").is_none(), "no run was created: {run}");
    // Blue was never redeployed nor torn down, and it kept serving.
    assert_eq!(
        std::fs::read_to_string(lb.dir.path().join("blue.pid")).unwrap(),
        blue_pid
    );
    let ok = load.ok.clone();
    wait_until("requests through HAProxy", LONG, move || {
        ok.load(Ordering::Relaxed) >= 20
    })
    .await;
    let (_, failed) = load.stop().await;
    assert_eq!(failed, 0, "no request failed");
    assert_eq!(lb.live().await.as_deref(), Some("blue"));
}
