//! Table-driven unit tests of the engine: commands, checklist reactions, timers, driver results
//! and restarts, asserted on the `Changes` each input returns. Time is always
//! passed in; a small harness persists every `Changes` as the shell would and checks that the
//! engine never changes state without reporting it.

mod commands;
mod deploys;
mod evidence;
mod failures;
mod freezes;
mod reactions;
mod regressions;
mod restart;
mod revert;
mod rollback;
mod stored;

use super::{
    Action, Changes, Engine, EnvState, Event, LiveView, Outcome, Phase, Run, RunKind, Timer, What,
};
use crate::core::analysis::{Measurement, Sample};
use crate::core::command;
use crate::core::message::{MsgKey, Post, Room};
use crate::core::rules::{build, Rules};
use crate::core::{Colour, EnvName, RunId, UserId};
use chrono::{DateTime, Duration, TimeZone, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;

const LINK: &str = "http://127.0.0.1:8080";

// ---- time, names, samples ----------------------------------------------------------------

/// November 2026: the 25th is a Wednesday, the 27th the Friday of "No Friday deploys".
fn t(day: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, h, m, s).unwrap()
}
fn wed(h: u32, m: u32) -> DateTime<Utc> {
    t(25, h, m, 0)
}
fn thu(h: u32, m: u32) -> DateTime<Utc> {
    t(26, h, m, 0)
}
fn fri(h: u32, m: u32) -> DateTime<Utc> {
    t(27, h, m, 0)
}
fn secs(n: i64) -> Duration {
    Duration::seconds(n)
}
fn mins(n: i64) -> Duration {
    Duration::minutes(n)
}

fn user(s: &str) -> UserId {
    UserId::new(s)
}
fn staging() -> EnvName {
    EnvName::new("staging")
}
fn prod() -> EnvName {
    EnvName::new("prod")
}

fn data(requests: f64, error_rate: f64, p99: f64) -> Sample {
    Sample::Data(Measurement {
        requests,
        error_rate: Some(error_rate),
        p99_seconds: Some(p99),
    })
}
fn healthy() -> Sample {
    data(200.0, 0.0, 0.1)
}
fn no_data() -> Sample {
    Sample::Unavailable("metrics endpoint timed out".into())
}

type Check = (Sample, Option<Result<(), String>>);

fn pass() -> Check {
    (healthy(), Some(Ok(())))
}
fn passes(n: usize) -> Vec<Check> {
    (0..n).map(|_| pass()).collect()
}

/// The successful answer of the driver to an action.
fn answer_ok(a: &Action) -> (RunId, u32, Outcome) {
    match a {
        Action::DeployIdle { run, attempt, .. } => (*run, *attempt, Outcome::DeployIdle(Ok(()))),
        Action::Verify { run, attempt, .. } => (
            *run,
            *attempt,
            Outcome::Verify(Ok("healthy; 3 smoke tests passed".into())),
        ),
        Action::Baseline { run, attempt, .. } => (*run, *attempt, Outcome::Baseline(healthy())),
        Action::Switch { run, attempt, .. } => (*run, *attempt, Outcome::Switch(Ok(()))),
        Action::Sample { run, attempt, .. } => {
            (*run, *attempt, Outcome::Sample(healthy(), Some(Ok(()))))
        }
        Action::SwitchBack { run, attempt, .. } => (*run, *attempt, Outcome::SwitchBack(Ok(()))),
        Action::Teardown { .. } => panic!("a teardown has no result"),
        Action::Observe { .. } => panic!("an observation is answered by H::drive"),
        Action::Revert { run, .. } => (
            *run,
            0,
            Outcome::Reverted(Ok(super::RevertLink {
                name: "pull request #7".into(),
                url: "https://github.example/o/r/pull/7".into(),
            })),
        ),
        Action::CheckEvidence { .. } => panic!("evidence is answered by its own tests"),
    }
}

// ---- reading Changes -----------------------------------------------------------------------

/// Top-level posts in the deploys room that are not checklist parents (the lifecycle messages).
fn lifecycle(ch: &Changes) -> Vec<&str> {
    ch.posts
        .iter()
        .filter(|p| p.thread.is_none() && p.key.is_none() && p.room == Room::Deploys)
        .map(|p| p.text.as_str())
        .collect()
}

/// Unkeyed thread replies under run `id`'s checklist (not the status message or item lines).
fn thread_msgs(ch: &Changes, id: RunId) -> Vec<&str> {
    ch.posts
        .iter()
        .filter(|p| p.thread == Some(MsgKey::Checklist(id)) && p.key.is_none())
        .map(|p| p.text.as_str())
        .collect()
}

/// The latest text of run `id`'s status message in these changes.
fn status_msg(ch: &Changes, id: RunId) -> String {
    ch.posts
        .iter()
        .rev()
        .find(|p| p.key == Some(MsgKey::Status(id)))
        .map(|p| {
            assert!(p.edit, "the status message is edited in place");
            assert_eq!(p.thread, Some(MsgKey::Checklist(id)));
            p.text.clone()
        })
        .unwrap_or_default()
}

fn in_room(ch: &Changes, room: Room) -> Vec<&Post> {
    ch.posts.iter().filter(|p| p.room == room).collect()
}

fn run_of(ch: &Changes, id: RunId) -> &Run {
    ch.runs
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("run {id} is not in the changes: {ch:#?}"))
}

fn env_of<'a>(ch: &'a Changes, env: &EnvName) -> &'a EnvState {
    ch.envs
        .iter()
        .find(|(k, _)| k == env)
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("env {env} is not in the changes: {ch:#?}"))
}

/// The monitor tick armed in `ch`, if any.
fn tick_in(ch: &Changes) -> Option<(DateTime<Utc>, Timer)> {
    ch.timers
        .iter()
        .find(|(_, t)| matches!(t, Timer::MonitorTick(..)))
        .cloned()
}

fn nothing(ch: &Changes) -> bool {
    ch.is_empty() && ch.actions.is_empty() && ch.timers.is_empty() && ch.reply.is_none()
}

fn reply(ch: &Changes) -> (&str, bool) {
    let r = ch.reply.as_ref().expect("a reply");
    (r.text.as_str(), r.visibility.is_ephemeral())
}

fn has(texts: &[&str], fragment: &str) -> bool {
    texts.iter().any(|t| t.contains(fragment))
}

// ---- harness -------------------------------------------------------------------------------

/// The engine plus a store that receives exactly what the shell would persist.
struct H {
    e: Engine,
    runs: BTreeMap<RunId, Run>,
    envs: BTreeMap<EnvName, EnvState>,
    next_run: u64,
    /// Every event the engine reported, in order (the store's event logs).
    log: Vec<Event>,
}

impl H {
    fn new(rules: Rules) -> H {
        let mut h = H {
            e: Engine::new(Arc::new(rules), LINK.into()),
            runs: BTreeMap::new(),
            envs: BTreeMap::new(),
            next_run: 1,
            log: Vec::new(),
        };
        // At start every traffic step is asked: here, nothing is live anywhere.
        let envs: Vec<EnvName> = h.e.rules().envs.keys().cloned().collect();
        let mut all = Changes::default();
        for env in envs {
            all.extend(h.e.observed(&env, LiveView::Seen(None), DateTime::<Utc>::MIN_UTC));
        }
        h.persist(all);
        h
    }

    fn demo() -> H {
        H::new(build::demo())
    }

    /// Persists `ch` and checks that it carried every change the engine made to its state.
    fn persist(&mut self, ch: Changes) -> Changes {
        for r in &ch.runs {
            self.runs.insert(r.id, r.clone());
        }
        for (k, v) in &ch.envs {
            self.envs.insert(k.clone(), v.clone());
        }
        if let Some(n) = ch.next_run {
            self.next_run = n;
        }
        self.log.extend(ch.events.iter().cloned());
        for r in self.e.runs() {
            let id = &r.id;
            assert_eq!(
                self.runs.get(id),
                Some(r),
                "run {id} changed without being in the Changes"
            );
        }
        for (id, r) in &self.runs {
            assert!(
                r.phase.is_terminal() || self.e.run(*id).is_some(),
                "run {id} is {:?} in the store but the engine dropped it",
                r.phase
            );
        }
        for (k, st) in self.e.envs() {
            let stored = self.envs.get(k).cloned().unwrap_or_default();
            assert_eq!(&stored, st, "env {k} changed without being in the Changes");
        }
        assert_eq!(self.e.next_run(), self.next_run, "next_run not persisted");
        ch
    }

    fn cmd(&mut self, who: &str, text: &str, now: DateTime<Utc>) -> Changes {
        let c = command::parse(text)
            .expect("a command")
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        let ch = self.e.command(&user(who), c, now);
        self.persist(ch)
    }

    fn react(
        &mut self,
        who: &str,
        key: &str,
        emoji: &str,
        added: bool,
        now: DateTime<Utc>,
    ) -> Changes {
        let ch = self.e.reaction(&user(who), key, emoji, added, now);
        self.persist(ch)
    }

    fn approve(&mut self, who: &str, id: RunId, item: usize, now: DateTime<Utc>) -> Changes {
        self.react(
            who,
            &MsgKey::Item(id, item).to_string(),
            "white_check_mark",
            true,
            now,
        )
    }

    fn result(&mut self, id: RunId, attempt: u32, o: Outcome, now: DateTime<Utc>) -> Changes {
        let ch = self.e.result(id, attempt, o, now);
        self.persist(ch)
    }

    fn timer(&mut self, timer: Timer, now: DateTime<Utc>) -> Changes {
        let ch = self.e.timer(timer, now);
        self.persist(ch)
    }

    fn resume(&mut self, id: RunId, live: Option<Colour>, now: DateTime<Utc>) -> Changes {
        let ch = self.e.resume(id, LiveView::Seen(live), now);
        self.persist(ch)
    }

    /// A fresh engine loaded from the store, as after a crash.
    fn restart(&self) -> H {
        let mut e = Engine::new(self.e.rules().clone(), LINK.into());
        e.restore(
            self.envs.clone(),
            self.runs.values().cloned().collect(),
            self.next_run,
        );
        let h = H {
            e,
            runs: self.runs.clone(),
            envs: self.envs.clone(),
            next_run: self.next_run,
            log: self.log.clone(),
        };
        for r in h.e.runs() {
            let id = r.id;
            assert_eq!(h.runs.get(&id), Some(r), "restored run {id}");
        }
        h
    }

    fn run(&self, id: RunId) -> &Run {
        &self.runs[&id]
    }

    fn env(&self, name: &EnvName) -> EnvState {
        self.envs.get(name).cloned().unwrap_or_default()
    }

    /// `/deploy VERSION ENV` that must be accepted; returns the new run.
    fn request(&mut self, who: &str, version: &str, env: &str, now: DateTime<Utc>) -> RunId {
        let ch = self.cmd(who, &format!("/deploy {version} {env}"), now);
        let (text, private) = reply(&ch);
        assert!(!private, "deploy refused: {text}");
        RunId(self.next_run - 1)
    }

    /// Approves every item of run `id`; returns the last Changes (the checklist completing).
    fn approve_all(&mut self, id: RunId, who: &str, now: DateTime<Utc>) -> Changes {
        let n = self.run(id).checklist.items.len();
        let mut last = None;
        for i in 0..n {
            last = Some(self.approve(who, id, i, now));
        }
        last.expect("a checklist with items")
    }

    /// Answers the run's `Observe` action in `ch`: the traffic step sees what the engine
    /// recorded.
    fn see(&mut self, ch: &Changes, now: DateTime<Utc>) -> Changes {
        let (env, id, attempt) = ch
            .actions
            .iter()
            .find_map(|a| match a {
                Action::Observe {
                    env,
                    run: Some((id, attempt)),
                } => Some((env.clone(), *id, *attempt)),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no observation asked for in {ch:#?}"));
        let live = self.e.env(&env).unwrap().live;
        self.result(id, attempt, Outcome::Observed(LiveView::Seen(live)), now)
    }

    /// Answers every driver action with success until run `id` reaches `stop`.
    fn drive(&mut self, id: RunId, mut ch: Changes, now: DateTime<Utc>, stop: Phase) -> Changes {
        for _ in 0..20 {
            if self.run(id).phase == stop {
                return ch;
            }
            let a = ch
                .actions
                .iter()
                .find(|a| !matches!(a, Action::Teardown { .. }))
                .cloned()
                .unwrap_or_else(|| panic!("run {id}: no action to answer on the way to {stop:?}"));
            let (r, attempt, o) = match &a {
                // The traffic step agrees with what the engine recorded.
                Action::Observe {
                    env,
                    run: Some((r, attempt)),
                } => (
                    *r,
                    *attempt,
                    Outcome::Observed(LiveView::Seen(self.e.env(env).unwrap().live)),
                ),
                a => answer_ok(a),
            };
            assert_eq!(r, id);
            ch = self.result(r, attempt, o, now);
        }
        panic!("run {id} never reached {stop:?}");
    }

    /// Fires the armed monitor ticks of run `id` and answers each with the next check.
    fn monitor(
        &mut self,
        id: RunId,
        mut ch: Changes,
        checks: Vec<Check>,
    ) -> (Changes, DateTime<Utc>) {
        let mut now = DateTime::<Utc>::MIN_UTC;
        for (sample, smoke) in checks {
            let (when, timer) = ch
                .timers
                .iter()
                .find(|(_, t)| matches!(t, Timer::MonitorTick(r, _) if *r == id))
                .cloned()
                .unwrap_or_else(|| panic!("run {id}: no monitor tick armed in {ch:#?}"));
            now = when;
            let tick = self.timer(timer, now);
            let attempt = match tick.actions.as_slice() {
                [Action::Sample {
                    run, attempt, env, ..
                }] if *run == id => {
                    assert_eq!(env, &self.run(id).env);
                    *attempt
                }
                other => panic!("a tick asks for one sample, not {other:?}"),
            };
            ch = self.result(id, attempt, Outcome::Sample(sample, smoke), now);
        }
        (ch, now)
    }

    /// Request, approve (by `approver`) and drive until traffic is switched and monitoring.
    fn deploy_to_monitoring(
        &mut self,
        who: &str,
        approver: &str,
        version: &str,
        env: &str,
        now: DateTime<Utc>,
    ) -> (RunId, Changes) {
        let id = self.request(who, version, env, now);
        let ch = self.approve_all(id, approver, now + mins(1));
        let ch = self.drive(id, ch, now + mins(2), Phase::Monitoring);
        (id, ch)
    }

    /// A whole deploy with every check passing; returns the run and when it became stable.
    fn deploy_stable(
        &mut self,
        who: &str,
        approver: &str,
        version: &str,
        env: &str,
        now: DateTime<Utc>,
    ) -> (RunId, DateTime<Utc>) {
        let (id, ch) = self.deploy_to_monitoring(who, approver, version, env, now);
        let m = &self.e.rules().envs[&EnvName::new(env)].monitor;
        let n = (m.duration.as_secs() / m.interval.as_secs()) as usize;
        let (_, end) = self.monitor(id, ch, passes(n));
        assert_eq!(self.run(id).phase, Phase::Succeeded);
        (id, end)
    }

    /// Staging with v1.2.0 stable on blue (run 1), then run 2 (v1.3.0 by bob, approved by
    /// alice, to green) driven until it is in `phase`. Returns the last Changes and their time.
    fn second_deploy_in(phase: Phase) -> (H, RunId, Changes, DateTime<Utc>) {
        H::second_deploy_with(H::demo(), phase)
    }

    /// `second_deploy_in` on an engine of one's own rules.
    fn second_deploy_with(mut h: H, phase: Phase) -> (H, RunId, Changes, DateTime<Utc>) {
        h.deploy_stable("alice", "bob", "v1.2.0", "staging", wed(10, 0));
        let now = wed(11, 0);
        let id = h.request("bob", "v1.3.0", "staging", now);
        let ch = h.approve_all(id, "alice", now);
        let (ch, now) = match phase {
            Phase::RollingBack => {
                let ch = h.drive(id, ch, now, Phase::Monitoring);
                h.monitor(id, ch, vec![(data(200.0, 0.5, 0.1), Some(Ok(())))])
            }
            p => (h.drive(id, ch, now, p), now),
        };
        assert_eq!(h.run(id).phase, phase);
        (h, id, ch, now)
    }
}
