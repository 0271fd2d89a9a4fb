//! Text helpers every floor uses, one copy each: templates, secret masking, one-line
//! reasons and clipping. Pure string work, so they live on the ground floor with the rules.

use std::collections::BTreeMap;

/// Substitute `{name}` placeholders in one string from vars. `{{` / `}}` are literal braces.
///
/// Errors (one line, never containing a value): unknown placeholder, unclosed `{`, stray `}`, empty `{}`.
pub fn render_template(template: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|&(_, c)| c) == Some('{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek().map(|&(_, c)| c) == Some('}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let rest = &template[i + 1..];
                let Some(end) = rest.find(['{', '}']) else {
                    return Err(format!("unclosed '{{' in {template:?}"));
                };
                if rest.as_bytes()[end] == b'{' {
                    return Err(format!("unclosed '{{' in {template:?}"));
                }
                let name = &rest[..end];
                if name.is_empty() {
                    return Err(format!("empty placeholder {{}} in {template:?} (write {{{{}}}} for literal braces)"));
                }
                match vars.get(name) {
                    Some(v) => out.push_str(v),
                    None => return Err(format!("unknown placeholder {{{name}}}")),
                }
                // Skip the name and the closing brace.
                while let Some(&(j, _)) = chars.peek() {
                    chars.next();
                    if j == i + 1 + end {
                        break;
                    }
                }
            }
            '}' => {
                return Err(format!(
                    "unmatched '}}' in {template:?} (write }}}} for a literal brace)"
                ))
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Mask every non-empty secret occurrence in text with "***" (longest secrets first).
///
/// Single left-to-right pass, so a `***` produced by one secret is never re-examined by another.
pub fn mask(text: &str, secrets: &[String]) -> String {
    let mut sorted: Vec<&str> = secrets
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    if sorted.is_empty() {
        return text.to_string();
    }
    sorted.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    sorted.dedup();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    'outer: while i < text.len() {
        let rest = &text[i..];
        for s in &sorted {
            if rest.starts_with(s) {
                out.push_str("***");
                i += s.len();
                continue 'outer;
            }
        }
        let c = rest
            .chars()
            .next()
            .expect("i is on a char boundary below len");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Whitespace (newlines included) collapsed to single spaces: a reason fit for one line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The non-empty lines of a multi-line answer, trimmed and joined with `sep`.
pub fn join_lines(s: &str, sep: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(sep)
}

/// At most `max` characters of `s` (user input echoed back), with `…` when cut.
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// "outer: inner: innermost" on one line, each cause said once (a cause whose text an outer
/// message already contains is skipped).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![one_line(&e.to_string())];
    let mut next = e.source();
    while let Some(inner) = next {
        let text = one_line(&inner.to_string());
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = inner.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn vars(v: &[(&str, &str)]) -> BTreeMap<String, String> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn render_does_not_reexpand_values() {
        let v = vars(&[("a", "{b}"), ("b", "oops")]);
        assert_eq!(render_template("{a}", &v).unwrap(), "{b}");
        assert_eq!(render_template("é{a}ü", &v).unwrap(), "é{b}ü");
    }

    #[test]
    fn mask_longest_first() {
        let secrets = s(&["abc", "abcdef", "", "xyz"]);
        assert_eq!(mask("k=abcdef;j=abc;xyz!", &secrets), "k=***;j=***;***!");
        assert_eq!(mask("nothing here", &secrets), "nothing here");
        assert_eq!(mask("naïve secret: ü", &s(&["ü"])), "naïve secret: ***");
        // "*" as a secret does not re-mask the stars it produced.
        assert_eq!(mask("a*b", &s(&["*", "a"])), "******b");
        assert_eq!(mask("same", &[]), "same");
    }

    #[test]
    fn one_line_clip_and_chain() {
        assert_eq!(one_line(" a\n  b\r\n\tc "), "a b c");
        assert_eq!(join_lines("x\n\n  y \n", " / "), "x / y");
        assert_eq!(clip("héllo", 2), "hé…");
        assert_eq!(clip("hé", 2), "hé");
        let inner = std::io::Error::other("disk on fire");
        let outer = std::io::Error::other(Wrap(inner));
        assert_eq!(error_chain(&outer), "writing: disk on fire");
    }

    #[derive(Debug)]
    struct Wrap(std::io::Error);
    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("writing")
        }
    }
    impl std::error::Error for Wrap {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
}
