//! The Dockerfile and fly.toml agree with the binary: port, data path, config path, health
//! check; the binary started with the image's environment answers `greenlight healthcheck`.

use crate::harness::*;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};

fn dockerfile_env(text: &str) -> BTreeMap<String, String> {
    // ENV lines with `\` continuations.
    let joined = text.replace("\\\n", " ");
    let mut out = BTreeMap::new();
    for line in joined.lines().filter(|l| l.starts_with("ENV ")) {
        for kv in line[4..].split_whitespace() {
            if let Some((k, v)) = kv.split_once('=') {
                out.insert(k.to_string(), v.to_string());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerfile_and_fly_toml_match_the_binary() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let docker = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let fly: toml::Value =
        toml::from_str(&std::fs::read_to_string(root.join("fly.toml")).unwrap()).unwrap();
    let env = dockerfile_env(&docker);

    assert!(
        docker.contains("cargo build --release --locked"),
        "the builder runs CI's release build"
    );
    assert!(docker.contains("USER greenlight"), "non-root");
    assert!(docker.contains("HEALTHCHECK") && docker.contains("[\"greenlight\", \"healthcheck\"]"));
    assert!(
        !docker.to_lowercase().contains("token="),
        "no secrets baked in"
    );
    let listen = &env["GREENLIGHT_LISTEN"];
    let port: i64 = listen.rsplit(':').next().unwrap().parse().unwrap();
    assert!(docker.contains(&format!("EXPOSE {port}")));
    assert_eq!(
        fly["http_service"]["internal_port"].as_integer(),
        Some(port)
    );
    assert_eq!(
        fly["env"]["GREENLIGHT_LISTEN"].as_str(),
        Some(listen.as_str())
    );
    assert_eq!(
        fly["mounts"]["destination"].as_str(),
        Some(env["GREENLIGHT_DATA"].as_str())
    );
    assert!(docker.contains(&format!("VOLUME [\"{}\"]", env["GREENLIGHT_DATA"])));
    assert_eq!(
        fly["env"]["GREENLIGHT_CONFIG"].as_str(),
        Some(env["GREENLIGHT_CONFIG"].as_str())
    );
    assert!(docker.contains(&format!(
        "COPY config/greenlight.toml {}",
        env["GREENLIGHT_CONFIG"]
    )));
    assert_eq!(
        fly["http_service"]["auto_stop_machines"].as_str(),
        Some("off")
    );
    assert_eq!(
        fly["http_service"]["min_machines_running"].as_integer(),
        Some(1)
    );
    assert_eq!(fly["kill_signal"].as_str(), Some("SIGTERM"));
    let check_path = fly["http_service"]["checks"][0]["path"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(check_path, "/healthz");

    // The binary with the image's environment (loopback port 0, a temp data dir) is healthy
    // on that path, and `greenlight healthcheck` says so.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("greenlight.toml"), test_config("")).unwrap();
    let bot = Bot::start_in(tmp.path(), &[]).await;
    let (code, body) = bot.get_text(&format!("{}{check_path}", bot.url)).await;
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let st = Command::new(BIN)
        .args(["healthcheck", "--url", &bot.url])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let (code, body) = bot.get_text(&format!("{}/readyz", bot.url)).await;
    assert_eq!(code, 200, "{body}");
    // A dead address is unhealthy.
    drop(bot);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let st = Command::new(BIN)
        .args(["healthcheck", "--url", &dead])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!st.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_never_print_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = "pw-7f3a9c-never-print-me";
    let cfg = test_config("").replace(
        "password = \"demo\"",
        "password = \"${GL_TEST_SMOKE_PASSWORD}\"",
    );
    // The demo app only accepts "demo": make the secret's value that, but with a marker
    // string appended to a second secret that shows up in commands.
    let cfg = cfg.replace(
        "[environments.staging.smoke_vars]",
        "[environments.staging.smoke_vars]\nextra = \"${GL_TEST_EXTRA}\"",
    );
    std::fs::write(tmp.path().join("greenlight.toml"), cfg).unwrap();
    let bot = Bot::start_with(
        tmp.path(),
        &[],
        &[
            ("GREENLIGHT_LOG_FORMAT", "json"),
            ("GL_TEST_SMOKE_PASSWORD", "demo"),
            ("GL_TEST_EXTRA", secret),
            ("SLACK_SIGNING_SECRET", "slack-signing-secret-value"),
        ],
    )
    .await;
    bot.say("alice", "/deploy v1.2.0 staging").await;
    bot.approve_all(1, "bob").await;
    bot.wait_text("Run 1 stable", LONG).await;
    let log = bot.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() > 10);
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
    }
    assert!(!log.contains(secret), "a configured secret reached the log");
    assert!(!log.contains("slack-signing-secret-value"));
    let msgs = bot.messages().await;
    assert!(
        !transcript(&msgs).contains(secret),
        "a configured secret reached the channel"
    );
    // The bot's own metrics count the run.
    let (_, m) = bot.get_text(&format!("{}/metrics", bot.url)).await;
    assert!(
        m.contains("greenlight_runs_total{env=\"staging\",outcome=\"succeeded\"} 1"),
        "{m}"
    );
    assert!(m.contains("greenlight_command_ack_seconds_count"), "{m}");
    assert!(
        m.contains("greenlight_platform_connected{platform=\"local\"} 1"),
        "{m}"
    );
}
