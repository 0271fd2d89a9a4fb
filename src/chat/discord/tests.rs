//! Tests of the Discord adapter: typed options to commands (and their usage in Discord's grammar),
//! mentions, emoji, reaction dedup, and the REST client and gateway against fakes on loopback.

use super::client::*;
use super::command::*;
use super::gateway::*;
use super::*;
use crate::chat::inbound::{Answer, Handled, Inbound, Inbox, Kind, Visibility};
use crate::core::command::{Command, DeployArgs};
use crate::core::{EnvName, Platform};
use serde_json::{json, Value};
use serenity::model::application::Interaction;
use std::future::Future;
use std::sync::Arc;

/// Options as Discord types them: `limit` and `run` are integers, `dry_run` a boolean.
fn opts(pairs: &[(&str, &str)]) -> Vec<(String, OptionValue)> {
    pairs
        .iter()
        .map(|(k, v)| {
            let value = match *k {
                "limit" | "run" | "item" => OptionValue::Integer(v.parse().unwrap()),
                "dry_run" => OptionValue::Boolean(v.parse().unwrap()),
                _ => OptionValue::Text(v.to_string()),
            };
            (k.to_string(), value)
        })
        .collect()
}

fn build(
    command: &str,
    sub: Option<&str>,
    options: &[(String, OptionValue)],
) -> Result<Command, String> {
    build_command(command, sub, options, &[]).map_err(|e| e.to_string())
}

fn release(version: &str, env: &str) -> DeployArgs {
    DeployArgs {
        version: version.into(),
        env: EnvName::new(env),
        service: None,
        force: None,
        dry_run: false,
    }
}

#[test]
fn release_command() {
    assert_eq!(
        build(
            "deploy",
            Some("release"),
            &opts(&[("version", "v1.2.0"), ("env", "staging")])
        ),
        Ok(Command::Deploy(release("v1.2.0", "staging")))
    );
    assert_eq!(
        build(
            "deploy",
            Some("release"),
            &opts(&[
                ("version", "v1.2.0"),
                ("env", "staging"),
                ("force", "hotfix"),
                ("dry_run", "true")
            ])
        ),
        Ok(Command::Deploy(DeployArgs {
            force: Some("hotfix".into()),
            dry_run: true,
            ..release("v1.2.0", "staging")
        }))
    );
    assert_eq!(
        build(
            "/deploy",
            Some("release"),
            &opts(&[
                ("dry_run", "false"),
                ("env", "prod"),
                ("version", "abc1234"),
                ("service", "api"),
                ("force", "fix for INC-1")
            ])
        ),
        Ok(Command::Deploy(DeployArgs {
            service: Some("api".into()),
            force: Some("fix for INC-1".into()),
            ..release("abc1234", "prod")
        }))
    );
    // Free text is taken as typed: quotes and option-like words need no escaping.
    for reason in ["it's \"quoted\" “smart”", "--looks-like-an-option", "\""] {
        let built = build(
            "deploy",
            Some("release"),
            &opts(&[("version", "v1.2.0"), ("env", "prod"), ("force", reason)]),
        );
        assert_eq!(
            built,
            Ok(Command::Deploy(DeployArgs {
                force: Some(reason.into()),
                ..release("v1.2.0", "prod")
            }))
        );
    }
    // A configured version pattern.
    assert!(build_command(
        "deploy",
        Some("release"),
        &opts(&[("version", "build-42"), ("env", "prod")]),
        &["build-*".to_string()]
    )
    .is_ok());
}

#[test]
fn release_refusals_show_the_discord_grammar() {
    let e = build("deploy", Some("release"), &opts(&[("env", "prod")])).unwrap_err();
    assert!(
        e.starts_with("missing version. Usage: /deploy release version:"),
        "{e}"
    );
    let e = build("deploy", Some("release"), &opts(&[("version", "v1.0.0")])).unwrap_err();
    assert!(e.starts_with("missing env. Usage: /deploy release"), "{e}");
    let e = build(
        "deploy",
        Some("release"),
        &opts(&[("version", "  "), ("env", "prod")]),
    )
    .unwrap_err();
    assert!(e.starts_with("missing version."), "{e}");
    for bad in ["status", "--dry-run", "1.2"] {
        let e = build(
            "deploy",
            Some("release"),
            &opts(&[("version", bad), ("env", "prod")]),
        )
        .unwrap_err();
        assert!(
            e.contains("Usage: /deploy release version:<version> env:<env>"),
            "{e}"
        );
    }
    let e = build(
        "deploy",
        Some("release"),
        &opts(&[("version", "v1.0.0"), ("env", "no such env!")]),
    )
    .unwrap_err();
    assert!(e.starts_with("invalid environment name"), "{e}");
}

#[test]
fn other_subcommands() {
    let staging = || EnvName::new("staging");
    type Case<'a> = (&'a str, Vec<(String, OptionValue)>, Command);
    let cases: Vec<Case> = vec![
        ("status", opts(&[]), Command::Status { env: None }),
        (
            "status",
            opts(&[("env", "staging")]),
            Command::Status {
                env: Some(staging()),
            },
        ),
        (
            "history",
            opts(&[("env", "staging")]),
            Command::History {
                env: staging(),
                limit: crate::core::command::HISTORY_DEFAULT_LIMIT,
            },
        ),
        (
            "history",
            opts(&[("env", "staging"), ("limit", "5")]),
            Command::History {
                env: staging(),
                limit: 5,
            },
        ),
        (
            "lock",
            opts(&[("env", "staging"), ("reason", "db work")]),
            Command::Lock {
                env: staging(),
                reason: "db work".into(),
            },
        ),
        (
            "unlock",
            opts(&[("env", "staging")]),
            Command::Unlock { env: staging() },
        ),
        (
            "cancel",
            opts(&[("run", "42")]),
            Command::Cancel {
                run: crate::core::RunId(42),
            },
        ),
        (
            "override",
            opts(&[
                ("run", "42"),
                ("item", "1"),
                ("reason", "CI is down: INC-7"),
            ]),
            Command::Override {
                run: crate::core::RunId(42),
                item: 0,
                reason: "CI is down: INC-7".into(),
            },
        ),
        (
            "why-not",
            opts(&[("version", "v1.2.0"), ("env", "staging")]),
            Command::WhyNot {
                version: "v1.2.0".into(),
                env: staging(),
                service: None,
            },
        ),
        (
            "why-not",
            opts(&[
                ("version", "v1.2.0"),
                ("env", "staging"),
                ("service", "api"),
            ]),
            Command::WhyNot {
                version: "v1.2.0".into(),
                env: staging(),
                service: Some("api".into()),
            },
        ),
        ("help", opts(&[]), Command::Help),
    ];
    for (sub, options, want) in cases {
        assert_eq!(
            build("deploy", Some(sub), &options),
            Ok(want),
            "{sub} {options:?}"
        );
    }
    assert_eq!(
        build(
            "rollback",
            None,
            &opts(&[("env", "staging"), ("reason", "reason text")])
        ),
        Ok(Command::Rollback {
            env: staging(),
            reason: Some("reason text".into())
        })
    );
    assert_eq!(
        build("rollback", None, &opts(&[("env", "prod")])),
        Ok(Command::Rollback {
            env: EnvName::new("prod"),
            reason: None
        })
    );
    let e = build(
        "deploy",
        Some("history"),
        &opts(&[("env", "staging"), ("limit", "500")]),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "limit must be a number from 1 to 100, not \"500\". Usage: /deploy history env:<env> [limit:<n>]"
    );
    let e = build("deploy", Some("cancel"), &opts(&[("run", "0")])).unwrap_err();
    assert!(
        e.starts_with("\"0\" is not a run number. Usage: /deploy cancel run:"),
        "{e}"
    );
}

#[test]
fn missing_required_options() {
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Vec<(String, OptionValue)>,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "deploy",
            Some("history"),
            opts(&[("limit", "5")]),
            "missing env. Usage: /deploy history env:<env> [limit:<n>]",
        ),
        (
            "deploy",
            Some("lock"),
            opts(&[("env", "prod")]),
            "missing reason. Usage: /deploy lock env:<env> reason:<text>",
        ),
        (
            "deploy",
            Some("lock"),
            opts(&[("reason", "x")]),
            "missing env. Usage: /deploy lock env:<env> reason:<text>",
        ),
        (
            "deploy",
            Some("unlock"),
            opts(&[]),
            "missing env. Usage: /deploy unlock env:<env>",
        ),
        (
            "deploy",
            Some("cancel"),
            opts(&[]),
            "missing run. Usage: /deploy cancel run:<run-id>",
        ),
        (
            "deploy",
            Some("why-not"),
            opts(&[("env", "prod")]),
            "missing version. Usage: /deploy why-not version:<version> env:<env> [service:<name>]",
        ),
        (
            "rollback",
            None,
            opts(&[("reason", "x")]),
            "missing env. Usage: /rollback env:<env> [reason:<text>]",
        ),
    ];
    for (command, sub, options, want) in cases {
        assert_eq!(
            build(command, sub, &options),
            Err(want.to_string()),
            "{command} {sub:?}"
        );
    }
    assert!(build("deploy", None, &[])
        .unwrap_err()
        .starts_with("choose a subcommand. Usage:"));
    assert!(build("deploy", Some("nuke"), &[])
        .unwrap_err()
        .starts_with("unknown subcommand \"nuke\""));
    assert!(build("ship", None, &[])
        .unwrap_err()
        .starts_with("unknown command /ship"));
}

#[test]
fn mentions_carry_the_chat_grammar() {
    let bot = "999";
    assert_eq!(
        mention_text("<@999> deploy v1.2.0 prod", bot).as_deref(),
        Some("/deploy v1.2.0 prod")
    );
    assert_eq!(
        mention_text("<@!999>   /rollback prod bad release", bot).as_deref(),
        Some("/rollback prod bad release")
    );
    assert_eq!(
        mention_text("deploy status <@999>", bot).as_deref(),
        Some("/deploy status")
    );
    assert_eq!(mention_text("<@999> hello there", bot), None);
    assert_eq!(mention_text("<@123> deploy v1.2.0 prod", bot), None);
}

fn envs() -> Vec<(String, String)> {
    vec![
        ("staging".into(), "Staging".into()),
        ("prod".into(), "Production".into()),
    ]
}

fn option<'a>(parent: &'a Value, name: &str) -> &'a Value {
    parent["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no option {name} in {parent}"))
}

#[test]
fn definitions_shape() {
    let defs: Vec<Value> = command_definitions(&envs())
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    assert_eq!(defs.len(), 2);
    let deploy = &defs[0];
    assert_eq!(deploy["name"], "deploy");
    assert!(!deploy["description"].as_str().unwrap().is_empty());
    let subs: Vec<&str> = deploy["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            assert_eq!(o["type"], 1, "{o}"); // SUB_COMMAND
            o["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(subs, DEPLOY_SUBCOMMANDS.to_vec());

    let release = option(deploy, "release");
    let version = option(release, "version");
    assert_eq!(
        (version["type"].clone(), version["required"].clone()),
        (json!(3), json!(true))
    );
    let env = option(release, "env");
    assert_eq!(env["type"], 3);
    assert_eq!(env["required"], true);
    assert_eq!(
        env["choices"],
        json!([{"name": "Staging", "value": "staging"}, {"name": "Production", "value": "prod"}])
    );
    assert_eq!(option(release, "force")["type"], 3);
    assert_eq!(option(release, "force")["required"], false);
    assert_eq!(option(release, "dry_run")["type"], 5); // BOOLEAN
    assert_eq!(option(release, "service")["type"], 3);

    assert_eq!(option(option(deploy, "status"), "env")["required"], false);
    let limit = option(option(deploy, "history"), "limit");
    assert_eq!(limit["type"], 4); // INTEGER
    assert_eq!(limit["min_value"], 1);
    assert_eq!(limit["max_value"], 100);
    let lock = option(deploy, "lock");
    assert_eq!(option(lock, "reason")["required"], true);
    assert_eq!(option(lock, "env")["required"], true);
    assert_eq!(option(option(deploy, "unlock"), "env")["required"], true);
    let run = option(option(deploy, "cancel"), "run");
    assert_eq!(
        (run["type"].clone(), run["required"].clone()),
        (json!(4), json!(true))
    );
    let why = option(deploy, "why-not");
    assert_eq!(option(why, "version")["required"], true);
    assert_eq!(option(why, "env")["required"], true);
    assert!(option(deploy, "help")["options"]
        .as_array()
        .unwrap()
        .is_empty());

    let rollback = &defs[1];
    assert_eq!(rollback["name"], "rollback");
    assert_eq!(option(rollback, "env")["required"], true);
    assert_eq!(
        option(rollback, "env")["choices"].as_array().unwrap().len(),
        2
    );
    assert_eq!(option(rollback, "reason")["required"], false);

    // Names follow Discord's rules: 1-32 lowercase letters, digits, - and _.
    fn names(v: &Value, out: &mut Vec<String>) {
        if let Some(n) = v.get("name").and_then(|n| n.as_str()) {
            out.push(n.to_string());
        }
        if let Some(o) = v.get("options").and_then(|o| o.as_array()) {
            o.iter().for_each(|o| names(o, out));
        }
    }
    let mut all = Vec::new();
    defs.iter().for_each(|d| names(d, &mut all));
    for n in all {
        assert!(
            (1..=32).contains(&n.len())
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'),
            "{n}"
        );
    }

    // Too many environments for choices: env becomes free text.
    let many: Vec<(String, String)> = (0..30)
        .map(|i| (format!("e{i}"), format!("E{i}")))
        .collect();
    let defs = serde_json::to_value(&command_definitions(&many)[1]).unwrap();
    assert!(option(&defs, "env")["choices"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn emoji_mapping() {
    let u = |s: &str| emoji_name(&ReactionType::Unicode(s.into()));
    assert_eq!(u("✅"), "white_check_mark");
    assert_eq!(u("👍"), "+1");
    assert_eq!(u("👍🏽"), "+1");
    assert_eq!(u("❌"), "x");
    assert_eq!(u("🚀"), "🚀");
    assert_eq!(u("👎"), "👎");
    let custom: ReactionType = serde_json::from_value(
        json!({"id": "41771983429993937", "name": "shipit", "animated": false}),
    )
    .unwrap();
    assert_eq!(emoji_name(&custom), "shipit");
    let nameless: ReactionType =
        serde_json::from_value(json!({"id": "41771983429993937", "name": null})).unwrap();
    assert_eq!(emoji_name(&nameless), "41771983429993937");
}

fn reaction_json(user: &str, emoji: &str) -> Value {
    json!({
        "user_id": user, "channel_id": "300", "message_id": "400", "guild_id": "100",
        "emoji": {"id": null, "name": emoji}, "burst": false, "type": 0
    })
}

#[test]
fn reaction_dedup_follows_state_transitions() {
    let ledger = Mutex::new(ReactionLedger::new("s1", 2));
    let r: Reaction = serde_json::from_value(reaction_json("7", "✅")).unwrap();
    let dedup = |added: bool| reaction_inbound(&r, added, &ledger).unwrap().dedup.unwrap();
    let add1 = dedup(true);
    assert_eq!(add1, "r:300:400:7:white_check_mark:true:s1:1");
    assert_eq!(dedup(true), add1, "a duplicated dispatch keeps its dedup");
    let remove = dedup(false);
    assert_eq!(remove, "r:300:400:7:white_check_mark:false:s1:2");
    assert_eq!(dedup(false), remove);
    let add2 = dedup(true);
    assert_ne!(add2, add1, "adding again is a new event");

    // A new session starts afresh, with keys that cannot collide with the old ones.
    ledger.lock().unwrap().start_session("s2");
    assert_eq!(dedup(true), "r:300:400:7:white_check_mark:true:s2:1");
    // A resume (same session) keeps the state.
    ledger.lock().unwrap().start_session("s2");
    assert_eq!(dedup(true), "r:300:400:7:white_check_mark:true:s2:1");

    // Eviction never reuses a number.
    let mut l = ReactionLedger::new("s", 2);
    assert_eq!(l.observe("a", true), "s:1");
    assert_eq!(l.observe("b", true), "s:2");
    assert_eq!(l.observe("c", true), "s:3");
    assert_eq!(l.observe("a", true), "s:4");
    assert_eq!(l.observe("c", true), "s:3");

    let full = reaction_inbound(&r, true, &Mutex::new(ReactionLedger::new("x", 5))).unwrap();
    assert_eq!(
        full,
        Inbound {
            platform: Platform::Discord,
            dedup: Some("r:300:400:7:white_check_mark:true:x:1".into()),
            user: "7".into(),
            channel: "300".into(),
            kind: Kind::Reaction {
                message: "400".into(),
                emoji: "white_check_mark".into(),
                added: true,
            },
            response_url: None,
        }
    );
}

fn interaction_json(data: Value) -> Value {
    json!({
        "id": "900", "application_id": "55", "type": 2, "data": data,
        "guild_id": "100", "channel_id": "300",
        "channel": {"id": "300", "type": 0, "name": "deploys"},
        "member": {"user": {"id": "111111111111111111", "username": "alice", "discriminator": "0",
                             "global_name": "Alice", "avatar": null},
                   "roles": [], "joined_at": "2024-01-01T00:00:00+00:00", "deaf": false,
                   "mute": false, "flags": 0},
        "token": "tok", "version": 1, "app_permissions": "0", "locale": "en-US",
        "guild_locale": "en-US", "entitlements": [], "authorizing_integration_owners": {"0": "100"},
        "context": 0, "attachment_size_limit": 8388608
    })
}

#[test]
fn interaction_to_command() {
    let raw = interaction_json(json!({
        "id": "1", "name": "deploy", "type": 1, "options": [
            {"name": "release", "type": 1, "options": [
                {"name": "version", "type": 3, "value": "v1.2.0"},
                {"name": "env", "type": 3, "value": "staging"},
                {"name": "force", "type": 3, "value": "hotfix"},
                {"name": "dry_run", "type": 5, "value": true}
            ]}
        ]
    }));
    let Interaction::Command(cmd) = serde_json::from_value::<Interaction>(raw).unwrap() else {
        panic!("not a command")
    };
    assert_eq!(cmd.user.id.to_string(), "111111111111111111");
    assert_eq!(
        interaction_command(&cmd.data, &[]),
        Ok(Command::Deploy(DeployArgs {
            force: Some("hotfix".into()),
            dry_run: true,
            ..release("v1.2.0", "staging")
        }))
    );

    let raw = interaction_json(json!({
        "id": "1", "name": "deploy", "type": 1, "options": [
            {"name": "history", "type": 1, "options": [
                {"name": "env", "type": 3, "value": "staging"},
                {"name": "limit", "type": 4, "value": 5}
            ]}
        ]
    }));
    let Interaction::Command(cmd) = serde_json::from_value::<Interaction>(raw).unwrap() else {
        panic!("not a command")
    };
    assert_eq!(
        command_parts(&cmd.data),
        (
            "deploy".to_string(),
            Some("history".to_string()),
            opts(&[("env", "staging"), ("limit", "5")])
        )
    );
    assert_eq!(
        interaction_command(&cmd.data, &[]),
        Ok(Command::History {
            env: EnvName::new("staging"),
            limit: 5
        })
    );

    let raw = interaction_json(json!({
        "id": "2", "name": "rollback", "type": 1, "options": [
            {"name": "env", "type": 3, "value": "prod"},
            {"name": "reason", "type": 3, "value": "error rate"}
        ]
    }));
    let Interaction::Command(cmd) = serde_json::from_value::<Interaction>(raw).unwrap() else {
        panic!("not a command")
    };
    assert_eq!(
        interaction_command(&cmd.data, &[]),
        Ok(Command::Rollback {
            env: EnvName::new("prod"),
            reason: Some("error rate".into())
        })
    );

    // serenity 0.12.5 refuses an interaction without attachment_size_limit.
    let mut raw = interaction_json(json!({"id": "1", "name": "deploy", "type": 1}));
    raw.as_object_mut().unwrap().remove("attachment_size_limit");
    assert!(serde_json::from_value::<Interaction>(raw).is_err());
}

fn settings(api_url: &str) -> DiscordSettings {
    DiscordSettings {
        api_url: api_url.into(),
        gateway_url: None,
        token: "secret-token".into(),
        guild_id: 100,
        environments: envs(),
        version_patterns: vec![],
        request_timeout: Duration::from_secs(5),
    }
}

#[test]
fn client_new_checks_the_base() {
    assert!(DiscordClient::new(&settings("https://discord.com")).is_ok());
    assert!(DiscordClient::new(&settings("https://discord.com/")).is_ok());
    assert!(DiscordClient::new(&settings("http://127.0.0.1:3000")).is_ok());
    assert!(DiscordClient::new(&settings("http://[::1]:3000")).is_ok());
    assert!(DiscordClient::new(&settings("http://localhost:3000")).is_ok());
    let e = DiscordClient::new(&settings("http://discord.example.com")).unwrap_err();
    assert!(e.contains("non-loopback"), "{e}");
    assert!(DiscordClient::new(&settings("http://10.0.0.1:80")).is_err());
    assert!(DiscordClient::new(&settings("ftp://127.0.0.1")).is_err());
    assert!(DiscordClient::new(&settings("not a url")).is_err());
    let mut s = settings("https://discord.com");
    s.guild_id = 0;
    assert!(DiscordClient::new(&s).is_err());
    let mut s = settings("https://discord.com");
    s.token = " ".into();
    assert!(DiscordClient::new(&s).is_err());
    assert!(!format!("{:?}", settings("https://discord.com")).contains("secret-token"));

    // Only discord.com keeps serenity's rate limiter; every other base goes through the proxy.
    let c = DiscordClient::new(&settings("https://discord.com")).unwrap();
    assert!(c.http().ratelimiter.is_some());
    let c = DiscordClient::new(&settings("http://127.0.0.1:3000/")).unwrap();
    assert!(c.http().ratelimiter.is_none());
    assert_eq!(c.http().proxy.as_deref(), Some("http://127.0.0.1:3000"));

    assert!(checked_gateway("ws://127.0.0.1:1/gateway").is_ok());
    assert!(checked_gateway("wss://gateway.discord.gg").is_ok());
    assert!(checked_gateway("ws://gateway.example.com").is_err());
    assert!(checked_gateway("ws://127.0.0.1:1/gateway?v=10").is_err());
}

#[test]
fn error_mapping() {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("retry-after", "2".parse().unwrap());
    assert_eq!(
        retry_after(
            &h,
            br#"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#
        ),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(retry_after(&h, b""), Some(Duration::from_secs(2)));
    assert_eq!(retry_after(&reqwest::header::HeaderMap::new(), b"{}"), None);
    assert_eq!(
        classify_status(429, String::new(), None),
        DeliveryError::rate_limited(Platform::Discord, DEFAULT_RETRY_AFTER)
    );
    assert!(matches!(
        classify_status(502, "x".into(), None),
        DeliveryError {
            kind: ErrorKind::Transient,
            detail: _,
            ..
        }
    ));
    assert!(matches!(
        classify_status(403, "x".into(), None),
        DeliveryError {
            kind: ErrorKind::Permanent,
            detail: _,
            ..
        }
    ));
    assert_eq!(clip("abcdef", 4), "abc…");
    assert_eq!(clip("abc", 4), "abc");
    assert_eq!(message_content(&"x".repeat(2500)).chars().count(), 2000);
}

// ---- a recorder for the REST API ------------------------------------------------------

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use tokio::sync::mpsc;

#[derive(Clone, Debug)]
struct Hit {
    method: String,
    path: String,
    auth: String,
    body: Value,
}

#[derive(Clone)]
struct Rec {
    hits: mpsc::UnboundedSender<Hit>,
}

fn user_json(id: &str, name: &str, bot: bool) -> Value {
    json!({"id": id, "username": name, "discriminator": "0", "global_name": null,
           "avatar": null, "bot": bot})
}

fn message_json(id: &str, channel: &str, content: &str, edited: bool) -> Value {
    json!({
        "id": id, "channel_id": channel,
        "author": user_json("999", "greenlight", true),
        "content": content, "timestamp": "2024-05-01T12:00:00.000000+00:00",
        "edited_timestamp": if edited { json!("2024-05-01T12:01:00.000000+00:00") } else { Value::Null },
        "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
        "attachments": [], "embeds": [], "pinned": false, "type": 0
    })
}

async fn rest(
    State(rec): State<Rec>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let auth = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let _ = rec.hits.send(Hit {
        method: method.to_string(),
        path: path.clone(),
        auth,
        body: body.clone(),
    });
    let parts: Vec<&str> = path.trim_start_matches("/api/v10/").split('/').collect();
    let content = body["content"].as_str().unwrap_or_default().to_string();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["channels", "429", "messages"]) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "3"), ("x-ratelimit-scope", "user")],
            Json(json!({"message": "You are being rate limited.", "retry_after": 2.5, "global": false})),
        )
            .into_response(),
        ("POST", ["channels", "500", "messages"]) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"message": "500: Internal Server Error", "code": 0})),
        )
            .into_response(),
        ("POST", ["channels", "403", "messages"]) => (
            StatusCode::FORBIDDEN,
            Json(json!({"message": "Missing Access", "code": 50001})),
        )
            .into_response(),
        ("POST", ["channels", c, "messages"]) => {
            Json(message_json("5001", c, &content, false)).into_response()
        }
        ("PATCH", ["channels", c, "messages", m]) => {
            Json(message_json(m, c, &content, true)).into_response()
        }
        ("POST", ["channels", c, "messages", m, "threads"]) => Json(json!({
            "id": m, "type": 11, "guild_id": "100", "parent_id": c,
            "name": body["name"], "owner_id": "999", "last_message_id": null,
            "rate_limit_per_user": 0, "message_count": 0, "member_count": 1,
            "thread_metadata": {"archived": false, "auto_archive_duration": 1440,
                                "archive_timestamp": "2024-05-01T12:00:00.000000+00:00",
                                "locked": false},
            "flags": 0, "total_message_sent": 0
        }))
        .into_response(),
        ("GET", ["oauth2", "applications", "@me"]) => Json(json!({
            "id": "55", "name": "greenlight", "icon": null, "description": "",
            "bot_public": false, "bot_require_code_grant": false, "verify_key": "abc",
            "team": null, "flags": 0
        }))
        .into_response(),
        ("PUT", ["applications", app, "guilds", g, "commands"]) => {
            let commands: Vec<Value> = body
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, mut c)| {
                    let o = c.as_object_mut().unwrap();
                    o.insert("id".into(), json!(format!("{}", 700 + i)));
                    o.insert("application_id".into(), json!(app));
                    o.insert("guild_id".into(), json!(g));
                    o.insert("version".into(), json!("1"));
                    o.insert("type".into(), json!(1));
                    c
                })
                .collect();
            Json(Value::Array(commands)).into_response()
        }
        ("POST", ["interactions", _id, _token, "callback"]) => {
            StatusCode::NO_CONTENT.into_response()
        }
        ("PATCH", ["webhooks", _app, _token, "messages", "@original"]) => {
            Json(message_json("6001", "300", &content, true)).into_response()
        }
        _ => (StatusCode::NOT_FOUND, Json(json!({"message": "404: Not Found", "code": 0})))
            .into_response(),
    }
}

async fn recorder(extra: Router<Rec>) -> (String, mpsc::UnboundedReceiver<Hit>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = extra.fallback(any(rest)).with_state(Rec { hits: tx });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), rx)
}

async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("timed out")
}

#[tokio::test]
async fn rest_round_trip_through_loopback() {
    let (base, mut hits) = recorder(Router::new()).await;
    let client = DiscordClient::new(&settings(&base)).unwrap();

    let id = client
        .post_message("300", "🚀 Deploying v1.2.0")
        .await
        .unwrap();
    assert_eq!(id, "5001");
    let hit = hits.recv().await.unwrap();
    assert_eq!(
        (hit.method.as_str(), hit.path.as_str()),
        ("POST", "/api/v10/channels/300/messages")
    );
    assert_eq!(hit.auth, "Bot secret-token");
    assert_eq!(hit.body["content"], "🚀 Deploying v1.2.0");
    assert_eq!(hit.body["allowed_mentions"]["parse"], json!(["users"]));

    client
        .edit_message("300", "5001", "✅ Deployed")
        .await
        .unwrap();
    let hit = hits.recv().await.unwrap();
    assert_eq!(
        (hit.method.as_str(), hit.path.as_str()),
        ("PATCH", "/api/v10/channels/300/messages/5001")
    );
    assert_eq!(hit.body["content"], "✅ Deployed");

    let thread = client
        .create_thread("300", "5001", "Checklist for v1.2.0")
        .await
        .unwrap();
    assert_eq!(thread, "5001");
    let hit = hits.recv().await.unwrap();
    assert_eq!(
        (hit.method.as_str(), hit.path.as_str()),
        ("POST", "/api/v10/channels/300/messages/5001/threads")
    );
    assert_eq!(hit.body["name"], "Checklist for v1.2.0");

    assert_eq!(
        client.post_message("429", "x").await,
        Err(DeliveryError::rate_limited(
            Platform::Discord,
            Duration::from_millis(2500)
        ))
    );
    hits.recv().await.unwrap();
    match client.post_message("500", "x").await {
        Err(DeliveryError {
            kind: ErrorKind::Transient,
            detail: e,
            ..
        }) => assert!(e.contains("500"), "{e}"),
        other => panic!("{other:?}"),
    }
    hits.recv().await.unwrap();
    match client.post_message("403", "x").await {
        Err(DeliveryError {
            kind: ErrorKind::Permanent,
            detail: e,
            ..
        }) => assert!(e.contains("Missing Access"), "{e}"),
        other => panic!("{other:?}"),
    }
    hits.recv().await.unwrap();
    assert!(matches!(
        client.post_message("not-a-channel", "x").await,
        Err(DeliveryError {
            kind: ErrorKind::Permanent,
            detail: _,
            ..
        })
    ));

    client.register_commands(&envs()).await.unwrap();
    let hit = hits.recv().await.unwrap();
    assert_eq!(
        (hit.method.as_str(), hit.path.as_str()),
        ("GET", "/api/v10/oauth2/applications/@me")
    );
    let hit = hits.recv().await.unwrap();
    assert_eq!(
        (hit.method.as_str(), hit.path.as_str()),
        ("PUT", "/api/v10/applications/55/guilds/100/commands")
    );
    assert_eq!(hit.body[0]["name"], "deploy");
    assert_eq!(hit.body[1]["name"], "rollback");
    // The application id is remembered.
    client.register_commands(&envs()).await.unwrap();
    assert_eq!(hits.recv().await.unwrap().method, "PUT");
}

#[tokio::test]
async fn rest_errors_without_a_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = DiscordClient::new(&settings(&format!("http://{addr}"))).unwrap();
    assert!(matches!(
        client.post_message("300", "x").await,
        Err(DeliveryError {
            kind: ErrorKind::Transient,
            detail: _,
            ..
        })
    ));

    // A server that never answers: the request timeout applies.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut s = settings(&format!("http://{addr}"));
    s.request_timeout = Duration::from_millis(200);
    let client = DiscordClient::new(&s).unwrap();
    match client.post_message("300", "x").await {
        Err(DeliveryError {
            kind: ErrorKind::Transient,
            detail: e,
            ..
        }) => assert!(e.contains("timed out"), "{e}"),
        other => panic!("{other:?}"),
    }
    drop(listener);
}

// ---- a fake gateway --------------------------------------------------------------------

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};

#[derive(Clone)]
struct GatewayFake {
    sockets: mpsc::UnboundedSender<WebSocket>,
}

async fn ws_upgrade(State(fake): State<GatewayFake>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| async move {
        let _ = fake.sockets.send(socket);
    })
}

async fn send_json(socket: &mut WebSocket, v: Value) {
    socket
        .send(WsMessage::Text(v.to_string().into()))
        .await
        .unwrap();
}

/// The next JSON frame from the bot, answering heartbeats on the way.
async fn recv_op(socket: &mut WebSocket, op: u64) -> Value {
    loop {
        let msg = socket.recv().await.expect("closed").expect("ws error");
        if let WsMessage::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["op"] == 1 && op != 1 {
                send_json(socket, json!({"op": 11})).await;
                continue;
            }
            if v["op"] == op {
                return v;
            }
        }
    }
}

/// The app's side for the gateway test: every event goes to `events`; a command is answered
/// "got <command>" (ephemeral for `status`), a `cancel` only once `gate` is released.
fn test_inbox(
    events: mpsc::UnboundedSender<Inbound>,
    gate: tokio::sync::oneshot::Receiver<()>,
) -> Inbox {
    let gate = Arc::new(Mutex::new(Some(gate)));
    Inbox::new(move |inbound: Inbound, reply: crate::chat::Reply| {
        let _ = events.send(inbound.clone());
        let gate = match &inbound.kind {
            Kind::Command(Command::Cancel { .. }) => gate.lock().unwrap().take(),
            _ => None,
        };
        tokio::spawn(async move {
            if let Some(gate) = gate {
                let _ = gate.await;
            }
            let answer = match &inbound.kind {
                Kind::Command(c) => Some(Answer {
                    text: format!("got {c:?}"),
                    visibility: Visibility::private(matches!(c, Command::Status { .. })),
                }),
                _ => None,
            };
            let _ = reply.send(Ok(Handled {
                answer,
                ..Default::default()
            }));
        });
        async { true }
    })
}

#[tokio::test]
async fn gateway_end_to_end() {
    let (sock_tx, mut sockets) = mpsc::unbounded_channel();
    let fake = GatewayFake { sockets: sock_tx };
    let gateway_routes: Router<Rec> =
        Router::new().route("/gateway", get(ws_upgrade).with_state(fake));
    let (base, mut hits) = recorder(gateway_routes).await;
    let mut s = settings(&base);
    s.gateway_url = Some(format!("{}/gateway", base.replace("http://", "ws://")));

    let (etx, mut events) = mpsc::unbounded_channel();
    let (release_slow, gate) = tokio::sync::oneshot::channel();
    let gateway = within(Gateway::start(&s, test_inbox(etx, gate)))
        .await
        .unwrap();
    assert!(!gateway.connected());

    // serenity asks for the gateway URL through the REST base even with an override.
    let hit = within(hits.recv()).await.unwrap();
    assert_eq!(hit.path, "/api/v10/gateway");

    let mut socket = within(sockets.recv()).await.unwrap();
    send_json(
        &mut socket,
        json!({"op": 10, "d": {"heartbeat_interval": 45000}}),
    )
    .await;
    let identify = within(recv_op(&mut socket, 2)).await;
    assert_eq!(identify["d"]["token"], "Bot secret-token");
    assert_eq!(identify["d"]["intents"], json!(intents().bits()));
    assert_eq!(intents().bits(), 1 | (1 << 9) | (1 << 10));
    send_json(
        &mut socket,
        json!({"op": 0, "t": "READY", "s": 1, "d": {
            "v": 10, "user": user_json("999", "greenlight", true), "guilds": [],
            "session_id": "sess1", "resume_gateway_url": s.gateway_url,
            "application": {"id": "55", "flags": 0}
        }}),
    )
    .await;

    // READY registers the commands (the application id comes from READY).
    let hit = within(hits.recv()).await.unwrap();
    assert_eq!(
        (hit.method.as_str(), hit.path.as_str()),
        ("PUT", "/api/v10/applications/55/guilds/100/commands")
    );
    assert!(gateway.connected());

    // A valid command: converted, handed to the sink, answered with its visibility.
    let release = json!({"id": "1", "name": "deploy", "type": 1, "options": [
        {"name": "release", "type": 1, "options": [
            {"name": "version", "type": 3, "value": "v1.2.0"},
            {"name": "env", "type": 3, "value": "staging"}]}]});
    send_json(
        &mut socket,
        json!({"op": 0, "t": "INTERACTION_CREATE", "s": 2, "d": interaction_json(release)}),
    )
    .await;
    let inbound = within(events.recv()).await.unwrap();
    let deploy = Command::Deploy(self::release("v1.2.0", "staging"));
    assert_eq!(
        inbound,
        Inbound {
            platform: Platform::Discord,
            dedup: Some("900".into()),
            user: "111111111111111111".into(),
            channel: "300".into(),
            kind: Kind::Command(deploy.clone()),
            response_url: None,
        }
    );
    let hit = within(hits.recv()).await.unwrap();
    assert_eq!(
        (hit.method.as_str(), hit.path.as_str()),
        ("POST", "/api/v10/interactions/900/tok/callback")
    );
    assert_eq!(hit.body["type"], 4);
    assert_eq!(hit.body["data"]["content"], format!("got {deploy:?}"));
    assert_eq!(hit.body["data"]["flags"].as_u64().unwrap_or(0) & 64, 0);

    // A command with a missing option never reaches the sink: ephemeral usage at once.
    let mut bad = interaction_json(json!({"id": "1", "name": "deploy", "type": 1, "options": [
        {"name": "lock", "type": 1, "options": [{"name": "env", "type": 3, "value": "prod"}]}]}));
    bad["id"] = json!("901");
    send_json(
        &mut socket,
        json!({"op": 0, "t": "INTERACTION_CREATE", "s": 3, "d": bad}),
    )
    .await;
    let hit = within(hits.recv()).await.unwrap();
    assert_eq!(hit.path, "/api/v10/interactions/901/tok/callback");
    assert_eq!(hit.body["data"]["flags"], 64);
    assert!(hit.body["data"]["content"]
        .as_str()
        .unwrap()
        .starts_with("missing reason. Usage: /deploy lock"));

    // An ephemeral answer.
    let mut status = interaction_json(json!({"id": "1", "name": "deploy", "type": 1, "options": [
        {"name": "status", "type": 1, "options": []}]}));
    status["id"] = json!("902");
    send_json(
        &mut socket,
        json!({"op": 0, "t": "INTERACTION_CREATE", "s": 4, "d": status}),
    )
    .await;
    let inbound = within(events.recv()).await.unwrap();
    assert_eq!(inbound.kind, Kind::Command(Command::Status { env: None }));
    let hit = within(hits.recv()).await.unwrap();
    assert_eq!(hit.path, "/api/v10/interactions/902/tok/callback");
    assert_eq!(hit.body["data"]["flags"], 64);

    // A slow answer: deferred (ephemerally) before Discord's 3 s run out, then edited in.
    let mut cancel = interaction_json(json!({"id": "1", "name": "deploy", "type": 1, "options": [
        {"name": "cancel", "type": 1, "options": [{"name": "run", "type": 4, "value": 7}]}]}));
    cancel["id"] = json!("903");
    send_json(
        &mut socket,
        json!({"op": 0, "t": "INTERACTION_CREATE", "s": 5, "d": cancel}),
    )
    .await;
    let inbound = within(events.recv()).await.unwrap();
    let cancel = Command::Cancel {
        run: crate::core::RunId(7),
    };
    assert_eq!(inbound.kind, Kind::Command(cancel.clone()));
    let hit = within(hits.recv()).await.unwrap();
    assert_eq!(hit.path, "/api/v10/interactions/903/tok/callback");
    assert_eq!(hit.body["type"], 5);
    assert_eq!(hit.body["data"]["flags"], 64);
    release_slow.send(()).unwrap();
    let hit = within(hits.recv()).await.unwrap();
    assert_eq!(
        (hit.method.as_str(), hit.path.as_str()),
        ("PATCH", "/api/v10/webhooks/55/tok/messages/@original")
    );
    assert_eq!(hit.body["content"], format!("got {cancel:?}"));

    // Reactions: the bot's own is ignored; add, duplicate, remove.
    let own = reaction_json("999", "✅");
    send_json(
        &mut socket,
        json!({"op": 0, "t": "MESSAGE_REACTION_ADD", "s": 6, "d": own}),
    )
    .await;
    let add = reaction_json("111111111111111111", "👍🏻");
    send_json(
        &mut socket,
        json!({"op": 0, "t": "MESSAGE_REACTION_ADD", "s": 7, "d": add}),
    )
    .await;
    let first = within(events.recv()).await.unwrap();
    assert_eq!(
        first,
        Inbound {
            platform: Platform::Discord,
            dedup: Some("r:300:400:111111111111111111:+1:true:sess1:1".into()),
            user: "111111111111111111".into(),
            channel: "300".into(),
            kind: Kind::Reaction {
                message: "400".into(),
                emoji: "+1".into(),
                added: true,
            },
            response_url: None,
        }
    );
    send_json(
        &mut socket,
        json!({"op": 0, "t": "MESSAGE_REACTION_ADD", "s": 8, "d": add}),
    )
    .await;
    let dup = within(events.recv()).await.unwrap();
    assert_eq!(dup, first);
    let remove = reaction_json("111111111111111111", "👍🏻");
    send_json(
        &mut socket,
        json!({"op": 0, "t": "MESSAGE_REACTION_REMOVE", "s": 9, "d": remove}),
    )
    .await;
    let removed = within(events.recv()).await.unwrap();
    assert!(matches!(removed.kind, Kind::Reaction { added: false, .. }));
    assert_eq!(
        removed.dedup.as_deref(),
        Some("r:300:400:111111111111111111:+1:false:sess1:2")
    );

    // Shutdown closes the socket; reading it answers the close frame.
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = socket.recv().await {} });
    let started = std::time::Instant::now();
    within(gateway.shutdown()).await;
    within(reader).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(4), "no clean close");
    assert!(
        events.try_recv().is_err(),
        "the bot's own reaction was delivered"
    );
}
