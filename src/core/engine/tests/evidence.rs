//! Checklist items ticked by CI evidence: each verdict, re-reading until green or the expiry,
//! a person's ✅ that does not count, the break-glass override, and a restart.

use super::*;
use crate::core::evidence::Verdict;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// The demo, with staging's first item ticked by CI (`build` and `test` required).
fn h_ci() -> H {
    let mut rules = build::demo();
    let staging = rules.envs.get_mut(&staging()).unwrap();
    staging.checklist[0] = build::ci_item("CI passed", &["build", "test"]);
    H::new(rules)
}

fn green() -> Verdict {
    Verdict::Green {
        checks: vec!["build".into(), "test".into()],
        sha: SHA.into(),
    }
}
fn red() -> Verdict {
    Verdict::Red {
        failing: vec![("test".into(), "failure".into())],
        sha: SHA.into(),
    }
}
fn pending() -> Verdict {
    Verdict::Pending {
        waiting: vec!["test".into()],
        sha: SHA.into(),
    }
}

/// The one evidence reading asked for in `ch`: (item, version, attempt).
fn asked(ch: &Changes) -> (usize, String, u32) {
    let found: Vec<_> = ch
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CheckEvidence {
                item,
                version,
                attempt,
                ..
            } => Some((*item, version.clone(), *attempt)),
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), 1, "one reading asked for: {:#?}", ch.actions);
    found[0].clone()
}

/// The latest text of item `i`'s line in `ch`.
fn item_text(ch: &Changes, id: RunId, i: usize) -> String {
    ch.posts
        .iter()
        .rev()
        .find(|p| p.key == Some(MsgKey::Item(id, i)))
        .map(|p| p.text.clone())
        .unwrap_or_else(|| panic!("no line of item {i} in {:#?}", ch.posts))
}

fn verdict(h: &mut H, id: RunId, v: Verdict, now: DateTime<Utc>) -> Changes {
    h.result(
        id,
        0,
        Outcome::Evidence {
            item: 0,
            verdict: v,
        },
        now,
    )
}

fn recheck_at(ch: &Changes, id: RunId) -> Option<DateTime<Utc>> {
    ch.timers
        .iter()
        .find(|(_, t)| *t == Timer::Evidence(id, 0))
        .map(|(at, _)| *at)
}

#[test]
fn green_ci_ticks_the_item_by_itself_naming_each_check() {
    let mut h = h_ci();
    let now = wed(10, 0);
    let ch = h.cmd("carol", "/deploy why-not v1.2.0 staging", now);
    assert!(
        reply(&ch).0.contains("1 of them ticked by green CI"),
        "{}",
        reply(&ch).0
    );
    // The checklist opens with the item checking, and one reading asked for.
    let ch = h.cmd("alice", "/deploy v1.2.0 staging", now);
    let id = RunId(1);
    assert_eq!(asked(&ch), (0, "v1.2.0".into(), 0));
    assert_eq!(
        item_text(&ch, id, 0),
        "⏳ 1. CI passed: checking CI for v1.2.0…"
    );

    // Green: ticked, the line and the audit log name each check and the commit.
    let ch = verdict(&mut h, id, green(), now + secs(5));
    assert_eq!(
        item_text(&ch, id, 0),
        "✅ 1. CI passed: CI for v1.2.0 is green at 0123456: build, test"
    );
    assert!(ch.events.iter().any(|e| e.what
        == What::Evidence {
            item: 0,
            verdict: "green at 0123456: build, test".into()
        }
        && e.who.is_none()));
    assert!(recheck_at(&ch, id).is_none(), "green is not read again");
    assert!(h.run(id).checklist.items[0].done());
    assert_eq!(h.run(id).phase, Phase::AwaitingChecklist);
    // The other item is a person's: once approved, the deploy starts.
    let ch = h.approve("bob", id, 1, now + mins(1));
    assert!(matches!(
        ch.actions.as_slice(),
        [Action::Observe { run: Some(_), .. }]
    ));
    // A late reading changes nothing.
    let ch = verdict(&mut h, id, red(), now + mins(2));
    assert!(nothing(&ch), "{ch:#?}");
}

#[test]
fn green_after_the_people_approved_completes_the_checklist() {
    let mut h = h_ci();
    let now = wed(10, 0);
    let id = h.request("alice", "v1.2.0", "staging", now);
    let ch = h.approve("bob", id, 1, now);
    assert!(ch.actions.is_empty(), "CI has not answered yet");
    let ch = verdict(&mut h, id, green(), now + secs(3));
    assert!(ch.events.iter().any(|e| e.what == What::ChecklistComplete));
    assert!(matches!(
        ch.actions.as_slice(),
        [Action::Observe { run: Some(_), .. }]
    ));
}

#[test]
fn red_missing_and_unavailable_say_why_and_never_tick() {
    let cases: Vec<(Verdict, &str)> = vec![
        (
            red(),
            "⛔ 1. CI passed: CI for v1.2.0 is red at 0123456: test failure; a ✅ does not tick it",
        ),
        (
            Verdict::Missing {
                why: "no checks or statuses report on commit 0123456".into(),
            },
            "⛔ 1. CI passed: no CI evidence for v1.2.0: no checks or statuses report on commit 0123456",
        ),
        (
            Verdict::Unavailable {
                why: "GitHub: 503 down (after 4 tries)".into(),
            },
            "⚠️ 1. CI passed: CI for v1.2.0 could not be read: GitHub: 503 down (after 4 tries)",
        ),
    ];
    for (v, line) in cases {
        let mut h = h_ci();
        let now = wed(10, 0);
        let id = h.request("alice", "v1.2.0", "staging", now);
        let ch = verdict(&mut h, id, v.clone(), now + secs(2));
        let text = item_text(&ch, id, 0);
        assert!(text.starts_with(line), "{text}");
        assert!(text.contains("read again every 30s"), "{text}");
        assert_eq!(recheck_at(&ch, id), Some(now + secs(32)), "{v:?}");
        assert!(!h.run(id).checklist.items[0].done());

        // A reviewer's ✅ does not count, and says why (to them).
        let ch = h.approve("bob", id, 0, now + mins(1));
        let why = thread_msgs(&ch, id);
        assert!(
            has(
                &why,
                "bob's approval of \"CI passed\" does not count: CI evidence ticks this item by itself; break-glass can override it with /deploy override 1 1 \"<reason>\""
            ),
            "{why:?}"
        );
        assert!(h.run(id).checklist.items[0].approvers.is_empty());
        // Even with the other item approved, nothing deploys.
        let ch = h.approve("carol", id, 1, now + mins(1));
        assert!(ch.actions.is_empty());
        assert_eq!(h.run(id).phase, Phase::AwaitingChecklist);

        // The same verdict again records nothing new, and is read again.
        let ch = h.timer(Timer::Evidence(id, 0), now + secs(32));
        assert_eq!(asked(&ch).0, 0);
        let ch = verdict(&mut h, id, v, now + secs(33));
        assert!(ch.events.is_empty() && ch.posts.is_empty(), "{ch:#?}");
        assert_eq!(recheck_at(&ch, id), Some(now + secs(63)));
    }
}

#[test]
fn pending_is_read_again_until_green_or_the_expiry() {
    let mut h = h_ci();
    let now = wed(10, 0);
    let id = h.request("alice", "v1.2.0", "staging", now);
    h.approve("bob", id, 1, now);
    let ch = verdict(&mut h, id, pending(), now + secs(1));
    assert!(
        item_text(&ch, id, 0).contains("pending at 0123456: waiting for test"),
        "{}",
        item_text(&ch, id, 0)
    );
    let at = recheck_at(&ch, id).expect("read again");
    assert_eq!(at, now + secs(31));
    let ch = h.timer(Timer::Evidence(id, 0), at);
    assert_eq!(asked(&ch), (0, "v1.2.0".into(), 0));
    let ch = verdict(&mut h, id, green(), at + secs(1));
    assert!(matches!(
        ch.actions.as_slice(),
        [Action::Observe { run: Some(_), .. }]
    ));

    // Near the expiry, no re-reading is armed past it; the expiry ends the run.
    let mut h = h_ci();
    let id = h.request("alice", "v1.2.0", "staging", now);
    let late = now + Duration::hours(4) - secs(10);
    let ch = verdict(&mut h, id, pending(), late);
    assert_eq!(recheck_at(&ch, id), None);
    // A re-reading timer that fires after the expiry expires the run, asking nothing.
    let ch = h.timer(Timer::Evidence(id, 0), now + Duration::hours(4));
    assert_eq!(run_of(&ch, id).phase, Phase::Expired);
    assert!(ch.actions.is_empty());
}

#[test]
fn break_glass_overrides_with_a_reason_audited_and_announced() {
    let mut h = h_ci();
    let now = wed(10, 0);
    let id = h.request("bob", "v1.2.0", "staging", now);
    verdict(&mut h, id, red(), now + secs(1));
    h.approve("carol", id, 1, now + secs(2));

    let refusals = [
        (
            "carol",
            "/deploy override 1 1 \"trust me\"",
            "only members of break-glass",
        ),
        (
            "alice",
            "/deploy override 1 2 \"x\"",
            "is not ticked by evidence",
        ),
        ("alice", "/deploy override 1 3 \"x\"", "has no item 3"),
        ("alice", "/deploy override 9 1 \"x\"", "9"),
    ];
    for (who, cmd, fragment) in refusals {
        let ch = h.cmd(who, cmd, now + secs(3));
        let (text, private) = reply(&ch);
        assert!(private && text.contains(fragment), "{cmd}: {text}");
        assert!(ch.events.is_empty(), "{cmd}");
    }

    let ch = h.cmd(
        "alice",
        "/deploy override 1 1 \"flaky runner, tested by hand: INC-7\"",
        now + mins(1),
    );
    let (text, private) = reply(&ch);
    assert!(!private, "{text}");
    let ev = ch
        .events
        .iter()
        .find(|e| matches!(e.what, What::EvidenceOverridden { .. }))
        .expect("audited");
    assert_eq!(ev.who, Some(user("alice")));
    assert_eq!(
        ev.what.to_string(),
        "break-glass override of item 1: flaky runner, tested by hand: INC-7"
    );
    let said = thread_msgs(&ch, id);
    assert!(
        has(
            &said,
            "Break-glass: <@alice> ticked item 1 \"CI passed\" of run 1"
        ) && has(&said, "CI was red at 0123456: test failure")
            && has(&said, "Reason: flaky runner"),
        "{said:?}"
    );
    assert_eq!(in_room(&ch, Room::Announce).len(), 1);
    assert!(item_text(&ch, id, 0).starts_with("✅ 1. CI passed: overridden by alice (break-glass)"));
    // The checklist is complete: the deploy starts.
    assert!(ch
        .actions
        .iter()
        .any(|a| matches!(a, Action::Observe { .. })));
    // Too late for a second one.
    let ch = h.cmd("alice", "/deploy override 1 1 \"again\"", now + mins(2));
    assert!(reply(&ch).1);
}

#[test]
fn the_requester_cannot_override_their_own_run() {
    let mut h = h_ci();
    let now = wed(10, 0);
    let id = h.request("alice", "v1.2.0", "staging", now);
    verdict(&mut h, id, red(), now);
    let ch = h.cmd("alice", "/deploy override 1 1 \"mine\"", now);
    let (text, private) = reply(&ch);
    assert!(
        private && text.contains("cannot tick their own run"),
        "{text}"
    );
    assert!(h.run(id).checklist.items[0]
        .evidence
        .as_ref()
        .unwrap()
        .overridden
        .is_none());
}

#[test]
fn a_restart_reads_unresolved_evidence_again() {
    let mut h = h_ci();
    let now = wed(10, 0);
    let id = h.request("alice", "v1.2.0", "staging", now);
    verdict(&mut h, id, pending(), now + secs(1));
    let mut h2 = h.restart();
    let ch = h2.resume(id, None, now + mins(5));
    assert_eq!(asked(&ch), (0, "v1.2.0".into(), 0));
    let ch = verdict(&mut h2, id, green(), now + mins(6));
    assert!(item_text(&ch, id, 0).starts_with("✅ 1."));

    // Green before the crash: nothing to read again.
    let mut h3 = h2.restart();
    let ch = h3.resume(id, None, now + mins(7));
    assert!(!ch
        .actions
        .iter()
        .any(|a| matches!(a, Action::CheckEvidence { .. })));
}
