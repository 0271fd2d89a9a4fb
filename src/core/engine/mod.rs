//! The engine: every environment's state and every active run, `(state, input, now) -> Changes`.
//! Pure: the shell persists the `Changes` (before acting), carries out their actions and feeds
//! the results back. This file is the conductor (the state, `Tx`, the steps every input shares);
//! each kind of input has its own room:
//!
//! - `commands.rs`: a person's command (deploy, why-not, status, lock, cancel, rollback);
//! - `reactions.rs`: reactions and button clicks on a checklist;
//! - `timers.rs`: the timers the shell armed (expiry, monitor ticks, teardown, looking again);
//! - `pipeline.rs`: the deploy steps up to the traffic switch and their results;
//! - `evidence.rs`: checklist items ticked by CI evidence, re-readings, break-glass override;
//! - `monitoring.rs`: after the switch: the checks, the verdict, the rollback;
//! - `restart.rs`: loading the store, resuming runs, what the traffic step sees;
//! - `wording.rs`: every sentence the engine says, in one place.

mod commands;
mod effects;
mod evidence;
mod monitoring;
mod pipeline;
mod reactions;
mod restart;
mod revert;
mod timers;
mod wording;

#[cfg(test)]
mod tests;

pub use super::event::{Event, Gate, What};
pub use super::state::{
    EnvState, Lock, LockOwner, MonitorProgress, PendingRevert, Phase, Run, RunKind,
};
pub use effects::{Action, Changes, LiveView, Outcome, Reply, RevertLink, Timer, OBSERVE_EVERY};

use super::analysis::Thresholds;
use super::message::{MsgKey, Post, Room};
use super::rules::{EnvRules, Rules};
use super::{Colour, EnvName, Platform, RunId, UserId};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The pure engine: every environment's state and every active run. Its state changes only
/// inside an input's handling, and every change is in the `Changes` that input returns.
pub struct Engine {
    rules: Arc<Rules>,
    envs: BTreeMap<EnvName, EnvState>,
    runs: BTreeMap<RunId, Run>,
    next_run: u64,
    /// Base of links to runs in alerts.
    link_base: String,
    /// When each run's current monitoring check started (not persisted: after a restart the
    /// first check simply starts the cadence again).
    ticked: BTreeMap<RunId, DateTime<Utc>>,
    /// Runs whose current check's critical path has not reported yet (it may come back before
    /// or after the metrics). Not persisted: a restart starts a new check.
    critical_pending: BTreeSet<RunId>,
}

/// A configured length as a wall-clock step (lengths past chrono's range saturate).
fn to_std(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Where a refused reaction is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefusalsTo {
    /// In the run's thread, meant for the reacting person only (once per run and reason).
    Thread,
    /// To the clicking person only, as the answer to the click.
    Clicker,
}

/// Builder of `Changes` that remembers which runs and environments were touched.
struct Tx {
    ch: Changes,
    origin: Platform,
    refusals: RefusalsTo,
    runs: Vec<RunId>,
    envs: Vec<EnvName>,
    now: DateTime<Utc>,
}

impl Tx {
    fn new(now: DateTime<Utc>) -> Tx {
        Tx {
            ch: Changes::default(),
            origin: Platform::Local,
            refusals: RefusalsTo::Thread,
            runs: Vec::new(),
            envs: Vec::new(),
            now,
        }
    }
    fn touch_run(&mut self, id: RunId) {
        if !self.runs.contains(&id) {
            self.runs.push(id);
        }
    }
    fn touch_env(&mut self, env: &EnvName) {
        if !self.envs.contains(env) {
            self.envs.push(env.clone());
        }
    }
    fn event(&mut self, run: RunId, who: Option<&UserId>, what: What) {
        self.touch_run(run);
        self.ch.events.push(Event {
            run,
            at: self.now,
            who: who.cloned(),
            what,
        });
    }
    fn post(&mut self, p: Post) {
        self.ch.posts.push(p);
    }
    /// A reply in run `id`'s checklist thread.
    fn say_in_thread(&mut self, env: &EnvName, id: RunId, text: String) {
        self.post(Post::top(env, Room::Deploys, text).in_thread(id));
    }
    fn action(&mut self, a: Action) {
        self.ch.actions.push(a);
    }
    fn timer(&mut self, at: DateTime<Utc>, t: Timer) {
        self.ch.timers.push((at, t));
    }
}

impl Engine {
    pub fn new(rules: Arc<Rules>, link_base: String) -> Engine {
        let envs = rules
            .envs
            .keys()
            .map(|k| (k.clone(), EnvState::unknown()))
            .collect();
        Engine {
            rules,
            envs,
            runs: BTreeMap::new(),
            next_run: 1,
            link_base,
            ticked: BTreeMap::new(),
            critical_pending: BTreeSet::new(),
        }
    }

    pub fn rules(&self) -> &Arc<Rules> {
        &self.rules
    }

    /// An environment's state.
    pub fn env(&self, env: &EnvName) -> Option<&EnvState> {
        self.envs.get(env)
    }

    /// Every environment's state, by name.
    pub fn envs(&self) -> impl Iterator<Item = (&EnvName, &EnvState)> {
        self.envs.iter()
    }

    /// An active run.
    pub fn run(&self, id: RunId) -> Option<&Run> {
        self.runs.get(&id)
    }

    /// The active runs, by number.
    pub fn runs(&self) -> impl Iterator<Item = &Run> {
        self.runs.values()
    }

    /// The number the next run gets.
    pub fn next_run(&self) -> u64 {
        self.next_run
    }

    /// Where the environment's traffic enters, as its driver says (shown by `status`).
    pub fn set_entry_url(
        &mut self,
        env: &EnvName,
        url: Option<String>,
        now: DateTime<Utc>,
    ) -> Changes {
        let mut tx = Tx::new(now);
        if let Some(st) = self.envs.get_mut(env) {
            if st.url != url {
                st.url = url;
                tx.touch_env(env);
            }
        }
        self.finish(tx)
    }

    fn env_rules(&self, env: &EnvName) -> &EnvRules {
        &self.rules.envs[env]
    }

    fn display(&self, env: &EnvName) -> String {
        self.env_rules(env).display_name.clone()
    }

    fn env_mut(&mut self, env: &EnvName) -> &mut EnvState {
        self.envs.get_mut(env).expect("a configured environment")
    }

    fn run_mut(&mut self, id: RunId) -> &mut Run {
        self.runs.get_mut(&id).expect("an active run")
    }

    /// Closes an input: every touched run and environment goes into the `Changes`; a run that
    /// ended leaves the engine (and its environment).
    fn finish(&mut self, mut tx: Tx) -> Changes {
        let touched = tx.runs.clone();
        for id in &touched {
            let Some(r) = self.runs.get_mut(id) else {
                continue;
            };
            r.updated = tx.now;
            tx.ch.runs.push(r.clone());
            if r.phase.is_terminal() {
                let env = r.env.clone();
                self.runs.remove(id);
                self.release_env(&mut tx, &env, *id);
            }
        }
        for env in &tx.envs {
            if let Some(st) = self.envs.get(env) {
                tx.ch.envs.push((env.clone(), st.clone()));
            }
        }
        tx.ch
    }

    /// Run `id` ended: the environment is free again.
    fn release_env(&mut self, tx: &mut Tx, env: &EnvName, id: RunId) {
        let Some(st) = self.envs.get_mut(env) else {
            return;
        };
        if st.active_run == Some(id) {
            st.active_run = None;
            tx.touch_env(env);
        }
        // A kept-warm teardown skipped while this run was active is due again.
        if let Some(until) = st.warm_until {
            let t = Timer::Teardown(env.clone());
            if !tx.ch.timers.iter().any(|(_, x)| *x == t) {
                tx.timer(until.max(tx.now), t);
            }
        }
    }

    fn thresholds(&self, env: &EnvName) -> Thresholds {
        let m = &self.env_rules(env).monitor;
        Thresholds {
            error_rate: m.error_rate,
            latency_factor: m.latency_factor,
            min_requests: m.min_requests,
            latency_floor: m.latency_floor.as_secs_f64(),
        }
    }

    fn link(&self, id: RunId) -> String {
        format!("{}/runs/{id}", self.link_base.trim_end_matches('/'))
    }

    /// Takes the next run number (persisted with the run).
    fn take_run_id(&mut self, tx: &mut Tx) -> RunId {
        let id = RunId(self.next_run);
        self.next_run += 1;
        tx.ch.next_run = Some(self.next_run);
        id
    }

    /// A new run becomes its environment's active run.
    fn open_run(&mut self, tx: &mut Tx, run: Run) {
        let (id, env) = (run.id, run.env.clone());
        self.runs.insert(id, run);
        self.env_mut(&env).active_run = Some(id);
        tx.touch_env(&env);
        tx.touch_run(id);
    }

    /// The deploy steps start (again): results of earlier attempts are stale from now on.
    fn bump_attempt(&mut self, id: RunId) -> u32 {
        let run = self.run_mut(id);
        run.attempt += 1;
        run.attempt
    }

    fn set_phase(&mut self, tx: &mut Tx, id: RunId, phase: Phase, line: String) {
        self.run_mut(id).phase = phase;
        tx.touch_run(id);
        self.status_line(tx, id, wording::step(&line));
    }

    /// Appends a line to the run's status message (one thread reply, edited in place; the
    /// first line and the last 29 are kept).
    fn status_line(&mut self, tx: &mut Tx, id: RunId, line: String) {
        let run = self.run_mut(id);
        run.status.push(line);
        if run.status.len() > 30 {
            let drop = run.status.len() - 30;
            run.status.drain(1..=drop);
        }
        let post = Self::status_post(run, run.phase);
        tx.touch_run(id);
        tx.post(post);
    }

    fn status_post(run: &Run, phase: Phase) -> Post {
        Post::top(
            &run.env,
            Room::Deploys,
            wording::status_message(run.id, phase, &run.status),
        )
        .keyed(MsgKey::Status(run.id))
        .in_thread(run.id)
        .editing()
    }

    fn end(&mut self, tx: &mut Tx, id: RunId, phase: Phase, outcome: String) {
        self.ticked.remove(&id);
        self.critical_pending.remove(&id);
        let run = self.run_mut(id);
        run.phase = phase;
        run.ended = Some(tx.now);
        run.outcome = Some(outcome.clone());
        if !run.status.is_empty() {
            // The status message's header shows the final phase.
            let post = Self::status_post(run, phase);
            tx.post(post);
        }
        tx.event(id, None, What::Ended { phase, outcome });
    }

    /// Tears down `colour` unless it is the live one.
    fn teardown_idle(&mut self, tx: &mut Tx, env: &EnvName, colour: Colour, live: Option<Colour>) {
        if live == Some(colour) {
            return;
        }
        self.env_mut(env).set_version(colour, None);
        tx.touch_env(env);
        tx.action(Action::Teardown {
            env: env.clone(),
            colour,
        });
    }

    /// greenlight locks the environment (a person lifts it); an existing lock stays.
    fn lock_env(&mut self, tx: &mut Tx, env: &EnvName, reason: String, run: Option<RunId>) {
        let now = tx.now;
        let st = self.env_mut(env);
        if st.lock.is_none() {
            st.lock = Some(Lock {
                reason,
                by: LockOwner::Greenlight,
                at: now,
                run,
            });
            tx.touch_env(env);
        }
    }
}
