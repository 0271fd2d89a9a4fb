//! The fake GitLab answers as GitLab's REST v4 docs say: bodies, statuses, headers,
//! pagination and the scripted faults the driver's tests lean on.

use crate::fake_gitlab::*;
use serde_json::Value;
use std::time::Duration;

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn a_trigger_takes_a_form_and_answers_201_with_the_pipeline() {
    let gl = FakeGitlab::start(&["v1.2.0"]).await;
    let r = http()
        .post(format!("{}/projects/{PROJECT_ID}/trigger/pipeline", gl.url))
        .form(&[
            ("token", TRIGGER_TOKEN),
            ("ref", "v1.2.0"),
            ("variables[COLOUR]", "green"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let p: Value = r.json().await.unwrap();
    for k in [
        "id",
        "iid",
        "project_id",
        "sha",
        "ref",
        "status",
        "source",
        "created_at",
        "updated_at",
        "web_url",
    ] {
        assert!(!p[k].is_null(), "{k} in {p}");
    }
    assert_eq!(p["status"], "created");
    assert_eq!(p["source"], "trigger");
    assert_eq!(p["ref"], "v1.2.0");
    assert!(p["web_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/shop/api/-/pipelines/{}", p["id"])));
    let ps = gl.pipelines();
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].4["COLOUR"], "green");
    // A trigger token GitLab does not know, a bad ref, an unknown project.
    let bad = |token: &'static str, r#ref: &'static str, project: &'static str| {
        let url = format!("{}/projects/{project}/trigger/pipeline", gl.url);
        async move {
            let r = http()
                .post(url)
                .form(&[("token", token), ("ref", r#ref)])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, b) = bad("nope", "main", "4242").await;
    assert_eq!((s, b["message"].as_str()), (404, Some("404 Not Found")));
    let (s, b) = bad(TRIGGER_TOKEN, "v9.9.9", "shop%2Fapi").await;
    assert_eq!(s, 400);
    assert_eq!(b["message"]["base"][0], "Reference not found");
    let (s, b) = bad(TRIGGER_TOKEN, "main", "7").await;
    assert_eq!(
        (s, b["message"].as_str()),
        (404, Some("404 Project Not Found"))
    );
    assert_eq!(gl.pipelines().len(), 1);
}

#[tokio::test]
async fn create_takes_json_and_a_private_token() {
    let gl = FakeGitlab::start(&[]).await;
    let body = serde_json::json!({"ref": "main", "variables": [{"key": "A", "value": "1", "variable_type": "env_var"}]});
    let url = format!("{}/projects/shop%2Fapi/pipeline", gl.url);
    let r = http().post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        serde_json::json!({"message": "401 Unauthorized"})
    );
    let r = http()
        .post(&url)
        .header("PRIVATE-TOKEN", TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["source"], "api");
    // Each GET moves the status on along the script; the last one stays.
    let one = format!("{}/projects/{PROJECT_ID}/pipelines/{}", gl.url, p["id"]);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let p: Value = http()
            .get(&one)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen.push(p["status"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, ["pending", "running", "success", "success"]);
    let vars: Value = http()
        .get(format!("{one}/variables"))
        .header("PRIVATE-TOKEN", TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(vars[0]["key"], "A");
    let reqs = gl.requests();
    assert_eq!(reqs[1].private_token.as_deref(), Some(TOKEN));
    assert_eq!(reqs[1].content_type.as_deref(), Some("application/json"));
    assert_eq!(gl.creation_requests(), 2);
}

#[tokio::test]
async fn the_list_filters_sorts_and_paginates_as_gitlab_does() {
    let gl = FakeGitlab::start(&[]).await;
    for _ in 0..3 {
        gl.add_pipeline("main", "push", "success", Duration::from_secs(3600));
    }
    let fresh = gl.add_pipeline("main", "trigger", "running", Duration::ZERO);
    gl.add_pipeline("other", "trigger", "running", Duration::ZERO);
    let url = format!(
        "{}/projects/{PROJECT_ID}/pipelines?ref=main&order_by=id&sort=desc&per_page=2",
        gl.url
    );
    let r = http()
        .get(&url)
        .header("PRIVATE-TOKEN", TOKEN)
        .send()
        .await
        .unwrap();
    let h = r.headers().clone();
    let page: Vec<Value> = r.json().await.unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0]["id"], fresh, "newest first");
    assert_eq!(h["x-page"], "1");
    assert_eq!(h["x-per-page"], "2");
    assert_eq!(h["x-total"], "4");
    assert_eq!(h["x-total-pages"], "2");
    assert_eq!(h["x-next-page"], "2");
    let link = h["link"].to_str().unwrap();
    assert!(link.contains("rel=\"next\""), "{link}");
    let next = link
        .split(',')
        .find(|l| l.contains("rel=\"next\""))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim()
        .trim_matches(|c| c == '<' || c == '>')
        .to_string();
    let r = http()
        .get(&next)
        .header("PRIVATE-TOKEN", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-next-page"], "");
    assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 2);
    // source and updated_after filter.
    let since = (chrono::Utc::now() - chrono::Duration::seconds(60))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let r = http()
        .get(format!("{}/projects/{PROJECT_ID}/pipelines", gl.url))
        .query(&[
            ("ref", "main"),
            ("source", "trigger"),
            ("updated_after", &since),
        ])
        .header("PRIVATE-TOKEN", TOKEN)
        .send()
        .await
        .unwrap();
    let ps: Vec<Value> = r.json().await.unwrap();
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0]["id"], fresh);
}

#[tokio::test]
async fn faults_rate_limits_and_down() {
    let gl = FakeGitlab::start(&[]).await;
    let url = format!("{}/projects/{PROJECT_ID}/pipelines", gl.url);
    gl.fail_next(Route::Pipelines, Fault::RateLimited { secs: 3 });
    gl.fail_next(Route::Pipelines, Fault::Status(503));
    let r = http()
        .get(&url)
        .header("PRIVATE-TOKEN", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let h = r.headers();
    assert_eq!(h["retry-after"], "3");
    assert_eq!(h["ratelimit-remaining"], "0");
    assert!(h.contains_key("ratelimit-reset") && h.contains_key("ratelimit-resettime"));
    assert_eq!(r.text().await.unwrap(), "Retry later\n");
    let r = http()
        .get(&url)
        .header("PRIVATE-TOKEN", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "503 Service Unavailable"
    );
    // A lost answer: the pipeline exists, the caller saw a 502.
    gl.fail_next(Route::Create, Fault::Lost(502));
    let r = http()
        .post(format!("{}/projects/{PROJECT_ID}/pipeline", gl.url))
        .header("PRIVATE-TOKEN", TOKEN)
        .json(&serde_json::json!({"ref": "main"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 502);
    assert_eq!(gl.pipelines().len(), 1);
    // Down: connections close unanswered, then it is back.
    gl.set_down(true);
    assert!(http()
        .get(&url)
        .header("PRIVATE-TOKEN", TOKEN)
        .send()
        .await
        .is_err());
    assert!(gl.dropped() >= 1);
    gl.set_down(false);
    let r = http()
        .get(&url)
        .header("PRIVATE-TOKEN", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// greenlight's own client reads what the fake writes (the shapes agree both ways).
#[tokio::test]
async fn greenlight_s_client_reads_the_fake() {
    use greenlight::remote::gitlab::{pipelines, Gitlab, Settings};
    let gl = FakeGitlab::start(&["v2.0.0"]).await;
    let s = Settings {
        api_url: gl.url.clone(),
        project: PROJECT_PATH.into(),
        token: Some(TOKEN.into()),
        trigger_token: Some(TRIGGER_TOKEN.into()),
    };
    let client = Gitlab::new(&s, http()).unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    let vars = [("K".to_string(), "a b&c".to_string())].into();
    let p = client
        .trigger(TRIGGER_TOKEN, "v2.0.0", &vars, until)
        .await
        .unwrap();
    assert_eq!(p.status, "created");
    assert_eq!(gl.pipelines()[0].4["K"], "a b&c");
    let q = client.create_pipeline("main", &vars, until).await.unwrap();
    assert_eq!(q.source.as_deref(), Some("api"));
    assert_eq!(
        client.pipeline(p.id, until).await.unwrap().status,
        "pending"
    );
    for _ in 0..120 {
        gl.add_pipeline("main", "push", "success", Duration::from_secs(60));
    }
    let all = client
        .pipelines(&pipelines::Query::default(), 5, until)
        .await
        .unwrap();
    assert_eq!(all.len(), 122, "followed the Link header past page one");
    let mine = pipelines::Query {
        git_ref: Some("v2.0.0"),
        source: Some("trigger"),
        ..Default::default()
    };
    let found = client.pipelines(&mine, 1, until).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, p.id);
}

/// python-gitlab, GitLab's most used client, reads and writes the fake as it does GitLab.
/// `scripts/test.sh` installs it in a venv under `target/` and names its python in `GL_PYTHON`.
#[tokio::test]
async fn python_gitlab_drives_the_fake() {
    let Ok(python) = std::env::var("GL_PYTHON") else {
        panic!("set GL_PYTHON to a python with python-gitlab installed (scripts/test.sh does)");
    };
    let gl = FakeGitlab::start(&["v1.2.0"]).await;
    for _ in 0..5 {
        gl.add_pipeline("main", "push", "success", Duration::from_secs(60));
    }
    let script = format!(
        r#"
import gitlab, sys
url = sys.argv[1]
gl = gitlab.Gitlab(url, private_token="{TOKEN}")
p = gl.projects.get("{PROJECT_PATH}", lazy=True)
pl = p.pipelines.create({{"ref": "main", "variables": [{{"key": "A", "value": "1"}}]}})
assert pl.status == "created" and pl.source == "api", pl.attributes
pl.refresh()
assert pl.status == "pending", pl.status
assert [v.key for v in pl.variables.list()] == ["A"]
t = p.trigger_pipeline("v1.2.0", "{TRIGGER_TOKEN}", variables={{"COLOUR": "green"}})
assert t.source == "trigger" and t.ref == "v1.2.0", t.attributes
mine = p.pipelines.list(ref="v1.2.0", source="trigger", order_by="id", sort="desc", get_all=True)
assert [x.id for x in mine] == [t.id], mine
every = p.pipelines.list(per_page=2, get_all=True)
assert len(every) == 7, len(every)
page = p.pipelines.list(per_page=2, iterator=True)
assert page.total == 7 and page.total_pages == 4, (page.total, page.total_pages)
try:
    p.pipelines.create({{"ref": "nope"}})
    raise SystemExit("a bad ref was accepted")
except gitlab.exceptions.GitlabCreateError as e:
    assert e.response_code == 400 and "Reference not found" in str(e.error_message), e
bad = gitlab.Gitlab(url, private_token="wrong").projects.get("{PROJECT_PATH}", lazy=True)
try:
    bad.pipelines.create({{"ref": "main"}})
    raise SystemExit("a wrong token was accepted")
except gitlab.exceptions.GitlabAuthenticationError as e:
    assert e.response_code == 401, e
try:
    gl.projects.get("nobody/nothing", lazy=True).pipelines.get(1)
    raise SystemExit("an unknown project was found")
except gitlab.exceptions.GitlabGetError as e:
    assert e.response_code == 404 and "Project Not Found" in str(e.error_message), e
print("ok")
"#
    );
    let origin = gl.url.trim_end_matches("/api/v4").to_string();
    let out = tokio::process::Command::new(python)
        .args(["-c", &script, &origin])
        .env("NO_PROXY", "127.0.0.1")
        .env("no_proxy", "127.0.0.1")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim() == "ok", "{said}");
    assert_eq!(gl.pipelines()[6].4["COLOUR"], "green");
}
