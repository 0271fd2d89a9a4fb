//! greenlight in Discord: the real serenity code inside the binary against the fake Discord
//! (REST + gateway) on 127.0.0.1; and Slack and Discord configured at once.

use crate::fake_discord::{FakeDiscord, Fault, OptionValue, RouteKind, GUILD_ID};
use crate::fake_slack::FakeSlack;
use crate::harness::*;
use std::time::{Duration, Instant};

const STAGING: &str = "100000000000000004";
const INCIDENTS: &str = "100000000000000002";
const ALICE: &str = "111111111111111111";
const BOB: &str = "222222222222222222";
const CAROL: &str = "333333333333333333";

fn discord_config(api_url: &str) -> String {
    test_config("")
        .replace("[users.alice]\n", &format!("[users.alice]\ndiscord = \"{ALICE}\"\nslack = \"U01ALICE\"\n"))
        .replace("[users.bob]\n", &format!("[users.bob]\ndiscord = \"{BOB}\"\nslack = \"U01BOB\"\n"))
        .replace("[users.carol]\n", &format!("[users.carol]\ndiscord = \"{CAROL}\"\nslack = \"U01CAROL\"\n"))
        .replace(
            "[environments.staging]\n",
            &format!("[environments.staging]\ndiscord_channel = \"{STAGING}\"\ndiscord_incident_channel = \"{INCIDENTS}\"\n"),
        )
        .replace("[bot]\n", &format!("[discord]\napi_url = \"{api_url}\"\nguild_id = \"{GUILD_ID}\"\n\n[bot]\n"))
}

/// A fake Discord and the bot connected to it (the temp dir holds its config and data).
async fn discord_bot() -> (FakeDiscord, tempfile::TempDir, Bot) {
    let fake = FakeDiscord::start().await;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("greenlight.toml"),
        discord_config(&fake.api_url()),
    )
    .unwrap();
    let bot = Bot::start_with(
        tmp.path(),
        &[],
        &[("DISCORD_TOKEN", crate::fake_discord::BOT_TOKEN)],
    )
    .await;
    fake.wait_connected(1, LONG).await;
    (fake, tmp, bot)
}

fn s(v: &str) -> OptionValue {
    OptionValue::String(v.to_string())
}

/// The checklist parent and the item messages in its thread.
async fn checklist(fake: &FakeDiscord, run: u64) -> (String, String, Vec<String>) {
    let needle = format!("(run {run})");
    let parent = fake
        .wait_message("the checklist", LONG, |m| {
            m.channel == STAGING && m.content.contains(&needle)
        })
        .await;
    let (thread, items) = fake
        .wait_for("the checklist thread with its items", LONG, |f| {
            let thread = f.threads().into_iter().find(|t| t.2 == parent.id)?.0;
            let items: Vec<String> = f
                .messages()
                .into_iter()
                .filter(|m| {
                    m.channel == thread
                        && (m.content.starts_with('⬜') || m.content.starts_with('✅'))
                })
                .map(|m| m.id)
                .collect();
            (items.len() == 2).then_some((thread, items))
        })
        .await;
    (parent.id, thread, items)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_staging_lifecycle_in_discord() {
    let (fake, _tmp, bot) = discord_bot().await;

    // Guild commands registered at start, with the environments as choices.
    let cmds = fake.wait_commands(LONG).await.to_string();
    assert!(
        cmds.contains("\"deploy\"")
            && cmds.contains("\"rollback\"")
            && cmds.contains("\"release\""),
        "{cmds}"
    );
    assert!(
        cmds.contains("Staging") && cmds.contains("Production"),
        "{cmds}"
    );

    // Bad input: answered at once, ephemerally; nothing created.
    let bad = fake.slash_command(
        ALICE,
        STAGING,
        "deploy",
        Some("release"),
        &[("version", s("1.2")), ("env", s("staging"))],
    );
    let (_, _, text, eph) = fake.wait_interaction_response(&bad, SHORT).await;
    assert!(eph && text.contains("invalid version"), "{text}");

    // A 429 on the first post: greenlight honours retry_after itself, then delivers.
    fake.fail_next(
        RouteKind::CreateMessage,
        Fault::RateLimited {
            retry_after_secs: 1.0,
        },
    );
    let t0 = Instant::now();
    let id = fake.slash_command(
        ALICE,
        STAGING,
        "deploy",
        Some("release"),
        &[("version", s("v1.2.0")), ("env", s("staging"))],
    );
    let (_, _, text, eph) = fake.wait_interaction_response(&id, SHORT).await;
    assert!(t0.elapsed() < Duration::from_secs(3), "answered within 3 s");
    assert!(!eph && text.contains("Run 1"), "{text}");
    // A duplicated dispatch acts once.
    fake.duplicate_last();
    let (parent, thread, items) = checklist(&fake, 1).await;
    // The 429 really happened, and the same message was posted again a second later.
    let posts: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| c.route == RouteKind::CreateMessage)
        .collect();
    let limited = posts
        .iter()
        .position(|c| c.status == 429)
        .expect("a rate-limited post");
    let retry = &posts[limited + 1];
    assert_eq!(
        retry.body["content"], posts[limited].body["content"],
        "the limited message is retried first (in order)"
    );
    assert!(
        retry.at.duration_since(posts[limited].at) >= Duration::from_millis(900),
        "retry_after honoured"
    );
    let p = fake
        .messages()
        .into_iter()
        .find(|m| m.id == parent)
        .unwrap();
    assert!(
        p.content.contains(&format!("<@{BOB}>")),
        "reviewers mentioned: {}",
        p.content
    );

    // Self-approval does not count.
    fake.reaction(ALICE, &thread, &items[0], "✅", true);
    fake.wait_message("self-approval refused", LONG, |m| {
        m.channel == thread && m.content.contains("cannot approve their own run")
    })
    .await;
    fake.reaction(BOB, &thread, &items[0], "✅", true);
    fake.reaction(CAROL, &thread, &items[1], "👍", true);
    fake.wait_message("🚀", LONG, |m| {
        m.channel == STAGING && m.content == "🚀 Deploying v1.2.0 to Staging..."
    })
    .await;
    fake.wait_message("✅", LONG, |m| {
        m.channel == STAGING && m.content == "✅ Deployment successful. Monitoring."
    })
    .await;

    // A gateway RECONNECT: serenity reconnects and greenlight keeps working.
    let before = fake.connections();
    fake.reconnect();
    fake.wait_connected(before + 1, LONG).await;
    let stable = fake
        .wait_message("stable", LONG, |m| m.content.contains("Run 1 stable"))
        .await;
    assert_eq!(stable.channel, thread);
    let status = fake
        .wait_message("status", LONG, |m| {
            m.content.starts_with("Run 1 status (succeeded)")
        })
        .await;
    assert!(status.edits > 0, "the status message is edited");
    assert_eq!(
        fake.messages()
            .iter()
            .filter(|m| m.content.contains("Pre-deployment checklist"))
            .count(),
        1,
        "the duplicate acted once"
    );
    let id = fake.slash_command(
        CAROL,
        STAGING,
        "deploy",
        Some("status"),
        &[("env", s("staging"))],
    );
    let (_, _, text, _) = fake.wait_interaction_response(&id, SHORT).await;
    assert!(text.contains("v1.2.0 live on blue"), "{text}");

    // A faulty version: rollback and incident alert.
    fake.slash_command(
        BOB,
        STAGING,
        "deploy",
        Some("release"),
        &[("version", s("v1.3.0-faulty")), ("env", s("staging"))],
    );
    let (_, thread2, items2) = checklist(&fake, 2).await;
    for i in &items2 {
        fake.reaction(CAROL, &thread2, i, "✅", true);
    }
    let fail = fake
        .wait_message("rollback", LONG, |m| {
            m.channel == STAGING && m.content.starts_with("❌ Deployment failed. Rolling back.")
        })
        .await;
    assert!(fail.content.contains("error rate"), "{}", fail.content);
    let alert = fake
        .wait_message("incident", LONG, |m| m.channel == INCIDENTS)
        .await;
    assert!(
        alert.content.contains("v1.3.0-faulty") && alert.content.contains("locked"),
        "{}",
        alert.content
    );
    let (_, m) = bot.get_text(&format!("{}/metrics", bot.url)).await;
    assert!(
        m.contains("greenlight_platform_connected{platform=\"discord\"} 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_discord_at_once_each_where_it_belongs() {
    let discord = FakeDiscord::start().await;
    let slack = FakeSlack::start().await;
    let tmp = tempfile::tempdir().unwrap();
    // staging posts to both platforms; prod only to Slack.
    let cfg = discord_config(&discord.api_url())
        .replace(
            "[bot]\n",
            &format!(
                "[slack]\nmode = \"socket\"\napi_url = \"{}\"\n\n[bot]\n",
                slack.api_url()
            ),
        )
        .replace(
            "[environments.staging]\n",
            "[environments.staging]\nslack_channel = \"C02STAGING\"\n",
        )
        .replace(
            "[environments.prod]\n",
            "[environments.prod]\nslack_channel = \"C01DEPLOYS\"\n",
        );
    std::fs::write(tmp.path().join("greenlight.toml"), cfg).unwrap();
    let _bot = Bot::start_with(
        tmp.path(),
        &[],
        &[
            ("DISCORD_TOKEN", crate::fake_discord::BOT_TOKEN),
            ("SLACK_BOT_TOKEN", "xoxb-test"),
            ("SLACK_APP_TOKEN", "xapp-test"),
        ],
    )
    .await;
    discord.wait_connected(1, LONG).await;
    slack.wait_connected(1, LONG).await;

    // Typed in Discord: the checklist thread lives in Discord, lifecycle messages go to both.
    discord.slash_command(
        ALICE,
        STAGING,
        "deploy",
        Some("release"),
        &[("version", s("v1.2.0")), ("env", s("staging"))],
    );
    let (_, thread, items) = checklist(&discord, 1).await;
    for i in &items {
        discord.reaction(BOB, &thread, i, "✅", true);
    }
    discord
        .wait_message("🚀 in Discord", LONG, |m| {
            m.content == "🚀 Deploying v1.2.0 to Staging..."
        })
        .await;
    slack
        .wait_message("🚀 in Slack", LONG, |m| {
            m.channel == "C02STAGING" && m.text == "🚀 Deploying v1.2.0 to Staging..."
        })
        .await;
    assert!(
        !slack
            .messages()
            .iter()
            .any(|m| m.text.contains("Pre-deployment checklist")),
        "the thread stays on the origin platform"
    );

    // prod has no Discord channel: a prod deploy typed in Slack posts only to Slack.
    slack.slash_command("U01ALICE", "C01DEPLOYS", "/deploy", "v9.9.9 prod --dry-run");
    slack
        .wait_for("dry run answer", LONG, |f| {
            f.responses()
                .into_iter()
                .find(|r| r.text().contains("Dry run: no run created"))
        })
        .await;
    slack.slash_command("U01ALICE", "C01DEPLOYS", "/deploy", "lock prod maintenance");
    slack
        .wait_message("lock in Slack", LONG, |m| {
            m.channel == "C01DEPLOYS" && m.text.contains("Production locked")
        })
        .await;
    assert!(
        !discord
            .messages()
            .iter()
            .any(|m| m.content.contains("Production locked")),
        "prod has no Discord channel"
    );
}

/// `@greenlight deploy v1.2.0 staging` in a message works as `/deploy release` does: Discord
/// delivers the content of a message that mentions the bot without the privileged intent. The
/// answer is a reply to the message; a usage error shows the chat grammar the person typed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_mentions_the_bot_takes_the_chat_grammar() {
    use crate::fake_discord::BOT_USER_ID;
    let (fake, _tmp, _bot) = discord_bot().await;
    fake.wait_commands(LONG).await;
    // No privileged intent is asked for.
    assert_eq!(fake.intents().unwrap() & (1 << 15), 0, "MESSAGE_CONTENT");

    let asked = fake.user_message(
        ALICE,
        STAGING,
        &format!("<@{BOT_USER_ID}> deploy v1.2.0 staging"),
    );
    let answer = fake
        .wait_message("the answer to the mention", LONG, |m| {
            m.reference.as_deref() == Some(asked.as_str())
        })
        .await;
    assert_eq!(answer.author, BOT_USER_ID);
    assert!(answer.content.contains("Run 1"), "{}", answer.content);
    checklist(&fake, 1).await;

    // A mention without a command is not answered; a malformed one gets the usage.
    fake.user_message(BOB, STAGING, &format!("thanks <@{BOT_USER_ID}>!"));
    let bad = fake.user_message(BOB, STAGING, &format!("<@{BOT_USER_ID}> rollback"));
    let answer = fake
        .wait_message("the usage answer", LONG, |m| {
            m.reference.as_deref() == Some(bad.as_str())
        })
        .await;
    assert!(
        answer.content.contains("Usage: /rollback <env>"),
        "{}",
        answer.content
    );
    let replies = fake
        .messages()
        .into_iter()
        .filter(|m| m.author == BOT_USER_ID && m.reference.is_some())
        .count();
    assert_eq!(replies, 2, "{}", fake.dump());
}
