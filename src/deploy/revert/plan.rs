//! What a revert changes, decided from three listings of files (the good version's, the bad
//! version's, the default branch head's), whatever the forge: every file the release changed
//! is set back to the good version's, provided the head still holds the bad version's; a file
//! that changed on the head since is a conflict, and then nothing is planned.

use std::collections::{BTreeMap, BTreeSet};

/// One file in a listing: its mode (`100644`, `100755`, `120000`, `160000`), its kind (`blob`,
/// `commit` for a submodule) and its object id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub mode: String,
    pub kind: String,
    pub id: String,
}

/// Files by path.
pub type Listing = BTreeMap<String, File>;

/// Why no revert can be planned.
#[derive(Debug, PartialEq)]
pub enum NoPlan {
    /// `good` and `bad` hold the same files.
    Nothing,
    /// The head already holds `good`'s files.
    Done,
    /// These files changed on the head since `bad`.
    Conflict(Vec<String>),
}

/// How many conflicting paths a refusal names.
const NAMED: usize = 5;

impl NoPlan {
    /// One line for the thread.
    pub fn say(&self, bad: &str, good: &str, base: &str) -> String {
        match self {
            NoPlan::Nothing => format!("{bad} changed no file since {good}: nothing to revert"),
            NoPlan::Done => format!(
                "{base} already has {good}'s version of every file {bad} changed: nothing to revert"
            ),
            NoPlan::Conflict(paths) => format!(
                "{} changed on {base} since {bad} ({}{}): a conflict, revert by hand",
                if paths.len() == 1 {
                    "1 file".to_string()
                } else {
                    format!("{} files", paths.len())
                },
                paths
                    .iter()
                    .take(NAMED)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                if paths.len() > NAMED { ", …" } else { "" }
            ),
        }
    }
}

/// The changes that put `good`'s version of every file `bad` changed onto `head`: each path
/// with its new file, or `None` to delete it.
pub fn plan(
    good: &Listing,
    bad: &Listing,
    head: &Listing,
) -> Result<Vec<(String, Option<File>)>, NoPlan> {
    let changed: Vec<&String> = good
        .keys()
        .chain(bad.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|p| good.get(*p) != bad.get(*p))
        .collect();
    if changed.is_empty() {
        return Err(NoPlan::Nothing);
    }
    if changed.iter().all(|p| head.get(*p) == good.get(*p)) {
        return Err(NoPlan::Done);
    }
    let conflicts: Vec<String> = changed
        .iter()
        .filter(|p| head.get(**p) != bad.get(**p))
        .map(|p| p.to_string())
        .collect();
    if !conflicts.is_empty() {
        return Err(NoPlan::Conflict(conflicts));
    }
    Ok(changed
        .into_iter()
        .map(|p| (p.clone(), good.get(p).cloned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, id: &str) -> (String, File) {
        (
            path.into(),
            File {
                mode: "100644".into(),
                kind: "blob".into(),
                id: id.into(),
            },
        )
    }

    #[test]
    fn a_revert_sets_back_what_the_release_changed_and_nothing_else() {
        let good = Listing::from([f("a", "1"), f("b", "1"), f("gone", "1")]);
        let bad = Listing::from([f("a", "2"), f("b", "1"), f("new", "1")]);
        // The head moved on elsewhere (c) but not in a, new or gone.
        let head = Listing::from([f("a", "2"), f("b", "1"), f("new", "1"), f("c", "9")]);
        let got: Vec<(String, Option<String>)> = plan(&good, &bad, &head)
            .unwrap()
            .into_iter()
            .map(|(p, f)| (p, f.map(|f| f.id)))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), Some("1".into())),
                ("gone".into(), Some("1".into())),
                ("new".into(), None),
            ]
        );
    }

    #[test]
    fn a_file_changed_since_the_release_is_a_conflict_and_nothing_is_planned() {
        let good = Listing::from([f("a", "1")]);
        let bad = Listing::from([f("a", "2")]);
        let head = Listing::from([f("a", "3")]);
        let e = plan(&good, &bad, &head).unwrap_err();
        assert_eq!(e, NoPlan::Conflict(vec!["a".into()]));
        assert_eq!(
            e.say("v2", "v1", "main"),
            "1 file changed on main since v2 (a): a conflict, revert by hand"
        );
        assert_eq!(plan(&good, &good, &head).unwrap_err(), NoPlan::Nothing);
        assert_eq!(plan(&good, &bad, &good).unwrap_err(), NoPlan::Done);
        // A mode change alone is a change.
        let mut exec = good.clone();
        exec.get_mut("a").unwrap().mode = "100755".into();
        assert!(plan(&good, &exec, &exec).is_ok());
    }
}
