//! The house's import rules, checked against the code: no import circle between files, and no
//! module importing one on a higher floor than its own. The floors are read from the table under
//! "## Floors" in ARCHITECTURE.md, so the map a reader sees and the rule the compiler's neighbour
//! (this test) enforces are the same text.
//!
//! Imports are read as text: every `crate::` path (grouped `use crate::{a, b::{c}}` included),
//! `super::` and `self::` paths, and in `main.rs` the `greenlight::` paths. A path is resolved to
//! the longest prefix that is a file (`src/a/b.rs` or `src/a/b/mod.rs`); items inside a file and
//! inline modules resolve to that file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `src/`, by module path (`["core", "run"]`; `[]` for lib.rs).
fn files() -> BTreeMap<Vec<String>, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = root().join("src");
    let mut all = Vec::new();
    walk(&src, &mut all);
    all.into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
                parts.pop();
            }
            (parts, p)
        })
        .collect()
}

/// The text without comments and without the contents of string and char literals (a test
/// may well spell an import inside a string).
fn code(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '\'' && next.is_some() && b.get(i + 2) == Some(&'\'') {
            out.push_str("' '"); // 'x'
            i += 3;
        } else if c == '\'' && next == Some('\\') {
            // '\n', '\'', '\u{..}': skip the escaped char, then to the closing quote
            i += 3;
            while i < b.len() && b[i] != '\'' {
                i += 1;
            }
            out.push_str("' '");
            i += 1;
        } else if c == 'r'
            && matches!(next, Some('"') | Some('#'))
            && !(i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_'))
        {
            // r"..." / r#"..."#
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                if b.get(i) == Some(&'\n') {
                    out.push('\n'); // keep line structure
                }
                i += 1;
            }
            out.push_str("\"\"");
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_at(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (&s[..end], &s[end..])
}

/// The paths named by the use-tree starting at `s` (after `crate::`), each relative to `base`.
fn paths(s: &str, base: &[String], out: &mut Vec<Vec<String>>) {
    let s = s.trim_start();
    if let Some(rest) = s.strip_prefix('{') {
        // A group: split at top-level commas up to the matching brace.
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in rest.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    paths(&rest[start..i], base, out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    paths(&rest[start..i], base, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let (id, rest) = ident_at(s);
    if id.is_empty() || id == "self" {
        out.push(base.to_vec());
        return;
    }
    let mut p = base.to_vec();
    p.push(id.to_string());
    match rest.strip_prefix("::") {
        Some(more) => paths(more, &p, out),
        None => out.push(p),
    }
}

/// The files that `file` (module `me`) imports.
fn imports(
    me: &[String],
    text: &str,
    known: &BTreeMap<Vec<String>, PathBuf>,
) -> BTreeSet<Vec<String>> {
    let text = code(text);
    // Inside an inline module (`mod tests { ... }`) `super` is this file's own module: good enough
    // to treat everything after the first inline module that way.
    let inline = text
        .match_indices("\nmod ")
        .chain(text.match_indices("\n    mod "))
        .map(|(i, _)| i + 1)
        .filter(|&i| {
            text[i..]
                .lines()
                .next()
                .is_some_and(|l| l.trim_end().ends_with('{'))
        })
        .min();
    let parent: Vec<String> = me[..me.len().saturating_sub(1)].to_vec();
    let mut found = Vec::new();
    let mut push = |s: &str, base: &[String]| paths(s, base, &mut found);
    for (i, _) in text.match_indices("crate::") {
        let before = text[..i].chars().last().unwrap_or(' ');
        if before.is_alphanumeric() || before == '_' || before == '$' {
            continue;
        }
        push(&text[i + "crate::".len()..], &[]);
    }
    if me.first().is_some_and(|m| m == "main") {
        for (i, _) in text.match_indices("greenlight::") {
            push(&text[i + "greenlight::".len()..], &[]);
        }
    }
    for (i, _) in text.match_indices("super::") {
        if text[..i].ends_with("super::") {
            continue; // the second of `super::super::`, walked below
        }
        let mut up = if inline.is_some_and(|s| i > s) {
            me.to_vec()
        } else {
            parent.clone()
        };
        let mut rest = &text[i + "super::".len()..];
        while let Some(r) = rest.strip_prefix("super::") {
            up.pop();
            rest = r;
        }
        push(rest, &up);
    }
    for (i, _) in text.match_indices("self::") {
        let before = text[..i].chars().last().unwrap_or(' ');
        if before.is_alphanumeric() || before == '_' || before == ':' {
            continue;
        }
        push(&text[i + "self::".len()..], me);
    }
    found
        .into_iter()
        .filter_map(|p| {
            (0..=p.len())
                .rev()
                .map(|k| p[..k].to_vec())
                .find(|prefix| known.contains_key(prefix))
        })
        .filter(|f| f.as_slice() != me && !f.is_empty())
        .collect()
}

/// The import graph of `src/` (main.rs is its own crate: module `["main"]`).
fn graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let known = files();
    known
        .iter()
        .map(|(m, path)| {
            let text = std::fs::read_to_string(path).unwrap();
            (m.clone(), imports(m, &text, &known))
        })
        .collect()
}

/// Floors from ARCHITECTURE.md: lines `floor N: a b c` inside the "## Floors" section.
fn floors() -> BTreeMap<String, u32> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let section = text
        .split("\n## Floors")
        .nth(1)
        .expect("ARCHITECTURE.md has a \"## Floors\" section");
    let section = section.split("\n## ").next().unwrap();
    let mut out = BTreeMap::new();
    for line in section.lines() {
        let Some(rest) = line.trim().strip_prefix("floor ") else {
            continue;
        };
        let (n, names) = rest.split_once(':').expect("floor N: names");
        let n: u32 = n.trim().parse().expect("a floor number");
        for name in names.split_whitespace() {
            out.insert(name.trim_end_matches('/').to_string(), n);
        }
    }
    assert!(!out.is_empty(), "no `floor N: ...` lines under ## Floors");
    out
}

fn name(m: &[String]) -> String {
    if m.first().is_some_and(|f| f == "main") {
        return "src/main.rs".into();
    }
    format!("crate::{}", m.join("::"))
}

#[test]
fn no_import_circle_between_files() {
    let g = graph();
    // Tarjan's strongly connected components (the graph is a few dozen files: recursion is fine).
    struct T<'a> {
        g: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a [String], usize>,
        low: BTreeMap<&'a [String], usize>,
        stack: Vec<&'a [String]>,
        on: BTreeSet<&'a [String]>,
        next: usize,
        circles: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a [String]) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            let w = w.as_slice();
            if !t.g.contains_key(w) {
                continue;
            }
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(w);
                scc.push(name(w));
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.circles.push(scc);
            }
        }
    }
    let mut t = T {
        g: &g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        circles: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_slice()) {
            visit(&mut t, v);
        }
    }
    assert!(
        t.circles.is_empty(),
        "files that import each other in a circle: {:#?}",
        t.circles
    );
}

#[test]
fn no_module_imports_one_on_a_higher_floor() {
    let floors = floors();
    let top = |m: &[String]| m.first().cloned().unwrap_or_default();
    let mut wrong = Vec::new();
    let mut unplaced = BTreeSet::new();
    for (from, to) in graph() {
        if from.is_empty() {
            continue; // lib.rs only declares the modules
        }
        let a = top(&from);
        let Some(&fa) = floors.get(&a) else {
            unplaced.insert(a);
            continue;
        };
        for t in to {
            let b = top(&t);
            if a == b {
                continue;
            }
            match floors.get(&b) {
                Some(&fb) if fb < fa => {}
                Some(&fb) => wrong.push(format!(
                    "{} (floor {fa}) imports {} (floor {fb})",
                    name(&from),
                    name(&t)
                )),
                None => {
                    unplaced.insert(b);
                }
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "modules with no floor in ARCHITECTURE.md: {unplaced:?}"
    );
    assert!(
        wrong.is_empty(),
        "imports that run up or sideways: {wrong:#?}"
    );
}

#[test]
fn the_reader_resolves_grouped_relative_and_inline_paths() {
    let known: BTreeMap<Vec<String>, PathBuf> = [
        vec!["core".to_string()],
        vec!["core".into(), "run".into()],
        vec!["core".into(), "policy".into()],
        vec!["config".into()],
        vec!["app".into()],
    ]
    .into_iter()
    .map(|m| (m, PathBuf::new()))
    .collect();
    let me = vec!["core".to_string(), "run".to_string()];
    let text = "use super::policy::{self, Verdict};\nuse crate::{config::{Config, parse}, app};\n\
                // use crate::nothing;\nfn f() { crate::core::run::x(); }\n\
                const S: &str = \"use crate::strings_are_no_imports;\";\n\
                #[cfg(test)]\nmod tests {\n    use super::*;\n}\n";
    let got = imports(&me, text, &known);
    let want: BTreeSet<Vec<String>> = [
        vec!["core".to_string(), "policy".to_string()],
        vec!["config".to_string()],
        vec!["app".to_string()],
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);
}
