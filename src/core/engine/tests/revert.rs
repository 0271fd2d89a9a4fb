//! A revert proposed after a rollback: asked once, answered into the thread and the incident
//! channel, asked again after a restart until answered, never when the environment does not
//! ask for it.

use super::*;

fn reverting() -> H {
    let mut rules = build::demo();
    rules.envs.get_mut(&staging()).unwrap().revert = true;
    H::new(rules)
}

fn revert_action(id: RunId) -> Action {
    Action::Revert {
        run: id,
        env: staging(),
        bad: "v1.3.0".into(),
        good: "v1.2.0".into(),
    }
}

fn reverts(ch: &Changes) -> Vec<&Action> {
    ch.actions
        .iter()
        .filter(|a| matches!(a, Action::Revert { .. }))
        .collect()
}

#[test]
fn an_automatic_rollback_asks_for_one_revert_and_links_it() {
    let (mut h, id, _, now) = H::second_deploy_with(reverting(), Phase::RollingBack);
    let ch = h.result(id, 1, Outcome::SwitchBack(Ok(())), now);
    assert_eq!(run_of(&ch, id).phase, Phase::RolledBack);
    assert_eq!(reverts(&ch), vec![&revert_action(id)]);
    let pending = env_of(&ch, &staging()).revert.clone().expect("pending");
    assert_eq!(
        (pending.bad.as_str(), pending.good.as_str()),
        ("v1.3.0", "v1.2.0")
    );
    assert!(thread_msgs(&ch, id)
        .iter()
        .any(|m| m.contains("Proposing a revert of v1.3.0's changes (back to v1.2.0)")));

    let answer = Outcome::Reverted(Ok(super::super::RevertLink {
        name: "pull request #7".into(),
        url: "https://github.example/o/r/pull/7".into(),
    }));
    let ch = h.result(id, 0, answer.clone(), now + secs(5));
    let text = "↩️ Revert of v1.3.0 (back to v1.2.0) is ready for review: pull request #7 https://github.example/o/r/pull/7";
    assert_eq!(thread_msgs(&ch, id), vec![text]);
    let alerts = in_room(&ch, Room::Incidents);
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].text.contains(text), "{}", alerts[0].text);
    assert!(alerts[0].text.contains("http://127.0.0.1:8080/runs/2"));
    assert_eq!(env_of(&ch, &staging()).revert, None);
    assert!(ch
        .events
        .iter()
        .any(|e| e.run == id && e.what == What::Revert(text.into())));
    // A second answer for the same run (a duplicate) changes nothing.
    let ch = h.result(id, 0, answer, now + secs(6));
    assert!(ch.posts.is_empty() && ch.envs.is_empty());
}

#[test]
fn a_revert_that_cannot_be_opened_says_why_and_is_not_retried() {
    let (mut h, id, _, now) = H::second_deploy_with(reverting(), Phase::RollingBack);
    h.result(id, 1, Outcome::SwitchBack(Ok(())), now);
    let why = "GitHub: app/main.rs changed on main since v1.3.0 (a conflict)";
    let ch = h.result(id, 0, Outcome::Reverted(Err(why.into())), now + secs(5));
    let msg = thread_msgs(&ch, id)[0];
    assert!(
        msg.contains(why) && msg.contains("greenlight will not retry"),
        "{msg}"
    );
    assert_eq!(in_room(&ch, Room::Incidents).len(), 1);
    assert!(reverts(&ch).is_empty());
    assert_eq!(env_of(&ch, &staging()).revert, None);
    let mut h2 = h.restart();
    assert!(reverts(&h2.e.restart_reverts(now + secs(9))).is_empty());
}

#[test]
fn a_restart_before_the_answer_asks_again_once() {
    let (mut h, id, _, now) = H::second_deploy_with(reverting(), Phase::RollingBack);
    h.result(id, 1, Outcome::SwitchBack(Ok(())), now);
    // Killed before the revert step answered.
    let mut h2 = h.restart();
    let ch = h2.e.restart_reverts(now + secs(30));
    let ch = h2.persist(ch);
    assert_eq!(reverts(&ch), vec![&revert_action(id)]);
    assert!(thread_msgs(&ch, id)[0].contains("looking for the revert of v1.3.0"));
    let (run, attempt, outcome) = answer_ok(&revert_action(id));
    let ch = h2.result(run, attempt, outcome, now + secs(31));
    assert_eq!(in_room(&ch, Room::Incidents).len(), 1);
    // Answered: a later restart asks nothing.
    let mut h3 = h2.restart();
    assert!(reverts(&h3.e.restart_reverts(now + secs(60))).is_empty());
}

#[test]
fn no_revert_unless_the_environment_asks_and_none_for_a_first_deploy() {
    let (mut h, id, _, now) = H::second_deploy_in(Phase::RollingBack);
    let ch = h.result(id, 1, Outcome::SwitchBack(Ok(())), now);
    assert_eq!(run_of(&ch, id).phase, Phase::RolledBack);
    assert!(reverts(&ch).is_empty());
    assert_eq!(env_of(&ch, &staging()).revert, None);
}

#[test]
fn a_manual_rollback_reverts_the_release_it_rolled_back() {
    let mut h = reverting();
    h.deploy_stable("alice", "bob", "v1.2.0", "staging", wed(10, 0));
    h.deploy_stable("bob", "alice", "v1.3.0", "staging", wed(11, 0));
    let now = wed(11, 5);
    h.cmd("bob", "/rollback staging checkout is slow", now);
    let r3 = RunId(3);
    h.result(r3, 1, Outcome::Verify(Ok("ok".into())), now + mins(1));
    let ch = h.result(r3, 1, Outcome::Switch(Ok(())), now + mins(2));
    assert_eq!(run_of(&ch, r3).phase, Phase::RolledBack);
    assert_eq!(
        reverts(&ch),
        vec![&Action::Revert {
            run: r3,
            env: staging(),
            bad: "v1.3.0".into(),
            good: "v1.2.0".into(),
        }]
    );
}
