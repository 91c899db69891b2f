use std::fmt::Write;

use linkify::{LinkFinder, LinkKind};

pub const MAX_BODY_CHARS: usize = 4000;

/// A message body: 1–4,000 Unicode scalar values after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("Type a message first.")]
    Empty,
    #[error("A message can be at most {MAX_BODY_CHARS} characters long.")]
    TooLong,
}

impl BodyError {
    /// The `data-error` code of the composer error fragment.
    pub fn code(self) -> &'static str {
        match self {
            BodyError::Empty => "empty",
            BodyError::TooLong => "too_long",
        }
    }
}

impl MessageBody {
    pub fn parse(input: &str) -> Result<Self, BodyError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(BodyError::Empty);
        }
        if trimmed.chars().count() > MAX_BODY_CHARS {
            return Err(BodyError::TooLong);
        }
        Ok(MessageBody(trimmed.replace("\r\n", "\n")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Renders a plain-text body as HTML: everything escaped, `http(s)` URLs turned into links that
/// open apart from the chat and pass no referrer trust. Newlines are kept by the stylesheet
/// (`white-space: pre-wrap`).
pub fn render_body(text: &str) -> String {
    let mut html = String::with_capacity(text.len() + text.len() / 8);
    let mut finder = LinkFinder::new();
    finder.kinds(&[LinkKind::Url]);
    for span in finder.spans(text) {
        let piece = span.as_str();
        let is_web_link = span.kind() == Some(&LinkKind::Url) && {
            let lower = piece.get(..8).unwrap_or(piece).to_ascii_lowercase();
            lower.starts_with("http://") || lower.starts_with("https://")
        };
        if is_web_link {
            html.push_str("<a href=\"");
            escape_into(&mut html, piece);
            html.push_str("\" rel=\"noopener nofollow ugc\" target=\"_blank\">");
            escape_into(&mut html, piece);
            html.push_str("</a>");
        } else {
            escape_into(&mut html, piece);
        }
    }
    html
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => {
                let _ = out.write_char(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_trimmed_and_bounded() {
        assert_eq!(MessageBody::parse("  hi \n").unwrap().as_str(), "hi");
        assert_eq!(MessageBody::parse(" \n\t "), Err(BodyError::Empty));
        assert!(MessageBody::parse(&"字".repeat(MAX_BODY_CHARS)).is_ok());
        assert_eq!(
            MessageBody::parse(&"字".repeat(MAX_BODY_CHARS + 1)),
            Err(BodyError::TooLong)
        );
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            render_body("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn urls_become_safe_links() {
        let html = render_body("see https://example.com/a?b=1&c=2 now");
        assert_eq!(
            html,
            "see <a href=\"https://example.com/a?b=1&amp;c=2\" rel=\"noopener nofollow ugc\" \
             target=\"_blank\">https://example.com/a?b=1&amp;c=2</a> now"
        );
    }

    #[test]
    fn only_web_schemes_are_linked() {
        let html = render_body("javascript://alert(1) mailto:x@y.z");
        assert!(!html.contains("<a"), "{html}");
    }

    #[test]
    fn link_text_cannot_break_out_of_the_attribute() {
        let html = render_body("https://x.org/\"onmouseover=alert(1)");
        assert!(!html.contains("\"onmouseover"), "{html}");
    }
}
