//! The `argocd` driver, whole runs on the local channel against the fake Argo CD: blue-green
//! (an application per colour, a command traffic step), its failures (a failed sync, Degraded
//! health, Argo CD down, a refused token), crashes around the sync (exactly one sync), and the
//! rolling mode's rollback, which has to turn auto-sync off first.

use crate::fake_argocd::{Ending, FakeArgo, Fault, TOKEN};
use crate::haproxy_prometheus::Load;
use crate::harness::*;
use serde_json::json;
use std::time::Duration;

const IMAGE: &str = "registry.example.com/shop";

fn source(version: &str) -> serde_json::Value {
    json!({"repoURL": "https://git.example.com/shop.git", "path": "deploy/prod", "targetRevision": "main",
           "kustomize": {"images": [format!("{IMAGE}:{version}"), "registry.example.com/sidecar:3"]}})
}

fn blue_green(fake: &str, blue: &str, green: &str, timeout: &str) -> String {
    test_config(&format!(
        r#"
[argocd]
url = "{fake}"
token = "${{GL_TEST_ARGOCD_TOKEN}}"

[environments.shop]
display_name = "Shop"
[environments.shop.deploy]
driver = "argocd"
blue_app = "shop-blue"
green_app = "shop-green"
blue_url = "{blue}"
green_url = "{green}"
image = "{IMAGE}"
timeout = "{timeout}"
poll = "100ms"
[environments.shop.traffic]
driver = "command"
switch = ["true"]
live = "none"
[environments.shop.monitor]
duration = "2s"
interval = "1s"
min_requests = 5
[[environments.shop.checklist]]
text = "CI passed"
group = "reviewers"
"#
    ))
}

async fn start(cfg: &str, dir: &std::path::Path, token: &str, fault: Option<&str>) -> Bot {
    std::fs::write(dir.join("greenlight.toml"), cfg).unwrap();
    let mut envs = vec![("GL_TEST_ARGOCD_TOKEN", token)];
    if let Some(f) = fault {
        envs.push(("GREENLIGHT_FAULT", f));
    }
    Bot::start_with(dir, &[], &envs).await
}

/// A fake with the two colours' applications, and the two colours' demo apps.
async fn setup() -> (FakeArgo, DemoApp, DemoApp) {
    let fake = FakeArgo::start().await;
    fake.add_app("shop-blue", source("v1"), false);
    fake.add_app("shop-green", source("v1"), false);
    (
        fake,
        DemoApp::start("v1", "blue"),
        DemoApp::start("v1", "green"),
    )
}

fn status_of(msgs: &[serde_json::Value], run: u64) -> String {
    msgs.iter()
        .map(text)
        .find(|t| t.starts_with(&format!("Run {run} status")))
        .unwrap_or_default()
}

async fn deploy(bot: &Bot, run: u64, version: &str) {
    bot.say("alice", &format!("/deploy {version} shop")).await;
    bot.approve_all(run, "bob").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_syncs_the_idle_colours_application_once_and_links_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (fake, blue, green) = setup().await;
    let load = (
        Load::start(&blue.1, 2, Duration::from_millis(20)),
        Load::start(&green.1, 2, Duration::from_millis(20)),
    );
    // A passing 503 on a read and a rate limit on the sync are waited out, not failures.
    fake.fault("GET", Fault::Status(503));
    fake.fault("sync", Fault::RateLimited(1));
    let bot = start(
        &blue_green(&fake.url, &blue.1, &green.1, "20s"),
        tmp.path(),
        TOKEN,
        None,
    )
    .await;
    deploy(&bot, 1, "v2.0.0").await;
    bot.wait_text("Run 1 stable", LONG).await;
    let app = fake.app("shop-blue");
    assert_eq!(
        app["spec"]["source"]["kustomize"]["images"],
        json!(["registry.example.com/sidecar:3", format!("{IMAGE}:v2.0.0")]),
        "the image is set, the other kept"
    );
    assert_eq!(app["spec"]["source"]["path"], "deploy/prod");
    assert_eq!(fake.operations(), 1, "{:?}", fake.log());
    assert_eq!(
        fake.count("POST", "/shop-blue/sync"),
        2,
        "429, then the sync: {:?}",
        fake.log()
    );
    assert_eq!(fake.count("PATCH", "/shop-green"), 0);
    assert!(fake.requests().iter().all(|r| r.authorized));
    let st = status_of(&bot.messages().await, 1);
    let link = format!(
        "Argo CD: syncing shop-blue to v2.0.0: {}/applications/shop-blue",
        fake.url
    );
    assert!(st.contains(&link), "{st}");
    assert!(
        !bot.log().contains(TOKEN),
        "the token never reaches the logs"
    );
    load.0.stop().await;
    load.1.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_degraded_health_argo_cd_down_and_a_sync_window_never_switch() {
    let tmp = tempfile::tempdir().unwrap();
    let (fake, blue, green) = setup().await;
    let bot = start(
        &blue_green(&fake.url, &blue.1, &green.1, "4s"),
        tmp.path(),
        TOKEN,
        None,
    )
    .await;

    fake.script(
        "shop-blue",
        Ending::Failed("one or more objects failed to apply: ImagePullBackOff".into()),
    );
    deploy(&bot, 1, "v2.0.0").await;
    let m = bot.wait_text("❌ Deployment failed. Reason:", LONG).await;
    let t = text(&m);
    assert!(
        t.contains("Argo CD: sync of shop-blue to v2.0.0 failed: one or more objects failed to apply: ImagePullBackOff"),
        "{t}"
    );

    fake.script(
        "shop-blue",
        Ending::Degraded("Deployment \"shop\" exceeded its progress deadline".into()),
    );
    deploy(&bot, 2, "v2.0.1").await;
    let m = bot
        .wait_for("run 2 failed", LONG, |m| {
            text(m).starts_with("❌ Deployment failed. Reason:") && text(m).contains("Degraded")
        })
        .await;
    let t = text(&m);
    assert!(
        t.contains("Argo CD: shop-blue is Degraded after the sync of shop-blue to v2.0.1: Deployment \"shop\" exceeded its progress deadline"),
        "{t}"
    );

    fake.outage(Some(503));
    deploy(&bot, 3, "v2.0.2").await;
    let m = bot
        .wait_for("run 3 failed", LONG, |m| {
            text(m).starts_with("❌ Deployment failed. Reason:") && text(m).contains("503")
        })
        .await;
    let t = text(&m);
    assert!(
        t.contains("Argo CD: 503") && t.contains("tries)"),
        "retried: {t}"
    );

    fake.outage(None);
    fake.sync_window(true);
    deploy(&bot, 4, "v2.0.3").await;
    let m = bot
        .wait_for("run 4 failed", LONG, |m| {
            text(m).starts_with("❌ Deployment failed. Reason:") && text(m).contains("sync window")
        })
        .await;
    let t = text(&m);
    assert!(
        t.contains("Argo CD refused to sync shop-blue: cannot sync: blocked by sync window (the project's sync window is closed)"),
        "{t}"
    );
    let msgs = bot.messages().await;
    assert_eq!(count(&msgs, "✅ Deployment successful"), 0);
    assert_eq!(fake.count("POST", "/sync"), 3, "{:?}", fake.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_one_line_and_nothing_is_deployed() {
    let tmp = tempfile::tempdir().unwrap();
    let (fake, blue, green) = setup().await;
    let bot = start(
        &blue_green(&fake.url, &blue.1, &green.1, "5s"),
        tmp.path(),
        "expired-token",
        None,
    )
    .await;
    deploy(&bot, 1, "v2.0.0").await;
    let m = bot.wait_text("❌ Deployment failed. Reason:", LONG).await;
    let t = text(&m);
    assert!(
        t.contains("Argo CD: refused the credential (401 no session information)"),
        "{t}"
    );
    assert!(!t.contains("expired-token"), "{t}");
    assert_eq!(fake.count("PATCH", ""), 0);
    assert_eq!(fake.count("POST", "/sync"), 0);
}

/// SIGKILL at `point`, restart: the run completes and Argo CD saw exactly one sync.
async fn crash_at(point: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let (fake, blue, green) = setup().await;
    let load = (
        Load::start(&blue.1, 2, Duration::from_millis(20)),
        Load::start(&green.1, 2, Duration::from_millis(20)),
    );
    let cfg = blue_green(&fake.url, &blue.1, &green.1, "20s");
    let mut bot = start(&cfg, tmp.path(), TOKEN, Some(point)).await;
    bot.say_maybe("alice", "/deploy v2.0.0 shop").await;
    bot.approve_all_maybe(1, "bob").await;
    let deadline = std::time::Instant::now() + LONG;
    while !bot.exited() {
        assert!(
            std::time::Instant::now() < deadline,
            "{point} never fired\n{}",
            bot.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bot.restart().await;
    bot.wait_text("Run 1 stable", LONG).await;
    assert_eq!(fake.count("POST", "/sync"), 1, "{point}: {:?}", fake.log());
    let images = fake.app("shop-blue")["spec"]["source"]["kustomize"]["images"].to_string();
    assert!(images.contains("shop:v2.0.0"), "{images}");
    load.0.stop().await;
    load.1.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_the_journal_record_syncs_once() {
    crash_at("argocd:journaled").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_the_sync_follows_it_without_a_second_one() {
    crash_at("argocd:synced").await;
}

fn rolling(fake: &str, workload: &str, monitor: &str) -> String {
    test_config(&format!(
        r#"
[argocd]
url = "{fake}"
token = "${{GL_TEST_ARGOCD_TOKEN}}"

[environments.shop]
display_name = "Shop"
[environments.shop.deploy]
driver = "argocd"
mode = "rolling"
app = "shop"
url = "{workload}"
image = "{IMAGE}"
timeout = "20s"
poll = "100ms"
[environments.shop.monitor]
duration = "{monitor}"
interval = "1s"
min_requests = 5
[environments.shop.metrics]
provider = "scrape"
match_colour = false
[[environments.shop.checklist]]
text = "CI passed"
group = "reviewers"
"#
    ))
}

/// A crash right after the rolling update's sync: after the restart greenlight sees the
/// switch had not finished, goes through its steps again and follows the same operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_crash_after_the_sync_follows_it_without_a_second_one() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeArgo::start().await;
    fake.add_app("shop", source("v1.2.0"), true);
    let (old, new) = (
        DemoApp::start("v1.2.0", "blue"),
        DemoApp::start("v1.3.0", "blue"),
    );
    fake.backend("shop:v1.2.0", &old.1);
    fake.backend("shop:v1.3.0", &new.1);
    let workload = format!("{}/_workload/shop", fake.url);
    let load = Load::start(&workload, 2, Duration::from_millis(20));
    let cfg = rolling(&fake.url, &workload, "2s");
    let mut bot = start(&cfg, tmp.path(), TOKEN, Some("argocd:synced")).await;
    bot.say_maybe("alice", "/deploy v1.3.0 shop").await;
    bot.approve_all_maybe(1, "bob").await;
    let deadline = std::time::Instant::now() + LONG;
    while !bot.exited() {
        assert!(
            std::time::Instant::now() < deadline,
            "never fired\n{}",
            bot.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bot.restart().await;
    bot.wait_text("Run 1 stable", LONG).await;
    assert_eq!(fake.count("POST", "/sync"), 1, "{:?}", fake.log());
    assert_eq!(fake.count("POST", "/rollback"), 0);
    let (_, v) = bot.get_text(&format!("{workload}/version")).await;
    assert!(v.contains("v1.3.0"), "{v}");
    let app = fake.app("shop");
    assert!(
        app["spec"]["syncPolicy"]["automated"].is_object(),
        "auto-sync untouched: {app}"
    );
    load.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_rollback_turns_auto_sync_off_first_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeArgo::start().await;
    fake.add_app("shop", source("v1.2.0"), true);
    // The cluster: each version's pods are a demo app; the faulty one fails once it is live.
    let good = DemoApp::start("v1.2.0", "blue");
    let faulty = DemoApp::start("v1.3.0-faulty", "blue");
    let r = reqwest::Client::new()
        .post(format!("{}/_demo/live", faulty.1))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    fake.backend("shop:v1.2.0", &good.1);
    fake.backend("shop:v1.3.0-faulty", &faulty.1);
    let workload = format!("{}/_workload/shop", fake.url);
    let cfg = rolling(&fake.url, &workload, "6s");
    let load = Load::start(&workload, 2, Duration::from_millis(20));
    let bot = start(&cfg, tmp.path(), TOKEN, None).await;
    deploy(&bot, 1, "v1.3.0-faulty").await;
    let fail = bot
        .wait_text("❌ Deployment failed. Rolling back. Reason:", LONG)
        .await;
    assert!(text(&fail).contains("error rate"), "{}", text(&fail));
    bot.wait_text("Run 1 rolled back", LONG).await;

    let log = fake.log();
    let disable = fake
        .requests()
        .iter()
        .position(|r| {
            r.method == "PATCH"
                && r.body["patch"]
                    .as_str()
                    .unwrap_or("")
                    .contains("\"automated\":null")
        })
        .unwrap_or_else(|| panic!("auto-sync never turned off: {log:?}"));
    let rollback = log
        .iter()
        .position(|l| l == "POST /api/v1/applications/shop/rollback")
        .unwrap_or_else(|| panic!("no rollback: {log:?}"));
    assert!(
        disable < rollback,
        "auto-sync off before the rollback: {log:?}"
    );
    assert_eq!(fake.count("POST", "/rollback"), 1, "never refused: {log:?}");
    assert_eq!(fake.count("POST", "/sync"), 1, "{log:?}");
    let rb = &fake.requests()[rollback];
    assert_eq!(
        rb.body["id"], 1,
        "back to the history id before the release"
    );
    let app = fake.app("shop");
    assert!(
        app["spec"]["syncPolicy"].get("automated").is_none(),
        "{app}"
    );
    assert!(app["spec"]["source"].to_string().contains("shop:v1.2.0"));
    let (_, v) = bot.get_text(&format!("{workload}/version")).await;
    assert!(v.contains("v1.2.0"), "{v}");

    let st = status_of(&bot.messages().await, 1);
    assert!(
        st.contains("auto-sync of shop is now OFF")
            && st.contains("refuses a rollback while it is on")
            && st.contains("argocd app set shop --sync-policy automated"),
        "{st}"
    );
    load.stop().await;
}

#[test]
fn the_example_is_accepted_and_a_literal_token_is_refused_with_its_line() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let check = |file: &std::path::Path, token: Option<&str>| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.arg("check-config").arg(file).env_remove("ARGOCD_TOKEN");
        if let Some(t) = token {
            cmd.env("ARGOCD_TOKEN", t);
        }
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let example = root.join("config/examples/argocd.toml");
    let (ok, out) = check(&example, Some("tok"));
    assert!(ok, "{out}");
    let (ok, out) = check(&example, None);
    // check-config warns about a reference the environment does not set (`run` refuses it).
    assert!(ok && out.contains("ARGOCD_TOKEN is not set"), "{out}");

    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&example).unwrap();
    let line = text.lines().position(|l| l.starts_with("token =")).unwrap() + 1;
    let f = tmp.path().join("literal.toml");
    std::fs::write(
        &f,
        text.replace("\"${ARGOCD_TOKEN}\"", "\"eyJhbGciOi.secret\""),
    )
    .unwrap();
    let (ok, out) = check(&f, Some("tok"));
    assert!(!ok, "{out}");
    assert!(out.contains(&format!(":{line}: ")), "{out}");
    assert!(out.contains("never the token itself"), "{out}");
    assert!(!out.contains("eyJhbGciOi.secret"), "{out}");

    // A per-environment token written literally points at its own line.
    let f = tmp.path().join("env-literal.toml");
    let t = text.replace(
        "helm_parameter = \"image.tag\"",
        "helm_parameter = \"image.tag\"\ntoken = \"abc123\"",
    );
    let line = t.lines().position(|l| l == "token = \"abc123\"").unwrap() + 1;
    std::fs::write(&f, t).unwrap();
    let (ok, out) = check(&f, Some("tok"));
    assert!(!ok && out.contains(&format!(":{line}: ")), "{out}");

    // Blue-green without a traffic step is refused.
    let f = tmp.path().join("no-traffic.toml");
    let t = text.replace("[environments.prod.traffic]\ndriver = \"haproxy\"\nsocket = \"unix:/run/haproxy/admin.sock\"\nbackend = \"app\"\n", "");
    std::fs::write(&f, t).unwrap();
    let (ok, out) = check(&f, Some("tok"));
    assert!(
        !ok && out.contains("needs a way to switch traffic"),
        "{out}"
    );
}

/// With auto-sync on, Argo CD's controller may start the sync itself as soon as the source
/// changes; the driver's own sync is then refused (another operation is in progress) and it
/// follows the controller's operation: one operation, and the release goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_follows_the_controllers_own_auto_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeArgo::start().await;
    fake.add_app("shop", source("v1.2.0"), true);
    fake.controller_auto_syncs(true);
    let (old, new) = (
        DemoApp::start("v1.2.0", "blue"),
        DemoApp::start("v1.3.0", "blue"),
    );
    fake.backend("shop:v1.2.0", &old.1);
    fake.backend("shop:v1.3.0", &new.1);
    let workload = format!("{}/_workload/shop", fake.url);
    let load = Load::start(&workload, 2, Duration::from_millis(20));
    let bot = start(
        &rolling(&fake.url, &workload, "2s"),
        tmp.path(),
        TOKEN,
        None,
    )
    .await;
    deploy(&bot, 1, "v1.3.0").await;
    bot.wait_text("Run 1 stable", LONG).await;
    assert_eq!(fake.operations(), 1, "{:?}", fake.log());
    assert_eq!(
        fake.count("POST", "/sync"),
        1,
        "asked once, refused: {:?}",
        fake.log()
    );
    let (_, v) = bot.get_text(&format!("{workload}/version")).await;
    assert!(v.contains("v1.3.0"), "{v}");
    load.stop().await;
}
