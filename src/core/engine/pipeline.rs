//! The deploy pipeline up to the traffic switch: checklist complete -> observe the live colour
//! -> deploy the idle colour -> verify it -> baseline -> freeze re-check -> switch intent ->
//! switch. Each action's result comes back through `result`, which also routes the results
//! of monitoring and rollback (`monitoring.rs`).

use super::wording;
use super::{Action, Changes, Engine, LiveView, Outcome, Phase, RunKind, Tx, What};
use crate::core::analysis::{self, Sample};
use crate::core::event::Gate;
use crate::core::freeze::Window;
use crate::core::message::{self, Post, Room};
use crate::core::policy::{self, Blocker};
use crate::core::{Colour, RunId};
use chrono::{DateTime, Utc};

impl Engine {
    /// A step reported something while it ran (a workflow run's link, a pipeline's id): one
    /// line in the run's status message and its audit log. A note of an earlier attempt, or of
    /// a run that ended, is dropped.
    pub fn note(&mut self, id: RunId, attempt: u32, text: &str, now: DateTime<Utc>) -> Changes {
        let mut tx = Tx::new(now);
        match self.runs.get(&id) {
            Some(run) if run.attempt == attempt && !run.phase.is_terminal() => {}
            _ => return tx.ch,
        }
        let text = crate::core::text::clip(&crate::core::text::one_line(text), 300);
        tx.event(id, None, What::StepNote(text.clone()));
        self.status_line(&mut tx, id, wording::step_note(&text));
        self.finish(tx)
    }

    /// The result of an action for run `id`; results of an earlier attempt are stale and
    /// ignored, and so is a result the run's phase does not wait for.
    pub fn result(
        &mut self,
        id: RunId,
        attempt: u32,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Changes {
        // The rollback's run has ended when its revert is answered.
        let outcome = match outcome {
            Outcome::Reverted(r) => return self.reverted(id, r, now),
            other => other,
        };
        let mut tx = Tx::new(now);
        let Some(run) = self.runs.get(&id) else {
            return tx.ch;
        };
        if run.attempt != attempt {
            return tx.ch;
        }
        let (phase, env, to, version) = (run.phase, run.env.clone(), run.to, run.version.clone());
        match (phase, outcome) {
            (Phase::DeployingIdle, Outcome::DeployIdle(Ok(()))) => {
                tx.event(
                    id,
                    None,
                    What::Deployed {
                        version: version.clone(),
                        colour: to,
                    },
                );
                let line = wording::line::verifying(&version, to);
                self.set_phase(&mut tx, id, Phase::VerifyingIdle, line);
                tx.action(Action::Verify {
                    run: id,
                    attempt,
                    env,
                    colour: to,
                });
            }
            (Phase::DeployingIdle, Outcome::DeployIdle(Err(why))) => {
                self.fail_before_switch(&mut tx, id, wording::reason::deploy_failed(&why));
            }
            (Phase::VerifyingIdle, Outcome::Verify(Ok(summary))) => {
                self.verified(&mut tx, id, summary);
            }
            (Phase::VerifyingIdle, Outcome::Verify(Err(why))) => {
                self.fail_before_switch(&mut tx, id, why);
            }
            (Phase::Baseline, Outcome::Baseline(sample)) => self.baseline(&mut tx, id, sample),
            (Phase::Switching, Outcome::Switch(Ok(()))) => {
                tx.event(id, None, What::Switched { to });
                self.switch_done(&mut tx, id);
            }
            (Phase::Switching, Outcome::Switch(Err(why))) => self.switch_failed(&mut tx, id, why),
            (Phase::Observing, Outcome::Observed(view)) => {
                match self.apply_view(&mut tx, &env, view, false) {
                    Ok(live) => self.deploy_to_idle(&mut tx, id, live),
                    Err(why) => self.fail_unseen(&mut tx, id, &why),
                }
            }
            (Phase::AwaitingChecklist, Outcome::Evidence { item, verdict }) => {
                self.evidence_result(&mut tx, id, item, verdict)
            }
            (Phase::Monitoring | Phase::RollingBack, outcome) => {
                self.monitoring_result(&mut tx, id, phase, outcome)
            }
            _ => {}
        }
        self.finish(tx)
    }

    /// The checklist is complete: the freezes are checked again (a window may have opened
    /// while it waited), then the deploy starts.
    pub(super) fn checklist_complete(&mut self, tx: &mut Tx, id: RunId) {
        let run = &self.runs[&id];
        let (env, requester, force) = (run.env.clone(), run.requester.clone(), run.force.clone());
        tx.event(id, None, What::ChecklistComplete);
        let (blocked, passed) =
            policy::check_freeze(&self.rules, &env, &requester, force.as_deref(), tx.now);
        if let Some(Blocker::Freeze { window, .. }) = blocked.first() {
            let tz = self.rules.timezone;
            let text = wording::frozen_at_checklist(run, &self.display(&env), &window.describe(tz));
            let outcome = wording::outcome::frozen_at_checklist(&window.name);
            self.end(tx, id, Phase::Rejected, outcome);
            tx.say_in_thread(&env, id, text);
            return;
        }
        self.announce_forced(tx, id, passed, Gate::ChecklistComplete);
        self.start_deploy(tx, id);
    }

    /// A freeze passed with break-glass `--force` at a later gate is audited and announced once.
    fn announce_forced(&mut self, tx: &mut Tx, id: RunId, passed: Vec<Window>, gate: Gate) {
        let tz = self.rules.timezone;
        for w in passed {
            let d = w.describe(tz);
            let run = self.run_mut(id);
            if run.forced.contains(&d) {
                continue;
            }
            run.forced.push(d.clone());
            let (env, version, requester) =
                (run.env.clone(), run.version.clone(), run.requester.clone());
            let reason = run.force.clone().unwrap_or_default();
            tx.event(
                id,
                Some(&requester),
                What::ForcedPastFreeze {
                    freeze: w.name.clone(),
                    gate: Some(gate),
                    reason: reason.clone(),
                },
            );
            let display = self.display(&env);
            let text =
                wording::break_glass(&requester, id, &version, &display, &d, Some(gate), &reason);
            tx.post(Post::top(&env, Room::Deploys, text.clone()));
            tx.post(Post::top(&env, Room::Announce, text));
        }
    }

    /// The deploy starts (again): first ask the traffic step which colour is live; the deploy
    /// itself starts from its answer (`deploy_to_idle`), never from what was stored.
    pub(super) fn start_deploy(&mut self, tx: &mut Tx, id: RunId) {
        let env = self.runs[&id].env.clone();
        let line = wording::line::asking_live();
        self.set_phase(tx, id, Phase::Observing, line);
        let attempt = self.bump_attempt(id);
        tx.action(Action::Observe {
            env,
            run: Some((id, attempt)),
        });
    }

    /// The traffic step answered for run `id`: deploy to the colour that is really idle.
    fn deploy_to_idle(&mut self, tx: &mut Tx, id: RunId, live: Option<Colour>) {
        let env = self.runs[&id].env.clone();
        let st = self.envs[&env].clone();
        let display = self.display(&env);
        let run = self.run_mut(id);
        run.from = live;
        run.from_version = live.and_then(|c| st.version_on(c).cloned());
        run.to = live.map(Colour::other).unwrap_or(Colour::Blue);
        let (to, version, attempt) = (run.to, run.version.clone(), run.attempt);
        // The 🚀 is posted once per run: a redeploy after a restart says so in the thread.
        if !run.announced {
            run.announced = true;
            tx.post(Post::top(
                &env,
                Room::Deploys,
                message::deploying(&version, &display),
            ));
        }
        tx.event(id, None, What::LiveSeen(live));
        let line = wording::deploying_to_idle(&version, to, live);
        self.set_phase(tx, id, Phase::DeployingIdle, line);
        tx.action(Action::DeployIdle {
            run: id,
            attempt,
            env,
            colour: to,
            version,
        });
    }

    /// The idle colour passed its health check and smoke tests: a baseline of the live colour
    /// comes next (none on a first deploy, nor for a rollback), then the switch.
    fn verified(&mut self, tx: &mut Tx, id: RunId, summary: String) {
        let run = &self.runs[&id];
        let (env, from, to, kind, attempt) =
            (run.env.clone(), run.from, run.to, run.kind, run.attempt);
        let line = wording::line::verified(to, &summary);
        tx.event(id, None, What::Verified(summary));
        self.status_line(tx, id, line);
        if kind == RunKind::Rollback {
            self.pre_switch(tx, id);
        } else if let Some(from) = from {
            let line = wording::line::sampling_baseline(from);
            self.set_phase(tx, id, Phase::Baseline, line);
            tx.action(Action::Baseline {
                run: id,
                attempt,
                env,
                colour: from,
            });
        } else {
            let th = self.thresholds(&env);
            let note = analysis::usable_baseline(None, &th).unwrap_err();
            self.status_line(tx, id, wording::line::note(&note));
            self.pre_switch(tx, id);
        }
    }

    fn baseline(&mut self, tx: &mut Tx, id: RunId, sample: Sample) {
        let th = self.thresholds(&self.runs[&id].env);
        let usable = analysis::usable_baseline(Some(&sample), &th);
        let run = self.run_mut(id);
        run.baseline = Some(sample.clone());
        run.baseline_p99 = usable.as_ref().ok().copied();
        let line = wording::baseline_line(&sample, &usable, run.from);
        tx.event(id, None, What::Baseline(line.clone()));
        self.status_line(tx, id, line);
        self.pre_switch(tx, id);
    }

    /// Run `id` cannot start: greenlight cannot see which colour is live. Nothing was deployed,
    /// so nothing is torn down.
    fn fail_unseen(&mut self, tx: &mut Tx, id: RunId, why: &str) {
        let run = &self.runs[&id];
        let (env, requester) = (run.env.clone(), run.requester.clone());
        let reason = wording::reason::unseen(why);
        tx.post(Post::top(
            &env,
            Room::Deploys,
            wording::failed_unseen(&reason),
        ));
        self.status_line(tx, id, wording::line::nothing_deployed(&reason));
        tx.say_in_thread(&env, id, wording::stopped_unseen(id, &reason, &requester));
        self.end(
            tx,
            id,
            Phase::Failed,
            wording::outcome::nothing_deployed(&reason),
        );
    }

    /// A step before the switch failed: the live colour was never touched, the idle one is
    /// torn down.
    pub(super) fn fail_before_switch(&mut self, tx: &mut Tx, id: RunId, why: String) {
        let run = &self.runs[&id];
        let (env, from, to, requester) = (run.env.clone(), run.from, run.to, run.requester.clone());
        tx.post(Post::top(
            &env,
            Room::Deploys,
            message::failed_before_switch(&why, from),
        ));
        self.status_line(tx, id, wording::line::torn_down(&why, to));
        tx.say_in_thread(
            &env,
            id,
            wording::failed_before_switch(id, &why, &requester),
        );
        let outcome = wording::outcome::never_switched(&why);
        self.end(tx, id, Phase::Failed, outcome);
        self.teardown_idle(tx, &env, to, from);
    }

    /// The switch step failed: it may have moved some traffic, so which colour is live is not
    /// known. Nothing is torn down; deploys wait until the traffic step can be seen again.
    fn switch_failed(&mut self, tx: &mut Tx, id: RunId, why: String) {
        let run = &self.runs[&id];
        let (env, to, requester, version) = (
            run.env.clone(),
            run.to,
            run.requester.clone(),
            run.version.clone(),
        );
        let reason = wording::reason::switch_failed(&why);
        tx.post(Post::top(
            &env,
            Room::Deploys,
            wording::switch_failed(&reason, to),
        ));
        self.status_line(tx, id, wording::line::left_running(&reason, to));
        let text = wording::failed_at_switch(id, &reason, to, &version, &requester);
        tx.say_in_thread(&env, id, text);
        self.end(tx, id, Phase::Failed, reason);
        self.env_mut(&env).set_version(to, Some(version));
        tx.touch_env(&env);
        let unseen = wording::reason::switch_failed_unseen(to, id, &why);
        let _ = self.apply_view(tx, &env, LiveView::Unseen(unseen), false);
    }

    /// The last gate: freeze re-check, then the switch intent is written before the switch.
    pub(super) fn pre_switch(&mut self, tx: &mut Tx, id: RunId) {
        let run = &self.runs[&id];
        let (env, requester, force, to, from, kind) = (
            run.env.clone(),
            run.requester.clone(),
            run.force.clone(),
            run.to,
            run.from,
            run.kind,
        );
        if kind == RunKind::Deploy {
            let (blocked, passed) =
                policy::check_freeze(&self.rules, &env, &requester, force.as_deref(), tx.now);
            if let Some(Blocker::Freeze { window, .. }) = blocked.first() {
                let why =
                    wording::reason::freeze_before_switch(&window.describe(self.rules.timezone));
                self.fail_before_switch(tx, id, why);
                return;
            }
            self.announce_forced(tx, id, passed, Gate::BeforeSwitch);
        }
        self.run_mut(id).switch_intents += 1;
        tx.event(id, None, What::SwitchIntent { to });
        self.set_phase(tx, id, Phase::Switching, wording::line::switching_to(to));
        let attempt = self.runs[&id].attempt;
        tx.action(Action::Switch {
            run: id,
            attempt,
            env,
            to,
            from,
        });
    }

    /// The switch happened: the environment's live colour, versions and previous version follow.
    pub(super) fn switch_done(&mut self, tx: &mut Tx, id: RunId) {
        let run = self.run_mut(id);
        run.switched = true;
        let (env, to, version, kind) = (run.env.clone(), run.to, run.version.clone(), run.kind);
        let from_version = run.from_version.clone();
        let st = self.env_mut(&env);
        st.previous = match kind {
            RunKind::Deploy => from_version,
            RunKind::Rollback => None,
        };
        st.live = Some(to);
        st.set_version(to, Some(version));
        st.warm_until = None;
        tx.touch_env(&env);
        if kind == RunKind::Rollback {
            self.rollback_done(tx, id);
        } else {
            self.start_monitoring(tx, id);
        }
    }
}
