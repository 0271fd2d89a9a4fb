//! Freeze windows at the request and at the later gates; break-glass.

use super::*;

#[test]
fn freeze_at_request_time() {
    // (when, who, with --force, accepted, reply fragments)
    type Row = (DateTime<Utc>, &'static str, bool, bool, Vec<&'static str>);
    let rows: Vec<Row> = vec![
        (
            fri(17, 30),
            "alice",
            false,
            false,
            vec![
                "No Friday deploys",
                "until Mon 2026-11-30 00:00 UTC",
                "members of break-glass may pass it with --force",
            ],
        ),
        (
            fri(17, 30),
            "bob",
            true,
            false,
            vec![
                "No Friday deploys",
                "--force was refused: bob is not in the break-glass group",
            ],
        ),
        (
            fri(17, 30),
            "alice",
            true,
            true,
            vec!["Run 1: v1.2.0 → Production"],
        ),
        (
            fri(16, 59),
            "alice",
            false,
            true,
            vec!["Run 1: v1.2.0 → Production"],
        ),
        (fri(17, 0), "bob", false, false, vec!["No Friday deploys"]),
        (
            t(29, 23, 59, 59),
            "bob",
            false,
            false,
            vec!["No Friday deploys"],
        ),
        (t(30, 0, 0, 0), "bob", false, true, vec!["Run 1"]),
    ];
    for (now, who, force, accepted, fragments) in rows {
        let mut h = H::demo();
        let text = if force {
            "/deploy v1.2.0 prod --force \"hotfix INC-9\""
        } else {
            "/deploy v1.2.0 prod"
        };
        let ch = h.cmd(who, text, now);
        let ctx = format!("{who} `{text}` at {now}");
        let (got, private) = reply(&ch);
        assert_eq!(!private, accepted, "{ctx}: {got}");
        for f in fragments {
            assert!(got.contains(f), "{ctx}: missing {f:?} in {got}");
        }
        if !accepted {
            assert!(
                got.starts_with("Refused: ") && !got.contains("Usage:"),
                "{ctx}"
            );
            assert!(ch.posts.is_empty() && ch.runs.is_empty(), "{ctx}");
            assert_eq!(h.next_run, 1, "{ctx}");
            continue;
        }
        let run = run_of(&ch, RunId(1));
        let forced = force && now == fri(17, 30);
        assert_eq!(run.force.is_some(), forced, "{ctx}");
        let announce = in_room(&ch, Room::Announce);
        if forced {
            let text = "⚠️ Break-glass: <@alice> forced run 1 (v1.2.0 → Production) past freeze \"No Friday deploys\" (Fri 2026-11-27 17:00 until Mon 2026-11-30 00:00 UTC). Reason: hotfix INC-9";
            assert_eq!(announce.len(), 1, "{ctx}");
            assert_eq!(announce[0].text, text, "{ctx}");
            assert!(
                lifecycle(&ch).contains(&text),
                "{ctx}: also in the deploys room"
            );
            assert!(ch.posts[2].text.contains("(break-glass --force)"), "{ctx}");
            assert!(ch
                .events
                .iter()
                .any(|e| matches!(e.what, What::ForcedPastFreeze { .. })));
        } else {
            assert!(announce.is_empty(), "{ctx}");
        }
    }
}

#[test]
fn freeze_rechecked_at_checklist_completion_and_before_the_switch() {
    // A freeze that opens while the checklist is open stops the run when it completes.
    let mut h = H::demo();
    let id = h.request("alice", "v1.2.0", "prod", fri(16, 50));
    for i in 0..4 {
        h.approve("bob", id, i, fri(16, 55));
    }
    let ch = h.approve("carol", id, 4, fri(17, 5));
    assert_eq!(run_of(&ch, id).phase, Phase::Rejected);
    assert!(ch.actions.is_empty());
    assert!(lifecycle(&ch).is_empty(), "no 🚀: nothing was deployed");
    assert_eq!(env_of(&ch, &prod()).active_run, None);
    let msgs = thread_msgs(&ch, id);
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        msgs[0],
        "🧊 Run 1 stopped: Production is frozen by \"No Friday deploys\" (Fri 2026-11-27 17:00 until Mon 2026-11-30 00:00 UTC). Nothing was deployed. <@alice>"
    );

    // A freeze that opens between verification and the switch fails the run before it:
    // on a first deploy (no baseline) and on a later one (after the baseline).
    for second in [false, true] {
        let mut h = H::demo();
        if second {
            h.deploy_stable("alice", "bob", "v1.1.0", "prod", thu(10, 0));
        }
        let id = h.request("alice", "v1.2.0", "prod", fri(16, 40));
        let ch = h.approve_all(id, "bob", fri(16, 45));
        let ch = h.drive(id, ch, fri(16, 50), Phase::VerifyingIdle);
        let verify_at = if second { fri(16, 55) } else { fri(17, 1) };
        let (_, attempt, o) = answer_ok(&ch.actions[0]);
        let mut ch = h.result(id, attempt, o, verify_at);
        if second {
            assert!(matches!(ch.actions.as_slice(), [Action::Baseline { .. }]));
            ch = h.result(id, attempt, Outcome::Baseline(healthy()), fri(17, 1));
        }
        let to = if second { Colour::Green } else { Colour::Blue };
        let run = run_of(&ch, id);
        assert_eq!(run.phase, Phase::Failed, "second={second}");
        assert_eq!(run.switch_intents, 0);
        assert_eq!(
            ch.actions,
            vec![Action::Teardown {
                env: prod(),
                colour: to
            }],
            "no Switch, only the idle colour torn down"
        );
        let live = if second {
            "blue stays live."
        } else {
            "nothing was live before this deploy."
        };
        assert_eq!(
            lifecycle(&ch),
            vec![format!("❌ Deployment failed. Reason: freeze \"No Friday deploys\" (Fri 2026-11-27 17:00 until Mon 2026-11-30 00:00 UTC) opened before the traffic switch. Live traffic was never switched: {live}")]
        );
        let env = env_of(&ch, &prod());
        assert_eq!(env.live, if second { Some(Colour::Blue) } else { None });
        assert_eq!(env.active_run, None);
        assert_eq!(env.lock, None, "a stopped deploy locks nothing");
    }

    // A forced run passes the re-checks, and is switched and monitored inside the freeze.
    let mut h = H::demo();
    h.cmd(
        "alice",
        "/deploy v1.2.0 prod --force \"hotfix INC-9\"",
        fri(17, 30),
    );
    let id = RunId(1);
    let ch = h.approve_all(id, "bob", fri(17, 40));
    let ch = h.see(&ch, fri(17, 40));
    assert_eq!(lifecycle(&ch), vec!["🚀 Deploying v1.2.0 to Production..."]);
    let ch = h.drive(id, ch, fri(18, 0), Phase::Monitoring);
    assert_eq!(
        lifecycle(&ch),
        vec!["✅ Deployment successful. Monitoring."]
    );
    assert_eq!(h.run(id).switch_intents, 1);
    h.monitor(id, ch, passes(6));
    assert_eq!(h.run(id).phase, Phase::Succeeded);
}
