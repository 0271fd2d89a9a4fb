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

use crate::core::Colour;
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
                one_line(text)
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

/// HAProxy's multi-line answers as one line.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
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
            Err(format!("HAProxy refused `{cmd}`: {}", one_line(&answer)))
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
        for c in std::iter::once(to).chain(from) {
            if !rows.iter().any(|r| r.name == c.as_str()) {
                // Let HAProxy say it in its own words (read-only command).
                let said = match self.command(&format!("get weight {be}/{c}")).await {
                    Ok(a) if !a.is_empty() && !a.starts_with(|ch: char| ch.is_ascii_digit()) => {
                        format!(": {}", one_line(&a))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use tokio::time::Instant;

    const HEADER: &str = "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port";

    /// Captured from HAProxy 2.6.12 at start: blue checked and up, green `disabled`.
    fn at_start() -> String {
        format!("1\n{HEADER}\n3 be 1 blue 127.0.0.1 2 0 1 1 0 6 3 4 6 0 0 0 - 18081 - 0 0 - - 0\n3 be 2 green 127.0.0.1 0 5 1 1 1 1 0 0 14 0 0 0 - 18082 - 0 0 - - 0\n\n")
    }
    /// After `set server be/green state ready` and `set server be/blue state drain`.
    fn after_switch() -> String {
        format!("1\n{HEADER}\n3 be 1 blue 127.0.0.1 2 8 1 1 0 6 3 4 6 0 0 0 - 18081 - 0 0 - - 0\n3 be 2 green 127.0.0.1 2 4 1 1 1 6 3 4 6 0 0 0 - 18082 - 0 0 - - 0\n\n")
    }
    /// After `set server be/green state ready` only: both serve.
    fn mid_switch() -> String {
        format!("1\n{HEADER}\n3 be 1 blue 127.0.0.1 2 0 1 1 2 6 3 4 6 0 0 0 - 18081 - 0 0 - - 0\n3 be 2 green 127.0.0.1 2 4 1 1 1 6 3 4 6 0 0 0 - 18082 - 0 0 - - 0\n\n")
    }
    /// Right after `set server be/green state ready` with nothing listening behind green: HAProxy
    /// reports it running (health = rise = 2) before its first check, which then fails.
    fn dead_green_just_ready() -> String {
        format!("1\n{HEADER}\n3 be 1 blue 127.0.0.1 2 0 1 1 0 6 3 4 6 0 0 0 - 18081 - 0 0 - - 0\n3 be 2 green 127.0.0.1 2 4 1 1 0 8 2 2 6 0 0 0 - 18089 - 0 0 - - 0\n\n")
    }

    /// `show stat be 4 -1 typed`, the lines that matter (captured).
    const STAT_TYPED: &str = "S.3.1.0.pxname.1:KNS:str:be\nS.3.1.1.svname.1:KNS:str:blue\nS.3.1.17.status.1:SGP:str:UP\nS.3.1.36.check_status.1:MOP:str:L4OK\nS.3.1.56.last_chk.1:MOP:str:\nS.3.1.67.check_rise.1:CGS:u32:2\nS.3.1.68.check_fall.1:CGS:u32:3\nS.3.1.69.check_health.1:CGS:u32:4\nS.3.2.0.pxname.1:KNS:str:be\nS.3.2.1.svname.1:KNS:str:green\nS.3.2.17.status.1:SGP:str:DOWN\nS.3.2.56.last_chk.1:MOP:str:Connection refused\nS.3.2.67.check_rise.1:CGS:u32:3\nS.3.2.68.check_fall.1:CGS:u32:5\nS.3.2.69.check_health.1:CGS:u32:0\n\n";

    fn st(name: &str, op: u32, admin: u32) -> ServerState {
        ServerState {
            name: name.into(),
            op_state: op,
            admin_state: admin,
        }
    }

    #[test]
    fn parses_real_state_dumps() {
        assert_eq!(
            parse_servers_state(&at_start(), "be").unwrap(),
            vec![st("blue", 2, 0), st("green", 0, 5)]
        );
        assert_eq!(
            parse_servers_state(&after_switch(), "be").unwrap(),
            vec![st("blue", 2, 8), st("green", 2, 4)]
        );
        // Another backend's lines are skipped; a backend without servers is empty, not an error.
        assert_eq!(parse_servers_state(&at_start(), "other").unwrap(), vec![]);
        // A server without `check` (check state 0) on a backend be2.
        let nocheck = format!(
            "1\n{HEADER}\n4 be2 1 blue 127.0.0.1 2 0 1 1 1 1 0 2 0 0 0 0 - 18081 - 0 0 - - 0\n"
        );
        let rows = parse_rows(&nocheck, "be2").unwrap();
        assert!(rows[0].live() && rows[0].healthy(None));
    }

    #[test]
    fn haproxy_answers_and_garbage_are_errors() {
        let e = parse_servers_state("Can't find backend.\n\n", "nope").unwrap_err();
        assert_eq!(
            e,
            "HAProxy: `show servers state nope` answered \"Can't find backend.\""
        );
        assert!(parse_servers_state("", "be")
            .unwrap_err()
            .contains("answered nothing"));
        assert!(parse_servers_state("1\n3 be 1 blue\n", "be")
            .unwrap_err()
            .contains("header"));
        let bad = format!("1\n{HEADER}\n3 be 1 blue 127.0.0.1 two 0\n");
        assert!(parse_servers_state(&bad, "be")
            .unwrap_err()
            .contains("srv_op_state"));
    }

    #[test]
    fn live_ignores_config_maintenance_and_sees_drain() {
        let live = |t: &str| live_of(&parse_rows(t, "be").unwrap());
        assert_eq!(live(&at_start()), Ok(Some(Colour::Blue)));
        // green at admin 0x04 serves; blue at 0x08 drains.
        assert_eq!(live(&after_switch()), Ok(Some(Colour::Green)));
        assert_eq!(
            live(&mid_switch()),
            Err("both blue and green take traffic".into())
        );
        let none = format!("1\n{HEADER}\n3 be 1 blue 127.0.0.1 2 1 1 1 0 6 3 4 6 0 0 0 - 1 - 0 0 - - 0\n3 be 2 green 127.0.0.1 0 5 1 1 1 1 0 0 14 0 0 0 - 2 - 0 0 - - 0\n");
        assert_eq!(live(&none), Ok(None));
        // Weight 0 takes no traffic.
        let zero =
            format!("1\n{HEADER}\n3 be 1 blue 127.0.0.1 2 0 0 1 0 6 3 4 6 0 0 0 - 1 - 0 0 - - 0\n");
        assert_eq!(live(&zero), Ok(None));
    }

    #[test]
    fn a_just_readied_server_is_not_healthy_until_a_check_passes() {
        let rows = parse_rows(&dead_green_just_ready(), "be").unwrap();
        let green = rows.iter().find(|r| r.name == "green").unwrap();
        assert_eq!(green.op_state, OP_RUNNING, "HAProxy calls it running");
        assert!(!green.healthy(Some(4)));
        let rows = parse_rows(&after_switch(), "be").unwrap();
        assert!(rows.iter().all(|r| r.healthy(Some(4))));
        assert!(
            green.describe().contains("last check failed"),
            "{}",
            green.describe()
        );
    }

    #[test]
    fn check_top_from_typed_stat() {
        assert_eq!(parse_check_top(STAT_TYPED, "blue"), Some(4));
        assert_eq!(parse_check_top(STAT_TYPED, "green"), Some(7));
        assert_eq!(parse_check_top(STAT_TYPED, "red"), None);
        assert_eq!(parse_check_top("No such proxy.\n", "blue"), None);
    }

    #[test]
    fn socket_parse() {
        assert_eq!(
            Socket::parse("unix:/run/ha.sock"),
            Socket::Unix("/run/ha.sock".into())
        );
        assert_eq!(
            Socket::parse("/run/ha.sock"),
            Socket::Unix("/run/ha.sock".into())
        );
        assert_eq!(Socket::parse("ha.sock"), Socket::Unix("ha.sock".into()));
        assert_eq!(
            Socket::parse("tcp:127.0.0.1:9999"),
            Socket::Tcp("127.0.0.1:9999".into())
        );
        assert_eq!(
            Socket::parse("127.0.0.1:9999"),
            Socket::Tcp("127.0.0.1:9999".into())
        );
        assert_eq!(Socket::parse("lb:9999"), Socket::Tcp("lb:9999".into()));
        assert_eq!(
            Socket::parse("[::1]:9999"),
            Socket::Tcp("[::1]:9999".into())
        );
        assert_eq!(Socket::parse("./a:b"), Socket::Unix("./a:b".into()));
    }

    // ---- against a real HAProxy ---------------------------------------------------------

    fn haproxy_bin() -> &'static str {
        if Path::new("/usr/sbin/haproxy").exists() {
            "/usr/sbin/haproxy"
        } else {
            "haproxy"
        }
    }

    fn free_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    /// A tiny app answering its colour on every path.
    async fn app(colour: &'static str) -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let router = axum::Router::new().fallback(move || async move { colour });
        tokio::spawn(async move { axum::serve(l, router).await });
        port
    }

    struct Ha {
        child: tokio::process::Child,
        dir: tempfile::TempDir,
        front: u16,
        tcp_admin: u16,
    }

    impl Ha {
        fn sock(&self) -> PathBuf {
            self.dir.path().join("ha.sock")
        }
        fn driver(&self, backend: &str) -> HaproxyDriver {
            HaproxyDriver {
                socket: Socket::Unix(self.sock()),
                backend: backend.into(),
                timeout: Duration::from_secs(3),
            }
        }
        fn log(&self) -> String {
            std::fs::read_to_string(self.dir.path().join("ha.log")).unwrap_or_default()
        }
        async fn stop(mut self) {
            let _ = self.child.kill().await;
        }
    }

    /// Starts HAProxy with backend `be` (blue up, green `disabled`) and backend `only_blue`.
    async fn haproxy(blue: u16, green: u16) -> Ha {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("ha.sock");
        let (front, tcp_admin) = (free_port(), free_port());
        let cfg = format!(
            "global\n    stats socket {} mode 600 level admin\n    stats socket ipv4@127.0.0.1:{tcp_admin} level admin\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
             frontend fe\n    bind 127.0.0.1:{front}\n    default_backend be\n\
             backend be\n    server blue 127.0.0.1:{blue} check inter 100ms\n    server green 127.0.0.1:{green} check inter 100ms disabled\n\
             backend only_blue\n    server blue 127.0.0.1:{blue} check inter 100ms\n",
            sock.display()
        );
        let cfg_path = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg_path, cfg).unwrap();
        let check = std::process::Command::new(haproxy_bin())
            .arg("-c")
            .arg("-f")
            .arg(&cfg_path)
            .output()
            .expect("run haproxy -c (is HAProxy installed?)");
        assert!(
            check.status.success(),
            "haproxy -c: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = std::fs::File::create(dir.path().join("ha.log")).unwrap();
        let child = tokio::process::Command::new(haproxy_bin())
            .arg("-db")
            .arg("-f")
            .arg(&cfg_path)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start haproxy");
        let mut ha = Ha {
            child,
            dir,
            front,
            tcp_admin,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let up = sock.exists()
                && tokio::net::TcpStream::connect(("127.0.0.1", front))
                    .await
                    .is_ok();
            if up {
                break;
            }
            if let Ok(Some(status)) = ha.child.try_wait() {
                panic!("haproxy exited with {status}: {}", ha.log());
            }
            assert!(
                Instant::now() < deadline,
                "haproxy did not start: {}",
                ha.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        ha
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap()
    }

    async fn get(c: &reqwest::Client, port: u16) -> Result<String, String> {
        let r = c
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status();
        let body = r.text().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("{status}: {body}"))
        }
    }

    /// Bounded request loop through the frontend: answers by body, and failures.
    #[derive(Default)]
    struct Load {
        stop: AtomicBool,
        done: AtomicUsize,
        seen: Mutex<BTreeMap<String, usize>>,
        failures: Mutex<Vec<String>>,
    }

    fn start_load(front: u16, workers: usize) -> (Arc<Load>, Vec<tokio::task::JoinHandle<()>>) {
        let load = Arc::new(Load::default());
        let tasks = (0..workers)
            .map(|_| {
                let load = load.clone();
                tokio::spawn(async move {
                    let c = client();
                    for _ in 0..5000 {
                        if load.stop.load(Ordering::SeqCst) {
                            break;
                        }
                        match get(&c, front).await {
                            Ok(b) => *load.seen.lock().unwrap().entry(b).or_default() += 1,
                            Err(e) => load.failures.lock().unwrap().push(e),
                        }
                        load.done.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        (load, tasks)
    }

    /// Waits (with a deadline) until the load has made `n` more requests.
    async fn more_requests(load: &Load, n: usize) {
        let target = load.done.load(Ordering::SeqCst) + n;
        let deadline = Instant::now() + Duration::from_secs(10);
        while load.done.load(Ordering::SeqCst) < target {
            assert!(Instant::now() < deadline, "request loop stalled");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn all_answer(front: u16, colour: &str) {
        let c = client();
        for _ in 0..10 {
            assert_eq!(get(&c, front).await.as_deref(), Ok(colour));
        }
    }

    #[tokio::test]
    async fn switches_both_ways_without_losing_a_request() {
        let (blue, green) = (app("blue").await, app("green").await);
        let ha = haproxy(blue, green).await;
        let d = ha.driver("be");
        assert_eq!(d.live().await, Ok(Some(Colour::Blue)));
        assert_eq!(
            d.servers_state().await.unwrap(),
            vec![st("blue", 2, 0), st("green", 0, 5)]
        );
        all_answer(ha.front, "blue").await;

        let (load, tasks) = start_load(ha.front, 2);
        more_requests(&load, 20).await;
        d.switch(Colour::Green, Some(Colour::Blue)).await.unwrap();
        more_requests(&load, 20).await;
        assert_eq!(d.live().await, Ok(Some(Colour::Green)));
        assert_eq!(
            d.servers_state().await.unwrap(),
            vec![st("blue", 2, ADMIN_FDRAIN), st("green", 2, ADMIN_CMAINT)]
        );
        all_answer(ha.front, "green").await;

        // Rollback is the reverse.
        d.switch(Colour::Blue, Some(Colour::Green)).await.unwrap();
        more_requests(&load, 20).await;
        load.stop.store(true, Ordering::SeqCst);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(d.live().await, Ok(Some(Colour::Blue)));
        assert_eq!(
            d.servers_state().await.unwrap(),
            vec![
                st("blue", 2, 0),
                st("green", 2, ADMIN_CMAINT | ADMIN_FDRAIN)
            ]
        );
        all_answer(ha.front, "blue").await;

        let failures = load.failures.lock().unwrap().clone();
        let seen = load.seen.lock().unwrap().clone();
        assert!(
            failures.is_empty(),
            "failed requests: {failures:?}; seen {seen:?}"
        );
        assert!(seen.get("blue").copied().unwrap_or(0) > 0, "{seen:?}");
        assert!(seen.get("green").copied().unwrap_or(0) > 0, "{seen:?}");
        assert_eq!(seen.keys().len(), 2, "{seen:?}");

        // The TCP admin socket works the same.
        let tcp = HaproxyDriver {
            socket: Socket::parse(&format!("tcp:127.0.0.1:{}", ha.tcp_admin)),
            ..d.clone()
        };
        assert_eq!(tcp.live().await, Ok(Some(Colour::Blue)));
        ha.stop().await;
    }

    #[tokio::test]
    async fn a_dead_target_never_gets_traffic() {
        let blue = app("blue").await;
        let dead = free_port(); // nothing listens behind green
        let ha = haproxy(blue, dead).await;
        let d = ha.driver("be");
        let (load, tasks) = start_load(ha.front, 2);
        more_requests(&load, 20).await;
        let e = d
            .switch_within(
                Colour::Green,
                Some(Colour::Blue),
                Duration::from_millis(1500),
            )
            .await
            .unwrap_err();
        assert!(
            e.contains("green did not pass its HAProxy health check"),
            "{e}"
        );
        assert!(e.contains("op state 0 (stopped)"), "{e}");
        more_requests(&load, 20).await;
        load.stop.store(true, Ordering::SeqCst);
        for t in tasks {
            t.await.unwrap();
        }
        let failures = load.failures.lock().unwrap().clone();
        assert!(failures.is_empty(), "failed requests: {failures:?}");
        // Blue still serves; green is back in maintenance.
        assert_eq!(d.live().await, Ok(Some(Colour::Blue)));
        let green = d.servers_state().await.unwrap().remove(1);
        assert_eq!(
            (green.name.as_str(), green.admin_state & ADMIN_FMAINT),
            ("green", ADMIN_FMAINT)
        );
        all_answer(ha.front, "blue").await;
        ha.stop().await;
    }

    #[tokio::test]
    async fn unknown_backend_and_server_quote_haproxy() {
        let (blue, green) = (app("blue").await, app("green").await);
        let ha = haproxy(blue, green).await;

        let nope = ha.driver("nope");
        let e = nope.live().await.unwrap_err();
        assert!(e.contains("Can't find backend."), "{e}");
        let e = nope
            .switch(Colour::Green, Some(Colour::Blue))
            .await
            .unwrap_err();
        assert!(e.contains("Can't find backend."), "{e}");

        // The raw command returns HAProxy's text; callers decide.
        let d = ha.driver("be");
        assert_eq!(
            d.command("set server be/purple state ready")
                .await
                .as_deref(),
            Ok("No such server.")
        );
        assert_eq!(
            d.command("set server be/blue state ready").await.as_deref(),
            Ok("")
        );

        // A backend without a green server.
        let only = ha.driver("only_blue");
        let e = only
            .switch(Colour::Green, Some(Colour::Blue))
            .await
            .unwrap_err();
        assert!(e.contains("No such server."), "{e}");
        assert!(e.contains("has no server green"), "{e}");
        assert_eq!(only.live().await, Ok(Some(Colour::Blue)));

        // A name that would smuggle a second command in.
        let e = ha.driver("be;shutdown").live().await.unwrap_err();
        assert!(e.contains("invalid HAProxy backend name"), "{e}");
        assert!(d
            .command("help\nshow info")
            .await
            .unwrap_err()
            .contains("one line"));
        ha.stop().await;
    }

    #[tokio::test]
    async fn missing_socket_and_silent_peer_are_one_line_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ha.sock");
        let d = HaproxyDriver::new(Socket::Unix(path.clone()), "be");
        let want = format!(
            "HAProxy admin socket {}: No such file or directory",
            path.display()
        );
        assert_eq!(d.command("show info").await, Err(want.clone()));
        assert_eq!(d.live().await, Err(want.clone()));
        assert_eq!(d.servers_state().await, Err(want.clone()));
        assert_eq!(d.switch(Colour::Green, Some(Colour::Blue)).await, Err(want));

        let port = free_port();
        let tcp = HaproxyDriver::new(Socket::parse(&format!("127.0.0.1:{port}")), "be");
        assert_eq!(
            tcp.live().await,
            Err(format!(
                "HAProxy admin socket 127.0.0.1:{port}: Connection refused"
            ))
        );

        // A peer that accepts and never answers.
        let l = tokio::net::UnixListener::bind(&path).unwrap();
        let held = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(s);
        });
        let slow = HaproxyDriver {
            timeout: Duration::from_millis(200),
            ..d.clone()
        };
        let e = slow.live().await.unwrap_err();
        assert_eq!(
            e,
            format!(
                "HAProxy admin socket {}: no answer to `show servers state be` within 200ms",
                path.display()
            )
        );
        held.abort();
    }
}
