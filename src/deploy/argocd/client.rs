//! Argo CD's REST API (grpc-gateway), through the shared careful sender `remote::rest`: one
//! method per endpoint the driver uses, and the pure edits of an application's source that set
//! a version. Errors are `ApiError`s whose detail is one line with Argo CD's own `message`.

use super::app::App;
use super::schema::VersionSetting;
use crate::remote::{Api, ApiError, ErrorKind};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::time::Instant;

/// One Argo CD server, with its token.
#[derive(Clone)]
pub struct Client {
    api: Api,
}

impl Client {
    pub fn new(server: &str, token: &str) -> Result<Client, String> {
        let api = Api::new(
            "Argo CD",
            server,
            crate::remote::client(),
            vec![token.to_string()],
        )?
        .header("authorization", &format!("Bearer {token}"), true)?;
        Ok(Client { api })
    }

    /// Shorter waits between tries (tests).
    pub fn with_retry(mut self, retry: crate::remote::Retry) -> Client {
        self.api.retry = retry;
        self
    }

    fn path(app: &str, tail: &str) -> String {
        format!("api/v1/applications/{}{tail}", urlencode(app))
    }

    /// `GET /api/v1/applications/NAME`.
    pub async fn app(&self, app: &str, until: Instant) -> Result<App, ApiError> {
        self.api
            .get(&Self::path(app, ""), until)
            .await?
            .json(&self.api)
    }

    /// `PATCH /api/v1/applications/NAME` with a JSON merge patch. A merge patch is idempotent,
    /// so an answer that never came (`Uncertain`) is sent again until the deadline.
    pub async fn patch(&self, app: &str, patch: &Value, until: Instant) -> Result<(), ApiError> {
        let body = json!({"name": app, "patchType": "merge", "patch": patch.to_string()});
        loop {
            match self
                .api
                .send(Method::PATCH, &Self::path(app, ""), Some(&body), until)
                .await
            {
                Err(e) if e.kind == ErrorKind::Uncertain && Instant::now() < until => {
                    tokio::time::sleep(self.api.retry.first).await;
                }
                r => return r.map(|_| ()),
            }
        }
    }

    /// `POST .../sync`. Not idempotent: a second sync is a second operation, so a failure
    /// without an answer is `Uncertain` and the caller looks before syncing again.
    pub async fn sync(&self, app: &str, until: Instant) -> Result<(), ApiError> {
        let body = json!({"name": app});
        self.api
            .send(Method::POST, &Self::path(app, "/sync"), Some(&body), until)
            .await
            .map(|_| ())
    }

    /// `POST .../rollback {"id": N}` (refused while auto-sync is on).
    pub async fn rollback(&self, app: &str, id: i64, until: Instant) -> Result<(), ApiError> {
        let body = json!({"name": app, "id": id});
        self.api
            .send(
                Method::POST,
                &Self::path(app, "/rollback"),
                Some(&body),
                until,
            )
            .await
            .map(|_| ())
    }

    /// Turns auto-sync off: `spec.syncPolicy.automated` merge-patched to null.
    pub async fn disable_auto_sync(&self, app: &str, until: Instant) -> Result<(), ApiError> {
        let patch = json!({"spec": {"syncPolicy": {"automated": null}}});
        self.patch(app, &patch, until).await
    }
}

/// An application name in a path (Argo CD names are DNS labels; this is belt and braces).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The text a `VersionSetting` puts in the source for `version`.
pub fn rendered(set: &VersionSetting, version: &str) -> String {
    match set {
        VersionSetting::Image(name) => format!("{name}:{version}"),
        VersionSetting::HelmParameter(_) => version.to_string(),
        VersionSetting::TargetRevision(t) => t.replace("{version}", version),
    }
}

/// The image name of a kustomize images entry (`name:tag`, `name=new:tag`, `name@sha`), with
/// a registry port (`host:5000/app`) kept in the name.
fn image_name(entry: &str) -> &str {
    let entry = entry.split('=').next().unwrap_or(entry);
    let entry = entry.split('@').next().unwrap_or(entry);
    let last_slash = entry.rfind('/').map(|i| i + 1).unwrap_or(0);
    match entry[last_slash..].rfind(':') {
        Some(i) => &entry[..last_slash + i],
        None => entry,
    }
}

/// The merge patch that sets `version` in `source` (the application's current
/// `spec.source`). Lists are replaced whole by a merge patch, so the other images and
/// parameters are carried over from `source`.
pub fn version_patch(source: &Value, set: &VersionSetting, version: &str) -> Value {
    let value = rendered(set, version);
    let src = match set {
        VersionSetting::Image(name) => {
            let mut images: Vec<Value> = source
                .pointer("/kustomize/images")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            images.retain(|i| i.as_str().is_none_or(|s| image_name(s) != name));
            images.push(Value::String(value));
            json!({"kustomize": {"images": images}})
        }
        VersionSetting::HelmParameter(name) => {
            let mut params: Vec<Value> = source
                .pointer("/helm/parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            params.retain(|p| p.get("name").and_then(Value::as_str) != Some(name));
            params.push(json!({"name": name, "value": value}));
            json!({"helm": {"parameters": params}})
        }
        VersionSetting::TargetRevision(_) => json!({"targetRevision": value}),
    };
    json!({"spec": {"source": src}})
}

/// Whether `source` (an application's or an operation's) has `version` set.
pub fn has_version(source: &Value, set: &VersionSetting, version: &str) -> bool {
    let want = rendered(set, version);
    match set {
        VersionSetting::Image(_) => source
            .pointer("/kustomize/images")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|i| i.as_str() == Some(want.as_str()))),
        VersionSetting::HelmParameter(name) => source
            .pointer("/helm/parameters")
            .and_then(Value::as_array)
            .is_some_and(|a| {
                a.iter().any(|p| {
                    p.get("name").and_then(Value::as_str) == Some(name)
                        && p.get("value").and_then(Value::as_str) == Some(want.as_str())
                })
            }),
        VersionSetting::TargetRevision(_) => {
            source.get("targetRevision").and_then(Value::as_str) == Some(want.as_str())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_is_replaced_and_the_others_kept() {
        let src = json!({"kustomize": {"images": ["reg:5000/shop/app:v1", "other/sidecar:3", "reg:5000/shop/app=mirror/app:v0"]}});
        let set = VersionSetting::Image("reg:5000/shop/app".into());
        let p = version_patch(&src, &set, "v2");
        assert_eq!(
            p,
            json!({"spec": {"source": {"kustomize": {"images": ["other/sidecar:3", "reg:5000/shop/app:v2"]}}}})
        );
        assert!(has_version(&p["spec"]["source"], &set, "v2"));
        assert!(!has_version(&src, &set, "v2"));
    }

    #[test]
    fn a_helm_parameter_and_a_revision() {
        let src = json!({"helm": {"parameters": [{"name": "image.tag", "value": "v1"}, {"name": "replicas", "value": "3"}]}});
        let set = VersionSetting::HelmParameter("image.tag".into());
        let p = version_patch(&src, &set, "v2");
        assert_eq!(
            p["spec"]["source"]["helm"]["parameters"],
            json!([{"name": "replicas", "value": "3"}, {"name": "image.tag", "value": "v2"}])
        );
        let set = VersionSetting::TargetRevision("release-{version}".into());
        let p = version_patch(&json!({}), &set, "v2");
        assert_eq!(
            p,
            json!({"spec": {"source": {"targetRevision": "release-v2"}}})
        );
        assert!(has_version(&p["spec"]["source"], &set, "v2"));
    }
}
