//! The git data API: what a revert needs to build a commit without a checkout. `resolve.rs`
//! a version to its commit and tree, `tree.rs` read and create trees, `commit.rs` create a
//! commit, `refs.rs` read and create a branch.
pub mod commit;
pub mod refs;
pub mod resolve;
pub mod tree;

use serde::{Deserialize, Serialize};

/// One entry of a tree (a file, a symlink, a submodule), as GitHub lists it recursively.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    /// `100644` file, `100755` executable, `120000` symlink, `160000` submodule, `040000` tree.
    pub mode: String,
    /// `blob`, `tree` or `commit`.
    #[serde(rename = "type")]
    pub kind: String,
    pub sha: String,
}
