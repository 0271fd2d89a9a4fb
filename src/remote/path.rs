//! A value put into a URL path as one segment (a git ref with `/` or `+`, GitLab's
//! `group/project`): everything but unreserved characters is percent-encoded.

pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn refs_and_projects_become_one_segment() {
        assert_eq!(super::segment("v1.2.0+b5"), "v1.2.0%2Bb5");
        assert_eq!(super::segment("group/sub/project"), "group%2Fsub%2Fproject");
        assert_eq!(super::segment("abc1234"), "abc1234");
    }
}
