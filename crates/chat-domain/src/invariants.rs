//! What the parsers and the renderer promise, as checks that panic when a promise breaks.
//! The unit tests' proptests and the fuzzers in `fuzz/` share them, so both hold the code to
//! the same rules. Compiled for tests and with the `invariants` feature only.

use unicode_normalization::UnicodeNormalization;

use crate::body::MAX_BODY_CHARS;
use crate::frame::MAX_CLIENT_ID_CHARS;
use crate::nickname::{MAX_NICKNAME_CHARS, is_mention_key_char, uniqueness_key};
use crate::room::{MAX_ROOM_NAME_CHARS, MAX_SLUG_CHARS};
use crate::{
    BodyError, ClientFrame, ClientId, FrameError, MessageBody, Nickname, NicknameError, RoomName,
    RoomNameError, Slug, render_body,
};

/// The only tags `render_body` writes, besides links; none of them with attributes.
const PLAIN_TAGS: [&str; 7] = ["p", "br", "strong", "em", "code", "pre", "blockquote"];
const LINK_ATTRIBUTES_END: &str = "\" target=\"_blank\" rel=\"noopener nofollow ugc\"";
/// The most output one input character may cost: a `>` opening a quote is 25 bytes of
/// markup, a link's `&` is `&amp;` twice; anything beyond this is a blow-up.
const MAX_RENDER_BYTES_PER_INPUT_BYTE: usize = 32;
const MAX_RENDER_OVERHEAD_BYTES: usize = 128;

/// Renders `input` and checks that the only markup out is the renderer's own: the tags above
/// without attributes, properly nested, and links to `http(s)` URLs with the safe `rel`.
pub fn check_render_body(input: &str) {
    let html = render_body(input);
    assert_rendered_markup_is_safe(&html);
    assert!(
        html.len() <= MAX_RENDER_OVERHEAD_BYTES + input.len() * MAX_RENDER_BYTES_PER_INPUT_BYTE,
        "{} bytes of HTML from {} bytes of input",
        html.len(),
        input.len()
    );
}

fn assert_rendered_markup_is_safe(html: &str) {
    let lower = html.to_ascii_lowercase();
    for never in ["<script", "<img", "<svg", "<iframe", "<style"] {
        assert!(!lower.contains(never), "{never} in {html}");
    }
    let mut open: Vec<&str> = Vec::new();
    for tag in html.split('<').skip(1) {
        let end = tag
            .find('>')
            .unwrap_or_else(|| panic!("unclosed tag in {html}"));
        let tag = &tag[..end];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(name), "</{name}> misplaced in {html}");
        } else if tag == "br" {
        } else if let Some(attributes) = tag.strip_prefix("span ") {
            assert_mention_chip(attributes, html);
            open.push("span");
        } else if let Some(attributes) = tag.strip_prefix("a ") {
            assert_safe_link(attributes, html);
            assert!(!open.contains(&"a"), "link inside a link in {html}");
            open.push("a");
        } else {
            assert!(PLAIN_TAGS.contains(&tag), "<{tag}> in {html}");
            open.push(tag);
        }
    }
    assert!(open.is_empty(), "unclosed {open:?} in {html}");
}

/// A mention is `<span class="mention" data-mention="{key}">` with a mention key (nickname
/// characters, and the marks lower case adds), and holds plain text.
fn assert_mention_chip(attributes: &str, html: &str) {
    let key = attributes
        .strip_prefix("class=\"mention\" data-mention=\"")
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("<span {attributes}> in {html}"));
    assert!(
        !key.is_empty() && key.chars().all(is_mention_key_char),
        "mention key {key:?} in {html}"
    );
}

fn assert_safe_link(attributes: &str, html: &str) {
    let href = attributes
        .strip_prefix("href=\"")
        .and_then(|rest| rest.strip_suffix(LINK_ATTRIBUTES_END))
        .unwrap_or_else(|| panic!("link <a {attributes}> in {html}"));
    let scheme = href
        .split_once("://")
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    assert!(
        matches!(scheme.as_deref(), Some("http" | "https")),
        "href {href} in {html}"
    );
    assert!(
        !href.contains(|c: char| c == '"' || c == '<' || c == '>' || c.is_whitespace()),
        "href {href} in {html}"
    );
}

/// Parses a socket frame and checks the result against what the JSON says.
pub fn check_client_frame(text: &str) {
    let parsed = ClientFrame::parse(text);
    let json: Option<serde_json::Value> = serde_json::from_str(text).ok();
    let field = |name: &str| json.as_ref().and_then(|json| json.get(name));
    match parsed {
        Ok(ClientFrame::Resume { after, revision }) => {
            assert_eq!(field("resume_after").and_then(|v| v.as_u64()), Some(after));
            assert_eq!(field("revision").and_then(|v| v.as_u64()), revision);
        }
        Ok(ClientFrame::Typing) => {
            assert_eq!(field("typing"), Some(&serde_json::Value::Bool(true)));
            assert!(field("body").is_none_or(|body| body.is_null()));
        }
        Ok(ClientFrame::Send {
            body,
            client_id,
            reply_to,
        }) => {
            let typed = field("body").and_then(|v| v.as_str());
            assert_eq!(typed.map(MessageBody::parse), Some(Ok(body.clone())));
            assert_message_body_rules(&body);
            if let Some(id) = &client_id {
                assert_client_id_rules(id);
            }
            assert_eq!(reply_to, typed_message_id(field("reply_to")), "{text}");
            let written = send_frame_json(&body, client_id.as_ref(), reply_to);
            assert_eq!(
                ClientFrame::parse(&written),
                Ok(ClientFrame::Send {
                    body,
                    client_id,
                    reply_to
                }),
                "a sent frame written back as JSON parses the same"
            );
        }
        Err(FrameError::Body(error)) => {
            let typed = field("body").and_then(|v| v.as_str());
            let typed = typed.unwrap_or_else(|| panic!("{error:?} without a body in {text}"));
            assert_eq!(MessageBody::parse(typed), Err(error));
        }
        Err(FrameError::BadFrame) => {}
        Err(FrameError::RateLimited) => panic!("parsing can't rate-limit: {text}"),
    }
}

/// A message id as a number, or as a form's string with empty for none.
fn typed_message_id(field: Option<&serde_json::Value>) -> Option<u64> {
    match field? {
        serde_json::Value::Null => None,
        serde_json::Value::String(text) if text.is_empty() => None,
        serde_json::Value::String(text) => Some(text.parse().expect("a refused id")),
        other => Some(other.as_u64().expect("a refused id")),
    }
}

fn send_frame_json(
    body: &MessageBody,
    client_id: Option<&ClientId>,
    reply_to: Option<u64>,
) -> String {
    let mut frame = serde_json::json!({ "body": body.as_str(), "reply_to": reply_to });
    if let Some(id) = client_id {
        frame["client_id"] = id.as_str().into();
    }
    frame.to_string()
}

fn assert_message_body_rules(body: &MessageBody) {
    let text = body.as_str();
    assert!(!text.is_empty() && text == text.trim(), "{text:?}");
    assert!(text.chars().count() <= MAX_BODY_CHARS);
    assert!(!text.contains('\r'), "{text:?}");
    assert_eq!(MessageBody::parse(text).as_ref(), Ok(body));
}

fn assert_client_id_rules(id: &ClientId) {
    let text = id.as_str();
    assert!((1..=MAX_CLIENT_ID_CHARS).contains(&text.len()), "{text:?}");
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{text:?}"
    );
}

/// Parses a body directly and checks the length rules.
pub fn check_message_body(input: &str) {
    let trimmed = input.trim();
    match MessageBody::parse(input) {
        Ok(body) => assert_message_body_rules(&body),
        Err(BodyError::Empty) => assert!(trimmed.is_empty()),
        Err(BodyError::TooLong) => assert!(trimmed.chars().count() > MAX_BODY_CHARS),
    }
}

/// Parses a nickname, checks the documented rules and the reason for a refusal, and checks
/// that its uniqueness key ignores case and width and is its own key.
pub fn check_nickname(input: &str) {
    let trimmed = input.trim();
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.');
    let nickname = match Nickname::parse(input) {
        Ok(nickname) => nickname,
        Err(NicknameError::Empty) => return assert!(trimmed.is_empty()),
        Err(NicknameError::TooLong) => {
            return assert!(trimmed.chars().count() > MAX_NICKNAME_CHARS);
        }
        Err(NicknameError::InvalidCharacter) => {
            let invisible = |c: char| uniqueness_key(&c.to_string()).is_empty();
            let refused = |c: char| !allowed(c) || invisible(c);
            let mention_key: String = trimmed.nfkc().flat_map(char::to_lowercase).collect();
            return assert!(
                trimmed.chars().any(refused) || !mention_key.chars().all(is_mention_key_char),
                "{trimmed:?}"
            );
        }
    };
    let text = nickname.as_str();
    assert_eq!(text, trimmed);
    assert!((1..=MAX_NICKNAME_CHARS).contains(&text.chars().count()));
    assert!(text.chars().all(allowed), "{text:?}");
    assert_eq!(Nickname::parse(text).as_ref(), Ok(&nickname));

    assert!(
        nickname.mention_key().chars().all(is_mention_key_char),
        "{text:?} has mention key {:?}",
        nickname.mention_key()
    );
    let key = nickname.key();
    assert!(!key.is_empty(), "{text:?} has an empty key");
    assert_eq!(
        uniqueness_key(&key),
        key,
        "the key of {text:?} is not its own key"
    );
    // Case is changed on the NFKC form: U+0345 has a case but is a combining mark, and
    // upper-casing it before normalising moves it past other marks.
    let width_folded: String = text.nfkc().collect();
    let variants = [
        width_folded.to_uppercase(),
        width_folded.to_lowercase(),
        width_folded,
    ];
    // A variant that trimming changes (NFKC turns `ͺ` into a space and a mark) is another name.
    for variant in variants {
        if let Some(variant) = Nickname::parse(&variant)
            .ok()
            .filter(|parsed| parsed.as_str() == variant)
        {
            assert_eq!(
                variant.key(),
                key,
                "{variant} and {text} differ in case or width"
            );
        }
    }
}

/// Parses a room name and checks the slug rules of DESIGN.md.
pub fn check_room_name(input: &str) {
    let name = input.trim();
    let slug = Slug::from_name(name);
    match RoomName::parse(input) {
        Ok(room) => {
            assert_eq!(room.as_str(), name);
            assert!(name.chars().count() <= MAX_ROOM_NAME_CHARS);
            assert_eq!(Some(room.slug()), slug.as_ref());
        }
        Err(RoomNameError::TooLong) => assert!(name.chars().count() > MAX_ROOM_NAME_CHARS),
        Err(RoomNameError::Empty) => assert_eq!(slug, None),
    }
    check_slug(input);
    assert_eq!(
        Slug::parse(input).is_some(),
        Slug::from_name(input).is_some_and(|slug| slug.as_str() == input),
        "{input:?}"
    );
}

/// The slug is the lowercased name's letters and digits, runs of anything else as one `-`,
/// no `-` at either end, at most 64 characters, and canonical.
fn check_slug(name: &str) {
    let kept: String = name
        .chars()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric())
        .collect();
    let Some(slug) = Slug::from_name(name) else {
        return assert!(kept.is_empty(), "{name:?} has letters or digits {kept:?}");
    };
    let text = slug.as_str();
    assert!(
        (1..=MAX_SLUG_CHARS).contains(&text.chars().count()),
        "{text:?}"
    );
    assert!(!text.starts_with('-') && !text.ends_with('-') && !text.contains("--"));
    assert!(
        text.chars().all(|c| c == '-' || c.is_alphanumeric()),
        "{text:?}"
    );
    assert!(
        text.chars().flat_map(char::to_lowercase).eq(text.chars()),
        "{text:?}"
    );
    let letters_and_digits: String = text.chars().filter(|&c| c != '-').collect();
    assert!(
        kept.starts_with(&letters_and_digits),
        "{name:?} -> {text:?}"
    );
    let was_cut = text.chars().count() >= MAX_SLUG_CHARS - 1;
    assert!(
        was_cut || letters_and_digits == kept,
        "{name:?} -> {text:?} lost letters or digits"
    );
    assert_eq!(
        Slug::parse(text).as_ref(),
        Some(&slug),
        "{text:?} is not canonical"
    );
}
