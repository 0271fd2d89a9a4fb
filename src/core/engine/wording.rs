//! Every sentence the engine says: replies, thread messages, alerts and status lines, word
//! for word. Mentions are written `<@person>` (`UserId::mention`) and rendered per platform.
//! The lifecycle texts shared with the shell (🚀, ✅, ❌) are in `core::message`.

use crate::core::analysis::{self, Sample};
use crate::core::checklist::Checklist;
use crate::core::event::Gate;
use crate::core::evidence::{Proof, Verdict};
use crate::core::message;
use crate::core::rules::EnvRules;
use crate::core::state::{EnvState, Lock, Phase, Run};
use crate::core::{Colour, EnvName, RunId, UserId};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use humantime::format_duration;
use std::time::Duration;

// ---- the status message ---------------------------------------------------------------

pub fn status_message(id: RunId, phase: Phase, lines: &[String]) -> String {
    format!("Run {id} status ({}):\n{}", phase.label(), lines.join("\n"))
}

/// A status line that starts a step.
pub fn step(line: &str) -> String {
    format!("▶ {line}")
}

/// What a deploy or traffic step reported while it ran (a workflow run's link).
pub fn step_note(text: &str) -> String {
    format!("↳ {text}")
}

// ---- commands -------------------------------------------------------------------------

pub fn unknown_env(env: &EnvName, known: &str, usage: &str) -> String {
    format!("unknown environment \"{env}\" (known: {known}). Usage: {usage}")
}

pub fn invalid_version(v: &str, display: &str, pattern: Option<&str>, usage: &str) -> String {
    format!(
        "invalid version \"{v}\" for {display}: expected v?MAJOR.MINOR.PATCH[-pre][+build], a git sha (7 to 40 hex digits){}. Usage: {usage}",
        pattern.map(|p| format!(" or {p}")).unwrap_or_default()
    )
}

pub fn refused(reasons: &[String]) -> String {
    format!("Refused: {}", reasons.join("; "))
}

pub fn would_be_refused(version: &str, display: &str, reasons: &[String]) -> String {
    let mut s = format!("{version} → {display} would be refused now, because:");
    for r in reasons {
        s.push_str("\n• ");
        s.push_str(r);
    }
    s
}

pub fn nothing_stops(version: &str, display: &str, forced_past: &[String]) -> String {
    let mut s = format!("Nothing stops {version} → {display} now.");
    for w in forced_past {
        s.push_str(&format!(
            "\n• freeze {w} would be passed with --force (break-glass), and announced"
        ));
    }
    s
}

pub fn checklist_needs(items: usize, groups: &str) -> String {
    format!("\n• the checklist ({items} items) needs approval by {groups}")
}

pub fn evidence_needs(n: usize) -> String {
    format!("\n• {n} of them ticked by green CI for the version's commit, not by reactions")
}

pub fn next_freeze(window: &str) -> String {
    format!("\n• next freeze: {window}")
}

/// The steps a dry run lists.
pub fn dry_run_steps(version: &str, env: &EnvRules, st: &EnvState) -> String {
    let to = st.live.map(Colour::other).unwrap_or(Colour::Blue);
    let m = &env.monitor;
    let mut out = format!(
        "\nDry run: no run created. The run would:\n1. open the checklist thread ({} items, expires after {})",
        env.checklist.len(),
        format_duration(env.checklist_expiry)
    );
    out.push_str(&format!(
        "\n2. re-check freezes, ask the traffic step which colour is live, then deploy {version} to the idle one{}",
        match (&st.unseen, st.live) {
            (Some(_), _) => " (the live colour cannot be seen now)".to_string(),
            (None, Some(l)) => format!(" ({to} today; {l} stays live)"),
            (None, None) => format!(" ({to} today; nothing is live)"),
        }
    ));
    out.push_str(&format!(
        "\n3. health check {} on {to}, smoke tests: {}",
        env.health_path,
        if env.smoke.is_empty() {
            "none configured".into()
        } else {
            env.smoke.join(", ")
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
        format_duration(m.duration),
        format_duration(m.interval),
        analysis::pct(m.error_rate),
        (m.latency_factor - 1.0) * 100.0
    ));
    out.push_str(&format!(
        "\n7. keep the old colour warm for {}",
        format_duration(m.keep_warm)
    ));
    out
}

pub fn requested(id: RunId, version: &str, display: &str, user: &UserId, empty: bool) -> String {
    format!(
        "Run {id}: {version} → {display} requested by {user}; checklist posted{}.",
        if empty { " (empty: deploying now)" } else { "" }
    )
}

/// Break-glass `--force` passed a freeze: at the request (`gate: None`) or a later gate.
pub fn break_glass(
    user: &UserId,
    id: RunId,
    version: &str,
    display: &str,
    window: &str,
    gate: Option<Gate>,
    reason: &str,
) -> String {
    let when = gate.map(|g| format!(" {}", g.as_str())).unwrap_or_default();
    format!(
        "⚠️ Break-glass: {} forced run {id} ({version} → {display}) past freeze {window}{when}. Reason: {reason}",
        user.mention()
    )
}

pub fn checklist_parent(
    run: &Run,
    display: &str,
    forced: bool,
    reviewers: &[String],
    expiry: Duration,
) -> String {
    format!(
        "{}\nRequested by {}{}. Reviewers: {} — react ✅ or 👍 on each item in this thread; ❌ vetoes the run. Expires in {}.",
        message::checklist_parent(&run.version, display, run.id),
        run.requester.mention(),
        if forced { " (break-glass --force)" } else { "" },
        if reviewers.is_empty() {
            "nobody else is eligible".into()
        } else {
            reviewers.join(", ")
        },
        format_duration(expiry)
    )
}

pub fn already_locked(display: &str, l: &Lock) -> String {
    format!("{display} is already locked by {}: {}", l.by, l.reason)
}

pub fn locked(display: &str, user: &UserId, reason: &str) -> String {
    format!("🔒 {display} locked by {}: {reason}", user.mention())
}

pub fn lock_answer(display: &str) -> String {
    format!("🔒 {display} is locked; announced in the deploys channel.")
}

pub fn not_locked(display: &str) -> String {
    format!("{display} is not locked")
}

pub fn unlocked(display: &str, user: &UserId, old: &Lock) -> String {
    format!(
        "🔓 {display} unlocked by {} (was locked by {}: {})",
        user.mention(),
        old.by,
        old.reason
    )
}

pub fn unlock_answer(display: &str) -> String {
    format!("🔓 {display} is unlocked; announced in the deploys channel.")
}

/// One environment's line of `status`.
pub fn status_of(display: &str, st: &EnvState, active: Option<&Run>, tz: Tz) -> String {
    let mut s = match (&st.unseen, st.live, st.live_version()) {
        (Some(why), _, _) => format!(
            "{display}: ⚠️ live colour unknown ({why}); deploys are refused until greenlight can see it"
        ),
        (None, Some(col), Some(v)) => format!("{display}: {v} live on {col}"),
        (None, Some(col), None) => {
            format!("{display}: {col} is live with a version greenlight did not deploy")
        }
        (None, None, _) => format!("{display}: nothing is live"),
    };
    if let (None, Some(live)) = (&st.unseen, st.live) {
        let idle = live.other();
        if let Some(v) = st.version_on(idle) {
            s.push_str(&format!("; {idle} idle with {v}"));
            if let Some(u) = st.warm_until {
                s.push_str(&format!(" (kept warm until {})", clock(u, tz)));
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
    if let Some(r) = active {
        s.push_str(&format!(
            "; active run {} ({} by {}, {})",
            r.id,
            r.version,
            r.requester,
            r.phase.label()
        ));
    }
    s
}

/// A time of day as status lines show it.
fn clock(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%H:%M %Z").to_string()
}

pub fn not_active(id: RunId) -> String {
    format!("run {id} is not active")
}

pub fn too_late_to_cancel(id: RunId, phase: Phase, env: &EnvName) -> String {
    format!(
        "run {id} is {} and can no longer be cancelled; use /rollback {env}",
        phase.label()
    )
}

pub fn cancelled(run: &Run, display: &str, user: &UserId) -> String {
    format!(
        "🚫 Run {} ({} → {display}) cancelled by {}. {}",
        run.id,
        run.version,
        user.mention(),
        run.requester.mention()
    )
}

pub fn cancel_answer(id: RunId) -> String {
    format!("Run {id} cancelled.")
}

pub fn rollback_blind(display: &str, why: &str) -> String {
    format!("greenlight cannot see which colour is live on {display}: {why}; nothing was changed")
}

pub fn nothing_to_roll_back_to(display: &str) -> String {
    format!("nothing to roll back to: {display} has no earlier version")
}

pub fn rolling_back(display: &str, prev: &str, id: RunId, why: &str) -> String {
    format!("⏪ Rolling back {display} to {prev} (run {id}). Reason: {why}")
}

pub fn rollback_answer(id: RunId, display: &str, prev: &str) -> String {
    format!("Run {id}: rolling back {display} to {prev}.")
}

pub fn rolling_back_active(id: RunId) -> String {
    format!("Rolling back run {id}.")
}

pub fn already_rolling_back(id: RunId) -> String {
    format!("Run {id} is already rolling back.")
}

pub fn not_switched_yet(id: RunId, phase: Phase, display: &str) -> String {
    format!(
        "run {id} has not switched traffic yet ({}), so nothing changed on {display}; use /deploy cancel {id}",
        phase.label()
    )
}

pub fn wait_for_it(id: RunId, phase: Phase) -> String {
    format!("run {id} is {}; wait for it to finish", phase.label())
}

// ---- reactions ------------------------------------------------------------------------

pub fn expired_reaction(user: &UserId, id: RunId) -> String {
    format!("{user}'s reaction does not count: the checklist of run {id} expired")
}

pub fn over_reaction(user: &UserId, id: RunId) -> String {
    format!("{user}'s reaction does not count: run {id} is over and its checklist is closed")
}

pub fn closed_reaction(user: &UserId, id: RunId, phase: Phase) -> String {
    format!(
        "{user}'s reaction does not count: the checklist of run {id} is closed (the run is {})",
        phase.label()
    )
}

pub fn evidence_reaction(user: &UserId, id: RunId, item: usize, text: &str) -> String {
    format!(
        "{user}'s approval of \"{text}\" does not count: CI evidence ticks this item by itself; break-glass can override it with /deploy override {id} {} \"<reason>\"",
        item + 1
    )
}

pub fn vetoed(run: &Run, user: &UserId, display: &str) -> String {
    format!(
        "🛑 Run {} vetoed by {}: {} will not be deployed to {display}. {}",
        run.id,
        user.mention(),
        run.version,
        run.requester.mention()
    )
}

pub fn expired(run: &Run, display: &str, expiry: Duration) -> String {
    format!(
        "⌛ Run {} expired: the checklist for {} → {display} was not completed within {}. {}",
        run.id,
        run.version,
        format_duration(expiry),
        run.requester.mention()
    )
}

// ---- the pipeline up to the switch ------------------------------------------------------

pub fn frozen_at_checklist(run: &Run, display: &str, window: &str) -> String {
    format!(
        "🧊 Run {} stopped: {display} is frozen by {window}. Nothing was deployed. {}",
        run.id,
        run.requester.mention()
    )
}

pub fn deploying_to_idle(version: &str, to: Colour, live: Option<Colour>) -> String {
    let live_note = match live {
        Some(l) => format!("{l} stays live"),
        None => "nothing is live yet (the traffic step says no colour takes traffic)".into(),
    };
    format!("deploying {version} to {to} (idle); {live_note}")
}

/// The baseline's status line (and event).
pub fn baseline_line(
    sample: &Sample,
    usable: &Result<f64, String>,
    from: Option<Colour>,
) -> String {
    match (sample, usable) {
        (Sample::Data(m), Ok(_)) => format!(
            "📏 baseline from {}: {}",
            from.map(|c| c.to_string()).unwrap_or_default(),
            m.describe()
        ),
        (_, Err(note)) => format!("ℹ️ {note}"),
        (Sample::Unavailable(w), Ok(_)) => format!("ℹ️ baseline unavailable: {w}"),
    }
}

pub fn failed_unseen(reason: &str) -> String {
    format!("❌ Deployment failed. Reason: {reason}. Nothing was deployed and live traffic was not touched.")
}

pub fn stopped_unseen(id: RunId, reason: &str, requester: &UserId) -> String {
    format!(
        "Run {id} stopped before deploying: {reason}. {}",
        requester.mention()
    )
}

pub fn failed_before_switch(id: RunId, why: &str, requester: &UserId) -> String {
    format!(
        "Run {id} failed before the switch: {why}. {}",
        requester.mention()
    )
}

pub fn switch_failed(reason: &str, to: Colour) -> String {
    format!("❌ Deployment failed. Reason: {reason}. {to} was left running: greenlight cannot tell which colour takes traffic now, so it tears nothing down and refuses deploys until it can see again.")
}

pub fn failed_at_switch(
    id: RunId,
    reason: &str,
    to: Colour,
    version: &str,
    requester: &UserId,
) -> String {
    format!(
        "Run {id} failed at the switch: {reason}. {to} keeps {version}; check which colour takes traffic. {}",
        requester.mention()
    )
}

// ---- monitoring and rollback ------------------------------------------------------------

pub fn monitoring_for(to: Colour, duration: Duration, interval: Duration) -> String {
    format!(
        "traffic is on {to}; monitoring for {} every {}",
        format_duration(duration),
        format_duration(interval)
    )
}

pub fn inconclusive_check(n: u32, reason: &str) -> String {
    format!("⚠️ check {n}: inconclusive ({reason}); no data is never a pass")
}

pub fn kept_warm(from: Colour, version: Option<&str>, until: DateTime<Utc>, tz: Tz) -> String {
    format!(
        "; {from} ({}) is idle, kept warm until {} for a fast rollback",
        version.unwrap_or("a version greenlight did not deploy"),
        clock(until, tz)
    )
}

pub fn stable(run: &Run, display: &str) -> String {
    let m = &run.monitor;
    format!(
        "✅ Run {} stable: {} is live on {display} ({} of {} checks passed). {}",
        run.id,
        run.version,
        m.passes,
        m.passes + m.inconclusive,
        run.requester.mention()
    )
}

pub fn unverified(run: &Run, display: &str) -> String {
    let m = &run.monitor;
    format!(
        "⚠️ Run {}: monitoring of {} on {display} was inconclusive ({} of {} checks had no usable data), so it is not marked stable. Traffic stays on {}; /rollback {} returns to the previous version. {}",
        run.id,
        run.version,
        m.inconclusive,
        m.passes + m.inconclusive,
        run.to,
        run.env,
        run.requester.mention()
    )
}

pub fn rollback_failed(id: RunId, why: &str, to: Colour, requester: &UserId) -> String {
    format!(
        "⛔ Rollback of run {id} FAILED: {why}. Traffic may still be on {to}: a person must act now. {}",
        requester.mention()
    )
}

/// Where traffic is after a rollback.
pub fn now_live(st: &EnvState) -> String {
    match (st.live, st.live_version()) {
        (Some(c), Some(v)) => format!("traffic is on {c} ({v})"),
        (Some(c), None) => format!("traffic is on {c}"),
        _ => "nothing is live".into(),
    }
}

/// The incident alert of a rollback (or of a failed first deploy).
pub fn rollback_alert(
    run: &Run,
    display: &str,
    bad: &str,
    now_live: &str,
    no_previous: bool,
    link: &str,
) -> String {
    let approvers: Vec<String> = run
        .checklist
        .approvers()
        .iter()
        .map(|u| u.0.clone())
        .collect();
    format!(
        "🚨 {display}: {} {bad} (run {}). Reason: {}. Now {now_live}. Requested by {}; approved by {}. {display} is locked until someone runs /deploy unlock {}. The database was not touched: if this release ran migrations, a person must assess them. {link}",
        if no_previous { "failed first deploy of" } else { "rolled back" },
        run.id,
        run.reason.as_deref().unwrap_or_default(),
        run.requester,
        if approvers.is_empty() { "nobody".into() } else { approvers.join(", ") },
        run.env,
    )
}

pub fn rolled_back(run: &Run, now_live: &str, display: &str) -> String {
    format!(
        "⏪ Run {} rolled back: {now_live}. {display} is locked ({}). The database was not touched: a person must assess any migration. {}",
        run.id,
        run.reason.as_deref().unwrap_or_default(),
        run.requester.mention()
    )
}

// ---- evidence on checklist items --------------------------------------------------------

/// A commit as people read it.
fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// What a verdict says, naming each check and the commit (the audit event's sentence).
pub fn verdict(v: &Verdict) -> String {
    match v {
        Verdict::Green { checks, sha } => {
            format!("green at {}: {}", short(sha), checks.join(", "))
        }
        Verdict::Red { failing, sha } => {
            let f: Vec<String> = failing.iter().map(|(n, c)| format!("{n} {c}")).collect();
            format!("red at {}: {}", short(sha), f.join(", "))
        }
        Verdict::Pending { waiting, sha } => format!(
            "pending at {}: waiting for {}",
            short(sha),
            waiting.join(", ")
        ),
        Verdict::Missing { why } => format!("not green: {why}"),
        Verdict::Unavailable { why } => format!("could not be read: {why}"),
    }
}

/// Item `i`'s thread reply: reviewers' approvals, or what its evidence says (`recheck`: how
/// often evidence that is not green is read again).
pub fn item_line(c: &Checklist, i: usize, version: &str, recheck: Option<Duration>) -> String {
    let it = &c.items[i];
    match &it.evidence {
        None => c.item_line(i),
        Some(p) => evidence_line(i, &it.text, version, p, recheck),
    }
}

fn evidence_line(
    i: usize,
    text: &str,
    version: &str,
    p: &Proof,
    recheck: Option<Duration>,
) -> String {
    let n = i + 1;
    let again = recheck
        .map(|d| {
            format!(
                "; read again every {} until the checklist closes",
                format_duration(d)
            )
        })
        .unwrap_or_default();
    let hint = "; a ✅ does not tick it: only green CI does, or break-glass with /deploy override";
    if let Some(o) = &p.overridden {
        let said = p
            .verdict
            .as_ref()
            .map(|v| format!("; CI was {}", verdict(v)))
            .unwrap_or_default();
        return format!(
            "✅ {n}. {text}: overridden by {} (break-glass): \"{}\"{said}",
            o.by, o.reason
        );
    }
    match &p.verdict {
        None => format!("⏳ {n}. {text}: checking CI for {version}…"),
        Some(v @ Verdict::Green { .. }) => {
            format!("✅ {n}. {text}: CI for {version} is {}", verdict(v))
        }
        Some(v @ Verdict::Pending { .. }) => {
            format!("⏳ {n}. {text}: CI for {version} is {}{again}", verdict(v))
        }
        Some(v @ Verdict::Red { .. }) => {
            format!(
                "⛔ {n}. {text}: CI for {version} is {}{hint}{again}",
                verdict(v)
            )
        }
        Some(Verdict::Missing { why }) => {
            format!("⛔ {n}. {text}: no CI evidence for {version}: {why}{hint}{again}")
        }
        Some(Verdict::Unavailable { why }) => {
            format!("⚠️ {n}. {text}: CI for {version} could not be read: {why}{hint}{again}")
        }
    }
}

/// Break-glass ticked an evidence item without green CI: in the thread and the announce room.
#[allow(clippy::too_many_arguments)]
pub fn evidence_overridden(
    user: &UserId,
    id: RunId,
    version: &str,
    display: &str,
    item: usize,
    text: &str,
    reason: &str,
    said: Option<&str>,
) -> String {
    format!(
        "⚠️ Break-glass: {} ticked item {} \"{text}\" of run {id} ({version} → {display}) without green CI; CI {}. Reason: {reason}",
        user.mention(),
        item + 1,
        said.map(|s| format!("was {s}")).unwrap_or_else(|| "had not answered yet".into())
    )
}

pub fn override_answer(id: RunId, item: usize) -> String {
    format!(
        "Item {} of run {id} overridden (break-glass); audited and announced.",
        item + 1
    )
}

pub fn override_closed(id: RunId, phase: Phase) -> String {
    format!(
        "Nothing to override: the checklist of run {id} is closed (the run is {})",
        phase.label()
    )
}

pub fn override_not_break_glass(user: &UserId) -> String {
    format!("{user} cannot override evidence: only members of break-glass may, with a reason")
}

pub fn override_own_run(user: &UserId, id: RunId) -> String {
    format!("{user} cannot override evidence on run {id}: the requester cannot tick their own run's checklist")
}

pub fn no_such_item(id: RunId, item: usize, n: usize) -> String {
    format!("Run {id}'s checklist has no item {} (it has {n})", item + 1)
}

pub fn not_evidence_item(id: RunId, item: usize, text: &str) -> String {
    format!(
        "Item {} \"{text}\" of run {id} is not ticked by evidence: reviewers approve it with ✅",
        item + 1
    )
}

pub fn already_ticked(id: RunId, item: usize, text: &str) -> String {
    format!("Item {} \"{text}\" of run {id} is already ticked", item + 1)
}

// ---- restarts and the traffic step ------------------------------------------------------

/// Every restart note in a run's thread starts the same way.
pub fn restarted(text: &str) -> String {
    format!("♻️ greenlight restarted: {text}")
}

pub fn live_name(c: Option<Colour>) -> String {
    c.map(|c| c.to_string()).unwrap_or_else(|| "nothing".into())
}

pub fn resumed_checklist(id: RunId, expired: bool) -> String {
    if expired {
        format!("run {id}'s checklist expired while the bot was down.")
    } else {
        format!("run {id}'s checklist is still open; approvals so far are kept.")
    }
}

pub fn resumed_before_switch(run: &Run) -> String {
    format!(
        "run {} was {} when the bot stopped; live traffic was never switched, so the deploy starts again: greenlight asks which colour is live, then deploys {} to the idle one.",
        run.id,
        run.phase.label(),
        run.version
    )
}

pub fn resumed_redeploy(run: &Run) -> String {
    format!(
        "run {} was {} when the bot stopped; live traffic was never switched, so {} is deployed again from the start.",
        run.id,
        run.phase.label(),
        run.to
    )
}

pub fn resumed_switched(id: RunId, to: Colour) -> String {
    format!("run {id}'s traffic switch to {to} had happened; monitoring resumes.")
}

pub fn resumed_not_switched(id: RunId, to: Colour, live: Option<Colour>) -> String {
    format!(
        "run {id}'s traffic switch to {to} had not happened ({} is live); {to} is deployed and verified again before a new switch.",
        live_name(live)
    )
}

pub fn switch_unknown(id: RunId, to: Colour, why: &str, display: &str, env: &EnvName) -> String {
    format!(
        "after a restart greenlight cannot see whether run {id}'s switch to {to} happened ({why}). Nothing is redeployed or torn down; {display} is locked until a person checks which colour takes traffic and runs /deploy unlock {env}."
    )
}

pub fn resumed_monitoring(run: &Run, unseen: Option<&String>) -> String {
    let note = match unseen {
        None => String::new(),
        Some(why) => format!(
            " (greenlight cannot confirm that {} is live: {why}; the measurements of {} decide)",
            run.to, run.to
        ),
    };
    format!(
        "run {} is monitoring {} on {}; monitoring resumes{note}.",
        run.id, run.version, run.to
    )
}

pub fn cannot_be_asked(env: &EnvName) -> String {
    format!(
        "its traffic step cannot be asked (no live_query) and nobody has stated the live colour: set live = \"blue\", \"green\" or \"none\" with the switch command of [environments.{env}]"
    )
}

// ---- status lines (the run's status message, one line per step) ---------------------------

pub mod line {
    use crate::core::Colour;

    pub fn verifying_kept_colour(idle: Colour, prev: &str) -> String {
        format!("{idle} still runs {prev}: verifying it before switching back")
    }
    pub fn redeploying_kept_colour(idle: Colour, prev: &str) -> String {
        format!("{idle} no longer runs {prev}: redeploying it")
    }
    pub fn verifying(version: &str, to: Colour) -> String {
        format!("{version} is on {to}: health check and smoke tests")
    }
    pub fn verified(to: Colour, summary: &str) -> String {
        format!("✔ {to} verified: {summary}")
    }
    pub fn sampling_baseline(from: Colour) -> String {
        format!("sampling {from}'s error rate and latency for the baseline")
    }
    pub fn note(note: &str) -> String {
        format!("ℹ️ {note}")
    }
    pub fn asking_live() -> String {
        "asking the traffic step which colour is live".into()
    }
    pub fn nothing_deployed(reason: &str) -> String {
        format!("✖ {reason}; nothing deployed")
    }
    pub fn torn_down(why: &str, to: Colour) -> String {
        format!("✖ {why}; {to} torn down")
    }
    pub fn left_running(reason: &str, to: Colour) -> String {
        format!("✖ {reason}; {to} left running")
    }
    pub fn switching_to(to: Colour) -> String {
        format!("switching traffic to {to}")
    }
    pub fn switching_back_to(from: Colour) -> String {
        format!("switching traffic back to {from}")
    }
    pub fn no_previous_colour() -> String {
        "no previous colour to switch back to (first deploy)".into()
    }
    pub fn critical_path_broken(reason: &str) -> String {
        format!("✖ critical path: {reason}")
    }
    pub fn check_breached(n: u32, reason: &str) -> String {
        format!("✖ check {n}: {reason}")
    }
    pub fn check_passed(n: u32, detail: &str) -> String {
        format!("✔ check {n}: {detail}")
    }
    pub fn stable(version: &str, to: Colour, warm: &str) -> String {
        format!("✅ stable: {version} live on {to}{warm}")
    }
    pub fn unverified() -> String {
        "⚠️ unverified: not enough data to call it healthy".into()
    }
    pub fn first_deploy_failed(to: Colour) -> String {
        format!("⛔ no previous colour: {to} keeps traffic; environment locked")
    }
    pub fn rolled_back(now_live: &str) -> String {
        format!("⏪ rolled back: {now_live}; environment locked; incident channel alerted")
    }
    pub fn redeploying_after_restart(version: &str, to: Colour) -> String {
        format!("deploying {version} to {to} (idle) again after the restart")
    }
}

// ---- how a run ended (`Run.outcome`, shown in history) ------------------------------------

pub mod outcome {
    use crate::core::{Colour, UserId};
    use std::time::Duration;

    pub fn cancelled(by: &UserId) -> String {
        format!("cancelled by {by}")
    }
    pub fn vetoed(by: &UserId) -> String {
        format!("vetoed by {by}")
    }
    pub fn expired(expiry: Duration) -> String {
        format!(
            "checklist not completed within {}",
            humantime::format_duration(expiry)
        )
    }
    pub fn frozen_at_checklist(freeze: &str) -> String {
        format!("freeze \"{freeze}\" open when the checklist completed")
    }
    pub fn nothing_deployed(reason: &str) -> String {
        format!("{reason}; nothing deployed")
    }
    pub fn never_switched(why: &str) -> String {
        format!("{why}; live traffic never switched")
    }
    pub fn stable(to: Colour, checks: u32) -> String {
        format!("stable on {to} after {checks} checks")
    }
    pub fn inconclusive(inconclusive: u32, checks: u32) -> String {
        format!("monitoring inconclusive in {inconclusive} of {checks} checks")
    }
    pub fn rollback_failed(why: &str) -> String {
        format!("rollback failed: {why}")
    }
    pub fn rolled_back(reason: &str) -> String {
        format!("rolled back: {reason}")
    }
    pub fn nothing_switched(why: &str) -> String {
        format!("{why}; nothing switched")
    }
    pub fn switch_unknown(why: &str) -> String {
        format!("switch state unknown after a restart: {why}")
    }
}

// ---- reasons: of failures, rollbacks, locks and blind environments -------------------------

pub mod reason {
    use crate::core::{Colour, RunId};

    pub fn deploy_failed(why: &str) -> String {
        format!("deploy to idle failed: {why}")
    }
    pub fn unseen(why: &str) -> String {
        format!("greenlight cannot see which colour is live: {why}")
    }
    pub fn switch_failed(why: &str) -> String {
        format!("traffic switch failed: {why}")
    }
    pub fn switch_failed_unseen(to: Colour, id: RunId, why: &str) -> String {
        format!("the traffic switch to {to} of run {id} failed: {why}")
    }
    pub fn freeze_before_switch(window: &str) -> String {
        format!("freeze {window} opened before the traffic switch")
    }
    pub fn critical_path(why: &str) -> String {
        format!("core business flow broken: {why}")
    }
    pub fn not_live_after_restart(live: &str, to: Colour) -> String {
        format!("after a restart traffic is on {live} instead of {to}")
    }
    pub fn live_moved(live: &str, from: &str) -> String {
        format!("{live} is live now, not {from}")
    }
    /// Why greenlight locked an environment.
    pub fn lock_rollback_failed(id: RunId, why: &str) -> String {
        format!("rollback of run {id} failed: {why}")
    }
    pub fn lock_rolled_back(bad: &str, id: RunId, reason: &str) -> String {
        format!("rollback of {bad} (run {id}): {reason}")
    }
    pub fn lock_switch_unknown(id: RunId, why: &str) -> String {
        format!("run {id}'s switch state is unknown after a restart: {why}")
    }
}

// ---- revert -----------------------------------------------------------------------------

pub fn revert_asked(bad: &str, good: &str) -> String {
    format!("↩️ Proposing a revert of {bad}'s changes (back to {good}) for review…")
}

pub fn revert_opened(bad: &str, good: &str, name: &str, url: &str) -> String {
    format!("↩️ Revert of {bad} (back to {good}) is ready for review: {name} {url}")
}

pub fn revert_failed(bad: &str, why: &str) -> String {
    format!("⚠️ Could not propose a revert of {bad}: {why}. Revert it by hand; greenlight will not retry.")
}

pub fn revert_resumed(bad: &str) -> String {
    format!("🔁 greenlight restarted: looking for the revert of {bad} (one is opened only if none exists).")
}

/// An incident alert: the environment, what happened, the link to the run's page.
pub fn incident(display: &str, text: &str, link: &str) -> String {
    format!("🚨 {display}: {text} {link}")
}

pub fn resumed_stopped(id: RunId, why: &str) -> String {
    format!("run {id} stopped: {why}; nothing was switched.")
}

pub fn resumed_rolled_back(id: RunId, why: &str) -> String {
    format!("run {id}: {why}; concluding the run as rolled back.")
}

pub fn resumed_switched_back(id: RunId) -> String {
    format!("run {id}'s switch back had happened; completing the rollback.")
}

pub fn resumed_switching_back(id: RunId, from: Colour) -> String {
    format!("run {id} was rolling back; switching traffic back to {from} now.")
}
