//! Steady synthetic traffic through a local environment's demo router while a run is between
//! verification and stable, so that the baseline and the monitoring have data.

use std::time::Duration;

/// Steady synthetic traffic through a demo router (about 20 requests a second), with the demo
/// app's login, dashboard and checkout in the mix. Runs until aborted.
pub async fn synthetic_traffic(client: reqwest::Client, url: String) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut token: Option<String> = None;
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        let c = client.clone();
        let u = url.clone();
        match n % 4 {
            0 => {
                let r = c
                    .post(format!("{u}/login"))
                    .json(&serde_json::json!({"user": "demo", "password": "demo"}))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await;
                if let Ok(r) = r {
                    if let Ok(v) = r.json::<serde_json::Value>().await {
                        token = v.get("token").and_then(|t| t.as_str()).map(String::from);
                    }
                }
            }
            1 if token.is_some() => {
                let t = token.clone().unwrap_or_default();
                tokio::spawn(async move {
                    let _ = c
                        .get(format!("{u}/dashboard"))
                        .bearer_auth(t)
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await;
                });
            }
            2 if token.is_some() => {
                let t = token.clone().unwrap_or_default();
                tokio::spawn(async move {
                    let _ = c
                        .post(format!("{u}/checkout"))
                        .bearer_auth(t)
                        .json(&serde_json::json!({"item": "synthetic", "qty": 1}))
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await;
                });
            }
            _ => {
                tokio::spawn(async move {
                    let _ = c
                        .get(format!("{u}/"))
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await;
                });
            }
        }
    }
}
