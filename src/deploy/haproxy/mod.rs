//! HAProxy traffic driver: switches a backend between its `blue` and `green` servers over the runtime API (admin socket).
//!
//! Facts this module relies on, observed with HAProxy 2.6 (Debian 12):
//!
//! - A command is one line; the socket answers and closes. Success is an empty answer (a bare
//!   newline); anything else ("No such server.", "Can't find backend.", "Permission denied") is
//!   HAProxy refusing.
//! - `show servers state <be>` answers a version line `1`, a `# be_id be_name ...` header, then
//!   one line per server. `srv_op_state` 2 is running; `srv_admin_state` is a bit set (0x01
//!   forced maint, 0x02 inherited maint, 0x04 maint from the config file, 0x08 forced drain,
//!   0x10 inherited drain, 0x20 maint after a DNS failure). A server declared `disabled` starts
//!   at admin 0x05 and keeps 0x04 after `state ready` while it serves, so 0x04 is ignored.
//! - Leaving maintenance, HAProxy reports the server running (op state 2, check health = rise)
//!   *before* any health check ran ("start OK but check immediately"); a dead server then takes
//!   traffic until its first check fails. So op state 2 alone does not prove a server is up.
//!   The switch therefore moves the target from maintenance to `drain` first (checks run, no
//!   new traffic), waits until a check has passed (check health at its top, rise + fall - 1,
//!   read from `show stat`), and only then sets it `ready` and drains the old colour.

use super::{BoxFuture, StepCtx, TrafficStep};
use crate::core::engine::LiveView;
use crate::core::text::join_lines;
use crate::core::Colour;
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Default time for one runtime API command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time `switch` waits for the target's health check to pass.
pub const HEALTH_WAIT: Duration = Duration::from_secs(30);
/// How often `switch` polls the target's state while it waits.
const POLL: Duration = Duration::from_millis(50);
/// Largest answer read from the socket.
const MAX_ANSWER: u64 = 8 << 20;

/// `srv_admin_state` bits.
pub const ADMIN_FMAINT: u32 = 0x01;
pub const ADMIN_IMAINT: u32 = 0x02;
pub const ADMIN_CMAINT: u32 = 0x04;
pub const ADMIN_FDRAIN: u32 = 0x08;
pub const ADMIN_IDRAIN: u32 = 0x10;
pub const ADMIN_RMAINT: u32 = 0x20;
/// Any of these bits keeps a server from taking new traffic (0x04 is not one of them, see above).
const NOT_LIVE: u32 = ADMIN_FMAINT | ADMIN_IMAINT | ADMIN_FDRAIN | ADMIN_IDRAIN | ADMIN_RMAINT;
/// `srv_op_state` of a running server.
pub const OP_RUNNING: u32 = 2;
/// `srv_check_state` bit: health checks enabled.
const CHECK_ENABLED: u32 = 0x04;
/// `srv_check_result` of a passed (or conditionally passed) check.
const CHECK_PASSED: u32 = 3;
const CHECK_CONDPASS: u32 = 4;

/// Where the runtime API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Socket {
    Unix(PathBuf),
    /// `host:port`
    Tcp(String),
}

impl Socket {
    /// `unix:/path` or a path => Unix; `tcp:host:port` or `host:port` (numeric port) => Tcp.
    pub fn parse(s: &str) -> Socket {
        let s = s.trim();
        if let Some(p) = s.strip_prefix("unix:") {
            return Socket::Unix(PathBuf::from(p));
        }
        if let Some(a) = s.strip_prefix("tcp:") {
            return Socket::Tcp(a.to_string());
        }
        if s.contains('/') {
            return Socket::Unix(PathBuf::from(s));
        }
        match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Socket::Tcp(s.to_string())
            }
            _ => Socket::Unix(PathBuf::from(s)),
        }
    }
}

impl fmt::Display for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Socket::Unix(p) => write!(f, "{}", p.display()),
            Socket::Tcp(a) => f.write_str(a),
        }
    }
}

/// One server of the backend as `show servers state` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerState {
    pub name: String,
    pub op_state: u32,
    pub admin_state: u32,
}

/// A server line with the columns the switch needs besides the public ones.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    name: String,
    op_state: u32,
    admin_state: u32,
    uweight: u32,
    check_result: u32,
    check_health: u32,
    check_state: u32,
}

impl Row {
    /// Takes new traffic: running, no maintenance or drain bit but 0x04, a weight.
    fn live(&self) -> bool {
        self.op_state == OP_RUNNING && self.admin_state & NOT_LIVE == 0 && self.uweight > 0
    }

    /// Running and, when checks are on, its last check passed with health at the top
    /// (`top` = rise + fall - 1, unknown => any passed check).
    fn healthy(&self, top: Option<u32>) -> bool {
        if self.op_state != OP_RUNNING {
            return false;
        }
        if self.check_state & CHECK_ENABLED == 0 {
            return true;
        }
        matches!(self.check_result, CHECK_PASSED | CHECK_CONDPASS)
            && top.is_none_or(|t| self.check_health >= t)
    }

    fn describe(&self) -> String {
        let op = match self.op_state {
            0 => "stopped",
            1 => "starting",
            2 => "running",
            3 => "stopping",
            _ => "unknown",
        };
        let mut s = format!(
            "op state {} ({op}), admin state 0x{:02x}",
            self.op_state, self.admin_state
        );
        if self.check_state & CHECK_ENABLED != 0 {
            let last = match self.check_result {
                0 => "none yet",
                1 => "neutral",
                2 => "failed",
                3 => "passed",
                4 => "passed conditionally",
                _ => "unknown",
            };
            s.push_str(&format!(
                ", check health {}, last check {last}",
                self.check_health
            ));
        }
        s
    }
}

/// Parses `show servers state <backend>` into the servers of `backend`.
pub fn parse_servers_state(text: &str, backend: &str) -> Result<Vec<ServerState>, String> {
    Ok(parse_rows(text, backend)?
        .into_iter()
        .map(|r| ServerState {
            name: r.name,
            op_state: r.op_state,
            admin_state: r.admin_state,
        })
        .collect())
}

fn parse_rows(text: &str, backend: &str) -> Result<Vec<Row>, String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    match lines.next() {
        Some("1") => {}
        None => {
            return Err(format!(
                "HAProxy: `show servers state {backend}` answered nothing"
            ))
        }
        Some(_) => {
            // Not a state dump: HAProxy's own answer, such as "Can't find backend.".
            return Err(format!(
                "HAProxy: `show servers state {backend}` answered \"{}\"",
                join_lines(text, " / ")
            ));
        }
    }
    let header: Vec<&str> = match lines.next() {
        Some(h) if h.starts_with('#') => h.trim_start_matches('#').split_whitespace().collect(),
        _ => return Err("HAProxy: `show servers state` answer has no `# be_id ...` header".into()),
    };
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("HAProxy: `show servers state` answer has no {name} column"))
    };
    let (be, name, op, admin) = (
        col("be_name")?,
        col("srv_name")?,
        col("srv_op_state")?,
        col("srv_admin_state")?,
    );
    // Optional columns: without them the switch falls back to the op state.
    let opt = |name: &str| header.iter().position(|h| *h == name);
    let (uweight, result, health, state) = (
        opt("srv_uweight"),
        opt("srv_check_result"),
        opt("srv_check_health"),
        opt("srv_check_state"),
    );
    let mut out = Vec::new();
    for line in lines {
        if line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize, what: &str| -> Result<u32, String> {
            let v = f
                .get(i)
                .ok_or_else(|| format!("HAProxy: server state line has no {what}: {line}"))?;
            v.parse()
                .map_err(|_| format!("HAProxy: bad {what} {v:?} in server state line: {line}"))
        };
        let num_or = |i: Option<usize>, what: &str, dflt: u32| match i {
            Some(i) => num(i, what),
            None => Ok(dflt),
        };
        let Some(be_name) = f.get(be) else {
            return Err(format!("HAProxy: short server state line: {line}"));
        };
        if *be_name != backend {
            continue;
        }
        out.push(Row {
            name: f
                .get(name)
                .ok_or_else(|| format!("HAProxy: short server state line: {line}"))?
                .to_string(),
            op_state: num(op, "srv_op_state")?,
            admin_state: num(admin, "srv_admin_state")?,
            uweight: num_or(uweight, "srv_uweight", 1)?,
            check_result: num_or(result, "srv_check_result", 0)?,
            check_health: num_or(health, "srv_check_health", 0)?,
            check_state: num_or(state, "srv_check_state", 0)?,
        });
    }
    Ok(out)
}

/// From `show stat <be> 4 -1 typed`: the top check health (rise + fall - 1) of `server`.
fn parse_check_top(text: &str, server: &str) -> Option<u32> {
    // Lines look like `S.3.2.67.check_rise.1:CGS:u32:2`; the second field is the server id.
    let mut sid = None;
    let mut fields: Vec<(&str, &str, &str)> = Vec::new();
    for line in text.lines() {
        let mut parts = line.trim().splitn(4, ':');
        let (Some(key), Some(_), Some(_), Some(value)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let k: Vec<&str> = key.split('.').collect();
        if k.len() < 5 || k[0] != "S" {
            continue;
        }
        if k[4] == "svname" && value == server {
            sid = Some(k[2]);
        }
        fields.push((k[2], k[4], value));
    }
    let sid = sid?;
    let get = |name: &str| {
        fields
            .iter()
            .find(|(s, n, _)| *s == sid && *n == name)
            .and_then(|(_, _, v)| v.parse::<u32>().ok())
    };
    let (rise, fall) = (get("check_rise")?, get("check_fall")?);
    (rise > 0 && fall > 0).then(|| rise + fall - 1)
}

/// An io error without the "(os error N)" tail.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    }
}

async fn talk<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, cmd: &str) -> std::io::Result<String> {
    s.write_all(format!("{cmd}\n").as_bytes()).await?;
    s.flush().await?;
    let mut buf = Vec::new();
    (&mut s).take(MAX_ANSWER).read_to_end(&mut buf).await?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Drives one HAProxy backend holding servers named `blue` and `green`.
#[derive(Debug, Clone)]
pub struct HaproxyDriver {
    pub socket: Socket,
    pub backend: String,
    /// Per command.
    pub timeout: Duration,
}

impl HaproxyDriver {
    pub fn new(socket: Socket, backend: impl Into<String>) -> HaproxyDriver {
        HaproxyDriver {
            socket,
            backend: backend.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sends one runtime API command (plus "\n") and reads until EOF. An empty answer is
    /// success; any text is returned trimmed (callers decide). Connection errors and timeouts
    /// are one-line errors naming the socket.
    pub async fn command(&self, cmd: &str) -> Result<String, String> {
        if cmd.contains(['\n', '\r']) {
            return Err(format!("HAProxy command must be one line: {cmd:?}"));
        }
        let exchange = async {
            match &self.socket {
                Socket::Unix(p) => talk(tokio::net::UnixStream::connect(p).await?, cmd).await,
                Socket::Tcp(a) => {
                    talk(tokio::net::TcpStream::connect(a.as_str()).await?, cmd).await
                }
            }
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(answer)) => {
                tracing::debug!(socket = %self.socket, cmd, answer = %answer.trim(), "haproxy");
                Ok(answer.trim().to_string())
            }
            Ok(Err(e)) => Err(format!(
                "HAProxy admin socket {}: {}",
                self.socket,
                io_reason(&e)
            )),
            Err(_) => Err(format!(
                "HAProxy admin socket {}: no answer to `{cmd}` within {:?}",
                self.socket, self.timeout
            )),
        }
    }

    /// Sends a command that must answer nothing; any text is an error quoting it.
    async fn command_ok(&self, cmd: &str) -> Result<(), String> {
        let answer = self.command(cmd).await?;
        if answer.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "HAProxy refused `{cmd}`: {}",
                join_lines(&answer, " / ")
            ))
        }
    }

    fn check_backend(&self) -> Result<(), String> {
        let b = &self.backend;
        if b.is_empty() || b.contains(|c: char| c.is_whitespace() || c == ';' || c == '/') {
            Err(format!("invalid HAProxy backend name {b:?}"))
        } else {
            Ok(())
        }
    }

    async fn rows(&self) -> Result<Vec<Row>, String> {
        self.check_backend()?;
        let answer = self
            .command(&format!("show servers state {}", self.backend))
            .await?;
        parse_rows(&answer, &self.backend)
    }

    /// `show servers state <backend>`, parsed.
    pub async fn servers_state(&self) -> Result<Vec<ServerState>, String> {
        self.check_backend()?;
        let answer = self
            .command(&format!("show servers state {}", self.backend))
            .await?;
        parse_servers_state(&answer, &self.backend)
    }

    /// The colour that really takes traffic; Ok(None) if neither does, Err if both do (as in
    /// the middle of a switch).
    pub async fn live(&self) -> Result<Option<Colour>, String> {
        live_of(&self.rows().await?)
    }

    /// Top check health (rise + fall - 1) of a server, from `show stat`; None if unknown.
    async fn check_top(&self, server: &str) -> Option<u32> {
        let answer = self
            .command(&format!("show stat {} 4 -1 typed", self.backend))
            .await
            .ok()?;
        parse_check_top(&answer, server)
    }

    /// Switches traffic to `to`, never leaving zero servers: `to` leaves maintenance as
    /// `drain` (checks run, no traffic), its health check must pass (within [`HEALTH_WAIT`]),
    /// then `set server <be>/<to> state ready`, then `set server <be>/<from> state drain`,
    /// then the state is read back: `to` must be the only live colour and `from` draining.
    pub async fn switch(&self, to: Colour, from: Option<Colour>) -> Result<(), String> {
        self.switch_within(to, from, HEALTH_WAIT).await
    }

    /// [`switch`](Self::switch) with the time allowed for `to`'s health check to pass.
    pub async fn switch_within(
        &self,
        to: Colour,
        from: Option<Colour>,
        health_wait: Duration,
    ) -> Result<(), String> {
        let be = self.backend.clone();
        if from == Some(to) {
            return Err(format!("cannot switch from {to} to itself"));
        }
        let rows = self.rows().await?;
        self.check_servers(&rows, to, from).await?;
        let target = rows
            .iter()
            .find(|r| r.name == to.as_str())
            .expect("checked above");
        tracing::info!(backend = %be, %to, from = ?from.map(Colour::as_str), state = %target.describe(), "haproxy switch");

        // 1. Out of maintenance, but no traffic yet: checks run while draining.
        let was_maint = target.admin_state & ADMIN_FMAINT != 0;
        if was_maint {
            self.command_ok(&format!("set server {be}/{to} state drain"))
                .await?;
        }

        // 2. Wait for a passed health check.
        if let Err(e) = self.wait_healthy(to, health_wait).await {
            if was_maint {
                if let Err(e2) = self
                    .command_ok(&format!("set server {be}/{to} state maint"))
                    .await
                {
                    return Err(format!(
                        "{e}; putting {to} back into maintenance failed: {e2}"
                    ));
                }
            }
            return Err(e);
        }

        // 3. Both serve for a moment, then the old colour drains.
        self.command_ok(&format!("set server {be}/{to} state ready"))
            .await?;
        if let Some(from) = from {
            self.command_ok(&format!("set server {be}/{from} state drain"))
                .await?;
        }

        // 4. Read back.
        self.confirm(to, from).await
    }

    /// Both colours named in the switch must be servers of the backend.
    async fn check_servers(
        &self,
        rows: &[Row],
        to: Colour,
        from: Option<Colour>,
    ) -> Result<(), String> {
        let be = &self.backend;
        for c in std::iter::once(to).chain(from) {
            if !rows.iter().any(|r| r.name == c.as_str()) {
                // Let HAProxy say it in its own words (read-only command).
                let said = match self.command(&format!("get weight {be}/{c}")).await {
                    Ok(a) if !a.is_empty() && !a.starts_with(|ch: char| ch.is_ascii_digit()) => {
                        format!(": {}", join_lines(&a, " / "))
                    }
                    _ => String::new(),
                };
                let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
                return Err(format!(
                    "HAProxy backend {be} has no server {c}{said} (servers: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ));
            }
        }
        Ok(())
    }

    /// Reads the state back: `to` must be the only live colour and `from` draining.
    async fn confirm(&self, to: Colour, from: Option<Colour>) -> Result<(), String> {
        let be = &self.backend;
        let rows = self.rows().await?;
        let row = |c: Colour| rows.iter().find(|r| r.name == c.as_str());
        match row(to) {
            Some(r) if r.live() => {}
            Some(r) => {
                return Err(format!(
                    "after the switch {to} does not take traffic: {}",
                    r.describe()
                ))
            }
            None => return Err(format!("after the switch backend {be} has no server {to}")),
        }
        if let Some(from) = from {
            match row(from) {
                Some(r) if r.admin_state & NOT_LIVE != 0 => {}
                Some(r) => {
                    return Err(format!(
                        "after the switch {from} is not draining: {}",
                        r.describe()
                    ))
                }
                None => {
                    return Err(format!(
                        "after the switch backend {be} has no server {from}"
                    ))
                }
            }
        }
        match live_of(&rows)? {
            Some(c) if c == to => {
                tracing::info!(backend = %be, %to, "haproxy switch confirmed");
                Ok(())
            }
            other => Err(format!(
                "after the switch HAProxy reports {} live, expected {to}",
                other.map_or("nothing", Colour::as_str)
            )),
        }
    }

    /// Polls until `to` is running with a passed health check, or the deadline.
    async fn wait_healthy(&self, to: Colour, wait: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + wait;
        let top = self.check_top(to.as_str()).await;
        loop {
            let rows = self.rows().await?;
            let r = rows
                .iter()
                .find(|r| r.name == to.as_str())
                .ok_or_else(|| format!("HAProxy backend {} lost server {to}", self.backend))?;
            if r.healthy(top) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "{to} did not pass its HAProxy health check within {wait:?} ({}{}); traffic stays where it was",
                    r.describe(),
                    top.map(|t| format!(" of {t}")).unwrap_or_default()
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

fn live_of(rows: &[Row]) -> Result<Option<Colour>, String> {
    let live = |c: Colour| rows.iter().any(|r| r.name == c.as_str() && r.live());
    match (live(Colour::Blue), live(Colour::Green)) {
        (true, true) => Err("both blue and green take traffic".into()),
        (true, false) => Ok(Some(Colour::Blue)),
        (false, true) => Ok(Some(Colour::Green)),
        (false, false) => Ok(None),
    }
}

/// `[environments.X.traffic]` with `driver = "haproxy"`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficSection {
    socket: String,
    backend: String,
    timeout: Option<String>,
}

/// The HAProxy traffic step's config, validated.
#[derive(Debug, Clone)]
pub struct HaproxyConfig {
    /// The admin socket: `unix:/path` or `tcp:host:port`.
    pub socket: String,
    pub backend: String,
    /// Per runtime API command.
    pub timeout: Duration,
}

impl TrafficSection {
    /// Validates the section of environment `name`.
    pub fn validate(self, name: &str) -> Result<HaproxyConfig, String> {
        let timeout = match self.timeout {
            Some(t) => match humantime::parse_duration(&t) {
                Ok(d) if !d.is_zero() => d,
                _ => {
                    return Err(format!(
                        "environment \"{name}\": traffic.timeout \"{t}\" is not a duration"
                    ))
                }
            },
            None => Duration::from_secs(10),
        };
        if self.socket.trim().is_empty() || self.backend.trim().is_empty() {
            return Err(format!("environment \"{name}\": traffic.socket and traffic.backend are required for haproxy"));
        }
        Ok(HaproxyConfig {
            socket: self.socket,
            backend: self.backend,
            timeout,
        })
    }
}

impl HaproxyDriver {
    /// The traffic step of a validated config.
    pub fn from_config(c: &HaproxyConfig) -> HaproxyDriver {
        let mut h = HaproxyDriver::new(Socket::parse(&c.socket), c.backend.clone());
        h.timeout = c.timeout;
        h
    }
}

impl TrafficStep for HaproxyDriver {
    fn observe(&self) -> BoxFuture<'_, LiveView> {
        Box::pin(async move {
            match self.live().await {
                Ok(c) => LiveView::Seen(c),
                Err(e) => LiveView::Unseen(format!("HAProxy: {e}")),
            }
        })
    }

    fn switch<'a>(
        &'a self,
        to: Colour,
        from: Option<Colour>,
        _ctx: &'a StepCtx,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(HaproxyDriver::switch(self, to, from))
    }
}

#[cfg(test)]
mod tests;
