//! `revert = "github"` / `"gitlab"`: after a rollback (automatic, or by hand) on the demo
//! environment, greenlight opens exactly one revert pull (merge) request on the fake repository
//! and links it in the run's thread and the incident channel, also when it is killed after
//! making the branch and restarted.

use crate::fake_github_git::{FakeGitHubGit, TOKEN};
use crate::harness::*;

/// The demo environment asking for reverts on the fake's repository.
fn config(fake: &FakeGitHubGit) -> String {
    test_config(&format!(
        "[github]\napi_url = \"{}\"\ntoken = \"${{GL_TEST_GH_REVERT}}\"\nrepo = \"acme/shop\"\n",
        fake.url
    ))
    .replace(
        "display_name = \"Staging\"\n",
        "display_name = \"Staging\"\nrevert = \"github\"\n",
    )
}

/// v1.2.0, then v1.2.1 changing app.rs, tagged on main.
async fn repo() -> FakeGitHubGit {
    let fake = FakeGitHubGit::start().await;
    let c = fake.commit("main", &[("app.rs", "a1"), ("lib.rs", "l1")], "v1.2.0");
    fake.tag("v1.2.0", &c);
    let c = fake.commit("main", &[("app.rs", "a2"), ("lib.rs", "l1")], "v1.2.1");
    fake.tag("v1.2.1", &c);
    fake
}

async fn two_stable(bot: &Bot) {
    bot.say("alice", "/deploy v1.2.0 staging").await;
    bot.approve_all(1, "bob").await;
    bot.wait_text("Run 1 stable", LONG).await;
    bot.say("alice", "/deploy v1.2.1 staging").await;
    bot.approve_all(2, "bob").await;
    bot.wait_text("Run 2 stable", LONG).await;
}

const LINK: &str = "pull request #1 https://github.com/acme/shop/pull/1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automatic_rollback_opens_one_revert_pull_request_linked_in_the_incident_channel() {
    let fake = repo().await;
    let c = fake.commit(
        "main",
        &[("app.rs", "a3"), ("lib.rs", "l2")],
        "v1.3.0-faulty",
    );
    fake.tag("v1.3.0-faulty", &c);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("greenlight.toml"), config(&fake)).unwrap();
    let bot = Bot::start_with(tmp.path(), &[], &[("GL_TEST_GH_REVERT", TOKEN)]).await;
    bot.say("alice", "/deploy v1.2.1 staging").await;
    bot.approve_all(1, "bob").await;
    bot.wait_text("Run 1 stable", LONG).await;
    // The demo's faulty version fails its monitoring: rolled back by greenlight itself.
    bot.say("bob", "/deploy v1.3.0-faulty staging").await;
    bot.approve_all(2, "carol").await;
    bot.wait_text("❌ Deployment failed. Rolling back. Reason:", LONG)
        .await;
    let link = "pull request #1 https://github.com/acme/shop/pull/1";
    let alert = bot
        .wait_for("the revert's link in the incident channel", LONG, |m| {
            m["channel"] == "incidents" && text(m).contains(link)
        })
        .await;
    assert!(
        text(&alert).contains("Revert of v1.3.0-faulty (back to v1.2.1) is ready for review"),
        "{}",
        text(&alert)
    );
    bot.wait_for("the link in the run's thread", SHORT, |m| {
        m["channel"] == "deploys" && !m["thread_id"].is_null() && text(m).contains(link)
    })
    .await;
    assert_eq!(fake.state().pulls.len(), 1);
    let files = fake.state().files_at("greenlight/revert-staging-run-2");
    assert_eq!(files["app.rs"].1, "a2", "app.rs is back to v1.2.1's");
    assert_eq!(files["lib.rs"].1, "l1", "lib.rs is back to v1.2.1's");
    assert!(!bot.log().contains(TOKEN), "the token is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_branch_a_restart_opens_the_one_pull_request() {
    let fake = repo().await;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("greenlight.toml"), config(&fake)).unwrap();
    let mut bot = Bot::start_with(
        tmp.path(),
        &[],
        &[
            ("GL_TEST_GH_REVERT", TOKEN),
            ("GREENLIGHT_FAULT", "revert:branch"),
        ],
    )
    .await;
    two_stable(&bot).await;
    bot.say("bob", "/rollback staging checkout errors").await;
    // The bot kills itself once the revert's branch exists.
    let deadline = std::time::Instant::now() + LONG;
    while !fake
        .state()
        .branches
        .contains_key("greenlight/revert-staging-run-3")
    {
        assert!(std::time::Instant::now() < deadline, "no revert branch");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let deadline = std::time::Instant::now() + SHORT;
    while !bot.exited() {
        assert!(
            std::time::Instant::now() < deadline,
            "the fault point did not fire"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(fake.state().pulls.is_empty());
    bot.restart().await;
    bot.wait_for("the revert's link after the restart", LONG, |m| {
        m["channel"] == "incidents" && text(m).contains(LINK)
    })
    .await;
    let writes = fake.writes();
    assert_eq!(writes.iter().filter(|w| *w == "POST git/refs").count(), 1);
    assert_eq!(writes.iter().filter(|w| *w == "POST pulls").count(), 1);
    assert_eq!(fake.state().pulls.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_on_gitlab_opens_one_merge_request() {
    use crate::fake_gitlab_repo::{FakeGitLabRepo, TOKEN as GL_TOKEN};
    let fake = FakeGitLabRepo::start().await;
    let c = fake.commit("main", &[("app.rs", "one"), ("lib.rs", "l")]);
    fake.tag("v1.2.0", &c);
    let c = fake.commit("main", &[("app.rs", "two"), ("lib.rs", "l")]);
    fake.tag("v1.2.1", &c);
    let cfg = test_config(&format!(
        "[gitlab]\napi_url = \"{}\"\nproject = \"acme/shop\"\ntoken = \"${{GL_TEST_GL_REVERT}}\"\n",
        fake.url
    ))
    .replace(
        "display_name = \"Staging\"\n",
        "display_name = \"Staging\"\nrevert = \"gitlab\"\n",
    );
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("greenlight.toml"), cfg).unwrap();
    let bot = Bot::start_with(tmp.path(), &[], &[("GL_TEST_GL_REVERT", GL_TOKEN)]).await;
    two_stable(&bot).await;
    bot.say("bob", "/rollback staging checkout errors").await;
    bot.wait_for(
        "the merge request's link in the incident channel",
        LONG,
        |m| {
            m["channel"] == "incidents"
                && text(m).contains(
                    "merge request !1 https://gitlab.example/acme/shop/-/merge_requests/1",
                )
        },
    )
    .await;
    assert_eq!(fake.state().mrs.len(), 1);
    assert_eq!(
        fake.state().contents_at("greenlight/revert-staging-run-3")["app.rs"],
        "one"
    );
    assert!(!bot.log().contains(GL_TOKEN), "the token is never logged");
}
