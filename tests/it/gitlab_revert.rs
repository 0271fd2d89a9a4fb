//! The GitLab revert step against the fake repository: one merge request whose commit sets
//! back what the release changed (trees read page by page, contents sent base64-encoded),
//! found again after a crash; a conflict, an unknown version or a refused token opens nothing.

use crate::fake_gitlab_repo::{FakeGitLabRepo, TOKEN};
use greenlight::core::{EnvName, RunId};
use greenlight::deploy::revert::GitLabRevert;
use greenlight::deploy::{RevertStep, StepCtx};
use greenlight::remote::gitlab::{Gitlab, Settings};
use greenlight::store::Journal;
use std::time::Duration;

fn step(fake: &FakeGitLabRepo, token: &str, dir: &std::path::Path) -> GitLabRevert {
    let s = Settings {
        api_url: fake.url.clone(),
        project: "acme/shop".into(),
        token: Some(token.into()),
        trigger_token: None,
    };
    GitLabRevert {
        gitlab: Gitlab::new(&s, reqwest::Client::new()).unwrap(),
        journal: Journal::scratch(dir).unwrap(),
        timeout: Duration::from_secs(10),
    }
}

fn ctx() -> StepCtx {
    StepCtx::detached(RunId(4), EnvName::new("prod"))
}

/// v1.2.0, then v1.3.0 (changed app.rs, added new.rs, removed old.rs), then docs on main.
async fn released() -> FakeGitLabRepo {
    let fake = FakeGitLabRepo::start().await;
    let c = fake.commit(
        "main",
        &[("app.rs", "app v1"), ("lib.rs", "lib"), ("old.rs", "old")],
    );
    fake.tag("v1.2.0", &c);
    let c = fake.commit(
        "main",
        &[("app.rs", "app v2"), ("lib.rs", "lib"), ("new.rs", "new")],
    );
    fake.tag("v1.3.0", &c);
    fake.commit(
        "main",
        &[
            ("app.rs", "app v2"),
            ("lib.rs", "lib"),
            ("new.rs", "new"),
            ("docs.md", "d"),
        ],
    );
    fake
}

#[tokio::test]
async fn a_clean_revert_opens_one_merge_request_that_sets_back_what_the_release_changed() {
    let fake = released().await;
    let main_before = fake.state().branches["main"].clone();
    let tmp = tempfile::tempdir().unwrap();
    let s = step(&fake, TOKEN, tmp.path());
    let link = s.revert("v1.3.0", "v1.2.0", &ctx()).await.unwrap();
    assert_eq!(link.name, "merge request !1");
    assert_eq!(
        link.url,
        "https://gitlab.example/acme/shop/-/merge_requests/1"
    );
    assert_eq!(
        fake.writes(),
        vec!["POST repository/commits", "POST merge_requests"]
    );
    let files = fake.state().contents_at("greenlight/revert-prod-run-4");
    let got: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("app.rs", "app v1"),
            ("docs.md", "d"),
            ("lib.rs", "lib"),
            ("old.rs", "old")
        ]
    );
    {
        let st = fake.state();
        assert_eq!(st.branches["main"], main_before, "main is never pushed to");
        let mr = &st.mrs[0];
        assert_eq!(
            (mr.source.as_str(), mr.target.as_str()),
            ("greenlight/revert-prod-run-4", "main")
        );
        assert!(mr.title.contains("Revert v1.3.0"), "{}", mr.title);
        // The trees were read page by page.
        assert!(st
            .requests
            .iter()
            .any(|(_, p)| p.contains("repository/tree") && p.contains("page=2")));
    }
    let before = fake.state().requests.len();
    assert_eq!(s.revert("v1.3.0", "v1.2.0", &ctx()).await.unwrap(), link);
    assert_eq!(fake.state().requests.len(), before, "the journal answers");
}

#[tokio::test]
async fn after_a_crash_it_finds_its_branch_or_its_merge_request_and_opens_no_second() {
    let fake = released().await;
    let tmp = tempfile::tempdir().unwrap();
    let s = step(&fake, TOKEN, tmp.path());
    s.revert("v1.3.0", "v1.2.0", &ctx()).await.unwrap();
    // A bot whose journal was lost: the merge request is found.
    let fresh = tempfile::tempdir().unwrap();
    let link = step(&fake, TOKEN, fresh.path())
        .revert("v1.3.0", "v1.2.0", &ctx())
        .await
        .unwrap();
    assert_eq!(link.name, "merge request !1");
    // Killed after the branch, before the merge request: the branch is reused.
    fake.state().mrs.clear();
    let fresh = tempfile::tempdir().unwrap();
    let link = step(&fake, TOKEN, fresh.path())
        .revert("v1.3.0", "v1.2.0", &ctx())
        .await
        .unwrap();
    assert_eq!(link.name, "merge request !1");
    let writes = fake.writes();
    assert_eq!(
        writes
            .iter()
            .filter(|w| *w == "POST repository/commits")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_conflict_an_unknown_version_or_a_refused_token_opens_nothing() {
    let fake = released().await;
    fake.commit(
        "main",
        &[("app.rs", "app v3"), ("lib.rs", "lib"), ("new.rs", "new")],
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
    let tmp = tempfile::tempdir().unwrap();
    let e = step(&fake, TOKEN, tmp.path())
        .revert("v9.9.9", "v1.2.0", &ctx())
        .await
        .unwrap_err();
    assert_eq!(
        e,
        "GitLab: v9.9.9 is not a tag, branch or commit of the project"
    );
    let tmp = tempfile::tempdir().unwrap();
    let e = step(&fake, "glpat-wrong", tmp.path())
        .revert("v1.3.0", "v1.2.0", &ctx())
        .await
        .unwrap_err();
    assert_eq!(e, "GitLab: refused the credential (401 401 Unauthorized)");
    assert!(fake.writes().is_empty());
}
