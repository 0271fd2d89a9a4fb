//! One rule for every CI: the checks reported on a commit, and the names required, to a
//! verdict. Pure, so each case is a unit test.
//!
//! - No check at all is never green (an Actions-only repo's combined status is `pending` with
//!   zero statuses; a commit CI never saw has nothing): `Missing`, read again later.
//! - Any failing check makes it `Red`, even while others still run (it cannot turn green).
//! - A check still running, or a required name not reported yet while others run: `Pending`.
//! - A required name absent once everything reported: `Missing`.
//! - `neutral` and `skipped` (and GitLab's allowed failures) pass when not required; a
//!   required check must succeed, so a skipped required check is `Red`.

use crate::core::evidence::Verdict;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Passed,
    /// Not a failure, not a success (neutral, skipped, allowed to fail): why.
    Neutral(String),
    /// Failed, with its conclusion.
    Failed(String),
    /// Not finished: its status.
    Running(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub state: State,
}

impl Check {
    pub fn new(name: impl Into<String>, state: State) -> Check {
        Check {
            name: name.into(),
            state,
        }
    }
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

pub fn judge(checks: &[Check], required: &[String], sha: &str) -> Verdict {
    let sha = sha.to_string();
    if checks.is_empty() {
        return Verdict::Missing {
            why: format!("no checks or statuses report on commit {}", short(&sha)),
        };
    }
    let is_required = |n: &str| required.iter().any(|r| r == n);
    let mut failing: Vec<(String, String)> = Vec::new();
    for c in checks {
        match &c.state {
            State::Failed(why) => failing.push((c.name.clone(), why.clone())),
            State::Neutral(why) if is_required(&c.name) => {
                failing.push((c.name.clone(), format!("{why} (required)")))
            }
            _ => {}
        }
    }
    if !failing.is_empty() {
        return Verdict::Red { failing, sha };
    }
    let absent: Vec<String> = required
        .iter()
        .filter(|r| !checks.iter().any(|c| &c.name == *r))
        .cloned()
        .collect();
    let running: Vec<String> = checks
        .iter()
        .filter(|c| matches!(c.state, State::Running(_)))
        .map(|c| c.name.clone())
        .collect();
    if !running.is_empty() {
        let waiting = running.into_iter().chain(absent).collect();
        return Verdict::Pending { waiting, sha };
    }
    if !absent.is_empty() {
        let reported: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        return Verdict::Missing {
            why: format!(
                "required {} not reported on commit {} (reported: {})",
                absent.join(", "),
                short(&sha),
                reported.join(", ")
            ),
        };
    }
    let checks = checks
        .iter()
        .map(|c| match &c.state {
            State::Neutral(why) => format!("{} ({why})", c.name),
            _ => c.name.clone(),
        })
        .collect();
    Verdict::Green { checks, sha }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "abc1234def";

    fn c(name: &str, state: State) -> Check {
        Check::new(name, state)
    }
    fn req(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_case_of_the_rule() {
        use State::*;
        let green = |names: &[&str]| Verdict::Green {
            checks: req(names),
            sha: SHA.into(),
        };
        let cases: Vec<(&str, Vec<Check>, Vec<String>, Verdict)> = vec![
            (
                "nothing at all is not green",
                vec![],
                req(&[]),
                Verdict::Missing {
                    why: "no checks or statuses report on commit abc1234".into(),
                },
            ),
            (
                "all passed",
                vec![c("build", Passed), c("test", Passed)],
                req(&["build"]),
                green(&["build", "test"]),
            ),
            (
                "a skipped check that is not required passes",
                vec![
                    c("build", Passed),
                    c("deploy-docs", Neutral("skipped".into())),
                ],
                req(&["build"]),
                green(&["build", "deploy-docs (skipped)"]),
            ),
            (
                "a skipped required check is red",
                vec![c("build", Passed), c("test", Neutral("skipped".into()))],
                req(&["test"]),
                Verdict::Red {
                    failing: vec![("test".into(), "skipped (required)".into())],
                    sha: SHA.into(),
                },
            ),
            (
                "a failure is red even while others run",
                vec![
                    c("build", Failed("failure".into())),
                    c("test", Running("queued".into())),
                ],
                req(&[]),
                Verdict::Red {
                    failing: vec![("build".into(), "failure".into())],
                    sha: SHA.into(),
                },
            ),
            (
                "running, and a required name not reported yet, are waited for",
                vec![c("build", Passed), c("lint", Running("in_progress".into()))],
                req(&["test"]),
                Verdict::Pending {
                    waiting: req(&["lint", "test"]),
                    sha: SHA.into(),
                },
            ),
            (
                "a required name absent when all reported",
                vec![c("build", Passed)],
                req(&["test"]),
                Verdict::Missing {
                    why: "required test not reported on commit abc1234 (reported: build)".into(),
                },
            ),
        ];
        for (what, checks, required, want) in cases {
            assert_eq!(judge(&checks, &required, SHA), want, "{what}");
        }
    }
}
