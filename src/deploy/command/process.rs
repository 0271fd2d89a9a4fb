//! The `command` deploy driver's process runner: argv templating, env-ref expansion, and running a program with a timeout, secret masking and tail-truncated output.
//!
//! No shell is ever involved: `argv[0]` is the program and every other element is passed to it as exactly one
//! argument, whatever characters a substituted value contains.

use crate::core::text::{mask, render_template};
use std::collections::BTreeMap;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

/// How long to keep reading output after the program exited (or was killed) when something else (a background
/// grandchild) still holds the pipes open.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// The result of running one command.
#[derive(Debug, Clone)]
pub struct CommandOutcome {
    /// True only when the program ran to completion with exit status 0 (and did not time out).
    pub success: bool,
    /// The exit code, when the program exited normally (None when killed by a signal, timed out or never started).
    pub exit_code: Option<i32>,
    /// True when the timeout elapsed and the process group was killed.
    pub timed_out: bool,
    /// Combined stdout+stderr in arrival order, secrets masked as `***`, truncated to at most `max_output` bytes
    /// keeping the tail, with a leading `…(truncated N bytes)\n` marker when truncated.
    pub output: String,
}

/// What to run and how.
pub struct RunSpec<'a> {
    /// argv[0] is the program (looked up in PATH when it has no slash); the rest are its arguments.
    pub argv: Vec<String>,
    /// Extra environment variables, added to the inherited environment.
    pub env: Vec<(String, String)>,
    /// Wall-clock limit; on expiry the whole process group is SIGKILLed.
    pub timeout: Duration,
    /// Values to mask as `***` in the output and in logs.
    pub secrets: &'a [String],
    /// Upper bound, in bytes, on `CommandOutcome::output`.
    pub max_output: usize,
}

/// Substitute `{name}` placeholders in each argv element from vars. Unknown placeholder -> error naming it.
/// `{{` / `}}` are literal braces. No shell is ever involved: argv[0] is the program.
pub fn render_argv(
    template: &[String],
    vars: &BTreeMap<String, String>,
) -> Result<Vec<String>, String> {
    template
        .iter()
        .map(|arg| render_template(arg, vars))
        .collect()
}

/// Expand `${NAME}` references from lookup; `$${` is a literal `${`; an unset name is an error
/// "environment variable NAME is not set". A `$` not followed by `{` is literal. NAME must match
/// `[A-Za-z_][A-Za-z0-9_]*`.
pub fn expand_env_refs(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let Some(end) = tail.find('}') else {
                return Err(format!("unclosed ${{ in {s:?}"));
            };
            let name = &tail[..end];
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "invalid environment variable name {name:?} in ${{...}}"
                ));
            }
            match lookup(name) {
                Some(v) => out.push_str(&v),
                None => return Err(format!("environment variable {name} is not set")),
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Keeps a bounded raw tail of the combined output, counting what fell off the front.
struct Collector {
    buf: Vec<u8>,
    dropped: usize,
    keep: usize,
}

impl Collector {
    fn new(max_output: usize, longest_secret: usize) -> Self {
        Collector {
            buf: Vec::new(),
            dropped: 0,
            // Enough slack that, after masking and cutting off a possibly partial secret at the front, a full
            // `max_output` tail remains in the common case.
            keep: max_output.saturating_add(longest_secret).saturating_add(64),
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        // Amortise: only shift the buffer once it is twice the size we keep.
        if self.buf.len() > self.keep.saturating_mul(2) {
            self.trim();
        }
    }

    fn trim(&mut self) {
        if self.buf.len() > self.keep {
            let excess = self.buf.len() - self.keep;
            self.buf.drain(..excess);
            self.dropped += excess;
        }
    }

    fn finish(mut self, secrets: &[String], longest_secret: usize, max_output: usize) -> String {
        self.trim();
        let text = String::from_utf8_lossy(&self.buf);
        let masked = mask(&text, secrets);
        let mut cut = self.dropped;
        let mut body = masked.as_str();
        if self.dropped > 0 {
            // The front may hold the unmasked end of a secret whose start fell off, or half a UTF-8 character
            // (decoded as up to three U+FFFD): cut enough to be sure neither survives.
            let mut idx = longest_secret.saturating_add(8).min(body.len());
            while !body.is_char_boundary(idx) {
                idx += 1;
            }
            cut += idx;
            body = &body[idx..];
        }
        truncate_tail(body, cut, max_output)
    }
}

fn truncation_marker(n: usize) -> String {
    format!("…(truncated {n} bytes)\n")
}

/// Keep the tail of `text` so that marker + tail fit in `max` bytes. `already_cut` bytes were dropped before.
fn truncate_tail(text: &str, already_cut: usize, max: usize) -> String {
    if already_cut == 0 && text.len() <= max {
        return text.to_string();
    }
    // The marker for the final count is never longer than the marker for the total length.
    let marker_len = truncation_marker(already_cut + text.len()).len();
    let budget = max.saturating_sub(marker_len);
    let mut start = text.len().saturating_sub(budget);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let mut out = truncation_marker(already_cut + start);
    out.push_str(&text[start..]);
    out
}

/// Kills the child's process group when dropped while armed (e.g. the `run` future was cancelled).
struct GroupGuard {
    pgid: Option<i32>,
}

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            kill_group(pgid);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(unix)]
fn kill_group(pgid: i32) {
    if pgid > 1 {
        // SAFETY: killpg has no memory-safety preconditions; pgid > 1 excludes "our own group" and "everything".
        let rc = unsafe { libc::killpg(pgid, libc::SIGKILL) };
        if rc != 0 {
            tracing::debug!(pgid, error = %std::io::Error::last_os_error(), "killpg failed");
        }
    }
}

#[cfg(not(unix))]
fn kill_group(_pgid: i32) {}

async fn read_some<R: AsyncRead + Unpin>(
    r: &mut Option<R>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match r {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

fn longest(secrets: &[String]) -> usize {
    secrets.iter().map(String::len).max().unwrap_or(0)
}

/// Reads the child's output into `col` until it exited and closed its pipes (or a short grace
/// period after its exit ran out); at `deadline` kills its process group. Returns its exit
/// status and whether it timed out.
async fn watch(
    child: &mut tokio::process::Child,
    guard: &mut GroupGuard,
    col: &mut Collector,
    deadline: Instant,
    timeout: Duration,
    shown: &str,
) -> (Option<ExitStatus>, bool) {
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut obuf = vec![0u8; 8192];
    let mut ebuf = vec![0u8; 8192];
    let mut deadline = deadline;
    let mut exited = false;
    let mut status: Option<ExitStatus> = None;
    let mut timed_out = false;

    loop {
        if exited && stdout.is_none() && stderr.is_none() {
            break;
        }
        tokio::select! {
            r = read_some(&mut stdout, &mut obuf) => match r {
                Ok(0) | Err(_) => stdout = None,
                Ok(n) => col.push(&obuf[..n]),
            },
            r = read_some(&mut stderr, &mut ebuf) => match r {
                Ok(0) | Err(_) => stderr = None,
                Ok(n) => col.push(&ebuf[..n]),
            },
            s = child.wait(), if !exited => {
                exited = true;
                match s {
                    Ok(s) => status = Some(s),
                    Err(e) => col.push(format!("\n[greenlight: waiting for the process failed: {e}]\n").as_bytes()),
                }
                if !timed_out {
                    // Exited by itself: leave any background processes alone.
                    guard.pgid = None;
                }
                deadline = deadline.min(Instant::now() + DRAIN_GRACE);
            },
            _ = tokio::time::sleep_until(deadline) => {
                if exited || timed_out {
                    // Grace period over: stop reading from whatever still holds the pipes.
                    break;
                }
                timed_out = true;
                tracing::warn!(command = %shown, timeout = %humantime::format_duration(timeout), "command timed out; killing its process group");
                guard.kill();
                let _ = child.start_kill();
                deadline = Instant::now() + DRAIN_GRACE;
            },
        }
    }
    (status, timed_out)
}

/// Runs the program (tokio::process, stdin null, kill_on_drop), in its own process group; on timeout kills the
/// whole group (SIGKILL) and returns timed_out. A program that cannot be started (not found) returns
/// success=false with the OS error in output. Never panics.
///
/// The child inherits this process's environment plus `spec.env`. After a normal exit, background processes the
/// program left behind are not killed; output is read from them for at most a short grace period.
pub async fn run(spec: RunSpec<'_>) -> CommandOutcome {
    let RunSpec {
        argv,
        env,
        timeout,
        secrets,
        max_output,
    } = spec;
    let longest_secret = longest(secrets);
    let not_started = |msg: String| CommandOutcome {
        success: false,
        exit_code: None,
        timed_out: false,
        output: truncate_tail(&mask(&msg, secrets), 0, max_output),
    };
    let Some(program) = argv.first() else {
        tracing::warn!("command has an empty argv");
        return not_started("empty command line: nothing to run".to_string());
    };
    let shown = mask(&argv.join(" "), secrets);
    let env_names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    tracing::info!(command = %shown, env = ?env_names, timeout = %humantime::format_duration(timeout), "running command");

    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);

    let started = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("failed to start {program}: {e}");
            tracing::warn!(error = %mask(&msg, secrets), "command did not start");
            return not_started(msg);
        }
    };
    // Declared after `child` so it drops first: on cancellation the group dies, then kill_on_drop fires.
    let mut guard = GroupGuard {
        pgid: child.id().and_then(|id| i32::try_from(id).ok()),
    };

    let mut col = Collector::new(max_output, longest_secret);
    let (status, timed_out) = watch(
        &mut child,
        &mut guard,
        &mut col,
        started + timeout,
        timeout,
        &shown,
    )
    .await;

    let exit_code = if timed_out {
        None
    } else {
        status.and_then(|s| s.code())
    };
    let success = !timed_out && status.is_some_and(|s| s.success());
    let output = col.finish(secrets, longest_secret, max_output);
    let elapsed = started.elapsed();
    if success {
        tracing::info!(command = %shown, elapsed_ms = elapsed.as_millis() as u64, "command succeeded");
    } else {
        #[cfg(unix)]
        let signal = status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s));
        #[cfg(not(unix))]
        let signal: Option<i32> = None;
        tracing::warn!(command = %shown, exit_code = ?exit_code, signal = ?signal, timed_out, elapsed_ms = elapsed.as_millis() as u64, "command failed");
    }
    CommandOutcome {
        success,
        exit_code,
        timed_out,
        output,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn vars(v: &[(&str, &str)]) -> BTreeMap<String, String> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn spec(argv: &[&str]) -> RunSpec<'static> {
        RunSpec {
            argv: s(argv),
            env: vec![],
            timeout: Duration::from_secs(20),
            secrets: &[],
            max_output: 64 * 1024,
        }
    }

    #[test]
    fn render_substitutes_and_escapes() {
        let v = vars(&[("version", "1.2.3"), ("colour", "blue")]);
        let out = render_argv(
            &s(&[
                "deploy",
                "--version={version}",
                "{colour}",
                "{{literal}}",
                "a}}b{{c",
            ]),
            &v,
        )
        .unwrap();
        assert_eq!(
            out,
            s(&["deploy", "--version=1.2.3", "blue", "{literal}", "a}b{c"])
        );
    }

    #[test]
    fn render_unknown_placeholder_names_it() {
        let err = render_argv(&s(&["x", "{nope}"]), &vars(&[("version", "1")])).unwrap_err();
        assert!(err.contains("{nope}"), "{err}");
        assert!(render_template("{unclosed", &vars(&[])).is_err());
        assert!(render_template("stray}", &vars(&[])).is_err());
        assert!(render_template("{}", &vars(&[])).is_err());
        assert!(render_template("{a{b}", &vars(&[("b", "x")])).is_err());
    }

    #[tokio::test]
    async fn hostile_value_is_one_argument() {
        let v = vars(&[("version", "1.0;rm -rf / && echo pwned $(id)")]);
        let argv = render_argv(&s(&["printf", "[%s]\n", "{version}"]), &v).unwrap();
        let out = run(RunSpec { argv, ..spec(&[]) }).await;
        assert!(out.success, "{out:?}");
        assert_eq!(out.output, "[1.0;rm -rf / && echo pwned $(id)]\n");
    }

    #[tokio::test]
    async fn exit_code_and_output() {
        let out = run(spec(&["sh", "-c", "echo out; echo err >&2; exit 3"])).await;
        assert!(!out.success);
        assert!(!out.timed_out);
        assert_eq!(out.exit_code, Some(3));
        assert!(
            out.output.contains("out\n") && out.output.contains("err\n"),
            "{out:?}"
        );

        let ok = run(spec(&["true"])).await;
        assert!(ok.success);
        assert_eq!(ok.exit_code, Some(0));
        assert_eq!(ok.output, "");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let t0 = std::time::Instant::now();
        // sh forks `sleep` (not exec) so the group kill is what closes the pipes; the sleep pid is printed first.
        let out = run(RunSpec {
            timeout: Duration::from_millis(200),
            ..spec(&["sh", "-c", "sleep 30 & echo $!; wait"])
        })
        .await;
        let took = t0.elapsed();
        assert!(out.timed_out, "{out:?}");
        assert!(!out.success);
        assert_eq!(out.exit_code, None);
        // Well under DRAIN_GRACE: the pipes closed because the grandchild died too.
        assert!(took < Duration::from_millis(1500), "took {took:?}");
        let pid: i32 = out.output.trim().parse().expect("sleep pid");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Gone, or a zombie waiting for a reaper: either way, dead.
            let dead = stat.is_empty()
                || stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'));
            if dead {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "grandchild {pid} still alive: {stat}"
            );
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn plain_sleep_times_out_quickly() {
        let t0 = std::time::Instant::now();
        let out = run(RunSpec {
            timeout: Duration::from_millis(200),
            ..spec(&["sleep", "30"])
        })
        .await;
        assert!(out.timed_out && !out.success && out.exit_code.is_none());
        assert!(t0.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn truncation_keeps_the_tail() {
        let out = run(RunSpec {
            max_output: 100,
            ..spec(&[
                "sh",
                "-c",
                "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done; echo THE-END",
            ])
        })
        .await;
        assert!(out.success);
        assert!(out.output.len() <= 100, "{}", out.output.len());
        assert!(out.output.starts_with("…(truncated "), "{}", out.output);
        assert!(
            out.output.ends_with("line1999\nTHE-END\n"),
            "{}",
            out.output
        );
    }

    #[test]
    fn truncate_tail_respects_char_boundaries() {
        let text = "ééééééééééééééééééééééééééééééééééééééééééééééé-end";
        let out = truncate_tail(text, 0, 40);
        assert!(out.len() <= 40);
        assert!(out.ends_with("-end"));
        let marker_end = out.find('\n').unwrap();
        let n: usize = out["…(truncated ".len()..marker_end - " bytes)".len()]
            .parse()
            .unwrap();
        assert_eq!(n + out.len() - marker_end - 1, text.len());
        assert_eq!(truncate_tail("short", 0, 40), "short");
    }

    #[tokio::test]
    async fn output_is_masked_even_when_truncated() {
        let secret = "hunter2-very-secret-token".to_string();
        let secrets = vec![secret.clone()];
        let script = "i=0; while [ $i -lt 500 ]; do printf 'hunter2-very-secret-token.'; i=$((i+1)); done; echo; echo token=$TOKEN";
        let out = run(RunSpec {
            env: vec![("TOKEN".into(), secret.clone())],
            secrets: &secrets,
            max_output: 200,
            ..spec(&["sh", "-c", script])
        })
        .await;
        assert!(out.success);
        assert!(out.output.len() <= 200);
        assert!(!out.output.contains("hunter2"), "{}", out.output);
        assert!(
            !out.output.contains("token."),
            "partial secret leaked: {}",
            out.output
        );
        assert!(out.output.ends_with("token=***\n"), "{}", out.output);
    }

    #[test]
    fn collector_cuts_partial_secret_at_front() {
        let secrets = s(&["SECRETSECRET"]);
        let mut col = Collector::new(10, 12);
        let mut data = "x".repeat(200);
        data.push_str("SECRETSECRET");
        data.push_str(&"y".repeat(30));
        // Make the kept window start in the middle of the secret.
        col.push(data.as_bytes());
        col.keep = 30 + 6;
        let out = col.finish(&secrets, 12, 1000);
        assert!(!out.contains("SECRET") && !out.contains("CRET"), "{out}");
        assert!(out.starts_with("…(truncated "), "{out}");
    }

    #[tokio::test]
    async fn env_is_passed() {
        let out = run(RunSpec {
            env: vec![("GREENLIGHT_TEST_VAR".into(), "value with spaces".into())],
            ..spec(&["sh", "-c", "printf '%s' \"$GREENLIGHT_TEST_VAR\""])
        })
        .await;
        assert!(out.success);
        assert_eq!(out.output, "value with spaces");
    }

    #[tokio::test]
    async fn program_not_found() {
        let out = run(spec(&["/nonexistent/greenlight-no-such-program", "x"])).await;
        assert!(!out.success && !out.timed_out);
        assert_eq!(out.exit_code, None);
        assert!(
            out.output.contains("greenlight-no-such-program"),
            "{}",
            out.output
        );
        assert!(
            out.output.to_lowercase().contains("no such file"),
            "{}",
            out.output
        );

        let empty = run(spec(&[])).await;
        assert!(!empty.success);
        assert!(!empty.output.is_empty());
    }

    #[tokio::test]
    async fn killed_by_signal_has_no_exit_code() {
        let out = run(spec(&["sh", "-c", "kill -9 $$"])).await;
        assert!(!out.success && !out.timed_out);
        assert_eq!(out.exit_code, None);
    }

    #[test]
    fn expand_env_refs_cases() {
        let env = |name: &str| match name {
            "HOME" => Some("/home/ci".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        assert_eq!(expand_env_refs("${HOME}/x", &env).unwrap(), "/home/ci/x");
        assert_eq!(expand_env_refs("a${EMPTY}b", &env).unwrap(), "ab");
        assert_eq!(expand_env_refs("$${HOME}", &env).unwrap(), "${HOME}");
        assert_eq!(expand_env_refs("$HOME $ 5$", &env).unwrap(), "$HOME $ 5$");
        assert_eq!(
            expand_env_refs("${HOME}${HOME}", &env).unwrap(),
            "/home/ci/home/ci"
        );
        assert_eq!(expand_env_refs("", &env).unwrap(), "");
        assert_eq!(
            expand_env_refs("x ${MISSING} y", &env).unwrap_err(),
            "environment variable MISSING is not set"
        );
        assert!(expand_env_refs("${HOME", &env).is_err());
        assert!(expand_env_refs("${}", &env).is_err());
        assert!(expand_env_refs("${1X}", &env).is_err());
        // Values are not re-expanded.
        let tricky = |_: &str| Some("${HOME}".to_string());
        assert_eq!(expand_env_refs("${A}", &tricky).unwrap(), "${HOME}");
    }
}
