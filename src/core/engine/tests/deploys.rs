//! The happy path: request, checklist, deploy, monitoring, stable, and a second deploy beside the kept-warm colour.

use super::*;

#[test]
fn happy_path_then_a_second_deploy_that_keeps_the_old_colour_warm() {
    let mut h = H::demo();
    let r1 = RunId(1);
    let st = staging();

    // The request opens the checklist.
    let ch = h.cmd("alice", "/deploy v1.2.0 staging", wed(10, 0));
    assert_eq!(
        reply(&ch),
        (
            "Run 1: v1.2.0 → Staging requested by alice; checklist posted.",
            false
        )
    );
    assert_eq!(ch.next_run, Some(2));
    assert!(ch.actions.is_empty());
    assert_eq!(ch.timers, vec![(wed(14, 0), Timer::ChecklistExpiry(r1))]);
    assert_eq!(run_of(&ch, r1).phase, Phase::AwaitingChecklist);
    assert_eq!(env_of(&ch, &st).active_run, Some(r1));
    assert_eq!(ch.posts.len(), 3, "parent and one reply per item");
    let parent = &ch.posts[0];
    assert_eq!(parent.room, Room::Deploys);
    assert_eq!(parent.key, Some(MsgKey::Checklist(r1)));
    assert_eq!(parent.thread, None);
    assert!(
        parent
            .text
            .starts_with("📋 Pre-deployment checklist: v1.2.0 → Staging (run 1)\n"),
        "{}",
        parent.text
    );
    let reviewers = parent.text.split("Reviewers:").nth(1).expect("reviewers");
    assert!(reviewers.contains("<@bob>") && reviewers.contains("<@carol>"));
    assert!(
        !reviewers.contains("<@alice>"),
        "the requester is no reviewer"
    );
    assert!(parent.text.contains("Expires in 4h"));
    let items = [
        "⬜ 1. CI passed: build, lint, test green (0/1 from reviewers)",
        "⬜ 2. Migrations reviewed: DB changes are backwards compatible (0/1 from reviewers)",
    ];
    for (i, (p, text)) in ch.posts[1..].iter().zip(items).enumerate() {
        assert_eq!(p.key, Some(MsgKey::Item(r1, i)));
        assert_eq!(p.thread, Some(MsgKey::Checklist(r1)));
        assert_eq!(p.text, text);
        assert!(!p.edit);
    }

    // bob approves item 1: its line is edited.
    let ch = h.approve("bob", r1, 0, wed(10, 5));
    assert_eq!(ch.posts.len(), 1);
    assert_eq!(ch.posts[0].key, Some(MsgKey::Item(r1, 0)));
    assert!(ch.posts[0].edit);
    assert_eq!(
        ch.posts[0].text,
        "✅ 1. CI passed: build, lint, test green (1/1 from reviewers by bob)"
    );
    assert!(ch.actions.is_empty());
    assert_eq!(run_of(&ch, r1).phase, Phase::AwaitingChecklist);

    // bob approves item 2: the checklist is complete and the deploy starts.
    let ch = h.approve("bob", r1, 1, wed(10, 6));
    assert_eq!(
        ch.actions,
        vec![Action::Observe {
            env: st.clone(),
            run: Some((r1, 1))
        }],
        "first the traffic step is asked which colour is live"
    );
    assert!(lifecycle(&ch).is_empty());
    let ch = h.see(&ch, wed(10, 6));
    assert_eq!(lifecycle(&ch), vec!["🚀 Deploying v1.2.0 to Staging..."]);
    assert_eq!(
        ch.actions,
        vec![Action::DeployIdle {
            run: r1,
            attempt: 1,
            env: st.clone(),
            colour: Colour::Blue,
            version: "v1.2.0".into()
        }]
    );
    assert_eq!(run_of(&ch, r1).phase, Phase::DeployingIdle);
    assert!(status_msg(&ch, r1).contains("deploying v1.2.0 to blue (idle); nothing is live yet"));

    let ch = h.result(r1, 1, Outcome::DeployIdle(Ok(())), wed(10, 7));
    assert_eq!(
        ch.actions,
        vec![Action::Verify {
            run: r1,
            attempt: 1,
            env: st.clone(),
            colour: Colour::Blue
        }]
    );
    assert_eq!(run_of(&ch, r1).phase, Phase::VerifyingIdle);

    // Verified. First deploy: no baseline, the thread says the latency trigger is skipped,
    // and the switch intent is written in the same Changes as the Switch action.
    let ch = h.result(
        r1,
        1,
        Outcome::Verify(Ok("healthy; 3 smoke tests passed".into())),
        wed(10, 8),
    );
    let run = run_of(&ch, r1);
    assert_eq!(run.phase, Phase::Switching);
    assert_eq!(run.switch_intents, 1);
    assert!(!run.switched);
    assert_eq!(
        ch.actions,
        vec![Action::Switch {
            run: r1,
            attempt: 1,
            env: st.clone(),
            to: Colour::Blue,
            from: None
        }]
    );
    let status = status_msg(&ch, r1);
    assert!(status.contains("first deploy"), "{status}");
    assert!(status.contains("latency trigger is skipped"), "{status}");
    assert!(ch
        .events
        .iter()
        .any(|e| matches!(e.what, What::SwitchIntent { .. })));
    assert!(lifecycle(&ch).is_empty());

    // Switched.
    let sw = t(25, 10, 9, 0);
    let ch = h.result(r1, 1, Outcome::Switch(Ok(())), sw);
    assert_eq!(
        lifecycle(&ch),
        vec!["✅ Deployment successful. Monitoring."]
    );
    assert_eq!(ch.timers, vec![(sw + secs(4), Timer::MonitorTick(r1, 1))]);
    let env = env_of(&ch, &st);
    assert_eq!(env.live, Some(Colour::Blue));
    assert_eq!(env.blue.as_deref(), Some("v1.2.0"));
    assert_eq!(env.previous, None);
    let run = run_of(&ch, r1);
    assert_eq!(run.phase, Phase::Monitoring);
    assert!(run.switched);
    assert_eq!(run.monitor.until, Some(sw + secs(20)));

    // Monitoring: passing checks every 4s until monitor.until.
    let (ch, end) = h.monitor(r1, ch, passes(5));
    assert_eq!(end, sw + secs(20));
    assert_eq!(run_of(&ch, r1).phase, Phase::Succeeded);
    assert_eq!(env_of(&ch, &st).active_run, None);
    assert!(
        ch.timers.is_empty(),
        "nothing to keep warm on a first deploy"
    );
    assert!(ch.actions.is_empty());
    assert!(has(
        &thread_msgs(&ch, r1),
        "✅ Run 1 stable: v1.2.0 is live on Staging (5 of 5 checks passed). <@alice>"
    ));
    assert!(status_msg(&ch, r1).contains("✅ stable: v1.2.0 live on blue"));
    assert!(
        h.e.runs().next().is_none(),
        "a finished run is no longer active"
    );

    let ch = h.cmd("carol", "/deploy status staging", wed(10, 30));
    let (text, private) = reply(&ch);
    assert!(!private);
    assert!(
        text.starts_with("Staging: v1.2.0 live on blue") && text.contains("unlocked"),
        "{text}"
    );

    // A second deploy goes to the other colour, with a baseline of the live one.
    let r2 = RunId(2);
    let ch = h.cmd("bob", "/deploy v1.3.0 staging", wed(11, 0));
    let reviewers = ch.posts[0].text.split("Reviewers:").nth(1).unwrap();
    assert!(reviewers.contains("<@alice>") && reviewers.contains("<@carol>"));
    assert!(!reviewers.contains("<@bob>"));
    let ch = h.approve_all(r2, "alice", wed(11, 1));
    let ch = h.see(&ch, wed(11, 1));
    assert_eq!(
        ch.actions,
        vec![Action::DeployIdle {
            run: r2,
            attempt: 1,
            env: st.clone(),
            colour: Colour::Green,
            version: "v1.3.0".into()
        }]
    );
    assert!(status_msg(&ch, r2).contains("blue stays live"));
    let ch = h.result(r2, 1, Outcome::DeployIdle(Ok(())), wed(11, 2));
    assert!(matches!(
        ch.actions.as_slice(),
        [Action::Verify {
            colour: Colour::Green,
            ..
        }]
    ));
    let ch = h.result(r2, 1, Outcome::Verify(Ok("ok".into())), wed(11, 3));
    assert_eq!(
        ch.actions,
        vec![Action::Baseline {
            run: r2,
            attempt: 1,
            env: st.clone(),
            colour: Colour::Blue
        }]
    );
    assert_eq!(run_of(&ch, r2).phase, Phase::Baseline);
    assert_eq!(run_of(&ch, r2).switch_intents, 0);
    let ch = h.result(r2, 1, Outcome::Baseline(data(300.0, 0.0, 0.08)), wed(11, 4));
    assert!(status_msg(&ch, r2)
        .contains("📏 baseline from blue: 300 requests, error rate 0.0%, p99 80 ms"));
    assert_eq!(run_of(&ch, r2).baseline_p99, Some(0.08));
    assert_eq!(run_of(&ch, r2).switch_intents, 1);
    assert_eq!(
        ch.actions,
        vec![Action::Switch {
            run: r2,
            attempt: 1,
            env: st.clone(),
            to: Colour::Green,
            from: Some(Colour::Blue)
        }]
    );
    let ch = h.result(r2, 1, Outcome::Switch(Ok(())), wed(11, 5));
    let env = env_of(&ch, &st);
    assert_eq!(env.live, Some(Colour::Green));
    assert_eq!(env.green.as_deref(), Some("v1.3.0"));
    assert_eq!(env.blue.as_deref(), Some("v1.2.0"));
    assert_eq!(env.previous.as_deref(), Some("v1.2.0"));
    let (ch, end) = h.monitor(r2, ch, passes(5));
    assert_eq!(run_of(&ch, r2).phase, Phase::Succeeded);
    let until = end + mins(10);
    assert_eq!(ch.timers, vec![(until, Timer::Teardown(st.clone()))]);
    assert_eq!(env_of(&ch, &st).warm_until, Some(until));
    assert!(status_msg(&ch, r2).contains("blue (v1.2.0) is idle, kept warm until"));

    let ch = h.cmd("carol", "/deploy status staging", wed(11, 10));
    let (text, _) = reply(&ch);
    assert!(
        text.starts_with("Staging: v1.3.0 live on green; blue idle with v1.2.0 (kept warm until"),
        "{text}"
    );

    // The kept-warm colour is torn down when its time is up, not before.
    assert!(nothing(
        &h.timer(Timer::Teardown(st.clone()), until - secs(1))
    ));
    let ch = h.timer(Timer::Teardown(st.clone()), until);
    assert_eq!(
        ch.actions,
        vec![Action::Teardown {
            env: st.clone(),
            colour: Colour::Blue
        }]
    );
    assert_eq!(env_of(&ch, &st).blue, None);
    assert_eq!(env_of(&ch, &st).warm_until, None);
}

#[test]
fn an_empty_checklist_deploys_at_once() {
    let mut qa = build::env("qa");
    qa.display_name = "QA".into();
    let mut h = H::new(build::rules(&[("alice", &["deployers"])], vec![qa]));
    let ch = h.cmd("alice", "/deploy 1a2b3c4 qa", wed(10, 0));
    assert!(reply(&ch).0.contains("(empty: deploying now)"));
    let ch = h.see(&ch, wed(10, 0));
    assert_eq!(lifecycle(&ch), vec!["🚀 Deploying 1a2b3c4 to QA..."]);
    assert!(matches!(
        ch.actions.as_slice(),
        [Action::DeployIdle { attempt: 1, .. }]
    ));
}
