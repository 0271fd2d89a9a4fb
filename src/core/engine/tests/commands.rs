//! Commands: lock and unlock, one run at a time, malformed input, help, why-not and dry runs.

use super::*;

#[test]
fn lock_and_unlock() {
    let mut h = H::demo();
    // (who, command, what is said, refused, locked afterwards)
    let rows: Vec<(&str, &str, String, bool, bool)> = vec![
        (
            "carol",
            "/deploy lock staging db maintenance",
            "carol may not lock Staging: that needs the deployers group".into(),
            true,
            false,
        ),
        (
            "bob",
            "/deploy unlock staging",
            "Staging is not locked".into(),
            true,
            false,
        ),
        (
            "bob",
            "/deploy lock staging db maintenance",
            "🔒 Staging locked by <@bob>: db maintenance".into(),
            false,
            true,
        ),
        (
            "alice",
            "/deploy v1.2.0 staging",
            "Refused: Staging is locked by bob since 2026-11-25 10:02 UTC: db maintenance (/deploy unlock staging to lift it)".into(),
            true,
            true,
        ),
        (
            "alice",
            "/deploy v1.2.0 staging --force \"hotfix\"",
            "Refused: Staging is locked by bob".into(),
            true,
            true,
        ),
        (
            "alice",
            "/deploy lock staging again",
            "Staging is already locked by bob: db maintenance".into(),
            true,
            true,
        ),
        (
            "carol",
            "/deploy unlock staging",
            "carol may not unlock Staging".into(),
            true,
            true,
        ),
        (
            "alice",
            "/deploy unlock staging",
            "🔓 Staging unlocked by <@alice> (was locked by bob: db maintenance)".into(),
            false,
            false,
        ),
        (
            "alice",
            "/deploy v1.2.0 staging",
            "Run 1: v1.2.0 → Staging requested by alice".into(),
            false,
            false,
        ),
    ];
    for (n, (who, text, fragment, private, locked)) in rows.into_iter().enumerate() {
        let now = wed(10, n as u32);
        let before = h.next_run;
        let ch = h.cmd(who, text, now);
        let (got, got_private) = reply(&ch);
        let ctx = format!("row {n}: {who} {text}");
        let announced = !private && text.contains("lock");
        assert!(got.contains(&fragment) || announced, "{ctx}: {got}");
        assert_eq!(got_private, private || announced, "{ctx}");
        assert_eq!(h.env(&staging()).lock.is_some(), locked, "{ctx}");
        if private && !text.contains("lock") || ch.envs.is_empty() {
            assert!(
                !got.contains("Usage:"),
                "{ctx}: a refusal is not a usage error"
            );
        }
        if ch.envs.is_empty() && ch.runs.is_empty() {
            assert!(ch.posts.is_empty(), "{ctx}: refusals change nothing");
            assert_eq!(h.next_run, before, "{ctx}");
        } else if text.contains("lock") {
            // Lock and unlock are announced once in the channel; the person gets a short
            // private confirmation, not a second copy.
            assert_eq!(lifecycle(&ch).len(), 1, "{ctx}");
            assert!(lifecycle(&ch)[0].contains(&fragment), "{ctx}");
            assert!(
                got_private && got.contains("announced in the deploys channel"),
                "{ctx}: {got}"
            );
        }
    }
}

#[test]
fn one_active_run_per_environment() {
    let mut h = H::demo();
    h.request("alice", "v1.2.0", "staging", wed(10, 0));
    let ch = h.cmd("bob", "/deploy v1.3.0 staging", wed(10, 1));
    let (text, private) = reply(&ch);
    assert!(private);
    assert!(
        text.contains("run 1 is already active on Staging (awaiting checklist); one run at a time per environment"),
        "{text}"
    );
    assert!(
        !text.contains("Usage:"),
        "a well-formed command refused: no usage line"
    );
    assert!(ch.posts.is_empty() && ch.runs.is_empty());
    assert_eq!(h.next_run, 2);
    // Another environment is independent.
    let id = h.request("bob", "v1.3.0", "prod", wed(10, 2));
    assert_eq!(id, RunId(2), "run numbers are global");
}

#[test]
fn malformed_input_is_refused_privately_with_the_usage_and_creates_nothing() {
    // Rejected by the parser.
    for (text, fragment) in [
        ("/deploy latest staging", "latest"),
        ("/deploy v1.2.0", "missing environment"),
        ("/deploy v1.2.0 staging --force", "--force needs a value"),
        ("/deploy cancel abc", "is not a run number"),
        ("/deploy v1.2.0 stag/ing", "invalid environment name"),
    ] {
        let e = command::parse(text).unwrap().unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains(fragment) && s.contains("Usage: /"),
            "{text}: {s}"
        );
    }
    // Rejected by the engine.
    let rows = [
        (
            "/deploy v1.2.0 nowhere",
            "unknown environment \"nowhere\" (known: prod, staging). Usage: /deploy <version> <env>",
        ),
        ("/deploy status nowhere", "unknown environment \"nowhere\""),
        ("/deploy lock nowhere reason", "unknown environment \"nowhere\""),
        ("/deploy why-not v1.2.0 nowhere", "unknown environment \"nowhere\""),
        ("/rollback nowhere", "unknown environment \"nowhere\" (known: prod, staging). Usage: /rollback"),
        ("/deploy cancel 99", "run 99 is not active"),
        (
            "/deploy v1.2.0 staging --service api",
            "Staging has no services configured, so --service api is not valid",
        ),
        ("/rollback staging", "nothing to roll back to: Staging has no earlier version"),
    ];
    let mut h = H::demo();
    for (n, (text, fragment)) in rows.into_iter().enumerate() {
        let ch = h.cmd("alice", text, wed(10, n as u32));
        let (got, private) = reply(&ch);
        assert!(private, "{text}");
        assert!(got.contains(fragment), "{text}: {got}");
        // Malformed input carries the usage; a well-formed command that is refused does not.
        let malformed = fragment.contains("unknown environment");
        assert_eq!(got.contains("Usage: /"), malformed, "{text}: {got}");
        assert!(
            ch.posts.is_empty() && ch.runs.is_empty() && ch.envs.is_empty(),
            "{text}"
        );
        assert!(
            ch.actions.is_empty() && ch.timers.is_empty() && ch.next_run.is_none(),
            "{text}"
        );
    }
    assert_eq!(h.e.next_run(), 1);
    assert!(h.runs.is_empty());
}

#[test]
fn help_is_private_and_complete() {
    let mut h = H::demo();
    let ch = h.cmd("carol", "/deploy help", wed(10, 0));
    assert_eq!(reply(&ch), (command::help_text().as_str(), true));
}

#[test]
fn why_not_and_dry_run_list_every_blocker_and_create_nothing() {
    let mut h = H::demo();
    let active = h.request("alice", "v1.2.0", "prod", thu(10, 0));
    h.cmd("bob", "/deploy lock prod incident INC-7", thu(10, 5));
    let now = fri(17, 30);
    for text in [
        "/deploy why-not v1.3.0 prod",
        "/deploy v1.3.0 prod --dry-run",
    ] {
        let before = (h.next_run, h.runs.clone(), h.envs.clone());
        let ch = h.cmd("bob", text, now);
        let (got, private) = reply(&ch);
        assert!(!private, "{text}");
        assert!(
            got.starts_with("v1.3.0 → Production would be refused now, because:"),
            "{got}"
        );
        for blocker in [
            "\n• Production is locked by bob since 2026-11-26 10:05 UTC: incident INC-7",
            &format!("\n• run {active} is already active on Production (awaiting checklist)"),
            "\n• Production is frozen: \"No Friday deploys\" (Fri 2026-11-27 17:00 until Mon 2026-11-30 00:00 UTC)",
        ] {
            assert!(got.contains(blocker), "{text}: missing {blocker:?} in {got}");
        }
        assert!(got.contains("the checklist (5 items) needs approval by reviewers"));
        assert_eq!(
            text.contains("--dry-run"),
            got.contains("Dry run: no run created"),
            "{got}"
        );
        assert!(ch.posts.is_empty() && ch.runs.is_empty() && ch.envs.is_empty());
        assert!(ch.actions.is_empty() && ch.timers.is_empty() && ch.next_run.is_none());
        assert_eq!(before, (h.next_run, h.runs.clone(), h.envs.clone()));
    }
    // A clear path says so, and a dry run lists the steps.
    let ch = h.cmd("alice", "/deploy v1.2.0 staging --dry-run", wed(10, 0));
    let (got, _) = reply(&ch);
    assert!(
        got.starts_with("Nothing stops v1.2.0 → Staging now."),
        "{got}"
    );
    for step in [
        "1. open the checklist thread (2 items, expires after 4h)",
        "ask the traffic step which colour is live, then deploy v1.2.0 to the idle one (blue today; nothing is live)",
        "smoke tests: login/auth works, main dashboard loads, checkout works",
        "first deploy: latency trigger skipped",
        "monitor for 20s every 4s",
    ] {
        assert!(got.contains(step), "missing {step:?} in {got}");
    }
    assert!(ch.runs.is_empty() && ch.next_run.is_none());
    // Someone who may not deploy is told so.
    let ch = h.cmd("carol", "/deploy why-not v1.2.0 staging", wed(10, 0));
    assert!(reply(&ch).0.contains("carol may not deploy to Staging"));
}
