//! The GitHub revert step against the fake repository: a clean revert opens exactly one pull
//! request whose commit sets back what the release changed; after a crash it finds the branch
//! or the pull request it opened; a conflict, an unknown version or a refused token opens
//! nothing and says why in one line.

use crate::fake_github_git::{FakeGitHubGit, TOKEN};
use greenlight::core::{EnvName, RunId};
use greenlight::deploy::revert::GitHubRevert;
use greenlight::deploy::{RevertStep, StepCtx};
use greenlight::remote::rest::Api;
use greenlight::store::Journal;
use std::time::Duration;

fn step(fake: &FakeGitHubGit, token: &str, dir: &std::path::Path) -> GitHubRevert {
    let api = Api::new(
        "GitHub",
        &fake.url,
        reqwest::Client::new(),
        vec![token.into()],
    )
    .unwrap()
    .header("authorization", &format!("Bearer {token}"), true)
    .unwrap()
    .header("accept", "application/vnd.github+json", false)
    .unwrap()
    .header("user-agent", "greenlight", false)
    .unwrap();
    GitHubRevert {
        api,
        repo: fake.owner_repo.clone(),
        journal: Journal::scratch(dir).unwrap(),
        timeout: Duration::from_secs(10),
    }
}

fn ctx() -> StepCtx {
    StepCtx::detached(RunId(7), EnvName::new("prod"))
}

/// v1.2.0 then v1.3.0 on main: v1.3.0 changed app.rs, added new.rs and removed old.rs.
async fn released() -> FakeGitHubGit {
    let fake = FakeGitHubGit::start().await;
    let good = fake.commit(
        "main",
        &[("app.rs", "a1"), ("lib.rs", "l1"), ("old.rs", "o1")],
        "v1.2.0",
    );
    fake.tag("v1.2.0", &good);
    let bad = fake.commit(
        "main",
        &[("app.rs", "a2"), ("lib.rs", "l1"), ("new.rs", "n1")],
        "v1.3.0",
    );
    fake.tag("v1.3.0", &bad);
    fake
}

#[tokio::test]
async fn a_clean_revert_opens_one_pull_request_that_sets_back_what_the_release_changed() {
    let fake = released().await;
    // main moved on after the release, in a file the release did not touch.
    fake.commit(
        "main",
        &[
            ("app.rs", "a2"),
            ("lib.rs", "l1"),
            ("new.rs", "n1"),
            ("docs.md", "d1"),
        ],
        "docs",
    );
    let main_before = fake.state().branches["main"].clone();
    let tmp = tempfile::tempdir().unwrap();
    let s = step(&fake, TOKEN, tmp.path());
    let link = s.revert("v1.3.0", "v1.2.0", &ctx()).await.unwrap();
    assert_eq!(link.name, "pull request #1");
    assert_eq!(link.url, "https://github.com/acme/shop/pull/1");
    assert_eq!(
        fake.writes(),
        vec![
            "POST git/trees",
            "POST git/commits",
            "POST git/refs",
            "POST pulls"
        ]
    );
    {
        let st = fake.state();
        let pr = &st.pulls[0];
        assert_eq!(
            (pr.head.as_str(), pr.base.as_str()),
            ("greenlight/revert-prod-run-7", "main")
        );
        assert!(pr.title.contains("Revert v1.3.0"), "{}", pr.title);
        assert_eq!(st.branches["main"], main_before, "main is never pushed to");
        let head = &st.commits[&st.branches["greenlight/revert-prod-run-7"]];
        assert_eq!(head.parents, vec![main_before.clone()]);
    }
    let files = fake.state().files_at("greenlight/revert-prod-run-7");
    let blobs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, (_, b))| (p.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        blobs,
        vec![
            ("app.rs", "a1"),
            ("docs.md", "d1"),
            ("lib.rs", "l1"),
            ("old.rs", "o1")
        ]
    );
    // Asked again for the same run (a restart after it answered): the journal's link, no call.
    let before = fake.state().requests.len();
    assert_eq!(s.revert("v1.3.0", "v1.2.0", &ctx()).await.unwrap(), link);
    assert_eq!(fake.state().requests.len(), before);
}

#[tokio::test]
async fn after_a_crash_it_finds_its_branch_or_its_pull_request_and_opens_no_second() {
    let fake = released().await;
    let tmp = tempfile::tempdir().unwrap();
    // The pull request's creation failed after the branch was made (as a crash there would).
    fake.fail_next("POST pulls", 502);
    let s = step(&fake, TOKEN, tmp.path());
    let e = s.revert("v1.3.0", "v1.2.0", &ctx()).await.unwrap_err();
    assert!(e.contains("502"), "{e}");
    assert_eq!(
        fake.writes()
            .iter()
            .filter(|w| *w == "POST git/refs")
            .count(),
        1
    );
    // Again with what the journal kept: the branch is reused, one pull request opened.
    let link = s.revert("v1.3.0", "v1.2.0", &ctx()).await.unwrap();
    assert_eq!(link.name, "pull request #1");
    let writes = fake.writes();
    assert_eq!(
        writes.iter().filter(|w| *w == "POST git/commits").count(),
        1
    );
    assert_eq!(writes.iter().filter(|w| *w == "POST git/refs").count(), 1);
    // A bot whose journal was lost with its disk: the open pull request is found, not doubled.
    let fresh = tempfile::tempdir().unwrap();
    let s2 = step(&fake, TOKEN, fresh.path());
    assert_eq!(s2.revert("v1.3.0", "v1.2.0", &ctx()).await.unwrap(), link);
    assert_eq!(fake.state().pulls.len(), 1);
}

#[tokio::test]
async fn a_file_changed_since_the_release_is_a_named_conflict_and_nothing_is_opened() {
    let fake = released().await;
    fake.commit(
        "main",
        &[("app.rs", "a3"), ("lib.rs", "l1"), ("new.rs", "n1")],
        "hotfix on top",
    );
    let tmp = tempfile::tempdir().unwrap();
    let e = step(&fake, TOKEN, tmp.path())
        .revert("v1.3.0", "v1.2.0", &ctx())
        .await
        .unwrap_err();
    assert_eq!(
        e,
        "1 file changed on main since v1.3.0 (app.rs): a conflict, revert by hand"
    );
    assert!(fake.writes().is_empty());
}

#[tokio::test]
async fn an_unknown_version_or_a_refused_token_opens_nothing_and_says_why() {
    let fake = released().await;
    let tmp = tempfile::tempdir().unwrap();
    let e = step(&fake, TOKEN, tmp.path())
        .revert("v9.9.9", "v1.2.0", &ctx())
        .await
        .unwrap_err();
    assert_eq!(
        e,
        "GitHub: v9.9.9 is not a tag, branch or commit of acme/shop"
    );
    let tmp2 = tempfile::tempdir().unwrap();
    let e = step(&fake, "ghp_wrong", tmp2.path())
        .revert("v1.3.0", "v1.2.0", &ctx())
        .await
        .unwrap_err();
    assert_eq!(e, "GitHub: refused the credential (401 Bad credentials)");
    assert!(!e.contains("ghp_wrong"));
    assert!(fake.writes().is_empty());
}
