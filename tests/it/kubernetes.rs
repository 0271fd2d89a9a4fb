//! The Kubernetes example configs (`config/examples/kubernetes.toml`) against a stand-in
//! `kubectl` on PATH that records its arguments: no cluster can run here.

use crate::harness::*;

fn calls(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_examples_drive_kubectl() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // The stand-in kubectl: one line per call, arguments separated by " | ".
    let bin = d.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = d.join("kubectl.log");
    std::fs::write(
        bin.join("kubectl"),
        format!("#!/bin/sh\nout=\"\"\nfor a in \"$@\"; do out=\"$out$a | \"; done\necho \"$out\" >> {}\nif [ \"$3\" = get ]; then cat {}; else echo ok; fi\n", log.display(), d.join("selector").display()),
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("kubectl"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    // The example, with the colours' Services replaced by demo apps on loopback and short
    // monitoring; everything else as documented.
    let app = DemoApp::start("v1.0.0-faulty", "blue");
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/kubernetes.toml"),
    )
    .unwrap();
    let cfg = example
        .replace("http://app-blue.shop.svc.cluster.local", &app.1)
        .replace("http://app-green.shop.svc.cluster.local", &app.1)
        .replace("http://app.shop-staging.svc.cluster.local", &app.1)
        .replace("provider = \"prometheus\"\nurl = \"http://prometheus.monitoring.svc:9090\"\nwindow = \"2m\"", "provider = \"scrape\"")
        .replace("duration = \"10m\"\ninterval = \"30s\"", "duration = \"2s\"\ninterval = \"1s\"\nmin_requests = 1")
        .replace("duration = \"5m\"\ninterval = \"30s\"", "duration = \"3s\"\ninterval = \"1s\"\nmin_requests = 1");
    assert!(
        cfg.contains("provider = \"scrape\"") && cfg.contains("duration = \"2s\""),
        "the example changed shape"
    );
    std::fs::write(d.join("greenlight.toml"), &cfg).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The cluster's Service selects blue today.
    std::fs::write(d.join("selector"), "blue").unwrap();
    let bot = Bot::start_with(d, &[], &[("PATH", path.as_str())]).await;

    // Blue-green on prod: set image + rollout status on the idle Deployment, then the Service
    // selector patched to that colour.
    bot.say("alice", "/deploy v1.2.0 prod").await;
    bot.approve_all(1, "bob").await;
    bot.wait_text("✅ Deployment successful. Monitoring.", LONG)
        .await;
    bot.wait_for("run 1 over", LONG, |m| {
        text(m).starts_with("Run 1 status (unverified)")
    })
    .await;
    let all = calls(&log);
    // Asked at start and again before the deploy: the Service selects blue.
    let query =
        "--namespace | shop | get | service | app | -o | jsonpath={.spec.selector.colour} | ";
    assert_eq!(
        all.iter().filter(|l| l.as_str() == query).count(),
        2,
        "{all:?}"
    );
    let c: Vec<&String> = all.iter().filter(|l| l.as_str() != query).collect();
    assert_eq!(c[0], "--namespace | shop | set | image | deployment/app-green | app=registry.example.com/shop/app:v1.2.0 | ", "{c:?}");
    assert_eq!(
        c[1], "--namespace | shop | rollout | status | deployment/app-green | --timeout=5m | ",
        "{c:?}"
    );
    assert_eq!(
        c[2],
        r#"--namespace | shop | patch | service | app | --type=merge | -p | {"spec":{"selector":{"app":"app","colour":"green"}}} | "#,
        "{c:?}"
    );

    // Rolling update on staging: set image, rollout status; a failure after the rollout runs
    // `kubectl rollout undo`.
    bot.say("alice", "/deploy v2.0.0 staging").await;
    bot.approve_all(2, "bob").await;
    bot.wait_for("run 2 over", LONG, |m| {
        text(m).starts_with("Run 2 status (unverified)")
    })
    .await;
    bot.say("alice", "/deploy v2.1.0 staging").await;
    bot.approve_all(3, "bob").await;
    bot.wait_for("run 3 monitoring", LONG, |m| {
        text(m).starts_with("Run 3 status (monitoring")
    })
    .await;
    // Users keep using the app (bounded: stops with the test).
    let url = app.1.clone();
    let traffic = tokio::spawn(async move {
        let c = reqwest::Client::new();
        for _ in 0..3000 {
            let _ = c.get(format!("{url}/")).send().await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    });
    // The release goes bad: the critical path fails.
    reqwest::Client::new()
        .post(format!("{}/_demo/live", app.1))
        .send()
        .await
        .unwrap();
    bot.wait_text("❌ Deployment failed. Rolling back.", LONG)
        .await;
    bot.wait_text("Run 3 rolled back", LONG).await;
    traffic.abort();
    let c = calls(&log);
    let staging: Vec<&String> = c.iter().filter(|l| l.contains("shop-staging")).collect();
    assert!(staging.iter().any(|l| l.as_str() == "--namespace | shop-staging | set | image | deployment/app | app=registry.example.com/shop/app:v2.1.0 | "), "{staging:?}");
    assert!(
        staging.iter().any(|l| l.as_str()
            == "--namespace | shop-staging | rollout | status | deployment/app | --timeout=5m | "),
        "{staging:?}"
    );
    assert_eq!(
        staging.last().unwrap().as_str(),
        "--namespace | shop-staging | rollout | undo | deployment/app | ",
        "{staging:?}"
    );
}
