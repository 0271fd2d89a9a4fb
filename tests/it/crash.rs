//! Crash safety: the bot is SIGKILLed in the middle of runs and restarted on the same data;
//! every run resumes or ends in a stated outcome, nothing is lost or posted twice.

use crate::harness::*;
use std::collections::BTreeSet;

fn demo_pids(bot: &Bot) -> BTreeSet<i32> {
    let dir = bot.dir.join("data").join("pids");
    std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| {
                std::fs::read_to_string(e.ok()?.path())
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            })
            .collect()
        })
        .unwrap_or_default()
}

fn alive(pid: i32) -> bool {
    // A zombie is not alive: check the state in /proc.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.contains(") Z "),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_the_checklist_and_monitoring_the_runs_resume() {
    let (mut bot, _tmp) = Bot::start(&test_config("")).await;

    // 1. Killed while the checklist is open: approvals are kept.
    bot.say("alice", "/deploy v1.2.0 staging").await;
    let (_, items) = bot.checklist_items(1).await;
    bot.react("bob", &items[0], "white_check_mark").await;
    bot.wait_for("item 1 approved", SHORT, |m| text(m).starts_with("✅ 1."))
        .await;
    bot.restart().await;
    bot.wait_text(
        "♻️ greenlight restarted: run 1's checklist is still open; approvals so far are kept.",
        SHORT,
    )
    .await;
    bot.react("bob", &items[1], "white_check_mark").await;
    bot.wait_text("🚀 Deploying v1.2.0 to Staging...", SHORT)
        .await;

    // 2. Killed while monitoring: the switch is not repeated, monitoring resumes.
    bot.wait_text("✅ Deployment successful. Monitoring.", LONG)
        .await;
    let before = demo_pids(&bot);
    assert!(!before.is_empty());
    bot.restart().await;
    for pid in &before {
        assert!(!alive(*pid), "demo app {pid} from before the crash is gone");
    }
    bot.wait_text(
        "♻️ greenlight restarted: run 1 is monitoring v1.2.0 on blue; monitoring resumes.",
        SHORT,
    )
    .await;
    bot.wait_text("Run 1 stable", LONG).await;

    // 3. Killed right after the deploy started, in whatever step it is: it still ends stated.
    bot.say("bob", "/deploy v1.2.1 staging").await;
    bot.approve_all(2, "carol").await;
    bot.wait_text("🚀 Deploying v1.2.1 to Staging...", SHORT)
        .await;
    bot.restart().await;
    bot.wait_text("♻️ greenlight restarted: run 2", SHORT).await;
    bot.wait_text("Run 2 stable", LONG).await;

    let msgs = bot.messages().await;
    for needle in [
        "🚀 Deploying v1.2.0 to Staging...",
        "🚀 Deploying v1.2.1 to Staging...",
        "📋 Pre-deployment checklist: v1.2.1",
    ] {
        assert_eq!(
            count(&msgs, needle),
            1,
            "{needle} posted exactly once\n{}",
            transcript(&msgs)
        );
    }
    assert_eq!(
        count(&msgs, "✅ Deployment successful. Monitoring."),
        2,
        "{}",
        transcript(&msgs)
    );
    let (_, run) = bot.get_json("/api/runs/1").await;
    assert_eq!(
        run["run"]["switch_intents"], 1,
        "the switch was carried out once"
    );
    let router = bot.router_url("staging").await;
    let (_, body) = bot.get_text(&format!("{router}/version")).await;
    assert!(
        body.contains("v1.2.1") && body.contains("green"),
        "live colour matches the store: {body}"
    );

    // history survives, read from the store with the bot stopped.
    bot.kill();
    let (code, out) = cli(
        &[
            "history",
            "staging",
            "--config",
            bot.config.to_str().unwrap(),
            "--data",
            bot.dir.join("data").to_str().unwrap(),
        ],
        &bot.dir,
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("run 2: v1.2.1 → staging by bob") && out.contains("succeeded"),
        "{out}"
    );
    assert!(out.contains("run 1: v1.2.0 → staging by alice"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_cleanly_and_the_run_resumes() {
    let (mut bot, _tmp) = Bot::start(&test_config("")).await;
    bot.say("alice", "/deploy v1.2.0 staging").await;
    bot.approve_all(1, "bob").await;
    bot.wait_text("✅ Deployment successful. Monitoring.", LONG)
        .await;
    let (status, took) = bot.terminate();
    assert!(status.success(), "{status:?}");
    assert!(took.as_secs() < 10, "{took:?}");
    let b = Bot::start_in(&bot.dir.clone(), &[]).await;
    b.wait_text("♻️ greenlight restarted: run 1", SHORT).await;
    b.wait_text("Run 1 stable", LONG).await;
}

/// Waits until the bot process has died by itself (a fault injection point fired).
async fn wait_dead(bot: &mut Bot) {
    let deadline = std::time::Instant::now() + LONG;
    while !bot.exited() {
        assert!(
            std::time::Instant::now() < deadline,
            "the fault point never fired\n{}",
            bot.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// One row of the crash matrix: SIGKILL at `point`, restart, and check the run ends in a
/// safe, stated outcome with the live colour matching the store and no message lost or doubled.
async fn crash_at(point: &str, faulty: bool) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("greenlight.toml"), test_config("")).unwrap();
    let mut bot = Bot::start_with(tmp.path(), &[], &[("GREENLIGHT_FAULT", point)]).await;
    let (run, version) = if faulty {
        bot.say("alice", "/deploy v1.2.0 staging").await;
        bot.approve_all(1, "bob").await;
        bot.wait_text("Run 1 stable", LONG).await;
        bot.say("bob", "/deploy v1.3.0-faulty staging").await;
        bot.approve_all_maybe(2, "carol").await;
        (2, "v1.3.0-faulty")
    } else {
        bot.say_maybe("alice", "/deploy v1.2.0 staging").await;
        if point != "persisted:awaiting_checklist" {
            bot.approve_all_maybe(1, "bob").await;
        }
        (1, "v1.2.0")
    };
    wait_dead(&mut bot).await;
    let before = demo_pids(&bot);
    bot.restart().await;
    for pid in &before {
        assert!(
            !alive(*pid),
            "{point}: demo app {pid} from before the crash is gone"
        );
    }
    bot.wait_text(&format!("♻️ greenlight restarted: run {run}"), SHORT)
        .await;
    if point == "persisted:awaiting_checklist" {
        bot.approve_all(1, "bob").await;
    }
    let end = if faulty {
        format!("Run {run} rolled back")
    } else {
        format!("Run {run} stable")
    };
    bot.wait_text(&end, LONG).await;

    let msgs = bot.messages().await;
    let t = transcript(&msgs);
    assert_eq!(
        count(&msgs, &format!("🚀 Deploying {version} to Staging...")),
        1,
        "{point}\n{t}"
    );
    assert_eq!(
        count(&msgs, &format!("📋 Pre-deployment checklist: {version}")),
        1,
        "{point}\n{t}"
    );
    assert_eq!(count(&msgs, "♻️ greenlight restarted"), 1, "{point}\n{t}");
    assert_eq!(
        count(&msgs, "✅ Deployment successful. Monitoring."),
        1 + faulty as usize,
        "{point}\n{t}"
    );
    if faulty {
        assert_eq!(
            count(&msgs, "❌ Deployment failed. Rolling back."),
            1,
            "{point}\n{t}"
        );
        assert_eq!(
            msgs.iter().filter(|m| m["channel"] == "incidents").count(),
            1,
            "{point}\n{t}"
        );
    }
    // Each switch intent was carried out at most once: exactly the intents this crash point
    // implies, and one recorded switch (and one switch back) in the run's event log.
    let (_, r) = bot.get_json(&format!("/api/runs/{run}")).await;
    let (intents, back_intents) = match point {
        // The intent was written but traffic had not (durably) moved: a new intent after the
        // idle colour is deployed and verified again.
        "before:switch" | "after:switch" => (2, 0),
        // Switching back was intended before the crash and again after the restart.
        "before:switch_back" | "after:switch_back" => (1, 2),
        _ => (1, 0),
    };
    assert_eq!(r["run"]["switch_intents"], intents, "{point}: {r}");
    assert_eq!(
        r["run"]["switch_back_intents"], back_intents,
        "{point}: {r}"
    );
    let events: Vec<greenlight::core::event::What> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            serde_json::from_value::<greenlight::core::event::Event>(e.clone())
                .unwrap()
                .what
        })
        .collect();
    use greenlight::core::event::What;
    let switched = events
        .iter()
        .filter(|e| matches!(e, What::Switched { .. }))
        .count();
    assert_eq!(switched, 1, "{point}: one switch carried out: {events:?}");
    let back = events.iter().filter(|e| **e == What::SwitchedBack).count();
    assert_eq!(back, faulty as usize, "{point}: {events:?}");
    // The live colour matches the store.
    let id = bot.say("carol", "/deploy status staging").await;
    let status = text(&bot.answer_to(&id).await);
    let live = if status.contains("live on blue") {
        "blue"
    } else {
        "green"
    };
    let want = if faulty { "v1.2.0" } else { version };
    assert!(
        status.contains(&format!("{want} live on {live}")),
        "{point}: {status}"
    );
    let router = bot.router_url("staging").await;
    let resp = reqwest::Client::new()
        .get(format!("{router}/version"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-greenlight-colour"], live, "{point}");
    assert!(resp.text().await.unwrap().contains(want), "{point}");
}

macro_rules! crash_matrix {
    ($($name:ident: $point:expr, $faulty:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            crash_at($point, $faulty).await;
        }
    )*};
}

crash_matrix! {
    crash_after_the_request: "persisted:awaiting_checklist", false;
    crash_when_asking_which_colour_is_live_is_written: "persisted:observing", false;
    crash_before_asking_which_colour_is_live: "before:observe", false;
    crash_after_asking_which_colour_is_live: "after:observe", false;
    crash_before_deploy_to_idle: "before:deploy_idle", false;
    crash_during_deploy_to_idle: "after:deploy_idle", false;
    crash_during_verification: "before:verify", false;
    crash_after_verification: "after:verify", false;
    crash_right_before_the_switch: "before:switch", false;
    crash_right_after_the_switch: "after:switch", false;
    crash_during_monitoring: "before:sample", false;
    crash_during_a_rollback_before_switching_back: "before:switch_back", true;
    crash_during_a_rollback_after_switching_back: "after:switch_back", true;
}

// ---- a kill while a failing release is monitored, on each driver ---------------------------
// (the demo driver's row is in trust.rs: its faulty app is re-armed by the bot itself)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_monitoring_a_failing_release_behind_haproxy_it_still_rolls_back() {
    use crate::haproxy_prometheus::{Lb, Load};
    let mut lb = Lb::start(true).await;
    let load = Load::start(&lb.frontend, 2, std::time::Duration::from_millis(20));
    lb.wait_metrics("blue").await;
    lb.bot.say("alice", "/deploy v1.2.0-faulty lb").await;
    lb.bot.approve_all(1, "bob").await;
    lb.bot
        .wait_text("✅ Deployment successful. Monitoring.", LONG)
        .await;
    // Killed before the release misbehaves: no check can have seen it fail yet.
    lb.bot.kill();
    assert_eq!(lb.live().await.as_deref(), Some("green"));
    lb.arm("green").await;
    lb.bot.restart().await;
    lb.bot
        .wait_text(
            "♻️ greenlight restarted: run 1 is monitoring v1.2.0-faulty on green; monitoring resumes.",
            SHORT,
        )
        .await;
    let end = lb
        .bot
        .wait_for("run 1 over", LONG, |m| {
            let t = text(m);
            t.starts_with("⏪ Run 1 rolled back") || t.starts_with("✅ Run 1 stable")
        })
        .await;
    assert!(
        text(&end).starts_with("⏪ Run 1 rolled back"),
        "{}",
        text(&end)
    );
    assert_eq!(lb.live().await.as_deref(), Some("blue"));
    load.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_monitoring_a_failing_release_on_the_command_driver_it_still_rolls_back() {
    use crate::haproxy_prometheus::{free_port, write_exec, Load, DEPLOY_SH, TEARDOWN_SH};
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ports = [free_port(), free_port()];
    std::fs::write(d.join("blue.port"), ports[0].to_string()).unwrap();
    std::fs::write(d.join("green.port"), ports[1].to_string()).unwrap();
    write_exec(&d.join("deploy.sh"), DEPLOY_SH);
    write_exec(&d.join("teardown.sh"), TEARDOWN_SH);
    // The switch records the live colour; the live query reads it back.
    write_exec(
        &d.join("switch.sh"),
        &format!("#!/bin/sh\necho \"$1\" > {}/live\n", d.display()),
    );
    let st = std::process::Command::new(d.join("deploy.sh"))
        .args(["v1.0.0", "blue"])
        .env("GREENLIGHT_BIN", BIN)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(d.join("live"), "blue\n").unwrap();
    struct Apps(std::path::PathBuf);
    impl Drop for Apps {
        fn drop(&mut self) {
            for c in ["blue", "green"] {
                if let Ok(pid) = std::fs::read_to_string(self.0.join(format!("{c}.pid"))) {
                    let _ = std::process::Command::new("kill").arg(pid.trim()).status();
                }
            }
        }
    }
    let _apps = Apps(d.to_path_buf());
    let extra = format!(
        r#"
[environments.api]
display_name = "API"
[environments.api.deploy]
driver = "command"
deploy_idle = ["{d}/deploy.sh", "{{version}}", "{{colour}}"]
switch = ["{d}/switch.sh", "{{colour}}"]
live_query = ["cat", "{d}/live"]
teardown = ["{d}/teardown.sh", "{{colour}}"]
timeout = "30s"
blue_url = "http://127.0.0.1:{p0}"
green_url = "http://127.0.0.1:{p1}"
[environments.api.monitor]
duration = "10s"
interval = "1s"
min_requests = 5
[[environments.api.checklist]]
text = "CI passed"
group = "reviewers"
"#,
        d = d.display(),
        p0 = ports[0],
        p1 = ports[1],
    );
    std::fs::write(d.join("greenlight.toml"), test_config(&extra)).unwrap();
    let mut bot = Bot::start_with(d, &[], &[("GREENLIGHT_BIN", BIN)]).await;
    // Users reach the new colour once it is live (here: straight at its port).
    let load = Load::start(
        &format!("http://127.0.0.1:{}", ports[1]),
        2,
        std::time::Duration::from_millis(20),
    );
    bot.say("alice", "/deploy v1.2.0-faulty api").await;
    bot.approve_all(1, "bob").await;
    bot.wait_text("✅ Deployment successful. Monitoring.", LONG)
        .await;
    bot.kill();
    assert_eq!(
        std::fs::read_to_string(d.join("live")).unwrap().trim(),
        "green"
    );
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/_demo/live", ports[1]))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    bot.restart().await;
    bot.wait_text(
        "♻️ greenlight restarted: run 1 is monitoring v1.2.0-faulty on green; monitoring resumes.",
        SHORT,
    )
    .await;
    bot.wait_text("⏪ Run 1 rolled back", LONG).await;
    assert_eq!(
        std::fs::read_to_string(d.join("live")).unwrap().trim(),
        "blue"
    );
    let (_, run) = bot.get_json("/api/runs/1").await;
    assert_eq!(run["run"]["phase"], "rolled_back");
    load.stop().await;
}

/// `n` environments on the command driver (nothing to start, nothing to ask), one checklist
/// item each.
fn command_envs(n: usize) -> String {
    let mut s = String::from(
        "[bot]\ntimezone = \"UTC\"\n[users.alice]\ngroups = [\"deployers\", \"reviewers\"]\n[users.bob]\ngroups = [\"deployers\", \"reviewers\"]\n",
    );
    for i in 0..n {
        s.push_str(&format!(
            "[environments.env{i}]\n[environments.env{i}.deploy]\ndriver = \"command\"\ndeploy_idle = [\"true\"]\nswitch = [\"true\"]\nlive = \"none\"\nblue_url = \"http://127.0.0.1:9\"\ngreen_url = \"http://127.0.0.1:9\"\n[[environments.env{i}.checklist]]\ntext = \"CI passed\"\ngroup = \"reviewers\"\n"
        ));
    }
    s
}

/// Group commit: the bot is killed after a group of inputs is applied and before the flush
/// that holds it, under a burst of 100 commands (after 5 acknowledged one by one). After the
/// restart every acknowledged command is in the store with its run and checklist; every other
/// one is there whole (written and answered, the answer lost with the process) or left nothing
/// at all: no message, no run, no post. The dying group's commands are of the second kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_apply_and_flush_under_a_burst_no_acknowledged_command_is_lost() {
    const WARM: usize = 5;
    const BURST: usize = 100;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("greenlight.toml"),
        command_envs(WARM + BURST),
    )
    .unwrap();
    // The 50th input is in the group the bot dies with.
    let mut bot = Bot::start_with(tmp.path(), &[], &[("GREENLIGHT_FAULT", "unflushed:50")]).await;
    // Versions of one width: no version is a prefix of another.
    let deploy = |i: usize| format!("/deploy v1.{}.0 env{i}", 100 + i);
    let mut acked = std::collections::BTreeMap::new();
    for i in 0..WARM {
        acked.insert(i, bot.say("alice", &deploy(i)).await);
    }
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut burst = Vec::new();
    for i in WARM..WARM + BURST {
        let (http, url, text) = (http.clone(), bot.url.clone(), deploy(i));
        burst.push(tokio::spawn(async move {
            let r = http
                .post(format!("{url}/api/local/messages"))
                .json(&serde_json::json!({"user": "alice", "text": text}))
                .send()
                .await;
            let id = match r {
                Ok(r) if r.status().as_u16() == 201 => {
                    let body: serde_json::Value = r.json().await.unwrap();
                    body["id"].as_str().map(String::from)
                }
                _ => None,
            };
            (i, id)
        }));
    }
    for b in burst {
        if let (i, Some(id)) = b.await.unwrap() {
            acked.insert(i, id);
        }
    }
    wait_dead(&mut bot).await;
    bot.restart().await;

    let msgs = bot.messages().await;
    let t = transcript(&msgs);
    // A command is in the store whole (its message, its run, its checklist) or not at all.
    let mut absent = 0;
    for i in 0..WARM + BURST {
        let version = format!("v1.{}.0", 100 + i);
        let mine: Vec<&serde_json::Value> = msgs.iter().filter(|m| text(m) == deploy(i)).collect();
        let checklists = count(&msgs, &format!("📋 Pre-deployment checklist: {version} "));
        let (_, runs) = bot.get_json(&format!("/api/history/env{i}")).await;
        let runs = runs.as_array().unwrap().clone();
        if let Some(id) = acked.get(&i) {
            assert!(
                mine.len() == 1 && mine[0]["id"] == id.as_str(),
                "acknowledged command {i} (message {id}) is kept\n{t}"
            );
        }
        if mine.is_empty() {
            // Never written, so never acknowledged: nothing of it anywhere.
            absent += 1;
            assert_eq!(count(&msgs, &version), 0, "command {i} left a message\n{t}");
            assert!(runs.is_empty(), "command {i} left a run: {runs:?}");
        } else {
            // Written (its answer may have been lost with the process): all of it.
            assert_eq!(mine.len(), 1, "command {i} once\n{t}");
            assert_eq!(checklists, 1, "command {i}: its checklist\n{t}");
            assert_eq!(runs.len(), 1, "command {i}: its run: {runs:?}");
            assert_eq!(runs[0]["version"], version.as_str(), "env{i}: {runs:?}");
        }
    }
    // The group holding the 50th input was never flushed, so never acknowledged.
    assert!(absent >= 1, "the group the bot died with left nothing\n{t}");
    // Every person's message in the store is an acknowledged command.
    let ids: BTreeSet<&str> = acked.values().map(String::as_str).collect();
    for m in msgs.iter().filter(|m| m["user"] != "greenlight") {
        assert!(
            ids.contains(m["id"].as_str().unwrap()),
            "unacknowledged message {m}\n{t}"
        );
    }
}
