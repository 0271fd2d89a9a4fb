//! The `command` driver: argv templates (no shell), output captured, truncated and masked on
//! failure; health and smoke checks against the colours' URLs; no metrics is never a pass.

use crate::harness::*;

fn config(recorder: &str, blue: &str, green: &str, deploy_args: &str) -> String {
    test_config(&format!(
        r#"
[environments.api]
display_name = "API"
[environments.api.deploy]
driver = "command"
deploy_idle = ["{recorder}", {deploy_args}]
switch = ["{recorder}", "switch", "{{colour}}"]
live = "none"
teardown = ["{recorder}", "teardown", "{{colour}}"]
timeout = "5s"
env = {{ DEPLOY_TOKEN = "${{GL_TEST_DEPLOY_TOKEN}}" }}
blue_url = "{blue}"
green_url = "{green}"
[environments.api.monitor]
duration = "2s"
interval = "1s"
min_requests = 5
[[environments.api.checklist]]
text = "CI passed"
group = "reviewers"
[[environments.api.smoke]]
name = "login/auth works"
method = "POST"
path = "/login"
body = {{ user = "demo", password = "demo" }}
capture = {{ token = "/token" }}
[[environments.api.smoke]]
name = "checkout works"
method = "POST"
path = "/checkout"
headers = {{ Authorization = "Bearer {{token}}" }}
body = {{ item = "x", qty = 1 }}
critical = true
"#
    ))
}

fn recorder(dir: &std::path::Path) -> (String, std::path::PathBuf) {
    let log = dir.join("calls.log");
    let script = dir.join("record.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '[%s]' \"$a\" >> {log}; done\necho >> {log}\nif [ \"$1\" = fail ]; then echo \"connecting with token $DEPLOY_TOKEN\"; i=0; while [ $i -lt 300 ]; do echo \"noise line $i\"; i=$((i+1)); done; echo 'warning: retrying' >&2; echo 'boom: image not found'; exit 3; fi\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (script.display().to_string(), log)
}

async fn start(cfg: &str, dir: &std::path::Path) -> Bot {
    std::fs::write(dir.join("greenlight.toml"), cfg).unwrap();
    std::env::set_var("GL_TEST_DEPLOY_TOKEN", "s3cr3t-t0ken");
    Bot::start_in(dir, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_get_arguments_never_a_shell_and_no_metrics_is_not_a_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let (rec, log) = recorder(tmp.path());
    let (blue, green) = (DemoApp::start("v0", "blue"), DemoApp::start("v0", "green"));
    let cfg = config(
        &rec,
        &blue.1,
        &green.1,
        r#""deploy", "{version}", "{colour}", "{env}""#,
    );
    let bot = start(&cfg, tmp.path()).await;
    bot.say("alice", "/deploy v2.0.0-rc.1+sha.5 api").await;
    bot.approve_all(1, "bob").await;
    bot.wait_text("🚀 Deploying v2.0.0-rc.1+sha.5 to API...", SHORT)
        .await;
    bot.wait_text("✅ Deployment successful. Monitoring.", LONG)
        .await;
    // Nobody sends traffic to these apps: monitoring has no data, and that is never a pass.
    let end = bot.wait_text("was inconclusive", LONG).await;
    assert!(text(&end).contains("not marked stable"), "{}", text(&end));
    let (_, run) = bot.get_json("/api/runs/1").await;
    assert_eq!(run["run"]["phase"], "unverified");
    let msgs = bot.messages().await;
    let st = msgs
        .iter()
        .find(|m| text(m).starts_with("Run 1 status"))
        .map(text)
        .unwrap();
    // Nobody else calls these apps; the critical-path check runs beside the metrics, so a
    // window may hold one of its own requests.
    assert!(
        st.contains("inconclusive (only 0 requests in the window (minimum 5))")
            || st.contains("inconclusive (only 1 requests in the window (minimum 5))"),
        "{st}"
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        calls.contains("[deploy][v2.0.0-rc.1+sha.5][blue][api]"),
        "{calls}"
    );
    assert!(calls.contains("[switch][blue]"), "{calls}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_shows_its_output_masked_and_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let (rec, log) = recorder(tmp.path());
    let (blue, green) = (DemoApp::start("v0", "blue"), DemoApp::start("v0", "green"));
    let cfg = config(&rec, &blue.1, &green.1, r#""fail", "{version}""#);
    let bot = start(&cfg, tmp.path()).await;
    bot.say("alice", "/deploy v2.0.0 api").await;
    bot.approve_all(1, "bob").await;
    let m = bot
        .wait_text("❌ Deployment failed. Reason: deploy to idle failed", LONG)
        .await;
    let t = text(&m);
    assert!(t.contains("exited with status 3"), "{t}");
    assert!(
        t.contains("boom: image not found"),
        "the end of the output explains the failure: {t}"
    );
    assert!(t.contains("truncated"), "long output is truncated: {t}");
    assert!(!t.contains("s3cr3t-t0ken"), "secrets are masked: {t}");
    assert!(
        t.ends_with("Live traffic was never switched: nothing was live before this deploy."),
        "{t}"
    );
    // The teardown runs after the failure is posted: wait for it (with a deadline).
    let deadline = std::time::Instant::now() + SHORT;
    let calls = loop {
        let calls = std::fs::read_to_string(&log).unwrap();
        if calls.contains("[teardown][blue]") || std::time::Instant::now() > deadline {
            break calls;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(!calls.contains("[switch]"), "no switch: {calls}");
    assert!(
        calls.contains("[teardown][blue]"),
        "the idle colour is torn down: {calls}"
    );
    assert!(
        !bot.log().contains("s3cr3t-t0ken"),
        "secrets never reach the logs"
    );
}
