//! The fake Argo CD answers as Argo CD's REST API does: grpc-gateway error bodies, merge
//! patches, operations that run and end as scripted, rollbacks refused under auto-sync.

use crate::fake_argocd::{Ending, FakeArgo, Fault, TOKEN};
use serde_json::{json, Value};

async fn call(
    fake: &FakeArgo,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    token: &str,
) -> (u16, Value) {
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut r = c
        .request(method, format!("{}{path}", fake.url))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn source() -> Value {
    json!({"repoURL": "https://git.example.com/shop.git", "path": "deploy", "targetRevision": "main",
           "kustomize": {"images": ["registry/shop:v1"]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_grpc_gateway_bodies() {
    let fake = FakeArgo::start().await;
    fake.add_app("shop", source(), false);
    let get = reqwest::Method::GET;
    let (s, b) = call(
        &fake,
        get.clone(),
        "/api/v1/applications/shop",
        None,
        "wrong",
    )
    .await;
    assert_eq!((s, b["code"].as_i64()), (401, Some(16)));
    assert_eq!(b["message"], "no session information");
    let (s, b) = call(&fake, get.clone(), "/api/v1/applications/nope", None, TOKEN).await;
    assert_eq!((s, b["code"].as_i64()), (404, Some(5)), "{b}");
    fake.forbid(true);
    let (s, b) = call(&fake, get.clone(), "/api/v1/applications/shop", None, TOKEN).await;
    assert_eq!((s, b["code"].as_i64()), (403, Some(7)), "{b}");
    fake.forbid(false);
    fake.fault("GET", Fault::Status(503));
    fake.fault("GET", Fault::RateLimited(1));
    let (s, _) = call(&fake, get.clone(), "/api/v1/applications/shop", None, TOKEN).await;
    assert_eq!(s, 503);
    let (s, _) = call(&fake, get.clone(), "/api/v1/applications/shop", None, TOKEN).await;
    assert_eq!(s, 429);
    let (s, b) = call(&fake, get, "/api/v1/applications/shop", None, TOKEN).await;
    assert_eq!(s, 200);
    assert_eq!(b["metadata"]["name"], "shop");
    assert_eq!(fake.requests().len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_merges_and_a_sync_runs_then_ends_as_scripted() {
    let fake = FakeArgo::start().await;
    fake.add_app("shop", source(), false);
    let patch = json!({"spec": {"source": {"kustomize": {"images": ["registry/shop:v2"]}}}});
    let body = json!({"name": "shop", "patchType": "merge", "patch": patch.to_string()});
    let (s, b) = call(
        &fake,
        reqwest::Method::PATCH,
        "/api/v1/applications/shop",
        Some(body),
        TOKEN,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["spec"]["source"]["kustomize"]["images"],
        json!(["registry/shop:v2"])
    );
    assert_eq!(
        b["spec"]["source"]["path"], "deploy",
        "merge keeps the rest"
    );
    fake.script(
        "shop",
        Ending::Degraded("Deployment \"shop\" exceeded its progress deadline".into()),
    );
    let sync = "/api/v1/applications/shop/sync";
    let (s, b) = call(
        &fake,
        reqwest::Method::POST,
        sync,
        Some(json!({"name": "shop"})),
        TOKEN,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"]["operationState"]["phase"], "Running");
    let (s, b) = call(
        &fake,
        reqwest::Method::POST,
        sync,
        Some(json!({"name": "shop"})),
        TOKEN,
    )
    .await;
    assert_eq!(
        (s, b["code"].as_i64()),
        (400, Some(9)),
        "one operation at a time"
    );
    let mut last = Value::Null;
    for _ in 0..3 {
        last = call(
            &fake,
            reqwest::Method::GET,
            "/api/v1/applications/shop",
            None,
            TOKEN,
        )
        .await
        .1;
    }
    assert_eq!(last["status"]["operationState"]["phase"], "Succeeded");
    assert_eq!(last["status"]["health"]["status"], "Degraded");
    assert_eq!(last["status"]["history"].as_array().unwrap().len(), 2);
    assert_eq!(fake.count("POST", "/sync"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_is_refused_while_auto_sync_is_on() {
    let fake = FakeArgo::start().await;
    fake.add_app("shop", source(), true);
    let rb = "/api/v1/applications/shop/rollback";
    let (s, b) = call(
        &fake,
        reqwest::Method::POST,
        rb,
        Some(json!({"name": "shop", "id": 1})),
        TOKEN,
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        b,
        json!({"error":"rollback cannot be initiated when auto-sync is enabled","code":9,"message":"rollback cannot be initiated when auto-sync is enabled"})
    );
    let off = json!({"spec": {"syncPolicy": {"automated": null}}}).to_string();
    let body = json!({"name": "shop", "patchType": "merge", "patch": off});
    let (s, b) = call(
        &fake,
        reqwest::Method::PATCH,
        "/api/v1/applications/shop",
        Some(body),
        TOKEN,
    )
    .await;
    assert_eq!(s, 200);
    assert!(b["spec"]["syncPolicy"].get("automated").is_none(), "{b}");
    let (s, b) = call(
        &fake,
        reqwest::Method::POST,
        rb,
        Some(json!({"name": "shop", "id": 1})),
        TOKEN,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = call(
        &fake,
        reqwest::Method::POST,
        rb,
        Some(json!({"name": "shop", "id": 1})),
        TOKEN,
    )
    .await;
    assert_eq!(s, 400, "an operation is running");
    fake.sync_window(true);
    let (s, b) = call(
        &fake,
        reqwest::Method::POST,
        "/api/v1/applications/shop/sync",
        Some(json!({"name": "shop"})),
        TOKEN,
    )
    .await;
    assert_eq!((s, b["code"].as_i64()), (403, Some(7)));
    assert_eq!(b["message"], "cannot sync: blocked by sync window");
}
