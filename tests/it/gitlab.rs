//! Whole runs with the `gitlab` driver: the real binary, the local channel, the fake GitLab,
//! demo apps as the colours and a recorder as the `command` traffic step. A run creates one
//! pipeline, follows it, switches only after it succeeded, and says why when it did not;
//! a crash at either side of the pipeline's creation never creates a second one.

use crate::fake_gitlab::*;
use crate::harness::*;
use std::path::Path;
use std::time::{Duration, Instant};

const ENVS: [(&str, &str); 2] = [
    ("GL_TEST_GITLAB_TOKEN", TOKEN),
    ("GL_TEST_GITLAB_TRIGGER", TRIGGER_TOKEN),
];

/// `deploy` is extra keys of the deploy section; `gitlab` the `[gitlab]` section's keys.
fn config(
    gl: &FakeGitlab,
    gitlab: &str,
    deploy: &str,
    rec: &str,
    blue: &str,
    green: &str,
) -> String {
    test_config(&format!(
        r#"
[gitlab]
api_url = "{api}"
project = "{PROJECT_PATH}"
{gitlab}

[environments.api]
display_name = "API"
[environments.api.deploy]
driver = "gitlab"
variables = {{ DEPLOY_COLOUR = "{{colour}}", DEPLOY_VERSION = "{{version}}" }}
poll_interval = "100ms"
blue_url = "{blue}"
green_url = "{green}"
{deploy}
[environments.api.traffic]
driver = "command"
switch = ["{rec}", "switch", "{{colour}}"]
live = "none"
[environments.api.monitor]
duration = "2s"
interval = "1s"
min_requests = 5
[[environments.api.checklist]]
text = "CI passed"
group = "reviewers"
[[environments.api.smoke]]
name = "dashboard loads"
path = "/healthz"
"#,
        api = gl.url
    ))
}

const BOTH_TOKENS: &str =
    "token = \"${GL_TEST_GITLAB_TOKEN}\"\ntrigger_token = \"${GL_TEST_GITLAB_TRIGGER}\"";

fn recorder(dir: &Path) -> (String, std::path::PathBuf) {
    let log = dir.join("calls.log");
    let script = dir.join("record.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '[%s]' \"$a\" >> {}; done\necho >> {}\n",
            log.display(),
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (script.display().to_string(), log)
}

struct World {
    gl: FakeGitlab,
    tmp: tempfile::TempDir,
    rec: String,
    log: std::path::PathBuf,
    blue: DemoApp,
    green: DemoApp,
}

impl World {
    async fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let (rec, log) = recorder(tmp.path());
        World {
            gl: FakeGitlab::start(&["v1.2.0", "v1.3.0"]).await,
            rec,
            log,
            tmp,
            blue: DemoApp::start("v0", "blue"),
            green: DemoApp::start("v0", "green"),
        }
    }

    fn write(&self, gitlab: &str, deploy: &str) {
        let cfg = config(
            &self.gl,
            gitlab,
            deploy,
            &self.rec,
            &self.blue.1,
            &self.green.1,
        );
        std::fs::write(self.tmp.path().join("greenlight.toml"), cfg).unwrap();
    }

    async fn bot(&self, envs: &[(&str, &str)]) -> Bot {
        let mut all: Vec<(&str, &str)> = ENVS.to_vec();
        all.extend_from_slice(envs);
        Bot::start_with(self.tmp.path(), &[], &all).await
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

async fn deploy(bot: &Bot, version: &str) {
    bot.say("alice", &format!("/deploy {version} api")).await;
    bot.approve_all(1, "bob").await;
}

async fn status(bot: &Bot) -> String {
    let msgs = bot.messages().await;
    msgs.iter()
        .find(|m| text(m).starts_with("Run 1 status"))
        .map(text)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_pipeline_deploys_then_traffic_switches_and_the_run_is_stable() {
    let w = World::new().await;
    w.write(BOTH_TOKENS, "");
    let bot = w.bot(&[]).await;
    // The monitoring needs requests to judge: steady traffic to the colour being deployed.
    let traffic = tokio::spawn(greenlight::demo_traffic::synthetic_traffic(
        reqwest::Client::builder().no_proxy().build().unwrap(),
        w.blue.1.clone(),
    ));
    deploy(&bot, "v1.2.0").await;
    bot.wait_text("✅ Deployment successful. Monitoring.", LONG)
        .await;
    bot.wait_text("Run 1 stable", LONG).await;
    traffic.abort();
    let ps = w.gl.pipelines();
    assert_eq!(ps.len(), 1, "one pipeline: {ps:?}");
    let (id, r, source, st, vars) = &ps[0];
    assert_eq!(
        (r.as_str(), source.as_str(), st.as_str()),
        ("v1.2.0", "trigger", "success")
    );
    assert_eq!(vars["DEPLOY_COLOUR"], "blue");
    assert_eq!(vars["DEPLOY_VERSION"], "v1.2.0");
    let st = status(&bot).await;
    assert!(
        st.contains(&format!(
            "GitLab pipeline #{id}: {}",
            w.gl.url.trim_end_matches("/api/v4")
        )),
        "the link is in the status: {st}"
    );
    assert!(w.calls().contains("[switch][blue]"), "{}", w.calls());
    assert!(!bot.log().contains(TOKEN) && !bot.log().contains(TRIGGER_TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pipeline_never_switches_and_says_why_with_the_link() {
    let w = World::new().await;
    w.write(BOTH_TOKENS, "");
    w.gl.set_script(&["created", "running", "failed"]);
    let bot = w.bot(&[]).await;
    deploy(&bot, "v1.2.0").await;
    let m = bot.wait_text("❌ Deployment failed. Reason: ", LONG).await;
    let t = text(&m);
    let id = w.gl.pipelines()[0].0;
    assert!(
        t.contains(&format!("GitLab pipeline #{id} failed: http://")),
        "{t}"
    );
    assert!(t.contains(&format!("/-/pipelines/{id}")), "{t}");
    assert!(
        t.ends_with("Live traffic was never switched: nothing was live before this deploy."),
        "{t}"
    );
    assert!(!w.calls().contains("[switch]"), "{}", w.calls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_then_the_run_fails_within_the_timeout() {
    let w = World::new().await;
    w.write(BOTH_TOKENS, "timeout = \"4s\"");
    for _ in 0..200 {
        w.gl.fail_next(Route::Pipeline, Fault::Status(503));
    }
    let bot = w.bot(&[]).await;
    deploy(&bot, "v1.2.0").await;
    bot.wait_text("🚀 Deploying v1.2.0 to API...", SHORT).await;
    let t = Instant::now();
    let m = bot.wait_text("❌ Deployment failed. Reason: ", SHORT).await;
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    let t = text(&m);
    assert!(
        t.contains("GitLab: 503 503 Service Unavailable (after "),
        "{t}"
    );
    assert!(
        t.contains("gave up within the step's 4s (pipeline #"),
        "{t}"
    );
    let gets = w.gl.requests().iter().filter(|r| r.method == "GET").count();
    assert!(gets >= 2, "retried: {gets}");
    assert_eq!(w.gl.creation_requests(), 1);
    assert!(!w.calls().contains("[switch]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_waited_out_as_gitlab_asks() {
    let w = World::new().await;
    w.write(BOTH_TOKENS, "");
    w.gl.fail_next(Route::Trigger, Fault::RateLimited { secs: 2 });
    let bot = w.bot(&[]).await;
    deploy(&bot, "v1.2.0").await;
    bot.wait_text("✅ Deployment successful. Monitoring.", LONG)
        .await;
    let posts: Vec<Instant> =
        w.gl.requests()
            .iter()
            .filter(|r| r.method == "POST")
            .map(|r| r.at)
            .collect();
    assert_eq!(posts.len(), 2, "the 429, then the one that created it");
    assert!(
        posts[1] - posts[0] >= Duration::from_millis(1900),
        "{:?}",
        posts[1] - posts[0]
    );
    assert_eq!(w.gl.pipelines().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_one_line_and_nothing_is_deployed() {
    let w = World::new().await;
    w.write("token = \"${GL_TEST_GITLAB_TOKEN}\"", "");
    let bot = w.bot(&[("GL_TEST_GITLAB_TOKEN", "glpat-revoked")]).await;
    deploy(&bot, "v1.2.0").await;
    let m = bot.wait_text("❌ Deployment failed. Reason: ", LONG).await;
    let t = text(&m);
    assert!(
        t.contains("GitLab: refused the credential (401 401 Unauthorized); no pipeline was created, nothing was deployed"),
        "{t}"
    );
    assert!(!t.contains('\n'), "one line: {t}");
    assert!(!t.contains("glpat-revoked"), "{t}");
    assert!(w.gl.pipelines().is_empty());
    assert_eq!(w.gl.creation_requests(), 1, "never retried");
    assert!(!w.calls().contains("[switch]"));
}

async fn wait_dead(bot: &mut Bot) {
    let deadline = Instant::now() + LONG;
    while !bot.exited() {
        assert!(
            Instant::now() < deadline,
            "the fault point never fired\n{}",
            bot.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_once_the_pipeline_is_created_the_run_follows_it_after_a_restart() {
    let w = World::new().await;
    w.write(BOTH_TOKENS, "timeout = \"20s\"");
    w.gl.set_script(&["created", "pending", "running", "running", "success"]);
    let mut bot = w.bot(&[("GREENLIGHT_FAULT", "gitlab:created")]).await;
    bot.say_maybe("alice", "/deploy v1.2.0 api").await;
    bot.approve_all_maybe(1, "bob").await;
    wait_dead(&mut bot).await;
    assert_eq!(w.gl.pipelines().len(), 1);
    bot.restart().await;
    bot.wait_text("♻️ greenlight restarted: run 1", SHORT).await;
    bot.wait_text("✅ Deployment successful. Monitoring.", LONG)
        .await;
    assert_eq!(
        w.gl.creation_requests(),
        1,
        "exactly one pipeline: {:#?}",
        w.gl.requests()
    );
    assert_eq!(w.gl.pipelines()[0].3, "success");
    assert!(w.calls().contains("[switch][blue]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_the_journal_and_the_request_the_run_fails_clearly_and_creates_nothing() {
    let w = World::new().await;
    w.write(BOTH_TOKENS, "timeout = \"3s\"");
    let mut bot = w.bot(&[("GREENLIGHT_FAULT", "gitlab:journaled")]).await;
    bot.say_maybe("alice", "/deploy v1.2.0 api").await;
    bot.approve_all_maybe(1, "bob").await;
    wait_dead(&mut bot).await;
    bot.restart().await;
    bot.wait_text("♻️ greenlight restarted: run 1", SHORT).await;
    let m = bot.wait_text("❌ Deployment failed. Reason: ", SHORT).await;
    let t = text(&m);
    assert!(t.contains("no pipeline on ref v1.2.0 created since"), "{t}");
    assert!(
        t.contains("it may not have started; greenlight will not start a second one"),
        "{t}"
    );
    assert_eq!(w.gl.creation_requests(), 0);
    assert!(!w.calls().contains("[switch]"));
}

#[test]
fn the_gitlab_example_passes_check_config_and_a_literal_token_names_its_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = |file: &Path| {
        // check-config runs where the secrets are not (CI): unset references are warnings.
        let out = std::process::Command::new(BIN)
            .args(["check-config", file.to_str().unwrap()])
            .env_remove("GITLAB_TOKEN")
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let example = root.join("config/examples/gitlab.toml");
    let (code, out) = run(&example);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ok (2 environments"), "{out}");
    assert!(
        out.contains("warning: GITLAB_TOKEN is not set in this environment"),
        "{out}"
    );

    let text = std::fs::read_to_string(&example).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            text.replace("token = \"${GITLAB_TOKEN}\"", "token = \"glpat-oops\""),
            "token = \"glpat-oops\"",
            "[gitlab] token must be a ${NAME} reference",
        ),
        (
            text.replace("ref = \"main\"", "ref = \"{branch}\""),
            "[environments.staging.deploy]",
            "environment \"staging\": deploy.ref: ",
        ),
        (
            text.replace("https://gitlab.example.com/api/v4\"\nproject", "http://gitlab.example.com/api/v4\"\nproject"),
            "[environments.staging.deploy]",
            "plain http:// is allowed only for a loopback address",
        ),
        (
            text.replace("[environments.prod.traffic]\ndriver = \"haproxy\"\nsocket = \"unix:/run/haproxy/admin.sock\"\nbackend = \"app\"\n", ""),
            "[environments.prod.deploy]",
            "a gitlab deploy needs an [environments.prod.traffic] section",
        ),
    ];
    for (i, (bad, line_of, want)) in cases.iter().enumerate() {
        assert_ne!(bad, &text, "case {i} changed nothing");
        let f = tmp.path().join(format!("bad{i}.toml"));
        std::fs::write(&f, bad).unwrap();
        let (code, out) = run(&f);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains(want), "{want}: {out}");
        let first = out.lines().next().unwrap();
        let line: usize = first
            .split(':')
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("a line number in {first}"));
        let expected = bad.lines().position(|l| l.contains(line_of)).unwrap() + 1;
        assert_eq!(line, expected, "{first}");
    }
}
