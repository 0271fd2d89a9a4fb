//! Freeze windows: crontab-scheduled periods (e.g. "Friday 17:00 for 55h") during which deploys are blocked.
//!
//! Pure logic: no IO and no clock reads; `now` is always passed in.
//!
//! A rule is a standard 5-field crontab line (minute hour day-of-month month
//! day-of-week, Sunday = 0 or 7) plus a humantime duration. Both are read as
//! local wall-clock time in the bot's timezone: the schedule is evaluated over
//! naive local times and the duration is added in wall-clock time, so
//! "Friday 17:00 + 55h" is always Monday 00:00 local, whatever DST does over
//! the weekend. A naive local time is then mapped to a real instant: an
//! ambiguous time (DST fall-back) takes the earlier instant, and a
//! non-existent one (spring-forward gap) moves to the first existing minute.
//!
//! As in Vixie cron, when both day-of-month and day-of-week are restricted
//! (neither starts with `*`) a day matches if EITHER matches.

use std::collections::BTreeSet;

use chrono::{
    DateTime, Duration as TimeDelta, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use cron::Schedule;

/// The form a freeze cron line must take, quoted in error messages.
const EXPECTED_CRON: &str = "expected a 5-field crontab line \"minute hour day-of-month month day-of-week\" such as \"0 17 * * 5\"";
/// Longest accepted freeze duration.
const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(31 * 24 * 3600);
/// How far (in minutes) to look past a non-existent local time for the first existing one.
/// Real gaps are at most a day (Samoa skipped 2011-12-30); this is only a safety bound.
const MAX_GAP_MINUTES: u32 = 3 * 24 * 60;

/// A freeze window config error. The message is one line naming the bad value and the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FreezeError {
    #[error("invalid freeze cron {0}; {EXPECTED_CRON}")]
    Cron(String),
    #[error("invalid freeze duration {0}; expected a humantime duration such as \"55h\" or \"2days 7h\", more than zero and at most 31 days")]
    Duration(String),
}

/// One configured freeze rule.
#[derive(Debug, Clone)]
pub struct FreezeRule {
    pub name: String,
    /// Environments this rule freezes; empty means all.
    pub environments: Vec<String>,
    /// Translated 6-field schedules (seconds first, weekday names); the windows start at
    /// the union of their times (two schedules when day-of-month and day-of-week are OR-ed).
    schedules: Vec<Schedule>,
    cron_text: String,
    duration: std::time::Duration,
    /// `duration` as wall-clock arithmetic.
    delta: TimeDelta,
}

/// A concrete freeze window: deploys are blocked for `start <= t < end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl FreezeRule {
    /// Validates and translates a rule. `cron5` is a standard 5-field crontab line,
    /// `duration` a humantime string (more than zero, at most 31 days).
    pub fn parse(
        name: &str,
        cron5: &str,
        duration: &str,
        environments: Vec<String>,
    ) -> Result<FreezeRule, FreezeError> {
        let schedules = translate_cron(cron5).map_err(FreezeError::Cron)?;
        let dur = humantime::parse_duration(duration.trim())
            .map_err(|e| FreezeError::Duration(format!("{duration:?}: {e}")))?;
        if dur.is_zero() {
            return Err(FreezeError::Duration(format!(
                "{duration:?}: a freeze must last longer than zero"
            )));
        }
        if dur > MAX_DURATION {
            return Err(FreezeError::Duration(format!(
                "{duration:?}: {} is longer than the 31-day maximum",
                humantime::format_duration(dur)
            )));
        }
        let delta = TimeDelta::from_std(dur)
            .map_err(|e| FreezeError::Duration(format!("{duration:?}: {e}")))?;
        Ok(FreezeRule {
            name: name.to_string(),
            environments,
            schedules,
            cron_text: cron5.to_string(),
            duration: dur,
            delta,
        })
    }

    /// Whether the rule freezes `env` (an empty environment list means every environment).
    pub fn applies_to(&self, env: &str) -> bool {
        self.environments.is_empty() || self.environments.iter().any(|e| e == env)
    }

    /// The user's original 5-field cron text.
    pub fn cron_text(&self) -> &str {
        &self.cron_text
    }

    /// How long each window lasts (in local wall-clock time).
    pub fn duration(&self) -> std::time::Duration {
        self.duration
    }

    /// The window open at `now`, if any (start <= now < end). If several overlap, the one ending last.
    pub fn open_window(&self, tz: Tz, now: DateTime<Utc>) -> Option<Window> {
        let now_local = now.with_timezone(&tz).naive_local();
        // Window ends grow with starts (the naive->instant mapping is monotone), so the
        // window ending last is the one with the latest start at or before `now`.
        let mut latest = self.last_start_at_or_before(now_local);
        // During a DST fall-back, starts a little after `now`'s own wall-clock time
        // (in the repeated hour) may already have happened.
        let mut cursor = now_local;
        let horizon = now_local + TimeDelta::days(2);
        while let Some(s) = self.next_start_after(cursor) {
            if s > horizon {
                break;
            }
            match local_to_utc(tz, s) {
                Some(start) if start <= now => latest = Some(s),
                Some(_) => break,
                None => {}
            }
            cursor = s;
        }
        let window = self.window_at(tz, latest?)?;
        (window.start <= now && now < window.end).then_some(window)
    }

    /// The next window starting strictly after `now`.
    pub fn next_window(&self, tz: Tz, now: DateTime<Utc>) -> Option<Window> {
        let mut cursor = now.with_timezone(&tz).naive_local();
        loop {
            let s = self.next_start_after(cursor)?;
            if let Some(w) = self.window_at(tz, s) {
                if w.start > now {
                    return Some(w);
                }
            }
            cursor = s;
        }
    }

    /// The window that starts at naive local time `start`.
    fn window_at(&self, tz: Tz, start: NaiveDateTime) -> Option<Window> {
        let end = start.checked_add_signed(self.delta)?;
        Some(Window {
            name: self.name.clone(),
            start: local_to_utc(tz, start)?,
            end: local_to_utc(tz, end)?,
        })
    }

    /// First naive local start strictly after `t`.
    fn next_start_after(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let t = t.and_utc();
        self.schedules
            .iter()
            .filter_map(|s| s.after(&t).next())
            .min()
            .map(|d| d.naive_utc())
    }

    /// Last naive local start at or before `t`.
    fn last_start_at_or_before(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        // Starts are whole seconds; cron's reverse search is strictly before its argument.
        let bound = t
            .with_nanosecond(0)?
            .checked_add_signed(TimeDelta::seconds(1))?;
        let bound = bound.and_utc();
        self.schedules
            .iter()
            .filter_map(|s| s.after(&bound).next_back())
            .max()
            .map(|d| d.naive_utc())
    }
}

impl Window {
    /// Human text such as `"No Friday deploys" (Fri 2026-11-27 17:00 until Mon 2026-11-30 00:00 UTC)`,
    /// times shown in `tz` with its abbreviation (once if start and end share it).
    pub fn describe(&self, tz: Tz) -> String {
        let start = self.start.with_timezone(&tz);
        let end = self.end.with_timezone(&tz);
        let fmt = if start.second() != 0 || end.second() != 0 {
            "%a %Y-%m-%d %H:%M:%S"
        } else {
            "%a %Y-%m-%d %H:%M"
        };
        let (sz, ez) = (start.format("%Z").to_string(), end.format("%Z").to_string());
        let (s, e) = (start.format(fmt), end.format(fmt));
        if sz == ez {
            format!("\"{}\" ({s} until {e} {ez})", self.name)
        } else {
            format!("\"{}\" ({s} {sz} until {e} {ez})", self.name)
        }
    }
}

/// Every rule's open window for this environment at `now` (helper used by the gate check).
pub fn open_windows(rules: &[FreezeRule], env: &str, tz: Tz, now: DateTime<Utc>) -> Vec<Window> {
    rules
        .iter()
        .filter(|r| r.applies_to(env))
        .filter_map(|r| r.open_window(tz, now))
        .collect()
}

/// Maps a naive local time to an instant: ambiguous -> earliest; non-existent (DST gap)
/// -> the first existing local minute after it.
fn local_to_utc(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => {
            let mut t = local.with_second(0)?.with_nanosecond(0)?;
            for _ in 0..MAX_GAP_MINUTES {
                t = t.checked_add_signed(TimeDelta::minutes(1))?;
                if let Some(found) = tz.from_local_datetime(&t).earliest() {
                    return Some(found.with_timezone(&Utc));
                }
            }
            None
        }
    }
}

/// Crontab field descriptions: name, min, max.
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
    hint: &'static str,
}

const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    hint: "",
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    hint: "",
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    hint: "",
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
    hint: " (or jan-dec)",
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
        ("sunday", 0),
        ("monday", 1),
        ("tuesday", 2),
        ("wednesday", 3),
        ("thursday", 4),
        ("friday", 5),
        ("saturday", 6),
    ],
    hint: " (0 and 7 are Sunday, or sun-sat)",
};

/// cron 0.17 weekday names, indexed by crontab number (0 = Sunday).
const WEEKDAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Translates a 5-field crontab line into cron 0.17 schedules (seconds field first,
/// weekdays by name). Errors are the detail text for [`FreezeError::Cron`].
fn translate_cron(line: &str) -> Result<Vec<Schedule>, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("{line:?}: has {} fields", fields.len()));
    }
    let bad = |e: String| format!("{line:?}: {e}");
    let minute = render(&parse_field(&MINUTE, fields[0]).map_err(bad)?, &MINUTE);
    let hour = render(&parse_field(&HOUR, fields[1]).map_err(bad)?, &HOUR);
    let dom = render(
        &parse_field(&DAY_OF_MONTH, fields[2]).map_err(bad)?,
        &DAY_OF_MONTH,
    );
    let month = render(&parse_field(&MONTH, fields[3]).map_err(bad)?, &MONTH);
    let dow_set: BTreeSet<u32> = parse_field(&DAY_OF_WEEK, fields[4])
        .map_err(bad)?
        .into_iter()
        .map(|d| d % 7)
        .collect();
    let dow = if dow_set.len() == 7 {
        "*".to_string()
    } else {
        dow_set
            .iter()
            .map(|&d| WEEKDAY_NAMES[d as usize])
            .collect::<Vec<_>>()
            .join(",")
    };

    // Vixie cron: if both day fields are restricted, a day matching either one counts.
    let either = !fields[2].starts_with('*') && !fields[4].starts_with('*');
    let sources = if either {
        vec![
            format!("0 {minute} {hour} {dom} {month} *"),
            format!("0 {minute} {hour} * {month} {dow}"),
        ]
    } else {
        vec![format!("0 {minute} {hour} {dom} {month} {dow}")]
    };
    let schedules = sources
        .iter()
        .map(|s| s.parse::<Schedule>().map_err(|e| bad(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;

    // Reject dates that never occur (e.g. "0 0 31 2 *"), which would silently never freeze.
    let probe = chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc());
    if let Some(probe) = probe {
        if schedules.iter().all(|s| s.after(&probe).next().is_none()) {
            return Err(bad("never matches any date".to_string()));
        }
    }
    Ok(schedules)
}

/// Renders a value set back as a cron field: `*` if full, else a comma list.
fn render(set: &BTreeSet<u32>, spec: &FieldSpec) -> String {
    if set.len() as u32 == spec.max - spec.min + 1 {
        "*".to_string()
    } else {
        set.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
    }
}

/// Parses one crontab field (`*`, `n`, `a-b`, any of those with `/step`, comma lists, names).
fn parse_field(spec: &FieldSpec, text: &str) -> Result<BTreeSet<u32>, String> {
    let mut out = BTreeSet::new();
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!(
                "{} field {text:?} has an empty list item",
                spec.name
            ));
        }
        let (base, step) = match item.split_once('/') {
            Some((b, s)) => {
                let step = s.parse::<u32>().ok().filter(|&n| n > 0).ok_or_else(|| {
                    format!(
                        "{} step {s:?} in {item:?} must be a positive number",
                        spec.name
                    )
                })?;
                (b, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if base == "*" {
            (spec.min, spec.max)
        } else if let Some((a, b)) = base.split_once('-') {
            let lo = parse_value(spec, a)?;
            let mut hi = parse_value(spec, b)?;
            // "fri-sun": Sunday as the end of a weekday range is 7.
            if spec.name == DAY_OF_WEEK.name && hi == 0 && lo > 0 {
                hi = 7;
            }
            if lo > hi {
                return Err(format!("{} range {base:?} runs backwards", spec.name));
            }
            (lo, hi)
        } else {
            let v = parse_value(spec, base)?;
            // "n/step" means n through the maximum.
            (v, if step.is_some() { spec.max } else { v })
        };
        let step = step.unwrap_or(1) as usize;
        out.extend((lo..=hi).step_by(step));
    }
    Ok(out)
}

/// Parses a single number or name within a field, checking its range.
fn parse_value(spec: &FieldSpec, text: &str) -> Result<u32, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let v = text.parse::<u32>().unwrap_or(u32::MAX);
        if v < spec.min || v > spec.max {
            return Err(format!(
                "{} value {text} is out of range {}-{}{}",
                spec.name, spec.min, spec.max, spec.hint
            ));
        }
        return Ok(v);
    }
    let lower = text.to_ascii_lowercase();
    spec.names
        .iter()
        .find(|(n, _)| *n == lower)
        .map(|&(_, v)| v)
        .ok_or_else(|| {
            format!(
                "{} value {text:?} is not a number in {}-{}{}",
                spec.name, spec.min, spec.max, spec.hint
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Weekday};

    const SEED_CRON: &str = "0 17 * * 5";
    const SEED_DUR: &str = "55h";

    fn utc(s: &str) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M")
            .unwrap_or_else(|e| panic!("bad test time {s}: {e}"))
            .and_utc()
    }

    fn rule(cron: &str, dur: &str) -> FreezeRule {
        FreezeRule::parse("No Friday deploys", cron, dur, vec![])
            .unwrap_or_else(|e| panic!("{cron} / {dur}: {e}"))
    }

    fn seed() -> FreezeRule {
        rule(SEED_CRON, SEED_DUR)
    }

    #[test]
    fn seed_rule_open_window_utc() {
        let r = seed();
        let fri = utc("2026-11-27 17:00");
        let mon = utc("2026-11-30 00:00");
        // (now, expected window open?)
        let cases = [
            ("2026-11-26 12:00", false), // Thursday
            ("2026-11-27 16:59", false), // Friday just before
            ("2026-11-27 17:00", true),  // Friday exactly
            ("2026-11-27 17:30", true),
            ("2026-11-28 12:00", true),  // Saturday
            ("2026-11-29 23:59", true),  // Sunday last minute
            ("2026-11-30 00:00", false), // Monday midnight: open again
            ("2026-11-30 09:00", false),
            ("2026-12-02 12:00", false), // Wednesday
        ];
        for (now, frozen) in cases {
            let got = r.open_window(Tz::UTC, utc(now));
            if frozen {
                let w = got.unwrap_or_else(|| panic!("{now}: expected frozen"));
                assert_eq!((w.start, w.end), (fri, mon), "{now}");
                assert_eq!(w.name, "No Friday deploys");
            } else {
                assert_eq!(got, None, "{now}: expected not frozen");
            }
        }
    }

    #[test]
    fn next_window_from_thursday_is_friday_1700() {
        let r = seed();
        let cases = [
            ("2026-11-26 10:00", "2026-11-27 17:00", "2026-11-30 00:00"),
            ("2026-11-27 16:59", "2026-11-27 17:00", "2026-11-30 00:00"),
            // strictly after: at or inside a window, the next one is a week later
            ("2026-11-27 17:00", "2026-12-04 17:00", "2026-12-07 00:00"),
            ("2026-11-28 10:00", "2026-12-04 17:00", "2026-12-07 00:00"),
        ];
        for (now, start, end) in cases {
            let w = r.next_window(Tz::UTC, utc(now)).expect(now);
            assert_eq!((w.start, w.end), (utc(start), utc(end)), "{now}");
        }
    }

    #[test]
    fn weekday_numbering_and_names() {
        // (cron, weekdays of the successive starts after Monday 2026-11-23 10:00)
        let monday_10 = utc("2026-11-23 10:00");
        let cases: &[(&str, &[Weekday])] = &[
            ("0 17 * * 5", &[Weekday::Fri, Weekday::Fri]),
            ("0 17 * * fri", &[Weekday::Fri, Weekday::Fri]),
            ("0 17 * * FRI", &[Weekday::Fri, Weekday::Fri]),
            ("0 17 * * Friday", &[Weekday::Fri, Weekday::Fri]),
            ("0 9 * * 0", &[Weekday::Sun, Weekday::Sun]),
            ("0 9 * * 7", &[Weekday::Sun, Weekday::Sun]),
            ("0 9 * * sun", &[Weekday::Sun, Weekday::Sun]),
            ("0 9 * * 4", &[Weekday::Thu, Weekday::Thu]),
            ("0 9 * * 6", &[Weekday::Sat, Weekday::Sat]),
            (
                "0 9 * * 1-5",
                &[
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                    Weekday::Mon,
                    Weekday::Tue,
                ],
            ),
            (
                "0 9 * * mon-fri",
                &[
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                    Weekday::Mon,
                    Weekday::Tue,
                ],
            ),
            (
                "0 9 * * 1,3,5",
                &[Weekday::Wed, Weekday::Fri, Weekday::Mon, Weekday::Wed],
            ),
            (
                "0 9 * * 1-5/2",
                &[Weekday::Wed, Weekday::Fri, Weekday::Mon, Weekday::Wed],
            ),
            (
                "0 9 * * */2",
                &[Weekday::Tue, Weekday::Thu, Weekday::Sat, Weekday::Sun],
            ),
            (
                "0 9 * * 5-7",
                &[Weekday::Fri, Weekday::Sat, Weekday::Sun, Weekday::Fri],
            ),
            (
                "0 9 * * fri-sun",
                &[Weekday::Fri, Weekday::Sat, Weekday::Sun, Weekday::Fri],
            ),
            ("0 9 * * 6,0", &[Weekday::Sat, Weekday::Sun, Weekday::Sat]),
        ];
        for (cron, expected) in cases {
            let r = rule(cron, "1h");
            let mut now = monday_10;
            let mut got = vec![];
            for _ in 0..expected.len() {
                let w = r.next_window(Tz::UTC, now).expect(cron);
                assert_eq!(
                    (w.start.hour(), w.start.minute()),
                    (if cron.starts_with("0 17") { 17 } else { 9 }, 0),
                    "{cron}"
                );
                got.push(w.start.weekday());
                now = w.start;
            }
            assert_eq!(&got[..], *expected, "{cron}");
        }
    }

    #[test]
    fn translation_to_cron_017_form() {
        let cases = [
            ("0 17 * * 5", vec!["0 0 17 * * FRI"]),
            ("0 9 * * 0", vec!["0 0 9 * * SUN"]),
            ("0 9 * * 7", vec!["0 0 9 * * SUN"]),
            ("0 9 * * 0,7", vec!["0 0 9 * * SUN"]),
            ("0 9 * * 1-5", vec!["0 0 9 * * MON,TUE,WED,THU,FRI"]),
            ("0 9 * * 0-7", vec!["0 0 9 * * *"]),
            (
                "*/15 9-17/4 * jan,jul *",
                vec!["0 0,15,30,45 9,13,17 * 1,7 *"],
            ),
            (
                "0 0 13 * 5",
                vec!["0 0 0 13 * *", "0 0 0 * * FRI"], // both restricted: either matches
            ),
            (
                "0 0 */2 * 5",
                vec!["0 0 0 1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31 * FRI"],
            ),
        ];
        for (line, expected) in cases {
            let got: Vec<String> = translate_cron(line)
                .unwrap_or_else(|e| panic!("{line}: {e}"))
                .iter()
                .map(|s| s.source().to_string())
                .collect();
            assert_eq!(got, expected, "{line}");
        }
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_restricted() {
        // "0 0 13 * 5" = every 13th AND every Friday (Vixie cron semantics).
        let r = rule("0 0 13 * 5", "1h");
        let cases = [
            ("2026-10-10 00:00", "2026-10-13 00:00"), // Tuesday the 13th
            ("2026-10-13 00:00", "2026-10-16 00:00"), // then Friday
            ("2026-10-16 00:00", "2026-10-23 00:00"),
        ];
        for (now, start) in cases {
            let w = r.next_window(Tz::UTC, utc(now)).expect(now);
            assert_eq!(w.start, utc(start), "{now}");
        }
    }

    #[test]
    fn new_york_fall_back_weekend() {
        // DST ends Sunday 2026-11-01 02:00 EDT -> 01:00 EST.
        let tz: Tz = "America/New_York".parse().unwrap();
        let r = seed();
        let start = utc("2026-10-30 21:00"); // Friday 17:00 EDT
        let end = utc("2026-11-02 05:00"); // Monday 00:00 EST
        let cases = [
            ("2026-10-30 20:59", None),
            ("2026-10-30 21:00", Some((start, end))),
            ("2026-11-01 06:30", Some((start, end))), // in the repeated hour
            ("2026-11-02 04:59", Some((start, end))), // Sunday 23:59 EST
            ("2026-11-02 05:00", None),
        ];
        for (now, want) in cases {
            let got = r.open_window(tz, utc(now)).map(|w| (w.start, w.end));
            assert_eq!(got, want, "{now}");
        }
        assert_eq!(
            end - start,
            TimeDelta::hours(56),
            "wall-clock 55h is 56h real"
        );
        let w = r.next_window(tz, utc("2026-10-29 12:00")).unwrap();
        assert_eq!((w.start, w.end), (start, end));
        assert_eq!(
            w.describe(tz),
            "\"No Friday deploys\" (Fri 2026-10-30 17:00 EDT until Mon 2026-11-02 00:00 EST)"
        );
    }

    #[test]
    fn ambiguous_local_start_takes_earliest() {
        let tz: Tz = "America/New_York".parse().unwrap();
        // 01:30 on 2026-11-01 happens twice; the window opens at the first (EDT, 05:30 UTC)
        // and ends at 02:30 EST (07:30 UTC).
        let r = rule("30 1 * * 0", "1h");
        let w = r.next_window(tz, utc("2026-10-31 12:00")).unwrap();
        assert_eq!(
            (w.start, w.end),
            (utc("2026-11-01 05:30"), utc("2026-11-01 07:30"))
        );
        let cases = [
            ("2026-11-01 05:29", false),
            ("2026-11-01 05:30", true),
            ("2026-11-01 06:40", true), // 01:40 EST, second pass through the hour
            ("2026-11-01 07:29", true),
            ("2026-11-01 07:30", false),
        ];
        for (now, frozen) in cases {
            assert_eq!(r.open_window(tz, utc(now)).is_some(), frozen, "{now}");
        }
        // now = 01:10 EST (second pass); a 01:55 start already happened at 01:55 EDT.
        let r = rule("55 1 * * *", "10m");
        let w = r.open_window(tz, utc("2026-11-01 06:10")).expect("open");
        assert_eq!(
            (w.start, w.end),
            (utc("2026-11-01 05:55"), utc("2026-11-01 07:05"))
        );
        // ...and the next one is the following night.
        let w = r.next_window(tz, utc("2026-11-01 06:10")).unwrap();
        assert_eq!(w.start, utc("2026-11-02 06:55"));
    }

    #[test]
    fn berlin_spring_forward_gap_opens_at_next_existing_minute() {
        // 2026-03-29 02:00 CET -> 03:00 CEST; 02:30 does not exist that day.
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let r = rule("30 2 * * 0", "1h");
        let w = r
            .next_window(tz, utc("2026-03-28 12:00"))
            .expect("not skipped");
        // opens 03:00 CEST (01:00 UTC), ends 02:30 + 1h = 03:30 CEST (01:30 UTC)
        assert_eq!(
            (w.start, w.end),
            (utc("2026-03-29 01:00"), utc("2026-03-29 01:30"))
        );
        let cases = [
            ("2026-03-29 00:59", false),
            ("2026-03-29 01:00", true),
            ("2026-03-29 01:29", true),
            ("2026-03-29 01:30", false),
        ];
        for (now, frozen) in cases {
            assert_eq!(r.open_window(tz, utc(now)).is_some(), frozen, "{now}");
        }
        // The week after is normal again: 02:30 CEST = 00:30 UTC.
        let w = r.next_window(tz, utc("2026-03-29 02:00")).unwrap();
        assert_eq!(w.start, utc("2026-04-05 00:30"));
    }

    #[test]
    fn berlin_duration_is_wall_clock_across_spring_forward() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let r = seed();
        let start = utc("2026-03-27 16:00"); // Friday 17:00 CET
        let end = utc("2026-03-29 22:00"); // Monday 2026-03-30 00:00 CEST
        let w = r.open_window(tz, utc("2026-03-28 12:00")).expect("frozen");
        assert_eq!((w.start, w.end), (start, end));
        assert_eq!(end - start, TimeDelta::hours(54));
        assert_eq!(
            r.open_window(tz, utc("2026-03-29 21:59")).map(|w| w.end),
            Some(end)
        );
        assert_eq!(r.open_window(tz, utc("2026-03-29 22:00")), None);
        assert_eq!(
            w.describe(tz),
            "\"No Friday deploys\" (Fri 2026-03-27 17:00 CET until Mon 2026-03-30 00:00 CEST)"
        );
    }

    #[test]
    fn overlapping_windows_pick_the_one_ending_last() {
        let r = rule("0 * * * *", "90m");
        let cases = [
            ("2026-11-27 10:20", "2026-11-27 10:00", "2026-11-27 11:30"),
            ("2026-11-27 10:45", "2026-11-27 10:00", "2026-11-27 11:30"),
            ("2026-11-27 11:00", "2026-11-27 11:00", "2026-11-27 12:30"),
        ];
        for (now, start, end) in cases {
            let w = r.open_window(Tz::UTC, utc(now)).expect(now);
            assert_eq!((w.start, w.end), (utc(start), utc(end)), "{now}");
        }
    }

    #[test]
    fn long_duration_found_by_open_window() {
        // Monthly, 30 days: open almost all the time.
        let r = rule("0 0 1 * *", "30days");
        let w = r
            .open_window(Tz::UTC, utc("2026-01-30 12:00"))
            .expect("open");
        assert_eq!(
            (w.start, w.end),
            (utc("2026-01-01 00:00"), utc("2026-01-31 00:00"))
        );
        assert_eq!(r.open_window(Tz::UTC, utc("2026-01-31 12:00")), None);
    }

    #[test]
    fn dense_and_sparse_schedules() {
        // Every minute for 31 days: the latest start is the current minute.
        let r = rule("* * * * *", "31days");
        let w = r.open_window(Tz::UTC, utc("2026-11-27 17:30")).unwrap();
        assert_eq!(
            (w.start, w.end),
            (utc("2026-11-27 17:30"), utc("2026-12-28 17:30"))
        );
        let w = r.next_window(Tz::UTC, utc("2026-11-27 17:30")).unwrap();
        assert_eq!(w.start, utc("2026-11-27 17:31"));
        // Leap day only.
        let r = rule("0 0 29 2 *", "1day");
        let w = r.next_window(Tz::UTC, utc("2026-03-01 00:00")).unwrap();
        assert_eq!(w.start, utc("2028-02-29 00:00"));
        assert_eq!(
            r.open_window(Tz::UTC, utc("2028-02-29 23:59"))
                .map(|w| w.start),
            Some(w.start)
        );
        assert_eq!(r.open_window(Tz::UTC, utc("2028-03-01 00:00")), None);
    }

    #[test]
    fn bad_inputs_are_rejected_with_clear_messages() {
        // (cron, duration, is cron error, fragments the message must contain)
        let cases: &[(&str, &str, bool, &[&str])] = &[
            (
                "0 17 * 5",
                "55h",
                true,
                &["\"0 17 * 5\"", "has 4 fields", EXPECTED_CRON],
            ),
            (
                "0 0 17 * * 5",
                "55h",
                true,
                &["has 6 fields", "\"0 17 * * 5\""],
            ),
            ("", "55h", true, &["has 0 fields"]),
            (
                "0 25 * * 5",
                "55h",
                true,
                &["hour value 25 is out of range 0-23"],
            ),
            (
                "60 17 * * 5",
                "55h",
                true,
                &["minute value 60 is out of range 0-59"],
            ),
            (
                "0 17 0 * *",
                "55h",
                true,
                &["day-of-month value 0 is out of range 1-31"],
            ),
            (
                "0 17 * 13 *",
                "55h",
                true,
                &["month value 13 is out of range 1-12"],
            ),
            (
                "0 17 * * 8",
                "55h",
                true,
                &["day-of-week value 8 is out of range 0-7", "Sunday"],
            ),
            ("0 17 * * frx", "55h", true, &["day-of-week value \"frx\""]),
            (
                "0 17 * * 5-1",
                "55h",
                true,
                &["range \"5-1\" runs backwards"],
            ),
            ("0 17 * * */0", "55h", true, &["step \"0\""]),
            ("0 17 * * 1,,5", "55h", true, &["empty list item"]),
            ("0 17 * * ?", "55h", true, &["\"?\""]),
            ("0 0 31 2 *", "1h", true, &["never matches any date"]),
            (
                "0 17 * * 5",
                "55 lightyears",
                false,
                &["\"55 lightyears\"", "humantime"],
            ),
            ("0 17 * * 5", "0s", false, &["\"0s\"", "longer than zero"]),
            ("0 17 * * 5", "0", false, &["longer than zero"]),
            ("0 17 * * 5", "", false, &["\"\""]),
            ("0 17 * * 5", "32days", false, &["31-day maximum"]),
        ];
        for (cron, dur, is_cron, fragments) in cases {
            let err = FreezeRule::parse("r", cron, dur, vec![])
                .expect_err(&format!("{cron:?} {dur:?} should fail"));
            assert_eq!(matches!(err, FreezeError::Cron(_)), *is_cron, "{err}");
            let msg = err.to_string();
            assert!(!msg.contains('\n'), "one line: {msg}");
            for f in *fragments {
                assert!(msg.contains(f), "{cron:?} {dur:?}: {msg:?} lacks {f:?}");
            }
        }
    }

    #[test]
    fn accessors_keep_the_original_text() {
        let r = FreezeRule::parse("x", "0 17 * * 5", " 55h ", vec!["prod".into()]).unwrap();
        assert_eq!(r.cron_text(), "0 17 * * 5");
        assert_eq!(r.duration(), std::time::Duration::from_secs(55 * 3600));
        assert_eq!(r.name, "x");
        assert_eq!(r.environments, vec!["prod".to_string()]);
        // The extremes are accepted.
        assert!(FreezeRule::parse("x", "* * * * *", "1s", vec![]).is_ok());
        assert!(FreezeRule::parse("x", "0 0 * * *", "31days", vec![]).is_ok());
    }

    #[test]
    fn environment_filtering_and_open_windows() {
        let all = FreezeRule::parse("weekend", SEED_CRON, SEED_DUR, vec![]).unwrap();
        let prod = FreezeRule::parse(
            "prod nights",
            "0 22 * * *",
            "8h",
            vec!["prod".into(), "prod-eu".into()],
        )
        .unwrap();
        let staging =
            FreezeRule::parse("staging fri", SEED_CRON, "1h", vec!["staging".into()]).unwrap();
        let cases = [
            (&all, "prod", true),
            (&all, "anything", true),
            (&prod, "prod", true),
            (&prod, "prod-eu", true),
            (&prod, "staging", false),
            (&prod, "Prod", false),
            (&staging, "staging", true),
            (&staging, "prod", false),
        ];
        for (r, env, want) in cases {
            assert_eq!(r.applies_to(env), want, "{} / {env}", r.name);
        }

        let rules = vec![all, prod, staging];
        let names = |env: &str, now: &str| -> Vec<String> {
            open_windows(&rules, env, Tz::UTC, utc(now))
                .into_iter()
                .map(|w| w.name)
                .collect()
        };
        // Friday 17:30 -> weekend + staging fri (staging); Friday 23:00 -> weekend + prod nights (prod).
        let cases: &[(&str, &str, &[&str])] = &[
            ("staging", "2026-11-27 17:30", &["weekend", "staging fri"]),
            ("prod", "2026-11-27 17:30", &["weekend"]),
            ("prod", "2026-11-27 23:00", &["weekend", "prod nights"]),
            ("prod-eu", "2026-11-25 23:00", &["prod nights"]),
            ("dev", "2026-11-25 23:00", &[]),
            ("staging", "2026-11-25 12:00", &[]),
            ("prod", "2026-11-25 12:00", &[]),
        ];
        for (env, now, want) in cases {
            assert_eq!(names(env, now), *want, "{env} at {now}");
        }
    }

    #[test]
    fn describe_in_utc_and_other_zones() {
        let r = seed();
        let w = r.open_window(Tz::UTC, utc("2026-11-27 17:30")).unwrap();
        assert_eq!(
            w.describe(Tz::UTC),
            "\"No Friday deploys\" (Fri 2026-11-27 17:00 until Mon 2026-11-30 00:00 UTC)"
        );
        let tz: Tz = "America/New_York".parse().unwrap();
        let w = r.open_window(tz, utc("2026-11-28 12:00")).unwrap();
        assert_eq!(
            w.describe(tz),
            "\"No Friday deploys\" (Fri 2026-11-27 17:00 until Mon 2026-11-30 00:00 EST)"
        );
        let w = rule("0 17 * * 5", "90s")
            .open_window(Tz::UTC, utc("2026-11-27 17:01"))
            .unwrap();
        assert_eq!(
            w.describe(Tz::UTC),
            "\"No Friday deploys\" (Fri 2026-11-27 17:00:00 until Fri 2026-11-27 17:01:30 UTC)"
        );
    }
}
