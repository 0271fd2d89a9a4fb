//! greenlight's command line: run the bot, check a config, read history, serve the demo app.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use greenlight::config::{self, Config};
use greenlight::core::EnvName;
use std::path::PathBuf;
use std::sync::Arc;

const DEFAULT_CONFIG_PATH: &str = "config/greenlight.toml";
const EMBEDDED_CONFIG: &str = include_str!("../config/greenlight.toml");

#[derive(Parser)]
#[command(
    name = "greenlight",
    version,
    about = "Chat-ops deploy bot: checklists, freeze windows, blue-green deploys with automatic rollback"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the bot.
    Run {
        #[arg(long, env = "GREENLIGHT_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, env = "GREENLIGHT_LISTEN")]
        listen: Option<String>,
        #[arg(long, env = "GREENLIGHT_DATA")]
        data: Option<PathBuf>,
    },
    /// Validate a config file; errors name the line.
    CheckConfig { file: Option<PathBuf> },
    /// List an environment's runs, newest first.
    History {
        env: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long, env = "GREENLIGHT_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, env = "GREENLIGHT_DATA")]
        data: Option<PathBuf>,
        #[arg(long, env = "GREENLIGHT_LISTEN")]
        listen: Option<String>,
    },
    /// Exit 0 when the running bot answers its health check (for container HEALTHCHECKs).
    Healthcheck {
        /// Base URL of the bot; default http:// + GREENLIGHT_LISTEN or 127.0.0.1:8080.
        #[arg(long)]
        url: Option<String>,
    },
    /// Serve the bundled demo app (used by the `local` driver).
    DemoApp {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        #[arg(long)]
        version: String,
        #[arg(long, default_value = "blue")]
        colour: String,
    },
}

fn load_config(path: Option<PathBuf>) -> Result<Config> {
    let lookup = |n: &str| std::env::var(n).ok();
    match path {
        Some(p) => config::load(&p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display())),
        None if std::path::Path::new(DEFAULT_CONFIG_PATH).exists() => {
            config::load(std::path::Path::new(DEFAULT_CONFIG_PATH))
                .map_err(|e| anyhow::anyhow!("{DEFAULT_CONFIG_PATH}: {e}"))
        }
        None => config::parse(EMBEDDED_CONFIG, &lookup)
            .map_err(|e| anyhow::anyhow!("built-in config: {e}")),
    }
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GREENLIGHT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("GREENLIGHT_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::CheckConfig { file } => check_config(file),
        Cmd::DemoApp {
            listen,
            version,
            colour,
        } => runtime(1)
            .block_on(demo_app(listen, version, colour))
            .map(|_| 0),
        Cmd::Healthcheck { url } => healthcheck(url),
        Cmd::History {
            env,
            limit,
            config,
            data,
            listen,
        } => history(env, limit, config, data, listen),
        Cmd::Run {
            config,
            listen,
            data,
        } => {
            init_logs();
            runtime(2).block_on(run(config, listen, data)).map(|_| 0)
        }
    };
    match code {
        Ok(c) => std::process::exit(c),
        Err(e) => {
            eprintln!("greenlight: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Lets go of the pages of code and constants that only starting needed. The executable is
/// 19 MB of code; starting (config, clap, TLS roots, sled's recovery, 100 environments'
/// drivers) runs a little of it all over, and Linux maps 64 KiB around every page it faults
/// in, so at rest half of the resident set was code that never runs again. Dropping the mapping
/// of read-only file pages (`MADV_DONTNEED`) frees them for the page cache: what runs later is
/// mapped again on its first use, from the page cache (a minor fault, about a microsecond).
/// Only mappings that hold no private copy are touched (`Anonymous: 0`: never written, so
/// relocated data under RELRO is left alone); writable mappings and the heap never.
/// `GREENLIGHT_KEEP_STARTUP_PAGES=1` skips it (for comparison).
fn release_startup_pages() {
    if std::env::var_os("GREENLIGHT_KEEP_STARTUP_PAGES").is_some() {
        return;
    }
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let Some((a, b)) = f.first().and_then(|r| r.split_once('-')) {
            // A mapping's header: "start-end perms offset dev inode [path]".
            current = None;
            let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            else {
                continue;
            };
            let file = f.len() >= 6 && f[4] != "0" && f[5].starts_with('/');
            let read_only = f.get(1).is_some_and(|p| !p.contains('w'));
            if file && read_only {
                current = Some((a, b));
            }
        } else if f.first() == Some(&"Anonymous:") && f.get(1) == Some(&"0") {
            if let Some((a, b)) = current.take() {
                // SAFETY: a range of our own read-only, never-written file mappings (read from
                // /proc/self/smaps): dropping its pages loses nothing, the next access maps the
                // same file page again.
                unsafe {
                    libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED);
                }
            }
        }
    }
}

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn healthcheck(url: Option<String>) -> Result<i32> {
    let base = url.unwrap_or_else(|| {
        let listen = std::env::var("GREENLIGHT_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
        // A wildcard listen address is reached on loopback.
        let listen = listen
            .replace("0.0.0.0", "127.0.0.1")
            .replace("[::]", "[::1]");
        format!("http://{listen}")
    });
    let ok = runtime(1).block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(3))
            .build()?;
        anyhow::Ok(
            client
                .get(format!("{base}/healthz"))
                .send()
                .await?
                .status()
                .is_success(),
        )
    });
    match ok {
        Ok(true) => Ok(0),
        Ok(false) => {
            eprintln!("greenlight: {base}/healthz is not healthy");
            Ok(1)
        }
        Err(e) => {
            eprintln!("greenlight: {base}/healthz: {e:#}");
            Ok(1)
        }
    }
}

fn check_config(file: Option<PathBuf>) -> Result<i32> {
    let path = file.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            println!("{}: cannot read: {e}", path.display());
            return Ok(1);
        }
    };
    // Secrets missing from this shell are reported, not fatal: the file itself is valid, and
    // `greenlight run` refuses to start without them.
    let missing = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let lookup = |name: &str| {
        const PLATFORM_TOKENS: [&str; 4] = [
            "SLACK_BOT_TOKEN",
            "SLACK_APP_TOKEN",
            "SLACK_SIGNING_SECRET",
            "DISCORD_TOKEN",
        ];
        if PLATFORM_TOKENS.contains(&name) {
            return std::env::var(name).ok();
        }
        std::env::var(name).ok().or_else(|| {
            missing.borrow_mut().insert(name.to_string());
            Some(format!("<{name}>"))
        })
    };
    match config::parse(&text, &lookup) {
        Ok(c) => {
            for w in &c.warnings {
                println!("warning: {w}");
            }
            for name in missing.borrow().iter() {
                println!(
                    "warning: {name} is not set in this environment: `greenlight run` needs it"
                );
            }
            println!(
                "{}: ok ({} environments, {} users, {} freeze windows)",
                path.display(),
                c.environments.len(),
                c.users.len(),
                c.freezes.len()
            );
            Ok(0)
        }
        Err(e) => {
            println!(
                "{}:{}",
                path.display(),
                match e.line {
                    Some(l) => format!("{l}: {}", e.message),
                    None => format!(" {}", e.message),
                }
            );
            Ok(1)
        }
    }
}

async fn demo_app(listen: String, version: String, colour: String) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("listening on http://{}", listener.local_addr()?);
    use std::io::Write;
    std::io::stdout().flush()?;
    greenlight::demo_app::serve(
        listener,
        greenlight::demo_app::DemoOptions { version, colour },
    )
    .await
}

fn history(
    env: String,
    limit: usize,
    config: Option<PathBuf>,
    data: Option<PathBuf>,
    listen: Option<String>,
) -> Result<i32> {
    let mut cfg = load_config(config)?;
    if let Some(d) = data {
        cfg.bot.data_dir = d;
    }
    let env = EnvName::new(env);
    if !cfg.environments.contains_key(&env) {
        println!("unknown environment \"{env}\" (known: {})", cfg.env_names());
        return Ok(1);
    }
    let tz = cfg.bot.timezone;
    let runs = match greenlight::store::Store::open(&cfg.bot.data_dir, cfg.bot.cache_bytes) {
        Ok(store) => store.history(&env, limit)?,
        Err(_) => {
            // The running bot holds the store: ask it.
            let addr = listen.unwrap_or(cfg.bot.listen.clone());
            let url = format!("http://{addr}/api/history/{env}?limit={limit}");
            runtime(1).block_on(async {
                let r = reqwest::Client::builder()
                    .no_proxy()
                    .build()?
                    .get(&url)
                    .send()
                    .await
                    .with_context(|| {
                        format!("the store is in use and the running bot does not answer at {addr}")
                    })?;
                anyhow::Ok(
                    r.error_for_status()?
                        .json::<Vec<greenlight::core::engine::Run>>()
                        .await?,
                )
            })?
        }
    };
    if runs.is_empty() {
        println!("No runs on {env} yet.");
    }
    for r in runs {
        println!("{}", r.summary_line(tz));
    }
    Ok(0)
}

async fn run(config: Option<PathBuf>, listen: Option<String>, data: Option<PathBuf>) -> Result<()> {
    let mut cfg = load_config(config)?;
    if let Some(l) = listen {
        cfg.bot.listen = l;
    }
    if let Some(d) = data {
        cfg.bot.data_dir = d;
    }
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let listener = tokio::net::TcpListener::bind(&cfg.bot.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.bot.listen))?;
    let addr = listener.local_addr()?;
    let platforms =
        std::env::var("SLACK_BOT_TOKEN").is_ok() || std::env::var("DISCORD_TOKEN").is_ok();
    let mut local = cfg.local.enabled.unwrap_or(!platforms);
    if local && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "the local channel is served only on a loopback address: it stays off");
        local = false;
    }
    let link_base = cfg
        .bot
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let cfg = Arc::new(cfg);
    let telemetry = greenlight::telemetry::Telemetry::new();
    if local {
        telemetry
            .connected
            .get_or_create(&greenlight::telemetry::PlatformLabels {
                platform: "local".into(),
            })
            .set(1);
    }
    let slack = slack_setup(&cfg)?;
    let discord = discord_setup(&cfg)?;
    let platforms = greenlight::app::Platforms {
        local,
        slack: slack.as_ref().map(|_| Arc::new(tokio::sync::Notify::new())),
        discord: discord
            .as_ref()
            .map(|_| Arc::new(tokio::sync::Notify::new())),
    };
    let (app, mut handle, rx) =
        greenlight::app::App::start(cfg.clone(), link_base, telemetry.clone(), platforms.clone())
            .await?;
    let socket_mode = match (slack, platforms.slack.clone()) {
        (Some(slack), Some(notify)) => start_slack(slack, notify, &mut handle, &telemetry).await?,
        _ => None,
    };
    let gateway = match (discord, platforms.discord.clone()) {
        (Some(discord), Some(notify)) => {
            Some(start_discord(discord, notify, &handle, &telemetry).await?)
        }
        _ => None,
    };
    let router = greenlight::http::router(handle, local.then_some(addr));
    println!("listening on http://{addr}");
    use std::io::Write;
    std::io::stdout().flush()?;
    tracing::info!(%addr, local_channel = local, "greenlight ready");
    release_startup_pages();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "http server stopped");
        }
    });
    let r = app.run(rx, shutdown_signal()).await;
    if let Some(sm) = socket_mode {
        sm.shutdown().await;
    }
    if let Some(g) = gateway {
        stop_gateway(g).await;
    }
    r
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("shutting down: state is persisted, active runs resume at the next start");
}

type SlackSetup = (
    greenlight::chat::slack::SlackSettings,
    Arc<greenlight::chat::slack::SlackClient>,
    Option<String>,
);
type DiscordSetup = (
    greenlight::chat::discord::DiscordSettings,
    Arc<greenlight::chat::discord::DiscordClient>,
);

/// Slack: active when SLACK_BOT_TOKEN is set; Socket Mode by default, signed HTTP optional.
fn slack_setup(cfg: &Config) -> Result<Option<SlackSetup>> {
    match std::env::var("SLACK_BOT_TOKEN") {
        Ok(token) if !token.is_empty() => {
            let sc = cfg.slack.clone().unwrap_or(config::SlackConfig {
                mode: config::SlackMode::Socket,
                api_url: "https://slack.com/api/".into(),
            });
            let settings = greenlight::chat::slack::SlackSettings {
                api_url: sc.api_url.clone(),
                bot_token: token,
                app_token: std::env::var("SLACK_APP_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty()),
                request_timeout: std::time::Duration::from_secs(10),
            };
            let client = greenlight::chat::slack::SlackClient::new(&settings)
                .map_err(|e| anyhow::anyhow!("[slack] {e}"))?;
            let secret = match sc.mode {
                config::SlackMode::Http => {
                    Some(std::env::var("SLACK_SIGNING_SECRET").map_err(|_| {
                        anyhow::anyhow!(
                            "[slack] mode = \"http\" needs SLACK_SIGNING_SECRET in the environment"
                        )
                    })?)
                }
                config::SlackMode::Socket => {
                    if settings.app_token.is_none() {
                        anyhow::bail!("[slack] Socket Mode needs SLACK_APP_TOKEN (xapp-...) in the environment, or set mode = \"http\"");
                    }
                    None
                }
            };
            Ok(Some((settings, Arc::new(client), secret)))
        }
        _ => Ok(None),
    }
}

/// Discord: active when DISCORD_TOKEN is set; the gateway, with guild commands.
fn discord_setup(cfg: &Config) -> Result<Option<DiscordSetup>> {
    match std::env::var("DISCORD_TOKEN") {
        Ok(token) if !token.is_empty() => {
            let dc = cfg.discord.clone().unwrap_or(config::DiscordConfig {
                api_url: "https://discord.com".into(),
                guild_id: None,
            });
            let guild_id: u64 = dc
                .guild_id
                .as_deref()
                .and_then(|g| g.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("[discord] guild_id must be set to the server's id (a number) to register the commands"))?;
            let settings = greenlight::chat::discord::DiscordSettings {
                api_url: dc.api_url.clone(),
                // Serenity asks `GET /api/v10/gateway` through `api_url`.
                gateway_url: None,
                token,
                guild_id,
                environments: cfg
                    .environments
                    .iter()
                    .map(|(k, e)| (k.0.clone(), e.display_name.clone()))
                    .collect(),
                version_patterns: cfg.version_patterns(),
                request_timeout: std::time::Duration::from_secs(10),
            };
            let client = greenlight::chat::discord::DiscordClient::new(&settings)
                .map_err(|e| anyhow::anyhow!("[discord] {e}"))?;
            Ok(Some((settings, Arc::new(client))))
        }
        _ => Ok(None),
    }
}

/// Starts Slack's deliverer and, in Socket Mode, the connection (HTTP mode: the signing
/// secret goes to the HTTP server's handle).
async fn start_slack(
    (settings, client, secret): SlackSetup,
    notify: Arc<tokio::sync::Notify>,
    handle: &mut greenlight::app::Handle,
    telemetry: &greenlight::telemetry::Telemetry,
) -> Result<Option<greenlight::chat::slack::SocketMode>> {
    tokio::spawn(greenlight::chat::deliver::slack(
        handle.store.clone(),
        client,
        notify,
        telemetry.clone(),
    ));
    let connected = telemetry
        .connected
        .get_or_create(&greenlight::telemetry::PlatformLabels {
            platform: "slack".into(),
        })
        .clone();
    match secret {
        Some(secret) => {
            handle.slack_signing_secret = Some(secret);
            connected.set(1);
            tracing::info!(
                "slack: HTTP mode on /slack/commands, /slack/events, /slack/interactions"
            );
        }
        None => {
            let socket_mode =
                greenlight::chat::slack::SocketMode::start(&settings, handle.inbox(), telemetry)
                    .await
                    .map_err(|e| anyhow::anyhow!("[slack] Socket Mode: {e}"))?;
            tracing::info!("slack: Socket Mode started");
            return Ok(Some(socket_mode));
        }
    }
    Ok(None)
}

/// Starts Discord's deliverer and the gateway, whose connection state `/readyz` follows.
async fn start_discord(
    (settings, client): DiscordSetup,
    notify: Arc<tokio::sync::Notify>,
    handle: &greenlight::app::Handle,
    telemetry: &greenlight::telemetry::Telemetry,
) -> Result<Arc<greenlight::chat::discord::Gateway>> {
    tokio::spawn(greenlight::chat::deliver::discord(
        handle.store.clone(),
        client,
        notify,
        telemetry.clone(),
    ));
    let g = greenlight::chat::discord::Gateway::start(&settings, handle.inbox())
        .await
        .map_err(|e| anyhow::anyhow!("[discord] gateway: {e}"))?;
    let g = Arc::new(g);
    // /readyz and /metrics follow the shard's real connection state.
    let connected = telemetry
        .connected
        .get_or_create(&greenlight::telemetry::PlatformLabels {
            platform: "discord".into(),
        })
        .clone();
    let weak = Arc::downgrade(&g);
    tokio::spawn(async move {
        while let Some(g) = weak.upgrade() {
            connected.set(g.connected() as i64);
            drop(g);
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
    tracing::info!("discord: gateway started");
    Ok(g)
}

/// Closes the gateway once its state watcher has let go of it.
async fn stop_gateway(mut g: Arc<greenlight::chat::discord::Gateway>) {
    // The state watcher holds the gateway only for an instant.
    for _ in 0..50 {
        match Arc::try_unwrap(g) {
            Ok(inner) => {
                inner.shutdown().await;
                break;
            }
            Err(still) => {
                g = still;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}
