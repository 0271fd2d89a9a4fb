//! Routing without the binary: a step's posts and answer -> what each platform gets.

use super::*;
use crate::core::engine::Reply;
use crate::core::message::MsgKey;
use crate::core::message::Visibility;
use crate::core::EnvName;
use std::sync::Arc;

const CONFIG: &str = r#"
[users.alice]
groups = ["deployers", "reviewers"]
slack = "U01ALICE"
discord = "111"
[users.bob]
groups = ["reviewers"]
[environments.prod]
slack_channel = "C-DEPLOYS"
slack_incident_channel = "C-INCIDENTS"
discord_channel = "D-DEPLOYS"
[environments.prod.deploy]
driver = "local"
"#;

fn cfg() -> Config {
    crate::config::parse(CONFIG, &|_| None).unwrap()
}

fn all_platforms() -> Platforms {
    Platforms {
        local: true,
        slack: Some(Arc::new(tokio::sync::Notify::new())),
        discord: Some(Arc::new(tokio::sync::Notify::new())),
    }
}

fn prod() -> EnvName {
    EnvName::new("prod")
}

fn with_posts(posts: Vec<Post>) -> Changes {
    Changes {
        posts,
        ..Default::default()
    }
}

/// (platform, channel, text) of every outbox entry.
fn outbox(d: &[Delivery<'_>]) -> Vec<(Platform, String, String)> {
    d.iter()
        .filter_map(|d| match d {
            Delivery::Outbox(e) => Some((e.platform, e.channel.clone(), e.text.clone())),
            _ => None,
        })
        .collect()
}

fn locals(d: &[Delivery<'_>]) -> usize {
    d.iter().filter(|d| matches!(d, Delivery::Local(_))).count()
}

#[test]
fn a_lifecycle_post_goes_to_every_active_platform_with_its_mentions() {
    let cfg = cfg();
    let ch = with_posts(vec![Post::top(
        &prod(),
        Room::Deploys,
        "<@alice> and <@bob>",
    )]);
    let d = route(&cfg, &all_platforms(), &ch, None, &|_| None);
    assert_eq!(locals(&d), 1);
    assert_eq!(
        outbox(&d),
        vec![
            (
                Platform::Discord,
                "D-DEPLOYS".into(),
                "<@111> and @bob".into()
            ),
            (
                Platform::Slack,
                "C-DEPLOYS".into(),
                "<@U01ALICE> and @bob".into()
            ),
        ]
    );
    // Only the active platforms.
    let only_local = Platforms {
        local: true,
        ..Default::default()
    };
    let d = route(&cfg, &only_local, &ch, None, &|_| None);
    assert_eq!((locals(&d), outbox(&d).len()), (1, 0));
}

#[test]
fn a_runs_thread_stays_on_the_platform_its_command_came_from() {
    let cfg = cfg();
    let run = RunId(7);
    let mut item = Post::top(&prod(), Room::Deploys, "CI passed").keyed(MsgKey::Item(run, 0));
    item.thread = Some(MsgKey::Checklist(run));
    let parent = Post::top(&prod(), Room::Deploys, "checklist").keyed(MsgKey::Checklist(run));
    let ch = with_posts(vec![parent, item]);
    let from_slack = |_| Some(Platform::Slack);
    let d = route(&cfg, &all_platforms(), &ch, None, &from_slack);
    assert_eq!(locals(&d), 0);
    let entries: Vec<&OutboxEntry> = d
        .iter()
        .filter_map(|d| match d {
            Delivery::Outbox(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|e| e.platform == Platform::Slack));
    // Only a checklist item carries the Approve / Veto buttons.
    assert!(!entries[0].buttons);
    assert!(entries[1].buttons);
    assert_eq!(entries[1].thread_key.as_deref(), Some("run-7/checklist"));
    let from_local = |_| Some(Platform::Local);
    let d = route(&cfg, &all_platforms(), &ch, None, &from_local);
    assert_eq!((locals(&d), outbox(&d).len()), (2, 0));
}

#[test]
fn incidents_fall_back_per_platform_and_a_private_post_needs_a_slack_id() {
    let cfg = cfg();
    let incident = Post::top(&prod(), Room::Incidents, "rolled back");
    let mut private = Post::top(&prod(), Room::Deploys, "not yours to approve");
    private.to = Some(UserId::new("bob"));
    let ch = with_posts(vec![incident, private]);
    let d = route(&cfg, &all_platforms(), &ch, None, &|_| None);
    assert_eq!(
        outbox(&d),
        vec![
            (Platform::Discord, "D-DEPLOYS".into(), "rolled back".into()),
            (Platform::Slack, "C-INCIDENTS".into(), "rolled back".into()),
            // bob has no Slack id: Discord only (there it is posted in the thread).
            (
                Platform::Discord,
                "D-DEPLOYS".into(),
                "not yours to approve".into()
            ),
        ]
    );
    assert_eq!(locals(&d), 2);
}

#[test]
fn an_answer_goes_back_to_its_origin() {
    let cfg = cfg();
    let ch = Changes {
        reply: Some(Reply {
            text: "no, <@alice>".into(),
            visibility: Visibility::Ephemeral,
        }),
        ..Default::default()
    };
    let local = Origin::Local {
        user: UserId::new("alice"),
        channel: "deploys".into(),
        thread_id: Some("3".into()),
    };
    let d = route(&cfg, &all_platforms(), &ch, Some(&local), &|_| None);
    assert_eq!(
        d,
        vec![Delivery::LocalReply {
            channel: "deploys".into(),
            thread_id: Some("3".into()),
            text: "no, <@alice>".into(),
            visible_to: Some("alice".into()),
        }]
    );
    // A Slack click without a response URL: an ephemeral message in the clicked thread.
    let slack = Origin::Slack {
        channel: "C-DEPLOYS".into(),
        response_url: String::new(),
        user: "U01ALICE".into(),
        thread_key: Some("run-7/checklist".into()),
    };
    let d = route(&cfg, &all_platforms(), &ch, Some(&slack), &|_| None);
    let Delivery::Outbox(e) = &d[0] else {
        panic!("{d:?}")
    };
    assert_eq!(e.text, "no, <@U01ALICE>");
    assert_eq!(e.respond_url, None);
    assert_eq!(e.thread_key.as_deref(), Some("run-7/checklist"));
    assert_eq!(e.ephemeral_to.as_deref(), Some("U01ALICE"));
    // A Discord interaction is answered by its handler.
    let d = route(&cfg, &all_platforms(), &ch, Some(&Origin::Discord), &|_| {
        None
    });
    assert!(d.is_empty());
}
