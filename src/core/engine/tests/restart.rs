//! Restarts: each phase resumes or concludes safely, and says so.

use super::*;

fn restarted(ch: &Changes, id: RunId) -> String {
    let msgs: Vec<&str> = thread_msgs(ch, id)
        .into_iter()
        .filter(|m| m.starts_with("♻️ greenlight restarted: "))
        .collect();
    assert_eq!(msgs.len(), 1, "one restart message: {:#?}", ch.posts);
    assert!(ch
        .posts
        .iter()
        .any(|p| p.text == msgs[0] && p.room == Room::Deploys && !p.edit));
    msgs[0].to_string()
}

#[test]
fn restart_while_the_checklist_is_open() {
    let mut h = H::demo();
    let id = h.request("alice", "v1.2.0", "staging", wed(10, 0));
    h.approve("bob", id, 0, wed(10, 1));

    // Still open: approvals are kept and the expiry is armed again.
    let mut h2 = h.restart();
    assert_eq!(h2.e.next_run(), 2);
    let ch = h2.resume(id, None, wed(10, 30));
    assert_eq!(
        restarted(&ch, id),
        "♻️ greenlight restarted: run 1's checklist is still open; approvals so far are kept."
    );
    assert_eq!(ch.timers, vec![(wed(14, 0), Timer::ChecklistExpiry(id))]);
    assert!(ch.actions.is_empty());
    assert_eq!(h2.run(id).checklist.items[0].approvers, vec![user("bob")]);
    let ch = h2.approve("carol", id, 1, wed(10, 31));
    assert!(matches!(
        ch.actions.as_slice(),
        [Action::Observe {
            run: Some((_, 1)),
            ..
        }]
    ));
    // Run numbers continue after a restart.
    assert_eq!(h2.request("bob", "v9.9.9", "prod", wed(10, 32)), RunId(2));

    // Expired while the bot was down: said, and concluded by the expiry timer.
    let mut h3 = h.restart();
    let ch = h3.resume(id, None, wed(15, 0));
    assert!(restarted(&ch, id).contains("run 1's checklist expired while the bot was down."));
    assert_eq!(ch.timers, vec![(wed(15, 0), Timer::ChecklistExpiry(id))]);
    let ch = h3.timer(Timer::ChecklistExpiry(id), wed(15, 0));
    assert_eq!(run_of(&ch, id).phase, Phase::Expired);
}

/// What a resumed run must do next, checked after the restart message.
type Then = fn(&mut H, RunId, &Changes, DateTime<Utc>);

fn then_redeploy(h: &mut H, id: RunId, ch: &Changes, now: DateTime<Utc>) {
    let old = h.run(id).attempt - 1;
    // First the traffic step is asked again; nothing is deployed before it answers.
    assert_eq!(
        ch.actions,
        vec![Action::Observe {
            env: staging(),
            run: Some((id, old + 1)),
        }]
    );
    assert_eq!(run_of(ch, id).phase, Phase::Observing);
    let ch = &h.see(ch, now);
    assert!(
        lifecycle(ch).is_empty(),
        "no second 🚀: {:?}",
        lifecycle(ch)
    );
    assert_eq!(
        ch.actions,
        vec![Action::DeployIdle {
            run: id,
            attempt: old + 1,
            env: staging(),
            colour: Colour::Green,
            version: "v1.3.0".into()
        }]
    );
    assert_eq!(run_of(ch, id).phase, Phase::DeployingIdle);
    assert_eq!(run_of(ch, id).switch_intents, 0);
    // The old attempt's result is stale; the new one goes on.
    assert!(nothing(&h.result(
        id,
        old,
        Outcome::DeployIdle(Ok(())),
        now
    )));
    assert!(nothing(&h.result(
        id,
        old,
        Outcome::Verify(Ok("ok".into())),
        now
    )));
    let ch = h.result(id, old + 1, Outcome::DeployIdle(Ok(())), now);
    assert!(matches!(
        ch.actions.as_slice(),
        [Action::Verify { attempt, .. }] if *attempt == old + 1
    ));
    let ch = h.drive(id, ch, now, Phase::Monitoring);
    assert_eq!(
        lifecycle(&ch),
        vec!["✅ Deployment successful. Monitoring."]
    );
    assert_eq!(h.run(id).switch_intents, 1);
}

fn then_monitor_after_switch(h: &mut H, id: RunId, ch: &Changes, now: DateTime<Utc>) {
    assert_eq!(
        lifecycle(ch),
        vec!["✅ Deployment successful. Monitoring."],
        "the success message, once"
    );
    assert!(ch.actions.is_empty(), "no second switch");
    let run = run_of(ch, id);
    assert_eq!(run.phase, Phase::Monitoring);
    assert_eq!(run.switch_intents, 1);
    assert!(run.switched && run.success_posted);
    assert_eq!(ch.timers, vec![(now + secs(4), Timer::MonitorTick(id, 1))]);
    let env = env_of(ch, &staging());
    assert_eq!(env.live, Some(Colour::Green));
    assert_eq!(env.green.as_deref(), Some("v1.3.0"));
    assert_eq!(env.blue.as_deref(), Some("v1.2.0"));
    assert_eq!(env.previous.as_deref(), Some("v1.2.0"));
    // Another restart during monitoring does not say ✅ again.
    let mut h2 = h.restart();
    let ch2 = h2.resume(id, Some(Colour::Green), now + secs(1));
    assert!(restarted(&ch2, id).contains("monitoring resumes"));
    assert!(lifecycle(&ch2).is_empty());
    let (ch3, _) = h2.monitor(id, ch2, passes(6));
    assert_eq!(run_of(&ch3, id).phase, Phase::Succeeded);
    *h = h2;
}

fn then_reverify_before_switching(h: &mut H, id: RunId, ch: &Changes, now: DateTime<Utc>) {
    assert!(matches!(
        ch.actions.as_slice(),
        [Action::Observe {
            run: Some((_, 2)),
            ..
        }]
    ));
    let ch = &h.see(ch, now);
    assert_eq!(
        ch.actions,
        vec![Action::DeployIdle {
            run: id,
            attempt: 2,
            env: staging(),
            colour: Colour::Green,
            version: "v1.3.0".into()
        }]
    );
    assert_eq!(run_of(ch, id).switch_intents, 1);
    assert!(lifecycle(ch).is_empty());
    assert_eq!(h.env(&staging()).live, Some(Colour::Blue));
    // Each step asks for the next one, and the switch only comes after verification.
    let ch = h.result(id, 2, Outcome::DeployIdle(Ok(())), now);
    assert!(matches!(ch.actions.as_slice(), [Action::Verify { .. }]));
    let ch = h.result(id, 2, Outcome::Verify(Ok("ok".into())), now);
    assert!(matches!(ch.actions.as_slice(), [Action::Baseline { .. }]));
    let ch = h.result(id, 2, Outcome::Baseline(healthy()), now);
    assert!(matches!(
        ch.actions.as_slice(),
        [Action::Switch {
            attempt: 2,
            to: Colour::Green,
            ..
        }]
    ));
    assert_eq!(run_of(&ch, id).switch_intents, 2);
}

fn then_tick(h: &mut H, id: RunId, ch: &Changes, now: DateTime<Utc>) {
    assert!(lifecycle(ch).is_empty(), "✅ was posted before the restart");
    assert!(ch.actions.is_empty());
    assert_eq!(ch.timers, vec![(now + secs(1), Timer::MonitorTick(id, 1))]);
    let tick = h.timer(Timer::MonitorTick(id, 1), now + secs(1));
    assert!(matches!(
        tick.actions.as_slice(),
        [Action::Sample {
            colour: Colour::Green,
            ..
        }]
    ));
}

/// Traffic found on the old colour while monitoring: concluded like a rollback (alert, lock,
/// the new colour torn down, `previous` cleared so a later /rollback does not redeploy the
/// live version).
fn then_concluded_as_rolled_back(_: &mut H, id: RunId, ch: &Changes, _: DateTime<Utc>) {
    assert_eq!(env_of(ch, &staging()).active_run, None);
    assert_eq!(env_of(ch, &staging()).previous, None);
    assert_eq!(
        run_of(ch, id).switch_back_intents,
        0,
        "nothing was switched"
    );
    rollback_completed(id, ch);
}

fn then_rollback_done(_: &mut H, id: RunId, ch: &Changes, _: DateTime<Utc>) {
    assert_eq!(
        run_of(ch, id).switch_back_intents,
        1,
        "no second switch back"
    );
    rollback_completed(id, ch);
}

fn rollback_completed(id: RunId, ch: &Changes) {
    assert_eq!(run_of(ch, id).phase, Phase::RolledBack);
    assert_eq!(in_room(ch, Room::Incidents).len(), 1);
    let env = env_of(ch, &staging());
    assert_eq!(env.live, Some(Colour::Blue));
    assert!(env.lock.is_some());
    assert_eq!(
        ch.actions,
        vec![Action::Teardown {
            env: staging(),
            colour: Colour::Green
        }]
    );
}

fn then_switch_back_again(h: &mut H, id: RunId, ch: &Changes, now: DateTime<Utc>) {
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
    assert_eq!(run_of(ch, id).switch_back_intents, 2);
    assert_eq!(run_of(ch, id).phase, Phase::RollingBack);
    let ch = h.result(id, 1, Outcome::SwitchBack(Ok(())), now);
    rollback_completed(id, &ch);
}

#[test]
fn restart_resumes_or_concludes_each_phase() {
    // (phase when the bot stopped, colour the driver reports live, the message, what follows)
    let rows: Vec<(Phase, Option<Colour>, &str, Then)> = vec![
        (
            Phase::DeployingIdle,
            Some(Colour::Blue),
            "run 2 was deploying idle when the bot stopped; live traffic was never switched, so the deploy starts again: greenlight asks which colour is live, then deploys v1.3.0 to the idle one.",
            then_redeploy,
        ),
        (
            Phase::VerifyingIdle,
            Some(Colour::Blue),
            "run 2 was verifying idle when the bot stopped",
            then_redeploy,
        ),
        (
            Phase::Baseline,
            Some(Colour::Blue),
            "run 2 was taking baseline when the bot stopped",
            then_redeploy,
        ),
        (
            Phase::Switching,
            Some(Colour::Green),
            "run 2's traffic switch to green had happened; monitoring resumes.",
            then_monitor_after_switch,
        ),
        (
            Phase::Switching,
            Some(Colour::Blue),
            "run 2's traffic switch to green had not happened (blue is live); green is deployed and verified again before a new switch.",
            then_reverify_before_switching,
        ),
        (
            Phase::Monitoring,
            Some(Colour::Green),
            "run 2 is monitoring v1.3.0 on green; monitoring resumes.",
            then_tick,
        ),
        (
            Phase::Monitoring,
            Some(Colour::Blue),
            "run 2: after a restart traffic is on blue instead of green; concluding the run as rolled back.",
            then_concluded_as_rolled_back,
        ),
        (
            Phase::RollingBack,
            Some(Colour::Blue),
            "run 2's switch back had happened; completing the rollback.",
            then_rollback_done,
        ),
        (
            Phase::RollingBack,
            Some(Colour::Green),
            "run 2 was rolling back; switching traffic back to blue now.",
            then_switch_back_again,
        ),
    ];
    for (phase, live, says, then) in rows {
        let (h, id, _, now) = H::second_deploy_in(phase);
        let mut h = h.restart();
        assert_eq!(h.e.runs().map(|r| r.id).collect::<Vec<_>>(), vec![id]);
        let now = now + secs(2);
        let ch = h.resume(id, live, now);
        let said = restarted(&ch, id);
        assert!(
            said.starts_with(&format!("♻️ greenlight restarted: {says}")),
            "{phase:?} with {live:?} live: {said}"
        );
        assert!(ch.events.iter().any(|e| e.what == What::Resumed { phase }));
        then(&mut h, id, &ch, now);
    }
}

#[test]
fn resume_of_an_unknown_or_finished_run_does_nothing() {
    let mut h = H::demo();
    let (id, _) = h.deploy_stable("alice", "bob", "v1.2.0", "staging", wed(10, 0));
    let mut h = h.restart();
    assert!(
        h.e.runs().next().is_none(),
        "finished runs are not restored"
    );
    assert!(nothing(&h.resume(id, Some(Colour::Blue), wed(11, 0))));
    assert!(nothing(&h.resume(RunId(42), None, wed(11, 0))));
}

#[test]
fn kept_warm_teardown_is_armed_again_at_start() {
    let mut h = H::demo();
    h.deploy_stable("alice", "bob", "v1.2.0", "staging", wed(10, 0));
    let (_, end) = h.deploy_stable("bob", "alice", "v1.3.0", "staging", wed(11, 0));
    let mut h = h.restart();
    let until = end + mins(10);
    assert_eq!(
        h.e.startup_timers(),
        vec![(until, Timer::Teardown(staging()))]
    );
    let ch = h.timer(Timer::Teardown(staging()), until);
    assert_eq!(
        ch.actions,
        vec![Action::Teardown {
            env: staging(),
            colour: Colour::Blue
        }]
    );
    assert!(h.e.startup_timers().is_empty());
}
