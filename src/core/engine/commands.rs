//! A person's command: deploy (and its dry run), why-not, status, lock, unlock, cancel and
//! rollback. History is answered by the shell, which reads the store.

use super::wording;
use super::{Action, Changes, Engine, Phase, Reply, Run, RunKind, Tx, What};
use crate::core::command::{self, Command, DeployArgs};
use crate::core::freeze::Window;
use crate::core::message::{MsgKey, Post, Room};
use crate::core::policy::{self, Action as Perm, Request};
use crate::core::state::{EnvState, Lock, LockOwner};
use crate::core::{Colour, EnvName, Platform, RunId, UserId};
use chrono::{DateTime, Utc};

impl Engine {
    /// Handles a parsed command from `user`, as typed in the local channel.
    pub fn command(&mut self, user: &UserId, cmd: Command, now: DateTime<Utc>) -> Changes {
        self.command_from(user, cmd, Platform::Local, now)
    }

    /// Like `command`, for a command that came from `origin`: a run it starts keeps its
    /// thread there.
    pub fn command_from(
        &mut self,
        user: &UserId,
        cmd: Command,
        origin: Platform,
        now: DateTime<Utc>,
    ) -> Changes {
        let mut tx = Tx::new(now);
        tx.origin = origin;
        if let Err(why) = self.malformed(&cmd, origin) {
            tx.ch.reply = Some(Reply::private(why));
            return tx.ch;
        }
        let reply = match cmd {
            Command::Help => Reply::private(command::help_text()),
            Command::Deploy(args) => self.deploy(&mut tx, user, args),
            Command::WhyNot {
                version,
                env,
                service,
            } => {
                let args = DeployArgs {
                    version,
                    env,
                    service,
                    force: None,
                    dry_run: true,
                };
                Reply::public(self.why_not(user, &args, now, false))
            }
            Command::Status { env } => Reply::public(self.status(env.as_ref())),
            Command::History { .. } => Reply::private("history is answered from the store"),
            Command::Lock { env, reason } => self.lock(&mut tx, user, &env, reason),
            Command::Unlock { env } => self.unlock(&mut tx, user, &env),
            Command::Cancel { run } => self.cancel(&mut tx, user, run),
            Command::Override { run, item, reason } => {
                self.override_evidence(&mut tx, user, run, item, reason)
            }
            Command::Rollback { env, reason } => self.manual_rollback(&mut tx, user, &env, reason),
        };
        // The usage line belongs to malformed commands only (answered above): a refusal of a
        // well-formed one says why, nothing more.
        tx.ch.reply = Some(reply);
        self.finish(tx)
    }

    /// An unknown environment, or a version no pattern of the environment accepts: the
    /// answer, with the usage line of the platform the command came from.
    fn malformed(&self, cmd: &Command, origin: Platform) -> Result<(), String> {
        let usage = cmd.usage_on(origin);
        if let Some(env) = cmd.env() {
            if !self.rules.envs.contains_key(env) {
                return Err(wording::unknown_env(env, &self.rules.env_names(), usage));
            }
        }
        // A version accepted by another environment's pattern must fit this one's too.
        let (v, env) = match cmd {
            Command::Deploy(d) => (&d.version, &d.env),
            Command::WhyNot { version, env, .. } => (version, env),
            _ => return Ok(()),
        };
        if command::check_version(v).is_ok() {
            return Ok(());
        }
        let rules = self.env_rules(env);
        let pattern = rules.version_pattern.as_deref();
        if pattern.is_some_and(|p| command::matches_pattern(p, v)) {
            return Ok(());
        }
        Err(wording::invalid_version(
            v,
            &rules.display_name,
            pattern,
            usage,
        ))
    }

    fn active_phase(&self, st: &EnvState) -> Option<Phase> {
        st.active_run
            .and_then(|id| self.runs.get(&id))
            .map(|r| r.phase)
    }

    /// Every gate that would stop this deploy now, what comes next (checklist, freezes) and,
    /// for a dry run, the steps the run would take.
    fn why_not(&self, user: &UserId, args: &DeployArgs, now: DateTime<Utc>, steps: bool) -> String {
        let env = self.env_rules(&args.env);
        let st = &self.envs[&args.env];
        let req = Request {
            user,
            service: args.service.as_deref(),
            force: args.force.as_deref(),
        };
        let tz = self.rules.timezone;
        let verdict = policy::check_deploy(&self.rules, env, st, self.active_phase(st), &req, now);
        let mut out = match &verdict {
            policy::Verdict::Blocked(bs) => {
                let reasons: Vec<String> =
                    bs.iter().map(|b| b.describe(&self.rules, env)).collect();
                wording::would_be_refused(&args.version, &env.display_name, &reasons)
            }
            policy::Verdict::Allowed { forced_past } => {
                let windows: Vec<String> = forced_past.iter().map(|w| w.describe(tz)).collect();
                wording::nothing_stops(&args.version, &env.display_name, &windows)
            }
        };
        if !env.checklist.is_empty() {
            let groups = env.new_checklist().groups().join(", ");
            out.push_str(&wording::checklist_needs(env.checklist.len(), &groups));
            let ci = env
                .checklist
                .iter()
                .filter(|i| i.evidence.is_some())
                .count();
            if ci > 0 {
                out.push_str(&wording::evidence_needs(ci));
            }
        }
        for rule in &self.rules.freezes {
            if rule.applies_to(&args.env.0) {
                if let Some(w) = rule.next_window(tz, now) {
                    out.push_str(&wording::next_freeze(&w.describe(tz)));
                }
            }
        }
        if steps {
            out.push_str(&wording::dry_run_steps(&args.version, env, st));
        }
        out
    }

    fn deploy(&mut self, tx: &mut Tx, user: &UserId, args: DeployArgs) -> Reply {
        let now = tx.now;
        if args.dry_run {
            return Reply::public(self.why_not(user, &args, now, true));
        }
        let env = self.env_rules(&args.env).clone();
        let st = &self.envs[&args.env];
        let req = Request {
            user,
            service: args.service.as_deref(),
            force: args.force.as_deref(),
        };
        let forced_past =
            match policy::check_deploy(&self.rules, &env, st, self.active_phase(st), &req, now) {
                policy::Verdict::Blocked(bs) => {
                    let reasons: Vec<String> =
                        bs.iter().map(|b| b.describe(&self.rules, &env)).collect();
                    return Reply::private(wording::refused(&reasons));
                }
                policy::Verdict::Allowed { forced_past } => forced_past,
            };
        let tz = self.rules.timezone;
        let id = self.take_run_id(tx);
        let run = Run {
            service: args.service.clone(),
            force: args.force.clone(),
            forced: forced_past.iter().map(|w| w.describe(tz)).collect(),
            checklist: env.new_checklist(),
            checklist_expires: now + super::to_std(env.checklist_expiry),
            ..Run::new(
                id,
                RunKind::Deploy,
                args.env.clone(),
                args.version.clone(),
                user.clone(),
                tx.origin,
                now,
            )
        };
        self.open_run(tx, run);
        tx.event(
            id,
            Some(user),
            What::Requested {
                version: args.version.clone(),
                env: args.env.clone(),
            },
        );
        self.forced_at_request(tx, id, &forced_past);
        let n = self.open_checklist(tx, id, !forced_past.is_empty());
        if n == 0 {
            self.checklist_complete(tx, id);
        }
        Reply::public(wording::requested(
            id,
            &args.version,
            &env.display_name,
            user,
            n == 0,
        ))
    }

    /// Freezes passed by break-glass `--force` at the request: audited and announced (in the
    /// deploys and announce rooms) once each.
    fn forced_at_request(&mut self, tx: &mut Tx, id: RunId, forced_past: &[Window]) {
        let run = &self.runs[&id];
        let (env, version, user) = (run.env.clone(), run.version.clone(), run.requester.clone());
        let reason = run.force.clone().unwrap_or_default();
        let (display, tz) = (self.display(&env), self.rules.timezone);
        for w in forced_past {
            tx.event(
                id,
                Some(&user),
                What::ForcedPastFreeze {
                    freeze: w.name.clone(),
                    gate: None,
                    reason: reason.clone(),
                },
            );
            let text = wording::break_glass(
                &user,
                id,
                &version,
                &display,
                &w.describe(tz),
                None,
                &reason,
            );
            tx.post(Post::top(&env, Room::Deploys, text.clone()));
            tx.post(Post::top(&env, Room::Announce, text));
        }
    }

    /// Posts run `id`'s checklist thread (the parent names the reviewers, one reply per item)
    /// and arms its expiry. Returns the number of items.
    fn open_checklist(&mut self, tx: &mut Tx, id: RunId, forced: bool) -> usize {
        let run = &self.runs[&id];
        let env = self.env_rules(&run.env);
        let mut reviewers: Vec<String> = Vec::new();
        for g in run.checklist.groups() {
            for m in self.rules.members(g) {
                if m != run.requester && !reviewers.contains(&m.mention()) {
                    reviewers.push(m.mention());
                }
            }
        }
        let parent = wording::checklist_parent(
            run,
            &env.display_name,
            forced,
            &reviewers,
            env.checklist_expiry,
        );
        tx.post(Post::top(&run.env, Room::Deploys, parent).keyed(MsgKey::Checklist(id)));
        let (n, expires) = (run.checklist.items.len(), run.checklist_expires);
        for i in 0..n {
            let post = self.item_post(id, i);
            tx.post(post);
        }
        tx.timer(expires, super::Timer::ChecklistExpiry(id));
        self.read_all_evidence(tx, id);
        n
    }

    fn lock(&mut self, tx: &mut Tx, user: &UserId, env: &EnvName, reason: String) -> Reply {
        let rules = self.env_rules(env).clone();
        if let Err(m) = policy::may(&self.rules, &rules, user, Perm::Lock) {
            return Reply::private(m.to_string());
        }
        let now = tx.now;
        let st = self.env_mut(env);
        if let Some(l) = &st.lock {
            return Reply::private(wording::already_locked(&rules.display_name, l));
        }
        st.lock = Some(Lock {
            reason: reason.clone(),
            by: LockOwner::Person(user.clone()),
            at: now,
            run: None,
        });
        tx.touch_env(env);
        let text = wording::locked(&rules.display_name, user, &reason);
        tx.post(Post::top(env, Room::Deploys, text));
        Reply::private(wording::lock_answer(&rules.display_name))
    }

    fn unlock(&mut self, tx: &mut Tx, user: &UserId, env: &EnvName) -> Reply {
        let rules = self.env_rules(env).clone();
        if let Err(m) = policy::may(&self.rules, &rules, user, Perm::Unlock) {
            return Reply::private(m.to_string());
        }
        let Some(old) = self.env_mut(env).lock.take() else {
            return Reply::private(wording::not_locked(&rules.display_name));
        };
        tx.touch_env(env);
        let text = wording::unlocked(&rules.display_name, user, &old);
        tx.post(Post::top(env, Room::Deploys, text));
        Reply::private(wording::unlock_answer(&rules.display_name))
    }

    /// One line per environment (or the one asked about).
    fn status(&self, env: Option<&EnvName>) -> String {
        let envs: Vec<&EnvName> = match env {
            Some(e) => vec![e],
            None => self.rules.envs.keys().collect(),
        };
        let lines: Vec<String> = envs
            .into_iter()
            .map(|e| {
                let st = &self.envs[e];
                let active = st.active_run.and_then(|id| self.runs.get(&id));
                wording::status_of(
                    &self.env_rules(e).display_name,
                    st,
                    active,
                    self.rules.timezone,
                )
            })
            .collect();
        lines.join("\n")
    }

    fn cancel(&mut self, tx: &mut Tx, user: &UserId, id: RunId) -> Reply {
        let Some(run) = self.runs.get(&id) else {
            return Reply::private(wording::not_active(id));
        };
        let env = run.env.clone();
        let rules = self.env_rules(&env).clone();
        if let Err(m) = policy::may(&self.rules, &rules, user, Perm::Cancel) {
            return Reply::private(m.to_string());
        }
        if !run.phase.before_switch() {
            return Reply::private(wording::too_late_to_cancel(id, run.phase, &env));
        }
        // Only what this run deployed is torn down (a rollback verifying the warm colour keeps it).
        let deployed = match run.kind {
            RunKind::Deploy => !matches!(run.phase, Phase::AwaitingChecklist | Phase::Observing),
            RunKind::Rollback => run.phase == Phase::DeployingIdle,
        };
        let (to, from) = (run.to, run.from);
        let text = wording::cancelled(run, &rules.display_name, user);
        tx.event(id, Some(user), What::Cancelled);
        self.end(tx, id, Phase::Cancelled, wording::outcome::cancelled(user));
        tx.say_in_thread(&env, id, text);
        if deployed {
            self.teardown_idle(tx, &env, to, from);
        }
        Reply::public(wording::cancel_answer(id))
    }

    fn manual_rollback(
        &mut self,
        tx: &mut Tx,
        user: &UserId,
        env: &EnvName,
        reason: Option<String>,
    ) -> Reply {
        let rules = self.env_rules(env).clone();
        if let Err(m) = policy::may(&self.rules, &rules, user, Perm::Rollback) {
            return Reply::private(m.to_string());
        }
        let what = What::ManualRollback {
            by: user.clone(),
            reason,
        };
        let st = self.envs[env].clone();
        if let Some(active) = st.active_run.and_then(|id| self.runs.get(&id)) {
            return self.roll_back_active(tx, user, active.id, what);
        }
        if let Some(why) = &st.unseen {
            return Reply::private(wording::rollback_blind(&rules.display_name, why));
        }
        let (Some(live), Some(prev)) = (st.live, st.previous.clone()) else {
            return Reply::private(wording::nothing_to_roll_back_to(&rules.display_name));
        };
        let idle = live.other();
        let id = self.take_run_id(tx);
        let why = what.to_string();
        let run = Run {
            reason: Some(why.clone()),
            from: Some(live),
            from_version: st.live_version().cloned(),
            to: idle,
            ..Run::new(
                id,
                RunKind::Rollback,
                env.clone(),
                prev.clone(),
                user.clone(),
                tx.origin,
                tx.now,
            )
        };
        self.open_run(tx, run);
        tx.event(id, Some(user), what);
        let text = wording::rolling_back(&rules.display_name, &prev, id, &why);
        tx.post(Post::top(env, Room::Deploys, text).keyed(MsgKey::Checklist(id)));
        self.prepare_rollback_colour(tx, id, &st, idle, &prev);
        Reply::public(wording::rollback_answer(id, &rules.display_name, &prev))
    }

    /// `/rollback` while a run is active: a monitoring run rolls back now; any other answers.
    fn roll_back_active(&mut self, tx: &mut Tx, user: &UserId, id: RunId, what: What) -> Reply {
        let run = &self.runs[&id];
        let display = self.display(&run.env);
        match run.phase {
            Phase::Monitoring => {
                let why = what.to_string();
                tx.event(id, Some(user), what);
                self.start_rollback(tx, id, why);
                Reply::public(wording::rolling_back_active(id))
            }
            Phase::RollingBack => Reply::public(wording::already_rolling_back(id)),
            p if p.before_switch() => Reply::private(wording::not_switched_yet(id, p, &display)),
            p => Reply::private(wording::wait_for_it(id, p)),
        }
    }

    /// A rollback run verifies the idle colour if it still runs the previous version, else
    /// redeploys it.
    fn prepare_rollback_colour(
        &mut self,
        tx: &mut Tx,
        id: RunId,
        st: &EnvState,
        idle: Colour,
        prev: &str,
    ) {
        let env = self.runs[&id].env.clone();
        if st.version_on(idle).map(String::as_str) == Some(prev) {
            let line = wording::line::verifying_kept_colour(idle, prev);
            self.set_phase(tx, id, Phase::VerifyingIdle, line);
            let attempt = self.bump_attempt(id);
            tx.action(Action::Verify {
                run: id,
                attempt,
                env,
                colour: idle,
            });
        } else {
            let line = wording::line::redeploying_kept_colour(idle, prev);
            self.set_phase(tx, id, Phase::DeployingIdle, line);
            let attempt = self.bump_attempt(id);
            tx.action(Action::DeployIdle {
                run: id,
                attempt,
                env,
                colour: idle,
                version: prev.to_string(),
            });
        }
    }
}
