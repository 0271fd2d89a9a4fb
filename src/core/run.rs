//! The run state machine and the engine that owns every active run and environment:
//! `(state, input, now) -> (state, effects)`. Pure: the shell persists the changed state
//! (before acting) and carries out the returned actions, feeding their results back.

use super::analysis::{self, Sample, Thresholds, Verdict};
use super::checklist::{self, Checklist, Emoji, Target};
use super::command::{self, Command, DeployArgs};
use super::message::{self, Post, Room};
use super::policy::{self, Action as Perm, Blocker, Request};
use super::rules::{EnvRules, Rules};
pub use super::state::{EnvState, Lock, MonitorProgress, Phase, Run, RunKind};
use super::{Colour, EnvName, Platform, RunId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// An entry of a run's append-only event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub run: RunId,
    pub at: DateTime<Utc>,
    pub who: Option<UserId>,
    pub what: String,
}

/// IO the shell carries out; results come back as `Input::Result`.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    DeployIdle {
        run: RunId,
        attempt: u32,
        env: EnvName,
        colour: Colour,
        version: String,
    },
    Verify {
        run: RunId,
        attempt: u32,
        env: EnvName,
        colour: Colour,
    },
    Baseline {
        run: RunId,
        attempt: u32,
        env: EnvName,
        colour: Colour,
    },
    Switch {
        run: RunId,
        attempt: u32,
        env: EnvName,
        to: Colour,
        from: Option<Colour>,
    },
    Sample {
        run: RunId,
        attempt: u32,
        env: EnvName,
        colour: Colour,
    },
    SwitchBack {
        run: RunId,
        attempt: u32,
        env: EnvName,
        to: Colour,
        from: Colour,
    },
    Teardown {
        env: EnvName,
        colour: Colour,
    },
    /// Ask the environment's traffic step which colour is live. For a run in `Observing` the
    /// answer comes back as its `Outcome::Observed`; otherwise through `Engine::observed`.
    Observe {
        env: EnvName,
        run: Option<(RunId, u32)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    ChecklistExpiry(RunId),
    MonitorTick(RunId, u32),
    Teardown(EnvName),
    /// Look again at an environment whose live colour cannot be seen.
    Observe(EnvName),
}

/// What a traffic step says about the live colour.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveView {
    /// It answered: this colour takes traffic (`None`: no server takes traffic).
    Seen(Option<Colour>),
    /// It could not be asked, or its answer was ambiguous.
    Unseen(String),
    /// It has no way to ask (a command traffic step without `live_query`): only what greenlight
    /// recorded itself, or what a person stated in the config, counts.
    Unasked,
}

/// How often an environment whose live colour cannot be seen is looked at again.
pub const OBSERVE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    DeployIdle(Result<(), String>),
    Verify(Result<String, String>),
    Baseline(Sample),
    Switch(Result<(), String>),
    /// A monitoring sample and the critical-path smoke check's result, when it came with it.
    Sample(Sample, Option<Result<(), String>>),
    /// A monitoring sample whose critical-path check reports on its own (`CriticalPath`), so
    /// that a slow critical path (a slow release makes every step slow) never holds back the
    /// metrics verdict.
    Measured(Sample),
    /// The critical-path smoke steps of the check started with a `Measured` sample.
    CriticalPath(Result<(), String>),
    SwitchBack(Result<(), String>),
    Observed(LiveView),
}

/// The answer to the person who typed a command.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub text: String,
    /// Only the sender sees it (errors and refusals).
    pub private: bool,
}

impl Reply {
    fn public(text: impl Into<String>) -> Reply {
        Reply {
            text: text.into(),
            private: false,
        }
    }
    fn private(text: impl Into<String>) -> Reply {
        Reply {
            text: text.into(),
            private: true,
        }
    }
}

/// Everything one input changed: persist `runs`, `envs`, `events`, `posts` atomically, then
/// do `actions` and arm `timers`.
#[derive(Debug, Default)]
pub struct Changes {
    pub runs: Vec<Run>,
    pub envs: Vec<(EnvName, EnvState)>,
    pub events: Vec<Event>,
    pub posts: Vec<Post>,
    pub actions: Vec<Action>,
    pub timers: Vec<(DateTime<Utc>, Timer)>,
    pub next_run: Option<u64>,
    pub reply: Option<Reply>,
}

impl Changes {
    /// Appends `other` (a later step's changes): later states of the same run or environment
    /// replace earlier ones.
    pub fn extend(&mut self, other: Changes) {
        for r in other.runs {
            self.runs.retain(|x| x.id != r.id);
            self.runs.push(r);
        }
        for (k, st) in other.envs {
            self.envs.retain(|(x, _)| *x != k);
            self.envs.push((k, st));
        }
        self.events.extend(other.events);
        self.posts.extend(other.posts);
        self.actions.extend(other.actions);
        self.timers.extend(other.timers);
        if other.next_run.is_some() {
            self.next_run = other.next_run;
        }
        if other.reply.is_some() {
            self.reply = other.reply;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
            && self.envs.is_empty()
            && self.events.is_empty()
            && self.posts.is_empty()
    }
}

/// The pure engine: every environment's state and every active run.
pub struct Engine {
    pub rules: Arc<Rules>,
    pub envs: BTreeMap<EnvName, EnvState>,
    pub runs: BTreeMap<RunId, Run>,
    pub next_run: u64,
    /// Base of links to runs in alerts.
    pub link_base: String,
    /// When each run's current monitoring check started (not persisted: after a restart the
    /// first check simply starts the cadence again).
    ticked: BTreeMap<RunId, DateTime<Utc>>,
    /// Runs whose current check's critical path has not reported yet (it may come back before
    /// or after the metrics). Not persisted: a restart starts a new check.
    critical_pending: std::collections::BTreeSet<RunId>,
}

fn to_std(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Builder of `Changes` that remembers which runs and environments were touched.
struct Tx {
    ch: Changes,
    origin: Platform,
    /// Refusals of a reaction go to the reacting user only (a button click) instead of the thread.
    private_refusals: bool,
    runs: Vec<RunId>,
    envs: Vec<EnvName>,
    now: DateTime<Utc>,
}

impl Tx {
    fn new(now: DateTime<Utc>) -> Tx {
        Tx {
            ch: Changes::default(),
            origin: Platform::Local,
            private_refusals: false,
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
    fn event(&mut self, run: RunId, who: Option<&UserId>, what: impl Into<String>) {
        self.touch_run(run);
        self.ch.events.push(Event {
            run,
            at: self.now,
            who: who.cloned(),
            what: what.into(),
        });
    }
    fn post(&mut self, p: Post) {
        self.ch.posts.push(p);
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
            critical_pending: Default::default(),
        }
    }

    /// An environment's state.
    pub fn env(&self, env: &EnvName) -> Option<&EnvState> {
        self.envs.get(env)
    }

    /// An active run.
    pub fn run(&self, id: RunId) -> Option<&Run> {
        self.runs.get(&id)
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

    fn env_cfg(&self, env: &EnvName) -> &EnvRules {
        &self.rules.envs[env]
    }

    fn finish(&mut self, mut tx: Tx) -> Changes {
        let touched = tx.runs.clone();
        for id in &touched {
            if let Some(r) = self.runs.get_mut(id) {
                r.updated = tx.now;
                tx.ch.runs.push(r.clone());
                if r.phase.is_terminal() {
                    let env = r.env.clone();
                    self.runs.remove(id);
                    if let Some(st) = self.envs.get_mut(&env) {
                        if st.active_run == Some(*id) {
                            st.active_run = None;
                            tx.touch_env(&env);
                        }
                        // A kept-warm teardown skipped while this run was active is due again.
                        if let Some(until) = st.warm_until {
                            let t = Timer::Teardown(env.clone());
                            if !tx.ch.timers.iter().any(|(_, x)| *x == t) {
                                tx.ch.timers.push((until.max(tx.now), t));
                            }
                        }
                    }
                }
            }
        }
        for env in &tx.envs {
            if let Some(st) = self.envs.get(env) {
                tx.ch.envs.push((env.clone(), st.clone()));
            }
        }
        tx.ch
    }

    fn thresholds(&self, env: &EnvName) -> Thresholds {
        let m = &self.env_cfg(env).monitor;
        Thresholds {
            error_rate: m.error_rate,
            latency_factor: m.latency_factor,
            min_requests: m.min_requests,
            latency_floor: m.latency_floor.as_secs_f64(),
        }
    }

    // ---- commands ----------------------------------------------------------------------

    /// Handles a parsed command from `user`. History is answered by the shell (it reads the store).
    pub fn command(&mut self, user: &UserId, cmd: Command, now: DateTime<Utc>) -> Changes {
        self.command_from(user, cmd, Platform::Local, now)
    }

    /// Like `command`, for a command that came from `origin` (a platform name).
    pub fn command_from(
        &mut self,
        user: &UserId,
        cmd: Command,
        origin: Platform,
        now: DateTime<Utc>,
    ) -> Changes {
        let mut tx = Tx::new(now);
        tx.origin = origin;
        let usage = cmd.usage_on(origin);
        if let Some(env) = cmd.env() {
            if !self.rules.envs.contains_key(env) {
                tx.ch.reply = Some(Reply::private(format!(
                    "unknown environment \"{env}\" (known: {}). Usage: {usage}",
                    self.rules.env_names()
                )));
                return tx.ch;
            }
        }
        // A version accepted by another environment's pattern must fit this one's too.
        let version = match &cmd {
            Command::Deploy(d) => Some((&d.version, &d.env)),
            Command::WhyNot { version, env, .. } => Some((version, env)),
            _ => None,
        };
        if let Some((v, env)) = version {
            if command::check_version(v).is_err() {
                let pattern = self.env_cfg(env).version_pattern.clone();
                if !pattern
                    .as_deref()
                    .is_some_and(|p| command::matches_pattern(p, v))
                {
                    tx.ch.reply = Some(Reply::private(format!(
                        "invalid version \"{v}\" for {}: expected v?MAJOR.MINOR.PATCH[-pre][+build], a git sha (7 to 40 hex digits){}. Usage: {usage}",
                        self.env_cfg(env).display_name,
                        pattern.map(|p| format!(" or {p}")).unwrap_or_default()
                    )));
                    return tx.ch;
                }
            }
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
            Command::Rollback { env, reason } => self.manual_rollback(&mut tx, user, &env, reason),
        };
        // The usage line belongs to malformed commands only (answered above): a refusal of a
        // well-formed one says why, nothing more.
        tx.ch.reply = Some(reply);
        self.finish(tx)
    }

    fn active_phase(&self, st: &EnvState) -> Option<&'static str> {
        st.active_run
            .and_then(|id| self.runs.get(&id))
            .map(|r| r.phase.label())
    }

    fn why_not(&self, user: &UserId, args: &DeployArgs, now: DateTime<Utc>, steps: bool) -> String {
        let env = self.env_cfg(&args.env);
        let st = &self.envs[&args.env];
        let req = Request {
            user,
            service: args.service.as_deref(),
            force: args.force.as_deref(),
        };
        let verdict = policy::check_deploy(&self.rules, env, st, self.active_phase(st), &req, now);
        let mut out = match &verdict {
            policy::Verdict::Blocked(bs) => {
                let mut s = format!(
                    "{} → {} would be refused now, because:",
                    args.version, env.display_name
                );
                for b in bs {
                    s.push_str("\n• ");
                    s.push_str(&b.describe(&self.rules, env));
                }
                s
            }
            policy::Verdict::Allowed { forced_past } => {
                let mut s = format!("Nothing stops {} → {} now.", args.version, env.display_name);
                for w in forced_past {
                    s.push_str(&format!(
                        "\n• freeze {} would be passed with --force (break-glass), and announced",
                        w.describe(self.rules.timezone)
                    ));
                }
                s
            }
        };
        if !env.checklist.is_empty() {
            out.push_str(&format!(
                "\n• the checklist ({} items) needs approval by {}",
                env.checklist.len(),
                env.new_checklist().groups().join(", ")
            ));
        }
        for rule in &self.rules.freezes {
            if rule.applies_to(&args.env.0) {
                if let Some(w) = rule.next_window(self.rules.timezone, now) {
                    out.push_str(&format!(
                        "\n• next freeze: {}",
                        w.describe(self.rules.timezone)
                    ));
                }
            }
        }
        if steps {
            let to = st.live.map(Colour::other).unwrap_or(Colour::Blue);
            let m = &env.monitor;
            out.push_str(&format!("\nDry run: no run created. The run would:\n1. open the checklist thread ({} items, expires after {})", env.checklist.len(), humantime::format_duration(env.checklist_expiry)));
            out.push_str(&format!(
                "\n2. re-check freezes, ask the traffic step which colour is live, then deploy {} to the idle one{}",
                args.version,
                match (&st.unseen, st.live) {
                    (Some(_), _) => " (the live colour cannot be seen now)".to_string(),
                    (None, Some(l)) => format!(" ({to} today; {l} stays live)"),
                    (None, None) => format!(" ({to} today; nothing is live)"),
                }
            ));
            let smoke = &env.smoke;
            out.push_str(&format!(
                "\n3. health check {} on {to}, smoke tests: {}",
                env.health_path,
                if smoke.is_empty() {
                    "none configured".into()
                } else {
                    smoke.join(", ")
                }
            ));
            out.push_str(&format!(
                "\n4. baseline from {}",
                st.live
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "nothing (first deploy: latency trigger skipped)".into())
            ));
            out.push_str(&format!("\n5. re-check freezes and switch traffic to {to}"));
            out.push_str(&format!(
                "\n6. monitor for {} every {}: roll back on error rate above {}, p99 more than {:.0}% above baseline, or a failing critical path",
                humantime::format_duration(m.duration),
                humantime::format_duration(m.interval),
                analysis::pct(m.error_rate),
                (m.latency_factor - 1.0) * 100.0
            ));
            out.push_str(&format!(
                "\n7. keep the old colour warm for {}",
                humantime::format_duration(m.keep_warm)
            ));
        }
        out
    }

    fn deploy(&mut self, tx: &mut Tx, user: &UserId, args: DeployArgs) -> Reply {
        let now = tx.now;
        if args.dry_run {
            return Reply::public(self.why_not(user, &args, now, true));
        }
        let env_cfg = self.env_cfg(&args.env).clone();
        let st = &self.envs[&args.env];
        let req = Request {
            user,
            service: args.service.as_deref(),
            force: args.force.as_deref(),
        };
        let forced_past =
            match policy::check_deploy(&self.rules, &env_cfg, st, self.active_phase(st), &req, now)
            {
                policy::Verdict::Blocked(bs) => {
                    let reasons: Vec<String> = bs
                        .iter()
                        .map(|b| b.describe(&self.rules, &env_cfg))
                        .collect();
                    return Reply::private(format!("Refused: {}", reasons.join("; ")));
                }
                policy::Verdict::Allowed { forced_past } => forced_past,
            };
        let id = RunId(self.next_run);
        self.next_run += 1;
        tx.ch.next_run = Some(self.next_run);
        let checklist = env_cfg.new_checklist();
        let run = Run {
            id,
            kind: RunKind::Deploy,
            env: args.env.clone(),
            service: args.service.clone(),
            version: args.version.clone(),
            requester: user.clone(),
            force: args.force.clone(),
            forced: forced_past
                .iter()
                .map(|w| w.describe(self.rules.timezone))
                .collect(),
            reason: None,
            created: now,
            updated: now,
            ended: None,
            phase: Phase::AwaitingChecklist,
            checklist,
            checklist_expires: now + to_std(env_cfg.checklist_expiry),
            from: None,
            from_version: None,
            to: Colour::Blue,
            attempt: 0,
            baseline: None,
            baseline_p99: None,
            switch_intents: 0,
            switched: false,
            switch_back_intents: 0,
            success_posted: false,
            monitor: MonitorProgress::default(),
            status: Vec::new(),
            outcome: None,
            origin: tx.origin,
            announced: false,
            told: Vec::new(),
        };
        self.runs.insert(id, run);
        self.envs.get_mut(&args.env).expect("env").active_run = Some(id);
        tx.touch_env(&args.env);
        tx.event(
            id,
            Some(user),
            format!("requested {} → {}", args.version, args.env),
        );
        let tz = self.rules.timezone;
        for w in &forced_past {
            let reason = args.force.clone().unwrap_or_default();
            tx.event(
                id,
                Some(user),
                format!("forced past freeze \"{}\": {reason}", w.name),
            );
            let text = format!(
                "⚠️ Break-glass: {} forced run {id} ({} → {}) past freeze {}. Reason: {reason}",
                user.mention(),
                args.version,
                env_cfg.display_name,
                w.describe(tz)
            );
            tx.post(Post::top(&args.env, Room::Deploys, text.clone()));
            tx.post(Post::top(&args.env, Room::Announce, text));
        }
        // The checklist thread.
        let reviewers: Vec<String> = {
            let r = &self.runs[&id];
            let mut v = Vec::new();
            for g in r.checklist.groups() {
                for m in self.rules.members(g) {
                    if &m != user && !v.contains(&m.mention()) {
                        v.push(m.mention());
                    }
                }
            }
            v
        };
        let parent = format!(
            "{}\nRequested by {}{}. Reviewers: {} — react ✅ or 👍 on each item in this thread; ❌ vetoes the run. Expires in {}.",
            message::checklist_parent(&args.version, &env_cfg.display_name, id),
            user.mention(),
            if forced_past.is_empty() { String::new() } else { " (break-glass --force)".into() },
            if reviewers.is_empty() { "nobody else is eligible".into() } else { reviewers.join(", ") },
            humantime::format_duration(env_cfg.checklist_expiry)
        );
        tx.post(Post::top(&args.env, Room::Deploys, parent).keyed(message::checklist_key(id)));
        let n = self.runs[&id].checklist.items.len();
        for i in 0..n {
            let line = self.runs[&id].checklist.item_line(i);
            tx.post(
                Post::top(&args.env, Room::Deploys, line)
                    .keyed(message::item_key(id, i))
                    .in_thread(message::checklist_key(id)),
            );
        }
        tx.ch
            .timers
            .push((self.runs[&id].checklist_expires, Timer::ChecklistExpiry(id)));
        if n == 0 {
            self.checklist_complete(tx, id);
        }
        Reply::public(format!(
            "Run {id}: {} → {} requested by {user}; checklist posted{}.",
            args.version,
            env_cfg.display_name,
            if n == 0 {
                " (empty: deploying now)"
            } else {
                ""
            }
        ))
    }

    fn lock(&mut self, tx: &mut Tx, user: &UserId, env: &EnvName, reason: String) -> Reply {
        let env_cfg = self.env_cfg(env).clone();
        if let Err(m) = policy::may(&self.rules, &env_cfg, user, Perm::Lock) {
            return Reply::private(m);
        }
        let st = self.envs.get_mut(env).expect("env");
        if let Some(l) = &st.lock {
            return Reply::private(format!(
                "{} is already locked by {}: {}",
                env_cfg.display_name, l.by, l.reason
            ));
        }
        st.lock = Some(Lock {
            reason: reason.clone(),
            by: user.0.clone(),
            at: tx.now,
            run: None,
        });
        tx.touch_env(env);
        let text = format!(
            "🔒 {} locked by {}: {reason}",
            env_cfg.display_name,
            user.mention()
        );
        tx.post(Post::top(env, Room::Deploys, text));
        Reply::private(format!(
            "🔒 {} is locked; announced in the deploys channel.",
            env_cfg.display_name
        ))
    }

    fn unlock(&mut self, tx: &mut Tx, user: &UserId, env: &EnvName) -> Reply {
        let env_cfg = self.env_cfg(env).clone();
        if let Err(m) = policy::may(&self.rules, &env_cfg, user, Perm::Unlock) {
            return Reply::private(m);
        }
        let st = self.envs.get_mut(env).expect("env");
        let Some(old) = st.lock.take() else {
            return Reply::private(format!("{} is not locked", env_cfg.display_name));
        };
        tx.touch_env(env);
        let text = format!(
            "🔓 {} unlocked by {} (was locked by {}: {})",
            env_cfg.display_name,
            user.mention(),
            old.by,
            old.reason
        );
        tx.post(Post::top(env, Room::Deploys, text));
        Reply::private(format!(
            "🔓 {} is unlocked; announced in the deploys channel.",
            env_cfg.display_name
        ))
    }

    fn status(&self, env: Option<&EnvName>) -> String {
        let envs: Vec<&EnvName> = match env {
            Some(e) => vec![e],
            None => self.rules.envs.keys().collect(),
        };
        let mut lines = Vec::new();
        for e in envs {
            let c = self.env_cfg(e);
            let st = &self.envs[e];
            let mut s = match (&st.unseen, st.live, st.live_version()) {
                (Some(why), _, _) => format!(
                    "{}: ⚠️ live colour unknown ({why}); deploys are refused until greenlight can see it",
                    c.display_name
                ),
                (None, Some(col), Some(v)) => format!("{}: {v} live on {col}", c.display_name),
                (None, Some(col), None) => format!(
                    "{}: {col} is live with a version greenlight did not deploy",
                    c.display_name
                ),
                (None, None, _) => format!("{}: nothing is live", c.display_name),
            };
            if let (None, Some(live)) = (&st.unseen, st.live) {
                let idle = live.other();
                if let Some(v) = st.version_on(idle) {
                    s.push_str(&format!("; {idle} idle with {v}"));
                    if let Some(u) = st.warm_until {
                        s.push_str(&format!(
                            " (kept warm until {})",
                            u.with_timezone(&self.rules.timezone).format("%H:%M %Z")
                        ));
                    }
                }
            }
            if let Some(url) = &st.url {
                s.push_str(&format!("; traffic at {url}"));
            }
            match &st.lock {
                Some(l) => s.push_str(&format!("; 🔒 locked by {}: {}", l.by, l.reason)),
                None => s.push_str("; unlocked"),
            }
            if let Some(r) = st.active_run.and_then(|id| self.runs.get(&id)) {
                s.push_str(&format!(
                    "; active run {} ({} by {}, {})",
                    r.id,
                    r.version,
                    r.requester,
                    r.phase.label()
                ));
            }
            lines.push(s);
        }
        lines.join("\n")
    }

    fn cancel(&mut self, tx: &mut Tx, user: &UserId, id: RunId) -> Reply {
        let Some(run) = self.runs.get(&id) else {
            return Reply::private(format!("run {id} is not active"));
        };
        let env = run.env.clone();
        let env_cfg = self.env_cfg(&env).clone();
        if let Err(m) = policy::may(&self.rules, &env_cfg, user, Perm::Cancel) {
            return Reply::private(m);
        }
        if !run.phase.before_switch() {
            return Reply::private(format!(
                "run {id} is {} and can no longer be cancelled; use /rollback {env}",
                run.phase.label()
            ));
        }
        // Only what this run deployed is torn down (a rollback verifying the warm colour keeps it).
        let deployed = match run.kind {
            RunKind::Deploy => !matches!(run.phase, Phase::AwaitingChecklist | Phase::Observing),
            RunKind::Rollback => run.phase == Phase::DeployingIdle,
        };
        let (to, from, version) = (run.to, run.from, run.version.clone());
        let requester = run.requester.clone();
        tx.event(id, Some(user), "cancelled");
        let text = format!(
            "🚫 Run {id} ({version} → {}) cancelled by {}. {}",
            env_cfg.display_name,
            user.mention(),
            requester.mention()
        );
        self.end(tx, id, Phase::Cancelled, format!("cancelled by {user}"));
        tx.post(Post::top(&env, Room::Deploys, text).in_thread(message::checklist_key(id)));
        if deployed {
            self.teardown_idle(tx, &env, to, from);
        }
        Reply::public(format!("Run {id} cancelled."))
    }

    fn manual_rollback(
        &mut self,
        tx: &mut Tx,
        user: &UserId,
        env: &EnvName,
        reason: Option<String>,
    ) -> Reply {
        let env_cfg = self.env_cfg(env).clone();
        if let Err(m) = policy::may(&self.rules, &env_cfg, user, Perm::Rollback) {
            return Reply::private(m);
        }
        let why = format!(
            "manual rollback by {user}{}",
            reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        let st = self.envs[env].clone();
        if let Some(active) = st.active_run.and_then(|id| self.runs.get(&id)) {
            let id = active.id;
            return match active.phase {
                Phase::Monitoring => {
                    tx.event(id, Some(user), why.clone());
                    self.start_rollback(tx, id, why);
                    Reply::public(format!("Rolling back run {id}."))
                }
                Phase::RollingBack => Reply::public(format!("Run {id} is already rolling back.")),
                p if p.before_switch() => Reply::private(format!(
                    "run {id} has not switched traffic yet ({}), so nothing changed on {}; use /deploy cancel {id}",
                    p.label(),
                    env_cfg.display_name
                )),
                p => Reply::private(format!("run {id} is {}; wait for it to finish", p.label())),
            };
        }
        if let Some(why) = &st.unseen {
            return Reply::private(format!(
                "greenlight cannot see which colour is live on {}: {why}; nothing was changed",
                env_cfg.display_name
            ));
        }
        let (Some(live), Some(prev)) = (st.live, st.previous.clone()) else {
            return Reply::private(format!(
                "nothing to roll back to: {} has no earlier version",
                env_cfg.display_name
            ));
        };
        let idle = live.other();
        let id = RunId(self.next_run);
        self.next_run += 1;
        tx.ch.next_run = Some(self.next_run);
        let run = Run {
            id,
            kind: RunKind::Rollback,
            env: env.clone(),
            service: None,
            version: prev.clone(),
            requester: user.clone(),
            force: None,
            reason: Some(why.clone()),
            created: tx.now,
            updated: tx.now,
            ended: None,
            phase: Phase::DeployingIdle,
            checklist: Checklist::default(),
            checklist_expires: tx.now,
            from: Some(live),
            from_version: st.live_version().cloned(),
            to: idle,
            attempt: 0,
            baseline: None,
            baseline_p99: None,
            switch_intents: 0,
            switched: false,
            switch_back_intents: 0,
            success_posted: false,
            monitor: MonitorProgress::default(),
            status: Vec::new(),
            outcome: None,
            origin: tx.origin,
            forced: Vec::new(),
            announced: true,
            told: Vec::new(),
        };
        self.runs.insert(id, run);
        self.envs.get_mut(env).expect("env").active_run = Some(id);
        tx.touch_env(env);
        tx.event(id, Some(user), why.clone());
        tx.post(
            Post::top(
                env,
                Room::Deploys,
                format!(
                    "⏪ Rolling back {} to {prev} (run {id}). Reason: {why}",
                    env_cfg.display_name
                ),
            )
            .keyed(message::checklist_key(id)),
        );
        if st.version_on(idle) == Some(&prev) {
            self.set_phase(
                tx,
                id,
                Phase::VerifyingIdle,
                format!("{idle} still runs {prev}: verifying it before switching back"),
            );
            let attempt = self.bump_attempt(id);
            tx.ch.actions.push(Action::Verify {
                run: id,
                attempt,
                env: env.clone(),
                colour: idle,
            });
        } else {
            self.set_phase(
                tx,
                id,
                Phase::DeployingIdle,
                format!("{idle} no longer runs {prev}: redeploying it"),
            );
            let attempt = self.bump_attempt(id);
            tx.ch.actions.push(Action::DeployIdle {
                run: id,
                attempt,
                env: env.clone(),
                colour: idle,
                version: prev.clone(),
            });
        }
        Reply::public(format!(
            "Run {id}: rolling back {} to {prev}.",
            env_cfg.display_name
        ))
    }

    // ---- reactions ---------------------------------------------------------------------

    /// A ✅/👍/❌ (or any emoji) added to or removed from a run's checklist message.
    pub fn reaction(
        &mut self,
        user: &UserId,
        key: &str,
        emoji: &str,
        added: bool,
        now: DateTime<Utc>,
    ) -> Changes {
        self.reaction_in(Tx::new(now), user, key, emoji, added)
    }

    /// An Approve / Veto button click: counts exactly like the reaction; a click that does not
    /// count is answered to the clicking user only (`Changes.reply`, private).
    pub fn click(
        &mut self,
        user: &UserId,
        key: &str,
        approve: bool,
        now: DateTime<Utc>,
    ) -> Changes {
        let mut tx = Tx::new(now);
        tx.private_refusals = true;
        let emoji = if approve { "white_check_mark" } else { "x" };
        self.reaction_in(tx, user, key, emoji, true)
    }

    /// Tells `user` why their reaction or click does not count: to them only, once per run
    /// for each reason (a reaction added and removed five times is said once).
    fn refuse(&mut self, tx: &mut Tx, env: &EnvName, id: RunId, user: &UserId, why: String) {
        if tx.private_refusals {
            tx.ch.reply = Some(Reply::private(why));
            return;
        }
        if let Some(run) = self.runs.get_mut(&id) {
            let key = format!("{user}: {why}");
            if run.told.contains(&key) {
                return;
            }
            run.told.push(key);
            tx.touch_run(id);
        }
        tx.post(
            Post::top(env, Room::Deploys, why)
                .in_thread(message::checklist_key(id))
                .only_for(user),
        );
    }

    fn reaction_in(
        &mut self,
        mut tx: Tx,
        user: &UserId,
        key: &str,
        emoji: &str,
        added: bool,
    ) -> Changes {
        let kind = checklist::classify(emoji);
        let (id, target) = match message::parse_key(key) {
            Some(message::KeyRef::Checklist(id)) => (id, Target::Parent),
            Some(message::KeyRef::Item(id, i)) => (id, Target::Item(i)),
            _ => return tx.ch,
        };
        if kind == Emoji::Other {
            return tx.ch;
        }
        // An approval that arrives after the expiry, before its timer fired, does not count.
        if self.expire_if_due(&mut tx, id) {
            if added {
                let env = self.runs.get(&id).map(|r| r.env.clone());
                if let Some(env) = env {
                    let why = format!(
                        "{user}'s reaction does not count: the checklist of run {id} expired"
                    );
                    self.refuse(&mut tx, &env, id, user, why);
                }
            }
            return self.finish(tx);
        }
        let Some(run) = self.runs.get_mut(&id) else {
            if added {
                // A finished run: say why it does not count (the env is known from the store only).
                tx.ch.reply = Some(Reply::private(format!(
                    "{user}'s reaction does not count: run {id} is over and its checklist is closed"
                )));
            }
            return tx.ch;
        };
        let env = run.env.clone();
        if run.phase != Phase::AwaitingChecklist {
            if added {
                let text = format!(
                    "{user}'s reaction does not count: the checklist of run {id} is closed (the run is {})",
                    run.phase.label()
                );
                self.refuse(&mut tx, &env, id, user, text);
            }
            return self.finish(tx);
        }
        let requester = run.requester.clone();
        let rules = self.rules.clone();
        let in_group = |u: &UserId, g: &str| rules.in_group(u, g);
        let outcome = run
            .checklist
            .react_as(&requester, user, &in_group, target, emoji, added);
        match outcome {
            checklist::Outcome::Ignored => {}
            checklist::Outcome::Noted => tx.touch_run(id),
            checklist::Outcome::NotCounted(why) => {
                tx.event(id, Some(user), format!("reaction not counted: {why}"));
                self.refuse(&mut tx, &env, id, user, why);
            }
            checklist::Outcome::Withdrawn { item } => {
                let line = run.checklist.item_line(item);
                tx.event(
                    id,
                    Some(user),
                    format!("withdrew approval of item {}", item + 1),
                );
                tx.post(
                    Post::top(&env, Room::Deploys, line)
                        .keyed(message::item_key(id, item))
                        .in_thread(message::checklist_key(id))
                        .editing(),
                );
            }
            checklist::Outcome::Approved { item, complete } => {
                let line = run.checklist.item_line(item);
                tx.event(id, Some(user), format!("approved item {}", item + 1));
                tx.post(
                    Post::top(&env, Room::Deploys, line)
                        .keyed(message::item_key(id, item))
                        .in_thread(message::checklist_key(id))
                        .editing(),
                );
                if complete {
                    self.checklist_complete(&mut tx, id);
                }
            }
            checklist::Outcome::Vetoed => {
                let version = run.version.clone();
                tx.event(id, Some(user), "vetoed");
                let display = self.env_cfg(&env).display_name.clone();
                self.end(&mut tx, id, Phase::Vetoed, format!("vetoed by {user}"));
                tx.post(
                    Post::top(
                        &env,
                        Room::Deploys,
                        format!(
                        "🛑 Run {id} vetoed by {}: {version} will not be deployed to {display}. {}",
                        user.mention(),
                        requester.mention()
                    ),
                    )
                    .in_thread(message::checklist_key(id)),
                );
            }
        }
        self.finish(tx)
    }

    // ---- timers ------------------------------------------------------------------------

    pub fn timer(&mut self, timer: Timer, now: DateTime<Utc>) -> Changes {
        let mut tx = Tx::new(now);
        match timer {
            Timer::ChecklistExpiry(id) => {
                self.expire_if_due(&mut tx, id);
            }
            Timer::MonitorTick(id, attempt) => {
                if let Some(run) = self.runs.get(&id) {
                    if run.phase == Phase::Monitoring && run.attempt == attempt {
                        self.ticked.insert(id, now);
                        if self.rules.envs[&run.env].critical_path {
                            self.critical_pending.insert(id);
                        }
                        tx.ch.actions.push(Action::Sample {
                            run: id,
                            attempt,
                            env: run.env.clone(),
                            colour: run.to,
                        });
                    }
                }
            }
            Timer::Observe(env) => {
                let observing = |r: &Run| r.env == env && r.phase == Phase::Observing;
                if self.envs.get(&env).is_some_and(|st| st.unseen.is_some())
                    && !self.runs.values().any(observing)
                {
                    tx.ch.actions.push(Action::Observe { env, run: None });
                }
            }
            Timer::Teardown(env) => {
                let Some(st) = self.envs.get(&env) else {
                    return tx.ch;
                };
                // Never tear down a colour on an environment whose live colour cannot be seen:
                // the timer is armed again once it can.
                if st.unseen.is_some() {
                    return tx.ch;
                }
                if let (Some(until), Some(live), None) = (st.warm_until, st.live, st.active_run) {
                    if now >= until {
                        let idle = live.other();
                        let st = self.envs.get_mut(&env).expect("env");
                        st.warm_until = None;
                        st.set_version(idle, None);
                        tx.touch_env(&env);
                        tx.ch.actions.push(Action::Teardown {
                            env: env.clone(),
                            colour: idle,
                        });
                    }
                }
            }
        }
        self.finish(tx)
    }

    /// Ends a run whose checklist is still open past its expiry; true if it did.
    fn expire_if_due(&mut self, tx: &mut Tx, id: RunId) -> bool {
        let Some(run) = self.runs.get(&id) else {
            return false;
        };
        if run.phase != Phase::AwaitingChecklist || tx.now < run.checklist_expires {
            return false;
        }
        let (env, version, requester) =
            (run.env.clone(), run.version.clone(), run.requester.clone());
        let display = self.env_cfg(&env).display_name.clone();
        let exp = humantime::format_duration(self.env_cfg(&env).checklist_expiry);
        tx.event(id, None, "checklist expired");
        self.end(
            tx,
            id,
            Phase::Expired,
            format!("checklist not completed within {exp}"),
        );
        tx.post(
            Post::top(&env, Room::Deploys, format!(
                "⌛ Run {id} expired: the checklist for {version} → {display} was not completed within {exp}. {}",
                requester.mention()
            ))
            .in_thread(message::checklist_key(id)),
        );
        true
    }

    // ---- results of actions ------------------------------------------------------------

    pub fn result(
        &mut self,
        id: RunId,
        attempt: u32,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Changes {
        let mut tx = Tx::new(now);
        let Some(run) = self.runs.get(&id) else {
            return tx.ch;
        };
        if run.attempt != attempt {
            return tx.ch;
        }
        let phase = run.phase;
        match (phase, outcome) {
            (Phase::DeployingIdle, Outcome::DeployIdle(Ok(()))) => {
                let (env, to, version) = (run.env.clone(), run.to, run.version.clone());
                tx.event(id, None, format!("{version} deployed to {to}"));
                self.set_phase(
                    &mut tx,
                    id,
                    Phase::VerifyingIdle,
                    format!("{version} is on {to}: health check and smoke tests"),
                );
                tx.ch.actions.push(Action::Verify {
                    run: id,
                    attempt,
                    env,
                    colour: to,
                });
            }
            (Phase::DeployingIdle, Outcome::DeployIdle(Err(why))) => {
                self.fail_before_switch(&mut tx, id, format!("deploy to idle failed: {why}"));
            }
            (Phase::VerifyingIdle, Outcome::Verify(Ok(summary))) => {
                tx.event(id, None, format!("verified: {summary}"));
                let run = &self.runs[&id];
                let (env, from, to, kind) = (run.env.clone(), run.from, run.to, run.kind);
                self.status_line(&mut tx, id, format!("✔ {to} verified: {summary}"));
                if kind == RunKind::Rollback {
                    self.pre_switch(&mut tx, id);
                } else if let Some(from) = from {
                    self.set_phase(
                        &mut tx,
                        id,
                        Phase::Baseline,
                        format!("sampling {from}'s error rate and latency for the baseline"),
                    );
                    tx.ch.actions.push(Action::Baseline {
                        run: id,
                        attempt,
                        env,
                        colour: from,
                    });
                } else {
                    let th = self.thresholds(&env);
                    let note = analysis::usable_baseline(None, &th).unwrap_err();
                    self.status_line(&mut tx, id, format!("ℹ️ {note}"));
                    self.pre_switch(&mut tx, id);
                }
            }
            (Phase::VerifyingIdle, Outcome::Verify(Err(why))) => {
                self.fail_before_switch(&mut tx, id, why);
            }
            (Phase::Baseline, Outcome::Baseline(sample)) => {
                let env = run.env.clone();
                let th = self.thresholds(&env);
                let usable = analysis::usable_baseline(Some(&sample), &th);
                let run = self.runs.get_mut(&id).expect("run");
                run.baseline = Some(sample.clone());
                run.baseline_p99 = usable.as_ref().ok().copied();
                let line = match (&sample, &usable) {
                    (Sample::Data(m), Ok(_)) => format!(
                        "📏 baseline from {}: {}",
                        run.from.map(|c| c.to_string()).unwrap_or_default(),
                        m.describe()
                    ),
                    (_, Err(note)) => format!("ℹ️ {note}"),
                    (Sample::Unavailable(w), Ok(_)) => format!("ℹ️ baseline unavailable: {w}"),
                };
                tx.event(id, None, line.clone());
                self.status_line(&mut tx, id, line);
                self.pre_switch(&mut tx, id);
            }
            (Phase::Switching, Outcome::Switch(Ok(()))) => {
                let to = run.to;
                tx.event(id, None, format!("traffic switched to {to}"));
                self.result_switch_done(&mut tx, id);
            }
            (Phase::Switching, Outcome::Switch(Err(why))) => {
                self.switch_failed(&mut tx, id, why);
            }
            (Phase::Observing, Outcome::Observed(view)) => {
                let env = run.env.clone();
                match self.apply_view(&mut tx, &env, view, false) {
                    Ok(live) => self.deploy_to_idle(&mut tx, id, live),
                    Err(why) => self.fail_unseen(&mut tx, id, &why),
                }
            }
            (Phase::Monitoring, Outcome::Sample(sample, smoke)) => {
                self.evaluate(&mut tx, id, sample, smoke, false);
            }
            (Phase::Monitoring, Outcome::Measured(sample)) => {
                self.evaluate(&mut tx, id, sample, None, true);
            }
            (Phase::Monitoring, Outcome::CriticalPath(Err(why))) => {
                let reason = format!("core business flow broken: {why}");
                tx.event(id, None, format!("rollback trigger: {reason}"));
                self.status_line(&mut tx, id, format!("✖ critical path: {reason}"));
                self.start_rollback(&mut tx, id, reason);
            }
            (Phase::Monitoring, Outcome::CriticalPath(Ok(()))) => {
                self.critical_pending.remove(&id);
                if run.monitor.awaiting_critical_path {
                    self.monitoring_over(&mut tx, id);
                }
            }
            (Phase::RollingBack, Outcome::SwitchBack(Ok(()))) => {
                let run = &self.runs[&id];
                let (env, from) = (run.env.clone(), run.from);
                if let Some(from) = from {
                    let st = self.envs.get_mut(&env).expect("env");
                    st.live = Some(from);
                    tx.touch_env(&env);
                }
                tx.event(id, None, "traffic switched back");
                self.rollback_done(&mut tx, id);
            }
            (Phase::RollingBack, Outcome::SwitchBack(Err(why))) => {
                let run = &self.runs[&id];
                let (env, to) = (run.env.clone(), run.to);
                let display = self.env_cfg(&env).display_name.clone();
                let text = format!("⛔ Rollback of run {id} FAILED: {why}. Traffic may still be on {to}: a person must act now. {}", run.requester.mention());
                tx.event(id, None, text.clone());
                self.lock_env(
                    &mut tx,
                    &env,
                    format!("rollback of run {id} failed: {why}"),
                    Some(id),
                );
                tx.post(Post::top(
                    &env,
                    Room::Incidents,
                    format!("🚨 {display}: {text} {}", self.link(id)),
                ));
                tx.post(Post::top(&env, Room::Deploys, text).in_thread(message::checklist_key(id)));
                self.end(
                    &mut tx,
                    id,
                    Phase::Failed,
                    format!("rollback failed: {why}"),
                );
            }
            _ => {}
        }
        self.finish(tx)
    }

    fn link(&self, id: RunId) -> String {
        format!("{}/runs/{id}", self.link_base.trim_end_matches('/'))
    }

    fn bump_attempt(&mut self, id: RunId) -> u32 {
        let run = self.runs.get_mut(&id).expect("run");
        run.attempt += 1;
        run.attempt
    }

    fn set_phase(&mut self, tx: &mut Tx, id: RunId, phase: Phase, line: String) {
        let run = self.runs.get_mut(&id).expect("run");
        run.phase = phase;
        tx.touch_run(id);
        self.status_line(tx, id, format!("▶ {line}"));
    }

    /// Appends a line to the run's status message (one thread reply, edited in place).
    fn status_line(&mut self, tx: &mut Tx, id: RunId, line: String) {
        let run = self.runs.get_mut(&id).expect("run");
        run.status.push(line);
        if run.status.len() > 30 {
            let drop = run.status.len() - 30;
            run.status.drain(1..=drop);
        }
        let text = format!(
            "Run {id} status ({}):\n{}",
            run.phase.label(),
            run.status.join("\n")
        );
        tx.touch_run(id);
        tx.post(
            Post::top(&run.env, Room::Deploys, text)
                .keyed(message::status_key(id))
                .in_thread(message::checklist_key(id))
                .editing(),
        );
    }

    fn end(&mut self, tx: &mut Tx, id: RunId, phase: Phase, outcome: String) {
        self.ticked.remove(&id);
        self.critical_pending.remove(&id);
        let run = self.runs.get_mut(&id).expect("run");
        run.phase = phase;
        run.ended = Some(tx.now);
        run.outcome = Some(outcome.clone());
        if !run.status.is_empty() {
            // The status message's header shows the final phase.
            let text = format!(
                "Run {id} status ({}):\n{}",
                phase.label(),
                run.status.join("\n")
            );
            tx.post(
                Post::top(&run.env, Room::Deploys, text)
                    .keyed(message::status_key(id))
                    .in_thread(message::checklist_key(id))
                    .editing(),
            );
        }
        tx.event(id, None, format!("ended: {} ({outcome})", phase.label()));
    }

    fn teardown_idle(&mut self, tx: &mut Tx, env: &EnvName, colour: Colour, live: Option<Colour>) {
        if live == Some(colour) {
            return;
        }
        let st = self.envs.get_mut(env).expect("env");
        st.set_version(colour, None);
        tx.touch_env(env);
        tx.ch.actions.push(Action::Teardown {
            env: env.clone(),
            colour,
        });
    }

    fn lock_env(&mut self, tx: &mut Tx, env: &EnvName, reason: String, run: Option<RunId>) {
        let st = self.envs.get_mut(env).expect("env");
        if st.lock.is_none() {
            st.lock = Some(Lock {
                reason,
                by: "greenlight".into(),
                at: tx.now,
                run,
            });
            tx.touch_env(env);
        }
    }

    fn checklist_complete(&mut self, tx: &mut Tx, id: RunId) {
        let run = &self.runs[&id];
        let (env, requester, force) = (run.env.clone(), run.requester.clone(), run.force.clone());
        tx.event(id, None, "checklist complete");
        let (blocked, passed) =
            policy::check_freeze(&self.rules, &env, &requester, force.as_deref(), tx.now);
        if let Some(Blocker::Freeze { window, .. }) = blocked.first() {
            let display = self.env_cfg(&env).display_name.clone();
            let text = format!(
                "🧊 Run {id} stopped: {display} is frozen by {}. Nothing was deployed. {}",
                window.describe(self.rules.timezone),
                requester.mention()
            );
            self.end(
                tx,
                id,
                Phase::Rejected,
                format!(
                    "freeze \"{}\" open when the checklist completed",
                    window.name
                ),
            );
            tx.post(Post::top(&env, Room::Deploys, text).in_thread(message::checklist_key(id)));
            return;
        }
        self.announce_forced(tx, id, passed, "when the checklist completed");
        self.start_deploy(tx, id);
    }

    /// A freeze passed with break-glass `--force` at a later gate is audited and announced once.
    fn announce_forced(
        &mut self,
        tx: &mut Tx,
        id: RunId,
        passed: Vec<super::freeze::Window>,
        when: &str,
    ) {
        let tz = self.rules.timezone;
        for w in passed {
            let d = w.describe(tz);
            let run = self.runs.get_mut(&id).expect("run");
            if run.forced.contains(&d) {
                continue;
            }
            run.forced.push(d.clone());
            let (env, version, requester, reason) = (
                run.env.clone(),
                run.version.clone(),
                run.requester.clone(),
                run.force.clone().unwrap_or_default(),
            );
            let display = self.env_cfg(&env).display_name.clone();
            tx.event(
                id,
                Some(&requester),
                format!("forced past freeze \"{}\" {when}: {reason}", w.name),
            );
            let text = format!(
                "⚠️ Break-glass: {} forced run {id} ({version} → {display}) past freeze {d} {when}. Reason: {reason}",
                requester.mention()
            );
            tx.post(Post::top(&env, Room::Deploys, text.clone()));
            tx.post(Post::top(&env, Room::Announce, text));
        }
    }

    /// The checklist is done: first ask the traffic step which colour is live; the deploy
    /// itself starts from its answer (`deploy_to_idle`), never from what was stored.
    fn start_deploy(&mut self, tx: &mut Tx, id: RunId) {
        let env = self.runs[&id].env.clone();
        self.set_phase(
            tx,
            id,
            Phase::Observing,
            "asking the traffic step which colour is live".into(),
        );
        let attempt = self.bump_attempt(id);
        tx.ch.actions.push(Action::Observe {
            env,
            run: Some((id, attempt)),
        });
    }

    /// The traffic step answered for run `id`: deploy to the colour that is really idle.
    fn deploy_to_idle(&mut self, tx: &mut Tx, id: RunId, live: Option<Colour>) {
        let env = self.runs[&id].env.clone();
        let st = self.envs[&env].clone();
        let display = self.env_cfg(&env).display_name.clone();
        let run = self.runs.get_mut(&id).expect("run");
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
        let live_note = match live {
            Some(l) => format!("{l} stays live"),
            None => "nothing is live yet (the traffic step says no colour takes traffic)".into(),
        };
        tx.event(
            id,
            None,
            format!(
                "live colour seen: {}",
                live.map(|c| c.to_string()).unwrap_or_else(|| "none".into())
            ),
        );
        self.set_phase(
            tx,
            id,
            Phase::DeployingIdle,
            format!("deploying {version} to {to} (idle); {live_note}"),
        );
        tx.ch.actions.push(Action::DeployIdle {
            run: id,
            attempt,
            env,
            colour: to,
            version,
        });
    }

    /// Run `id` cannot start: greenlight cannot see which colour is live. Nothing was deployed,
    /// so nothing is torn down.
    fn fail_unseen(&mut self, tx: &mut Tx, id: RunId, why: &str) {
        let run = &self.runs[&id];
        let (env, requester) = (run.env.clone(), run.requester.clone());
        let reason = format!("greenlight cannot see which colour is live: {why}");
        tx.post(Post::top(
            &env,
            Room::Deploys,
            format!("❌ Deployment failed. Reason: {reason}. Nothing was deployed and live traffic was not touched."),
        ));
        self.status_line(tx, id, format!("✖ {reason}; nothing deployed"));
        tx.post(
            Post::top(
                &env,
                Room::Deploys,
                format!(
                    "Run {id} stopped before deploying: {reason}. {}",
                    requester.mention()
                ),
            )
            .in_thread(message::checklist_key(id)),
        );
        self.end(tx, id, Phase::Failed, format!("{reason}; nothing deployed"));
    }

    /// Records what the traffic step said. `chain`: this answer belongs to the periodic look
    /// at an unseen environment (or the one at start), which is armed again while unseen.
    /// Returns the live colour, or why it cannot be seen.
    fn apply_view(
        &mut self,
        tx: &mut Tx,
        env: &EnvName,
        view: LiveView,
        chain: bool,
    ) -> Result<Option<Colour>, String> {
        let stated = self.env_cfg(env).stated_live;
        let st = self.envs.get_mut(env).expect("env");
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
                (Some(_), None) => Err(format!(
                    "its traffic step cannot be asked (no live_query) and nobody has stated the live colour: set live = \"blue\", \"green\" or \"none\" with the switch command of [environments.{env}]"
                )),
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
                        tx.ch
                            .timers
                            .push((until.max(tx.now), Timer::Teardown(env.clone())));
                    }
                }
            }
            Err(why) => {
                if st.unseen.as_deref() != Some(why.as_str()) {
                    st.unseen = Some(why.clone());
                    tx.touch_env(env);
                }
                if (chain || !was_unseen) && asking_helps {
                    tx.ch
                        .timers
                        .push((tx.now + to_std(OBSERVE_EVERY), Timer::Observe(env.clone())));
                }
            }
        }
        seen
    }

    /// An answer of the traffic step outside any run: at start, or looking again at an
    /// environment whose live colour could not be seen.
    pub fn observed(&mut self, env: &EnvName, view: LiveView, now: DateTime<Utc>) -> Changes {
        let mut tx = Tx::new(now);
        if !self.envs.contains_key(env) {
            return tx.ch;
        }
        let keep_warm = self.env_cfg(env).monitor.keep_warm;
        let st = self.envs.get_mut(env).expect("env");
        if let Some(u) = st.warm_until {
            // A clock that stepped back never stretches the kept-warm time.
            let latest = now + to_std(keep_warm);
            if u > latest {
                st.warm_until = Some(latest);
                tx.touch_env(env);
            }
        }
        let _ = self.apply_view(&mut tx, env, view, true);
        self.finish(tx)
    }

    fn fail_before_switch(&mut self, tx: &mut Tx, id: RunId, why: String) {
        let run = &self.runs[&id];
        let (env, from, to, requester) = (run.env.clone(), run.from, run.to, run.requester.clone());
        tx.post(Post::top(
            &env,
            Room::Deploys,
            message::failed_before_switch(&why, from),
        ));
        self.status_line(tx, id, format!("✖ {why}; {to} torn down"));
        tx.post(
            Post::top(
                &env,
                Room::Deploys,
                format!(
                    "Run {id} failed before the switch: {why}. {}",
                    requester.mention()
                ),
            )
            .in_thread(message::checklist_key(id)),
        );
        self.end(
            tx,
            id,
            Phase::Failed,
            format!("{why}; live traffic never switched"),
        );
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
        let reason = format!("traffic switch failed: {why}");
        tx.post(Post::top(
            &env,
            Room::Deploys,
            format!("❌ Deployment failed. Reason: {reason}. {to} was left running: greenlight cannot tell which colour takes traffic now, so it tears nothing down and refuses deploys until it can see again."),
        ));
        self.status_line(tx, id, format!("✖ {reason}; {to} left running"));
        tx.post(
            Post::top(
                &env,
                Room::Deploys,
                format!(
                    "Run {id} failed at the switch: {reason}. {to} keeps {version}; check which colour takes traffic. {}",
                    requester.mention()
                ),
            )
            .in_thread(message::checklist_key(id)),
        );
        self.end(tx, id, Phase::Failed, reason);
        let st = self.envs.get_mut(&env).expect("env");
        st.set_version(to, Some(version));
        tx.touch_env(&env);
        let _ = self.apply_view(
            tx,
            &env,
            LiveView::Unseen(format!(
                "the traffic switch to {to} of run {id} failed: {why}"
            )),
            false,
        );
    }

    /// The last gate: freeze re-check, then the switch intent is written before the switch.
    fn pre_switch(&mut self, tx: &mut Tx, id: RunId) {
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
                let why = format!(
                    "freeze {} opened before the traffic switch",
                    window.describe(self.rules.timezone)
                );
                self.fail_before_switch(tx, id, why);
                return;
            }
            self.announce_forced(tx, id, passed, "before the traffic switch");
        }
        let run = self.runs.get_mut(&id).expect("run");
        run.switch_intents += 1;
        tx.event(id, None, format!("switch intent: traffic to {to}"));
        self.set_phase(
            tx,
            id,
            Phase::Switching,
            format!("switching traffic to {to}"),
        );
        let attempt = self.runs[&id].attempt;
        tx.ch.actions.push(Action::Switch {
            run: id,
            attempt,
            env,
            to,
            from,
        });
    }

    fn start_monitoring(&mut self, tx: &mut Tx, id: RunId) {
        let run = self.runs.get_mut(&id).expect("run");
        let env = run.env.clone();
        let m = self.rules.envs[&env].monitor.clone();
        run.monitor.started = Some(tx.now);
        run.monitor.until = Some(tx.now + to_std(m.duration));
        run.success_posted = true;
        let attempt = run.attempt;
        tx.post(Post::top(
            &env,
            Room::Deploys,
            message::deployed_monitoring(),
        ));
        self.set_phase(
            tx,
            id,
            Phase::Monitoring,
            format!(
                "traffic is on {}; monitoring for {} every {}",
                self.runs[&id].to,
                humantime::format_duration(m.duration),
                humantime::format_duration(m.interval)
            ),
        );
        tx.ch
            .timers
            .push((tx.now + to_std(m.interval), Timer::MonitorTick(id, attempt)));
    }

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
        let interval = self.env_cfg(&env).monitor.interval;
        let run = self.runs.get_mut(&id).expect("run");
        let verdict = analysis::evaluate(&sample, run.baseline_p99, smoke.as_ref(), &th);
        let n = run.monitor.passes + run.monitor.inconclusive + 1;
        match verdict {
            Verdict::Breach { reason } => {
                tx.event(id, None, format!("rollback trigger: {reason}"));
                self.status_line(tx, id, format!("✖ check {n}: {reason}"));
                self.start_rollback(tx, id, reason);
                return;
            }
            Verdict::Pass { detail } => {
                run.monitor.passes += 1;
                run.monitor.last_conclusive = true;
                run.monitor.last = Some(detail.clone());
                self.status_line(tx, id, format!("✔ check {n}: {detail}"));
            }
            Verdict::Inconclusive { reason } => {
                run.monitor.inconclusive += 1;
                run.monitor.last_conclusive = false;
                tx.event(id, None, format!("inconclusive: {reason}"));
                self.status_line(
                    tx,
                    id,
                    format!("⚠️ check {n}: inconclusive ({reason}); no data is never a pass"),
                );
            }
        }
        // A wall clock that stepped back never stretches the window past its length from now.
        let latest = tx.now + to_std(self.env_cfg(&env).monitor.duration);
        let run = self.runs.get_mut(&id).expect("run");
        if run.monitor.until.is_some_and(|u| u > latest) {
            run.monitor.until = Some(latest);
        }
        let run = &self.runs[&id];
        if run.monitor.until.is_some_and(|u| tx.now >= u) {
            // The critical path may already have answered (it often is the faster of the two).
            if critical_path_pending && self.critical_pending.contains(&id) {
                // This check's critical path reports on its own: it has the last word.
                let run = self.runs.get_mut(&id).expect("run");
                run.monitor.awaiting_critical_path = true;
                tx.touch_run(id);
            } else {
                self.monitoring_over(tx, id);
            }
        } else {
            // Checks keep their cadence: the next one is an interval after this one started,
            // not after its (possibly slow: a -slow release makes the critical path slow)
            // result came back.
            let started = self.ticked.remove(&id).unwrap_or(tx.now);
            let next = (started + to_std(interval)).max(tx.now);
            tx.ch
                .timers
                .push((next, Timer::MonitorTick(id, self.runs[&id].attempt)));
        }
    }

    fn monitoring_over(&mut self, tx: &mut Tx, id: RunId) {
        let run = &self.runs[&id];
        let (env, to, from, version, requester) = (
            run.env.clone(),
            run.to,
            run.from,
            run.version.clone(),
            run.requester.clone(),
        );
        let m = run.monitor.clone();
        let keep_warm = self.env_cfg(&env).monitor.keep_warm;
        let display = self.env_cfg(&env).display_name.clone();
        let healthy = m.passes > 0 && m.last_conclusive && m.passes >= m.inconclusive;
        if healthy {
            let warm = match from {
                Some(f) => {
                    let until = tx.now + to_std(keep_warm);
                    let st = self.envs.get_mut(&env).expect("env");
                    st.warm_until = Some(until);
                    tx.touch_env(&env);
                    tx.ch.timers.push((until, Timer::Teardown(env.clone())));
                    format!(
                        "; {f} ({}) is idle, kept warm until {} for a fast rollback",
                        self.runs[&id]
                            .from_version
                            .clone()
                            .unwrap_or_else(|| "a version greenlight did not deploy".into()),
                        until.with_timezone(&self.rules.timezone).format("%H:%M %Z")
                    )
                }
                None => String::new(),
            };
            self.status_line(tx, id, format!("✅ stable: {version} live on {to}{warm}"));
            tx.post(
                Post::top(&env, Room::Deploys, format!(
                    "✅ Run {id} stable: {version} is live on {display} ({} of {} checks passed). {}",
                    m.passes,
                    m.passes + m.inconclusive,
                    requester.mention()
                ))
                .in_thread(message::checklist_key(id)),
            );
            self.end(
                tx,
                id,
                Phase::Succeeded,
                format!("stable on {to} after {} checks", m.passes + m.inconclusive),
            );
        } else {
            let text = format!(
                "⚠️ Run {id}: monitoring of {version} on {display} was inconclusive ({} of {} checks had no usable data), so it is not marked stable. Traffic stays on {to}; /rollback {env} returns to the previous version. {}",
                m.inconclusive,
                m.passes + m.inconclusive,
                requester.mention()
            );
            self.status_line(
                tx,
                id,
                "⚠️ unverified: not enough data to call it healthy".into(),
            );
            tx.post(Post::top(&env, Room::Deploys, text).in_thread(message::checklist_key(id)));
            if from.is_some() {
                let until = tx.now + to_std(keep_warm);
                self.envs.get_mut(&env).expect("env").warm_until = Some(until);
                tx.touch_env(&env);
                tx.ch.timers.push((until, Timer::Teardown(env.clone())));
            }
            self.end(
                tx,
                id,
                Phase::Unverified,
                format!(
                    "monitoring inconclusive in {} of {} checks",
                    m.inconclusive,
                    m.passes + m.inconclusive
                ),
            );
        }
    }

    fn start_rollback(&mut self, tx: &mut Tx, id: RunId, reason: String) {
        let run = self.runs.get_mut(&id).expect("run");
        run.reason = Some(reason.clone());
        let (env, to, from) = (run.env.clone(), run.to, run.from);
        tx.post(Post::top(
            &env,
            Room::Deploys,
            message::failed_rolling_back(&reason),
        ));
        match from {
            Some(from) => {
                let run = self.runs.get_mut(&id).expect("run");
                run.switch_back_intents += 1;
                let attempt = run.attempt;
                tx.event(id, None, format!("switch-back intent: traffic to {from}"));
                self.set_phase(
                    tx,
                    id,
                    Phase::RollingBack,
                    format!("switching traffic back to {from}"),
                );
                tx.ch.actions.push(Action::SwitchBack {
                    run: id,
                    attempt,
                    env,
                    to: from,
                    from: to,
                });
            }
            None => {
                // First deploy: there is no previous colour to return to.
                self.set_phase(
                    tx,
                    id,
                    Phase::RollingBack,
                    "no previous colour to switch back to (first deploy)".into(),
                );
                self.rollback_done(tx, id);
            }
        }
    }

    /// After traffic is back (or a manual rollback switched): alert, lock, tear down.
    fn rollback_done(&mut self, tx: &mut Tx, id: RunId) {
        let run = self.runs[&id].clone();
        let env = run.env.clone();
        let display = self.env_cfg(&env).display_name.clone();
        let reason = run.reason.clone().unwrap_or_default();
        let approvers: Vec<String> = run
            .checklist
            .approvers()
            .iter()
            .map(|u| u.0.clone())
            .collect();
        let st = self.envs[&env].clone();
        let bad = match run.kind {
            RunKind::Deploy => run.version.clone(),
            RunKind::Rollback => run.from_version.clone().unwrap_or_default(),
        };
        let now_live = match (st.live, st.live_version()) {
            (Some(c), Some(v)) => format!("traffic is on {c} ({v})"),
            (Some(c), None) => format!("traffic is on {c}"),
            _ => "nothing is live".into(),
        };
        let no_previous = run.kind == RunKind::Deploy && run.from.is_none();
        let alert = format!(
            "🚨 {display}: {} {bad} (run {id}). Reason: {reason}. Now {now_live}. Requested by {}; approved by {}. {display} is locked until someone runs /deploy unlock {env}. The database was not touched: if this release ran migrations, a person must assess them. {}",
            if no_previous { "failed first deploy of" } else { "rolled back" },
            run.requester,
            if approvers.is_empty() { "nobody".into() } else { approvers.join(", ") },
            self.link(id)
        );
        tx.post(Post::top(&env, Room::Incidents, alert));
        self.lock_env(
            tx,
            &env,
            format!("rollback of {bad} (run {id}): {reason}"),
            Some(id),
        );
        let line = if no_previous {
            format!(
                "⛔ no previous colour: {} keeps traffic; environment locked",
                run.to
            )
        } else {
            format!("⏪ rolled back: {now_live}; environment locked; incident channel alerted")
        };
        self.status_line(tx, id, line);
        tx.post(
            Post::top(&env, Room::Deploys, format!(
                "⏪ Run {id} rolled back: {now_live}. {display} is locked ({reason}). The database was not touched: a person must assess any migration. {}",
                run.requester.mention()
            ))
            .in_thread(message::checklist_key(id)),
        );
        let phase = if no_previous {
            Phase::Failed
        } else {
            Phase::RolledBack
        };
        self.end(tx, id, phase, format!("rolled back: {reason}"));
        if run.kind == RunKind::Deploy && run.from.is_some() {
            self.teardown_idle(tx, &env, run.to, st.live);
            let s = self.envs.get_mut(&env).expect("env");
            s.previous = None;
        } else if run.kind == RunKind::Rollback {
            // The colour just left holds the bad version; it is torn down, nothing to go back to.
            let left = run.from.expect("a rollback run starts from a live colour");
            self.teardown_idle(tx, &env, left, st.live);
        }
    }

    // ---- restart ---------------------------------------------------------------------

    /// Loads state from the store at start.
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

    /// After a restart: resume or safely conclude run `id`, given what the traffic step says
    /// about the live colour. Says so in the run's thread.
    pub fn resume(&mut self, id: RunId, view: LiveView, now: DateTime<Utc>) -> Changes {
        let mut tx = Tx::new(now);
        let Some(run) = self.runs.get(&id).cloned() else {
            return tx.ch;
        };
        let env = run.env.clone();
        let thread = message::checklist_key(id);
        let say = |tx: &mut Tx, text: String| {
            tx.post(
                Post::top(
                    &env,
                    Room::Deploys,
                    format!("♻️ greenlight restarted: {text}"),
                )
                .in_thread(thread.clone()),
            );
        };
        tx.event(
            id,
            None,
            format!("resumed after restart in phase {}", run.phase.label()),
        );
        self.clamp_deadlines(&mut tx, id);
        let run = self.runs[&id].clone();
        // What the traffic step sees wins over the store.
        let seen = self.apply_view(&mut tx, &env, view, true);
        let live_name =
            |c: Option<Colour>| c.map(|c| c.to_string()).unwrap_or_else(|| "nothing".into());
        match run.phase {
            Phase::AwaitingChecklist => {
                if now >= run.checklist_expires {
                    say(
                        &mut tx,
                        format!("run {id}'s checklist expired while the bot was down."),
                    );
                    tx.ch.timers.push((now, Timer::ChecklistExpiry(id)));
                } else {
                    say(
                        &mut tx,
                        format!("run {id}'s checklist is still open; approvals so far are kept."),
                    );
                    tx.ch
                        .timers
                        .push((run.checklist_expires, Timer::ChecklistExpiry(id)));
                }
            }
            Phase::Observing | Phase::DeployingIdle | Phase::VerifyingIdle | Phase::Baseline
                if run.kind == RunKind::Deploy =>
            {
                say(&mut tx, format!(
                    "run {id} was {} when the bot stopped; live traffic was never switched, so the deploy starts again: greenlight asks which colour is live, then deploys {} to the idle one.",
                    run.phase.label(),
                    run.version
                ));
                self.start_deploy(&mut tx, id);
            }
            Phase::DeployingIdle | Phase::VerifyingIdle | Phase::Baseline => match seen {
                // A manual rollback prepares the colour that was idle when it started.
                Ok(live) if live == run.from => {
                    say(&mut tx, format!(
                        "run {id} was {} when the bot stopped; live traffic was never switched, so {} is deployed again from the start.",
                        run.phase.label(),
                        run.to
                    ));
                    self.redeploy(&mut tx, id);
                }
                other => {
                    let why = match other {
                        Ok(live) => format!(
                            "{} is live now, not {}",
                            live_name(live),
                            live_name(run.from)
                        ),
                        Err(why) => format!("greenlight cannot see which colour is live: {why}"),
                    };
                    say(
                        &mut tx,
                        format!("run {id} stopped: {why}; nothing was switched."),
                    );
                    self.end(
                        &mut tx,
                        id,
                        Phase::Failed,
                        format!("{why}; nothing switched"),
                    );
                }
            },
            Phase::Switching => match seen {
                Ok(live) if live == Some(run.to) => {
                    say(
                        &mut tx,
                        format!(
                            "run {id}'s traffic switch to {} had happened; monitoring resumes.",
                            run.to
                        ),
                    );
                    self.result_switch_done(&mut tx, id);
                }
                Ok(live) => {
                    say(&mut tx, format!(
                        "run {id}'s traffic switch to {} had not happened ({} is live); {} is deployed and verified again before a new switch.",
                        run.to,
                        live_name(live),
                        run.to
                    ));
                    if run.kind == RunKind::Deploy {
                        self.start_deploy(&mut tx, id);
                    } else {
                        self.redeploy(&mut tx, id);
                    }
                }
                Err(why) => {
                    // Whether the switch happened is unknown: nothing may be redeployed or
                    // torn down, and a person has to look.
                    let text = format!(
                        "after a restart greenlight cannot see whether run {id}'s switch to {} happened ({why}). Nothing is redeployed or torn down; {} is locked until a person checks which colour takes traffic and runs /deploy unlock {env}.",
                        run.to,
                        self.env_cfg(&env).display_name
                    );
                    say(&mut tx, text.clone());
                    self.lock_env(
                        &mut tx,
                        &env,
                        format!("run {id}'s switch state is unknown after a restart: {why}"),
                        Some(id),
                    );
                    tx.post(Post::top(
                        &env,
                        Room::Incidents,
                        format!(
                            "🚨 {}: {text} {}",
                            self.env_cfg(&env).display_name,
                            self.link(id)
                        ),
                    ));
                    self.end(
                        &mut tx,
                        id,
                        Phase::Failed,
                        format!("switch state unknown after a restart: {why}"),
                    );
                }
            },
            Phase::Monitoring => match seen {
                Ok(live) if live != Some(run.to) => {
                    // Traffic is not on the new colour: the deploy is over, and said so like a
                    // rollback (alert, lock), since the new version was live for a while.
                    let why = format!(
                        "after a restart traffic is on {} instead of {}",
                        live_name(live),
                        run.to
                    );
                    say(
                        &mut tx,
                        format!("run {id}: {why}; concluding the run as rolled back."),
                    );
                    let r = self.runs.get_mut(&id).expect("run");
                    r.reason = Some(why);
                    r.phase = Phase::RollingBack;
                    tx.touch_run(id);
                    self.rollback_done(&mut tx, id);
                }
                seen => {
                    let note = match &seen {
                        Ok(_) => String::new(),
                        Err(why) => format!(" (greenlight cannot confirm that {} is live: {why}; the measurements of {} decide)", run.to, run.to),
                    };
                    say(
                        &mut tx,
                        format!(
                            "run {id} is monitoring {} on {}; monitoring resumes{note}.",
                            run.version, run.to
                        ),
                    );
                    let interval = self.env_cfg(&env).monitor.interval;
                    if !run.success_posted {
                        tx.post(Post::top(
                            &env,
                            Room::Deploys,
                            message::deployed_monitoring(),
                        ));
                        self.runs.get_mut(&id).expect("run").success_posted = true;
                        tx.touch_run(id);
                    }
                    tx.ch.timers.push((
                        now + to_std(interval.min(std::time::Duration::from_secs(1))),
                        Timer::MonitorTick(id, run.attempt),
                    ));
                }
            },
            Phase::RollingBack => {
                if run.from.is_some() && seen.as_ref().ok() == Some(&run.from) {
                    say(
                        &mut tx,
                        format!("run {id}'s switch back had happened; completing the rollback."),
                    );
                    self.rollback_done(&mut tx, id);
                } else if let Some(from) = run.from {
                    // Getting back to safety is never blocked, not even by a traffic step that
                    // cannot be seen: the switch back says itself whether it worked.
                    say(
                        &mut tx,
                        format!("run {id} was rolling back; switching traffic back to {from} now."),
                    );
                    let r = self.runs.get_mut(&id).expect("run");
                    r.switch_back_intents += 1;
                    let attempt = r.attempt;
                    tx.touch_run(id);
                    tx.ch.actions.push(Action::SwitchBack {
                        run: id,
                        attempt,
                        env: env.clone(),
                        to: from,
                        from: run.to,
                    });
                } else {
                    self.rollback_done(&mut tx, id);
                }
            }
            _ => {}
        }
        self.finish(tx)
    }

    /// A deadline never outlives its configured length, even when the wall clock stepped back
    /// while the bot was down: each is cut to `now` plus its full length.
    fn clamp_deadlines(&mut self, tx: &mut Tx, id: RunId) {
        let env = self.runs[&id].env.clone();
        let (expiry, duration, keep_warm) = {
            let c = self.env_cfg(&env);
            (c.checklist_expiry, c.monitor.duration, c.monitor.keep_warm)
        };
        let now = tx.now;
        let run = self.runs.get_mut(&id).expect("run");
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
        let st = self.envs.get_mut(&env).expect("env");
        if let Some(u) = st.warm_until {
            let latest = now + to_std(keep_warm);
            if u > latest {
                st.warm_until = Some(latest);
                tx.touch_env(&env);
            }
        }
    }

    /// The switch happened: the environment's live colour, versions and previous version follow.
    fn result_switch_done(&mut self, tx: &mut Tx, id: RunId) {
        let run = self.runs.get_mut(&id).expect("run");
        run.switched = true;
        let (env, to, version, kind) = (run.env.clone(), run.to, run.version.clone(), run.kind);
        let from_version = run.from_version.clone();
        let st = self.envs.get_mut(&env).expect("env");
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

    fn redeploy(&mut self, tx: &mut Tx, id: RunId) {
        let run = &self.runs[&id];
        let (env, to, version) = (run.env.clone(), run.to, run.version.clone());
        self.set_phase(
            tx,
            id,
            Phase::DeployingIdle,
            format!("deploying {version} to {to} (idle) again after the restart"),
        );
        let attempt = self.bump_attempt(id);
        tx.ch.actions.push(Action::DeployIdle {
            run: id,
            attempt,
            env,
            colour: to,
            version,
        });
    }

    /// Timers to arm at start for state that outlives a restart (kept-warm teardowns).
    pub fn startup_timers(&self) -> Vec<(DateTime<Utc>, Timer)> {
        self.envs
            .iter()
            .filter_map(|(k, st)| st.warm_until.map(|u| (u, Timer::Teardown(k.clone()))))
            .collect()
    }
}
