//! Failures before and at the switch, a live colour that cannot be seen, cancel, expiry, stale results.

use super::*;

#[test]
fn failures_before_the_switch_leave_the_live_colour_untouched() {
    // (the phase where it fails, the failing outcome, the reason)
    let rows: Vec<(Phase, Outcome, &str)> = vec![
        (
            Phase::DeployingIdle,
            Outcome::DeployIdle(Err("exit status 1".into())),
            "deploy to idle failed: exit status 1",
        ),
        (
            Phase::VerifyingIdle,
            Outcome::Verify(Err("smoke test \"checkout works\" failed: 500".into())),
            "smoke test \"checkout works\" failed: 500",
        ),
    ];
    for (phase, outcome, reason) in rows {
        let (mut h, id, _, now) = H::second_deploy_in(phase);
        let attempt = h.run(id).attempt;
        let ch = h.result(id, attempt, outcome, now);
        let run = run_of(&ch, id);
        assert_eq!(run.phase, Phase::Failed, "{reason}");
        assert_eq!(
            lifecycle(&ch),
            vec![format!(
                "❌ Deployment failed. Reason: {reason}. Live traffic was never switched: blue stays live."
            )]
        );
        assert_eq!(
            ch.actions,
            vec![Action::Teardown {
                env: staging(),
                colour: Colour::Green
            }]
        );
        let env = env_of(&ch, &staging());
        assert_eq!(env.live, Some(Colour::Blue));
        assert_eq!(env.blue.as_deref(), Some("v1.2.0"));
        assert_eq!(env.active_run, None);
        assert_eq!(env.lock, None);
        assert!(
            has(&thread_msgs(&ch, id), "<@bob>"),
            "the requester is told"
        );
        assert!(in_room(&ch, Room::Incidents).is_empty());
    }
}

#[test]
fn a_failed_switch_tears_nothing_down_and_blocks_deploys_until_traffic_is_seen() {
    let (mut h, id, _, now) = H::second_deploy_in(Phase::Switching);
    let attempt = h.run(id).attempt;
    let ch = h.result(
        id,
        attempt,
        Outcome::Switch(Err("router refused".into())),
        now,
    );
    assert_eq!(run_of(&ch, id).phase, Phase::Failed);
    assert_eq!(
        lifecycle(&ch),
        vec!["❌ Deployment failed. Reason: traffic switch failed: router refused. green was left running: greenlight cannot tell which colour takes traffic now, so it tears nothing down and refuses deploys until it can see again."]
    );
    // A half-done switch may have made green live: nothing is torn down.
    assert!(
        !ch.actions
            .iter()
            .any(|a| matches!(a, Action::Teardown { .. })),
        "{:?}",
        ch.actions
    );
    let env = env_of(&ch, &staging());
    assert!(env
        .unseen
        .as_deref()
        .unwrap()
        .contains("switch to green of run 2 failed"));
    assert_eq!(env.green.as_deref(), Some("v1.3.0"));
    // Greenlight looks again on its own.
    let (at, t) = ch
        .timers
        .iter()
        .find(|(_, t)| matches!(t, Timer::Observe(_)))
        .cloned()
        .expect("an observe timer");
    assert_eq!(at, now + secs(10));
    // Meanwhile deploys and why-not say why they are refused, and status shows it.
    let ch = h.cmd("alice", "/deploy v1.4.0 staging", now + secs(1));
    assert_eq!(
        reply(&ch),
        (
            "Refused: greenlight cannot see which colour is live on Staging: the traffic switch to green of run 2 failed: router refused",
            true
        )
    );
    assert!(ch.runs.is_empty());
    let ch = h.cmd("carol", "/deploy why-not v1.4.0 staging", now + secs(1));
    assert!(reply(&ch)
        .0
        .contains("• greenlight cannot see which colour is live on Staging"));
    let ch = h.cmd("carol", "/deploy status staging", now + secs(1));
    assert!(
        reply(&ch).0.contains("⚠️ live colour unknown"),
        "{}",
        reply(&ch).0
    );
    // The kept-warm teardown waits too.
    assert!(nothing(&h.timer(Timer::Teardown(staging()), now + secs(2))));
    // The timer asks the traffic step; it sees blue: deploys are possible again.
    let ch = h.timer(t, at);
    assert_eq!(
        ch.actions,
        vec![Action::Observe {
            env: staging(),
            run: None
        }]
    );
    let ch =
        h.e.observed(&staging(), LiveView::Seen(Some(Colour::Blue)), at + secs(1));
    let ch = h.persist(ch);
    assert_eq!(env_of(&ch, &staging()).unseen, None);
    assert!(ch
        .timers
        .iter()
        .all(|(_, t)| !matches!(t, Timer::Observe(_))));
    h.request("alice", "v1.4.0", "staging", at + secs(2));
}

#[test]
fn a_deploy_never_starts_on_a_colour_it_cannot_see() {
    // The traffic step cannot be asked when the checklist completes: nothing is deployed.
    let mut h = H::demo();
    h.deploy_stable("alice", "bob", "v1.2.0", "staging", wed(10, 0));
    let id = h.request("bob", "v1.3.0", "staging", wed(11, 0));
    let ch = h.approve_all(id, "alice", wed(11, 1));
    let attempt = match ch.actions.as_slice() {
        [Action::Observe {
            run: Some((r, a)), ..
        }] if *r == id => *a,
        other => panic!("{other:?}"),
    };
    let ch = h.result(
        id,
        attempt,
        Outcome::Observed(LiveView::Unseen(
            "HAProxy: cannot connect to /run/haproxy.sock: No such file or directory".into(),
        )),
        wed(11, 2),
    );
    assert_eq!(run_of(&ch, id).phase, Phase::Failed);
    assert!(
        ch.actions.is_empty(),
        "nothing deployed or torn down: {:?}",
        ch.actions
    );
    assert_eq!(
        lifecycle(&ch),
        vec!["❌ Deployment failed. Reason: greenlight cannot see which colour is live: HAProxy: cannot connect to /run/haproxy.sock: No such file or directory. Nothing was deployed and live traffic was not touched."]
    );
    let env = env_of(&ch, &staging());
    assert_eq!(
        (env.live, env.blue.as_deref()),
        (Some(Colour::Blue), Some("v1.2.0"))
    );
    assert!(env.unseen.is_some());
    // The traffic step says green is live now (someone switched by hand): the next deploy
    // goes to blue, the colour that is really idle.
    let ch =
        h.e.observed(&staging(), LiveView::Seen(Some(Colour::Green)), wed(11, 3));
    h.persist(ch);
    let id = h.request("bob", "v1.3.0", "staging", wed(11, 4));
    let ch = h.approve_all(id, "alice", wed(11, 5));
    let ch = h.see(&ch, wed(11, 5));
    assert!(matches!(
        ch.actions.as_slice(),
        [Action::DeployIdle {
            colour: Colour::Blue,
            ..
        }]
    ));
    assert_eq!(h.run(id).from, Some(Colour::Green));
}

#[test]
fn a_step_that_cannot_be_asked_needs_a_stated_live_colour() {
    // A command traffic step without `live_query`; `live` as the config states it.
    let rules = |live: Option<Option<Colour>>| {
        let mut qa = build::env("qa");
        qa.stated_live = live;
        Arc::new(build::rules(&[("alice", &["deployers"])], vec![qa]))
    };
    let qa = EnvName::new("qa");
    // Nothing stored, nobody said: refused, and why.
    let mut e = Engine::new(rules(None), LINK.into());
    let ch = e.observed(&qa, LiveView::Unasked, wed(9, 0));
    assert!(ch.timers.is_empty(), "asking again cannot help");
    let ch = e.command(
        &user("alice"),
        command::parse("/deploy v1.0.0 qa").unwrap().unwrap(),
        wed(9, 1),
    );
    let r = ch.reply.unwrap();
    assert!(
        r.text
            .contains("cannot be asked (no live_query) and nobody has stated the live colour"),
        "{}",
        r.text
    );
    assert!(ch.runs.is_empty());
    // `live = "green"`: a person said so; the first deploy goes to blue.
    let mut e = Engine::new(rules(Some(Some(Colour::Green))), LINK.into());
    e.observed(&qa, LiveView::Unasked, wed(9, 0));
    assert_eq!(e.env(&qa).unwrap().live, Some(Colour::Green));
    let ch = e.command(
        &user("alice"),
        command::parse("/deploy v1.0.0 qa").unwrap().unwrap(),
        wed(9, 1),
    );
    let (id, attempt) = match ch.actions.as_slice() {
        [Action::Observe { run: Some(r), .. }] => *r,
        other => panic!("{other:?}"),
    };
    let ch = e.result(id, attempt, Outcome::Observed(LiveView::Unasked), wed(9, 2));
    assert!(matches!(
        ch.actions.as_slice(),
        [Action::DeployIdle {
            colour: Colour::Blue,
            ..
        }]
    ));
}

#[test]
fn cancel() {
    // (phase, who, accepted, reply fragment, teardown)
    let rows = [
        (
            Phase::AwaitingChecklist,
            "alice",
            true,
            "Run 2 cancelled.",
            false,
        ),
        (
            Phase::AwaitingChecklist,
            "carol",
            false,
            "carol may not cancel runs on Staging",
            false,
        ),
        (Phase::DeployingIdle, "bob", true, "Run 2 cancelled.", true),
        (Phase::VerifyingIdle, "bob", true, "Run 2 cancelled.", true),
        (Phase::Baseline, "bob", true, "Run 2 cancelled.", true),
        (
            Phase::Switching,
            "bob",
            false,
            "run 2 is switching and can no longer be cancelled; use /rollback staging",
            false,
        ),
        (
            Phase::Monitoring,
            "bob",
            false,
            "run 2 is monitoring and can no longer be cancelled; use /rollback staging",
            false,
        ),
    ];
    for (phase, who, accepted, fragment, teardown) in rows {
        let (mut h, id, _, now) = if phase == Phase::AwaitingChecklist {
            let mut h = H::demo();
            h.deploy_stable("alice", "bob", "v1.2.0", "staging", wed(10, 0));
            let id = h.request("bob", "v1.3.0", "staging", wed(11, 0));
            (h, id, Changes::default(), wed(11, 0))
        } else {
            H::second_deploy_in(phase)
        };
        let ctx = format!("{who} cancels in {phase:?}");
        let attempt = h.run(id).attempt;
        let ch = h.cmd(who, "/deploy cancel 2", now + secs(1));
        let (text, private) = reply(&ch);
        assert_eq!(!private, accepted, "{ctx}: {text}");
        assert!(text.contains(fragment), "{ctx}: {text}");
        if !accepted {
            assert!(
                !text.contains("Usage:"),
                "a refusal is not a usage error: {ctx}"
            );
            assert!(ch.runs.is_empty() && ch.actions.is_empty(), "{ctx}");
            assert_eq!(h.run(id).phase, phase, "{ctx}");
            continue;
        }
        assert_eq!(run_of(&ch, id).phase, Phase::Cancelled, "{ctx}");
        assert_eq!(env_of(&ch, &staging()).active_run, None, "{ctx}");
        let msgs = thread_msgs(&ch, id);
        assert!(
            has(
                &msgs,
                &format!("🚫 Run 2 (v1.3.0 → Staging) cancelled by <@{who}>")
            ),
            "{ctx}"
        );
        assert!(has(&msgs, "<@bob>"), "{ctx}: mentions the requester");
        let expected = if teardown {
            vec![Action::Teardown {
                env: staging(),
                colour: Colour::Green,
            }]
        } else {
            vec![]
        };
        assert_eq!(ch.actions, expected, "{ctx}");
        assert_eq!(env_of(&ch, &staging()).live, Some(Colour::Blue), "{ctx}");
        // A driver result that arrives afterwards is ignored.
        if teardown {
            let late = h.result(id, attempt, Outcome::DeployIdle(Ok(())), now + secs(2));
            assert!(nothing(&late), "{ctx}");
        }
    }
}

#[test]
fn checklist_expiry() {
    let mut h = H::demo();
    let id = h.request("alice", "v1.2.0", "staging", wed(10, 0));
    h.approve("bob", id, 0, wed(11, 0));
    assert_eq!(h.run(id).checklist_expires, wed(14, 0));
    assert!(nothing(
        &h.timer(Timer::ChecklistExpiry(id), t(25, 13, 59, 59))
    ));
    let ch = h.timer(Timer::ChecklistExpiry(id), wed(14, 0));
    assert_eq!(run_of(&ch, id).phase, Phase::Expired);
    assert_eq!(env_of(&ch, &staging()).active_run, None);
    assert_eq!(
        thread_msgs(&ch, id),
        vec!["⌛ Run 1 expired: the checklist for v1.2.0 → Staging was not completed within 4h. <@alice>"]
    );
    assert!(ch.actions.is_empty());
    // Fired again, or for a run whose checklist completed, it does nothing.
    assert!(nothing(&h.timer(Timer::ChecklistExpiry(id), wed(15, 0))));
    let id = h.request("alice", "v1.2.0", "staging", wed(15, 0));
    h.approve_all(id, "bob", wed(15, 1));
    assert!(nothing(&h.timer(Timer::ChecklistExpiry(id), wed(19, 0))));
}

#[test]
fn stale_and_unexpected_results_are_ignored() {
    let (mut h, id, _, now) = H::second_deploy_in(Phase::DeployingIdle);
    // (attempt, outcome)
    let rows = [
        (0, Outcome::DeployIdle(Ok(()))),
        (2, Outcome::DeployIdle(Ok(()))),
        (1, Outcome::Switch(Ok(()))),
        (1, Outcome::Verify(Ok("ok".into()))),
        (1, Outcome::SwitchBack(Ok(()))),
        (1, Outcome::Sample(healthy(), None)),
    ];
    for (attempt, o) in rows {
        let ch = h.result(id, attempt, o.clone(), now);
        assert!(nothing(&ch), "attempt {attempt}, {o:?}");
        assert_eq!(h.run(id).phase, Phase::DeployingIdle);
    }
    assert!(nothing(&h.result(
        RunId(99),
        1,
        Outcome::DeployIdle(Ok(())),
        now
    )));
    // A monitor tick of another attempt or a finished run asks for nothing.
    let (mut h, id, _, now) = H::second_deploy_in(Phase::Monitoring);
    assert!(nothing(&h.timer(Timer::MonitorTick(id, 7), now)));
    assert!(nothing(&h.timer(Timer::MonitorTick(RunId(1), 1), now)));
}
