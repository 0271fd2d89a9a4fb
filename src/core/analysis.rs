//! Rollback triggers from measured values: error rate, latency over a baseline, critical-path
//! smoke failure. No data is inconclusive, never a pass.

use serde::{Deserialize, Serialize};

/// What a metrics provider measured over one window for one colour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub requests: f64,
    /// Fraction of 5xx answers; `None` when there were no requests.
    pub error_rate: Option<f64>,
    /// p99 latency in seconds; `None` without observations.
    pub p99_seconds: Option<f64>,
}

impl Measurement {
    pub fn describe(&self) -> String {
        format!(
            "{} requests, error rate {}, p99 {}",
            self.requests.round(),
            self.error_rate.map(pct).unwrap_or_else(|| "n/a".into()),
            self.p99_seconds.map(ms).unwrap_or_else(|| "n/a".into())
        )
    }
}

/// A sample: values, or the reason there are none (provider down, timeout, empty result).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Sample {
    Data(Measurement),
    Unavailable(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub error_rate: f64,
    pub latency_factor: f64,
    pub min_requests: u64,
    /// A p99 under this many seconds is never called a spike (tiny baselines are noisy).
    pub latency_floor: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Verdict {
    /// Everything measured is within the thresholds.
    Pass { detail: String },
    /// A rollback trigger fired; `reason` says what, measured against what.
    Breach { reason: String },
    /// Nothing conclusive: never a pass.
    Inconclusive { reason: String },
}

pub fn pct(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    let p = x * 100.0;
    if p != 0.0 && p.abs() < 0.1 {
        format!("{p:.3}%")
    } else {
        format!("{p:.1}%")
    }
}

pub fn ms(secs: f64) -> String {
    format!("{:.0} ms", secs * 1000.0)
}

/// Is a baseline usable for the latency trigger? `Err` says why not (posted in the thread).
pub fn usable_baseline(baseline: Option<&Sample>, th: &Thresholds) -> Result<f64, String> {
    match baseline {
        None => Err("no live colour before this deploy (first deploy): the latency trigger is skipped".into()),
        Some(Sample::Unavailable(why)) => Err(format!("no baseline from the live colour ({why}): the latency trigger is skipped")),
        Some(Sample::Data(m)) if m.requests < th.min_requests as f64 => Err(format!(
            "the live colour's baseline has only {} requests (minimum {}): the latency trigger is skipped",
            m.requests.round(),
            th.min_requests
        )),
        Some(Sample::Data(m)) => match m.p99_seconds {
            Some(p) if p.is_finite() => Ok(p),
            _ => Err("the live colour's baseline has no latency data: the latency trigger is skipped".into()),
        },
    }
}

/// One evaluation during monitoring. `smoke` is the critical-path check's result, if run.
pub fn evaluate(
    sample: &Sample,
    baseline_p99: Option<f64>,
    smoke: Option<&Result<(), String>>,
    th: &Thresholds,
) -> Verdict {
    let mut f = Findings::default();
    match sample {
        Sample::Unavailable(why) => f.inconclusive = Some(format!("no metrics data: {why}")),
        Sample::Data(m) if m.requests < th.min_requests as f64 => {
            f.inconclusive = Some(format!(
                "only {} requests in the window (minimum {})",
                m.requests.round(),
                th.min_requests
            ))
        }
        Sample::Data(m) => {
            f.error_rate(m, th);
            f.latency(m, baseline_p99, th);
        }
    }
    if let Some(Err(why)) = smoke {
        f.breaches.push(format!("core business flow broken: {why}"));
    }
    if !f.breaches.is_empty() {
        return Verdict::Breach {
            reason: f.breaches.join("; "),
        };
    }
    if let Some(reason) = f.inconclusive {
        return Verdict::Inconclusive { reason };
    }
    if let Some(Ok(())) = smoke {
        f.detail.push("critical path ok".into());
    }
    Verdict::Pass {
        detail: f.detail.join(", "),
    }
}

/// What one check found, before the verdict: a breach wins over missing data, which wins over
/// a pass.
#[derive(Default)]
struct Findings {
    breaches: Vec<String>,
    inconclusive: Option<String>,
    detail: Vec<String>,
}

impl Findings {
    fn error_rate(&mut self, m: &Measurement, th: &Thresholds) {
        match m.error_rate {
            Some(e) if e.is_finite() && e > th.error_rate => self.breaches.push(format!(
                "error rate {} is above the {} threshold ({} requests)",
                pct(e),
                pct(th.error_rate),
                m.requests.round()
            )),
            Some(e) if e.is_finite() => self.detail.push(format!(
                "error rate {} (threshold {})",
                pct(e),
                pct(th.error_rate)
            )),
            _ => self.inconclusive = Some("error rate is NaN or missing".into()),
        }
    }

    /// The latency trigger needs a baseline; without one the p99 is only reported.
    fn latency(&mut self, m: &Measurement, baseline_p99: Option<f64>, th: &Thresholds) {
        let Some(base) = baseline_p99 else {
            if let Some(p) = m.p99_seconds {
                self.detail.push(format!("p99 {} (no baseline)", ms(p)));
            }
            return;
        };
        let Some(p) = m.p99_seconds.filter(|p| p.is_finite()) else {
            if self.inconclusive.is_none() {
                self.inconclusive = Some("p99 latency is NaN or missing".into())
            }
            return;
        };
        let limit = (base * th.latency_factor).max(th.latency_floor);
        if p > limit {
            self.breaches.push(format!(
                "p99 latency {} is more than {:.0}% above the baseline {} (limit {})",
                ms(p),
                (th.latency_factor - 1.0) * 100.0,
                ms(base),
                ms(limit)
            ));
        } else {
            self.detail.push(format!(
                "p99 {} (baseline {}, limit {})",
                ms(p),
                ms(base),
                ms(limit)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TH: Thresholds = Thresholds {
        error_rate: 0.01,
        latency_factor: 3.0,
        min_requests: 20,
        latency_floor: 0.05,
    };

    fn data(requests: f64, err: Option<f64>, p99: Option<f64>) -> Sample {
        Sample::Data(Measurement {
            requests,
            error_rate: err,
            p99_seconds: p99,
        })
    }

    #[test]
    fn verdicts() {
        let ok: Result<(), String> = Ok(());
        let broken: Result<(), String> = Err("checkout answered 500".into());
        #[allow(clippy::type_complexity)]
        let cases: Vec<(Sample, Option<f64>, Option<&Result<(), String>>, &str, &str)> = vec![
            (
                data(100.0, Some(0.0), Some(0.1)),
                Some(0.1),
                None,
                "pass",
                "error rate 0.0%",
            ),
            (
                data(100.0, Some(0.01), Some(0.1)),
                Some(0.1),
                None,
                "pass",
                "1.0%",
            ),
            (
                data(100.0, Some(0.011), Some(0.1)),
                Some(0.1),
                None,
                "breach",
                "error rate 1.1% is above the 1.0% threshold",
            ),
            (data(100.0, Some(0.5), None), None, None, "breach", "50.0%"),
            (
                data(100.0, Some(0.0), Some(0.31)),
                Some(0.1),
                None,
                "breach",
                "p99 latency 310 ms is more than 200% above the baseline 100 ms",
            ),
            (
                data(100.0, Some(0.0), Some(0.29)),
                Some(0.1),
                None,
                "pass",
                "p99 290 ms",
            ),
            // tiny baselines: the floor stops noise from counting as a spike
            (
                data(100.0, Some(0.0), Some(0.004)),
                Some(0.001),
                None,
                "pass",
                "limit 50 ms",
            ),
            (
                data(100.0, Some(0.0), Some(0.3)),
                Some(0.001),
                None,
                "breach",
                "p99 latency 300 ms",
            ),
            (
                data(5.0, Some(0.0), Some(0.1)),
                Some(0.1),
                None,
                "inconclusive",
                "only 5 requests",
            ),
            (
                Sample::Unavailable("prometheus: connection refused".into()),
                Some(0.1),
                None,
                "inconclusive",
                "connection refused",
            ),
            (
                data(100.0, Some(f64::NAN), Some(0.1)),
                Some(0.1),
                None,
                "inconclusive",
                "NaN",
            ),
            (
                data(100.0, None, Some(0.1)),
                Some(0.1),
                None,
                "inconclusive",
                "missing",
            ),
            (
                data(100.0, Some(0.0), None),
                Some(0.1),
                None,
                "inconclusive",
                "p99",
            ),
            (
                data(100.0, Some(0.0), Some(0.1)),
                Some(0.1),
                Some(&broken),
                "breach",
                "core business flow broken: checkout answered 500",
            ),
            (
                Sample::Unavailable("down".into()),
                None,
                Some(&broken),
                "breach",
                "core business flow",
            ),
            (
                data(100.0, Some(0.0), Some(0.1)),
                None,
                Some(&ok),
                "pass",
                "critical path ok",
            ),
            (
                data(100.0, Some(0.5), Some(1.0)),
                Some(0.1),
                None,
                "breach",
                "; p99 latency",
            ),
        ];
        for (sample, base, smoke, kind, text) in cases {
            let v = evaluate(&sample, base, smoke, &TH);
            let (k, t) = match &v {
                Verdict::Pass { detail } => ("pass", detail),
                Verdict::Breach { reason } => ("breach", reason),
                Verdict::Inconclusive { reason } => ("inconclusive", reason),
            };
            assert_eq!(k, kind, "{sample:?} -> {v:?}");
            assert!(t.contains(text), "{v:?} should contain {text:?}");
        }
    }

    #[test]
    fn baselines() {
        assert!(usable_baseline(None, &TH)
            .unwrap_err()
            .contains("first deploy"));
        assert!(usable_baseline(Some(&data(3.0, Some(0.0), Some(0.1))), &TH)
            .unwrap_err()
            .contains("only 3 requests"));
        assert!(usable_baseline(Some(&Sample::Unavailable("x".into())), &TH).is_err());
        assert_eq!(
            usable_baseline(Some(&data(30.0, Some(0.0), Some(0.1))), &TH),
            Ok(0.1)
        );
    }
}
