//! Where a login goes next: only a path on this server, read the way a browser reads it.
//!
//! Comparing prefixes (`/` but not `//`) is not enough: browsers drop tabs and newlines from
//! a URL and take `\` for `/`, so `/\t/evil.example` lands on `//evil.example`. Here `next`
//! is parsed by the WHATWG rules (the `url` crate, as browsers do) against this server's
//! origin; only a result on that same origin is kept, written back as a plain path and query.

use url::Url;

/// Stands for this server's origin: whatever `next` names, only a result on this origin is
/// kept, and all that is kept of it is the path and query.
const OWN_ORIGIN: &str = "http://chat.invalid/login";

/// The path (and query) on this server that `next` leads to, or `None` when it leads
/// anywhere else or does not parse.
pub fn local_next(next: Option<String>) -> Option<String> {
    let base = Url::parse(OWN_ORIGIN).expect("a valid base URL");
    let target = base.join(next.as_deref()?).ok()?;
    if target.origin() != base.origin() {
        return None;
    }
    let mut local = target.path().to_owned();
    // A path that starts with `//` (from `/.//evil`, say) would be read back as a host.
    if !local.starts_with('/') || local.starts_with("//") {
        return None;
    }
    if let Some(query) = target.query() {
        local.push('?');
        local.push_str(query);
    }
    Some(local)
}

#[cfg(test)]
mod tests {
    use super::local_next;

    fn next(text: &str) -> Option<String> {
        local_next(Some(text.to_owned()))
    }

    #[test]
    fn local_paths_are_kept() {
        assert_eq!(next("/rooms/lobby").as_deref(), Some("/rooms/lobby"));
        assert_eq!(
            next("/admin?token=abc123").as_deref(),
            Some("/admin?token=abc123")
        );
        assert_eq!(next("/").as_deref(), Some("/"));
        assert_eq!(next("/search?q=a+b").as_deref(), Some("/search?q=a+b"));
        // Nobody sends these, but they are still here: a relative path, an odd segment.
        assert_eq!(next("rooms/lobby").as_deref(), Some("/rooms/lobby"));
        assert_eq!(
            next("/\u{3000}/evil.example").as_deref(),
            Some("/%E3%80%80/evil.example")
        );
        // `%2F` is no separator to a browser: one segment, on this server.
        assert_eq!(
            next("/%2F%2Fevil.example").as_deref(),
            Some("/%2F%2Fevil.example")
        );
        // Scheme-relative on this scheme, as a browser reads it: a path here, written back
        // as one (so an https page can't read it as absolute).
        assert_eq!(next("http:evil.example").as_deref(), Some("/evil.example"));
        assert_eq!(local_next(None), None);
    }

    #[test]
    fn what_is_kept_is_safe_as_a_header() {
        for text in [
            "/rooms/caf\u{e9}",
            "/a b",
            "/x?q=\u{1F600}",
            "/%0d%0aSet-Cookie:x",
            "/a\r\nSet-Cookie: x=1",
        ] {
            let kept = next(text).unwrap_or_else(|| panic!("{text:?} is local"));
            assert!(
                kept.bytes().all(|b| b.is_ascii_graphic()),
                "{text:?} became {kept:?}"
            );
        }
    }

    #[test]
    fn every_known_way_off_site_falls_back() {
        for trick in [
            "//evil.example",
            "//evil.example/path",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "\\/evil.example",
            "/\t/evil.example/x",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "\t//evil.example",
            " //evil.example",
            "\u{0}//evil.example",
            "/.//evil.example",
            "/%2e//evil.example",
            "/./%2E//evil.example",
            "/..//evil.example",
            "https:evil.example",
            "https:/evil.example",
            "http://evil.example",
            "HTTP://evil.example",
            "https://chat.invalid.evil.example/",
            "http://chat.invalid@evil.example/",
            "http://chat.invalid:8080/",
            "https://chat.invalid/",
            "http://[::1]/",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            " javascript:alert(1)",
            "java\tscript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox",
            "mailto:someone@evil.example",
            "ftp://evil.example/",
            "//evil\u{3002}example",
            "//\u{ff45}\u{ff56}\u{ff49}\u{ff4c}.example",
            "http://",
        ] {
            assert_eq!(next(trick), None, "{trick:?}");
        }
    }
}
