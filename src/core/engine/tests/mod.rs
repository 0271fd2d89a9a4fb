//! Table-driven unit tests of the run engine (`run.rs`): commands, checklist reactions, timers,
//! driver results and restarts, asserted on the `Changes` each input returns. Time is always
//! passed in; a small harness persists every `Changes` as the shell would and checks that the
//! engine never changes state without reporting it.

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
    (r.text.as_str(), r.private)
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
        let mut h = H::demo();
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

// ---- the happy path ------------------------------------------------------------------------

#[test]
fn happy_path_then_a_second_deploy_that_keeps_the_old_colour_warm() {
    let mut h = H::demo();
    let r1 = RunId(1);
    let st = staging();

    // The request opens the checklist.
    let ch = h.cmd("alice", "/deploy v1.2.0 staging", wed(10, 0));
    assert_eq!(
        reply(&ch),
        (
            "Run 1: v1.2.0 → Staging requested by alice; checklist posted.",
            false
        )
    );
    assert_eq!(ch.next_run, Some(2));
    assert!(ch.actions.is_empty());
    assert_eq!(ch.timers, vec![(wed(14, 0), Timer::ChecklistExpiry(r1))]);
    assert_eq!(run_of(&ch, r1).phase, Phase::AwaitingChecklist);
    assert_eq!(env_of(&ch, &st).active_run, Some(r1));
    assert_eq!(ch.posts.len(), 3, "parent and one reply per item");
    let parent = &ch.posts[0];
    assert_eq!(parent.room, Room::Deploys);
    assert_eq!(parent.key, Some(MsgKey::Checklist(r1)));
    assert_eq!(parent.thread, None);
    assert!(
        parent
            .text
            .starts_with("📋 Pre-deployment checklist: v1.2.0 → Staging (run 1)\n"),
        "{}",
        parent.text
    );
    let reviewers = parent.text.split("Reviewers:").nth(1).expect("reviewers");
    assert!(reviewers.contains("<@bob>") && reviewers.contains("<@carol>"));
    assert!(
        !reviewers.contains("<@alice>"),
        "the requester is no reviewer"
    );
    assert!(parent.text.contains("Expires in 4h"));
    let items = [
        "⬜ 1. CI passed: build, lint, test green (0/1 from reviewers)",
        "⬜ 2. Migrations reviewed: DB changes are backwards compatible (0/1 from reviewers)",
    ];
    for (i, (p, text)) in ch.posts[1..].iter().zip(items).enumerate() {
        assert_eq!(p.key, Some(MsgKey::Item(r1, i)));
        assert_eq!(p.thread, Some(MsgKey::Checklist(r1)));
        assert_eq!(p.text, text);
        assert!(!p.edit);
    }

    // bob approves item 1: its line is edited.
    let ch = h.approve("bob", r1, 0, wed(10, 5));
    assert_eq!(ch.posts.len(), 1);
    assert_eq!(ch.posts[0].key, Some(MsgKey::Item(r1, 0)));
    assert!(ch.posts[0].edit);
    assert_eq!(
        ch.posts[0].text,
        "✅ 1. CI passed: build, lint, test green (1/1 from reviewers by bob)"
    );
    assert!(ch.actions.is_empty());
    assert_eq!(run_of(&ch, r1).phase, Phase::AwaitingChecklist);

    // bob approves item 2: the checklist is complete and the deploy starts.
    let ch = h.approve("bob", r1, 1, wed(10, 6));
    assert_eq!(
        ch.actions,
        vec![Action::Observe {
            env: st.clone(),
            run: Some((r1, 1))
        }],
        "first the traffic step is asked which colour is live"
    );
    assert!(lifecycle(&ch).is_empty());
    let ch = h.see(&ch, wed(10, 6));
    assert_eq!(lifecycle(&ch), vec!["🚀 Deploying v1.2.0 to Staging..."]);
    assert_eq!(
        ch.actions,
        vec![Action::DeployIdle {
            run: r1,
            attempt: 1,
            env: st.clone(),
            colour: Colour::Blue,
            version: "v1.2.0".into()
        }]
    );
    assert_eq!(run_of(&ch, r1).phase, Phase::DeployingIdle);
    assert!(status_msg(&ch, r1).contains("deploying v1.2.0 to blue (idle); nothing is live yet"));

    let ch = h.result(r1, 1, Outcome::DeployIdle(Ok(())), wed(10, 7));
    assert_eq!(
        ch.actions,
        vec![Action::Verify {
            run: r1,
            attempt: 1,
            env: st.clone(),
            colour: Colour::Blue
        }]
    );
    assert_eq!(run_of(&ch, r1).phase, Phase::VerifyingIdle);

    // Verified. First deploy: no baseline, the thread says the latency trigger is skipped,
    // and the switch intent is written in the same Changes as the Switch action.
    let ch = h.result(
        r1,
        1,
        Outcome::Verify(Ok("healthy; 3 smoke tests passed".into())),
        wed(10, 8),
    );
    let run = run_of(&ch, r1);
    assert_eq!(run.phase, Phase::Switching);
    assert_eq!(run.switch_intents, 1);
    assert!(!run.switched);
    assert_eq!(
        ch.actions,
        vec![Action::Switch {
            run: r1,
            attempt: 1,
            env: st.clone(),
            to: Colour::Blue,
            from: None
        }]
    );
    let status = status_msg(&ch, r1);
    assert!(status.contains("first deploy"), "{status}");
    assert!(status.contains("latency trigger is skipped"), "{status}");
    assert!(ch
        .events
        .iter()
        .any(|e| matches!(e.what, What::SwitchIntent { .. })));
    assert!(lifecycle(&ch).is_empty());

    // Switched.
    let sw = t(25, 10, 9, 0);
    let ch = h.result(r1, 1, Outcome::Switch(Ok(())), sw);
    assert_eq!(
        lifecycle(&ch),
        vec!["✅ Deployment successful. Monitoring."]
    );
    assert_eq!(ch.timers, vec![(sw + secs(4), Timer::MonitorTick(r1, 1))]);
    let env = env_of(&ch, &st);
    assert_eq!(env.live, Some(Colour::Blue));
    assert_eq!(env.blue.as_deref(), Some("v1.2.0"));
    assert_eq!(env.previous, None);
    let run = run_of(&ch, r1);
    assert_eq!(run.phase, Phase::Monitoring);
    assert!(run.switched);
    assert_eq!(run.monitor.until, Some(sw + secs(20)));

    // Monitoring: passing checks every 4s until monitor.until.
    let (ch, end) = h.monitor(r1, ch, passes(5));
    assert_eq!(end, sw + secs(20));
    assert_eq!(run_of(&ch, r1).phase, Phase::Succeeded);
    assert_eq!(env_of(&ch, &st).active_run, None);
    assert!(
        ch.timers.is_empty(),
        "nothing to keep warm on a first deploy"
    );
    assert!(ch.actions.is_empty());
    assert!(has(
        &thread_msgs(&ch, r1),
        "✅ Run 1 stable: v1.2.0 is live on Staging (5 of 5 checks passed). <@alice>"
    ));
    assert!(status_msg(&ch, r1).contains("✅ stable: v1.2.0 live on blue"));
    assert!(
        h.e.runs().next().is_none(),
        "a finished run is no longer active"
    );

    let ch = h.cmd("carol", "/deploy status staging", wed(10, 30));
    let (text, private) = reply(&ch);
    assert!(!private);
    assert!(
        text.starts_with("Staging: v1.2.0 live on blue") && text.contains("unlocked"),
        "{text}"
    );

    // A second deploy goes to the other colour, with a baseline of the live one.
    let r2 = RunId(2);
    let ch = h.cmd("bob", "/deploy v1.3.0 staging", wed(11, 0));
    let reviewers = ch.posts[0].text.split("Reviewers:").nth(1).unwrap();
    assert!(reviewers.contains("<@alice>") && reviewers.contains("<@carol>"));
    assert!(!reviewers.contains("<@bob>"));
    let ch = h.approve_all(r2, "alice", wed(11, 1));
    let ch = h.see(&ch, wed(11, 1));
    assert_eq!(
        ch.actions,
        vec![Action::DeployIdle {
            run: r2,
            attempt: 1,
            env: st.clone(),
            colour: Colour::Green,
            version: "v1.3.0".into()
        }]
    );
    assert!(status_msg(&ch, r2).contains("blue stays live"));
    let ch = h.result(r2, 1, Outcome::DeployIdle(Ok(())), wed(11, 2));
    assert!(matches!(
        ch.actions.as_slice(),
        [Action::Verify {
            colour: Colour::Green,
            ..
        }]
    ));
    let ch = h.result(r2, 1, Outcome::Verify(Ok("ok".into())), wed(11, 3));
    assert_eq!(
        ch.actions,
        vec![Action::Baseline {
            run: r2,
            attempt: 1,
            env: st.clone(),
            colour: Colour::Blue
        }]
    );
    assert_eq!(run_of(&ch, r2).phase, Phase::Baseline);
    assert_eq!(run_of(&ch, r2).switch_intents, 0);
    let ch = h.result(r2, 1, Outcome::Baseline(data(300.0, 0.0, 0.08)), wed(11, 4));
    assert!(status_msg(&ch, r2)
        .contains("📏 baseline from blue: 300 requests, error rate 0.0%, p99 80 ms"));
    assert_eq!(run_of(&ch, r2).baseline_p99, Some(0.08));
    assert_eq!(run_of(&ch, r2).switch_intents, 1);
    assert_eq!(
        ch.actions,
        vec![Action::Switch {
            run: r2,
            attempt: 1,
            env: st.clone(),
            to: Colour::Green,
            from: Some(Colour::Blue)
        }]
    );
    let ch = h.result(r2, 1, Outcome::Switch(Ok(())), wed(11, 5));
    let env = env_of(&ch, &st);
    assert_eq!(env.live, Some(Colour::Green));
    assert_eq!(env.green.as_deref(), Some("v1.3.0"));
    assert_eq!(env.blue.as_deref(), Some("v1.2.0"));
    assert_eq!(env.previous.as_deref(), Some("v1.2.0"));
    let (ch, end) = h.monitor(r2, ch, passes(5));
    assert_eq!(run_of(&ch, r2).phase, Phase::Succeeded);
    let until = end + mins(10);
    assert_eq!(ch.timers, vec![(until, Timer::Teardown(st.clone()))]);
    assert_eq!(env_of(&ch, &st).warm_until, Some(until));
    assert!(status_msg(&ch, r2).contains("blue (v1.2.0) is idle, kept warm until"));

    let ch = h.cmd("carol", "/deploy status staging", wed(11, 10));
    let (text, _) = reply(&ch);
    assert!(
        text.starts_with("Staging: v1.3.0 live on green; blue idle with v1.2.0 (kept warm until"),
        "{text}"
    );

    // The kept-warm colour is torn down when its time is up, not before.
    assert!(nothing(
        &h.timer(Timer::Teardown(st.clone()), until - secs(1))
    ));
    let ch = h.timer(Timer::Teardown(st.clone()), until);
    assert_eq!(
        ch.actions,
        vec![Action::Teardown {
            env: st.clone(),
            colour: Colour::Blue
        }]
    );
    assert_eq!(env_of(&ch, &st).blue, None);
    assert_eq!(env_of(&ch, &st).warm_until, None);
}

#[test]
fn an_empty_checklist_deploys_at_once() {
    let mut qa = build::env("qa");
    qa.display_name = "QA".into();
    let mut h = H::new(build::rules(&[("alice", &["deployers"])], vec![qa]));
    let ch = h.cmd("alice", "/deploy 1a2b3c4 qa", wed(10, 0));
    assert!(reply(&ch).0.contains("(empty: deploying now)"));
    let ch = h.see(&ch, wed(10, 0));
    assert_eq!(lifecycle(&ch), vec!["🚀 Deploying 1a2b3c4 to QA..."]);
    assert!(matches!(
        ch.actions.as_slice(),
        [Action::DeployIdle { attempt: 1, .. }]
    ));
}

// ---- checklist reactions -------------------------------------------------------------------

#[derive(Debug)]
enum Expect {
    /// The item's line is edited to this text.
    Line(usize, &'static str),
    /// A thread reply says why the reaction does not count.
    NotCounted(&'static str),
    /// Nothing changes and nothing is said.
    Silent,
    /// Nothing is said, but the run keeps a note (which emoji, which refusal was told).
    Noted,
    /// The run is vetoed.
    Vetoed,
    /// The run is over: only a reply to the reactor.
    Over,
}

#[test]
fn reactions_count_only_from_eligible_reviewers_who_did_not_request() {
    let mut h = H::demo();
    let id = h.request("alice", "v1.2.0", "staging", wed(10, 0));
    let parent = MsgKey::Checklist(id).to_string();
    let item = |i| MsgKey::Item(id, i).to_string();
    let ci = "CI passed: build, lint, test green";
    let rows: Vec<(&str, String, &str, bool, Expect)> = vec![
        (
            "alice",
            item(0),
            "white_check_mark",
            true,
            Expect::NotCounted("the requester cannot approve their own run"),
        ),
        (
            "alice",
            item(1),
            "+1",
            true,
            Expect::NotCounted("the requester cannot approve their own run"),
        ),
        // The same refusal again is not repeated: it was told once.
        ("alice", item(1), "white_check_mark", true, Expect::Noted),
        (
            "mallory",
            item(0),
            "white_check_mark",
            true,
            Expect::NotCounted("it needs a member of reviewers"),
        ),
        (
            "bob",
            parent.clone(),
            "white_check_mark",
            true,
            Expect::NotCounted("approve each item's reply in the thread"),
        ),
        ("bob", item(0), "tada", true, Expect::Silent),
        (
            "bob",
            "run-1/status".into(),
            "white_check_mark",
            true,
            Expect::Silent,
        ),
        (
            "bob",
            "hello".into(),
            "white_check_mark",
            true,
            Expect::Silent,
        ),
        (
            "carol",
            item(0),
            "white_check_mark",
            true,
            Expect::Line(
                0,
                "✅ 1. CI passed: build, lint, test green (1/1 from reviewers by carol)",
            ),
        ),
        // 👍 as well, then ✅ removed: 👍 still approves (an alias never withdraws).
        ("carol", item(0), "thumbsup", true, Expect::Noted),
        ("carol", item(0), "white_check_mark", false, Expect::Noted),
        (
            "carol",
            item(0),
            "+1",
            false,
            Expect::Line(
                0,
                "⬜ 1. CI passed: build, lint, test green (0/1 from reviewers)",
            ),
        ),
        ("bob", item(0), "white_check_mark", false, Expect::Silent),
        (
            "bob",
            item(0),
            "+1::skin-tone-3",
            true,
            Expect::Line(
                0,
                "✅ 1. CI passed: build, lint, test green (1/1 from reviewers by bob)",
            ),
        ),
        (
            "alice",
            parent.clone(),
            "x",
            true,
            Expect::NotCounted("the requester cannot veto their own run"),
        ),
        (
            "mallory",
            item(1),
            "x",
            true,
            Expect::NotCounted("only members of reviewers may veto here"),
        ),
        ("bob", item(1), "x", false, Expect::Silent),
        ("bob", item(1), "x", true, Expect::Vetoed),
        ("carol", item(1), "white_check_mark", true, Expect::Over),
        ("carol", item(1), "white_check_mark", false, Expect::Silent),
    ];
    for (n, (who, key, emoji, added, expect)) in rows.into_iter().enumerate() {
        let now = wed(10, 1) + mins(n as i64);
        let ch = h.react(who, &key, emoji, added, now);
        let ctx = format!("row {n}: {who} {emoji} on {key} (added {added}) -> {expect:?}");
        match expect {
            Expect::Line(i, text) => {
                assert_eq!(ch.posts.len(), 1, "{ctx}");
                let p = &ch.posts[0];
                assert_eq!(p.key, Some(MsgKey::Item(id, i)), "{ctx}");
                assert_eq!(p.thread, Some(MsgKey::Checklist(id)), "{ctx}");
                assert!(p.edit, "{ctx}");
                assert_eq!(p.text, text, "{ctx}");
                assert_eq!(run_of(&ch, id).phase, Phase::AwaitingChecklist, "{ctx}");
            }
            Expect::NotCounted(why) => {
                let msgs = thread_msgs(&ch, id);
                assert_eq!(msgs.len(), 1, "{ctx}: {msgs:?}");
                assert!(msgs[0].contains(why), "{ctx}: {}", msgs[0]);
                assert!(msgs[0].starts_with(who), "{ctx}: names the reactor");
                assert_eq!(run_of(&ch, id).phase, Phase::AwaitingChecklist, "{ctx}");
                assert!(ch.actions.is_empty(), "{ctx}");
            }
            Expect::Silent => assert!(nothing(&ch), "{ctx}: {ch:#?}"),
            Expect::Noted => {
                assert!(
                    ch.posts.is_empty() && ch.actions.is_empty(),
                    "{ctx}: {ch:#?}"
                );
                assert_eq!(run_of(&ch, id).phase, Phase::AwaitingChecklist, "{ctx}");
            }
            Expect::Vetoed => {
                assert_eq!(run_of(&ch, id).phase, Phase::Vetoed, "{ctx}");
                assert_eq!(env_of(&ch, &staging()).active_run, None, "{ctx}");
                let msgs = thread_msgs(&ch, id);
                assert_eq!(msgs.len(), 1, "{ctx}");
                assert!(msgs[0].starts_with("🛑 Run 1 vetoed by <@bob>"), "{ctx}");
                assert!(
                    msgs[0].contains("<@alice>"),
                    "{ctx}: mentions the requester"
                );
                assert!(ch.actions.is_empty(), "{ctx}");
            }
            Expect::Over => {
                assert!(ch.posts.is_empty() && ch.runs.is_empty(), "{ctx}");
                assert!(reply(&ch).0.contains("run 1 is over"), "{ctx}");
            }
        }
    }
    assert_eq!(h.run(id).checklist.items[0].text, ci);
    assert_eq!(h.run(id).outcome.as_deref(), Some("vetoed by bob"));
    // Deploys are possible again once the veto ended the run.
    h.request("alice", "v1.2.1", "staging", wed(12, 0));
}

#[test]
fn vetoes_from_eligible_reviewers_on_the_parent_or_an_item_are_final() {
    // (who, on the parent?, counts)
    let rows = [
        ("bob", true, true),
        ("bob", false, true),
        ("carol", true, true),
        ("carol", false, true),
        ("alice", true, false),
        ("mallory", true, false),
    ];
    for (who, on_parent, counts) in rows {
        let mut h = H::demo();
        let id = h.request("alice", "v1.2.0", "staging", wed(10, 0));
        h.approve("bob", id, 0, wed(10, 1));
        let key = if on_parent {
            MsgKey::Checklist(id).to_string()
        } else {
            MsgKey::Item(id, 0).to_string()
        };
        let ch = h.react(who, &key, "x", true, wed(10, 2));
        let phase = run_of(&ch, id).phase;
        assert_eq!(
            phase == Phase::Vetoed,
            counts,
            "{who} on parent={on_parent}"
        );
        if counts {
            // Final: a later approval of the remaining item does nothing but say so.
            let ch = h.approve("carol", id, 1, wed(10, 3));
            assert!(ch.actions.is_empty());
            assert!(reply(&ch).0.contains("is over"));
        }
    }
}

#[test]
fn a_closed_checklist_says_so_when_someone_reacts() {
    let mut h = H::demo();
    let id = h.request("alice", "v1.2.0", "staging", wed(10, 0));
    let ch = h.approve_all(id, "bob", wed(10, 1));
    h.see(&ch, wed(10, 1));
    let ch = h.approve("carol", id, 0, wed(10, 2));
    let msgs = thread_msgs(&ch, id);
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].contains("the checklist of run 1 is closed (the run is deploying idle)"));
    // Only the note that carol was told changed: no step, no new phase.
    assert!(ch.actions.is_empty());
    assert_eq!(run_of(&ch, id).phase, Phase::DeployingIdle);
    assert_eq!(run_of(&ch, id).told.len(), 1);
    // Withdrawing after the checklist closed changes nothing.
    assert!(nothing(&h.react(
        "bob",
        &MsgKey::Item(id, 0).to_string(),
        "white_check_mark",
        false,
        wed(10, 3)
    )));
}

#[test]
fn quorum_and_item_groups_from_an_inline_config() {
    let mut qa = build::env("qa");
    qa.display_name = "QA".into();
    qa.checklist = vec![
        build::item("Two eyes", "reviewers", 2),
        build::item("Migrations reviewed", "dba", 1),
    ];
    let mut h = H::new(build::rules(
        &[
            ("alice", &["deployers", "reviewers"]),
            ("bob", &["deployers", "reviewers"]),
            ("carol", &["reviewers"]),
            ("dave", &["dba"]),
        ],
        vec![qa],
    ));
    let id = h.request("alice", "v2.0.0", "qa", wed(10, 0));
    let ch = h.approve("bob", id, 0, wed(10, 1));
    assert_eq!(
        ch.posts[0].text,
        "⬜ 1. Two eyes (1/2 from reviewers by bob)"
    );
    let ch = h.approve("dave", id, 0, wed(10, 2));
    assert!(thread_msgs(&ch, id)[0].contains("it needs a member of reviewers"));
    let ch = h.approve("carol", id, 1, wed(10, 3));
    assert!(thread_msgs(&ch, id)[0].contains("it needs a member of dba"));
    let ch = h.approve("carol", id, 0, wed(10, 4));
    assert_eq!(
        ch.posts[0].text,
        "✅ 1. Two eyes (2/2 from reviewers by bob, carol)"
    );
    assert!(ch.actions.is_empty(), "the dba item is still open");
    let ch = h.approve("dave", id, 1, wed(10, 5));
    assert!(matches!(ch.actions.as_slice(), [Action::Observe { .. }]));
    assert_eq!(
        h.run(id).checklist.approvers(),
        vec![user("bob"), user("carol"), user("dave")]
    );
}

// ---- commands: lock, one run at a time, malformed input, why-not -----------------------------

#[test]
fn lock_and_unlock() {
    let mut h = H::demo();
    // (who, command, what is said, refused, locked afterwards)
    let rows: Vec<(&str, &str, String, bool, bool)> = vec![
        (
            "carol",
            "/deploy lock staging db maintenance",
            "carol may not lock Staging: that needs the deployers group".into(),
            true,
            false,
        ),
        (
            "bob",
            "/deploy unlock staging",
            "Staging is not locked".into(),
            true,
            false,
        ),
        (
            "bob",
            "/deploy lock staging db maintenance",
            "🔒 Staging locked by <@bob>: db maintenance".into(),
            false,
            true,
        ),
        (
            "alice",
            "/deploy v1.2.0 staging",
            "Refused: Staging is locked by bob since 2026-11-25 10:02 UTC: db maintenance (/deploy unlock staging to lift it)".into(),
            true,
            true,
        ),
        (
            "alice",
            "/deploy v1.2.0 staging --force \"hotfix\"",
            "Refused: Staging is locked by bob".into(),
            true,
            true,
        ),
        (
            "alice",
            "/deploy lock staging again",
            "Staging is already locked by bob: db maintenance".into(),
            true,
            true,
        ),
        (
            "carol",
            "/deploy unlock staging",
            "carol may not unlock Staging".into(),
            true,
            true,
        ),
        (
            "alice",
            "/deploy unlock staging",
            "🔓 Staging unlocked by <@alice> (was locked by bob: db maintenance)".into(),
            false,
            false,
        ),
        (
            "alice",
            "/deploy v1.2.0 staging",
            "Run 1: v1.2.0 → Staging requested by alice".into(),
            false,
            false,
        ),
    ];
    for (n, (who, text, fragment, private, locked)) in rows.into_iter().enumerate() {
        let now = wed(10, n as u32);
        let before = h.next_run;
        let ch = h.cmd(who, text, now);
        let (got, got_private) = reply(&ch);
        let ctx = format!("row {n}: {who} {text}");
        let announced = !private && text.contains("lock");
        assert!(got.contains(&fragment) || announced, "{ctx}: {got}");
        assert_eq!(got_private, private || announced, "{ctx}");
        assert_eq!(h.env(&staging()).lock.is_some(), locked, "{ctx}");
        if private && !text.contains("lock") || ch.envs.is_empty() {
            assert!(
                !got.contains("Usage:"),
                "{ctx}: a refusal is not a usage error"
            );
        }
        if ch.envs.is_empty() && ch.runs.is_empty() {
            assert!(ch.posts.is_empty(), "{ctx}: refusals change nothing");
            assert_eq!(h.next_run, before, "{ctx}");
        } else if text.contains("lock") {
            // Lock and unlock are announced once in the channel; the person gets a short
            // private confirmation, not a second copy.
            assert_eq!(lifecycle(&ch).len(), 1, "{ctx}");
            assert!(lifecycle(&ch)[0].contains(&fragment), "{ctx}");
            assert!(
                got_private && got.contains("announced in the deploys channel"),
                "{ctx}: {got}"
            );
        }
    }
}

#[test]
fn one_active_run_per_environment() {
    let mut h = H::demo();
    h.request("alice", "v1.2.0", "staging", wed(10, 0));
    let ch = h.cmd("bob", "/deploy v1.3.0 staging", wed(10, 1));
    let (text, private) = reply(&ch);
    assert!(private);
    assert!(
        text.contains("run 1 is already active on Staging (awaiting checklist); one run at a time per environment"),
        "{text}"
    );
    assert!(
        !text.contains("Usage:"),
        "a well-formed command refused: no usage line"
    );
    assert!(ch.posts.is_empty() && ch.runs.is_empty());
    assert_eq!(h.next_run, 2);
    // Another environment is independent.
    let id = h.request("bob", "v1.3.0", "prod", wed(10, 2));
    assert_eq!(id, RunId(2), "run numbers are global");
}

#[test]
fn malformed_input_is_refused_privately_with_the_usage_and_creates_nothing() {
    // Rejected by the parser.
    for (text, fragment) in [
        ("/deploy latest staging", "latest"),
        ("/deploy v1.2.0", "missing environment"),
        ("/deploy v1.2.0 staging --force", "--force needs a value"),
        ("/deploy cancel abc", "is not a run number"),
        ("/deploy v1.2.0 stag/ing", "invalid environment name"),
    ] {
        let e = command::parse(text).unwrap().unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains(fragment) && s.contains("Usage: /"),
            "{text}: {s}"
        );
    }
    // Rejected by the engine.
    let rows = [
        (
            "/deploy v1.2.0 nowhere",
            "unknown environment \"nowhere\" (known: prod, staging). Usage: /deploy <version> <env>",
        ),
        ("/deploy status nowhere", "unknown environment \"nowhere\""),
        ("/deploy lock nowhere reason", "unknown environment \"nowhere\""),
        ("/deploy why-not v1.2.0 nowhere", "unknown environment \"nowhere\""),
        ("/rollback nowhere", "unknown environment \"nowhere\" (known: prod, staging). Usage: /rollback"),
        ("/deploy cancel 99", "run 99 is not active"),
        (
            "/deploy v1.2.0 staging --service api",
            "Staging has no services configured, so --service api is not valid",
        ),
        ("/rollback staging", "nothing to roll back to: Staging has no earlier version"),
    ];
    let mut h = H::demo();
    for (n, (text, fragment)) in rows.into_iter().enumerate() {
        let ch = h.cmd("alice", text, wed(10, n as u32));
        let (got, private) = reply(&ch);
        assert!(private, "{text}");
        assert!(got.contains(fragment), "{text}: {got}");
        // Malformed input carries the usage; a well-formed command that is refused does not.
        let malformed = fragment.contains("unknown environment");
        assert_eq!(got.contains("Usage: /"), malformed, "{text}: {got}");
        assert!(
            ch.posts.is_empty() && ch.runs.is_empty() && ch.envs.is_empty(),
            "{text}"
        );
        assert!(
            ch.actions.is_empty() && ch.timers.is_empty() && ch.next_run.is_none(),
            "{text}"
        );
    }
    assert_eq!(h.e.next_run(), 1);
    assert!(h.runs.is_empty());
}

#[test]
fn help_is_private_and_complete() {
    let mut h = H::demo();
    let ch = h.cmd("carol", "/deploy help", wed(10, 0));
    assert_eq!(reply(&ch), (command::help_text().as_str(), true));
}

#[test]
fn why_not_and_dry_run_list_every_blocker_and_create_nothing() {
    let mut h = H::demo();
    let active = h.request("alice", "v1.2.0", "prod", thu(10, 0));
    h.cmd("bob", "/deploy lock prod incident INC-7", thu(10, 5));
    let now = fri(17, 30);
    for text in [
        "/deploy why-not v1.3.0 prod",
        "/deploy v1.3.0 prod --dry-run",
    ] {
        let before = (h.next_run, h.runs.clone(), h.envs.clone());
        let ch = h.cmd("bob", text, now);
        let (got, private) = reply(&ch);
        assert!(!private, "{text}");
        assert!(
            got.starts_with("v1.3.0 → Production would be refused now, because:"),
            "{got}"
        );
        for blocker in [
            "\n• Production is locked by bob since 2026-11-26 10:05 UTC: incident INC-7",
            &format!("\n• run {active} is already active on Production (awaiting checklist)"),
            "\n• Production is frozen: \"No Friday deploys\" (Fri 2026-11-27 17:00 until Mon 2026-11-30 00:00 UTC)",
        ] {
            assert!(got.contains(blocker), "{text}: missing {blocker:?} in {got}");
        }
        assert!(got.contains("the checklist (5 items) needs approval by reviewers"));
        assert_eq!(
            text.contains("--dry-run"),
            got.contains("Dry run: no run created"),
            "{got}"
        );
        assert!(ch.posts.is_empty() && ch.runs.is_empty() && ch.envs.is_empty());
        assert!(ch.actions.is_empty() && ch.timers.is_empty() && ch.next_run.is_none());
        assert_eq!(before, (h.next_run, h.runs.clone(), h.envs.clone()));
    }
    // A clear path says so, and a dry run lists the steps.
    let ch = h.cmd("alice", "/deploy v1.2.0 staging --dry-run", wed(10, 0));
    let (got, _) = reply(&ch);
    assert!(
        got.starts_with("Nothing stops v1.2.0 → Staging now."),
        "{got}"
    );
    for step in [
        "1. open the checklist thread (2 items, expires after 4h)",
        "ask the traffic step which colour is live, then deploy v1.2.0 to the idle one (blue today; nothing is live)",
        "smoke tests: login/auth works, main dashboard loads, checkout works",
        "first deploy: latency trigger skipped",
        "monitor for 20s every 4s",
    ] {
        assert!(got.contains(step), "missing {step:?} in {got}");
    }
    assert!(ch.runs.is_empty() && ch.next_run.is_none());
    // Someone who may not deploy is told so.
    let ch = h.cmd("carol", "/deploy why-not v1.2.0 staging", wed(10, 0));
    assert!(reply(&ch).0.contains("carol may not deploy to Staging"));
}

// ---- freezes -------------------------------------------------------------------------------

#[test]
fn freeze_at_request_time() {
    // (when, who, with --force, accepted, reply fragments)
    type Row = (DateTime<Utc>, &'static str, bool, bool, Vec<&'static str>);
    let rows: Vec<Row> = vec![
        (
            fri(17, 30),
            "alice",
            false,
            false,
            vec![
                "No Friday deploys",
                "until Mon 2026-11-30 00:00 UTC",
                "members of break-glass may pass it with --force",
            ],
        ),
        (
            fri(17, 30),
            "bob",
            true,
            false,
            vec![
                "No Friday deploys",
                "--force was refused: bob is not in the break-glass group",
            ],
        ),
        (
            fri(17, 30),
            "alice",
            true,
            true,
            vec!["Run 1: v1.2.0 → Production"],
        ),
        (
            fri(16, 59),
            "alice",
            false,
            true,
            vec!["Run 1: v1.2.0 → Production"],
        ),
        (fri(17, 0), "bob", false, false, vec!["No Friday deploys"]),
        (
            t(29, 23, 59, 59),
            "bob",
            false,
            false,
            vec!["No Friday deploys"],
        ),
        (t(30, 0, 0, 0), "bob", false, true, vec!["Run 1"]),
    ];
    for (now, who, force, accepted, fragments) in rows {
        let mut h = H::demo();
        let text = if force {
            "/deploy v1.2.0 prod --force \"hotfix INC-9\""
        } else {
            "/deploy v1.2.0 prod"
        };
        let ch = h.cmd(who, text, now);
        let ctx = format!("{who} `{text}` at {now}");
        let (got, private) = reply(&ch);
        assert_eq!(!private, accepted, "{ctx}: {got}");
        for f in fragments {
            assert!(got.contains(f), "{ctx}: missing {f:?} in {got}");
        }
        if !accepted {
            assert!(
                got.starts_with("Refused: ") && !got.contains("Usage:"),
                "{ctx}"
            );
            assert!(ch.posts.is_empty() && ch.runs.is_empty(), "{ctx}");
            assert_eq!(h.next_run, 1, "{ctx}");
            continue;
        }
        let run = run_of(&ch, RunId(1));
        let forced = force && now == fri(17, 30);
        assert_eq!(run.force.is_some(), forced, "{ctx}");
        let announce = in_room(&ch, Room::Announce);
        if forced {
            let text = "⚠️ Break-glass: <@alice> forced run 1 (v1.2.0 → Production) past freeze \"No Friday deploys\" (Fri 2026-11-27 17:00 until Mon 2026-11-30 00:00 UTC). Reason: hotfix INC-9";
            assert_eq!(announce.len(), 1, "{ctx}");
            assert_eq!(announce[0].text, text, "{ctx}");
            assert!(
                lifecycle(&ch).contains(&text),
                "{ctx}: also in the deploys room"
            );
            assert!(ch.posts[2].text.contains("(break-glass --force)"), "{ctx}");
            assert!(ch
                .events
                .iter()
                .any(|e| matches!(e.what, What::ForcedPastFreeze { .. })));
        } else {
            assert!(announce.is_empty(), "{ctx}");
        }
    }
}

#[test]
fn freeze_rechecked_at_checklist_completion_and_before_the_switch() {
    // A freeze that opens while the checklist is open stops the run when it completes.
    let mut h = H::demo();
    let id = h.request("alice", "v1.2.0", "prod", fri(16, 50));
    for i in 0..4 {
        h.approve("bob", id, i, fri(16, 55));
    }
    let ch = h.approve("carol", id, 4, fri(17, 5));
    assert_eq!(run_of(&ch, id).phase, Phase::Rejected);
    assert!(ch.actions.is_empty());
    assert!(lifecycle(&ch).is_empty(), "no 🚀: nothing was deployed");
    assert_eq!(env_of(&ch, &prod()).active_run, None);
    let msgs = thread_msgs(&ch, id);
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        msgs[0],
        "🧊 Run 1 stopped: Production is frozen by \"No Friday deploys\" (Fri 2026-11-27 17:00 until Mon 2026-11-30 00:00 UTC). Nothing was deployed. <@alice>"
    );

    // A freeze that opens between verification and the switch fails the run before it:
    // on a first deploy (no baseline) and on a later one (after the baseline).
    for second in [false, true] {
        let mut h = H::demo();
        if second {
            h.deploy_stable("alice", "bob", "v1.1.0", "prod", thu(10, 0));
        }
        let id = h.request("alice", "v1.2.0", "prod", fri(16, 40));
        let ch = h.approve_all(id, "bob", fri(16, 45));
        let ch = h.drive(id, ch, fri(16, 50), Phase::VerifyingIdle);
        let verify_at = if second { fri(16, 55) } else { fri(17, 1) };
        let (_, attempt, o) = answer_ok(&ch.actions[0]);
        let mut ch = h.result(id, attempt, o, verify_at);
        if second {
            assert!(matches!(ch.actions.as_slice(), [Action::Baseline { .. }]));
            ch = h.result(id, attempt, Outcome::Baseline(healthy()), fri(17, 1));
        }
        let to = if second { Colour::Green } else { Colour::Blue };
        let run = run_of(&ch, id);
        assert_eq!(run.phase, Phase::Failed, "second={second}");
        assert_eq!(run.switch_intents, 0);
        assert_eq!(
            ch.actions,
            vec![Action::Teardown {
                env: prod(),
                colour: to
            }],
            "no Switch, only the idle colour torn down"
        );
        let live = if second {
            "blue stays live."
        } else {
            "nothing was live before this deploy."
        };
        assert_eq!(
            lifecycle(&ch),
            vec![format!("❌ Deployment failed. Reason: freeze \"No Friday deploys\" (Fri 2026-11-27 17:00 until Mon 2026-11-30 00:00 UTC) opened before the traffic switch. Live traffic was never switched: {live}")]
        );
        let env = env_of(&ch, &prod());
        assert_eq!(env.live, if second { Some(Colour::Blue) } else { None });
        assert_eq!(env.active_run, None);
        assert_eq!(env.lock, None, "a stopped deploy locks nothing");
    }

    // A forced run passes the re-checks, and is switched and monitored inside the freeze.
    let mut h = H::demo();
    h.cmd(
        "alice",
        "/deploy v1.2.0 prod --force \"hotfix INC-9\"",
        fri(17, 30),
    );
    let id = RunId(1);
    let ch = h.approve_all(id, "bob", fri(17, 40));
    let ch = h.see(&ch, fri(17, 40));
    assert_eq!(lifecycle(&ch), vec!["🚀 Deploying v1.2.0 to Production..."]);
    let ch = h.drive(id, ch, fri(18, 0), Phase::Monitoring);
    assert_eq!(
        lifecycle(&ch),
        vec!["✅ Deployment successful. Monitoring."]
    );
    assert_eq!(h.run(id).switch_intents, 1);
    h.monitor(id, ch, passes(6));
    assert_eq!(h.run(id).phase, Phase::Succeeded);
}

// ---- rollback ------------------------------------------------------------------------------

#[test]
fn rollback_triggers_during_monitoring() {
    // (check, reason in the ❌ message)
    let rows: Vec<(Check, &str)> = vec![
        (
            (data(200.0, 0.5, 0.1), Some(Ok(()))),
            "error rate 50.0% is above the 1.0% threshold (200 requests)",
        ),
        (
            (data(200.0, 0.0, 0.5), Some(Ok(()))),
            "p99 latency 500 ms is more than 200% above the baseline 100 ms (limit 300 ms)",
        ),
        (
            (
                healthy(),
                Some(Err("checkout works: POST /checkout answered 500".into())),
            ),
            "core business flow broken: checkout works: POST /checkout answered 500",
        ),
        (
            (
                no_data(),
                Some(Err("checkout works: connection refused".into())),
            ),
            "core business flow broken: checkout works: connection refused",
        ),
    ];
    for (check, reason) in rows {
        let (mut h, id, ch, _) = H::second_deploy_in(Phase::Monitoring);
        assert_eq!(h.run(id).baseline_p99, Some(0.1));
        let (ch, _) = h.monitor(id, ch, vec![pass(), check]);
        let run = run_of(&ch, id);
        assert_eq!(run.phase, Phase::RollingBack, "{reason}");
        assert_eq!(run.switch_back_intents, 1);
        assert_eq!(
            lifecycle(&ch),
            vec![format!(
                "❌ Deployment failed. Rolling back. Reason: {reason}"
            )]
        );
        assert!(status_msg(&ch, id).contains(&format!("✖ check 2: {reason}")));
        assert_eq!(
            ch.actions,
            vec![Action::SwitchBack {
                run: id,
                attempt: 1,
                env: staging(),
                to: Colour::Blue,
                from: Colour::Green
            }]
        );
        let now = wed(12, 0);
        let ch = h.result(id, 1, Outcome::SwitchBack(Ok(())), now);
        let run = run_of(&ch, id);
        assert_eq!(run.phase, Phase::RolledBack);
        let incidents = in_room(&ch, Room::Incidents);
        assert_eq!(incidents.len(), 1);
        let alert = &incidents[0].text;
        for f in [
            "🚨 Staging: rolled back v1.3.0",
            "(run 2)",
            reason,
            "traffic is on blue (v1.2.0)",
            "Requested by bob; approved by alice",
            "locked until someone runs /deploy unlock staging",
            "The database was not touched",
            "http://127.0.0.1:8080/runs/2",
        ] {
            assert!(alert.contains(f), "missing {f:?} in {alert}");
        }
        let env = env_of(&ch, &staging());
        assert_eq!(env.live, Some(Colour::Blue));
        assert_eq!(env.blue.as_deref(), Some("v1.2.0"));
        assert_eq!(env.green, None);
        assert_eq!(env.active_run, None);
        let lock = env.lock.as_ref().expect("locked");
        assert_eq!(lock.run, Some(id));
        assert!(lock.reason.contains("rollback of v1.3.0 (run 2)") && lock.reason.contains(reason));
        assert_eq!(
            ch.actions,
            vec![Action::Teardown {
                env: staging(),
                colour: Colour::Green
            }]
        );
        assert!(has(&thread_msgs(&ch, id), "⏪ Run 2 rolled back"));
        // The lock holds new deploys back until someone unlocks.
        let ch = h.cmd("alice", "/deploy v1.3.1 staging", now + mins(1));
        assert!(reply(&ch).0.contains("Staging is locked by greenlight"));
        h.cmd("alice", "/deploy unlock staging", now + mins(2));
        h.request("alice", "v1.3.1", "staging", now + mins(3));
    }
}

#[test]
fn a_breach_on_a_first_deploy_has_nothing_to_switch_back_to() {
    let mut h = H::demo();
    let (id, ch) = h.deploy_to_monitoring("alice", "bob", "v1.2.0", "staging", wed(10, 0));
    let (ch, _) = h.monitor(id, ch, vec![(data(100.0, 0.2, 0.1), None)]);
    let run = run_of(&ch, id);
    assert_eq!(run.phase, Phase::Failed);
    assert!(
        ch.actions.is_empty(),
        "no SwitchBack and no teardown of the live colour"
    );
    assert!(lifecycle(&ch)[0]
        .starts_with("❌ Deployment failed. Rolling back. Reason: error rate 20.0%"));
    let alert = &in_room(&ch, Room::Incidents)[0].text;
    assert!(alert.contains("failed first deploy of v1.2.0"), "{alert}");
    let env = env_of(&ch, &staging());
    assert_eq!(env.live, Some(Colour::Blue));
    assert!(env.lock.is_some());
}

#[test]
fn no_data_is_never_a_pass() {
    // (checks, final phase)
    let rows: Vec<(Vec<Check>, Phase)> = vec![
        (vec![(no_data(), None); 5], Phase::Unverified),
        (
            vec![pass(), pass(), pass(), pass(), (no_data(), Some(Ok(())))],
            Phase::Unverified,
        ),
        (
            vec![
                (no_data(), None),
                (no_data(), None),
                (no_data(), None),
                pass(),
                pass(),
            ],
            Phase::Unverified,
        ),
        (vec![(data(3.0, 0.0, 0.1), None); 5], Phase::Unverified),
        (
            vec![(no_data(), None), pass(), pass(), pass(), pass()],
            Phase::Succeeded,
        ),
    ];
    for (n, (checks, phase)) in rows.into_iter().enumerate() {
        let (mut h, id, ch, _) = H::second_deploy_in(Phase::Monitoring);
        let first_inconclusive = !matches!(checks[0].0, Sample::Data(ref m) if m.requests >= 20.0);
        let mut ch = ch;
        let mut statuses = Vec::new();
        for c in checks {
            let (next, _) = h.monitor(id, ch, vec![c]);
            statuses.push(status_msg(&next, id));
            ch = next;
        }
        if first_inconclusive {
            assert!(
                statuses[0].contains("⚠️ check 1: inconclusive (")
                    && statuses[0].contains("no data is never a pass"),
                "row {n}: {}",
                statuses[0]
            );
        }
        let run = run_of(&ch, id);
        assert_eq!(run.phase, phase, "row {n}");
        // Either way the old colour is kept warm and traffic stays on the new one.
        assert!(
            matches!(ch.timers.as_slice(), [(_, Timer::Teardown(_))]),
            "row {n}"
        );
        assert_eq!(env_of(&ch, &staging()).live, Some(Colour::Green));
        if phase == Phase::Unverified {
            let msgs = thread_msgs(&ch, id);
            assert!(has(&msgs, "was inconclusive"), "row {n}: {msgs:?}");
            assert!(has(&msgs, "so it is not marked stable"), "row {n}");
            assert!(!has(&msgs, "stable: v1.3.0"), "row {n}");
        }
    }
}

#[test]
fn manual_rollback() {
    // During monitoring: the same path as an automatic rollback.
    let (mut h, id, _, now) = H::second_deploy_in(Phase::Monitoring);
    let ch = h.cmd("carol", "/rollback staging", now);
    assert!(reply(&ch).0.contains("carol may not roll back Staging"));
    let ch = h.cmd("bob", "/rollback staging error budget burning", now);
    assert_eq!(reply(&ch), ("Rolling back run 2.", false));
    assert_eq!(
        lifecycle(&ch),
        vec!["❌ Deployment failed. Rolling back. Reason: manual rollback by bob: error budget burning"]
    );
    assert!(matches!(
        ch.actions.as_slice(),
        [Action::SwitchBack {
            to: Colour::Blue,
            from: Colour::Green,
            ..
        }]
    ));
    let ch = h.cmd("bob", "/rollback staging", now);
    assert_eq!(reply(&ch), ("Run 2 is already rolling back.", false));
    let ch = h.result(id, 1, Outcome::SwitchBack(Ok(())), now);
    assert_eq!(run_of(&ch, id).phase, Phase::RolledBack);
    assert!(env_of(&ch, &staging()).lock.is_some());

    // After a stable deploy with the old colour still warm: verify it, switch back, lock.
    // Neither a lock nor a freeze stops a rollback: prod, Friday evening, locked.
    for (env, name) in [(staging(), "Staging"), (prod(), "Production")] {
        let mut h = H::demo();
        let e = env.0.as_str();
        h.deploy_stable("alice", "bob", "v1.2.0", e, wed(10, 0));
        let (r2, _) = h.deploy_stable("bob", "alice", "v1.3.0", e, wed(11, 0));
        let now = if e == "prod" { fri(18, 0) } else { wed(11, 5) };
        h.cmd("alice", &format!("/deploy lock {e} investigating"), now);
        let ch = h.cmd("bob", &format!("/rollback {e} checkout is slow"), now);
        let r3 = RunId(3);
        assert_eq!(
            reply(&ch),
            (
                format!("Run 3: rolling back {name} to v1.2.0.").as_str(),
                false
            )
        );
        assert_eq!(ch.next_run, Some(4));
        let parent = &ch.posts[0];
        assert_eq!(parent.key, Some(MsgKey::Checklist(r3)));
        assert_eq!(
            parent.text,
            format!("⏪ Rolling back {name} to v1.2.0 (run 3). Reason: manual rollback by bob: checkout is slow")
        );
        let run = run_of(&ch, r3);
        assert_eq!(run.kind, RunKind::Rollback);
        assert_eq!(run.phase, Phase::VerifyingIdle);
        assert_eq!(
            ch.actions,
            vec![Action::Verify {
                run: r3,
                attempt: 1,
                env: env.clone(),
                colour: Colour::Blue
            }]
        );
        let ch = h.result(r3, 1, Outcome::Verify(Ok("ok".into())), now + mins(1));
        assert_eq!(run_of(&ch, r3).switch_intents, 1);
        assert_eq!(
            ch.actions,
            vec![Action::Switch {
                run: r3,
                attempt: 1,
                env: env.clone(),
                to: Colour::Blue,
                from: Some(Colour::Green)
            }]
        );
        let ch = h.result(r3, 1, Outcome::Switch(Ok(())), now + mins(2));
        assert_eq!(run_of(&ch, r3).phase, Phase::RolledBack);
        let st = env_of(&ch, &env);
        assert_eq!(st.live, Some(Colour::Blue));
        assert_eq!(st.live_version().map(String::as_str), Some("v1.2.0"));
        assert_eq!(st.green, None);
        assert_eq!(st.previous, None, "nothing further to roll back to");
        assert_eq!(st.active_run, None);
        assert_eq!(
            st.lock.as_ref().unwrap().reason,
            "investigating",
            "the earlier lock stays"
        );
        assert_eq!(
            ch.actions,
            vec![Action::Teardown {
                env: env.clone(),
                colour: Colour::Green
            }]
        );
        let alert = &in_room(&ch, Room::Incidents)[0].text;
        assert!(
            alert.contains(&format!("🚨 {name}: rolled back v1.3.0 (run 3)")),
            "{alert}"
        );
        assert!(alert.contains("traffic is on blue (v1.2.0)"), "{alert}");
        assert!(h.run(r2).phase == Phase::Succeeded);
        // The kept-warm teardown timer of run 2 no longer tears anything down.
        let until = h.env(&env).warm_until;
        assert_eq!(until, None);
        assert!(nothing(
            &h.timer(Timer::Teardown(env.clone()), now + mins(30))
        ));
        // And there is nothing further to roll back to.
        let ch = h.cmd("bob", &format!("/rollback {e}"), now + mins(3));
        assert!(reply(&ch).0.starts_with("nothing to roll back to"));
    }

    // After the warm colour was torn down: the previous version is deployed again.
    let mut h = H::demo();
    h.deploy_stable("alice", "bob", "v1.2.0", "staging", wed(10, 0));
    h.deploy_stable("bob", "alice", "v1.3.0", "staging", wed(11, 0));
    let ch = h.timer(Timer::Teardown(staging()), wed(12, 0));
    assert_eq!(ch.actions.len(), 1);
    let ch = h.cmd("bob", "/rollback staging", wed(12, 5));
    assert_eq!(
        ch.actions,
        vec![Action::DeployIdle {
            run: RunId(3),
            attempt: 1,
            env: staging(),
            colour: Colour::Blue,
            version: "v1.2.0".into()
        }]
    );
    let ch = h.drive(RunId(3), ch, wed(12, 6), Phase::RolledBack);
    assert_eq!(
        env_of(&ch, &staging()).live_version().map(String::as_str),
        Some("v1.2.0")
    );

    // Before the switch, a rollback points to cancel.
    let mut h = H::demo();
    h.deploy_stable("alice", "bob", "v1.2.0", "staging", wed(10, 0));
    h.request("bob", "v1.3.0", "staging", wed(11, 0));
    let ch = h.cmd("bob", "/rollback staging", wed(11, 1));
    let (text, private) = reply(&ch);
    assert!(private);
    assert!(
        text.contains("run 2 has not switched traffic yet (awaiting checklist)"),
        "{text}"
    );
    assert!(text.contains("use /deploy cancel 2"), "{text}");
}

// ---- failures before the switch, cancel, expiry, stale results ---------------------------------

#[test]
fn failures_before_the_switch_leave_the_live_colour_untouched() {
    // (the phase where it fails, the failing outcome, the reason)
    let rows: Vec<(Phase, Outcome, &str)> = vec![
        (
            Phase::DeployingIdle,
            Outcome::DeployIdle(Err("exit status 1".into())),
            "deploy to idle failed: exit status 1",
        ),
        (
            Phase::VerifyingIdle,
            Outcome::Verify(Err("smoke test \"checkout works\" failed: 500".into())),
            "smoke test \"checkout works\" failed: 500",
        ),
    ];
    for (phase, outcome, reason) in rows {
        let (mut h, id, _, now) = H::second_deploy_in(phase);
        let attempt = h.run(id).attempt;
        let ch = h.result(id, attempt, outcome, now);
        let run = run_of(&ch, id);
        assert_eq!(run.phase, Phase::Failed, "{reason}");
        assert_eq!(
            lifecycle(&ch),
            vec![format!(
                "❌ Deployment failed. Reason: {reason}. Live traffic was never switched: blue stays live."
            )]
        );
        assert_eq!(
            ch.actions,
            vec![Action::Teardown {
                env: staging(),
                colour: Colour::Green
            }]
        );
        let env = env_of(&ch, &staging());
        assert_eq!(env.live, Some(Colour::Blue));
        assert_eq!(env.blue.as_deref(), Some("v1.2.0"));
        assert_eq!(env.active_run, None);
        assert_eq!(env.lock, None);
        assert!(
            has(&thread_msgs(&ch, id), "<@bob>"),
            "the requester is told"
        );
        assert!(in_room(&ch, Room::Incidents).is_empty());
    }
}

#[test]
fn a_failed_switch_tears_nothing_down_and_blocks_deploys_until_traffic_is_seen() {
    let (mut h, id, _, now) = H::second_deploy_in(Phase::Switching);
    let attempt = h.run(id).attempt;
    let ch = h.result(
        id,
        attempt,
        Outcome::Switch(Err("router refused".into())),
        now,
    );
    assert_eq!(run_of(&ch, id).phase, Phase::Failed);
    assert_eq!(
        lifecycle(&ch),
        vec!["❌ Deployment failed. Reason: traffic switch failed: router refused. green was left running: greenlight cannot tell which colour takes traffic now, so it tears nothing down and refuses deploys until it can see again."]
    );
    // A half-done switch may have made green live: nothing is torn down.
    assert!(
        !ch.actions
            .iter()
            .any(|a| matches!(a, Action::Teardown { .. })),
        "{:?}",
        ch.actions
    );
    let env = env_of(&ch, &staging());
    assert!(env
        .unseen
        .as_deref()
        .unwrap()
        .contains("switch to green of run 2 failed"));
    assert_eq!(env.green.as_deref(), Some("v1.3.0"));
    // Greenlight looks again on its own.
    let (at, t) = ch
        .timers
        .iter()
        .find(|(_, t)| matches!(t, Timer::Observe(_)))
        .cloned()
        .expect("an observe timer");
    assert_eq!(at, now + secs(10));
    // Meanwhile deploys and why-not say why they are refused, and status shows it.
    let ch = h.cmd("alice", "/deploy v1.4.0 staging", now + secs(1));
    assert_eq!(
        reply(&ch),
        (
            "Refused: greenlight cannot see which colour is live on Staging: the traffic switch to green of run 2 failed: router refused",
            true
        )
    );
    assert!(ch.runs.is_empty());
    let ch = h.cmd("carol", "/deploy why-not v1.4.0 staging", now + secs(1));
    assert!(reply(&ch)
        .0
        .contains("• greenlight cannot see which colour is live on Staging"));
    let ch = h.cmd("carol", "/deploy status staging", now + secs(1));
    assert!(
        reply(&ch).0.contains("⚠️ live colour unknown"),
        "{}",
        reply(&ch).0
    );
    // The kept-warm teardown waits too.
    assert!(nothing(&h.timer(Timer::Teardown(staging()), now + secs(2))));
    // The timer asks the traffic step; it sees blue: deploys are possible again.
    let ch = h.timer(t, at);
    assert_eq!(
        ch.actions,
        vec![Action::Observe {
            env: staging(),
            run: None
        }]
    );
    let ch =
        h.e.observed(&staging(), LiveView::Seen(Some(Colour::Blue)), at + secs(1));
    let ch = h.persist(ch);
    assert_eq!(env_of(&ch, &staging()).unseen, None);
    assert!(ch
        .timers
        .iter()
        .all(|(_, t)| !matches!(t, Timer::Observe(_))));
    h.request("alice", "v1.4.0", "staging", at + secs(2));
}

#[test]
fn a_deploy_never_starts_on_a_colour_it_cannot_see() {
    // The traffic step cannot be asked when the checklist completes: nothing is deployed.
    let mut h = H::demo();
    h.deploy_stable("alice", "bob", "v1.2.0", "staging", wed(10, 0));
    let id = h.request("bob", "v1.3.0", "staging", wed(11, 0));
    let ch = h.approve_all(id, "alice", wed(11, 1));
    let attempt = match ch.actions.as_slice() {
        [Action::Observe {
            run: Some((r, a)), ..
        }] if *r == id => *a,
        other => panic!("{other:?}"),
    };
    let ch = h.result(
        id,
        attempt,
        Outcome::Observed(LiveView::Unseen(
            "HAProxy: cannot connect to /run/haproxy.sock: No such file or directory".into(),
        )),
        wed(11, 2),
    );
    assert_eq!(run_of(&ch, id).phase, Phase::Failed);
    assert!(
        ch.actions.is_empty(),
        "nothing deployed or torn down: {:?}",
        ch.actions
    );
    assert_eq!(
        lifecycle(&ch),
        vec!["❌ Deployment failed. Reason: greenlight cannot see which colour is live: HAProxy: cannot connect to /run/haproxy.sock: No such file or directory. Nothing was deployed and live traffic was not touched."]
    );
    let env = env_of(&ch, &staging());
    assert_eq!(
        (env.live, env.blue.as_deref()),
        (Some(Colour::Blue), Some("v1.2.0"))
    );
    assert!(env.unseen.is_some());
    // The traffic step says green is live now (someone switched by hand): the next deploy
    // goes to blue, the colour that is really idle.
    let ch =
        h.e.observed(&staging(), LiveView::Seen(Some(Colour::Green)), wed(11, 3));
    h.persist(ch);
    let id = h.request("bob", "v1.3.0", "staging", wed(11, 4));
    let ch = h.approve_all(id, "alice", wed(11, 5));
    let ch = h.see(&ch, wed(11, 5));
    assert!(matches!(
        ch.actions.as_slice(),
        [Action::DeployIdle {
            colour: Colour::Blue,
            ..
        }]
    ));
    assert_eq!(h.run(id).from, Some(Colour::Green));
}

#[test]
fn a_step_that_cannot_be_asked_needs_a_stated_live_colour() {
    // A command traffic step without `live_query`; `live` as the config states it.
    let rules = |live: Option<Option<Colour>>| {
        let mut qa = build::env("qa");
        qa.stated_live = live;
        Arc::new(build::rules(&[("alice", &["deployers"])], vec![qa]))
    };
    let qa = EnvName::new("qa");
    // Nothing stored, nobody said: refused, and why.
    let mut e = Engine::new(rules(None), LINK.into());
    let ch = e.observed(&qa, LiveView::Unasked, wed(9, 0));
    assert!(ch.timers.is_empty(), "asking again cannot help");
    let ch = e.command(
        &user("alice"),
        command::parse("/deploy v1.0.0 qa").unwrap().unwrap(),
        wed(9, 1),
    );
    let r = ch.reply.unwrap();
    assert!(
        r.text
            .contains("cannot be asked (no live_query) and nobody has stated the live colour"),
        "{}",
        r.text
    );
    assert!(ch.runs.is_empty());
    // `live = "green"`: a person said so; the first deploy goes to blue.
    let mut e = Engine::new(rules(Some(Some(Colour::Green))), LINK.into());
    e.observed(&qa, LiveView::Unasked, wed(9, 0));
    assert_eq!(e.env(&qa).unwrap().live, Some(Colour::Green));
    let ch = e.command(
        &user("alice"),
        command::parse("/deploy v1.0.0 qa").unwrap().unwrap(),
        wed(9, 1),
    );
    let (id, attempt) = match ch.actions.as_slice() {
        [Action::Observe { run: Some(r), .. }] => *r,
        other => panic!("{other:?}"),
    };
    let ch = e.result(id, attempt, Outcome::Observed(LiveView::Unasked), wed(9, 2));
    assert!(matches!(
        ch.actions.as_slice(),
        [Action::DeployIdle {
            colour: Colour::Blue,
            ..
        }]
    ));
}

#[test]
fn cancel() {
    // (phase, who, accepted, reply fragment, teardown)
    let rows = [
        (
            Phase::AwaitingChecklist,
            "alice",
            true,
            "Run 2 cancelled.",
            false,
        ),
        (
            Phase::AwaitingChecklist,
            "carol",
            false,
            "carol may not cancel runs on Staging",
            false,
        ),
        (Phase::DeployingIdle, "bob", true, "Run 2 cancelled.", true),
        (Phase::VerifyingIdle, "bob", true, "Run 2 cancelled.", true),
        (Phase::Baseline, "bob", true, "Run 2 cancelled.", true),
        (
            Phase::Switching,
            "bob",
            false,
            "run 2 is switching and can no longer be cancelled; use /rollback staging",
            false,
        ),
        (
            Phase::Monitoring,
            "bob",
            false,
            "run 2 is monitoring and can no longer be cancelled; use /rollback staging",
            false,
        ),
    ];
    for (phase, who, accepted, fragment, teardown) in rows {
        let (mut h, id, _, now) = if phase == Phase::AwaitingChecklist {
            let mut h = H::demo();
            h.deploy_stable("alice", "bob", "v1.2.0", "staging", wed(10, 0));
            let id = h.request("bob", "v1.3.0", "staging", wed(11, 0));
            (h, id, Changes::default(), wed(11, 0))
        } else {
            H::second_deploy_in(phase)
        };
        let ctx = format!("{who} cancels in {phase:?}");
        let attempt = h.run(id).attempt;
        let ch = h.cmd(who, "/deploy cancel 2", now + secs(1));
        let (text, private) = reply(&ch);
        assert_eq!(!private, accepted, "{ctx}: {text}");
        assert!(text.contains(fragment), "{ctx}: {text}");
        if !accepted {
            assert!(
                !text.contains("Usage:"),
                "a refusal is not a usage error: {ctx}"
            );
            assert!(ch.runs.is_empty() && ch.actions.is_empty(), "{ctx}");
            assert_eq!(h.run(id).phase, phase, "{ctx}");
            continue;
        }
        assert_eq!(run_of(&ch, id).phase, Phase::Cancelled, "{ctx}");
        assert_eq!(env_of(&ch, &staging()).active_run, None, "{ctx}");
        let msgs = thread_msgs(&ch, id);
        assert!(
            has(
                &msgs,
                &format!("🚫 Run 2 (v1.3.0 → Staging) cancelled by <@{who}>")
            ),
            "{ctx}"
        );
        assert!(has(&msgs, "<@bob>"), "{ctx}: mentions the requester");
        let expected = if teardown {
            vec![Action::Teardown {
                env: staging(),
                colour: Colour::Green,
            }]
        } else {
            vec![]
        };
        assert_eq!(ch.actions, expected, "{ctx}");
        assert_eq!(env_of(&ch, &staging()).live, Some(Colour::Blue), "{ctx}");
        // A driver result that arrives afterwards is ignored.
        if teardown {
            let late = h.result(id, attempt, Outcome::DeployIdle(Ok(())), now + secs(2));
            assert!(nothing(&late), "{ctx}");
        }
    }
}

#[test]
fn checklist_expiry() {
    let mut h = H::demo();
    let id = h.request("alice", "v1.2.0", "staging", wed(10, 0));
    h.approve("bob", id, 0, wed(11, 0));
    assert_eq!(h.run(id).checklist_expires, wed(14, 0));
    assert!(nothing(
        &h.timer(Timer::ChecklistExpiry(id), t(25, 13, 59, 59))
    ));
    let ch = h.timer(Timer::ChecklistExpiry(id), wed(14, 0));
    assert_eq!(run_of(&ch, id).phase, Phase::Expired);
    assert_eq!(env_of(&ch, &staging()).active_run, None);
    assert_eq!(
        thread_msgs(&ch, id),
        vec!["⌛ Run 1 expired: the checklist for v1.2.0 → Staging was not completed within 4h. <@alice>"]
    );
    assert!(ch.actions.is_empty());
    // Fired again, or for a run whose checklist completed, it does nothing.
    assert!(nothing(&h.timer(Timer::ChecklistExpiry(id), wed(15, 0))));
    let id = h.request("alice", "v1.2.0", "staging", wed(15, 0));
    h.approve_all(id, "bob", wed(15, 1));
    assert!(nothing(&h.timer(Timer::ChecklistExpiry(id), wed(19, 0))));
}

#[test]
fn stale_and_unexpected_results_are_ignored() {
    let (mut h, id, _, now) = H::second_deploy_in(Phase::DeployingIdle);
    // (attempt, outcome)
    let rows = [
        (0, Outcome::DeployIdle(Ok(()))),
        (2, Outcome::DeployIdle(Ok(()))),
        (1, Outcome::Switch(Ok(()))),
        (1, Outcome::Verify(Ok("ok".into()))),
        (1, Outcome::SwitchBack(Ok(()))),
        (1, Outcome::Sample(healthy(), None)),
    ];
    for (attempt, o) in rows {
        let ch = h.result(id, attempt, o.clone(), now);
        assert!(nothing(&ch), "attempt {attempt}, {o:?}");
        assert_eq!(h.run(id).phase, Phase::DeployingIdle);
    }
    assert!(nothing(&h.result(
        RunId(99),
        1,
        Outcome::DeployIdle(Ok(())),
        now
    )));
    // A monitor tick of another attempt or a finished run asks for nothing.
    let (mut h, id, _, now) = H::second_deploy_in(Phase::Monitoring);
    assert!(nothing(&h.timer(Timer::MonitorTick(id, 7), now)));
    assert!(nothing(&h.timer(Timer::MonitorTick(RunId(1), 1), now)));
}

// ---- restarts --------------------------------------------------------------------------------

fn restarted(ch: &Changes, id: RunId) -> String {
    let msgs: Vec<&str> = thread_msgs(ch, id)
        .into_iter()
        .filter(|m| m.starts_with("♻️ greenlight restarted: "))
        .collect();
    assert_eq!(msgs.len(), 1, "one restart message: {:#?}", ch.posts);
    assert!(ch
        .posts
        .iter()
        .any(|p| p.text == msgs[0] && p.room == Room::Deploys && !p.edit));
    msgs[0].to_string()
}

#[test]
fn restart_while_the_checklist_is_open() {
    let mut h = H::demo();
    let id = h.request("alice", "v1.2.0", "staging", wed(10, 0));
    h.approve("bob", id, 0, wed(10, 1));

    // Still open: approvals are kept and the expiry is armed again.
    let mut h2 = h.restart();
    assert_eq!(h2.e.next_run(), 2);
    let ch = h2.resume(id, None, wed(10, 30));
    assert_eq!(
        restarted(&ch, id),
        "♻️ greenlight restarted: run 1's checklist is still open; approvals so far are kept."
    );
    assert_eq!(ch.timers, vec![(wed(14, 0), Timer::ChecklistExpiry(id))]);
    assert!(ch.actions.is_empty());
    assert_eq!(h2.run(id).checklist.items[0].approvers, vec![user("bob")]);
    let ch = h2.approve("carol", id, 1, wed(10, 31));
    assert!(matches!(
        ch.actions.as_slice(),
        [Action::Observe {
            run: Some((_, 1)),
            ..
        }]
    ));
    // Run numbers continue after a restart.
    assert_eq!(h2.request("bob", "v9.9.9", "prod", wed(10, 32)), RunId(2));

    // Expired while the bot was down: said, and concluded by the expiry timer.
    let mut h3 = h.restart();
    let ch = h3.resume(id, None, wed(15, 0));
    assert!(restarted(&ch, id).contains("run 1's checklist expired while the bot was down."));
    assert_eq!(ch.timers, vec![(wed(15, 0), Timer::ChecklistExpiry(id))]);
    let ch = h3.timer(Timer::ChecklistExpiry(id), wed(15, 0));
    assert_eq!(run_of(&ch, id).phase, Phase::Expired);
}

/// What a resumed run must do next, checked after the restart message.
type Then = fn(&mut H, RunId, &Changes, DateTime<Utc>);

fn then_redeploy(h: &mut H, id: RunId, ch: &Changes, now: DateTime<Utc>) {
    let old = h.run(id).attempt - 1;
    // First the traffic step is asked again; nothing is deployed before it answers.
    assert_eq!(
        ch.actions,
        vec![Action::Observe {
            env: staging(),
            run: Some((id, old + 1)),
        }]
    );
    assert_eq!(run_of(ch, id).phase, Phase::Observing);
    let ch = &h.see(ch, now);
    assert!(
        lifecycle(ch).is_empty(),
        "no second 🚀: {:?}",
        lifecycle(ch)
    );
    assert_eq!(
        ch.actions,
        vec![Action::DeployIdle {
            run: id,
            attempt: old + 1,
            env: staging(),
            colour: Colour::Green,
            version: "v1.3.0".into()
        }]
    );
    assert_eq!(run_of(ch, id).phase, Phase::DeployingIdle);
    assert_eq!(run_of(ch, id).switch_intents, 0);
    // The old attempt's result is stale; the new one goes on.
    assert!(nothing(&h.result(
        id,
        old,
        Outcome::DeployIdle(Ok(())),
        now
    )));
    assert!(nothing(&h.result(
        id,
        old,
        Outcome::Verify(Ok("ok".into())),
        now
    )));
    let ch = h.result(id, old + 1, Outcome::DeployIdle(Ok(())), now);
    assert!(matches!(
        ch.actions.as_slice(),
        [Action::Verify { attempt, .. }] if *attempt == old + 1
    ));
    let ch = h.drive(id, ch, now, Phase::Monitoring);
    assert_eq!(
        lifecycle(&ch),
        vec!["✅ Deployment successful. Monitoring."]
    );
    assert_eq!(h.run(id).switch_intents, 1);
}

fn then_monitor_after_switch(h: &mut H, id: RunId, ch: &Changes, now: DateTime<Utc>) {
    assert_eq!(
        lifecycle(ch),
        vec!["✅ Deployment successful. Monitoring."],
        "the success message, once"
    );
    assert!(ch.actions.is_empty(), "no second switch");
    let run = run_of(ch, id);
    assert_eq!(run.phase, Phase::Monitoring);
    assert_eq!(run.switch_intents, 1);
    assert!(run.switched && run.success_posted);
    assert_eq!(ch.timers, vec![(now + secs(4), Timer::MonitorTick(id, 1))]);
    let env = env_of(ch, &staging());
    assert_eq!(env.live, Some(Colour::Green));
    assert_eq!(env.green.as_deref(), Some("v1.3.0"));
    assert_eq!(env.blue.as_deref(), Some("v1.2.0"));
    assert_eq!(env.previous.as_deref(), Some("v1.2.0"));
    // Another restart during monitoring does not say ✅ again.
    let mut h2 = h.restart();
    let ch2 = h2.resume(id, Some(Colour::Green), now + secs(1));
    assert!(restarted(&ch2, id).contains("monitoring resumes"));
    assert!(lifecycle(&ch2).is_empty());
    let (ch3, _) = h2.monitor(id, ch2, passes(6));
    assert_eq!(run_of(&ch3, id).phase, Phase::Succeeded);
    *h = h2;
}

fn then_reverify_before_switching(h: &mut H, id: RunId, ch: &Changes, now: DateTime<Utc>) {
    assert!(matches!(
        ch.actions.as_slice(),
        [Action::Observe {
            run: Some((_, 2)),
            ..
        }]
    ));
    let ch = &h.see(ch, now);
    assert_eq!(
        ch.actions,
        vec![Action::DeployIdle {
            run: id,
            attempt: 2,
            env: staging(),
            colour: Colour::Green,
            version: "v1.3.0".into()
        }]
    );
    assert_eq!(run_of(ch, id).switch_intents, 1);
    assert!(lifecycle(ch).is_empty());
    assert_eq!(h.env(&staging()).live, Some(Colour::Blue));
    // Each step asks for the next one, and the switch only comes after verification.
    let ch = h.result(id, 2, Outcome::DeployIdle(Ok(())), now);
    assert!(matches!(ch.actions.as_slice(), [Action::Verify { .. }]));
    let ch = h.result(id, 2, Outcome::Verify(Ok("ok".into())), now);
    assert!(matches!(ch.actions.as_slice(), [Action::Baseline { .. }]));
    let ch = h.result(id, 2, Outcome::Baseline(healthy()), now);
    assert!(matches!(
        ch.actions.as_slice(),
        [Action::Switch {
            attempt: 2,
            to: Colour::Green,
            ..
        }]
    ));
    assert_eq!(run_of(&ch, id).switch_intents, 2);
}

fn then_tick(h: &mut H, id: RunId, ch: &Changes, now: DateTime<Utc>) {
    assert!(lifecycle(ch).is_empty(), "✅ was posted before the restart");
    assert!(ch.actions.is_empty());
    assert_eq!(ch.timers, vec![(now + secs(1), Timer::MonitorTick(id, 1))]);
    let tick = h.timer(Timer::MonitorTick(id, 1), now + secs(1));
    assert!(matches!(
        tick.actions.as_slice(),
        [Action::Sample {
            colour: Colour::Green,
            ..
        }]
    ));
}

/// Traffic found on the old colour while monitoring: concluded like a rollback (alert, lock,
/// the new colour torn down, `previous` cleared so a later /rollback does not redeploy the
/// live version).
fn then_concluded_as_rolled_back(_: &mut H, id: RunId, ch: &Changes, _: DateTime<Utc>) {
    assert_eq!(env_of(ch, &staging()).active_run, None);
    assert_eq!(env_of(ch, &staging()).previous, None);
    assert_eq!(
        run_of(ch, id).switch_back_intents,
        0,
        "nothing was switched"
    );
    rollback_completed(id, ch);
}

fn then_rollback_done(_: &mut H, id: RunId, ch: &Changes, _: DateTime<Utc>) {
    assert_eq!(
        run_of(ch, id).switch_back_intents,
        1,
        "no second switch back"
    );
    rollback_completed(id, ch);
}

fn rollback_completed(id: RunId, ch: &Changes) {
    assert_eq!(run_of(ch, id).phase, Phase::RolledBack);
    assert_eq!(in_room(ch, Room::Incidents).len(), 1);
    let env = env_of(ch, &staging());
    assert_eq!(env.live, Some(Colour::Blue));
    assert!(env.lock.is_some());
    assert_eq!(
        ch.actions,
        vec![Action::Teardown {
            env: staging(),
            colour: Colour::Green
        }]
    );
}

fn then_switch_back_again(h: &mut H, id: RunId, ch: &Changes, now: DateTime<Utc>) {
    assert_eq!(
        ch.actions,
        vec![Action::SwitchBack {
            run: id,
            attempt: 1,
            env: staging(),
            to: Colour::Blue,
            from: Colour::Green
        }]
    );
    assert_eq!(run_of(ch, id).switch_back_intents, 2);
    assert_eq!(run_of(ch, id).phase, Phase::RollingBack);
    let ch = h.result(id, 1, Outcome::SwitchBack(Ok(())), now);
    rollback_completed(id, &ch);
}

#[test]
fn restart_resumes_or_concludes_each_phase() {
    // (phase when the bot stopped, colour the driver reports live, the message, what follows)
    let rows: Vec<(Phase, Option<Colour>, &str, Then)> = vec![
        (
            Phase::DeployingIdle,
            Some(Colour::Blue),
            "run 2 was deploying idle when the bot stopped; live traffic was never switched, so the deploy starts again: greenlight asks which colour is live, then deploys v1.3.0 to the idle one.",
            then_redeploy,
        ),
        (
            Phase::VerifyingIdle,
            Some(Colour::Blue),
            "run 2 was verifying idle when the bot stopped",
            then_redeploy,
        ),
        (
            Phase::Baseline,
            Some(Colour::Blue),
            "run 2 was taking baseline when the bot stopped",
            then_redeploy,
        ),
        (
            Phase::Switching,
            Some(Colour::Green),
            "run 2's traffic switch to green had happened; monitoring resumes.",
            then_monitor_after_switch,
        ),
        (
            Phase::Switching,
            Some(Colour::Blue),
            "run 2's traffic switch to green had not happened (blue is live); green is deployed and verified again before a new switch.",
            then_reverify_before_switching,
        ),
        (
            Phase::Monitoring,
            Some(Colour::Green),
            "run 2 is monitoring v1.3.0 on green; monitoring resumes.",
            then_tick,
        ),
        (
            Phase::Monitoring,
            Some(Colour::Blue),
            "run 2: after a restart traffic is on blue instead of green; concluding the run as rolled back.",
            then_concluded_as_rolled_back,
        ),
        (
            Phase::RollingBack,
            Some(Colour::Blue),
            "run 2's switch back had happened; completing the rollback.",
            then_rollback_done,
        ),
        (
            Phase::RollingBack,
            Some(Colour::Green),
            "run 2 was rolling back; switching traffic back to blue now.",
            then_switch_back_again,
        ),
    ];
    for (phase, live, says, then) in rows {
        let (h, id, _, now) = H::second_deploy_in(phase);
        let mut h = h.restart();
        assert_eq!(h.e.runs().map(|r| r.id).collect::<Vec<_>>(), vec![id]);
        let now = now + secs(2);
        let ch = h.resume(id, live, now);
        let said = restarted(&ch, id);
        assert!(
            said.starts_with(&format!("♻️ greenlight restarted: {says}")),
            "{phase:?} with {live:?} live: {said}"
        );
        assert!(ch.events.iter().any(|e| e.what == What::Resumed { phase }));
        then(&mut h, id, &ch, now);
    }
}

#[test]
fn resume_of_an_unknown_or_finished_run_does_nothing() {
    let mut h = H::demo();
    let (id, _) = h.deploy_stable("alice", "bob", "v1.2.0", "staging", wed(10, 0));
    let mut h = h.restart();
    assert!(
        h.e.runs().next().is_none(),
        "finished runs are not restored"
    );
    assert!(nothing(&h.resume(id, Some(Colour::Blue), wed(11, 0))));
    assert!(nothing(&h.resume(RunId(42), None, wed(11, 0))));
}

#[test]
fn kept_warm_teardown_is_armed_again_at_start() {
    let mut h = H::demo();
    h.deploy_stable("alice", "bob", "v1.2.0", "staging", wed(10, 0));
    let (_, end) = h.deploy_stable("bob", "alice", "v1.3.0", "staging", wed(11, 0));
    let mut h = h.restart();
    let until = end + mins(10);
    assert_eq!(
        h.e.startup_timers(),
        vec![(until, Timer::Teardown(staging()))]
    );
    let ch = h.timer(Timer::Teardown(staging()), until);
    assert_eq!(
        ch.actions,
        vec![Action::Teardown {
            env: staging(),
            colour: Colour::Blue
        }]
    );
    assert!(h.e.startup_timers().is_empty());
}

// ---- regressions found while reviewing the engine ----------------------------------------

#[test]
fn a_resumed_manual_rollback_leaves_no_previous_version_behind() {
    let mut h = H::demo();
    h.deploy_stable("alice", "bob", "v1.2.0", "staging", wed(10, 0));
    h.deploy_stable("bob", "alice", "v1.3.0", "staging", wed(11, 0));
    let ch = h.cmd("bob", "/rollback staging", wed(11, 5));
    h.drive(RunId(3), ch, wed(11, 6), Phase::Switching);
    let mut h = h.restart();
    h.resume(RunId(3), Some(Colour::Blue), wed(11, 7));
    let env = h.env(&staging());
    assert_eq!(
        env.previous, None,
        "a second /rollback must not redeploy the live version"
    );
    assert_eq!(env.warm_until, None);
    assert_eq!(env.live, Some(Colour::Blue));
}

#[test]
fn a_skipped_kept_warm_teardown_is_rearmed_when_the_run_ends() {
    let mut h = H::demo();
    h.deploy_stable("alice", "bob", "v1.2.0", "staging", wed(10, 0));
    let (_, end) = h.deploy_stable("bob", "alice", "v1.3.0", "staging", wed(11, 0));
    let until = end + mins(10);
    let id = h.request("alice", "v1.4.0", "staging", until - mins(1));
    let ch = h.timer(Timer::Teardown(staging()), until);
    assert!(ch.actions.is_empty(), "skipped while a run is active");
    let ch = h.react(
        "bob",
        &MsgKey::Checklist(id).to_string(),
        "x",
        true,
        until + mins(5),
    );
    assert_eq!(run_of(&ch, id).phase, Phase::Vetoed);
    assert!(ch
        .timers
        .iter()
        .any(|(_, t)| *t == Timer::Teardown(staging())));
}

#[test]
fn an_approval_after_the_expiry_does_not_start_the_deploy() {
    let mut h = H::demo();
    let id = h.request("alice", "v1.2.0", "staging", wed(10, 0));
    h.approve("bob", id, 0, wed(10, 1));
    let ch = h.approve("bob", id, 1, wed(14, 1));
    assert_eq!(run_of(&ch, id).phase, Phase::Expired);
    assert!(ch.actions.is_empty());
    assert!(ch
        .posts
        .iter()
        .any(|p| p.text.contains("the checklist of run 1 expired")));
}

#[test]
fn force_given_before_a_freeze_opens_passes_the_later_gates_and_is_announced() {
    let mut h = H::demo();
    let ch = h.cmd(
        "alice",
        "/deploy v1.2.0 prod --force \"hotfix\"",
        fri(16, 55),
    );
    assert!(!ch.runs.is_empty(), "{:?}", ch.reply);
    let id = ch.runs[0].id;
    let ch = h.approve_all(id, "bob", fri(17, 5));
    assert_eq!(run_of(&ch, id).phase, Phase::Observing);
    let announced: Vec<_> = ch
        .posts
        .iter()
        .filter(|p| p.room == Room::Announce)
        .collect();
    assert_eq!(announced.len(), 1);
    assert!(
        announced[0].text.contains("forced run 1")
            && announced[0].text.contains("when the checklist completed")
    );
    // bob's --force is stored too, but does not pass: he is not break-glass.
    let mut h = H::demo();
    let ch = h.cmd("bob", "/deploy v1.2.0 prod --force \"hotfix\"", fri(16, 55));
    let id = ch.runs[0].id;
    let ch = h.approve_all(id, "alice", fri(17, 5));
    assert_eq!(run_of(&ch, id).phase, Phase::Rejected);
}

#[test]
fn a_version_pattern_is_per_environment() {
    let mut rules = build::demo();
    rules.envs.get_mut(&staging()).unwrap().version_pattern = Some("release-*".into());
    let patterns = vec!["release-*".to_string()];
    let mut e = Engine::new(Arc::new(rules), "http://127.0.0.1:8080".into());
    e.observed(&staging(), LiveView::Seen(None), wed(9, 0));
    let parse = |t: &str| command::parse_with(t, &patterns).unwrap().unwrap();
    let ch = e.command(
        &user("alice"),
        parse("/deploy release-42 staging"),
        wed(10, 0),
    );
    assert_eq!(ch.runs.len(), 1, "{:?}", ch.reply);
    let ch = e.command(&user("alice"), parse("/deploy release-42 prod"), wed(10, 0));
    let r = ch.reply.unwrap();
    assert!(
        r.private
            && r.text
                .contains("invalid version \"release-42\" for Production"),
        "{}",
        r.text
    );
    assert!(ch.runs.is_empty());
}

#[test]
fn a_first_deploy_beside_a_colour_greenlight_did_not_deploy_names_it_plainly() {
    // HAProxy says blue takes traffic, but greenlight never deployed anything here.
    let mut h = H::demo();
    let ch =
        h.e.observed(&staging(), LiveView::Seen(Some(Colour::Blue)), wed(9, 0));
    h.persist(ch);
    let (id, _) = h.deploy_stable("alice", "bob", "v1.2.0", "staging", wed(10, 0));
    let run = h.run(id).clone();
    assert_eq!((run.from, run.to), (Some(Colour::Blue), Colour::Green));
    let line = run.status.last().unwrap();
    assert!(
        line.contains("blue (a version greenlight did not deploy) is idle") && !line.contains("()"),
        "{line}"
    );
}

#[test]
fn an_approval_stands_while_any_of_its_emoji_remains() {
    let mut h = H::demo();
    let id = h.request("alice", "v1.2.0", "staging", wed(10, 0));
    let item = MsgKey::Item(id, 0).to_string();
    h.react("bob", &item, "white_check_mark", true, wed(10, 1));
    // 👍 as well: nothing visible changes, but it is remembered.
    let ch = h.react("bob", &item, "thumbsup::skin-tone-3", true, wed(10, 2));
    assert!(ch.posts.is_empty() && ch.runs.len() == 1);
    // ✅ removed: 👍 still approves.
    let ch = h.react("bob", &item, "white_check_mark", false, wed(10, 3));
    assert!(ch.posts.is_empty(), "{:?}", ch.posts);
    assert_eq!(h.run(id).checklist.items[0].approvers, vec![user("bob")]);
    // 👍 removed too: now the approval is withdrawn.
    let ch = h.react("bob", &item, "+1", false, wed(10, 4));
    assert!(
        ch.posts[0].text.starts_with("⬜ 1."),
        "{}",
        ch.posts[0].text
    );
    assert!(h.run(id).checklist.items[0].approvers.is_empty());
    // A record written before marks existed: any removal withdraws, as before.
    let mut legacy = h.run(id).clone();
    legacy.checklist.items[0].approvers = vec![user("bob")];
    legacy.checklist.items[0].marks.clear();
    let stored = serde_json::to_value(&legacy).unwrap();
    assert!(stored["checklist"]["items"][0].get("marks").is_none());
    let back: Run = serde_json::from_value(stored).unwrap();
    assert_eq!(back.checklist.items[0].approvers, vec![user("bob")]);
}

#[test]
fn a_refusal_is_said_to_the_reactor_once_per_reason() {
    let mut h = H::demo();
    let id = h.request("alice", "v1.2.0", "staging", wed(10, 0));
    let item = MsgKey::Item(id, 0).to_string();
    let mut said = Vec::new();
    for n in 0..5 {
        let ch = h.react("alice", &item, "white_check_mark", true, wed(10, n));
        said.extend(ch.posts.clone());
        h.react("alice", &item, "white_check_mark", false, wed(10, n));
    }
    assert_eq!(said.len(), 1, "{said:?}");
    assert_eq!(said[0].to, Some(user("alice")), "only alice sees it");
    assert!(said[0].text.contains("cannot approve their own run"));
}

#[test]
fn checks_keep_their_cadence_when_a_sample_is_slow() {
    // A -slow release makes each check's critical path slow: the next check is still due one
    // interval after the previous one started, not after its result came back.
    let mut h = H::demo();
    let (id, ch) = h.deploy_to_monitoring("alice", "bob", "v1.2.0", "staging", wed(10, 0));
    let (at, tick) = tick_in(&ch).unwrap();
    let ch = h.timer(tick, at);
    let attempt = match ch.actions.as_slice() {
        [Action::Sample { attempt, .. }] => *attempt,
        other => panic!("{other:?}"),
    };
    let interval = secs(4);
    // The result arrives 3 s after the check started.
    let ch = h.result(
        id,
        attempt,
        Outcome::Sample(healthy(), Some(Ok(()))),
        at + secs(3),
    );
    let next = tick_in(&ch).unwrap().0;
    assert_eq!(next, at + interval);
}

#[test]
fn a_critical_path_reported_on_its_own_rolls_back_and_has_the_last_word() {
    // A failing critical path arriving after the metrics passed rolls back at once.
    let (mut h, id, ch, _) = H::second_deploy_in(Phase::Monitoring);
    let (at, tick) = tick_in(&ch).unwrap();
    h.timer(tick, at);
    let attempt = h.run(id).attempt;
    h.result(id, attempt, Outcome::Measured(healthy()), at);
    let ch = h.result(
        id,
        attempt,
        Outcome::CriticalPath(Err("checkout answered 500".into())),
        at + secs(1),
    );
    assert_eq!(run_of(&ch, id).phase, Phase::RollingBack);
    assert!(has(
        &lifecycle(&ch),
        "core business flow broken: checkout answered 500"
    ));

    // When the window is over, the last check's critical path decides the end.
    let (mut h, id, mut ch, _) = H::second_deploy_in(Phase::Monitoring);
    let attempt = h.run(id).attempt;
    for _ in 0..5 {
        let (at, tick) = tick_in(&ch).unwrap();
        h.timer(tick, at);
        ch = h.result(id, attempt, Outcome::Measured(healthy()), at);
        if h.run(id).monitor.awaiting_critical_path {
            break;
        }
        h.result(id, attempt, Outcome::CriticalPath(Ok(())), at);
    }
    assert!(h.run(id).monitor.awaiting_critical_path);
    assert_eq!(h.run(id).phase, Phase::Monitoring);
    let ch = h.result(id, attempt, Outcome::CriticalPath(Ok(())), wed(12, 0));
    assert_eq!(run_of(&ch, id).phase, Phase::Succeeded);
}

#[test]
fn a_critical_path_that_answers_before_the_metrics_does_not_stall_the_end() {
    let (mut h, id, mut ch, _) = H::second_deploy_in(Phase::Monitoring);
    let attempt = h.run(id).attempt;
    for _ in 0..10 {
        let Some((at, tick)) = tick_in(&ch) else {
            break;
        };
        h.timer(tick, at);
        // The critical path is the faster of the two here.
        h.result(id, attempt, Outcome::CriticalPath(Ok(())), at);
        ch = h.result(id, attempt, Outcome::Measured(healthy()), at);
    }
    assert_eq!(h.run(id).phase, Phase::Succeeded);
    assert!(!h.run(id).monitor.awaiting_critical_path);
}

/// Records written by the code before the engine was split into `core/engine/` (captured from
/// a run of this harness: runs, environments and event logs, one `kind<TAB>json` line each, as
/// the store keeps them) still load, and are written back byte for byte.
#[test]
fn records_stored_by_earlier_versions_load_and_are_written_back_unchanged() {
    let text = include_str!("../../../../tests/fixtures/stored_records.tsv");
    let mut kinds = BTreeMap::new();
    for line in text.lines() {
        let (kind, json) = line.split_once('\t').expect("kind<TAB>json");
        let again = match kind {
            "run" => serde_json::to_string(&serde_json::from_str::<Run>(json).unwrap()),
            "env" => serde_json::to_string(&serde_json::from_str::<EnvState>(json).unwrap()),
            "event" => {
                let e = serde_json::from_str::<Event>(json).unwrap();
                // Every sentence today's engine writes reads back as its typed kind.
                assert!(!matches!(e.what, What::Other(_)), "untyped: {json}");
                serde_json::to_string(&e)
            }
            other => panic!("unknown record kind {other}"),
        }
        .unwrap();
        assert_eq!(again, json, "{kind} record changed shape");
        *kinds.entry(kind).or_insert(0) += 1;
    }
    assert_eq!(kinds.len(), 3, "{kinds:?}");
}
