//! After the switch: checks on a cadence, the verdict when the window ends (stable, or
//! unverified when the data was not enough), and the rollback when a check breaches.

use super::wording;
use super::{Action, Engine, Outcome, Phase, RunKind, Timer, Tx, What};
use crate::core::analysis::{self, Sample, Verdict};
use crate::core::message::{self, Post, Room};
use crate::core::RunId;

impl Engine {
    /// A result for a run that is monitoring or rolling back.
    pub(super) fn monitoring_result(
        &mut self,
        tx: &mut Tx,
        id: RunId,
        phase: Phase,
        outcome: Outcome,
    ) {
        match (phase, outcome) {
            (Phase::Monitoring, Outcome::Sample(sample, smoke)) => {
                self.evaluate(tx, id, sample, smoke, false);
            }
            (Phase::Monitoring, Outcome::Measured(sample)) => {
                self.evaluate(tx, id, sample, None, true);
            }
            (Phase::Monitoring, Outcome::CriticalPath(Err(why))) => {
                let reason = wording::reason::critical_path(&why);
                tx.event(id, None, What::RollbackTrigger(reason.clone()));
                self.status_line(tx, id, wording::line::critical_path_broken(&reason));
                self.start_rollback(tx, id, reason);
            }
            (Phase::Monitoring, Outcome::CriticalPath(Ok(()))) => {
                self.critical_pending.remove(&id);
                if self.runs[&id].monitor.awaiting_critical_path {
                    self.monitoring_over(tx, id);
                }
            }
            (Phase::RollingBack, Outcome::SwitchBack(Ok(()))) => {
                let run = &self.runs[&id];
                let (env, from) = (run.env.clone(), run.from);
                if let Some(from) = from {
                    self.env_mut(&env).live = Some(from);
                    tx.touch_env(&env);
                }
                tx.event(id, None, What::SwitchedBack);
                self.rollback_done(tx, id);
            }
            (Phase::RollingBack, Outcome::SwitchBack(Err(why))) => {
                self.switch_back_failed(tx, id, why)
            }
            _ => {}
        }
    }

    /// Traffic is on the new colour: monitoring starts, the first check an interval from now.
    pub(super) fn start_monitoring(&mut self, tx: &mut Tx, id: RunId) {
        let now = tx.now;
        let env = self.runs[&id].env.clone();
        let m = self.env_rules(&env).monitor.clone();
        let run = self.run_mut(id);
        run.monitor.started = Some(now);
        run.monitor.until = Some(now + super::to_std(m.duration));
        run.success_posted = true;
        let (attempt, to) = (run.attempt, run.to);
        tx.post(Post::top(
            &env,
            Room::Deploys,
            message::deployed_monitoring(),
        ));
        let line = wording::monitoring_for(to, m.duration, m.interval);
        self.set_phase(tx, id, Phase::Monitoring, line);
        tx.timer(
            now + super::to_std(m.interval),
            Timer::MonitorTick(id, attempt),
        );
    }

    /// One check's verdict. `critical_path_pending`: this check's critical path reports on
    /// its own (`Outcome::CriticalPath`) and may still be running.
    fn evaluate(
        &mut self,
        tx: &mut Tx,
        id: RunId,
        sample: Sample,
        smoke: Option<Result<(), String>>,
        critical_path_pending: bool,
    ) {
        let env = self.runs[&id].env.clone();
        let th = self.thresholds(&env);
        let m = self.env_rules(&env).monitor.clone();
        let run = self.run_mut(id);
        let verdict = analysis::evaluate(&sample, run.baseline_p99, smoke.as_ref(), &th);
        let n = run.monitor.passes + run.monitor.inconclusive + 1;
        match verdict {
            Verdict::Breach { reason } => {
                tx.event(id, None, What::RollbackTrigger(reason.clone()));
                self.status_line(tx, id, wording::line::check_breached(n, &reason));
                self.start_rollback(tx, id, reason);
                return;
            }
            Verdict::Pass { detail } => {
                run.monitor.passes += 1;
                run.monitor.last_conclusive = true;
                run.monitor.last = Some(detail.clone());
                self.status_line(tx, id, wording::line::check_passed(n, &detail));
            }
            Verdict::Inconclusive { reason } => {
                run.monitor.inconclusive += 1;
                run.monitor.last_conclusive = false;
                tx.event(id, None, What::Inconclusive(reason.clone()));
                self.status_line(tx, id, wording::inconclusive_check(n, &reason));
            }
        }
        // A wall clock that stepped back never stretches the window past its length from now.
        let latest = tx.now + super::to_std(m.duration);
        let run = self.run_mut(id);
        if run.monitor.until.is_some_and(|u| u > latest) {
            run.monitor.until = Some(latest);
        }
        if run.monitor.until.is_some_and(|u| tx.now >= u) {
            // The critical path may already have answered (it often is the faster of the two).
            if critical_path_pending && self.critical_pending.contains(&id) {
                // This check's critical path reports on its own: it has the last word.
                self.run_mut(id).monitor.awaiting_critical_path = true;
                tx.touch_run(id);
            } else {
                self.monitoring_over(tx, id);
            }
        } else {
            // Checks keep their cadence: the next one is an interval after this one started,
            // not after its (possibly slow: a -slow release makes the critical path slow)
            // result came back.
            let started = self.ticked.remove(&id).unwrap_or(tx.now);
            let next = (started + super::to_std(m.interval)).max(tx.now);
            tx.timer(next, Timer::MonitorTick(id, self.runs[&id].attempt));
        }
    }

    /// The window is over: stable when enough checks passed (and the last one did), otherwise
    /// unverified. Either way the old colour is kept warm for a fast rollback.
    fn monitoring_over(&mut self, tx: &mut Tx, id: RunId) {
        let run = &self.runs[&id];
        let m = &run.monitor;
        let healthy = m.passes > 0 && m.last_conclusive && m.passes >= m.inconclusive;
        let (checks, inconclusive) = (m.passes + m.inconclusive, m.inconclusive);
        let (env, to, from) = (run.env.clone(), run.to, run.from);
        let keep_warm = self.env_rules(&env).monitor.keep_warm;
        let display = self.display(&env);
        let until = tx.now + super::to_std(keep_warm);
        if from.is_some() {
            self.env_mut(&env).warm_until = Some(until);
            tx.touch_env(&env);
            tx.timer(until, Timer::Teardown(env.clone()));
        }
        let run = &self.runs[&id];
        if healthy {
            let warm = from
                .map(|f| {
                    wording::kept_warm(f, run.from_version.as_deref(), until, self.rules.timezone)
                })
                .unwrap_or_default();
            let line = wording::line::stable(&run.version, to, &warm);
            let text = wording::stable(run, &display);
            self.status_line(tx, id, line);
            tx.say_in_thread(&env, id, text);
            let outcome = wording::outcome::stable(to, checks);
            self.end(tx, id, Phase::Succeeded, outcome);
        } else {
            let text = wording::unverified(run, &display);
            let line = wording::line::unverified();
            self.status_line(tx, id, line);
            tx.say_in_thread(&env, id, text);
            let outcome = wording::outcome::inconclusive(inconclusive, checks);
            self.end(tx, id, Phase::Unverified, outcome);
        }
    }

    /// A check breached (or a person asked): traffic goes back to the old colour; on a first
    /// deploy there is none, and the run ends at once.
    pub(super) fn start_rollback(&mut self, tx: &mut Tx, id: RunId, reason: String) {
        let run = self.run_mut(id);
        run.reason = Some(reason.clone());
        let (env, to, from) = (run.env.clone(), run.to, run.from);
        tx.post(Post::top(
            &env,
            Room::Deploys,
            message::failed_rolling_back(&reason),
        ));
        let Some(from) = from else {
            // First deploy: there is no previous colour to return to.
            let line = wording::line::no_previous_colour();
            self.set_phase(tx, id, Phase::RollingBack, line);
            self.rollback_done(tx, id);
            return;
        };
        let run = self.run_mut(id);
        run.switch_back_intents += 1;
        let attempt = run.attempt;
        tx.event(id, None, What::SwitchBackIntent { to: from });
        let line = wording::line::switching_back_to(from);
        self.set_phase(tx, id, Phase::RollingBack, line);
        tx.action(Action::SwitchBack {
            run: id,
            attempt,
            env,
            to: from,
            from: to,
        });
    }

    /// The switch back failed: traffic may still be on the bad colour. greenlight locks the
    /// environment and alerts: a person must act.
    fn switch_back_failed(&mut self, tx: &mut Tx, id: RunId, why: String) {
        let run = &self.runs[&id];
        let env = run.env.clone();
        let display = self.display(&env);
        let text = wording::rollback_failed(id, &why, run.to, &run.requester);
        tx.event(id, None, What::RollbackFailed(text.clone()));
        self.lock_env(
            tx,
            &env,
            wording::reason::lock_rollback_failed(id, &why),
            Some(id),
        );
        let alert = wording::incident(&display, &text, &self.link(id));
        tx.post(Post::top(&env, Room::Incidents, alert));
        tx.say_in_thread(&env, id, text);
        self.end(
            tx,
            id,
            Phase::Failed,
            wording::outcome::rollback_failed(&why),
        );
    }

    /// After traffic is back (or a manual rollback switched): alert, lock, tear down.
    pub(super) fn rollback_done(&mut self, tx: &mut Tx, id: RunId) {
        let run = self.runs[&id].clone();
        let env = run.env.clone();
        let display = self.display(&env);
        let reason = run.reason.clone().unwrap_or_default();
        let st = self.envs[&env].clone();
        let bad = match run.kind {
            RunKind::Deploy => run.version.clone(),
            RunKind::Rollback => run.from_version.clone().unwrap_or_default(),
        };
        let now_live = wording::now_live(&st);
        let no_previous = run.kind == RunKind::Deploy && run.from.is_none();
        let alert =
            wording::rollback_alert(&run, &display, &bad, &now_live, no_previous, &self.link(id));
        tx.post(Post::top(&env, Room::Incidents, alert));
        let lock = wording::reason::lock_rolled_back(&bad, id, &reason);
        self.lock_env(tx, &env, lock, Some(id));
        let line = if no_previous {
            wording::line::first_deploy_failed(run.to)
        } else {
            wording::line::rolled_back(&now_live)
        };
        self.status_line(tx, id, line);
        tx.say_in_thread(&env, id, wording::rolled_back(&run, &now_live, &display));
        if !no_previous {
            self.ask_revert(tx, &run);
        }
        let phase = if no_previous {
            Phase::Failed
        } else {
            Phase::RolledBack
        };
        self.end(tx, id, phase, wording::outcome::rolled_back(&reason));
        if run.kind == RunKind::Deploy && run.from.is_some() {
            self.teardown_idle(tx, &env, run.to, st.live);
            self.env_mut(&env).previous = None;
        } else if run.kind == RunKind::Rollback {
            // The colour just left holds the bad version; it is torn down, nothing to go back to.
            let left = run.from.expect("a rollback run starts from a live colour");
            self.teardown_idle(tx, &env, left, st.live);
        }
    }
}
