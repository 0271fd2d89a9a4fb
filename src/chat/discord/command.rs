//! Discord's slash commands: their definitions, and an invoked command's options turned into
//! greenlight's command.

use super::*;
use crate::core::command::{self as cmd, Command, DeployArgs, UsageError};
use crate::core::{EnvName, RunId};

use serenity::builder::{CreateCommand, CreateCommandOption};
use serenity::model::application::{
    CommandData, CommandDataOption, CommandDataOptionValue, CommandOptionType,
};

/// The `/deploy` subcommands, in the order they are registered.
pub const DEPLOY_SUBCOMMANDS: [&str; 9] = [
    "release", "status", "history", "lock", "unlock", "cancel", "why-not", "override", "help",
];

/// A slash command option's value, as Discord types it.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    Text(String),
    Integer(i64),
    Boolean(bool),
}

/// The Discord form of a (sub)command's usage line.
pub fn discord_usage(command: &str, subcommand: Option<&str>) -> &'static str {
    match (command.trim_start_matches('/'), subcommand) {
        ("rollback", _) => cmd::DISCORD_USAGE_ROLLBACK,
        ("deploy", Some("release")) => cmd::DISCORD_USAGE_DEPLOY,
        ("deploy", Some("status")) => cmd::DISCORD_USAGE_STATUS,
        ("deploy", Some("history")) => cmd::DISCORD_USAGE_HISTORY,
        ("deploy", Some("lock")) => cmd::DISCORD_USAGE_LOCK,
        ("deploy", Some("unlock")) => cmd::DISCORD_USAGE_UNLOCK,
        ("deploy", Some("cancel")) => cmd::DISCORD_USAGE_CANCEL,
        ("deploy", Some("why-not")) => cmd::DISCORD_USAGE_WHY_NOT,
        ("deploy", Some("help")) => cmd::DISCORD_USAGE_HELP,
        ("deploy", Some("override")) => cmd::DISCORD_USAGE_OVERRIDE,
        _ => cmd::DISCORD_USAGE_ANY,
    }
}

/// An invoked command's options, read by name with the checks of the chat grammar; every
/// error carries the usage in Discord's grammar.
struct Options<'a> {
    options: &'a [(String, OptionValue)],
    usage: &'static str,
}

impl Options<'_> {
    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, UsageError> {
        Err(UsageError::new(reason, self.usage))
    }

    /// A text option, trimmed; an empty one counts as absent.
    fn text(&self, name: &str) -> Option<&str> {
        self.options.iter().find_map(|(n, v)| match v {
            OptionValue::Text(t) if n == name && !t.trim().is_empty() => Some(t.trim()),
            _ => None,
        })
    }

    fn required(&self, name: &str) -> Result<&str, UsageError> {
        match self.text(name) {
            Some(v) => Ok(v),
            None => self.fail(format!("missing {name}")),
        }
    }

    fn integer(&self, name: &str) -> Option<i64> {
        self.options.iter().find_map(|(n, v)| match v {
            OptionValue::Integer(i) if n == name => Some(*i),
            _ => None,
        })
    }

    fn boolean(&self, name: &str) -> bool {
        self.options
            .iter()
            .any(|(n, v)| n == name && *v == OptionValue::Boolean(true))
    }

    fn env(&self) -> Result<EnvName, UsageError> {
        cmd::env_name(self.required("env")?, self.usage)
    }

    fn version(&self, patterns: &[String]) -> Result<String, UsageError> {
        cmd::version(self.required("version")?, patterns, self.usage)
    }

    fn service(&self) -> Result<Option<String>, UsageError> {
        self.text("service")
            .map(|s| cmd::service_name(Some(s.to_string()), self.usage))
            .transpose()
    }
}

/// greenlight's command from an invoked slash command's name, subcommand and typed options,
/// checked as the chat grammar checks its text (`patterns`: the configured version patterns).
pub fn build_command(
    command: &str,
    subcommand: Option<&str>,
    options: &[(String, OptionValue)],
    patterns: &[String],
) -> Result<Command, UsageError> {
    let command = command.trim_start_matches('/');
    let o = Options {
        options,
        usage: discord_usage(command, subcommand),
    };
    match (command, subcommand) {
        ("rollback", None) => Ok(Command::Rollback {
            env: o.env()?,
            reason: o.text("reason").map(String::from),
        }),
        ("rollback", Some(sub)) => o.fail(format!("/rollback has no subcommand \"{sub}\"")),
        ("deploy", None) => o.fail("choose a subcommand"),
        ("deploy", Some(sub)) => deploy_subcommand(sub, &o, patterns),
        (other, _) => o.fail(format!("unknown command /{other}")),
    }
}

fn deploy_subcommand(
    sub: &str,
    o: &Options<'_>,
    patterns: &[String],
) -> Result<Command, UsageError> {
    match sub {
        "release" => Ok(Command::Deploy(DeployArgs {
            version: o.version(patterns)?,
            env: o.env()?,
            service: o.service()?,
            force: o.text("force").map(String::from),
            dry_run: o.boolean("dry_run"),
        })),
        "why-not" => Ok(Command::WhyNot {
            version: o.version(patterns)?,
            env: o.env()?,
            service: o.service()?,
        }),
        "status" => Ok(Command::Status {
            env: o
                .text("env")
                .map(|e| cmd::env_name(e, o.usage))
                .transpose()?,
        }),
        "history" => {
            let env = o.env()?;
            let limit = match o.integer("limit") {
                None => cmd::HISTORY_DEFAULT_LIMIT,
                Some(n) if (1..=cmd::HISTORY_MAX_LIMIT as i64).contains(&n) => n as usize,
                Some(n) => {
                    return o.fail(format!(
                        "limit must be a number from 1 to {}, not \"{n}\"",
                        cmd::HISTORY_MAX_LIMIT
                    ))
                }
            };
            Ok(Command::History { env, limit })
        }
        "lock" => Ok(Command::Lock {
            env: o.env()?,
            reason: o.required("reason")?.to_string(),
        }),
        "unlock" => Ok(Command::Unlock { env: o.env()? }),
        "cancel" => match o.integer("run") {
            Some(n) if n > 0 => Ok(Command::Cancel {
                run: RunId(n as u64),
            }),
            Some(n) => o.fail(format!("\"{n}\" is not a run number")),
            None => o.fail("missing run"),
        },
        "override" => {
            let run = match o.integer("run") {
                Some(n) if n > 0 => RunId(n as u64),
                Some(n) => return o.fail(format!("\"{n}\" is not a run number")),
                None => return o.fail("missing run"),
            };
            let item = match o.integer("item") {
                Some(n) if n > 0 => n as usize - 1,
                Some(n) => return o.fail(format!("\"{n}\" is not an item number")),
                None => return o.fail("missing item"),
            };
            let reason = o.required("reason")?.to_string();
            Ok(Command::Override { run, item, reason })
        }
        "help" => Ok(Command::Help),
        other => o.fail(format!("unknown subcommand \"{other}\"")),
    }
}

/// The two command definitions: `/deploy` with its subcommands and `/rollback`.
pub fn command_definitions(environments: &[(String, String)]) -> Vec<CreateCommand> {
    let env = |required: bool| {
        let mut o = CreateCommandOption::new(CommandOptionType::String, "env", "Environment")
            .required(required);
        if (1..=MAX_CHOICES).contains(&environments.len()) {
            for (name, display) in environments {
                let label = if display.trim().is_empty() {
                    name
                } else {
                    display
                };
                o = o.add_string_choice(label, name);
            }
        }
        o
    };
    let string = |name: &str, description: &str, required: bool| {
        CreateCommandOption::new(CommandOptionType::String, name, description).required(required)
    };
    let version = || string("version", "Version: v1.2.3 or a git sha", true);
    let service = || {
        string(
            "service",
            "Service, when the environment has several",
            false,
        )
    };
    let sub = |name: &str, description: &str, options: Vec<CreateCommandOption>| {
        CreateCommandOption::new(CommandOptionType::SubCommand, name, description)
            .set_sub_options(options)
    };

    let deploy = CreateCommand::new("deploy")
        .description("Deploy with greenlight")
        .set_options(vec![
            sub(
                "release",
                "Deploy a version to an environment",
                vec![
                    version(),
                    env(true),
                    service(),
                    string(
                        "force",
                        "Break-glass reason to deploy through a freeze",
                        false,
                    ),
                    CreateCommandOption::new(
                        CommandOptionType::Boolean,
                        "dry_run",
                        "Only show what would happen",
                    ),
                ],
            ),
            sub("status", "What is deployed and running", vec![env(false)]),
            sub(
                "history",
                "Recent runs of an environment",
                vec![
                    env(true),
                    CreateCommandOption::new(
                        CommandOptionType::Integer,
                        "limit",
                        "How many runs (1-100)",
                    )
                    .min_int_value(1)
                    .max_int_value(100),
                ],
            ),
            sub(
                "lock",
                "Lock an environment against deploys",
                vec![env(true), string("reason", "Why", true)],
            ),
            sub("unlock", "Unlock an environment", vec![env(true)]),
            sub(
                "cancel",
                "Cancel a run",
                vec![
                    CreateCommandOption::new(CommandOptionType::Integer, "run", "Run number")
                        .required(true)
                        .min_int_value(1),
                ],
            ),
            sub(
                "why-not",
                "Every gate that would stop this deploy now",
                vec![version(), env(true), service()],
            ),
            sub(
                "override",
                "Break-glass: tick a checklist item whose CI evidence is not green",
                vec![
                    CreateCommandOption::new(CommandOptionType::Integer, "run", "Run number")
                        .required(true)
                        .min_int_value(1),
                    CreateCommandOption::new(CommandOptionType::Integer, "item", "Item number")
                        .required(true)
                        .min_int_value(1),
                    string("reason", "Why, for the audit log", true),
                ],
            ),
            sub("help", "How to use greenlight", vec![]),
        ]);
    let rollback = CreateCommand::new("rollback")
        .description("Roll an environment back to its previous version")
        .set_options(vec![env(true), string("reason", "Why", false)]);
    vec![deploy, rollback]
}

/// An option's value, typed; `None` for kinds greenlight's commands do not have.
fn option_value(value: &CommandDataOptionValue) -> Option<OptionValue> {
    match value {
        CommandDataOptionValue::String(s) => Some(OptionValue::Text(s.clone())),
        CommandDataOptionValue::Boolean(b) => Some(OptionValue::Boolean(*b)),
        CommandDataOptionValue::Integer(n) => Some(OptionValue::Integer(*n)),
        CommandDataOptionValue::Autocomplete { value, .. } => {
            Some(OptionValue::Text(value.clone()))
        }
        _ => None,
    }
}

/// (command, subcommand, options) of an invoked slash command.
pub fn command_parts(data: &CommandData) -> (String, Option<String>, Vec<(String, OptionValue)>) {
    fn flat(options: &[CommandDataOption]) -> Vec<(String, OptionValue)> {
        options
            .iter()
            .filter_map(|o| option_value(&o.value).map(|v| (o.name.clone(), v)))
            .collect()
    }
    for o in &data.options {
        if let CommandDataOptionValue::SubCommand(inner) = &o.value {
            return (data.name.clone(), Some(o.name.clone()), flat(inner));
        }
    }
    (data.name.clone(), None, flat(&data.options))
}

/// greenlight's command for an invoked slash command (see [`build_command`]).
pub fn interaction_command(data: &CommandData, patterns: &[String]) -> Result<Command, UsageError> {
    let (command, subcommand, options) = command_parts(data);
    build_command(&command, subcommand.as_deref(), &options, patterns)
}
