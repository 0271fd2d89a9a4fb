//! Rollback: triggers during monitoring, no data, first deploys, `/rollback` by hand.

use super::*;

#[test]
fn rollback_triggers_during_monitoring() {
    // (check, reason in the ❌ message)
    let rows: Vec<(Check, &str)> = vec![
        (
            (data(200.0, 0.5, 0.1), Some(Ok(()))),
            "error rate 50.0% is above the 1.0% threshold (200 requests)",
        ),
        (
            (data(200.0, 0.0, 0.5), Some(Ok(()))),
            "p99 latency 500 ms is more than 200% above the baseline 100 ms (limit 300 ms)",
        ),
        (
            (
                healthy(),
                Some(Err("checkout works: POST /checkout answered 500".into())),
            ),
            "core business flow broken: checkout works: POST /checkout answered 500",
        ),
        (
            (
                no_data(),
                Some(Err("checkout works: connection refused".into())),
            ),
            "core business flow broken: checkout works: connection refused",
        ),
    ];
    for (check, reason) in rows {
        let (mut h, id, ch, _) = H::second_deploy_in(Phase::Monitoring);
        assert_eq!(h.run(id).baseline_p99, Some(0.1));
        let (ch, _) = h.monitor(id, ch, vec![pass(), check]);
        let run = run_of(&ch, id);
        assert_eq!(run.phase, Phase::RollingBack, "{reason}");
        assert_eq!(run.switch_back_intents, 1);
        assert_eq!(
            lifecycle(&ch),
            vec![format!(
                "❌ Deployment failed. Rolling back. Reason: {reason}"
            )]
        );
        assert!(status_msg(&ch, id).contains(&format!("✖ check 2: {reason}")));
        assert_eq!(
            ch.actions,
            vec![Action::SwitchBack {
                run: id,
                attempt: 1,
                env: staging(),
                to: Colour::Blue,
                from: Colour::Green
            }]
        );
        let now = wed(12, 0);
        let ch = h.result(id, 1, Outcome::SwitchBack(Ok(())), now);
        let run = run_of(&ch, id);
        assert_eq!(run.phase, Phase::RolledBack);
        let incidents = in_room(&ch, Room::Incidents);
        assert_eq!(incidents.len(), 1);
        let alert = &incidents[0].text;
        for f in [
            "🚨 Staging: rolled back v1.3.0",
            "(run 2)",
            reason,
            "traffic is on blue (v1.2.0)",
            "Requested by bob; approved by alice",
            "locked until someone runs /deploy unlock staging",
            "The database was not touched",
            "http://127.0.0.1:8080/runs/2",
        ] {
            assert!(alert.contains(f), "missing {f:?} in {alert}");
        }
        let env = env_of(&ch, &staging());
        assert_eq!(env.live, Some(Colour::Blue));
        assert_eq!(env.blue.as_deref(), Some("v1.2.0"));
        assert_eq!(env.green, None);
        assert_eq!(env.active_run, None);
        let lock = env.lock.as_ref().expect("locked");
        assert_eq!(lock.run, Some(id));
        assert!(lock.reason.contains("rollback of v1.3.0 (run 2)") && lock.reason.contains(reason));
        assert_eq!(
            ch.actions,
            vec![Action::Teardown {
                env: staging(),
                colour: Colour::Green
            }]
        );
        assert!(has(&thread_msgs(&ch, id), "⏪ Run 2 rolled back"));
        // The lock holds new deploys back until someone unlocks.
        let ch = h.cmd("alice", "/deploy v1.3.1 staging", now + mins(1));
        assert!(reply(&ch).0.contains("Staging is locked by greenlight"));
        h.cmd("alice", "/deploy unlock staging", now + mins(2));
        h.request("alice", "v1.3.1", "staging", now + mins(3));
    }
}

#[test]
fn a_breach_on_a_first_deploy_has_nothing_to_switch_back_to() {
    let mut h = H::demo();
    let (id, ch) = h.deploy_to_monitoring("alice", "bob", "v1.2.0", "staging", wed(10, 0));
    let (ch, _) = h.monitor(id, ch, vec![(data(100.0, 0.2, 0.1), None)]);
    let run = run_of(&ch, id);
    assert_eq!(run.phase, Phase::Failed);
    assert!(
        ch.actions.is_empty(),
        "no SwitchBack and no teardown of the live colour"
    );
    assert!(lifecycle(&ch)[0]
        .starts_with("❌ Deployment failed. Rolling back. Reason: error rate 20.0%"));
    let alert = &in_room(&ch, Room::Incidents)[0].text;
    assert!(alert.contains("failed first deploy of v1.2.0"), "{alert}");
    let env = env_of(&ch, &staging());
    assert_eq!(env.live, Some(Colour::Blue));
    assert!(env.lock.is_some());
}

#[test]
fn no_data_is_never_a_pass() {
    // (checks, final phase)
    let rows: Vec<(Vec<Check>, Phase)> = vec![
        (vec![(no_data(), None); 5], Phase::Unverified),
        (
            vec![pass(), pass(), pass(), pass(), (no_data(), Some(Ok(())))],
            Phase::Unverified,
        ),
        (
            vec![
                (no_data(), None),
                (no_data(), None),
                (no_data(), None),
                pass(),
                pass(),
            ],
            Phase::Unverified,
        ),
        (vec![(data(3.0, 0.0, 0.1), None); 5], Phase::Unverified),
        (
            vec![(no_data(), None), pass(), pass(), pass(), pass()],
            Phase::Succeeded,
        ),
    ];
    for (n, (checks, phase)) in rows.into_iter().enumerate() {
        let (mut h, id, ch, _) = H::second_deploy_in(Phase::Monitoring);
        let first_inconclusive = !matches!(checks[0].0, Sample::Data(ref m) if m.requests >= 20.0);
        let mut ch = ch;
        let mut statuses = Vec::new();
        for c in checks {
            let (next, _) = h.monitor(id, ch, vec![c]);
            statuses.push(status_msg(&next, id));
            ch = next;
        }
        if first_inconclusive {
            assert!(
                statuses[0].contains("⚠️ check 1: inconclusive (")
                    && statuses[0].contains("no data is never a pass"),
                "row {n}: {}",
                statuses[0]
            );
        }
        let run = run_of(&ch, id);
        assert_eq!(run.phase, phase, "row {n}");
        // Either way the old colour is kept warm and traffic stays on the new one.
        assert!(
            matches!(ch.timers.as_slice(), [(_, Timer::Teardown(_))]),
            "row {n}"
        );
        assert_eq!(env_of(&ch, &staging()).live, Some(Colour::Green));
        if phase == Phase::Unverified {
            let msgs = thread_msgs(&ch, id);
            assert!(has(&msgs, "was inconclusive"), "row {n}: {msgs:?}");
            assert!(has(&msgs, "so it is not marked stable"), "row {n}");
            assert!(!has(&msgs, "stable: v1.3.0"), "row {n}");
        }
    }
}

#[test]
fn manual_rollback() {
    // During monitoring: the same path as an automatic rollback.
    let (mut h, id, _, now) = H::second_deploy_in(Phase::Monitoring);
    let ch = h.cmd("carol", "/rollback staging", now);
    assert!(reply(&ch).0.contains("carol may not roll back Staging"));
    let ch = h.cmd("bob", "/rollback staging error budget burning", now);
    assert_eq!(reply(&ch), ("Rolling back run 2.", false));
    assert_eq!(
        lifecycle(&ch),
        vec!["❌ Deployment failed. Rolling back. Reason: manual rollback by bob: error budget burning"]
    );
    assert!(matches!(
        ch.actions.as_slice(),
        [Action::SwitchBack {
            to: Colour::Blue,
            from: Colour::Green,
            ..
        }]
    ));
    let ch = h.cmd("bob", "/rollback staging", now);
    assert_eq!(reply(&ch), ("Run 2 is already rolling back.", false));
    let ch = h.result(id, 1, Outcome::SwitchBack(Ok(())), now);
    assert_eq!(run_of(&ch, id).phase, Phase::RolledBack);
    assert!(env_of(&ch, &staging()).lock.is_some());

    // After a stable deploy with the old colour still warm: verify it, switch back, lock.
    // Neither a lock nor a freeze stops a rollback: prod, Friday evening, locked.
    for (env, name) in [(staging(), "Staging"), (prod(), "Production")] {
        let mut h = H::demo();
        let e = env.0.as_str();
        h.deploy_stable("alice", "bob", "v1.2.0", e, wed(10, 0));
        let (r2, _) = h.deploy_stable("bob", "alice", "v1.3.0", e, wed(11, 0));
        let now = if e == "prod" { fri(18, 0) } else { wed(11, 5) };
        h.cmd("alice", &format!("/deploy lock {e} investigating"), now);
        let ch = h.cmd("bob", &format!("/rollback {e} checkout is slow"), now);
        let r3 = RunId(3);
        assert_eq!(
            reply(&ch),
            (
                format!("Run 3: rolling back {name} to v1.2.0.").as_str(),
                false
            )
        );
        assert_eq!(ch.next_run, Some(4));
        let parent = &ch.posts[0];
        assert_eq!(parent.key, Some(MsgKey::Checklist(r3)));
        assert_eq!(
            parent.text,
            format!("⏪ Rolling back {name} to v1.2.0 (run 3). Reason: manual rollback by bob: checkout is slow")
        );
        let run = run_of(&ch, r3);
        assert_eq!(run.kind, RunKind::Rollback);
        assert_eq!(run.phase, Phase::VerifyingIdle);
        assert_eq!(
            ch.actions,
            vec![Action::Verify {
                run: r3,
                attempt: 1,
                env: env.clone(),
                colour: Colour::Blue
            }]
        );
        let ch = h.result(r3, 1, Outcome::Verify(Ok("ok".into())), now + mins(1));
        assert_eq!(run_of(&ch, r3).switch_intents, 1);
        assert_eq!(
            ch.actions,
            vec![Action::Switch {
                run: r3,
                attempt: 1,
                env: env.clone(),
                to: Colour::Blue,
                from: Some(Colour::Green)
            }]
        );
        let ch = h.result(r3, 1, Outcome::Switch(Ok(())), now + mins(2));
        assert_eq!(run_of(&ch, r3).phase, Phase::RolledBack);
        let st = env_of(&ch, &env);
        assert_eq!(st.live, Some(Colour::Blue));
        assert_eq!(st.live_version().map(String::as_str), Some("v1.2.0"));
        assert_eq!(st.green, None);
        assert_eq!(st.previous, None, "nothing further to roll back to");
        assert_eq!(st.active_run, None);
        assert_eq!(
            st.lock.as_ref().unwrap().reason,
            "investigating",
            "the earlier lock stays"
        );
        assert_eq!(
            ch.actions,
            vec![Action::Teardown {
                env: env.clone(),
                colour: Colour::Green
            }]
        );
        let alert = &in_room(&ch, Room::Incidents)[0].text;
        assert!(
            alert.contains(&format!("🚨 {name}: rolled back v1.3.0 (run 3)")),
            "{alert}"
        );
        assert!(alert.contains("traffic is on blue (v1.2.0)"), "{alert}");
        assert!(h.run(r2).phase == Phase::Succeeded);
        // The kept-warm teardown timer of run 2 no longer tears anything down.
        let until = h.env(&env).warm_until;
        assert_eq!(until, None);
        assert!(nothing(
            &h.timer(Timer::Teardown(env.clone()), now + mins(30))
        ));
        // And there is nothing further to roll back to.
        let ch = h.cmd("bob", &format!("/rollback {e}"), now + mins(3));
        assert!(reply(&ch).0.starts_with("nothing to roll back to"));
    }

    // After the warm colour was torn down: the previous version is deployed again.
    let mut h = H::demo();
    h.deploy_stable("alice", "bob", "v1.2.0", "staging", wed(10, 0));
    h.deploy_stable("bob", "alice", "v1.3.0", "staging", wed(11, 0));
    let ch = h.timer(Timer::Teardown(staging()), wed(12, 0));
    assert_eq!(ch.actions.len(), 1);
    let ch = h.cmd("bob", "/rollback staging", wed(12, 5));
    assert_eq!(
        ch.actions,
        vec![Action::DeployIdle {
            run: RunId(3),
            attempt: 1,
            env: staging(),
            colour: Colour::Blue,
            version: "v1.2.0".into()
        }]
    );
    let ch = h.drive(RunId(3), ch, wed(12, 6), Phase::RolledBack);
    assert_eq!(
        env_of(&ch, &staging()).live_version().map(String::as_str),
        Some("v1.2.0")
    );

    // Before the switch, a rollback points to cancel.
    let mut h = H::demo();
    h.deploy_stable("alice", "bob", "v1.2.0", "staging", wed(10, 0));
    h.request("bob", "v1.3.0", "staging", wed(11, 0));
    let ch = h.cmd("bob", "/rollback staging", wed(11, 1));
    let (text, private) = reply(&ch);
    assert!(private);
    assert!(
        text.contains("run 2 has not switched traffic yet (awaiting checklist)"),
        "{text}"
    );
    assert!(text.contains("use /deploy cancel 2"), "{text}");
}
