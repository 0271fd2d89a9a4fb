//! The `command` driver: argv templates (never a shell) put versions on colours, and, as a
//! traffic step, switch traffic and say which colour is live (`live_query`).
//!
//! Shape: `schema.rs` the config sections as written and their validation, `process.rs`
//! running one program (process groups, timeouts, output truncation and masking), this file
//! the two steps.

mod process;
pub mod schema;

pub use crate::core::text::{mask, render_template};
pub use process::{expand_env_refs, render_argv, run, CommandOutcome, RunSpec};
pub use schema::{CommandDriverConfig, CommandTrafficConfig};

use super::{BoxFuture, DeployStep, StepCtx, TrafficStep};
use crate::core::engine::LiveView;
use crate::core::{Colour, EnvName};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How much command output is kept for the thread.
const MAX_OUTPUT: usize = 1500;

/// Runs argv templates for one environment (with its secrets and timeout).
pub struct CommandRunner {
    pub env: EnvName,
    pub vars_env: BTreeMap<String, String>,
    pub timeout: std::time::Duration,
    pub secrets: Vec<String>,
}

/// The deploy step: `deploy_idle` and `teardown` commands; each colour has a fixed URL.
pub struct CommandDeploy {
    pub runner: Arc<CommandRunner>,
    pub cfg: CommandDriverConfig,
}

/// The traffic step: `switch` (and `rollback`) commands, `live_query` to ask.
pub struct CommandTraffic {
    pub runner: Arc<CommandRunner>,
    pub cfg: CommandTrafficConfig,
}

impl DeployStep for CommandDeploy {
    fn url(&self, colour: Colour) -> Option<String> {
        Some(match colour {
            Colour::Blue => self.cfg.blue_url.clone(),
            Colour::Green => self.cfg.green_url.clone(),
        })
    }

    fn deploy<'a>(
        &'a self,
        colour: Colour,
        version: &'a str,
        _ctx: &'a StepCtx,
    ) -> BoxFuture<'a, Result<(), String>> {
        let steps = &self.cfg.deploy_idle;
        Box::pin(
            self.runner
                .run_steps("deploy_idle", steps, colour, None, Some(version)),
        )
    }

    fn teardown(&self, colour: Colour) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(t) = &self.cfg.teardown {
                let r = self
                    .runner
                    .run_steps("teardown", t, colour, None, None)
                    .await;
                if let Err(e) = r {
                    let env = &self.runner.env;
                    tracing::warn!(%env, %colour, error = %e, "teardown failed");
                }
            }
        })
    }
}

impl TrafficStep for CommandTraffic {
    fn observe(&self) -> BoxFuture<'_, LiveView> {
        Box::pin(async move {
            match &self.cfg.query {
                Some(q) => match self.runner.query_live(q).await {
                    Ok(c) => LiveView::Seen(c),
                    Err(e) => LiveView::Unseen(e),
                },
                None => LiveView::Unasked,
            }
        })
    }

    fn switch<'a>(
        &'a self,
        to: Colour,
        from: Option<Colour>,
        _ctx: &'a StepCtx,
    ) -> BoxFuture<'a, Result<(), String>> {
        let steps = &self.cfg.switch;
        Box::pin(self.runner.run_steps("switch", steps, to, from, None))
    }

    /// The `rollback` commands if any, else `switch` again.
    fn switch_back<'a>(
        &'a self,
        to: Colour,
        from: Colour,
        _ctx: &'a StepCtx,
    ) -> BoxFuture<'a, Result<(), String>> {
        let (what, steps) = match &self.cfg.rollback {
            Some(r) => ("rollback", r),
            None => ("switch", &self.cfg.switch),
        };
        Box::pin(self.runner.run_steps(what, steps, to, Some(from), None))
    }
}

impl CommandRunner {
    /// Runs each argv template in order; the first failure stops and explains.
    pub async fn run_steps(
        &self,
        step: &str,
        steps: &[Vec<String>],
        colour: Colour,
        from: Option<Colour>,
        version: Option<&str>,
    ) -> Result<(), String> {
        for argv in steps {
            self.run(step, argv, colour, from, version).await?;
        }
        Ok(())
    }

    /// Runs the `live_query` steps; the last line the last one prints names the live colour:
    /// `blue`, `green` or `none`. Anything else is an answer greenlight cannot read.
    pub async fn query_live(&self, steps: &[Vec<String>]) -> Result<Option<Colour>, String> {
        let mut last = String::new();
        for argv in steps {
            // The query is about the environment, not a colour: `{colour}` renders as blue.
            last = self
                .run("live_query", argv, Colour::Blue, None, None)
                .await?;
        }
        let line = last
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        match line.to_ascii_lowercase().as_str() {
            "blue" => Ok(Some(Colour::Blue)),
            "green" => Ok(Some(Colour::Green)),
            "none" => Ok(None),
            other => Err(format!(
                "live_query printed \"{}\" as its last line, not blue, green or none",
                crate::core::text::clip(other, 60)
            )),
        }
    }

    async fn run(
        &self,
        step: &str,
        argv: &[String],
        colour: Colour,
        from: Option<Colour>,
        version: Option<&str>,
    ) -> Result<String, String> {
        let mut vars = BTreeMap::new();
        vars.insert("env".to_string(), self.env.0.clone());
        vars.insert("colour".to_string(), colour.to_string());
        vars.insert("color".to_string(), colour.to_string());
        vars.insert("other".to_string(), colour.other().to_string());
        vars.insert(
            "from".to_string(),
            from.unwrap_or(colour.other()).to_string(),
        );
        if let Some(v) = version {
            vars.insert("version".to_string(), v.to_string());
        }
        let argv = render_argv(argv, &vars).map_err(|e| format!("{step} command: {e}"))?;
        let out = run(RunSpec {
            argv: argv.clone(),
            env: self
                .vars_env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            timeout: self.timeout,
            secrets: &self.secrets,
            max_output: MAX_OUTPUT,
        })
        .await;
        if out.success {
            return Ok(out.output);
        }
        let what = if out.timed_out {
            format!(
                "timed out after {}",
                humantime::format_duration(self.timeout)
            )
        } else {
            match out.exit_code {
                Some(c) => format!("exited with status {c}"),
                None => "was killed".to_string(),
            }
        };
        let output = out.output.trim();
        Err(format!(
            "{step} command `{}` {what}{}",
            mask(&argv.join(" "), &self.secrets),
            if output.is_empty() {
                String::new()
            } else {
                format!("; output:\n```\n{output}\n```")
            }
        ))
    }
}
