//! Discord's slash commands: their definitions, and an invoked command's options turned into
//! greenlight's command.

use super::*;

use serenity::builder::{CreateCommand, CreateCommandOption};
use serenity::model::application::{
    CommandData, CommandDataOption, CommandDataOptionValue, CommandOptionType,
};

pub const DEPLOY_SUBCOMMANDS: [&str; 8] = [
    "release", "status", "history", "lock", "unlock", "cancel", "why-not", "help",
];

/// The Discord form of a (sub)command's usage line.
pub fn discord_usage(command: &str, subcommand: Option<&str>) -> &'static str {
    match (command.trim_start_matches('/'), subcommand) {
        ("rollback", _) => "/rollback env:<env> [reason:<text>]",
        ("deploy", Some("release")) => {
            "/deploy release version:<version> env:<env> [service:<name>] [force:<reason>] [dry_run:<true|false>]"
        }
        ("deploy", Some("status")) => "/deploy status [env:<env>]",
        ("deploy", Some("history")) => "/deploy history env:<env> [limit:<n>]",
        ("deploy", Some("lock")) => "/deploy lock env:<env> reason:<text>",
        ("deploy", Some("unlock")) => "/deploy unlock env:<env>",
        ("deploy", Some("cancel")) => "/deploy cancel run:<run-id>",
        ("deploy", Some("why-not")) => "/deploy why-not version:<version> env:<env> [service:<name>]",
        ("deploy", Some("help")) => "/deploy help",
        _ => "/deploy release|status|history|lock|unlock|cancel|why-not|help, /rollback",
    }
}

/// Builds the chat text from the Discord command's name, subcommand and options (name -> string
/// value; booleans `"true"`/`"false"`, integers in decimal). `Err("<reason>. Usage: <usage>")`
/// when a required option is missing or a value cannot be carried over faithfully.
pub fn command_text(
    command: &str,
    subcommand: Option<&str>,
    options: &[(String, String)],
) -> Result<String, String> {
    let command = command.trim_start_matches('/');
    let usage = discord_usage(command, subcommand);
    let fail = |reason: String| Err(format!("{reason}. Usage: {usage}"));
    let get = |name: &str| {
        options
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let required = |name: &str| get(name).ok_or_else(|| format!("missing {name}. Usage: {usage}"));
    let positional = |name: &str, v: &str| {
        if v.starts_with("--") {
            Err(format!("invalid {name} \"{v}\". Usage: {usage}"))
        } else {
            Ok(quote_if_needed(v))
        }
    };

    match (command, subcommand) {
        ("rollback", None) => {
            let env = positional("env", required("env")?)?;
            Ok(match get("reason") {
                Some(reason) => format!("/rollback {env} {}", rest_of_line(reason)),
                None => format!("/rollback {env}"),
            })
        }
        ("rollback", Some(sub)) => fail(format!("/rollback has no subcommand \"{sub}\"")),
        ("deploy", None) => fail("choose a subcommand".to_string()),
        ("deploy", Some(sub)) => match sub {
            "release" | "why-not" => {
                let version = required("version")?;
                if is_subcommand_word(version) {
                    return fail(format!("invalid version \"{version}\""));
                }
                let version = positional("version", version)?;
                let env = positional("env", required("env")?)?;
                let mut text = if sub == "release" {
                    format!("/deploy {version} {env}")
                } else {
                    format!("/deploy why-not {version} {env}")
                };
                if let Some(service) = get("service") {
                    push_option(&mut text, "--service", service, false);
                }
                if sub == "release" {
                    if let Some(reason) = get("force") {
                        push_option(&mut text, "--force", reason, true);
                    }
                    match get("dry_run") {
                        None | Some("false") => {}
                        Some("true") => text.push_str(" --dry-run"),
                        Some(other) => {
                            return fail(format!("dry_run must be true or false, not \"{other}\""))
                        }
                    }
                }
                Ok(text)
            }
            "status" => Ok(match get("env") {
                Some(env) => format!("/deploy status {}", positional("env", env)?),
                None => "/deploy status".to_string(),
            }),
            "history" => {
                let env = positional("env", required("env")?)?;
                let mut text = format!("/deploy history {env}");
                if let Some(limit) = get("limit") {
                    push_option(&mut text, "--limit", limit, false);
                }
                Ok(text)
            }
            "lock" => {
                let env = positional("env", required("env")?)?;
                let reason = required("reason")?;
                Ok(format!("/deploy lock {env} {}", rest_of_line(reason)))
            }
            "unlock" => Ok(format!(
                "/deploy unlock {}",
                positional("env", required("env")?)?
            )),
            "cancel" => Ok(format!(
                "/deploy cancel {}",
                positional("run", required("run")?)?
            )),
            "help" => Ok("/deploy help".to_string()),
            other => fail(format!("unknown subcommand \"{other}\"")),
        },
        (other, _) => fail(format!("unknown command /{other}")),
    }
}

/// Words the chat grammar reads as a subcommand where a version is expected.
pub(super) fn is_subcommand_word(v: &str) -> bool {
    matches!(
        v,
        "status" | "history" | "lock" | "unlock" | "cancel" | "why-not" | "whynot" | "help"
    )
}

/// ` --name value`; a value starting with `--` goes inline (`--name=value`), because the chat
/// grammar would take it for an option. `always_quote` for free text (`--force "hotfix"`).
pub(super) fn push_option(text: &mut String, name: &str, value: &str, always_quote: bool) {
    let v = if always_quote {
        quote(value)
    } else {
        quote_if_needed(value)
    };
    if value.starts_with("--") {
        text.push_str(&format!(" {name}={v}"));
    } else {
        text.push_str(&format!(" {name} {v}"));
    }
}

/// A reason that the grammar takes as the rest of the line: as typed, unless it holds quote
/// characters (the chat tokenizer would eat them), then as one quoted token.
pub(super) fn rest_of_line(reason: &str) -> String {
    if reason.chars().any(is_quote_char) {
        quote(reason)
    } else {
        reason.to_string()
    }
}

pub(super) fn is_quote_char(c: char) -> bool {
    matches!(c, '"' | '\'' | '“' | '”' | '‘' | '’')
}

pub(super) fn quote_if_needed(v: &str) -> String {
    if v.is_empty() || v.chars().any(|c| c.is_whitespace() || is_quote_char(c)) {
        quote(v)
    } else {
        v.to_string()
    }
}

/// Quotes `v` as one token of greenlight's chat tokenizer (`core::command::tokenize`), which
/// knows no escapes but joins adjacent quoted pieces: `"` goes inside '...', everything else
/// inside "..." (where single and smart quotes are literal).
pub(super) fn quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    let mut in_double = false;
    for c in v.chars() {
        if c == '"' {
            if in_double {
                out.push('"');
                in_double = false;
            }
            out.push_str("'\"'");
        } else {
            if !in_double {
                out.push('"');
                in_double = true;
            }
            out.push(c);
        }
    }
    if in_double {
        out.push('"');
    }
    if out.is_empty() {
        out.push_str("\"\"");
    }
    out
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
            sub("help", "How to use greenlight", vec![]),
        ]);
    let rollback = CreateCommand::new("rollback")
        .description("Roll an environment back to its previous version")
        .set_options(vec![env(true), string("reason", "Why", false)]);
    vec![deploy, rollback]
}

/// An option's value as command text sees it.
pub(super) fn option_value(value: &CommandDataOptionValue) -> Option<String> {
    match value {
        CommandDataOptionValue::String(s) => Some(s.clone()),
        CommandDataOptionValue::Boolean(b) => Some(b.to_string()),
        CommandDataOptionValue::Integer(n) => Some(n.to_string()),
        CommandDataOptionValue::Number(n) => Some(n.to_string()),
        CommandDataOptionValue::Autocomplete { value, .. } => Some(value.clone()),
        CommandDataOptionValue::Channel(id) => Some(id.to_string()),
        CommandDataOptionValue::User(id) => Some(id.to_string()),
        CommandDataOptionValue::Role(id) => Some(id.to_string()),
        _ => None,
    }
}

/// (command, subcommand, options) of an invoked slash command.
pub fn command_parts(data: &CommandData) -> (String, Option<String>, Vec<(String, String)>) {
    fn flat(options: &[CommandDataOption]) -> Vec<(String, String)> {
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

/// The chat text of an invoked slash command (see [`command_text`]).
pub fn interaction_text(data: &CommandData) -> Result<String, String> {
    let (command, subcommand, options) = command_parts(data);
    command_text(&command, subcommand.as_deref(), &options)
}
