//! GitLab's REST API (v4): the client built from resolved settings, the pipeline types, and
//! one small file per endpoint. Plain requests through `remote::rest` (retries, rate limits,
//! refusals in one line, secrets masked); the `gitlab` crate is synchronous-first and far
//! larger than the handful of endpoints greenlight calls.
//!
//! Shape: `settings.rs` the `[gitlab]` keys (the top-level section and a driver's overrides)
//! and their resolution, `types.rs` what the endpoints answer, then `trigger.rs`, `create.rs`,
//! `pipeline.rs`, `pipelines.rs`: one endpoint each.

pub mod create;
pub mod pipeline;
pub mod pipelines;
pub mod settings;
pub mod trigger;
pub mod types;

pub use settings::{GitlabSection, Keys, Settings};
pub use types::{Pipeline, State};

use super::rest::Api;

/// A project on a GitLab instance, with the credentials to reach it.
#[derive(Clone)]
pub struct Gitlab {
    pub api: Api,
    /// The project's id as it goes in a path: numeric, or the URL-encoded path.
    project: String,
    /// The pipeline trigger token, if the settings hold one (sent in the form, never a header).
    pub trigger_token: Option<String>,
}

impl Gitlab {
    /// The client for `s`: `PRIVATE-TOKEN` on every request when a personal, project or group
    /// access token is set (reading pipelines of a private project needs one).
    pub fn new(s: &Settings, client: reqwest::Client) -> Result<Gitlab, String> {
        let mut api = Api::new("GitLab", &s.api_url, client, s.secrets())?;
        if let Some(t) = &s.token {
            api = api.header("private-token", t, true)?;
        }
        Ok(Gitlab {
            api,
            project: project_id(&s.project),
            trigger_token: s.trigger_token.clone(),
        })
    }

    /// `projects/:id/<rest>`.
    pub fn path(&self, rest: &str) -> String {
        format!("projects/{}/{rest}", self.project)
    }
}

/// A project as the API's `:id` takes it: a number as is, a path (`group/sub/project`)
/// URL-encoded (`group%2Fsub%2Fproject`); one already encoded is left alone.
pub fn project_id(project: &str) -> String {
    let p = project.trim().trim_matches('/');
    if p.contains('%') || p.bytes().all(|b| b.is_ascii_digit()) {
        return p.to_string();
    }
    url::form_urlencoded::byte_serialize(p.as_bytes())
        .collect::<String>()
        // form encoding writes a space as `+`; a path segment wants `%20`.
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_is_a_number_or_an_encoded_path() {
        assert_eq!(project_id("42"), "42");
        assert_eq!(project_id("group/project"), "group%2Fproject");
        assert_eq!(project_id("/g/sub/p.x/"), "g%2Fsub%2Fp.x");
        assert_eq!(project_id("group%2Fproject"), "group%2Fproject");
    }

    #[test]
    fn the_token_goes_in_private_token_and_paths_keep_the_encoding() {
        let s = Settings {
            api_url: "http://127.0.0.1:9/api/v4".into(),
            project: "g/p".into(),
            token: Some("glpat-x".into()),
            trigger_token: None,
        };
        let gl = Gitlab::new(&s, reqwest::Client::new()).unwrap();
        let u = gl.api.url(&gl.path("pipelines/7")).unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:9/api/v4/projects/g%2Fp/pipelines/7"
        );
    }
}
