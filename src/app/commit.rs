//! Group commit: the inputs waiting when a commit starts are applied to the engine in order and
//! written in one store batch with one flush; what each of them leads to (its answer to the
//! chat platform, timers, synthetic traffic, actions) happens only after that flush, in input
//! order. A crash before the flush loses only inputs nobody was told about, and nothing they
//! led to has been carried out.

use super::route::Origin;
use super::{fault, route, ApiError, App, AppEvent};
use crate::chat::{Handled, Reply};
use crate::core::engine::{Action, Changes, Run, Timer};
use crate::core::RunId;
use crate::store::WriteSet;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

/// The most inputs one commit holds (the rest wait for the next flush).
const MAX_GROUP: usize = 256;

/// The most old local messages one commit trims (more when more were added).
const TRIM_STEP: usize = 64;

/// What one input leads to once the flush holding it is done.
pub(super) enum AfterFlush {
    /// A step's runs (the bot's metrics, synthetic traffic), timers and actions (each with the
    /// run's version for smoke steps, read when the step was applied).
    Step {
        runs: Vec<Run>,
        timers: Vec<(DateTime<Utc>, Timer)>,
        actions: Vec<(Action, Option<String>)>,
    },
    /// A command was acknowledged: the time since it was taken up (the bot's metrics).
    Acked(std::time::Instant),
    /// A chat event's answer (the local API's response, Slack's ack, Discord's response).
    Answer(Reply, Result<Handled, ApiError>),
}

impl App {
    /// One group commit: `first` (when the loop woke for an input), the timers due, and every
    /// input already waiting, up to `MAX_GROUP`.
    pub(super) fn group(
        &mut self,
        first: Option<AppEvent>,
        rx: &mut mpsc::Receiver<AppEvent>,
    ) -> Result<()> {
        let store = self.store.clone();
        let mut ws = store.begin();
        let mut inputs = 0;
        if let Some(ev) = first {
            self.handle(ev, &mut ws)?;
            inputs += 1;
        }
        inputs += self.due_timers(&mut ws)?;
        while inputs < MAX_GROUP {
            match rx.try_recv() {
                Ok(ev) => {
                    self.handle(ev, &mut ws)?;
                    inputs += 1;
                }
                Err(_) => break,
            }
        }
        if inputs == 0 {
            return Ok(());
        }
        self.fault_unflushed(inputs as u64);
        self.commit(ws)
    }

    /// Applies every timer that is due; how many there were.
    fn due_timers(&mut self, ws: &mut WriteSet<'_>) -> Result<usize> {
        let now = Utc::now();
        let mono = tokio::time::Instant::now();
        let mut n = 0;
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > mono {
                break;
            }
            let t = entry.remove();
            let ch = self.engine.timer(t, now);
            self.stage(ws, ch, None, now)?;
            n += 1;
        }
        Ok(n)
    }

    /// Fault injection for the crash tests: `unflushed:<n>` kills the bot once the `n`-th input
    /// since start is applied, before the flush that would hold it.
    fn fault_unflushed(&mut self, inputs: u64) {
        let first = self.inputs + 1;
        self.inputs += inputs;
        if std::env::var_os("GREENLIGHT_FAULT").is_some() {
            for n in first..=self.inputs {
                fault(&format!("unflushed:{n}"));
            }
        }
    }

    /// Writes a step's changes and its messages into the batch `ws`; what it leads to waits for
    /// the flush.
    pub(super) fn stage(
        &mut self,
        ws: &mut WriteSet<'_>,
        ch: Changes,
        origin: Option<&Origin>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        for r in &ch.runs {
            ws.put_run(r);
        }
        for (k, st) in &ch.envs {
            ws.put_env(k, st);
        }
        for e in &ch.events {
            ws.put_event(e)?;
        }
        if let Some(n) = ch.next_run {
            ws.put_next_run(n);
        }
        let engine = &self.engine;
        let run_origin = |id: RunId| engine.run(id).map(|r| r.origin);
        let routed = route::route(&self.cfg, &self.platforms, &ch, origin, &run_origin);
        route::write(ws, &self.cfg, routed, now)?;
        let actions = ch
            .actions
            .into_iter()
            .map(|a| {
                let version = match &a {
                    Action::Verify { run, .. } | Action::Sample { run, .. } => {
                        self.engine.run(*run).map(|r| r.version.clone())
                    }
                    _ => None,
                };
                (a, version)
            })
            .collect();
        self.after.push(AfterFlush::Step {
            runs: ch.runs,
            timers: ch.timers,
            actions,
        });
        Ok(())
    }

    /// Writes the batch with one flush, then carries out what each of its inputs leads to, in
    /// order.
    pub(super) fn commit(&mut self, ws: WriteSet<'_>) -> Result<()> {
        let (added, outboxed) = (ws.new_messages, ws.outboxed);
        ws.commit().context("writing to the store")?;
        // Written: now act.
        if outboxed > 0 {
            for n in [&self.platforms.slack, &self.platforms.discord]
                .into_iter()
                .flatten()
            {
                n.notify_one();
            }
        }
        self.messages += added;
        for a in std::mem::take(&mut self.after) {
            match a {
                AfterFlush::Step {
                    runs,
                    timers,
                    actions,
                } => self.carry_out(runs, timers, actions),
                AfterFlush::Acked(started) => self
                    .telemetry
                    .ack_seconds
                    .observe(started.elapsed().as_secs_f64()),
                AfterFlush::Answer(reply, r) => {
                    let _ = reply.send(r);
                }
            }
        }
        // Retention, once everyone is answered and in small steps: a trim of hundreds of
        // messages at once held a whole group's answers (a p99 spike every few hundred
        // commands at 500/s). The loop is the only writer of messages, so its count is the
        // store's; what is trimmed needs no flush of its own (a crash just trims it again).
        let keep = self.cfg.bot.local_retention;
        if self.messages > keep {
            let step = (self.messages - keep).min(TRIM_STEP.max(2 * added));
            self.messages -= self.store.trim_oldest(step)?;
        }
        Ok(())
    }

    /// What a written step leads to: the bot's metrics, timers, synthetic traffic, actions.
    fn carry_out(
        &mut self,
        runs: Vec<Run>,
        timers: Vec<(DateTime<Utc>, Timer)>,
        actions: Vec<(Action, Option<String>)>,
    ) {
        self.count(&runs);
        for r in &runs {
            fault(&format!(
                "persisted:{}",
                serde_json::to_value(r.phase)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            ));
        }
        for (at, t) in timers {
            self.arm(at, t);
        }
        for r in &runs {
            self.act.traffic_for(r.env.clone(), r.phase);
            if r.phase.is_terminal() {
                self.act.forget(&r.env, r.id);
            }
        }
        for (a, version) in actions {
            self.act.spawn(a, version);
        }
    }
}
