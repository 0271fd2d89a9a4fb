//! Evidence readers: what a checklist item with `evidence = "ci"` goes by. Each forge is a
//! file with an impl of [`CiSource`] (`github.rs`: check runs and commit statuses, `gitlab.rs`:
//! the commit's latest pipeline and its jobs) and one rule turns what they report into a
//! verdict (`judge.rs`). The app calls [`EvidenceReader::read`] only: it never matches on a
//! forge. Adding a forge is a file here, an arm in `schema.rs` and one in `start`.
//!
//! This module imports nothing above `remote`.
pub mod github;
pub mod gitlab;
pub mod judge;
pub mod schema;

use crate::core::evidence::{Evidence, Verdict};
use crate::core::EnvName;
use schema::{Forges, Source};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How long one reading may take at most, retries included (a slow forge is `Unavailable`,
/// and the item is read again later). A short re-reading interval shortens it, down to
/// `MIN_DEADLINE`, so readings do not pile up.
pub const READ_DEADLINE: Duration = Duration::from_secs(20);
pub const MIN_DEADLINE: Duration = Duration::from_secs(2);

/// A CI that reports on commits.
pub trait CiSource: Send + Sync {
    /// What CI says about `version` (resolved to its commit first), judged against `required`,
    /// within `deadline`.
    fn read<'a>(
        &'a self,
        version: &'a str,
        required: &'a [String],
        deadline: Duration,
    ) -> BoxFuture<'a, Verdict>;
}

/// Every evidence item's reader, by environment and item.
#[derive(Clone, Default)]
pub struct EvidenceReader {
    items: BTreeMap<(EnvName, usize), Arc<dyn CiSource>>,
}

impl EvidenceReader {
    /// One client per configured forge, shared by the items that read it (`items`: each
    /// evidence item's environment, index and forge, as the config resolved them).
    pub fn start(
        forges: &Forges,
        items: impl IntoIterator<Item = (EnvName, usize, Source)>,
        http: reqwest::Client,
    ) -> Result<EvidenceReader, String> {
        let mut clients: BTreeMap<Source, Arc<dyn CiSource>> = BTreeMap::new();
        let mut out = EvidenceReader::default();
        for (env, i, source) in items {
            let Some(settings) = forges.get(source) else {
                return Err(format!("[{}] is not configured", source.as_str()));
            };
            let client = match clients.get(&source) {
                Some(c) => c.clone(),
                None => {
                    let c: Arc<dyn CiSource> = match source {
                        Source::Github => Arc::new(github::GithubCi::new(settings, http.clone())?),
                        Source::Gitlab => Arc::new(gitlab::GitlabCi::new(settings, http.clone())?),
                    };
                    clients.insert(source, c.clone());
                    c
                }
            };
            out.items.insert((env, i), client);
        }
        Ok(out)
    }

    /// Reads item `item`'s evidence for `version`.
    pub async fn read(&self, env: &EnvName, item: usize, version: &str, e: &Evidence) -> Verdict {
        let Some(source) = self.items.get(&(env.clone(), item)) else {
            return Verdict::Unavailable {
                why: "no forge is configured for this item".into(),
            };
        };
        match e {
            Evidence::Ci { required, recheck } => {
                let deadline = (*recheck).clamp(MIN_DEADLINE, READ_DEADLINE);
                source.read(version, required, deadline).await
            }
        }
    }
}
