//! Chat text -> `Command`, with one-line usage errors. Knows the grammar, not the config.

use super::{EnvName, Platform, RunId};
use std::fmt;

pub const USAGE_DEPLOY: &str =
    "/deploy <version> <env> [--service NAME] [--force \"<reason>\"] [--dry-run]";
pub const USAGE_STATUS: &str = "/deploy status [<env>]";
pub const USAGE_HISTORY: &str = "/deploy history <env> [--limit N]";
pub const USAGE_LOCK: &str = "/deploy lock <env> <reason...>";
pub const USAGE_UNLOCK: &str = "/deploy unlock <env>";
pub const USAGE_CANCEL: &str = "/deploy cancel <run-id>";
pub const USAGE_WHY_NOT: &str = "/deploy why-not <version> <env> [--service NAME]";
pub const USAGE_HELP: &str = "/deploy help";
pub const USAGE_OVERRIDE: &str = "/deploy override <run-id> <item> \"<reason>\"";
pub const USAGE_ROLLBACK: &str = "/rollback <env> [<reason...>]";

/// Default and maximum number of runs `history` lists.
pub const HISTORY_DEFAULT_LIMIT: usize = 10;
pub const HISTORY_MAX_LIMIT: usize = 100;

/// The full help text.
pub fn help_text() -> String {
    [
        "greenlight commands:",
        USAGE_DEPLOY,
        USAGE_STATUS,
        USAGE_HISTORY,
        USAGE_LOCK,
        USAGE_UNLOCK,
        USAGE_CANCEL,
        USAGE_WHY_NOT,
        USAGE_HELP,
        USAGE_ROLLBACK,
        USAGE_OVERRIDE,
        "A version is v?MAJOR.MINOR.PATCH[-pre][+build] or a git sha (7 to 40 hex digits).",
        "Approve a checklist item with ✅ or 👍 on its reply; ❌ vetoes the run.",
    ]
    .join("\n")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployArgs {
    pub version: String,
    pub env: EnvName,
    pub service: Option<String>,
    pub force: Option<String>,
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Deploy(DeployArgs),
    Status {
        env: Option<EnvName>,
    },
    History {
        env: EnvName,
        limit: usize,
    },
    Lock {
        env: EnvName,
        reason: String,
    },
    Unlock {
        env: EnvName,
    },
    Cancel {
        run: RunId,
    },
    WhyNot {
        version: String,
        env: EnvName,
        service: Option<String>,
    },
    Help,
    Rollback {
        env: EnvName,
        reason: Option<String>,
    },
    /// Break-glass ticks a checklist item whose evidence is not green (`item` counts from 0).
    Override {
        run: RunId,
        item: usize,
        reason: String,
    },
}

impl Command {
    /// The environment the command is about, if any.
    pub fn env(&self) -> Option<&EnvName> {
        match self {
            Command::Deploy(d) => Some(&d.env),
            Command::Status { env } => env.as_ref(),
            Command::History { env, .. }
            | Command::Lock { env, .. }
            | Command::Unlock { env }
            | Command::WhyNot { env, .. }
            | Command::Rollback { env, .. } => Some(env),
            Command::Cancel { .. } | Command::Help | Command::Override { .. } => None,
        }
    }

    /// The one-line usage of this command's subcommand.
    pub fn usage(&self) -> &'static str {
        match self {
            Command::Deploy(_) => USAGE_DEPLOY,
            Command::Status { .. } => USAGE_STATUS,
            Command::History { .. } => USAGE_HISTORY,
            Command::Lock { .. } => USAGE_LOCK,
            Command::Unlock { .. } => USAGE_UNLOCK,
            Command::Cancel { .. } => USAGE_CANCEL,
            Command::WhyNot { .. } => USAGE_WHY_NOT,
            Command::Help => USAGE_HELP,
            Command::Rollback { .. } => USAGE_ROLLBACK,
            Command::Override { .. } => USAGE_OVERRIDE,
        }
    }

    /// The usage line in the grammar of the platform the command came from: Discord's slash
    /// commands take named options, the others the chat text.
    pub fn usage_on(&self, platform: Platform) -> &'static str {
        if platform != Platform::Discord {
            return self.usage();
        }
        match self {
            Command::Deploy(_) => DISCORD_USAGE_DEPLOY,
            Command::Status { .. } => DISCORD_USAGE_STATUS,
            Command::History { .. } => DISCORD_USAGE_HISTORY,
            Command::Lock { .. } => DISCORD_USAGE_LOCK,
            Command::Unlock { .. } => DISCORD_USAGE_UNLOCK,
            Command::Cancel { .. } => DISCORD_USAGE_CANCEL,
            Command::WhyNot { .. } => DISCORD_USAGE_WHY_NOT,
            Command::Help => DISCORD_USAGE_HELP,
            Command::Rollback { .. } => DISCORD_USAGE_ROLLBACK,
            Command::Override { .. } => DISCORD_USAGE_OVERRIDE,
        }
    }
}

/// Discord's grammar: slash commands with typed options (it takes no free text after
/// `/deploy`).
pub const DISCORD_USAGE_DEPLOY: &str = "/deploy release version:<version> env:<env> [service:<name>] [force:<reason>] [dry_run:<true|false>]";
pub const DISCORD_USAGE_STATUS: &str = "/deploy status [env:<env>]";
pub const DISCORD_USAGE_HISTORY: &str = "/deploy history env:<env> [limit:<n>]";
pub const DISCORD_USAGE_LOCK: &str = "/deploy lock env:<env> reason:<text>";
pub const DISCORD_USAGE_UNLOCK: &str = "/deploy unlock env:<env>";
pub const DISCORD_USAGE_CANCEL: &str = "/deploy cancel run:<run-id>";
pub const DISCORD_USAGE_WHY_NOT: &str =
    "/deploy why-not version:<version> env:<env> [service:<name>]";
pub const DISCORD_USAGE_HELP: &str = "/deploy help";
pub const DISCORD_USAGE_ROLLBACK: &str = "/rollback env:<env> [reason:<text>]";
pub const DISCORD_USAGE_OVERRIDE: &str = "/deploy override run:<run-id> item:<n> reason:<text>";
/// Discord's commands, for an invocation that names none of them.
pub const DISCORD_USAGE_ANY: &str =
    "/deploy release|status|history|lock|unlock|cancel|why-not|override|help, /rollback";

/// What is wrong with a command, plus the usage of the subcommand it was meant as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    pub reason: String,
    pub usage: &'static str,
}

impl UsageError {
    pub fn new(reason: impl Into<String>, usage: &'static str) -> Self {
        UsageError {
            reason: reason.into(),
            usage,
        }
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}. Usage: {}", self.reason, self.usage)
    }
}

impl std::error::Error for UsageError {}

/// Is this chat text a greenlight command at all? (`/deploy` or `/rollback` as its first word.)
pub fn is_command(text: &str) -> bool {
    let first = text.split_whitespace().next().unwrap_or("");
    first == "/deploy" || first == "/rollback"
}

/// Parses `/deploy ...` or `/rollback ...`. `None` when the text is not a command.
pub fn parse(text: &str) -> Option<Result<Command, UsageError>> {
    parse_with(text, &[])
}

/// Like `parse`, also accepting versions that match one of the configured `version_pattern`s
/// (the engine then checks the pattern of the environment named).
pub fn parse_with(text: &str, patterns: &[String]) -> Option<Result<Command, UsageError>> {
    if !is_command(text) {
        return None;
    }
    let trimmed = text.trim_start();
    let (head, rest) = trimmed
        .split_once(char::is_whitespace)
        .unwrap_or((trimmed, ""));
    Some(match head {
        "/deploy" => parse_deploy_with(rest, patterns),
        _ => parse_rollback(rest),
    })
}

fn parse_deploy_with(args: &str, patterns: &[String]) -> Result<Command, UsageError> {
    let tokens = tokenize(args).map_err(|e| UsageError::new(e, USAGE_DEPLOY))?;
    let Some(first) = tokens.first() else {
        return Err(UsageError::new(
            "missing version and environment",
            USAGE_DEPLOY,
        ));
    };
    let rest = &tokens[1..];
    match first.as_str() {
        "status" => parse_status(rest),
        "history" => parse_history(rest),
        "lock" => parse_lock(rest),
        "unlock" => parse_unlock(rest),
        "cancel" => parse_cancel(rest),
        "override" => parse_override(rest),
        "why-not" | "whynot" => {
            let (pos, opts) = split_options(rest, &["--service"], USAGE_WHY_NOT)?;
            let mut service = None;
            for (name, value) in opts {
                if name == "--service" {
                    service = Some(service_name(value, USAGE_WHY_NOT)?);
                }
            }
            let (version, env) = version_env(&pos, patterns, USAGE_WHY_NOT)?;
            Ok(Command::WhyNot {
                version,
                env,
                service,
            })
        }
        "help" => {
            if rest.is_empty() {
                Ok(Command::Help)
            } else {
                Err(extra(rest, USAGE_HELP))
            }
        }
        _ => parse_release(&tokens, patterns),
    }
}

fn parse_status(rest: &[String]) -> Result<Command, UsageError> {
    let (pos, opts) = split_options(rest, &[], USAGE_STATUS)?;
    no_opts(&opts, USAGE_STATUS)?;
    match pos.as_slice() {
        [] => Ok(Command::Status { env: None }),
        [env] => Ok(Command::Status {
            env: Some(env_name(env, USAGE_STATUS)?),
        }),
        _ => Err(extra(&pos[1..], USAGE_STATUS)),
    }
}

fn parse_history(rest: &[String]) -> Result<Command, UsageError> {
    let (pos, opts) = split_options(rest, &["--limit"], USAGE_HISTORY)?;
    let mut limit = HISTORY_DEFAULT_LIMIT;
    for (name, value) in opts {
        if name == "--limit" {
            let v = value.unwrap_or_default();
            limit = match v.parse::<usize>() {
                Ok(n) if (1..=HISTORY_MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(UsageError::new(
                        format!(
                            "--limit must be a number from 1 to {HISTORY_MAX_LIMIT}, not \"{}\"",
                            printable(&v)
                        ),
                        USAGE_HISTORY,
                    ))
                }
            };
        }
    }
    match pos.as_slice() {
        [] => Err(UsageError::new("missing environment", USAGE_HISTORY)),
        [env] => Ok(Command::History {
            env: env_name(env, USAGE_HISTORY)?,
            limit,
        }),
        _ => Err(extra(&pos[1..], USAGE_HISTORY)),
    }
}

fn parse_lock(rest: &[String]) -> Result<Command, UsageError> {
    let Some(env) = rest.first() else {
        return Err(UsageError::new("missing environment", USAGE_LOCK));
    };
    let env = env_name(env, USAGE_LOCK)?;
    let reason = rest[1..].join(" ");
    if reason.trim().is_empty() {
        return Err(UsageError::new(
            "a lock needs a reason, so that others know why",
            USAGE_LOCK,
        ));
    }
    Ok(Command::Lock { env, reason })
}

fn parse_unlock(rest: &[String]) -> Result<Command, UsageError> {
    let (pos, opts) = split_options(rest, &[], USAGE_UNLOCK)?;
    no_opts(&opts, USAGE_UNLOCK)?;
    match pos.as_slice() {
        [] => Err(UsageError::new("missing environment", USAGE_UNLOCK)),
        [env] => Ok(Command::Unlock {
            env: env_name(env, USAGE_UNLOCK)?,
        }),
        _ => Err(extra(&pos[1..], USAGE_UNLOCK)),
    }
}

fn parse_cancel(rest: &[String]) -> Result<Command, UsageError> {
    let (pos, opts) = split_options(rest, &[], USAGE_CANCEL)?;
    no_opts(&opts, USAGE_CANCEL)?;
    match pos.as_slice() {
        [] => Err(UsageError::new("missing run number", USAGE_CANCEL)),
        [id] => {
            let digits = id.trim_start_matches('#');
            match digits.parse::<u64>() {
                Ok(n) if n > 0 => Ok(Command::Cancel { run: RunId(n) }),
                _ => Err(UsageError::new(
                    format!("\"{}\" is not a run number", printable(id)),
                    USAGE_CANCEL,
                )),
            }
        }
        _ => Err(extra(&pos[1..], USAGE_CANCEL)),
    }
}

/// `/deploy override <run-id> <item> "<reason>"`: the reason is what follows the item.
fn parse_override(rest: &[String]) -> Result<Command, UsageError> {
    let u = USAGE_OVERRIDE;
    let (run, item) = match rest {
        [] => return Err(UsageError::new("missing run number", u)),
        [_] => return Err(UsageError::new("missing item number", u)),
        [run, item, ..] => (run, item),
    };
    let run = match run.trim_start_matches('#').parse::<u64>() {
        Ok(n) if n > 0 => RunId(n),
        _ => {
            let e = format!("\"{}\" is not a run number", printable(run));
            return Err(UsageError::new(e, u));
        }
    };
    let item = match item.parse::<usize>() {
        Ok(n) if n > 0 => n - 1,
        _ => {
            let e = format!("\"{}\" is not an item number", printable(item));
            return Err(UsageError::new(e, u));
        }
    };
    let reason = rest[2..].join(" ");
    if reason.trim().is_empty() {
        return Err(UsageError::new(
            "an override needs a reason in quotes, e.g. \"CI is down, tested by hand: INC-7\"",
            u,
        ));
    }
    Ok(Command::Override { run, item, reason })
}

/// `/deploy <version> <env> [--service NAME] [--force "<reason>"] [--dry-run]`.
fn parse_release(tokens: &[String], patterns: &[String]) -> Result<Command, UsageError> {
    let (pos, opts) = split_options(tokens, &["--service", "--force", "--dry-run"], USAGE_DEPLOY)?;
    let mut args = DeployArgs {
        version: String::new(),
        env: EnvName::new(""),
        service: None,
        force: None,
        dry_run: false,
    };
    for (name, value) in opts {
        match name.as_str() {
            "--service" => args.service = Some(service_name(value, USAGE_DEPLOY)?),
            "--force" => {
                let reason = value.unwrap_or_default();
                if reason.trim().is_empty() {
                    return Err(UsageError::new(
                        "--force needs a reason in quotes, e.g. --force \"hotfix for INC-123\"",
                        USAGE_DEPLOY,
                    ));
                }
                args.force = Some(reason);
            }
            _ => args.dry_run = true,
        }
    }
    let (version, env) = version_env(&pos, patterns, USAGE_DEPLOY)?;
    args.version = version;
    args.env = env;
    Ok(Command::Deploy(args))
}

/// Parses the arguments of `/rollback`.
pub fn parse_rollback(args: &str) -> Result<Command, UsageError> {
    let tokens = tokenize(args).map_err(|e| UsageError::new(e, USAGE_ROLLBACK))?;
    let Some(env) = tokens.first() else {
        return Err(UsageError::new("missing environment", USAGE_ROLLBACK));
    };
    let env = env_name(env, USAGE_ROLLBACK)?;
    let reason = tokens[1..].join(" ");
    Ok(Command::Rollback {
        env,
        reason: if reason.trim().is_empty() {
            None
        } else {
            Some(reason)
        },
    })
}

fn extra(tokens: &[String], usage: &'static str) -> UsageError {
    UsageError::new(
        format!("unexpected \"{}\"", printable(&tokens.join(" "))),
        usage,
    )
}

fn no_opts(opts: &[(String, Option<String>)], usage: &'static str) -> Result<(), UsageError> {
    match opts.first() {
        Some((name, _)) => Err(UsageError::new(format!("unknown option {name}"), usage)),
        None => Ok(()),
    }
}

/// A version as the grammar takes it: semver or a git sha, or one matching a configured
/// `version_pattern`.
pub fn version(v: &str, patterns: &[String], usage: &'static str) -> Result<String, UsageError> {
    if patterns.iter().any(|p| matches_pattern(p, v)) {
        return Ok(v.to_string());
    }
    check_version(v)
        .map(|()| v.to_string())
        .map_err(|e| UsageError::new(e, usage))
}

fn version_env(
    pos: &[String],
    patterns: &[String],
    usage: &'static str,
) -> Result<(String, EnvName), UsageError> {
    let check = |v: &str| version(v, patterns, usage).map(|_| ());
    match pos {
        [] => Err(UsageError::new("missing version and environment", usage)),
        [v] => {
            check(v)?;
            Err(UsageError::new("missing environment", usage))
        }
        [v, env] => {
            check(v)?;
            Ok((v.clone(), env_name(env, usage)?))
        }
        [v, _, more @ ..] => {
            check(v)?;
            Err(extra(more, usage))
        }
    }
}

/// Characters a version may carry when it matches a configured pattern (it ends up in
/// commands and URLs): letters, digits, `.`, `_`, `-`, `+`.
fn safe_version_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+')
}

/// Is `pattern` a usable `version_pattern`? Safe characters and `*` only, not just `*`.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() || pattern.chars().all(|c| c == '*') {
        return Err(format!(
            "version_pattern \"{pattern}\" must have more than `*`"
        ));
    }
    match pattern.chars().find(|c| *c != '*' && !safe_version_char(*c)) {
        Some(c) => Err(format!(
            "version_pattern \"{pattern}\": '{c}' is not allowed (letters, digits, . _ - + and * only)"
        )),
        None => Ok(()),
    }
}

/// Glob match where `*` stands for one or more safe characters; the version must consist of
/// safe characters only, at most 128, and not start with `-`.
pub fn matches_pattern(pattern: &str, v: &str) -> bool {
    if v.is_empty() || v.len() > 128 || v.starts_with('-') || !v.chars().all(safe_version_char) {
        return false;
    }
    fn go(p: &[u8], v: &[u8]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some((b'*', rest)) => (1..=v.len()).any(|n| go(rest, &v[n..])),
            Some((c, rest)) => v.first() == Some(c) && go(rest, &v[1..]),
        }
    }
    check_pattern(pattern).is_ok() && go(pattern.as_bytes(), v.as_bytes())
}

pub fn service_name(value: Option<String>, usage: &'static str) -> Result<String, UsageError> {
    let v = value.unwrap_or_default();
    if is_name(&v) {
        Ok(v)
    } else {
        Err(UsageError::new(
            format!(
                "invalid service name \"{}\": use letters, digits, - and _",
                printable(&v)
            ),
            usage,
        ))
    }
}

pub fn env_name(s: &str, usage: &'static str) -> Result<EnvName, UsageError> {
    if is_name(s) {
        Ok(EnvName::new(s))
    } else {
        Err(UsageError::new(
            format!(
                "invalid environment name \"{}\": use letters, digits, - and _",
                printable(s)
            ),
            usage,
        ))
    }
}

/// A name usable for environments and services: ASCII letters, digits, `-`, `_`, at most 64.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !s.starts_with('-')
}

/// Checks a version: `v?MAJOR.MINOR.PATCH[-pre][+build]` or a git sha of 7 to 40 hex digits.
/// It ends up in commands and URLs, so anything else is refused.
pub fn check_version(v: &str) -> Result<(), String> {
    if is_semver(v) || is_git_sha(v) {
        Ok(())
    } else {
        Err(format!(
            "invalid version \"{}\": expected v?MAJOR.MINOR.PATCH[-pre][+build] or a git sha (7 to 40 hex digits)",
            printable(v)
        ))
    }
}

/// User input echoed in an answer: control characters dropped, at most 60 characters.
pub fn printable(v: &str) -> String {
    let s: String = v.chars().filter(|c| !c.is_control()).collect();
    super::message::clip(&s, 60)
}

pub fn is_git_sha(v: &str) -> bool {
    (7..=40).contains(&v.len()) && v.chars().all(|c| c.is_ascii_hexdigit())
}

pub fn is_semver(v: &str) -> bool {
    if v.len() > 128 {
        return false;
    }
    let v = v.strip_prefix('v').unwrap_or(v);
    let (rest, build) = match v.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let nums: Vec<&str> = core.split('.').collect();
    if nums.len() != 3
        || !nums.iter().all(|n| {
            !n.is_empty()
                && n.chars().all(|c| c.is_ascii_digit())
                && (n.len() == 1 || !n.starts_with('0'))
        })
    {
        return false;
    }
    let ident_ok = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|id| {
                !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
    };
    pre.is_none_or(ident_ok) && build.is_none_or(ident_ok)
}

/// Splits arguments on whitespace, honouring "double", 'single' and “smart” quotes
/// (Slack turns straight quotes into smart ones).
pub fn tokenize(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_token = false;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match quote {
            Some(q) => {
                let closes = match q {
                    '“' | '”' => c == '”' || c == '“',
                    '‘' | '’' => c == '’' || c == '‘',
                    _ => c == q,
                };
                if closes {
                    quote = None;
                } else {
                    cur.push(c);
                }
            }
            None => {
                if c.is_whitespace() {
                    if in_token {
                        out.push(std::mem::take(&mut cur));
                        in_token = false;
                    }
                } else if matches!(c, '"' | '\'' | '“' | '”' | '‘' | '’') {
                    quote = Some(c);
                    in_token = true;
                } else {
                    cur.push(c);
                    in_token = true;
                }
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".to_string());
    }
    if in_token {
        out.push(cur);
    }
    Ok(out)
}

type Opts = Vec<(String, Option<String>)>;

/// Separates `--name [value]` options from positional arguments. `allowed` lists the option
/// names; `--dry-run` takes no value, every other option takes one (also as `--name=value`).
fn split_options(
    tokens: &[String],
    allowed: &[&str],
    usage: &'static str,
) -> Result<(Vec<String>, Opts), UsageError> {
    let mut pos = Vec::new();
    let mut opts = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        if let Some(stripped) = t.strip_prefix("--") {
            let (name, inline) = match stripped.split_once('=') {
                Some((n, v)) => (format!("--{n}"), Some(v.to_string())),
                None => (t.clone(), None),
            };
            if !allowed.contains(&name.as_str()) {
                return Err(UsageError::new(format!("unknown option {name}"), usage));
            }
            if opts.iter().any(|(n, _)| *n == name) {
                return Err(UsageError::new(format!("{name} given twice"), usage));
            }
            if name == "--dry-run" {
                if inline.is_some() {
                    return Err(UsageError::new("--dry-run takes no value", usage));
                }
                opts.push((name, None));
            } else if inline.is_some() {
                opts.push((name, inline));
            } else {
                i += 1;
                match tokens.get(i) {
                    Some(v) if !v.starts_with("--") => opts.push((name, Some(v.clone()))),
                    _ => return Err(UsageError::new(format!("{name} needs a value"), usage)),
                }
            }
        } else {
            pos.push(t.clone());
        }
        i += 1;
    }
    Ok((pos, opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(v: &str, env: &str) -> Command {
        Command::Deploy(DeployArgs {
            version: v.into(),
            env: EnvName::new(env),
            service: None,
            force: None,
            dry_run: false,
        })
    }

    #[test]
    fn valid_commands() {
        let cases: Vec<(&str, Command)> = vec![
            ("/deploy v1.2.0 prod", deploy("v1.2.0", "prod")),
            ("/deploy 1.2.0 staging", deploy("1.2.0", "staging")),
            (
                "  /deploy   v1.2.0-rc.1+b5   prod ",
                deploy("v1.2.0-rc.1+b5", "prod"),
            ),
            ("/deploy abc1234 prod", deploy("abc1234", "prod")),
            (
                "/deploy v1.2.0 prod --force \"hotfix for INC-1\"",
                Command::Deploy(DeployArgs {
                    force: Some("hotfix for INC-1".into()),
                    ..match deploy("v1.2.0", "prod") {
                        Command::Deploy(d) => d,
                        _ => unreachable!(),
                    }
                }),
            ),
            (
                "/deploy v1.2.0 prod --force “smart quotes” --dry-run --service api",
                Command::Deploy(DeployArgs {
                    version: "v1.2.0".into(),
                    env: EnvName::new("prod"),
                    service: Some("api".into()),
                    force: Some("smart quotes".into()),
                    dry_run: true,
                }),
            ),
            ("/deploy status", Command::Status { env: None }),
            (
                "/deploy status prod",
                Command::Status {
                    env: Some(EnvName::new("prod")),
                },
            ),
            (
                "/deploy history prod --limit 5",
                Command::History {
                    env: EnvName::new("prod"),
                    limit: 5,
                },
            ),
            (
                "/deploy history prod",
                Command::History {
                    env: EnvName::new("prod"),
                    limit: HISTORY_DEFAULT_LIMIT,
                },
            ),
            (
                "/deploy lock prod db migration running",
                Command::Lock {
                    env: EnvName::new("prod"),
                    reason: "db migration running".into(),
                },
            ),
            (
                "/deploy unlock prod",
                Command::Unlock {
                    env: EnvName::new("prod"),
                },
            ),
            ("/deploy cancel 42", Command::Cancel { run: RunId(42) }),
            ("/deploy cancel #42", Command::Cancel { run: RunId(42) }),
            (
                "/deploy why-not v1.2.0 prod",
                Command::WhyNot {
                    version: "v1.2.0".into(),
                    env: EnvName::new("prod"),
                    service: None,
                },
            ),
            ("/deploy help", Command::Help),
            (
                "/rollback prod",
                Command::Rollback {
                    env: EnvName::new("prod"),
                    reason: None,
                },
            ),
            (
                "/rollback prod errors after release",
                Command::Rollback {
                    env: EnvName::new("prod"),
                    reason: Some("errors after release".into()),
                },
            ),
            (
                "/deploy override 3 1 \"CI is down, tested by hand\"",
                Command::Override {
                    run: RunId(3),
                    item: 0,
                    reason: "CI is down, tested by hand".into(),
                },
            ),
            (
                "/deploy override #3 2 flaky runner",
                Command::Override {
                    run: RunId(3),
                    item: 1,
                    reason: "flaky runner".into(),
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Some(Ok(want)), "{text}");
        }
    }

    #[test]
    fn malformed_commands_name_the_problem_and_the_usage() {
        let cases: Vec<(&str, &str, &str)> = vec![
            ("/deploy", "missing version and environment", USAGE_DEPLOY),
            (
                "/deploy 1.2 nowhere",
                "invalid version \"1.2\"",
                USAGE_DEPLOY,
            ),
            (
                "/deploy v1.2.0;rm -rf / prod",
                "invalid version \"v1.2.0;rm\"",
                USAGE_DEPLOY,
            ),
            ("/deploy v1.2.0", "missing environment", USAGE_DEPLOY),
            ("/deploy override 3 1", "needs a reason", USAGE_OVERRIDE),
            (
                "/deploy override 3 x \"r\"",
                "not an item number",
                USAGE_OVERRIDE,
            ),
            (
                "/deploy override 0 1 \"r\"",
                "not a run number",
                USAGE_OVERRIDE,
            ),
            (
                "/deploy v1.2.0 prod extra",
                "unexpected \"extra\"",
                USAGE_DEPLOY,
            ),
            (
                "/deploy v1.2.0 prod --yolo",
                "unknown option --yolo",
                USAGE_DEPLOY,
            ),
            (
                "/deploy v1.2.0 prod --force",
                "--force needs a value",
                USAGE_DEPLOY,
            ),
            (
                "/deploy v1.2.0 prod --force \"\"",
                "--force needs a reason",
                USAGE_DEPLOY,
            ),
            (
                "/deploy v1.2.0 prod --force \"oops",
                "unterminated quote",
                USAGE_DEPLOY,
            ),
            (
                "/deploy v1.2.0 pr$od",
                "invalid environment name",
                USAGE_DEPLOY,
            ),
            ("/deploy v01.2.0 prod", "invalid version", USAGE_DEPLOY),
            ("/deploy v1.2.0- prod", "invalid version", USAGE_DEPLOY),
            ("/deploy 12345 prod", "invalid version", USAGE_DEPLOY),
            ("/deploy $(reboot) prod", "invalid version", USAGE_DEPLOY),
            ("/deploy history", "missing environment", USAGE_HISTORY),
            (
                "/deploy history prod --limit 0",
                "--limit must be",
                USAGE_HISTORY,
            ),
            (
                "/deploy history prod --limit x",
                "--limit must be",
                USAGE_HISTORY,
            ),
            ("/deploy lock prod", "a lock needs a reason", USAGE_LOCK),
            ("/deploy lock", "missing environment", USAGE_LOCK),
            ("/deploy unlock", "missing environment", USAGE_UNLOCK),
            ("/deploy cancel abc", "is not a run number", USAGE_CANCEL),
            ("/deploy cancel 0", "is not a run number", USAGE_CANCEL),
            (
                "/deploy why-not prod",
                "invalid version \"prod\"",
                USAGE_WHY_NOT,
            ),
            ("/deploy status a b", "unexpected \"b\"", USAGE_STATUS),
            ("/deploy help me", "unexpected \"me\"", USAGE_HELP),
            ("/rollback", "missing environment", USAGE_ROLLBACK),
        ];
        for (text, reason, usage) in cases {
            let err = parse(text).expect("a command").expect_err(text);
            assert!(
                err.reason.contains(reason),
                "{text}: got {:?}, want {reason:?}",
                err.reason
            );
            assert_eq!(err.usage, usage, "{text}");
            let line = err.to_string();
            assert!(!line.contains('\n'), "one line: {line}");
            assert!(line.ends_with(usage));
        }
    }

    #[test]
    fn non_commands_are_not_parsed() {
        for t in ["hello", "deploy v1 prod", "/deployx v1.2.0 prod", ""] {
            assert_eq!(parse(t), None, "{t}");
        }
    }

    #[test]
    fn versions() {
        for ok in [
            "1.2.3",
            "v1.2.3",
            "v0.0.0",
            "v1.3.0-faulty",
            "v1.2.3-rc.1",
            "v1.2.3+build.5",
            "v1.2.3-alpha-2+x",
            "deadbee",
            "0123456789abcdef0123456789abcdef01234567",
        ] {
            assert!(check_version(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "v",
            "1.2",
            "1.2.3.4",
            "v1.2.3;",
            "v1.2.3 ",
            "v1.2.3-",
            "v1.2.3+",
            "v1.2.3-a..b",
            "01.2.3",
            "abc123",
            "0123456789abcdef0123456789abcdef012345678",
            "../etc",
            "v1.2.3/x",
            "V1.2.3",
        ] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn version_patterns() {
        let pats = vec!["release-*".to_string(), "build-*-prod".to_string()];
        for (v, ok) in [
            ("release-42", true),
            ("release-2026.11.26", true),
            ("release-", false),
            ("release-4;rm", false),
            ("build-7-prod", true),
            ("build--prod", false),
            ("nightly-1", false),
        ] {
            assert_eq!(pats.iter().any(|p| matches_pattern(p, v)), ok, "{v}");
        }
        let cmd = parse_with("/deploy release-42 prod", &pats)
            .unwrap()
            .unwrap();
        assert!(matches!(cmd, Command::Deploy(ref d) if d.version == "release-42"));
        assert!(
            parse("/deploy release-42 prod").unwrap().is_err(),
            "without the pattern it is refused"
        );
        assert!(parse_with("/deploy release-4$(id) prod", &pats)
            .unwrap()
            .is_err());
        assert!(check_pattern("*").is_err());
        assert!(check_pattern("rel/*").is_err());
        assert!(check_pattern("rel-*").is_ok());
    }

    #[test]
    fn tokenizer() {
        assert_eq!(
            tokenize("a \"b c\" 'd e' “f g”").unwrap(),
            vec!["a", "b c", "d e", "f g"]
        );
        assert_eq!(tokenize("x \"\"").unwrap(), vec!["x", ""]);
        assert!(tokenize("\"open").is_err());
    }
}
