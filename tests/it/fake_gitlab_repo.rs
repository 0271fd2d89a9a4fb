//! A fake of the GitLab REST v4 endpoints a revert uses, over an in-memory repository: the
//! project (`default_branch`), a branch, a recursive tree page by page (`x-next-page`,
//! `Link`), a blob's raw bytes, a commit of file actions on a new branch from `start_sha`, and
//! merge requests (open, and list by `source_branch`). Shaped as docs.gitlab.com/ee/api
//! documents them: 201 on create, `{"message":"404 Branch Not Found"}`-style 404s, 400 "A
//! branch called ... already exists", 409 with a message array for a second open merge
//! request, 401 `{"message":"401 Unauthorized"}` without the right `PRIVATE-TOKEN`.

#![allow(dead_code)]

use crate::fake_common::{bind, json_response};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

pub const TOKEN: &str = "glpat-revert-test-token";
const PAGE: usize = 2;

/// Files by path: (mode, blob id).
pub type Files = BTreeMap<String, (String, String)>;

#[derive(Debug, Clone)]
pub struct Mr {
    pub iid: u64,
    pub source: String,
    pub target: String,
    pub title: String,
    pub state: String,
}

#[derive(Default)]
pub struct Repo {
    pub default_branch: String,
    pub blobs: BTreeMap<String, Vec<u8>>,
    /// Commit id -> (files, parent).
    pub commits: BTreeMap<String, (Files, Option<String>)>,
    pub branches: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub mrs: Vec<Mr>,
    /// Every request: method and path with query.
    pub requests: Vec<(String, String)>,
    next: u64,
}

fn blob_id(content: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    content.hash(&mut h);
    format!("{:016x}{:024x}", h.finish(), content.len())
}

impl Repo {
    fn commit(&mut self, files: Files, parent: Option<String>) -> String {
        self.next += 1;
        let id = format!("{:040x}", 0xc0de_0000_u64 + self.next);
        self.commits.insert(id.clone(), (files, parent));
        id
    }

    fn resolve(&self, r: &str) -> Option<String> {
        self.tags
            .get(r)
            .or_else(|| self.branches.get(r))
            .cloned()
            .or_else(|| self.commits.contains_key(r).then(|| r.to_string()))
    }

    /// The files at `r`, with their contents.
    pub fn contents_at(&self, r: &str) -> BTreeMap<String, String> {
        let c = self.resolve(r).expect("a known ref");
        self.commits[&c]
            .0
            .iter()
            .map(|(p, (_, id))| (p.clone(), String::from_utf8_lossy(&self.blobs[id]).into()))
            .collect()
    }
}

#[derive(Clone)]
pub struct FakeGitLabRepo {
    /// The API base (`.../api/v4`).
    pub url: String,
    state: Arc<Mutex<Repo>>,
}

impl FakeGitLabRepo {
    /// Project `acme/shop` (id 7), default branch `main`, no commit yet.
    pub async fn start() -> FakeGitLabRepo {
        let state = Arc::new(Mutex::new(Repo {
            default_branch: "main".into(),
            ..Repo::default()
        }));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let (listener, addr) = bind("fake GitLab repository").await;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGitLabRepo {
            url: format!("http://{addr}/api/v4"),
            state,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, Repo> {
        self.state.lock().unwrap()
    }

    /// Commits `files` (path, content) as the whole tree on `branch`; returns the commit id.
    pub fn commit(&self, branch: &str, files: &[(&str, &str)]) -> String {
        let mut s = self.state();
        let mut tree = Files::new();
        for (p, c) in files {
            let id = blob_id(c.as_bytes());
            s.blobs.insert(id.clone(), c.as_bytes().to_vec());
            tree.insert(p.to_string(), ("100644".into(), id));
        }
        let parent = s.branches.get(branch).cloned();
        let id = s.commit(tree, parent);
        s.branches.insert(branch.into(), id.clone());
        id
    }

    pub fn tag(&self, name: &str, commit: &str) {
        self.state().tags.insert(name.into(), commit.into());
    }

    /// Every POST, as `POST <route>`.
    pub fn writes(&self) -> Vec<String> {
        self.state()
            .requests
            .iter()
            .filter(|(m, _)| m == "POST")
            .map(|(_, p)| {
                let p = p.split('?').next().unwrap_or("");
                let route = p.split("/projects/").nth(1).unwrap_or("");
                let rest = route.split_once('/').map(|x| x.1).unwrap_or("");
                format!("POST {rest}")
            })
            .collect()
    }
}

fn msg(status: u16, m: &str) -> Response {
    json_response(status, &json!({ "message": m }))
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn query(q: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn mr_json(m: &Mr) -> Value {
    json!({
        "id": 1000 + m.iid, "iid": m.iid, "project_id": 7, "title": m.title, "state": m.state,
        "source_branch": m.source, "target_branch": m.target,
        "web_url": format!("https://gitlab.example/acme/shop/-/merge_requests/{}", m.iid),
    })
}

async fn handle(State(state): State<Arc<Mutex<Repo>>>, req: Request) -> Response {
    let method = req.method().clone();
    let full = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let host = req
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let token = req
        .headers()
        .get("private-token")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = state.lock().unwrap();
    s.requests.push((method.to_string(), full.clone()));
    if token.as_deref() != Some(TOKEN) {
        return msg(401, "401 Unauthorized");
    }
    let (path, q) = full.split_once('?').unwrap_or((&full, ""));
    let Some(rest) = path.strip_prefix("/api/v4/projects/") else {
        return msg(404, "404 Not Found");
    };
    let (id, rest) = rest.split_once('/').unwrap_or((rest, ""));
    if id != "7" && decode(id) != "acme/shop" {
        return msg(404, "404 Project Not Found");
    }
    let seg: Vec<&str> = rest.split('/').filter(|x| !x.is_empty()).collect();
    match (&method, seg.as_slice()) {
        (&Method::GET, []) => json_response(
            200,
            &json!({"id": 7, "path_with_namespace": "acme/shop", "default_branch": s.default_branch}),
        ),
        (&Method::GET, ["repository", "branches", b]) => match s.branches.get(&decode(b)) {
            Some(c) => json_response(200, &json!({"name": decode(b), "commit": {"id": c}})),
            None => msg(404, "404 Branch Not Found"),
        },
        (&Method::GET, ["repository", "tree"]) => {
            let Some(c) = query(q, "ref").and_then(|r| s.resolve(&r)) else {
                return msg(404, "404 Tree Not Found");
            };
            if query(q, "recursive").as_deref() != Some("true") {
                return msg(400, "this fake lists trees recursively only");
            }
            let all: Vec<Value> = s.commits[&c]
                .0
                .iter()
                .map(|(p, (mode, id))| json!({"id": id, "name": p.rsplit('/').next(), "type": "blob", "path": p, "mode": mode}))
                .collect();
            let page: usize = query(q, "page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let chunk: Vec<Value> = all
                .iter()
                .skip((page - 1) * PAGE)
                .take(PAGE)
                .cloned()
                .collect();
            let mut resp = json_response(200, &Value::Array(chunk));
            let h = resp.headers_mut();
            h.insert("x-page", page.to_string().parse().unwrap());
            h.insert("x-per-page", PAGE.to_string().parse().unwrap());
            if page * PAGE < all.len() {
                let kept: Vec<String> = q
                    .split('&')
                    .filter(|kv| !kv.starts_with("page="))
                    .map(String::from)
                    .collect();
                let next = format!("http://{host}{path}?{}&page={}", kept.join("&"), page + 1);
                h.insert("x-next-page", (page + 1).to_string().parse().unwrap());
                h.insert("link", format!("<{next}>; rel=\"next\"").parse().unwrap());
            }
            resp
        }
        (&Method::GET, ["repository", "blobs", sha, "raw"]) => match s.blobs.get(*sha) {
            Some(b) => b.clone().into_response(),
            None => msg(404, "404 Blob Not Found"),
        },
        (&Method::POST, ["repository", "commits"]) => {
            let branch = body["branch"].as_str().unwrap_or_default().to_string();
            if s.branches.contains_key(&branch) {
                return msg(400, &format!("A branch called '{branch}' already exists. Switch to that branch in order to make changes"));
            }
            let Some(start) = body["start_sha"]
                .as_str()
                .filter(|c| s.commits.contains_key(*c))
                .map(String::from)
            else {
                return msg(
                    400,
                    "You can only create or edit files when you are on a branch",
                );
            };
            let mut files = s.commits[&start].0.clone();
            for a in body["actions"].as_array().cloned().unwrap_or_default() {
                let path = a["file_path"].as_str().unwrap_or_default().to_string();
                let exists = files.contains_key(&path);
                match a["action"].as_str() {
                    Some("delete") if exists => {
                        files.remove(&path);
                    }
                    Some("create") if !exists => {}
                    Some("update") if exists => {}
                    Some("delete") | Some("update") => {
                        return msg(400, "A file with this name doesn't exist")
                    }
                    Some("create") => return msg(400, "A file with this name already exists"),
                    _ => return msg(400, "action does not have a valid value"),
                }
                if a["action"] != "delete" {
                    use base64::Engine;
                    let raw = a["content"].as_str().unwrap_or_default();
                    let content = if a["encoding"] == "base64" {
                        base64::engine::general_purpose::STANDARD
                            .decode(raw)
                            .unwrap_or_default()
                    } else {
                        raw.as_bytes().to_vec()
                    };
                    let id = blob_id(&content);
                    s.blobs.insert(id.clone(), content);
                    let mode = if a["execute_filemode"] == true {
                        "100755"
                    } else {
                        "100644"
                    };
                    files.insert(path, (mode.into(), id));
                }
            }
            let c = s.commit(files, Some(start));
            s.branches.insert(branch, c.clone());
            json_response(
                201,
                &json!({"id": c, "short_id": &c[..8], "title": body["commit_message"].as_str().unwrap_or_default().lines().next(), "web_url": format!("https://gitlab.example/acme/shop/-/commit/{c}")}),
            )
        }
        (&Method::POST, ["merge_requests"]) => {
            let source = body["source_branch"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if let Some(m) = s
                .mrs
                .iter()
                .find(|m| m.source == source && m.state == "opened")
            {
                return json_response(
                    409,
                    &json!({"message": [format!("Another open merge request already exists for this source branch: !{}", m.iid)]}),
                );
            }
            if !s.branches.contains_key(&source) {
                return json_response(422, &json!({"message": ["Source branch does not exist"]}));
            }
            let m = Mr {
                iid: s.mrs.len() as u64 + 1,
                source,
                target: body["target_branch"].as_str().unwrap_or_default().into(),
                title: body["title"].as_str().unwrap_or_default().into(),
                state: "opened".into(),
            };
            s.mrs.push(m.clone());
            json_response(201, &mr_json(&m))
        }
        (&Method::GET, ["merge_requests"]) => {
            let source = query(q, "source_branch");
            let list: Vec<Value> = s
                .mrs
                .iter()
                .filter(|m| source.as_ref().is_none_or(|b| &m.source == b))
                .map(mr_json)
                .collect();
            json_response(200, &Value::Array(list))
        }
        _ => msg(404, "404 Not Found"),
    }
}
