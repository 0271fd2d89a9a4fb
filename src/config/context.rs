//! What every section's validation shares: the error type with its line, and the text being
//! parsed (for line numbers) with the `${NAME}` lookup.

use std::time::Duration;
use toml::Spanned;

/// A configuration problem, with the line it is on when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The text being parsed (for line numbers) and how `${NAME}` references resolve.
pub(super) struct Ctx<'a> {
    pub(super) text: &'a str,
    pub(super) lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Ctx<'_> {
    pub(super) fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }
    pub(super) fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        message: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError {
            line: Some(self.line_of(span.start)),
            message: message.into(),
        })
    }
    /// The first line that contains `needle` (for errors about values without a span).
    pub(super) fn find_line(&self, needle: &str) -> Option<usize> {
        self.text
            .lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
    }
    pub(super) fn duration(
        &self,
        s: &Spanned<String>,
        what: &str,
    ) -> Result<Duration, ConfigError> {
        match humantime::parse_duration(s.get_ref()) {
            Ok(d) if !d.is_zero() => Ok(d),
            Ok(_) => self.err(s.span(), format!("{what} must be longer than zero")),
            Err(e) => self.err(
                s.span(),
                format!(
                    "{what}: \"{}\" is not a duration ({e}); write e.g. \"30s\", \"5m\", \"4h\"",
                    s.get_ref()
                ),
            ),
        }
    }
    pub(super) fn opt_duration(
        &self,
        s: &Option<Spanned<String>>,
        what: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match s {
            Some(s) => self.duration(s, what),
            None => Ok(default),
        }
    }
}
