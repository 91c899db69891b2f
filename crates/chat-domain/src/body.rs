use std::fmt::Write;
use std::sync::LazyLock;

use linkify::{LinkFinder, LinkKind};
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd, TextMergeStream};

use crate::Nickname;

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
        // As HTML does: CR LF, then any CR left, becomes LF.
        Ok(MessageBody(
            trimmed.replace("\r\n", "\n").replace('\r', "\n"),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Renders a body as safe HTML: `**bold**`, `_italic_`, `` `code` ``, fenced code blocks,
/// `> quotes`, and `http(s)` links (auto-linked, `rel="noopener nofollow ugc"`, new tab).
/// Single newlines stay line breaks. Raw HTML and images never render: they come out as the
/// text that was typed. Headings, lists and rules are kept as typed too, since a chat line
/// starting with `#` or `-` is rarely meant as a document heading or list. An allow-list
/// sanitiser checks the result, so even a renderer bug can't let markup through.
/// `@nickname` becomes a mention chip (not inside code or links).
pub fn render_body(text: &str) -> String {
    render_body_and_mentions(text).html
}

/// A rendered body and the people it mentions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedBody {
    pub html: String,
    /// Mention keys ([`Nickname::mention_key`]), each once, in order of first mention.
    pub mentions: Vec<String>,
}

/// A message names at most this many people; more `@`s stay plain text.
const MAX_MENTIONS: usize = 20;

/// [`render_body`], also collecting who is mentioned, so both come from one parse.
pub fn render_body_and_mentions(text: &str) -> RenderedBody {
    let source = keep_block_syntax_literal(text);
    let mut mentions = Vec::new();
    let mut html = String::with_capacity(text.len() * 2);
    let mut in_code_block = false;
    let mut in_image = false;
    let mut open_links: Vec<bool> = Vec::new();
    for event in TextMergeStream::new(Parser::new_ext(&source, Options::empty())) {
        match event {
            Event::Start(Tag::Paragraph) => html.push_str("<p>"),
            Event::End(TagEnd::Paragraph) => html.push_str("</p>"),
            Event::Start(Tag::Emphasis) => html.push_str("<em>"),
            Event::End(TagEnd::Emphasis) => html.push_str("</em>"),
            Event::Start(Tag::Strong) => html.push_str("<strong>"),
            Event::End(TagEnd::Strong) => html.push_str("</strong>"),
            Event::Start(Tag::BlockQuote(_)) => html.push_str("<blockquote>"),
            Event::End(TagEnd::BlockQuote(_)) => html.push_str("</blockquote>"),
            Event::Start(Tag::CodeBlock(_)) => {
                in_code_block = true;
                html.push_str("<pre><code>");
            }
            Event::End(TagEnd::CodeBlock) => {
                in_code_block = false;
                html.push_str("</code></pre>");
            }
            Event::Code(code) => {
                html.push_str("<code>");
                escape_into(&mut html, &code);
                html.push_str("</code>");
            }
            Event::Start(Tag::Link { dest_url, .. }) => {
                let web = web_url(&dest_url);
                if let Some(url) = &web {
                    push_link_start(&mut html, url);
                }
                open_links.push(web.is_some());
            }
            Event::End(TagEnd::Link) if open_links.pop() == Some(true) => html.push_str("</a>"),
            // An image shows as its alt text, never as an <img>.
            Event::Start(Tag::Image { .. }) => in_image = true,
            Event::End(TagEnd::Image) => in_image = false,
            Event::Text(text) if in_code_block || in_image || !open_links.is_empty() => {
                escape_into(&mut html, &text)
            }
            Event::Text(text) => linkify_into(&mut html, &text, &mut mentions),
            // Raw HTML is shown as the text it is, line breaks kept.
            Event::Start(Tag::HtmlBlock) => html.push_str("<p>"),
            Event::End(TagEnd::HtmlBlock) => html.push_str("</p>"),
            Event::Html(raw) => {
                for (n, line) in raw.trim_end_matches('\n').split('\n').enumerate() {
                    if n > 0 {
                        html.push_str("<br>");
                    }
                    escape_into(&mut html, line);
                }
            }
            Event::InlineHtml(raw) => escape_into(&mut html, &raw),
            Event::SoftBreak | Event::HardBreak => html.push_str("<br>"),
            // Block syntax is escaped before parsing; should any get through, its text stays.
            Event::Start(Tag::Heading { .. } | Tag::Item) => html.push_str("<p>"),
            Event::End(TagEnd::Heading(_) | TagEnd::Item) => html.push_str("</p>"),
            _ => {}
        }
    }
    RenderedBody {
        html: sanitizer().clean(&html).to_string(),
        mentions,
    }
}

/// Whether a body is only a few emoji, shown large.
pub fn is_emoji_only(text: &str) -> bool {
    const MAX_EMOJI: usize = 8;
    let mut emoji = 0;
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        match c as u32 {
            // Joiners, variation selectors, skin tones, keycaps and tags extend the one before.
            0x200D | 0xFE0E | 0xFE0F | 0x20E3 | 0x1F3FB..=0x1F3FF | 0xE0020..=0xE007F => {}
            0x1F000..=0x1FAFF
            | 0x2600..=0x27BF
            | 0x2B00..=0x2BFF
            | 0x2190..=0x21FF
            | 0x2300..=0x23FF
            | 0x25A0..=0x25FF
            | 0x3030
            | 0x303D
            | 0x3297
            | 0x3299
            | 0x00A9
            | 0x00AE
            | 0x203C
            | 0x2049
            | 0x2122
            | 0x2139 => emoji += 1,
            _ => return false,
        }
    }
    (1..=MAX_EMOJI).contains(&emoji)
}

fn sanitizer() -> &'static ammonia::Builder<'static> {
    static SANITIZER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
        let mut builder = ammonia::Builder::empty();
        builder
            .add_tags([
                "p",
                "br",
                "strong",
                "em",
                "code",
                "pre",
                "blockquote",
                "a",
                "span",
            ])
            .add_tag_attributes("a", ["href", "target"])
            .add_tag_attributes("span", ["data-mention"])
            .add_allowed_classes("span", ["mention"])
            .add_url_schemes(["http", "https"])
            .url_relative(ammonia::UrlRelative::Deny)
            .link_rel(Some("noopener nofollow ugc"))
            .set_tag_attribute_value("a", "target", "_blank");
        builder
    });
    &SANITIZER
}

/// Backslash-escapes what would start a heading, list, rule or setext underline, outside
/// fenced code, so it renders as typed.
fn keep_block_syntax_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_fence = false;
    for (n, line) in text.split('\n').enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[indent..];
        if rest.starts_with("```") || rest.starts_with("~~~") {
            in_fence = !in_fence;
        }
        out.push_str(&line[..indent]);
        if in_fence || indent >= 4 {
            out.push_str(rest);
            continue;
        }
        let mut chars = rest.chars();
        let first = chars.next();
        let second = chars.next();
        let bullet = matches!(first, Some('-' | '+' | '*')) && matches!(second, None | Some(' '));
        let rule_or_underline = matches!(first, Some('-' | '*' | '_' | '='))
            && rest.chars().all(|c| c == ' ' || Some(c) == first);
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let numbered = (1..=9).contains(&digits)
            && matches!(rest.as_bytes().get(digits), Some(b'.' | b')'))
            && matches!(rest.as_bytes().get(digits + 1), None | Some(b' '));
        if numbered {
            out.push_str(&rest[..digits]);
            out.push('\\');
            out.push_str(&rest[digits..]);
        } else {
            if first == Some('#') || bullet || rule_or_underline {
                out.push('\\');
            }
            out.push_str(rest);
        }
    }
    out
}

/// An `http(s)` URL as the browser will ask for it. One the sanitiser can't parse would lose
/// its `href` and leave a dead `<a>`; parsed, spaces inside (`U+2002`) are percent-encoded.
fn web_url(text: &str) -> Option<url::Url> {
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    let web = lower.starts_with("http://") || lower.starts_with("https://");
    web.then(|| url::Url::parse(text).ok()).flatten()
}

fn push_link_start(html: &mut String, url: &url::Url) {
    html.push_str("<a href=\"");
    escape_into(html, url.as_str());
    html.push_str("\" target=\"_blank\" rel=\"noopener nofollow ugc\">");
}

/// Escapes text, turning `http(s)` URLs into links and `@nickname`s into mention chips.
fn linkify_into(html: &mut String, text: &str, mentions: &mut Vec<String>) {
    let mut finder = LinkFinder::new();
    finder.kinds(&[LinkKind::Url]);
    for span in finder.spans(text) {
        let piece = span.as_str();
        let url = (span.kind() == Some(&LinkKind::Url))
            .then(|| web_url(piece))
            .flatten();
        if let Some(url) = url {
            push_link_start(html, &url);
            escape_into(html, piece);
            html.push_str("</a>");
        } else {
            mentions_into(html, piece, mentions);
        }
    }
}

fn is_nickname_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Escapes text, turning each `@nickname` that starts a word into a mention chip. A
/// trailing `.` is the sentence's, not the name's; `me@example.org` is no mention.
fn mentions_into(html: &mut String, text: &str, mentions: &mut Vec<String>) {
    let mut plain_from = 0;
    let mut previous: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let starts_word = previous.is_none_or(|p| !is_nickname_char(p) && p != '@');
        previous = Some(c);
        if c != '@' || !starts_word || mentions.len() >= MAX_MENTIONS {
            continue;
        }
        let name_from = at + 1;
        let mut name_to = name_from;
        while let Some(&(next_at, next)) = chars.peek() {
            if !is_nickname_char(next) {
                break;
            }
            name_to = next_at + next.len_utf8();
            previous = Some(next);
            chars.next();
        }
        let name = text[name_from..name_to].trim_end_matches('.');
        let Ok(nickname) = Nickname::parse(name) else {
            continue;
        };
        escape_into(html, &text[plain_from..at]);
        let key = nickname.mention_key();
        html.push_str("<span class=\"mention\" data-mention=\"");
        escape_into(html, &key);
        html.push_str("\">@");
        escape_into(html, name);
        html.push_str("</span>");
        plain_from = name_from + name.len();
        if !mentions.contains(&key) {
            mentions.push(key);
        }
    }
    escape_into(html, &text[plain_from..]);
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
    use proptest::strategy::Strategy;

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
    fn line_endings_become_newlines() {
        assert_eq!(MessageBody::parse("a\r\nb").unwrap().as_str(), "a\nb");
        assert_eq!(MessageBody::parse("a\r\r\nb").unwrap().as_str(), "a\n\nb");
        assert_eq!(MessageBody::parse("a\rb").unwrap().as_str(), "a\nb");
    }

    #[test]
    fn html_is_shown_as_typed() {
        assert_eq!(
            render_body("<script>alert('x')</script> & <b>\"q\"</b>"),
            "<p>&lt;script&gt;alert('x')&lt;/script&gt; &amp; &lt;b&gt;\"q\"&lt;/b&gt;</p>"
        );
    }

    #[test]
    fn formatting_renders() {
        assert_eq!(
            render_body("**bold** _it_ `a<b`"),
            "<p><strong>bold</strong> <em>it</em> <code>a&lt;b</code></p>"
        );
        assert_eq!(
            render_body("> quoted"),
            "<blockquote>\n<p>quoted</p>\n</blockquote>".replace('\n', "")
        );
        assert_eq!(
            render_body("```\nlet x = 1 < 2;\n- not a list\n```"),
            "<pre><code>let x = 1 &lt; 2;\n- not a list\n</code></pre>"
        );
    }

    #[test]
    fn single_newlines_stay_line_breaks() {
        assert_eq!(render_body("one\ntwo"), "<p>one<br>two</p>");
    }

    #[test]
    fn block_syntax_stays_as_typed() {
        assert_eq!(render_body("# not a heading"), "<p># not a heading</p>");
        assert_eq!(render_body("- one\n- two"), "<p>- one<br>- two</p>");
        assert_eq!(render_body("1. first"), "<p>1. first</p>");
        assert_eq!(render_body("a\n---"), "<p>a<br>---</p>");
    }

    #[test]
    fn urls_become_safe_links() {
        assert_eq!(
            render_body("see https://example.com/a?b=1&c=2 now"),
            "<p>see <a href=\"https://example.com/a?b=1&amp;c=2\" target=\"_blank\" \
             rel=\"noopener nofollow ugc\">https://example.com/a?b=1&amp;c=2</a> now</p>"
        );
    }

    #[test]
    fn only_web_links_and_no_images_render() {
        for input in [
            "[x](javascript:alert(1))",
            "javascript://alert(1) mailto:x@y.z",
            "![pic](https://example.com/a.png)",
            "<img src=x onerror=alert(1)>",
        ] {
            let html = render_body(input);
            assert!(
                !html.contains("<a") && !html.contains("<img"),
                "{input}: {html}"
            );
        }
        assert!(render_body("[docs](https://example.com)").contains(">docs</a>"));
    }

    #[test]
    fn a_url_that_does_not_parse_stays_text() {
        assert_eq!(render_body("<HTTPS://![t>"), "<p>HTTPS://![t</p>");
    }

    #[test]
    fn a_link_goes_where_the_browser_would_go() {
        // linkify takes an en space into a URL; the href gets it percent-encoded.
        let html = render_body("HTTPS://x.org/a\u{2002}b");
        assert!(
            html.contains("<a href=\"https://x.org/a%E2%80%82b\""),
            "{html}"
        );
    }

    #[test]
    fn link_text_cannot_break_out_of_the_attribute() {
        let html = render_body("https://x.org/\"onmouseover=alert(1)");
        let link = &html[html.find("<a ").unwrap()..html.find("</a>").unwrap()];
        assert!(!link.contains("onmouseover"), "{html}");
    }

    #[test]
    fn a_few_emoji_alone_show_large() {
        assert!(is_emoji_only("🎉"));
        assert!(is_emoji_only("👍🏽 ❤️"));
        assert!(is_emoji_only("👨‍👩‍👧"));
        assert!(!is_emoji_only("nice 🎉"));
        assert!(!is_emoji_only(&"🎉".repeat(9)));
    }

    #[test]
    fn mentions_become_chips_and_are_collected_once() {
        let body =
            render_body_and_mentions("@Alice and @bob_2, ask @alice. Mail me@example.org or @");
        assert_eq!(
            body.html,
            "<p><span class=\"mention\" data-mention=\"alice\">@Alice</span> and \
             <span class=\"mention\" data-mention=\"bob_2\">@bob_2</span>, ask \
             <span class=\"mention\" data-mention=\"alice\">@alice</span>. Mail me@example.org or @</p>"
        );
        assert_eq!(body.mentions, ["alice", "bob_2"]);
    }

    #[test]
    fn no_mentions_in_code_or_links() {
        let body = render_body_and_mentions("`@alice` https://x.org/@bob [@carol](https://x.org)");
        assert!(body.mentions.is_empty(), "{:?}", body);
        assert!(!body.html.contains("class=\"mention\""), "{}", body.html);
    }

    #[test]
    fn a_mention_cannot_carry_markup() {
        let body = render_body_and_mentions("@<b>x</b> @\"onclick=x @a<script>");
        assert_eq!(body.mentions, ["a"]);
        assert!(
            !body.html.contains("<b>") && !body.html.contains("<script"),
            "{}",
            body.html
        );
    }

    #[test]
    fn a_name_whose_nfkc_form_holds_punctuation_or_space_is_no_mention() {
        // Found by fuzzing: `Ŀ` and `ͺ` are letters, but NFKC makes them `L·` and ` ͅ`.
        for typed in ["<@ĿХ", "[@77ttͺ/!"] {
            let body = render_body_and_mentions(typed);
            assert!(body.mentions.is_empty(), "{typed}: {:?}", body.mentions);
            crate::invariants::check_render_body(typed);
        }
        assert_eq!(
            render_body_and_mentions("@İlker").mentions,
            ["i\u{307}lker"],
            "lower case may add a mark"
        );
    }

    proptest::proptest! {
        /// Whatever is typed, the only markup out is the renderer's own, and every link is a
        /// web link with the safe attributes.
        #[test]
        fn nothing_typed_becomes_markup(
            pieces in proptest::collection::vec(
                proptest::prop_oneof![
                    "[ -~\\n]{0,8}",
                    proptest::sample::select(vec![
                        "https://x.org/", "http://a.b/?q=\"", "javascript:", "<", ">", "\"", "'",
                        "&", "**", "_", "`", "```\n", "> ", "[", "](", ")", "![", "<img ", " on",
                        "<script>", "\n", "# ", "- ", "@", "@al", "@\"", ".",
                    ])
                    .prop_map(str::to_owned),
                ],
                0..40,
            )
        ) {
            crate::invariants::check_render_body(&pieces.concat());
        }
    }
}
