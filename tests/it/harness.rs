//! Test harness: runs the real greenlight binary on 127.0.0.1:0 with its data on disk and
//! drives it through the local channel API. Waits poll with a deadline; nothing sleeps to sync.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_greenlight");

/// A config for tests: the demo environment with short monitoring, routers on port 0.
pub fn test_config(extra: &str) -> String {
    format!(
        r#"
[bot]
timezone = "UTC"

[users.alice]
groups = ["deployers", "reviewers", "break-glass"]
[users.bob]
groups = ["deployers", "reviewers"]
[users.carol]
groups = ["reviewers"]

[[freeze]]
name = "No Friday deploys"
cron = "0 17 * * 5"
duration = "55h"
environments = ["prod"]

[environments.staging]
display_name = "Staging"
checklist_expiry = "4h"
[environments.staging.deploy]
driver = "local"
port = 0
[environments.staging.monitor]
duration = "4s"
interval = "1s"
min_requests = 5
keep_warm = "10m"
[[environments.staging.checklist]]
text = "CI passed: build, lint, test green"
group = "reviewers"
[[environments.staging.checklist]]
text = "Migrations reviewed: DB changes are backwards compatible"
group = "reviewers"
[environments.staging.smoke_vars]
user = "demo"
password = "demo"
[[environments.staging.smoke]]
name = "login/auth works"
method = "POST"
path = "/login"
body = {{ user = "{{user}}", password = "{{password}}" }}
capture = {{ token = "/token" }}
[[environments.staging.smoke]]
name = "main dashboard loads"
path = "/dashboard"
headers = {{ Authorization = "Bearer {{token}}" }}
[[environments.staging.smoke]]
name = "checkout works"
method = "POST"
path = "/checkout"
headers = {{ Authorization = "Bearer {{token}}" }}
body = {{ item = "demo-widget", qty = 1 }}
critical = true

[environments.prod]
display_name = "Production"
[environments.prod.deploy]
driver = "local"
port = 0
[environments.prod.monitor]
duration = "4s"
interval = "1s"
min_requests = 5
[[environments.prod.checklist]]
text = "CI passed"
group = "reviewers"
[[environments.prod.checklist]]
text = "Staging verified"
group = "reviewers"
[[environments.prod.checklist]]
text = "Migrations reviewed"
group = "reviewers"
[[environments.prod.checklist]]
text = "Secrets set"
group = "reviewers"
[[environments.prod.checklist]]
text = "Stakeholders notified"
group = "reviewers"
{extra}
"#
    )
}

pub struct Bot {
    child: Option<Child>,
    pub url: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    http: reqwest::Client,
    prefix: Vec<String>,
    envs: Vec<(String, String)>,
}

impl Bot {
    /// Starts the bot with `config` text in a fresh directory.
    pub async fn start(config: &str) -> (Bot, tempfile::TempDir) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = tmp.path().join("greenlight.toml");
        std::fs::write(&cfg, config).expect("write config");
        let bot = Bot::start_in(tmp.path(), &[]).await;
        (bot, tmp)
    }

    /// Starts (or restarts) the bot on the data in `dir`; `prefix` runs it under another
    /// program (faketime).
    pub async fn start_in(dir: &Path, prefix: &[&str]) -> Bot {
        Bot::start_with(dir, prefix, &[]).await
    }

    /// Like `start_in`, with extra environment variables (for example a fault injection point).
    pub async fn start_with(dir: &Path, prefix: &[&str], envs: &[(&str, &str)]) -> Bot {
        let config = dir.join("greenlight.toml");
        let mut argv: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        argv.push(BIN.to_string());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .args(["run", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data")
            .arg(dir.join("data"))
            .env("GREENLIGHT_LOG", "info,greenlight=debug")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("bot.log"))
                    .expect("log"),
            );
        die_with_the_test(&mut cmd);
        // Its own process group: `kill` takes down everything it started.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().expect("start greenlight");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {}
        });
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                // SAFETY: kill(2) on the process group created above.
                unsafe {
                    libc::kill(-(child.id() as i32), libc::SIGKILL);
                }
                let _ = child.wait();
                panic!(
                    "greenlight did not start; log:\n{}",
                    std::fs::read_to_string(dir.join("bot.log")).unwrap_or_default()
                )
            });
        let url = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line: {first}"))
            .to_string();
        Bot {
            child: Some(child),
            url,
            dir: dir.to_path_buf(),
            config,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            prefix: prefix.iter().map(|s| s.to_string()).collect(),
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bot.log")).unwrap_or_default()
    }

    /// Has the bot process exited (for example killed by a fault injection point)?
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().expect("wait").is_some(),
            None => true,
        }
    }

    /// SIGKILL, no chance to clean up: the whole process group, so a bot run under another
    /// program (`faketime` forks it) dies too, with its demo apps.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on the process group this harness created for the bot.
            unsafe {
                libc::kill(-(c.id() as i32), libc::SIGKILL);
            }
            let _ = c.kill();
            c.wait().expect("wait");
        }
    }

    /// SIGTERM and wait for the exit; returns the exit status and how long it took.
    pub fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let mut c = self.child.take().expect("running");
        let t = Instant::now();
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = c.try_wait().expect("wait") {
                return (st, t.elapsed());
            }
            assert!(
                Instant::now() < deadline,
                "greenlight did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub async fn restart(&mut self) {
        self.kill();
        let prefix: Vec<&str> = self.prefix.iter().map(|s| s.as_str()).collect();
        // A restart keeps the environment (tokens), but not a fault injection point.
        let envs: Vec<(&str, &str)> = self
            .envs
            .iter()
            .filter(|(k, _)| k != "GREENLIGHT_FAULT")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut b = Bot::start_with(&self.dir, &prefix, &envs).await;
        self.child = b.child.take();
        self.url = b.url.clone();
    }

    pub async fn post_raw(&self, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/api/local/messages", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Posts as `user` to a bot that may die while answering (fault injection).
    pub async fn say_maybe(&self, user: &str, text: &str) {
        let _ = self
            .http
            .post(format!("{}/api/local/messages", self.url))
            .json(&serde_json::json!({"user": user, "text": text}))
            .send()
            .await;
    }

    /// Approves every item as `user`, tolerating a bot that dies while answering.
    pub async fn approve_all_maybe(&self, run: u64, user: &str) {
        let (_, items) = self.checklist_items(run).await;
        for i in items {
            let _ = self
                .http
                .post(format!("{}/api/local/reactions", self.url))
                .json(&serde_json::json!({"user": user, "message_id": i, "emoji": "white_check_mark"}))
                .send()
                .await;
        }
    }

    /// Posts as `user`; returns the new message id.
    pub async fn say(&self, user: &str, text: &str) -> String {
        let (status, body) = self
            .post_raw(serde_json::json!({"user": user, "text": text}))
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    pub async fn react_status(
        &self,
        method: reqwest::Method,
        user: &str,
        id: &str,
        emoji: &str,
    ) -> u16 {
        self.http
            .request(method, format!("{}/api/local/reactions", self.url))
            .json(&serde_json::json!({"user": user, "message_id": id, "emoji": emoji}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    pub async fn react(&self, user: &str, id: &str, emoji: &str) {
        let s = self
            .react_status(reqwest::Method::POST, user, id, emoji)
            .await;
        assert!(s == 201 || s == 200, "reaction answered {s}");
    }

    /// Every message anyone can see: the public ones and each configured user's private
    /// replies (the API serves a private reply only to its person), merged in id order.
    pub async fn messages(&self) -> Vec<Value> {
        let users: Vec<String> = self
            .get_json("/api/local/users")
            .await
            .1
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|u| u.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let mut all = std::collections::BTreeMap::new();
        for u in users {
            for m in self.messages_as(Some(&u)).await {
                let id: u64 = m["id"].as_str().unwrap().parse().unwrap();
                all.insert(id, m);
            }
        }
        all.into_values().collect()
    }

    /// The messages as `user` sees them (without a user: the public ones only).
    pub async fn messages_as(&self, user: Option<&str>) -> Vec<Value> {
        let mut req = self.http.get(format!("{}/api/local/messages", self.url));
        if let Some(u) = user {
            req = req.query(&[("as", u)]);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.json().await.unwrap()
    }

    /// Polls the channel until a message satisfies `pred`, or fails with the transcript.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let msgs = self.messages().await;
            if let Some(m) = msgs.iter().find(|m| pred(m)) {
                return m.clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}\n--- messages ---\n{}\n--- log tail ---\n{}",
                    transcript(&msgs),
                    tail(&self.log(), 40)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a message whose text contains `needle`.
    pub async fn wait_text(&self, needle: &str, timeout: Duration) -> Value {
        let n = needle.to_string();
        self.wait_for(needle, timeout, move |m| text(m).contains(&n))
            .await
    }

    /// The reply greenlight gave to the message `id` (the next bot message after it).
    pub async fn answer_to(&self, id: &str) -> Value {
        let id_num: u64 = id.parse().unwrap();
        self.wait_for("an answer", Duration::from_secs(10), move |m| {
            m["user"] == "greenlight" && m["id"].as_str().unwrap().parse::<u64>().unwrap() > id_num
        })
        .await
    }

    /// The checklist thread's item ids of run `run`, in order.
    pub async fn checklist_items(&self, run: u64) -> (String, Vec<String>) {
        let parent = self
            .wait_text(&format!("(run {run})"), Duration::from_secs(10))
            .await;
        let pid = parent["id"].as_str().unwrap().to_string();
        let msgs = self.messages().await;
        let items = msgs
            .iter()
            .filter(|m| m["thread_id"].as_str() == Some(pid.as_str()) && text(m).starts_with('⬜'))
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect();
        (pid, items)
    }

    /// `user` approves every item of run `run`'s checklist.
    pub async fn approve_all(&self, run: u64, user: &str) {
        let (_, items) = self.checklist_items(run).await;
        assert!(!items.is_empty(), "no checklist items for run {run}");
        for i in items {
            self.react(user, &i, "white_check_mark").await;
        }
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// The demo router's URL of an environment, read from `/deploy status`.
    pub async fn router_url(&self, env: &str) -> String {
        let id = self.say("carol", &format!("/deploy status {env}")).await;
        let ans = self.answer_to(&id).await;
        let t = text(&ans);
        let start = t.find("traffic at ").expect("status names the router") + "traffic at ".len();
        t[start..].split(';').next().unwrap().trim().to_string()
    }

    pub async fn get_text(&self, url: &str) -> (u16, String) {
        let r = self.http.get(url).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A demo app started by the test itself (for setups where greenlight does not start it).
pub struct DemoApp(pub Child, pub String);

impl DemoApp {
    pub fn start(version: &str, colour: &str) -> DemoApp {
        let mut cmd = Command::new(BIN);
        die_with_the_test(&mut cmd);
        let mut c = cmd
            .args([
                "demo-app",
                "--listen",
                "127.0.0.1:0",
                "--version",
                version,
                "--colour",
                colour,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the demo app");
        let mut line = String::new();
        BufReader::new(c.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("first line");
        DemoApp(
            c,
            line.trim().trim_start_matches("listening on ").to_string(),
        )
    }
}

impl Drop for DemoApp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process the tests start dies with the test process, even when a test is interrupted
/// or panics where no destructor runs (`PR_SET_PDEATHSIG`), so none outlives the suite.
pub fn die_with_the_test(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

pub fn text(m: &Value) -> String {
    m["text"].as_str().unwrap_or("").to_string()
}

pub fn transcript(msgs: &[Value]) -> String {
    msgs.iter()
        .map(|m| {
            format!(
                "[{}] {}{}{} {}",
                m["id"].as_str().unwrap_or(""),
                m["user"].as_str().unwrap_or(""),
                m["thread_id"]
                    .as_str()
                    .map(|t| format!(" (in {t})"))
                    .unwrap_or_default(),
                m["visible_to"]
                    .as_str()
                    .map(|t| format!(" (to {t})"))
                    .unwrap_or_default(),
                text(m)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn count(msgs: &[Value], needle: &str) -> usize {
    msgs.iter().filter(|m| text(m).contains(needle)).count()
}

/// Runs the binary with arguments; returns (exit code, stdout + stderr).
pub fn cli(args: &[&str], cwd: &Path) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run greenlight");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub const LONG: Duration = Duration::from_secs(60);
pub const SHORT: Duration = Duration::from_secs(10);
