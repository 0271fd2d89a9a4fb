//! Benchmark on a real load balancer: steady load through HAProxy (a loopback load generator at
//! 200 requests/s) while greenlight switches colours; failed requests during a healthy switch,
//! and the time from a fault starting to traffic back on the old colour (Prometheus-judged).
//! Reuses the integration tests' setup. Run with `cargo bench --bench haproxy`.

#[path = "../tests/it/harness.rs"]
#[allow(dead_code)]
mod harness;

#[path = "../tests/it/haproxy_prometheus.rs"]
#[allow(dead_code)]
mod haproxy_prometheus;

use haproxy_prometheus::{Lb, Load};
use harness::LONG;
use std::time::{Duration, Instant};

async fn wait_live(lb: &Lb, colour: &str) -> Instant {
    let deadline = Instant::now() + LONG;
    loop {
        if lb.live().await.as_deref() == Some(colour) {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "{colour} never became live");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn main() {
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
        let (ok1, failed1) = (load.ok.load(std::sync::atomic::Ordering::Relaxed), load.failed.load(std::sync::atomic::Ordering::Relaxed));

        bot.say("bob", "/deploy v1.2.0-faulty lb").await;
        bot.approve_all(2, "alice").await;
        wait_live(&lb, "blue").await;
        lb.arm("blue").await;
        let fault = Instant::now();
        let back = wait_live(&lb, "green").await;
        let took = back - fault;
        bot.wait_text("Run 2 rolled back", LONG).await;
        load.stop().await;

        println!("\n| what | measured | target |\n|---|---|---|");
        println!("| requests through HAProxy (200/s) across a healthy deploy and switch | {ok1} ok, {failed1} failed | 0 failed |");
        println!(
            "| fault starts (faulty version armed) -> HAProxy back on the old colour, evaluation interval 2 s, Prometheus scrape 1 s, window 5 s | {:.2} s | < interval + 1 s = 3 s |",
            took.as_secs_f64()
        );
    });
}
