//! The `local` driver: the bundled demo app per colour as child processes that die with the
//! bot, and a small HTTP router on the environment's port that sends traffic to the live colour.

use super::{BoxFuture, DeployStep, StepCtx, TrafficStep};
use crate::core::engine::LiveView;
use crate::core::{Colour, EnvName};
use anyhow::{anyhow, Context, Result};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

/// Where the router sends traffic: the live colour and its port (0 = nothing live).
#[derive(Default)]
struct Target {
    /// colour in the high bits, port in the low 16 bits; one atomic so a switch is instant.
    packed: AtomicU64,
}

impl Target {
    fn set(&self, colour: Option<(Colour, u16)>) {
        let v = match colour {
            None => 0,
            Some((c, p)) => ((if c == Colour::Blue { 1u64 } else { 2u64 }) << 16) | p as u64,
        };
        self.packed.store(v, Ordering::SeqCst);
    }
    fn get(&self) -> Option<(Colour, u16)> {
        let v = self.packed.load(Ordering::SeqCst);
        let c = match v >> 16 {
            1 => Colour::Blue,
            2 => Colour::Green,
            _ => return None,
        };
        Some((c, (v & 0xffff) as u16))
    }
}

struct Proc {
    child: Child,
    port: u16,
    version: String,
}

pub struct LocalDriver {
    env: EnvName,
    exe: PathBuf,
    pid_dir: PathBuf,
    procs: tokio::sync::Mutex<HashMap<Colour, Proc>>,
    ports: Mutex<HashMap<Colour, u16>>,
    target: Arc<Target>,
    client: reqwest::Client,
    router_url: String,
}

impl LocalDriver {
    /// Binds the router on `port` (0 = any free port) and serves it.
    pub async fn start(
        env: EnvName,
        port: u16,
        data_dir: &std::path::Path,
    ) -> Result<Arc<LocalDriver>> {
        let exe = std::env::current_exe().context("cannot find greenlight's own executable")?;
        let pid_dir = data_dir.join("pids");
        std::fs::create_dir_all(&pid_dir)?;
        reap_leftovers(&pid_dir, &env);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("cannot bind the {env} router on 127.0.0.1:{port}"))?;
        let addr = listener.local_addr()?;
        let target = Arc::new(Target::default());
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()?;
        let app = axum::Router::new().fallback(proxy).with_state(RouterState {
            target: target.clone(),
            client: client.clone(),
        });
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "router stopped");
            }
        });
        Ok(Arc::new(LocalDriver {
            env,
            exe,
            pid_dir,
            procs: tokio::sync::Mutex::new(HashMap::new()),
            ports: Mutex::new(HashMap::new()),
            target,
            client,
            router_url: format!("http://{addr}"),
        }))
    }

    pub fn router_url(&self) -> &str {
        &self.router_url
    }

    /// Base URL of a colour's app, if it runs.
    pub fn url(&self, colour: Colour) -> Option<String> {
        self.ports
            .lock()
            .expect("ports")
            .get(&colour)
            .map(|p| format!("http://127.0.0.1:{p}"))
    }

    pub fn live(&self) -> Option<Colour> {
        self.target.get().map(|(c, _)| c)
    }

    fn pid_file(&self, colour: Colour) -> PathBuf {
        self.pid_dir.join(format!("{}-{colour}.pid", self.env))
    }

    /// Starts `version` on `colour`, replacing whatever ran there.
    pub async fn deploy(&self, colour: Colour, version: &str) -> Result<()> {
        self.teardown(colour).await;
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.args([
            "demo-app",
            "--listen",
            "127.0.0.1:0",
            "--version",
            version,
            "--colour",
            colour.as_str(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe; it makes the child die when the bot dies.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().context("cannot start the demo app")?;
        if let Some(pid) = child.id() {
            let _ = std::fs::write(self.pid_file(colour), pid.to_string());
        }
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout from the demo app"))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .map_err(|_| anyhow!("the demo app did not start within 10s"))??
            .ok_or_else(|| anyhow!("the demo app exited at start"))?;
        let port: u16 = first
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| anyhow!("unexpected first line from the demo app: {first}"))?;
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.ports.lock().expect("ports").insert(colour, port);
        self.procs.lock().await.insert(
            colour,
            Proc {
                child,
                port,
                version: version.to_string(),
            },
        );
        tracing::info!(env = %self.env, %colour, version, port, "demo app started");
        Ok(())
    }

    /// Sends traffic to `to`. The old colour keeps running (in-flight requests finish there).
    /// Tells the new colour it is live (a `-faulty`/`-slow` demo version misbehaves from then on).
    pub async fn switch(&self, to: Colour) -> Result<()> {
        let port = *self
            .ports
            .lock()
            .expect("ports")
            .get(&to)
            .ok_or_else(|| anyhow!("{to} is not running"))?;
        self.target.set(Some((to, port)));
        let _ = self
            .client
            .post(format!("http://127.0.0.1:{port}/_demo/live"))
            .send()
            .await;
        tracing::info!(env = %self.env, %to, "router switched");
        Ok(())
    }

    pub async fn teardown(&self, colour: Colour) {
        if let Some(mut p) = self.procs.lock().await.remove(&colour) {
            let _ = p.child.kill().await;
            tracing::info!(env = %self.env, %colour, version = %p.version, port = p.port, "demo app stopped");
        }
        self.ports.lock().expect("ports").remove(&colour);
        let _ = std::fs::remove_file(self.pid_file(colour));
        if self.live() == Some(colour) {
            self.target.set(None);
        }
    }

    /// After a start: bring back the colours the store says exist, traffic on the live one.
    pub async fn restore(
        &self,
        live: Option<Colour>,
        blue: Option<&str>,
        green: Option<&str>,
    ) -> Result<Option<Colour>> {
        for (c, v) in [(Colour::Blue, blue), (Colour::Green, green)] {
            if let Some(v) = v {
                self.deploy(c, v).await?;
            }
        }
        if let Some(l) = live {
            if self.url(l).is_some() {
                // As at the switch: the restarted app is told it is live, so a `-faulty` or
                // `-slow` release misbehaves again and monitoring judges it as before.
                self.switch(l).await?;
            }
        }
        Ok(self.live())
    }
}

/// `[environments.X.deploy]` with `driver = "local"`, as written.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct LocalSection {
    /// The router's port (0 = any free port).
    #[serde(default)]
    pub port: u16,
}

impl DeployStep for LocalDriver {
    fn url(&self, colour: Colour) -> Option<String> {
        LocalDriver::url(self, colour)
    }

    fn deploy<'a>(
        &'a self,
        colour: Colour,
        version: &'a str,
        _ctx: &'a StepCtx,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            LocalDriver::deploy(self, colour, version)
                .await
                .map_err(|e| format!("{e:#}"))
        })
    }

    fn teardown(&self, colour: Colour) -> BoxFuture<'_, ()> {
        Box::pin(LocalDriver::teardown(self, colour))
    }

    fn restore<'a>(
        &'a self,
        live: Option<Colour>,
        blue: Option<&'a str>,
        green: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            LocalDriver::restore(self, live, blue, green).await?;
            Ok(())
        })
    }
}

/// The router is the traffic step too.
impl TrafficStep for LocalDriver {
    /// The router is in this process: what it routes to is the truth.
    fn observe(&self) -> BoxFuture<'_, LiveView> {
        Box::pin(async move { LiveView::Seen(self.live()) })
    }

    fn switch<'a>(
        &'a self,
        to: Colour,
        _from: Option<Colour>,
        _ctx: &'a StepCtx,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            LocalDriver::switch(self, to)
                .await
                .map_err(|e| format!("{e:#}"))
        })
    }
}

/// Kills demo apps left by a bot that was SIGKILLed (normally they die with it).
fn reap_leftovers(pid_dir: &std::path::Path, env: &EnvName) {
    for c in ["blue", "green"] {
        let f = pid_dir.join(format!("{env}-{c}.pid"));
        if let Ok(s) = std::fs::read_to_string(&f) {
            if let Ok(pid) = s.trim().parse::<i32>() {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains("demo-app") {
                    // SAFETY: plain kill(2) on a pid we started, checked by its command line.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                    tracing::warn!(%env, pid, "reaped a leftover demo app");
                }
            }
            let _ = std::fs::remove_file(&f);
        }
    }
}

#[derive(Clone)]
struct RouterState {
    target: Arc<Target>,
    client: reqwest::Client,
}

async fn proxy(State(st): State<RouterState>, req: Request) -> Response {
    let Some((colour, port)) = st.target.get() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no colour is live yet\n").into_response();
    };
    let (parts, body) = req.into_parts();
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let body = match axum::body::to_bytes(body, 16 << 20).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::BAD_REQUEST, "body too large\n").into_response(),
    };
    let mut out = st
        .client
        .request(parts.method.clone(), format!("http://127.0.0.1:{port}{pq}"));
    for (k, v) in parts.headers.iter() {
        if k != "host" && k != "content-length" && k != "connection" {
            out = out.header(k, v);
        }
    }
    match out.body(body).send().await {
        Ok(resp) => {
            let status = resp.status();
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await.unwrap_or_default();
            let mut r = Response::builder().status(status);
            for (k, v) in headers.iter() {
                if k != "transfer-encoding" && k != "connection" && k != "content-length" {
                    r = r.header(k, v);
                }
            }
            let mut r = r
                .body(Body::from(bytes))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response());
            r.headers_mut().insert(
                HeaderName::from_static("x-greenlight-colour"),
                HeaderValue::from_static(colour.as_str()),
            );
            r
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("{colour} did not answer: {e}\n"),
        )
            .into_response(),
    }
}
