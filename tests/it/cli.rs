//! The command line: check-config points at the line; history with the bot stopped.

use crate::harness::*;

#[test]
fn check_config_accepts_the_default_and_points_at_bad_lines() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (code, out) = cli(&["check-config", "config/greenlight.toml"], root);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok (2 environments, 3 users, 1 freeze windows)"),
        "{out}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            test_config("").replace("cron = \"0 17 * * 5\"", "cron = \"0 17 * * Friday-ish\""),
            "freeze \"No Friday deploys\"",
        ),
        (
            test_config("").replace("duration = \"4s\"", "duration = \"4 parsecs\""),
            "not a duration",
        ),
        (
            test_config("").replace("timezone = \"UTC\"", "timezone = \"Mars/Olympus\""),
            "unknown timezone",
        ),
        (
            test_config("[environments.qa]\ndisplay_name = \"QA\"\n"),
            "has no [environments.qa.deploy]",
        ),
        (
            test_config("").replace("[environments.prod]\n", "[environments.prod]\nbogus = 1\n"),
            "unknown field `bogus`",
        ),
        (
            test_config("").replace(
                "group = \"reviewers\"\n[[environments.staging.checklist]]",
                "group = \"qa-team\"\n[[environments.staging.checklist]]",
            ),
            "group \"qa-team\" has nobody in it",
        ),
    ];
    for (i, (text, msg)) in cases.iter().enumerate() {
        let f = tmp.path().join(format!("bad{i}.toml"));
        std::fs::write(&f, text).unwrap();
        let (code, out) = cli(&["check-config", f.to_str().unwrap()], tmp.path());
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(msg), "{msg}: {out}");
        // file:line: message, on one line, and the line really holds the problem's key.
        let first = out.lines().next().unwrap();
        let line: usize = first
            .split(':')
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("line number in {first}"));
        assert!(line > 0 && line <= text.lines().count(), "{first}");
    }
    // The cron error names the line of `cron =`.
    let f = tmp.path().join("bad0.toml");
    let (_, out) = cli(&["check-config", f.to_str().unwrap()], tmp.path());
    let line: usize = out.split(':').nth(1).unwrap().trim().parse().unwrap();
    assert!(
        cases[0]
            .0
            .lines()
            .nth(line - 1)
            .unwrap()
            .starts_with("cron ="),
        "{out}"
    );

    // An inactive platform section is a warning, not a failure.
    let f = tmp.path().join("slack.toml");
    std::fs::write(&f, test_config("[slack]\nmode = \"socket\"\n")).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check-config", f.to_str().unwrap()])
        .env_remove("SLACK_BOT_TOKEN")
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}");
    assert!(
        s.contains("warning: [slack] is configured but SLACK_BOT_TOKEN is not set"),
        "{s}"
    );
}

#[test]
fn history_of_an_unknown_environment_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("g.toml");
    std::fs::write(&f, test_config("")).unwrap();
    let (code, out) = cli(
        &[
            "history",
            "nowhere",
            "--config",
            f.to_str().unwrap(),
            "--data",
            tmp.path().join("d").to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert_eq!(code, 1);
    assert!(out.contains("unknown environment \"nowhere\""), "{out}");
    let (code, out) = cli(
        &[
            "history",
            "staging",
            "--config",
            f.to_str().unwrap(),
            "--data",
            tmp.path().join("d").to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("No runs on staging yet."), "{out}");
}
