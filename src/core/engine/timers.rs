//! The timers the shell armed: a checklist's expiry, the next monitoring check, the end of a
//! kept-warm colour, and looking again at an environment whose live colour cannot be seen.

use super::wording;
use super::{Action, Changes, Engine, Phase, Run, Timer, Tx, What};
use crate::core::{EnvName, RunId};
use chrono::{DateTime, Utc};

impl Engine {
    pub fn timer(&mut self, timer: Timer, now: DateTime<Utc>) -> Changes {
        let mut tx = Tx::new(now);
        match timer {
            Timer::ChecklistExpiry(id) => {
                self.expire_if_due(&mut tx, id);
            }
            Timer::MonitorTick(id, attempt) => self.tick(&mut tx, id, attempt),
            Timer::Observe(env) => {
                let observing = |r: &Run| r.env == env && r.phase == Phase::Observing;
                if self.envs.get(&env).is_some_and(|st| st.unseen.is_some())
                    && !self.runs.values().any(observing)
                {
                    tx.action(Action::Observe { env, run: None });
                }
            }
            Timer::Teardown(env) => self.warm_time_over(&mut tx, &env),
            Timer::Evidence(id, item) => self.evidence_due(&mut tx, id, item),
        }
        self.finish(tx)
    }

    /// A monitoring check starts: one sample (and the critical path, when configured).
    fn tick(&mut self, tx: &mut Tx, id: RunId, attempt: u32) {
        let Some(run) = self.runs.get(&id) else {
            return;
        };
        if run.phase != Phase::Monitoring || run.attempt != attempt {
            return;
        }
        self.ticked.insert(id, tx.now);
        if self.rules.envs[&run.env].critical_path {
            self.critical_pending.insert(id);
        }
        tx.action(Action::Sample {
            run: id,
            attempt,
            env: run.env.clone(),
            colour: run.to,
        });
    }

    /// The kept-warm colour is torn down when its time is up, while no run is active.
    fn warm_time_over(&mut self, tx: &mut Tx, env: &EnvName) {
        let Some(st) = self.envs.get(env) else {
            return;
        };
        // Never tear down a colour on an environment whose live colour cannot be seen:
        // the timer is armed again once it can.
        if st.unseen.is_some() {
            return;
        }
        if let (Some(until), Some(live), None) = (st.warm_until, st.live, st.active_run) {
            if tx.now >= until {
                let idle = live.other();
                let st = self.env_mut(env);
                st.warm_until = None;
                st.set_version(idle, None);
                tx.touch_env(env);
                tx.action(Action::Teardown {
                    env: env.clone(),
                    colour: idle,
                });
            }
        }
    }

    /// Ends a run whose checklist is still open past its expiry; true if it did.
    pub(super) fn expire_if_due(&mut self, tx: &mut Tx, id: RunId) -> bool {
        let Some(run) = self.runs.get(&id) else {
            return false;
        };
        if run.phase != Phase::AwaitingChecklist || tx.now < run.checklist_expires {
            return false;
        }
        let env = run.env.clone();
        let expiry = self.env_rules(&env).checklist_expiry;
        let text = wording::expired(run, &self.display(&env), expiry);
        tx.event(id, None, What::ChecklistExpired);
        let outcome = wording::outcome::expired(expiry);
        self.end(tx, id, Phase::Expired, outcome);
        tx.say_in_thread(&env, id, text);
        true
    }
}
