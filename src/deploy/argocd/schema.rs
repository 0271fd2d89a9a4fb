//! The `argocd` driver's config: the top-level `[argocd]` section (the server and its token,
//! shared by every environment) and `[environments.X.deploy]` with `driver = "argocd"` (which
//! may override both), as written and validated. Errors are one line with the span of the
//! value at fault; `config` turns the span into a line number.

use serde::Deserialize;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// A validation error: where it is and one line.
pub type SchemaError = (Where, String);

/// Where an error points. The deploy section sits inside a `driver`-tagged enum, whose
/// buffering loses toml's spans, so a value in it is found by its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Where {
    Span(Range<usize>),
    /// The first line holding this text (a quoted value), else the section's line.
    Text(String),
}

/// `[argocd]` as written: the defaults every environment's Argo CD deploy section inherits.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    url: Option<Spanned<String>>,
    token: Option<Spanned<String>>,
}

/// `[environments.X.deploy]` with `driver = "argocd"`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySection {
    mode: Option<String>,
    // blue-green: one Argo CD application per colour
    blue_app: Option<String>,
    green_app: Option<String>,
    blue_url: Option<String>,
    green_url: Option<String>,
    // rolling: one application updated in place
    app: Option<String>,
    url: Option<String>,
    // how the version is set (exactly one)
    image: Option<String>,
    helm_parameter: Option<String>,
    target_revision: Option<String>,
    timeout: Option<String>,
    /// How often the application is read while waiting (tests shorten it).
    poll: Option<String>,
    // overrides of [argocd]
    server: Option<String>,
    token: Option<String>,
}

/// How a version reaches the application's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSetting {
    /// `spec.source.kustomize.images`: the entry for this image name becomes `name:{version}`.
    Image(String),
    /// `spec.source.helm.parameters`: the parameter of this name gets the version as value.
    HelmParameter(String),
    /// `spec.source.targetRevision`: this template with `{version}` filled in.
    TargetRevision(String),
}

/// Blue-green (an application per colour) or rolling (one application updated in place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    BlueGreen {
        blue_app: String,
        green_app: String,
        blue_url: String,
        green_url: String,
    },
    Rolling {
        app: String,
        url: String,
    },
}

/// The driver, validated.
#[derive(Debug, Clone)]
pub struct ArgoConfig {
    /// Argo CD's base URL (`https://argocd.example.com`); the API is under `api/v1/`.
    pub server: String,
    /// The resolved token (a secret: masked everywhere, sent only to `server`).
    pub token: String,
    pub mode: Mode,
    pub set: VersionSetting,
    pub timeout: Duration,
    pub poll: Duration,
}

impl ArgoConfig {
    pub fn rolling(&self) -> bool {
        matches!(self.mode, Mode::Rolling { .. })
    }
}

impl ServerSection {
    /// Checks `[argocd]` on its own (also when no environment uses it yet): an `https://`
    /// URL (http only for loopback) and a token that is a `${NAME}` reference, never the
    /// token itself. Whether the variable is set is checked where an environment needs it.
    pub fn check(&self) -> Result<(), (Range<usize>, String)> {
        if let Some(u) = &self.url {
            crate::remote::rest::check_base_url(u.get_ref())
                .map_err(|m| (u.span(), format!("[argocd] url {m}")))?;
        }
        if let Some(t) = &self.token {
            resolve_token(t.get_ref(), &|_| Some("set".into()))
                .map_err(|m| (t.span(), format!("[argocd] token: {m}")))?;
        }
        Ok(())
    }
}

impl DeploySection {
    /// Validates the section of environment `name` against the `[argocd]` defaults; `lookup`
    /// resolves the token's `${NAME}`; `span` is the section's (for what is missing).
    pub fn validate(
        self,
        name: &str,
        defaults: &ServerSection,
        span: Range<usize>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ArgoConfig, SchemaError> {
        let sec = || Where::Span(span.clone());
        let text = |v: &str| Where::Text(format!("\"{v}\""));
        let e = |w: Where, m: String| (w, format!("environment \"{name}\": {m}"));
        // A value of this section, or the [argocd] default with its own span.
        let pick = |own: &Option<String>, def: &Option<Spanned<String>>| match (own, def) {
            (Some(v), _) => Some((v.clone(), text(v))),
            (None, Some(d)) => Some((d.get_ref().clone(), Where::Span(d.span()))),
            (None, None) => None,
        };
        let Some((server, server_at)) = pick(&self.server, &defaults.url) else {
            return Err(e(sec(), "the argocd driver needs the Argo CD server: set url in [argocd] (or deploy.server)".into()));
        };
        if let Err(m) = crate::remote::rest::check_base_url(&server) {
            return Err(e(server_at, format!("Argo CD url {m}")));
        }
        let Some((token_ref, token_at)) = pick(&self.token, &defaults.token) else {
            return Err(e(sec(), "the argocd driver needs a token: set token = \"${ARGOCD_TOKEN}\" in [argocd] (or deploy.token)".into()));
        };
        let token = resolve_token(&token_ref, lookup)
            .map_err(|m| e(token_at, format!("Argo CD token: {m}")))?;

        let mode = match self.mode.as_deref() {
            None | Some("blue-green") => {
                let (Some(blue_app), Some(green_app), Some(blue_url), Some(green_url)) =
                    (self.blue_app, self.green_app, self.blue_url, self.green_url)
                else {
                    return Err(e(sec(), "mode \"blue-green\" needs blue_app, green_app, blue_url and green_url (one Argo CD application per colour)".into()));
                };
                if self.app.is_some() || self.url.is_some() {
                    return Err(e(sec(), "app and url belong to mode = \"rolling\"; blue-green uses blue_app/green_app and blue_url/green_url".into()));
                }
                if blue_app == green_app {
                    return Err(e(
                        text(&green_app),
                        "blue_app and green_app must be two applications".into(),
                    ));
                }
                Mode::BlueGreen {
                    blue_app,
                    green_app,
                    blue_url: blue_url.trim_end_matches('/').to_string(),
                    green_url: green_url.trim_end_matches('/').to_string(),
                }
            }
            Some("rolling") => {
                let (Some(app), Some(url)) = (self.app, self.url) else {
                    return Err(e(sec(), "mode \"rolling\" needs app and url (the one application and where it serves)".into()));
                };
                if self.blue_app.is_some()
                    || self.green_app.is_some()
                    || self.blue_url.is_some()
                    || self.green_url.is_some()
                {
                    return Err(e(sec(), "blue_app, green_app, blue_url and green_url belong to mode = \"blue-green\"".into()));
                }
                Mode::Rolling {
                    app,
                    url: url.trim_end_matches('/').to_string(),
                }
            }
            Some(other) => {
                return Err(e(
                    text(other),
                    format!("mode \"{other}\" is not \"blue-green\" or \"rolling\""),
                ));
            }
        };

        let set = match (self.image, self.helm_parameter, self.target_revision) {
            (Some(i), None, None) if !i.trim().is_empty() => VersionSetting::Image(i),
            (None, Some(p), None) if !p.trim().is_empty() => VersionSetting::HelmParameter(p),
            (None, None, Some(t)) if t.contains("{version}") => VersionSetting::TargetRevision(t),
            (None, None, Some(t)) => {
                return Err(e(text(&t), "target_revision must contain {version}".into()))
            }
            _ => return Err(e(sec(), "set exactly one of image, helm_parameter or target_revision (how the version reaches the application)".into())),
        };
        let timeout = duration(&self.timeout, "deploy.timeout", Duration::from_secs(600))
            .map_err(|m| e(text(self.timeout.as_deref().unwrap_or("")), m))?;
        let poll = duration(&self.poll, "deploy.poll", Duration::from_secs(2))
            .map_err(|m| e(text(self.poll.as_deref().unwrap_or("")), m))?;
        Ok(ArgoConfig {
            server: server.trim_end_matches('/').to_string(),
            token,
            mode,
            set,
            timeout,
            poll,
        })
    }
}

/// The token must be one `${NAME}` reference (a literal token would sit in the file, and the
/// file is in git).
fn resolve_token(raw: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let name = raw
        .trim()
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .filter(|n| {
            n.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .ok_or("write it as a reference to an environment variable, e.g. \"${ARGOCD_TOKEN}\", never the token itself")?;
    match lookup(name) {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => Err(format!("environment variable {name} is not set")),
    }
}

fn duration(raw: &Option<String>, what: &str, default: Duration) -> Result<Duration, String> {
    match raw {
        None => Ok(default),
        Some(s) => match humantime::parse_duration(s) {
            Ok(d) if !d.is_zero() => Ok(d),
            _ => Err(format!("{what} \"{s}\" is not a duration (e.g. \"10m\")")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(defaults: &str, section: &str) -> Result<ArgoConfig, String> {
        let d: ServerSection = toml::from_str(defaults).unwrap();
        let s: DeploySection = toml::from_str(section).map_err(|e| e.to_string())?;
        let lookup = |n: &str| (n == "ARGOCD_TOKEN").then(|| "tok-123".to_string());
        s.validate("prod", &d, 0..1, &lookup).map_err(|(_, m)| m)
    }

    const SERVER: &str = "url = \"https://argocd.example.com/\"\ntoken = \"${ARGOCD_TOKEN}\"";

    #[test]
    fn blue_green_is_the_default_and_rolling_is_its_own() {
        let c = parse(SERVER, "blue_app = \"a-blue\"\ngreen_app = \"a-green\"\nblue_url = \"http://b/\"\ngreen_url = \"http://g\"\nimage = \"r/app\"").unwrap();
        assert_eq!(c.server, "https://argocd.example.com");
        assert_eq!(c.token, "tok-123");
        assert!(!c.rolling());
        assert_eq!(c.timeout, Duration::from_secs(600));
        assert_eq!(c.set, VersionSetting::Image("r/app".into()));
        let c = parse(SERVER, "mode = \"rolling\"\napp = \"a\"\nurl = \"http://a\"\nhelm_parameter = \"image.tag\"\ntimeout = \"5m\"").unwrap();
        assert!(c.rolling());
        assert_eq!(c.timeout, Duration::from_secs(300));
    }

    #[test]
    fn refusals_are_one_line_each() {
        let bg = "blue_app = \"a\"\ngreen_app = \"b\"\nblue_url = \"http://b\"\ngreen_url = \"http://g\"";
        let cases = [
            (
                SERVER.replace("${ARGOCD_TOKEN}", "abc"),
                format!("{bg}\nimage = \"x\""),
                "never the token itself",
            ),
            (
                SERVER.replace("ARGOCD_TOKEN", "NOPE"),
                format!("{bg}\nimage = \"x\""),
                "NOPE is not set",
            ),
            (
                SERVER.replace("https://argocd.example.com/", "http://argocd.example.com"),
                format!("{bg}\nimage = \"x\""),
                "plain http://",
            ),
            (
                "".into(),
                format!("{bg}\nimage = \"x\""),
                "needs the Argo CD server",
            ),
            (SERVER.into(), bg.into(), "exactly one of"),
            (
                SERVER.into(),
                format!("{bg}\nimage = \"x\"\ntarget_revision = \"{{version}}\""),
                "exactly one of",
            ),
            (
                SERVER.into(),
                format!("{bg}\ntarget_revision = \"main\""),
                "must contain {version}",
            ),
            (
                SERVER.into(),
                "mode = \"rolling\"\napp = \"a\"\nimage = \"x\"".into(),
                "needs app and url",
            ),
            (
                SERVER.into(),
                "mode = \"canary\"\nimage = \"x\"".into(),
                "\"canary\" is not",
            ),
            (
                SERVER.into(),
                "blue_app = \"a\"\nimage = \"x\"".into(),
                "needs blue_app, green_app",
            ),
        ];
        for (d, s, want) in cases {
            let got = parse(&d, &s).unwrap_err();
            assert!(got.contains(want), "{s}: {got}");
            assert!(!got.contains('\n'));
        }
    }

    #[test]
    fn the_environment_overrides_the_server_and_token() {
        let c = parse(
            SERVER,
            "mode = \"rolling\"\napp = \"a\"\nurl = \"http://a\"\nimage = \"x\"\nserver = \"http://127.0.0.1:9\"",
        )
        .unwrap();
        assert_eq!(c.server, "http://127.0.0.1:9");
    }
}
