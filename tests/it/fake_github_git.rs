//! A fake of the GitHub REST endpoints a revert uses, over an in-memory repository: the
//! repository (`default_branch`), a ref resolved to its commit (`GET /repos/o/r/commits/{ref}`),
//! the git data API (recursive trees, new trees on a base, commits, refs) and pull requests
//! (open, and list by `head`). Shaped as docs.github.com/rest documents them: 201 on create,
//! 404 `{"message":"Not Found"}`, 422 `Reference already exists` and `Validation Failed` with
//! `errors[]` for a second pull request of a branch, 401 `Bad credentials`, 403 without a
//! `User-Agent`, and scripted faults per route.

#![allow(dead_code)]

use crate::fake_common::{bind, json_response, Faults};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

pub const TOKEN: &str = "ghp_revert_test_token";
const DOCS: &str = "https://docs.github.com/rest";

/// One file in a tree: mode and blob sha.
pub type Files = BTreeMap<String, (String, String)>;

#[derive(Debug, Clone)]
pub struct Commit {
    pub tree: String,
    pub parents: Vec<String>,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Pull {
    pub number: u64,
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub state: String,
}

#[derive(Default)]
pub struct Repo {
    pub default_branch: String,
    pub trees: BTreeMap<String, Files>,
    pub commits: BTreeMap<String, Commit>,
    pub branches: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub pulls: Vec<Pull>,
    /// Every request: method and path (with query).
    pub requests: Vec<(String, String)>,
    pub faults: Faults<String, u16>,
    next: u64,
}

impl Repo {
    fn sha(&mut self) -> String {
        self.next += 1;
        format!("{:040x}", 0xfeed_0000_u64 + self.next)
    }

    fn put_tree(&mut self, files: Files) -> String {
        let sha = self.sha();
        self.trees.insert(sha.clone(), files);
        sha
    }

    fn resolve(&self, r: &str) -> Option<String> {
        self.tags
            .get(r)
            .or_else(|| self.branches.get(r))
            .cloned()
            .or_else(|| self.commits.contains_key(r).then(|| r.to_string()))
    }

    /// The files at `r` (a tag, a branch or a commit).
    pub fn files_at(&self, r: &str) -> Files {
        let c = self.resolve(r).expect("a known ref");
        self.trees[&self.commits[&c].tree].clone()
    }
}

#[derive(Clone)]
pub struct FakeGitHubGit {
    pub url: String,
    pub owner_repo: String,
    state: Arc<Mutex<Repo>>,
}

impl FakeGitHubGit {
    /// A repository `acme/shop` whose default branch is `main`, with no commit yet.
    pub async fn start() -> FakeGitHubGit {
        let state = Arc::new(Mutex::new(Repo {
            default_branch: "main".into(),
            ..Repo::default()
        }));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let (listener, addr) = bind("fake GitHub git").await;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGitHubGit {
            url: format!("http://{addr}"),
            owner_repo: "acme/shop".into(),
            state,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, Repo> {
        self.state.lock().unwrap()
    }

    /// Commits `files` (path, blob sha) as the whole tree on `branch`; returns the commit.
    pub fn commit(&self, branch: &str, files: &[(&str, &str)], message: &str) -> String {
        let mut s = self.state();
        let tree: Files = files
            .iter()
            .map(|(p, b)| (p.to_string(), ("100644".to_string(), b.to_string())))
            .collect();
        let tree = s.put_tree(tree);
        let parents = s.branches.get(branch).cloned().into_iter().collect();
        let sha = s.sha();
        s.commits.insert(
            sha.clone(),
            Commit {
                tree,
                parents,
                message: message.into(),
            },
        );
        s.branches.insert(branch.into(), sha.clone());
        sha
    }

    pub fn tag(&self, name: &str, commit: &str) {
        self.state().tags.insert(name.into(), commit.into());
    }

    /// The next call of `route` (e.g. `POST pulls`) answers `status`.
    pub fn fail_next(&self, route: &str, status: u16) {
        self.state().faults.push(route.to_string(), status);
    }

    /// Requests that changed something (every POST), as `POST <route>`.
    pub fn writes(&self) -> Vec<String> {
        self.state()
            .requests
            .iter()
            .filter(|(m, _)| m == "POST")
            .map(|(m, p)| format!("{m} {}", route_of(p)))
            .collect()
    }
}

/// `git/refs`, `pulls`, ... : the route after `/repos/{owner}/{repo}/`, without ids.
fn route_of(path: &str) -> String {
    let rest: Vec<&str> = path
        .split('?')
        .next()
        .unwrap_or("")
        .trim_start_matches('/')
        .split('/')
        .skip(3)
        .collect();
    match rest.as_slice() {
        ["git", kind, ..] => format!("git/{kind}"),
        [first, ..] => first.to_string(),
        [] => "repo".into(),
    }
}

fn not_found() -> Response {
    json_response(
        404,
        &json!({"message": "Not Found", "documentation_url": DOCS}),
    )
}

fn commit_json(sha: &str, c: &Commit) -> Value {
    json!({
        "sha": sha,
        "node_id": format!("C_{sha}"),
        "commit": {"message": c.message, "tree": {"sha": c.tree, "url": format!("https://api.github.com/git/trees/{}", c.tree)}},
        "parents": c.parents.iter().map(|p| json!({"sha": p})).collect::<Vec<_>>(),
        "html_url": format!("https://github.com/acme/shop/commit/{sha}"),
    })
}

async fn handle(State(state): State<Arc<Mutex<Repo>>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = state.lock().unwrap();
    s.requests.push((method.to_string(), path.clone()));
    if headers.get("user-agent").is_none() {
        return json_response(
            403,
            &json!({"message": "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required).", "documentation_url": DOCS}),
        );
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return json_response(
            401,
            &json!({"message": "Bad credentials", "documentation_url": DOCS, "status": "401"}),
        );
    }
    let route = format!("{method} {}", route_of(&path));
    if let Some(status) = s.faults.next(&route) {
        return json_response(status, &json!({"message": "Server Error"}));
    }
    let (p, query) = path.split_once('?').unwrap_or((&path, ""));
    let seg: Vec<&str> = p.trim_start_matches('/').split('/').collect();
    if seg.len() < 3 || seg[0] != "repos" || format!("{}/{}", seg[1], seg[2]) != "acme/shop" {
        return not_found();
    }
    let rest = &seg[3..];
    match (&method, rest) {
        (&Method::GET, []) => json_response(
            200,
            &json!({"id": 1, "name": "shop", "full_name": "acme/shop", "default_branch": s.default_branch, "private": true}),
        ),
        (&Method::GET, ["commits", r]) => match s.resolve(r) {
            Some(sha) => {
                let c = s.commits[&sha].clone();
                json_response(200, &commit_json(&sha, &c))
            }
            None => json_response(
                422,
                &json!({"message": format!("No commit found for SHA: {r}"), "documentation_url": DOCS}),
            ),
        },
        (&Method::GET, ["git", "trees", sha]) => match s.trees.get(*sha) {
            Some(files) if query.contains("recursive=1") => {
                let tree: Vec<Value> = files
                    .iter()
                    .map(|(path, (mode, blob))| json!({"path": path, "mode": mode, "type": "blob", "sha": blob, "size": 10, "url": format!("https://api.github.com/git/blobs/{blob}")}))
                    .collect();
                json_response(
                    200,
                    &json!({"sha": sha, "url": "", "tree": tree, "truncated": false}),
                )
            }
            Some(_) => json_response(
                400,
                &json!({"message": "this fake lists trees recursively only"}),
            ),
            None => not_found(),
        },
        (&Method::POST, ["git", "trees"]) => {
            let Some(base) = body["base_tree"]
                .as_str()
                .and_then(|b| s.trees.get(b))
                .cloned()
            else {
                return json_response(
                    422,
                    &json!({"message": "Invalid tree info", "documentation_url": DOCS}),
                );
            };
            let mut files = base;
            for e in body["tree"].as_array().cloned().unwrap_or_default() {
                let path = e["path"].as_str().unwrap_or_default().to_string();
                match e["sha"].as_str() {
                    Some(blob) => {
                        files.insert(
                            path,
                            (e["mode"].as_str().unwrap_or("100644").into(), blob.into()),
                        );
                    }
                    None => {
                        if files.remove(&path).is_none() {
                            return json_response(
                                422,
                                &json!({"message": "GitRPC::BadObjectState", "documentation_url": DOCS}),
                            );
                        }
                    }
                }
            }
            let sha = s.put_tree(files);
            json_response(
                201,
                &json!({"sha": sha, "url": "", "tree": [], "truncated": false}),
            )
        }
        (&Method::POST, ["git", "commits"]) => {
            let tree = body["tree"].as_str().unwrap_or_default().to_string();
            if !s.trees.contains_key(&tree) {
                return json_response(
                    422,
                    &json!({"message": "Tree SHA does not exist", "documentation_url": DOCS}),
                );
            }
            let c = Commit {
                tree,
                parents: body["parents"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|p| p.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                message: body["message"].as_str().unwrap_or_default().into(),
            };
            let sha = s.sha();
            s.commits.insert(sha.clone(), c.clone());
            json_response(
                201,
                &json!({"sha": sha, "node_id": format!("C_{sha}"), "message": c.message, "tree": {"sha": c.tree}, "parents": c.parents.iter().map(|p| json!({"sha": p})).collect::<Vec<_>>()}),
            )
        }
        (&Method::GET, ["git", "ref", "heads", branch @ ..]) => {
            let name = branch.join("/");
            match s.branches.get(&name) {
                Some(sha) => json_response(
                    200,
                    &json!({"ref": format!("refs/heads/{name}"), "node_id": "REF_x", "url": "", "object": {"sha": sha, "type": "commit", "url": ""}}),
                ),
                None => not_found(),
            }
        }
        (&Method::POST, ["git", "refs"]) => {
            let r = body["ref"].as_str().unwrap_or_default();
            let sha = body["sha"].as_str().unwrap_or_default().to_string();
            let Some(name) = r.strip_prefix("refs/heads/") else {
                return json_response(
                    422,
                    &json!({"message": "Reference name must start with 'refs/'", "documentation_url": DOCS}),
                );
            };
            if s.branches.contains_key(name) {
                return json_response(
                    422,
                    &json!({"message": "Reference already exists", "documentation_url": DOCS}),
                );
            }
            if !s.commits.contains_key(&sha) {
                return json_response(
                    422,
                    &json!({"message": "Object does not exist", "documentation_url": DOCS}),
                );
            }
            s.branches.insert(name.to_string(), sha.clone());
            json_response(
                201,
                &json!({"ref": r, "node_id": "REF_x", "url": "", "object": {"sha": sha, "type": "commit", "url": ""}}),
            )
        }
        (&Method::POST, ["pulls"]) => {
            let head = body["head"].as_str().unwrap_or_default().to_string();
            let base = body["base"].as_str().unwrap_or_default().to_string();
            if s.pulls.iter().any(|p| p.head == head && p.state == "open") {
                return json_response(
                    422,
                    &json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for acme:{head}.")}], "documentation_url": DOCS}),
                );
            }
            if !s.branches.contains_key(&head) || !s.branches.contains_key(&base) {
                return json_response(
                    422,
                    &json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "field": "head", "code": "invalid"}], "documentation_url": DOCS}),
                );
            }
            let number = s.pulls.len() as u64 + 1;
            let p = Pull {
                number,
                head,
                base,
                title: body["title"].as_str().unwrap_or_default().into(),
                body: body["body"].as_str().unwrap_or_default().into(),
                state: "open".into(),
            };
            s.pulls.push(p.clone());
            json_response(201, &pull_json(&p))
        }
        (&Method::GET, ["pulls"]) => {
            let head = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("head="))
                .map(|h| h.split_once(':').map(|(_, b)| b).unwrap_or(h).to_string());
            let list: Vec<Value> = s
                .pulls
                .iter()
                .filter(|p| head.as_ref().is_none_or(|h| &p.head == h))
                .map(pull_json)
                .collect();
            json_response(200, &Value::Array(list))
        }
        _ => not_found(),
    }
}

fn pull_json(p: &Pull) -> Value {
    json!({
        "id": 1000 + p.number,
        "number": p.number,
        "state": p.state,
        "title": p.title,
        "body": p.body,
        "html_url": format!("https://github.com/acme/shop/pull/{}", p.number),
        "head": {"ref": p.head, "label": format!("acme:{}", p.head)},
        "base": {"ref": p.base, "label": format!("acme:{}", p.base)},
    })
}
