//! Benchmark on a real load balancer: steady load through HAProxy (a loopback load generator at
//! 200 requests/s) while greenlight switches colours; failed requests during a healthy switch,
//! and the time from a fault starting to traffic back on the old colour (Prometheus-judged),
//! for error spikes (`-faulty`) and latency spikes (`-slow`), 20 runs each (alternating).
//! Reuses the integration tests' setup. Run with `cargo bench --bench haproxy`;
//! `GREENLIGHT_BENCH_ROLLBACKS=N` changes the number of runs per kind, `GREENLIGHT_BENCH_ARM=switch`
//! starts every fault right at the switch instead of spread over three intervals,
//! `GREENLIGHT_BENCH_VERBOSE=1`
//! prints each run's checks and events, `GREENLIGHT_BENCH_KEEP_LOG=FILE` keeps the bot's log.

#[path = "../tests/it/harness.rs"]
#[allow(dead_code)]
mod harness;

#[path = "../tests/it/haproxy_prometheus.rs"]
#[allow(dead_code)]
mod haproxy_prometheus;

use haproxy_prometheus::{Lb, Load, Rollback};
use harness::LONG;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn summary(xs: &[Duration]) -> (f64, f64, f64) {
    let mut v: Vec<f64> = xs.iter().map(Duration::as_secs_f64).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

fn main() {
    let runs: u64 = std::env::var("GREENLIGHT_BENCH_ROLLBACKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let verbose = std::env::var_os("GREENLIGHT_BENCH_VERBOSE").is_some();
    // Where the fault starts: spread evenly over the first three monitoring intervals (every
    // phase against the checks, on a fresh colour and on one with a full window of healthy
    // traffic), or `GREENLIGHT_BENCH_ARM=switch`: right when HAProxy moves the traffic.
    let at_switch = std::env::var("GREENLIGHT_BENCH_ARM").as_deref() == Ok("switch");
    let interval = haproxy_prometheus::MONITOR_INTERVAL;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let lb = Lb::start(true).await;
        let bot = &lb.bot;
        let load = Load::start(&lb.frontend, 4, Duration::from_millis(20));
        lb.wait_metrics("blue").await;

        bot.say("alice", "/deploy v1.1.0 lb").await;
        bot.approve_all(1, "bob").await;
        bot.wait_text("Run 1 stable", LONG).await;
        let (ok1, failed1) = (
            load.ok.load(Ordering::Relaxed),
            load.failed.load(Ordering::Relaxed),
        );

        // Green is live from here on; every bad version goes to blue and is rolled back.
        let (mut errors, mut latency) = (Vec::new(), Vec::new());
        let mut run = 1;
        for i in 0..runs {
            for kind in ["faulty", "slow"] {
                run += 1;
                if run > 2 {
                    // The last bad version was torn down: keep its samples out of this run.
                    lb.wait_window_clear("blue").await;
                }
                let arm_after = if at_switch {
                    Duration::ZERO
                } else {
                    (interval * 3).mul_f64(i as f64 / runs as f64)
                };
                let r: Rollback = lb
                    .measure_rollback(run, &format!("v2.{i}.0-{kind}"), "blue", "green", arm_after)
                    .await;
                let trigger = r
                    .status
                    .iter()
                    .find(|l| l.starts_with("✖"))
                    .cloned()
                    .unwrap_or_default();
                eprintln!(
                    "run {:>2} {:<14} armed +{:.2} s  {:.3} s  {}",
                    r.run,
                    r.version,
                    arm_after.as_secs_f64(),
                    r.took.as_secs_f64(),
                    trigger
                );
                if verbose {
                    for l in r.status.iter().filter(|l| l.contains("check")) {
                        eprintln!("        {l}");
                    }
                    for e in &r.events {
                        eprintln!("        {e}");
                    }
                }
                if kind == "faulty" {
                    errors.push(r.took);
                } else {
                    latency.push(r.took);
                }
            }
        }
        load.stop().await;
        if let Some(to) = std::env::var_os("GREENLIGHT_BENCH_KEEP_LOG") {
            std::fs::copy(lb.bot.dir.join("bot.log"), to).unwrap();
        }

        let (em, emin, emax) = summary(&errors);
        let (lm, lmin, lmax) = summary(&latency);
        println!("\n| what | measured | target |\n|---|---|---|");
        println!("| requests through HAProxy (200/s) across a healthy deploy and switch | {ok1} ok, {failed1} failed | 0 failed |");
        println!(
            "| error spike (faulty version armed {}) -> HAProxy back on the old colour, {runs} runs, interval {:?}, Prometheus scrape {}, window {} | median {em:.2} s, min {emin:.2} s, max {emax:.2} s | every run <= interval + 1 s |",
            if at_switch { "at the switch" } else { "0-6 s after the switch" },
            interval,
            lb.scrape_interval,
            lb.window
        );
        println!(
            "| latency spike (slow version armed) -> HAProxy back on the old colour, {runs} runs, same setup | median {lm:.2} s, min {lmin:.2} s, max {lmax:.2} s | every run <= interval + 1 s |",
        );
    });
}
