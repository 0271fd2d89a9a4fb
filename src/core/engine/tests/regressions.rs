//! Regressions found while reviewing the engine.

use super::*;

#[test]
fn a_resumed_manual_rollback_leaves_no_previous_version_behind() {
    let mut h = H::demo();
    h.deploy_stable("alice", "bob", "v1.2.0", "staging", wed(10, 0));
    h.deploy_stable("bob", "alice", "v1.3.0", "staging", wed(11, 0));
    let ch = h.cmd("bob", "/rollback staging", wed(11, 5));
    h.drive(RunId(3), ch, wed(11, 6), Phase::Switching);
    let mut h = h.restart();
    h.resume(RunId(3), Some(Colour::Blue), wed(11, 7));
    let env = h.env(&staging());
    assert_eq!(
        env.previous, None,
        "a second /rollback must not redeploy the live version"
    );
    assert_eq!(env.warm_until, None);
    assert_eq!(env.live, Some(Colour::Blue));
}

#[test]
fn a_skipped_kept_warm_teardown_is_rearmed_when_the_run_ends() {
    let mut h = H::demo();
    h.deploy_stable("alice", "bob", "v1.2.0", "staging", wed(10, 0));
    let (_, end) = h.deploy_stable("bob", "alice", "v1.3.0", "staging", wed(11, 0));
    let until = end + mins(10);
    let id = h.request("alice", "v1.4.0", "staging", until - mins(1));
    let ch = h.timer(Timer::Teardown(staging()), until);
    assert!(ch.actions.is_empty(), "skipped while a run is active");
    let ch = h.react(
        "bob",
        &MsgKey::Checklist(id).to_string(),
        "x",
        true,
        until + mins(5),
    );
    assert_eq!(run_of(&ch, id).phase, Phase::Vetoed);
    assert!(ch
        .timers
        .iter()
        .any(|(_, t)| *t == Timer::Teardown(staging())));
}

#[test]
fn an_approval_after_the_expiry_does_not_start_the_deploy() {
    let mut h = H::demo();
    let id = h.request("alice", "v1.2.0", "staging", wed(10, 0));
    h.approve("bob", id, 0, wed(10, 1));
    let ch = h.approve("bob", id, 1, wed(14, 1));
    assert_eq!(run_of(&ch, id).phase, Phase::Expired);
    assert!(ch.actions.is_empty());
    assert!(ch
        .posts
        .iter()
        .any(|p| p.text.contains("the checklist of run 1 expired")));
}

#[test]
fn force_given_before_a_freeze_opens_passes_the_later_gates_and_is_announced() {
    let mut h = H::demo();
    let ch = h.cmd(
        "alice",
        "/deploy v1.2.0 prod --force \"hotfix\"",
        fri(16, 55),
    );
    assert!(!ch.runs.is_empty(), "{:?}", ch.reply);
    let id = ch.runs[0].id;
    let ch = h.approve_all(id, "bob", fri(17, 5));
    assert_eq!(run_of(&ch, id).phase, Phase::Observing);
    let announced: Vec<_> = ch
        .posts
        .iter()
        .filter(|p| p.room == Room::Announce)
        .collect();
    assert_eq!(announced.len(), 1);
    assert!(
        announced[0].text.contains("forced run 1")
            && announced[0].text.contains("when the checklist completed")
    );
    // bob's --force is stored too, but does not pass: he is not break-glass.
    let mut h = H::demo();
    let ch = h.cmd("bob", "/deploy v1.2.0 prod --force \"hotfix\"", fri(16, 55));
    let id = ch.runs[0].id;
    let ch = h.approve_all(id, "alice", fri(17, 5));
    assert_eq!(run_of(&ch, id).phase, Phase::Rejected);
}

#[test]
fn a_version_pattern_is_per_environment() {
    let mut rules = build::demo();
    rules.envs.get_mut(&staging()).unwrap().version_pattern = Some("release-*".into());
    let patterns = vec!["release-*".to_string()];
    let mut e = Engine::new(Arc::new(rules), "http://127.0.0.1:8080".into());
    e.observed(&staging(), LiveView::Seen(None), wed(9, 0));
    let parse = |t: &str| command::parse_with(t, &patterns).unwrap().unwrap();
    let ch = e.command(
        &user("alice"),
        parse("/deploy release-42 staging"),
        wed(10, 0),
    );
    assert_eq!(ch.runs.len(), 1, "{:?}", ch.reply);
    let ch = e.command(&user("alice"), parse("/deploy release-42 prod"), wed(10, 0));
    let r = ch.reply.unwrap();
    assert!(
        r.visibility.is_ephemeral()
            && r.text
                .contains("invalid version \"release-42\" for Production"),
        "{}",
        r.text
    );
    assert!(ch.runs.is_empty());
}

#[test]
fn a_first_deploy_beside_a_colour_greenlight_did_not_deploy_names_it_plainly() {
    // HAProxy says blue takes traffic, but greenlight never deployed anything here.
    let mut h = H::demo();
    let ch =
        h.e.observed(&staging(), LiveView::Seen(Some(Colour::Blue)), wed(9, 0));
    h.persist(ch);
    let (id, _) = h.deploy_stable("alice", "bob", "v1.2.0", "staging", wed(10, 0));
    let run = h.run(id).clone();
    assert_eq!((run.from, run.to), (Some(Colour::Blue), Colour::Green));
    let line = run.status.last().unwrap();
    assert!(
        line.contains("blue (a version greenlight did not deploy) is idle") && !line.contains("()"),
        "{line}"
    );
}

#[test]
fn an_approval_stands_while_any_of_its_emoji_remains() {
    let mut h = H::demo();
    let id = h.request("alice", "v1.2.0", "staging", wed(10, 0));
    let item = MsgKey::Item(id, 0).to_string();
    h.react("bob", &item, "white_check_mark", true, wed(10, 1));
    // 👍 as well: nothing visible changes, but it is remembered.
    let ch = h.react("bob", &item, "thumbsup::skin-tone-3", true, wed(10, 2));
    assert!(ch.posts.is_empty() && ch.runs.len() == 1);
    // ✅ removed: 👍 still approves.
    let ch = h.react("bob", &item, "white_check_mark", false, wed(10, 3));
    assert!(ch.posts.is_empty(), "{:?}", ch.posts);
    assert_eq!(h.run(id).checklist.items[0].approvers, vec![user("bob")]);
    // 👍 removed too: now the approval is withdrawn.
    let ch = h.react("bob", &item, "+1", false, wed(10, 4));
    assert!(
        ch.posts[0].text.starts_with("⬜ 1."),
        "{}",
        ch.posts[0].text
    );
    assert!(h.run(id).checklist.items[0].approvers.is_empty());
    // A record written before marks existed: any removal withdraws, as before.
    let mut legacy = h.run(id).clone();
    legacy.checklist.items[0].approvers = vec![user("bob")];
    legacy.checklist.items[0].marks.clear();
    let stored = serde_json::to_value(&legacy).unwrap();
    assert!(stored["checklist"]["items"][0].get("marks").is_none());
    let back: Run = serde_json::from_value(stored).unwrap();
    assert_eq!(back.checklist.items[0].approvers, vec![user("bob")]);
}

#[test]
fn a_refusal_is_said_to_the_reactor_once_per_reason() {
    let mut h = H::demo();
    let id = h.request("alice", "v1.2.0", "staging", wed(10, 0));
    let item = MsgKey::Item(id, 0).to_string();
    let mut said = Vec::new();
    for n in 0..5 {
        let ch = h.react("alice", &item, "white_check_mark", true, wed(10, n));
        said.extend(ch.posts.clone());
        h.react("alice", &item, "white_check_mark", false, wed(10, n));
    }
    assert_eq!(said.len(), 1, "{said:?}");
    assert_eq!(said[0].to, Some(user("alice")), "only alice sees it");
    assert!(said[0].text.contains("cannot approve their own run"));
}

#[test]
fn checks_keep_their_cadence_when_a_sample_is_slow() {
    // A -slow release makes each check's critical path slow: the next check is still due one
    // interval after the previous one started, not after its result came back.
    let mut h = H::demo();
    let (id, ch) = h.deploy_to_monitoring("alice", "bob", "v1.2.0", "staging", wed(10, 0));
    let (at, tick) = tick_in(&ch).unwrap();
    let ch = h.timer(tick, at);
    let attempt = match ch.actions.as_slice() {
        [Action::Sample { attempt, .. }] => *attempt,
        other => panic!("{other:?}"),
    };
    let interval = secs(4);
    // The result arrives 3 s after the check started.
    let ch = h.result(
        id,
        attempt,
        Outcome::Sample(healthy(), Some(Ok(()))),
        at + secs(3),
    );
    let next = tick_in(&ch).unwrap().0;
    assert_eq!(next, at + interval);
}

#[test]
fn a_critical_path_reported_on_its_own_rolls_back_and_has_the_last_word() {
    // A failing critical path arriving after the metrics passed rolls back at once.
    let (mut h, id, ch, _) = H::second_deploy_in(Phase::Monitoring);
    let (at, tick) = tick_in(&ch).unwrap();
    h.timer(tick, at);
    let attempt = h.run(id).attempt;
    h.result(id, attempt, Outcome::Measured(healthy()), at);
    let ch = h.result(
        id,
        attempt,
        Outcome::CriticalPath(Err("checkout answered 500".into())),
        at + secs(1),
    );
    assert_eq!(run_of(&ch, id).phase, Phase::RollingBack);
    assert!(has(
        &lifecycle(&ch),
        "core business flow broken: checkout answered 500"
    ));

    // When the window is over, the last check's critical path decides the end.
    let (mut h, id, mut ch, _) = H::second_deploy_in(Phase::Monitoring);
    let attempt = h.run(id).attempt;
    for _ in 0..5 {
        let (at, tick) = tick_in(&ch).unwrap();
        h.timer(tick, at);
        ch = h.result(id, attempt, Outcome::Measured(healthy()), at);
        if h.run(id).monitor.awaiting_critical_path {
            break;
        }
        h.result(id, attempt, Outcome::CriticalPath(Ok(())), at);
    }
    assert!(h.run(id).monitor.awaiting_critical_path);
    assert_eq!(h.run(id).phase, Phase::Monitoring);
    let ch = h.result(id, attempt, Outcome::CriticalPath(Ok(())), wed(12, 0));
    assert_eq!(run_of(&ch, id).phase, Phase::Succeeded);
}

#[test]
fn a_critical_path_that_answers_before_the_metrics_does_not_stall_the_end() {
    let (mut h, id, mut ch, _) = H::second_deploy_in(Phase::Monitoring);
    let attempt = h.run(id).attempt;
    for _ in 0..10 {
        let Some((at, tick)) = tick_in(&ch) else {
            break;
        };
        h.timer(tick, at);
        // The critical path is the faster of the two here.
        h.result(id, attempt, Outcome::CriticalPath(Ok(())), at);
        ch = h.result(id, attempt, Outcome::Measured(healthy()), at);
    }
    assert_eq!(h.run(id).phase, Phase::Succeeded);
    assert!(!h.run(id).monitor.awaiting_critical_path);
}
