//! Restarts and what the traffic step sees: loading the store, resuming or safely concluding
//! each active run (saying so in its thread), and recording which colour is live (or why it
//! cannot be seen) outside any run.

use super::wording;
use super::{
    to_std, Action, Changes, Engine, EnvState, LiveView, Phase, Run, RunKind, Timer, Tx, What,
    OBSERVE_EVERY,
};
use crate::core::message::Room;
use crate::core::{Colour, EnvName, RunId};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// What the traffic step said, once recorded: the live colour, or why it cannot be seen.
type Seen = Result<Option<Colour>, String>;

impl Engine {
    /// Loads state from the store at start (runs and environments no longer configured are
    /// left out).
    pub fn restore(&mut self, envs: BTreeMap<EnvName, EnvState>, runs: Vec<Run>, next_run: u64) {
        for (k, v) in envs {
            if self.rules.envs.contains_key(&k) {
                self.envs.insert(k, v);
            }
        }
        for mut r in runs {
            if !r.phase.is_terminal() && self.rules.envs.contains_key(&r.env) {
                // Records from before `announced` existed: past the checklist, the 🚀 was posted.
                if !r.announced
                    && r.kind == RunKind::Deploy
                    && !matches!(r.phase, Phase::AwaitingChecklist | Phase::Observing)
                {
                    r.announced = true;
                }
                self.runs.insert(r.id, r);
            }
        }
        self.next_run = next_run.max(1);
    }

    /// Timers to arm at start for state that outlives a restart (kept-warm teardowns).
    pub fn startup_timers(&self) -> Vec<(DateTime<Utc>, Timer)> {
        self.envs
            .iter()
            .filter_map(|(k, st)| st.warm_until.map(|u| (u, Timer::Teardown(k.clone()))))
            .collect()
    }

    /// After a restart: resume or safely conclude run `id`, given what the traffic step says
    /// about the live colour. Says so in the run's thread.
    pub fn resume(&mut self, id: RunId, view: LiveView, now: DateTime<Utc>) -> Changes {
        let mut tx = Tx::new(now);
        let Some(run) = self.runs.get(&id) else {
            return tx.ch;
        };
        let (env, phase) = (run.env.clone(), run.phase);
        tx.event(id, None, What::Resumed { phase });
        self.clamp_deadlines(&mut tx, id);
        let run = self.runs[&id].clone();
        // What the traffic step sees wins over the store.
        let seen = self.apply_view(&mut tx, &env, view, true);
        match run.phase {
            Phase::AwaitingChecklist => {
                let expired = now >= run.checklist_expires;
                say(&mut tx, &run, wording::resumed_checklist(id, expired));
                let at = if expired { now } else { run.checklist_expires };
                tx.timer(at, Timer::ChecklistExpiry(id));
                if !expired {
                    // A reading under way when the bot stopped is lost: read again.
                    self.read_all_evidence(&mut tx, id);
                }
            }
            Phase::Observing | Phase::DeployingIdle | Phase::VerifyingIdle | Phase::Baseline
                if run.kind == RunKind::Deploy =>
            {
                say(&mut tx, &run, wording::resumed_before_switch(&run));
                self.start_deploy(&mut tx, id);
            }
            Phase::DeployingIdle | Phase::VerifyingIdle | Phase::Baseline => {
                self.resume_rollback_run(&mut tx, &run, seen)
            }
            Phase::Switching => self.resume_switching(&mut tx, &run, seen),
            Phase::Monitoring => self.resume_monitoring(&mut tx, &run, seen),
            Phase::RollingBack => self.resume_rolling_back(&mut tx, &run, seen),
            _ => {}
        }
        self.finish(tx)
    }

    /// A manual rollback prepares the colour that was idle when it started: it goes on only
    /// if the same colour is still live.
    fn resume_rollback_run(&mut self, tx: &mut Tx, run: &Run, seen: Seen) {
        let id = run.id;
        match seen {
            Ok(live) if live == run.from => {
                say(tx, run, wording::resumed_redeploy(run));
                self.redeploy(tx, id);
            }
            other => {
                let why = match other {
                    Ok(live) => wording::reason::live_moved(
                        &wording::live_name(live),
                        &wording::live_name(run.from),
                    ),
                    Err(why) => wording::reason::unseen(&why),
                };
                say(tx, run, wording::resumed_stopped(id, &why));
                self.end(
                    tx,
                    id,
                    Phase::Failed,
                    wording::outcome::nothing_switched(&why),
                );
            }
        }
    }

    /// The switch intent was written: whether it happened decides. Unknown is never guessed.
    fn resume_switching(&mut self, tx: &mut Tx, run: &Run, seen: Seen) {
        let (id, env) = (run.id, run.env.clone());
        match seen {
            Ok(live) if live == Some(run.to) => {
                say(tx, run, wording::resumed_switched(id, run.to));
                self.switch_done(tx, id);
            }
            Ok(live) => {
                say(tx, run, wording::resumed_not_switched(id, run.to, live));
                if run.kind == RunKind::Deploy {
                    self.start_deploy(tx, id);
                } else {
                    self.redeploy(tx, id);
                }
            }
            Err(why) => {
                // Whether the switch happened is unknown: nothing may be redeployed or
                // torn down, and a person has to look.
                let display = self.display(&env);
                let text = wording::switch_unknown(id, run.to, &why, &display, &env);
                say(tx, run, text.clone());
                let lock = wording::reason::lock_switch_unknown(id, &why);
                self.lock_env(tx, &env, lock, Some(id));
                let alert = wording::incident(&display, &text, &self.link(id));
                tx.post(crate::core::message::Post::top(
                    &env,
                    Room::Incidents,
                    alert,
                ));
                let outcome = wording::outcome::switch_unknown(&why);
                self.end(tx, id, Phase::Failed, outcome);
            }
        }
    }

    fn resume_monitoring(&mut self, tx: &mut Tx, run: &Run, seen: Seen) {
        let (id, env) = (run.id, run.env.clone());
        if let Ok(live) = seen {
            if live != Some(run.to) {
                // Traffic is not on the new colour: the deploy is over, and said so like a
                // rollback (alert, lock), since the new version was live for a while.
                let why =
                    wording::reason::not_live_after_restart(&wording::live_name(live), run.to);
                say(tx, run, wording::resumed_rolled_back(id, &why));
                let r = self.run_mut(id);
                r.reason = Some(why);
                r.phase = Phase::RollingBack;
                tx.touch_run(id);
                self.rollback_done(tx, id);
                return;
            }
        }
        say(
            tx,
            run,
            wording::resumed_monitoring(run, seen.as_ref().err()),
        );
        if !run.success_posted {
            let text = crate::core::message::deployed_monitoring();
            tx.post(crate::core::message::Post::top(&env, Room::Deploys, text));
            self.run_mut(id).success_posted = true;
            tx.touch_run(id);
        }
        let interval = self.env_rules(&env).monitor.interval;
        let first = tx.now + to_std(interval.min(std::time::Duration::from_secs(1)));
        tx.timer(first, Timer::MonitorTick(id, run.attempt));
    }

    fn resume_rolling_back(&mut self, tx: &mut Tx, run: &Run, seen: Seen) {
        let id = run.id;
        let Some(from) = run.from else {
            self.rollback_done(tx, id);
            return;
        };
        if seen.as_ref().ok() == Some(&Some(from)) {
            say(tx, run, wording::resumed_switched_back(id));
            self.rollback_done(tx, id);
            return;
        }
        // Getting back to safety is never blocked, not even by a traffic step that cannot be
        // seen: the switch back says itself whether it worked.
        say(tx, run, wording::resumed_switching_back(id, from));
        let r = self.run_mut(id);
        r.switch_back_intents += 1;
        let attempt = r.attempt;
        tx.touch_run(id);
        tx.action(Action::SwitchBack {
            run: id,
            attempt,
            env: run.env.clone(),
            to: from,
            from: run.to,
        });
    }

    /// A deadline never outlives its configured length, even when the wall clock stepped back
    /// while the bot was down: each is cut to `now` plus its full length.
    fn clamp_deadlines(&mut self, tx: &mut Tx, id: RunId) {
        let env = self.runs[&id].env.clone();
        let (expiry, duration) = {
            let c = self.env_rules(&env);
            (c.checklist_expiry, c.monitor.duration)
        };
        let now = tx.now;
        let run = self.run_mut(id);
        let latest = now + to_std(expiry);
        if run.checklist_expires > latest {
            run.checklist_expires = latest;
            tx.touch_run(id);
        }
        if let Some(u) = run.monitor.until {
            let latest = now + to_std(duration);
            if u > latest {
                run.monitor.until = Some(latest);
                tx.touch_run(id);
            }
        }
        self.clamp_warm(tx, &env);
    }

    /// A clock that stepped back never stretches the kept-warm time.
    fn clamp_warm(&mut self, tx: &mut Tx, env: &EnvName) {
        let latest = tx.now + to_std(self.env_rules(env).monitor.keep_warm);
        let st = self.env_mut(env);
        if st.warm_until.is_some_and(|u| u > latest) {
            st.warm_until = Some(latest);
            tx.touch_env(env);
        }
    }

    fn redeploy(&mut self, tx: &mut Tx, id: RunId) {
        let run = &self.runs[&id];
        let (env, to, version) = (run.env.clone(), run.to, run.version.clone());
        let line = wording::line::redeploying_after_restart(&version, to);
        self.set_phase(tx, id, Phase::DeployingIdle, line);
        let attempt = self.bump_attempt(id);
        tx.action(Action::DeployIdle {
            run: id,
            attempt,
            env,
            colour: to,
            version,
        });
    }

    /// An answer of the traffic step outside any run: at start, or looking again at an
    /// environment whose live colour could not be seen.
    pub fn observed(&mut self, env: &EnvName, view: LiveView, now: DateTime<Utc>) -> Changes {
        let mut tx = Tx::new(now);
        if !self.envs.contains_key(env) {
            return tx.ch;
        }
        self.clamp_warm(&mut tx, env);
        let _ = self.apply_view(&mut tx, env, view, true);
        self.finish(tx)
    }

    /// Records what the traffic step said. `chain`: this answer belongs to the periodic look
    /// at an unseen environment (or the one at start), which is armed again while unseen.
    /// Returns the live colour, or why it cannot be seen.
    pub(super) fn apply_view(
        &mut self,
        tx: &mut Tx,
        env: &EnvName,
        view: LiveView,
        chain: bool,
    ) -> Seen {
        let stated = self.env_rules(env).stated_live;
        let now = tx.now;
        let st = self.env_mut(env);
        let was_unseen = st.unseen.is_some();
        // Looking again helps only a step that can be asked.
        let asking_helps = !matches!(view, LiveView::Unasked);
        let seen = match view {
            LiveView::Seen(c) => Ok(c),
            LiveView::Unseen(why) => Err(why),
            LiveView::Unasked => match (&st.unseen, stated) {
                // Greenlight's own record (it made every switch since) stands.
                (None, _) => Ok(st.live),
                (Some(_), Some(c)) => Ok(c),
                (Some(_), None) => Err(wording::cannot_be_asked(env)),
            },
        };
        match &seen {
            Ok(c) => {
                if st.live != *c || was_unseen {
                    st.live = *c;
                    st.unseen = None;
                    tx.touch_env(env);
                }
                // A kept-warm teardown skipped while blind is due again.
                if was_unseen && st.active_run.is_none() {
                    if let Some(until) = st.warm_until {
                        tx.timer(until.max(now), Timer::Teardown(env.clone()));
                    }
                }
            }
            Err(why) => {
                if st.unseen.as_deref() != Some(why.as_str()) {
                    st.unseen = Some(why.clone());
                    tx.touch_env(env);
                }
                if (chain || !was_unseen) && asking_helps {
                    tx.timer(now + to_std(OBSERVE_EVERY), Timer::Observe(env.clone()));
                }
            }
        }
        seen
    }
}

/// Says in run `run`'s thread what the restart means for it.
fn say(tx: &mut Tx, run: &Run, text: String) {
    tx.say_in_thread(&run.env, run.id, wording::restarted(&text));
}
