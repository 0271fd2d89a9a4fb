//! The CI evidence fakes against greenlight's own clients and readers: pagination, refused
//! credentials in one line without the token, a 5xx and a rate limit retried, and the verdict
//! each forge's answers lead to (check runs AND statuses; no checks is not green).

use crate::fake_github_checks::{self as gh, FakeGithubChecks};
use crate::fake_gitlab_pipelines::{self as gl, FakeGitlabPipelines};
use greenlight::core::evidence::Verdict;
use greenlight::evidence::github::GithubCi;
use greenlight::evidence::gitlab::GitlabCi;
use greenlight::evidence::schema::ForgeSettings;
use greenlight::evidence::CiSource;
use greenlight::remote::rest::{ErrorKind, Retry};
use std::time::Duration;
use tokio::time::Instant;

/// One reading's deadline: a forge that is down is said to be so within it.
const DEADLINE: Duration = Duration::from_secs(2);
const SHA: &str = "5f3e1c2b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f";

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn gh_api(url: &str, token: &str) -> greenlight::remote::Api {
    let mut a =
        greenlight::remote::github::GitHub::api(url, token, reqwest::Client::new()).unwrap();
    a.retry = Retry {
        first: Duration::from_millis(20),
        max: Duration::from_millis(50),
        attempt_timeout: Duration::from_secs(5),
    };
    a
}

fn settings(url: &str, token: &str, repo: &str) -> ForgeSettings {
    ForgeSettings {
        api_url: url.into(),
        token: token.into(),
        repo: repo.into(),
    }
}

fn req(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn github_check_runs_and_statuses_follow_their_pages() {
    let f = FakeGithubChecks::start().await;
    f.tag("v1.2.0", SHA);
    for i in 0..5 {
        f.run(SHA, &format!("job-{i}"), "completed", Some("success"));
    }
    f.status(SHA, "ci/jenkins", "success");
    f.status(SHA, "ci/lint", "success");
    f.status(SHA, "ci/docs", "success");
    f.inner.lock().unwrap().page_size = Some(2);
    let api = gh_api(&f.url, gh::TOKEN);
    let sha = greenlight::remote::github::commit::resolve(&api, gh::REPO, "v1.2.0", soon())
        .await
        .unwrap();
    assert_eq!(sha.as_deref(), Some(SHA));
    let none = greenlight::remote::github::commit::resolve(&api, gh::REPO, "v9.9.9", soon())
        .await
        .unwrap();
    assert_eq!(none, None, "422 No commit found is no such version");
    let runs = greenlight::remote::github::checks::check_runs(&api, gh::REPO, SHA, soon())
        .await
        .unwrap();
    assert_eq!(runs.len(), 5);
    let st = greenlight::remote::github::checks::statuses(&api, gh::REPO, SHA, soon())
        .await
        .unwrap();
    assert_eq!(st.len(), 3);
    let seen = f.seen();
    assert_eq!(seen.iter().filter(|p| p.contains("/check-runs")).count(), 3);
    assert!(seen.iter().any(|p| p.contains("filter=latest")), "{seen:?}");
}

#[tokio::test]
async fn github_refusals_retries_and_rate_limits() {
    let f = FakeGithubChecks::start().await;
    f.tag("v1.2.0", SHA);
    // A wrong token: refused at once, in one line, the token masked.
    let bad = gh_api(&f.url, "ghp_wrong_token");
    let e = greenlight::remote::github::commit::resolve(&bad, gh::REPO, "v1.2.0", soon())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused);
    assert!(e.detail.contains("Bad credentials"), "{}", e.detail);
    assert!(!e.detail.contains("ghp_wrong_token") && !e.detail.contains('\n'));

    let api = gh_api(&f.url, gh::TOKEN);
    f.fail_next("check-runs", gh::Fault::Status(502));
    f.fail_next("status", gh::Fault::RateLimited);
    let runs = greenlight::remote::github::checks::check_runs(&api, gh::REPO, SHA, soon())
        .await
        .unwrap();
    assert!(runs.is_empty());
    let st = greenlight::remote::github::checks::statuses(&api, gh::REPO, SHA, soon())
        .await
        .unwrap();
    assert!(st.is_empty());
    let seen = f.seen();
    assert_eq!(seen.iter().filter(|p| p.contains("/check-runs")).count(), 2);
    assert_eq!(seen.iter().filter(|p| p.contains("/status")).count(), 2);
}

#[tokio::test]
async fn github_verdicts_read_both_check_runs_and_statuses() {
    let f = FakeGithubChecks::start().await;
    let ci = GithubCi::new(
        &settings(&f.url, gh::TOKEN, gh::REPO),
        reqwest::Client::new(),
    )
    .unwrap();
    f.tag("v1.2.0", SHA);
    // Nothing at all (the combined status says "pending" with zero statuses): not green.
    let v = ci.read("v1.2.0", &[], DEADLINE).await;
    assert!(
        matches!(v, Verdict::Missing { ref why } if why.contains("no checks")),
        "{v:?}"
    );
    // Actions green, an old CI's status failing: red, naming it.
    f.run(SHA, "build", "completed", Some("success"));
    f.run(SHA, "test", "in_progress", None);
    f.status(SHA, "ci/jenkins", "failure");
    let v = ci.read("v1.2.0", &req(&["build"]), DEADLINE).await;
    assert_eq!(
        v,
        Verdict::Red {
            failing: vec![("ci/jenkins".into(), "failure".into())],
            sha: SHA.into()
        }
    );
    f.status(SHA, "ci/jenkins", "success");
    let v = ci.read("v1.2.0", &req(&["build"]), DEADLINE).await;
    assert!(
        matches!(v, Verdict::Pending { ref waiting, .. } if waiting == &req(&["test"])),
        "{v:?}"
    );
    f.run(SHA, "test", "completed", Some("success"));
    f.run(SHA, "docs", "completed", Some("skipped"));
    let v = ci.read("v1.2.0", &req(&["build", "test"]), DEADLINE).await;
    assert_eq!(
        v,
        Verdict::Green {
            checks: req(&["build", "test", "docs (skipped)", "ci/jenkins"]),
            sha: SHA.into()
        }
    );
    let v = ci.read("v7.7.7", &[], DEADLINE).await;
    assert!(
        matches!(v, Verdict::Missing { ref why } if why.contains("v7.7.7 not found in acme/shop")),
        "{v:?}"
    );
    f.set_down(true);
    let v = ci.read("v1.2.0", &[], DEADLINE).await;
    assert!(
        matches!(v, Verdict::Unavailable { ref why } if why.starts_with("GitHub: 503")),
        "{v:?}"
    );
}

#[tokio::test]
async fn gitlab_pipelines_and_jobs_lead_to_verdicts() {
    let f = FakeGitlabPipelines::start().await;
    let ci = GitlabCi::new(
        &settings(&f.url, gl::TOKEN, gl::PROJECT),
        reqwest::Client::new(),
    )
    .unwrap();
    f.tag("v1.2.0", SHA);
    let v = ci.read("v1.2.0", &[], DEADLINE).await;
    assert!(
        matches!(v, Verdict::Missing { ref why } if why.contains("no pipeline ran")),
        "{v:?}"
    );
    // An older pipeline failed; the newest one is what counts.
    f.pipeline(SHA, 7, "failed", &[("build", "failed", false)]);
    f.pipeline(
        SHA,
        9,
        "running",
        &[
            ("build", "success", false),
            ("test", "running", false),
            ("flaky", "failed", true),
        ],
    );
    let v = ci.read("v1.2.0", &req(&["test"]), DEADLINE).await;
    assert!(
        matches!(v, Verdict::Pending { ref waiting, .. } if waiting == &req(&["test"])),
        "{v:?}"
    );
    f.inner.lock().unwrap().page_size = Some(2);
    f.pipeline(
        SHA,
        9,
        "success",
        &[
            ("build", "success", false),
            ("test", "success", false),
            ("flaky", "failed", true),
        ],
    );
    let v = ci.read("v1.2.0", &req(&["test"]), DEADLINE).await;
    assert_eq!(
        v,
        Verdict::Green {
            checks: req(&["build", "test", "flaky (failed, allowed to fail)"]),
            sha: SHA.into()
        }
    );
    assert!(
        f.seen().iter().any(|p| p.contains("jobs?page=2")),
        "{:?}",
        f.seen()
    );
    // A required job that failed even though allowed to: red.
    let v = ci.read("v1.2.0", &req(&["flaky"]), DEADLINE).await;
    assert!(matches!(v, Verdict::Red { .. }), "{v:?}");

    f.fail_next("pipelines", gl::Fault::Unauthorized);
    let v = ci.read("v1.2.0", &[], DEADLINE).await;
    assert!(
        matches!(v, Verdict::Unavailable { ref why } if why.contains("401") && !why.contains(gl::TOKEN)),
        "{v:?}"
    );
    let bad = GitlabCi::new(
        &settings(&f.url, "nope", gl::PROJECT),
        reqwest::Client::new(),
    )
    .unwrap();
    let v = bad.read("v1.2.0", &[], DEADLINE).await;
    assert!(
        matches!(v, Verdict::Unavailable { ref why } if why.contains("refused the credential")),
        "{v:?}"
    );
    f.fail_next("jobs", gl::Fault::RateLimited);
    let v = ci.read("v1.2.0", &req(&["test"]), DEADLINE).await;
    assert!(v.is_green(), "a rate limit is waited out: {v:?}");
}
