//! The local channel's page in headless Chromium (Debian's chromium + chromium-driver, over
//! WebDriver): type a deploy, click the reactions, see the lifecycle messages appear.

use crate::harness::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key of a web element reference in W3C WebDriver answers.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start(profile: &std::path::Path) -> Driver {
        let mut child = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver (Debian package chromium-driver) is installed by scripts/test.sh",
            );
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = loop {
            let l = lines.next().expect("chromedriver output").unwrap();
            if let Some(rest) = l.split("started successfully on port ").nth(1) {
                break rest.trim_end_matches('.').trim().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,1600",
                     format!("--user-data-dir={}", profile.display())]
        }}}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        Driver {
            child,
            base,
            http,
            session,
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if !body.is_null() {
            req = req.json(&body);
        }
        let r: Value = req.send().await.unwrap().json().await.unwrap();
        r["value"].clone()
    }

    async fn find(&self, css: &str) -> Option<String> {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        // A found element is `{ELEMENT_KEY: id}`; a missing one is an error object
        // (`{"error": "no such element", ...}`), whose values are no id.
        v.get(ELEMENT_KEY)?.as_str().map(String::from)
    }

    async fn wait_find(&self, css: &str) -> String {
        let deadline = Instant::now() + SHORT;
        loop {
            if let Some(e) = self.find(css).await {
                return e;
            }
            assert!(Instant::now() < deadline, "no element {css}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, css: &str) {
        let e = self.wait_find(css).await;
        let v = self
            .cmd(
                reqwest::Method::POST,
                &format!("/element/{e}/click"),
                json!({}),
            )
            .await;
        assert!(v.is_null(), "click {css}: {v}");
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.wait_find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            json!({"text": text}),
        )
        .await;
    }

    async fn page_text(&self) -> String {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": "return document.body.innerText", "args": []}),
        )
        .await
        .as_str()
        .unwrap_or("")
        .to_string()
    }

    async fn script(&self, js: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": js, "args": []}),
        )
        .await
    }

    /// Waits until the page no longer shows `needle`.
    async fn wait_gone(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.page_text().await;
            if !t.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the page still shows {needle:?}:\n{t}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_text(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.page_text().await;
            if t.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {needle:?}; it shows:\n{t}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_drives_a_deploy_with_clicks() {
    let (bot, tmp) = Bot::start(&test_config("")).await;
    let d = Driver::start(&tmp.path().join("chromium-profile")).await;
    d.cmd(reqwest::Method::POST, "/url", json!({"url": bot.url}))
        .await;
    d.wait_text("greenlight — local channel", SHORT).await;

    // alice's private answer is on her page, and not on bob's.
    d.click("select#user option[value=\"alice\"]").await;
    d.type_into("#composer", "/deploy help").await;
    d.click("#send").await;
    d.wait_text("greenlight commands:", SHORT).await;
    d.click("select#user option[value=\"bob\"]").await;
    d.wait_gone("greenlight commands:", SHORT).await;
    d.click("select#user option[value=\"alice\"]").await;
    d.wait_text("greenlight commands:", SHORT).await;

    // Type a deploy as alice.
    d.type_into("#composer", "/deploy v1.2.0 staging").await;
    d.click("#send").await;
    d.wait_text("Pre-deployment checklist: v1.2.0 → Staging (run 1)", SHORT)
        .await;

    // alice's own ✅ is refused, in the thread.
    let (_, items) = bot.checklist_items(1).await;
    d.click(&format!(
        "button.react-btn[data-msg-id=\"{}\"][data-emoji=\"white_check_mark\"]",
        items[0]
    ))
    .await;
    d.wait_text("cannot approve their own run", SHORT).await;

    // As bob, click ✅ on each item.
    d.click("select#user option[value=\"bob\"]").await;
    for i in &items {
        d.click(&format!(
            "button.react-btn[data-msg-id=\"{i}\"][data-emoji=\"white_check_mark\"]"
        ))
        .await;
    }
    d.wait_text("🚀 Deploying v1.2.0 to Staging...", SHORT)
        .await;
    d.wait_text("✅ Deployment successful. Monitoring.", LONG)
        .await;
    d.wait_text("Run 1 stable", LONG).await;
    // Edits in place reach the page too: the approved items and the status message.
    d.wait_text("✅ 1. CI passed", SHORT).await;
    d.wait_text("✅ stable: v1.2.0 live on", SHORT).await;

    // The page read everything once per user, then only what changed.
    let reads = d
        .script(
            "return performance.getEntriesByType('resource').map(function (e) { return e.name; })\
             .filter(function (n) { return n.indexOf('/api/local/messages') >= 0; })",
        )
        .await;
    let reads: Vec<String> = reads
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    // Resource timing does not name the method: the two without a query are the two posts.
    let (gets, posts): (Vec<&String>, Vec<&String>) = reads.iter().partition(|u| u.contains('?'));
    assert_eq!(
        posts.len(),
        2,
        "every read asks as the page's user: {reads:?}"
    );
    assert!(gets.iter().all(|u| u.contains("as=")), "{reads:?}");
    let full = gets.iter().filter(|u| !u.contains("after=")).count();
    assert!(
        full <= 4,
        "a full read on load and on each change of user only: {reads:?}"
    );
    assert!(
        gets.iter().filter(|u| u.contains("after=")).count() >= 5,
        "{reads:?}"
    );

    // The clicks landed as reactions through the API.
    let msgs = bot.messages().await;
    let item = msgs.iter().find(|m| m["id"] == items[1].as_str()).unwrap();
    assert_eq!(
        item["reactions"],
        json!([{"emoji": "white_check_mark", "users": ["bob"]}])
    );

    // A screenshot for people to look at.
    let png = d
        .cmd(reqwest::Method::GET, "/screenshot", Value::Null)
        .await;
    let bytes = base64_decode(png.as_str().unwrap());
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("local-channel.png");
    std::fs::write(&out, bytes).unwrap();
    d.cmd(reqwest::Method::DELETE, "", Value::Null).await;
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= (val(*c) as u32) << (18 - 6 * i);
        }
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}
