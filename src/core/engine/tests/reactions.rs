//! Checklist reactions: who counts, quorum, item groups, vetoes, a closed checklist.

use super::*;

#[derive(Debug)]
enum Expect {
    /// The item's line is edited to this text.
    Line(usize, &'static str),
    /// A thread reply says why the reaction does not count.
    NotCounted(&'static str),
    /// Nothing changes and nothing is said.
    Silent,
    /// Nothing is said, but the run keeps a note (which emoji, which refusal was told).
    Noted,
    /// The run is vetoed.
    Vetoed,
    /// The run is over: only a reply to the reactor.
    Over,
}

#[test]
fn reactions_count_only_from_eligible_reviewers_who_did_not_request() {
    let mut h = H::demo();
    let id = h.request("alice", "v1.2.0", "staging", wed(10, 0));
    let parent = MsgKey::Checklist(id).to_string();
    let item = |i| MsgKey::Item(id, i).to_string();
    let ci = "CI passed: build, lint, test green";
    let rows: Vec<(&str, String, &str, bool, Expect)> = vec![
        (
            "alice",
            item(0),
            "white_check_mark",
            true,
            Expect::NotCounted("the requester cannot approve their own run"),
        ),
        (
            "alice",
            item(1),
            "+1",
            true,
            Expect::NotCounted("the requester cannot approve their own run"),
        ),
        // The same refusal again is not repeated: it was told once.
        ("alice", item(1), "white_check_mark", true, Expect::Noted),
        (
            "mallory",
            item(0),
            "white_check_mark",
            true,
            Expect::NotCounted("it needs a member of reviewers"),
        ),
        (
            "bob",
            parent.clone(),
            "white_check_mark",
            true,
            Expect::NotCounted("approve each item's reply in the thread"),
        ),
        ("bob", item(0), "tada", true, Expect::Silent),
        (
            "bob",
            "run-1/status".into(),
            "white_check_mark",
            true,
            Expect::Silent,
        ),
        (
            "bob",
            "hello".into(),
            "white_check_mark",
            true,
            Expect::Silent,
        ),
        (
            "carol",
            item(0),
            "white_check_mark",
            true,
            Expect::Line(
                0,
                "✅ 1. CI passed: build, lint, test green (1/1 from reviewers by carol)",
            ),
        ),
        // 👍 as well, then ✅ removed: 👍 still approves (an alias never withdraws).
        ("carol", item(0), "thumbsup", true, Expect::Noted),
        ("carol", item(0), "white_check_mark", false, Expect::Noted),
        (
            "carol",
            item(0),
            "+1",
            false,
            Expect::Line(
                0,
                "⬜ 1. CI passed: build, lint, test green (0/1 from reviewers)",
            ),
        ),
        ("bob", item(0), "white_check_mark", false, Expect::Silent),
        (
            "bob",
            item(0),
            "+1::skin-tone-3",
            true,
            Expect::Line(
                0,
                "✅ 1. CI passed: build, lint, test green (1/1 from reviewers by bob)",
            ),
        ),
        (
            "alice",
            parent.clone(),
            "x",
            true,
            Expect::NotCounted("the requester cannot veto their own run"),
        ),
        (
            "mallory",
            item(1),
            "x",
            true,
            Expect::NotCounted("only members of reviewers may veto here"),
        ),
        ("bob", item(1), "x", false, Expect::Silent),
        ("bob", item(1), "x", true, Expect::Vetoed),
        ("carol", item(1), "white_check_mark", true, Expect::Over),
        ("carol", item(1), "white_check_mark", false, Expect::Silent),
    ];
    for (n, (who, key, emoji, added, expect)) in rows.into_iter().enumerate() {
        let now = wed(10, 1) + mins(n as i64);
        let ch = h.react(who, &key, emoji, added, now);
        let ctx = format!("row {n}: {who} {emoji} on {key} (added {added}) -> {expect:?}");
        match expect {
            Expect::Line(i, text) => {
                assert_eq!(ch.posts.len(), 1, "{ctx}");
                let p = &ch.posts[0];
                assert_eq!(p.key, Some(MsgKey::Item(id, i)), "{ctx}");
                assert_eq!(p.thread, Some(MsgKey::Checklist(id)), "{ctx}");
                assert!(p.edit, "{ctx}");
                assert_eq!(p.text, text, "{ctx}");
                assert_eq!(run_of(&ch, id).phase, Phase::AwaitingChecklist, "{ctx}");
            }
            Expect::NotCounted(why) => {
                let msgs = thread_msgs(&ch, id);
                assert_eq!(msgs.len(), 1, "{ctx}: {msgs:?}");
                assert!(msgs[0].contains(why), "{ctx}: {}", msgs[0]);
                assert!(msgs[0].starts_with(who), "{ctx}: names the reactor");
                assert_eq!(run_of(&ch, id).phase, Phase::AwaitingChecklist, "{ctx}");
                assert!(ch.actions.is_empty(), "{ctx}");
            }
            Expect::Silent => assert!(nothing(&ch), "{ctx}: {ch:#?}"),
            Expect::Noted => {
                assert!(
                    ch.posts.is_empty() && ch.actions.is_empty(),
                    "{ctx}: {ch:#?}"
                );
                assert_eq!(run_of(&ch, id).phase, Phase::AwaitingChecklist, "{ctx}");
            }
            Expect::Vetoed => {
                assert_eq!(run_of(&ch, id).phase, Phase::Vetoed, "{ctx}");
                assert_eq!(env_of(&ch, &staging()).active_run, None, "{ctx}");
                let msgs = thread_msgs(&ch, id);
                assert_eq!(msgs.len(), 1, "{ctx}");
                assert!(msgs[0].starts_with("🛑 Run 1 vetoed by <@bob>"), "{ctx}");
                assert!(
                    msgs[0].contains("<@alice>"),
                    "{ctx}: mentions the requester"
                );
                assert!(ch.actions.is_empty(), "{ctx}");
            }
            Expect::Over => {
                assert!(ch.posts.is_empty() && ch.runs.is_empty(), "{ctx}");
                assert!(reply(&ch).0.contains("run 1 is over"), "{ctx}");
            }
        }
    }
    assert_eq!(h.run(id).checklist.items[0].text, ci);
    assert_eq!(h.run(id).outcome.as_deref(), Some("vetoed by bob"));
    // Deploys are possible again once the veto ended the run.
    h.request("alice", "v1.2.1", "staging", wed(12, 0));
}

#[test]
fn vetoes_from_eligible_reviewers_on_the_parent_or_an_item_are_final() {
    // (who, on the parent?, counts)
    let rows = [
        ("bob", true, true),
        ("bob", false, true),
        ("carol", true, true),
        ("carol", false, true),
        ("alice", true, false),
        ("mallory", true, false),
    ];
    for (who, on_parent, counts) in rows {
        let mut h = H::demo();
        let id = h.request("alice", "v1.2.0", "staging", wed(10, 0));
        h.approve("bob", id, 0, wed(10, 1));
        let key = if on_parent {
            MsgKey::Checklist(id).to_string()
        } else {
            MsgKey::Item(id, 0).to_string()
        };
        let ch = h.react(who, &key, "x", true, wed(10, 2));
        let phase = run_of(&ch, id).phase;
        assert_eq!(
            phase == Phase::Vetoed,
            counts,
            "{who} on parent={on_parent}"
        );
        if counts {
            // Final: a later approval of the remaining item does nothing but say so.
            let ch = h.approve("carol", id, 1, wed(10, 3));
            assert!(ch.actions.is_empty());
            assert!(reply(&ch).0.contains("is over"));
        }
    }
}

#[test]
fn a_closed_checklist_says_so_when_someone_reacts() {
    let mut h = H::demo();
    let id = h.request("alice", "v1.2.0", "staging", wed(10, 0));
    let ch = h.approve_all(id, "bob", wed(10, 1));
    h.see(&ch, wed(10, 1));
    let ch = h.approve("carol", id, 0, wed(10, 2));
    let msgs = thread_msgs(&ch, id);
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].contains("the checklist of run 1 is closed (the run is deploying idle)"));
    // Only the note that carol was told changed: no step, no new phase.
    assert!(ch.actions.is_empty());
    assert_eq!(run_of(&ch, id).phase, Phase::DeployingIdle);
    assert_eq!(run_of(&ch, id).told.len(), 1);
    // Withdrawing after the checklist closed changes nothing.
    assert!(nothing(&h.react(
        "bob",
        &MsgKey::Item(id, 0).to_string(),
        "white_check_mark",
        false,
        wed(10, 3)
    )));
}

#[test]
fn quorum_and_item_groups_from_an_inline_config() {
    let mut qa = build::env("qa");
    qa.display_name = "QA".into();
    qa.checklist = vec![
        build::item("Two eyes", "reviewers", 2),
        build::item("Migrations reviewed", "dba", 1),
    ];
    let mut h = H::new(build::rules(
        &[
            ("alice", &["deployers", "reviewers"]),
            ("bob", &["deployers", "reviewers"]),
            ("carol", &["reviewers"]),
            ("dave", &["dba"]),
        ],
        vec![qa],
    ));
    let id = h.request("alice", "v2.0.0", "qa", wed(10, 0));
    let ch = h.approve("bob", id, 0, wed(10, 1));
    assert_eq!(
        ch.posts[0].text,
        "⬜ 1. Two eyes (1/2 from reviewers by bob)"
    );
    let ch = h.approve("dave", id, 0, wed(10, 2));
    assert!(thread_msgs(&ch, id)[0].contains("it needs a member of reviewers"));
    let ch = h.approve("carol", id, 1, wed(10, 3));
    assert!(thread_msgs(&ch, id)[0].contains("it needs a member of dba"));
    let ch = h.approve("carol", id, 0, wed(10, 4));
    assert_eq!(
        ch.posts[0].text,
        "✅ 1. Two eyes (2/2 from reviewers by bob, carol)"
    );
    assert!(ch.actions.is_empty(), "the dba item is still open");
    let ch = h.approve("dave", id, 1, wed(10, 5));
    assert!(matches!(ch.actions.as_slice(), [Action::Observe { .. }]));
    assert_eq!(
        h.run(id).checklist.approvers(),
        vec![user("bob"), user("carol"), user("dave")]
    );
}
