use serde::Deserialize;

use super::{BodyError, MessageBody};

pub(crate) const MAX_CLIENT_ID_CHARS: usize = 64;

/// What a browser (or any client) sends over the room socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// Sent first on every (re)connect: replay what is newer than `after`, and the changes to
    /// older messages made after room revision `revision` (when the page knows one), then go
    /// live.
    Resume { after: u64, revision: Option<u64> },
    /// The person is typing (sent throttled by the page); never stored.
    Typing,
    /// A message from the composer.
    Send {
        body: MessageBody,
        client_id: Option<ClientId>,
        /// The message this one answers.
        reply_to: Option<u64>,
    },
}

/// A random id the page gives each send, so a resend after a reconnect is stored once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(input: &str) -> Option<ClientId> {
        let ok = !input.is_empty()
            && input.len() <= MAX_CLIENT_ID_CHARS
            && input
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| ClientId(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("The message could not be read. Please reload the page.")]
    BadFrame,
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("You are sending messages too fast. Wait a moment, then send it again.")]
    RateLimited,
}

impl FrameError {
    pub fn code(self) -> &'static str {
        match self {
            FrameError::BadFrame => "bad_frame",
            FrameError::RateLimited => "rate_limited",
            FrameError::Body(e) => e.code(),
        }
    }
}

/// The JSON htmx-ext-ws sends: form values plus `HEADERS`. Unknown fields are ignored.
#[derive(Deserialize)]
struct RawFrame {
    body: Option<String>,
    client_id: Option<String>,
    resume_after: Option<u64>,
    revision: Option<u64>,
    #[serde(default)]
    typing: bool,
    reply_to: Option<MessageIdField>,
}

/// A message id as a form sends it (a string, empty for none) or as a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum MessageIdField {
    Number(u64),
    Text(String),
}

impl MessageIdField {
    fn parse(self) -> Result<Option<u64>, FrameError> {
        match self {
            MessageIdField::Number(id) => Ok(Some(id)),
            MessageIdField::Text(text) if text.is_empty() => Ok(None),
            MessageIdField::Text(text) => text.parse().map(Some).map_err(|_| FrameError::BadFrame),
        }
    }
}

impl ClientFrame {
    pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
        // serde would also take the fields in order from an array: `["hi", "c-1"]`.
        if !text.trim_start().starts_with('{') {
            return Err(FrameError::BadFrame);
        }
        let raw: RawFrame = serde_json::from_str(text).map_err(|_| FrameError::BadFrame)?;
        if let Some(after) = raw.resume_after {
            return Ok(ClientFrame::Resume {
                after,
                revision: raw.revision,
            });
        }
        if raw.typing && raw.body.is_none() {
            return Ok(ClientFrame::Typing);
        }
        let body = raw.body.ok_or(FrameError::BadFrame)?;
        let client_id = match raw.client_id.as_deref() {
            None | Some("") => None,
            Some(id) => Some(ClientId::parse(id).ok_or(FrameError::BadFrame)?),
        };
        let reply_to = match raw.reply_to {
            None => None,
            Some(field) => field.parse()?,
        };
        Ok(ClientFrame::Send {
            body: MessageBody::parse(&body)?,
            client_id,
            reply_to,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_htmx_ws_send() {
        let frame = ClientFrame::parse(
            r#"{"body":"hi","client_id":"c-1","HEADERS":{"HX-Request":"true"}}"#,
        )
        .unwrap();
        assert_eq!(
            frame,
            ClientFrame::Send {
                body: MessageBody::parse("hi").unwrap(),
                client_id: ClientId::parse("c-1"),
                reply_to: None,
            }
        );
    }

    #[test]
    fn parses_a_reply_from_a_form_field_or_a_number() {
        for (text, expected) in [
            (r#"{"body":"hi","reply_to":"7"}"#, Some(7)),
            (r#"{"body":"hi","reply_to":7}"#, Some(7)),
            (r#"{"body":"hi","reply_to":""}"#, None),
        ] {
            let Ok(ClientFrame::Send { reply_to, .. }) = ClientFrame::parse(text) else {
                panic!("{text} did not parse");
            };
            assert_eq!(reply_to, expected, "{text}");
        }
        assert_eq!(
            ClientFrame::parse(r#"{"body":"hi","reply_to":"x"}"#),
            Err(FrameError::BadFrame)
        );
    }

    #[test]
    fn parses_resume() {
        assert_eq!(
            ClientFrame::parse(r#"{"resume_after": 42}"#),
            Ok(ClientFrame::Resume {
                after: 42,
                revision: None
            })
        );
        assert_eq!(
            ClientFrame::parse(r#"{"resume_after": 42, "revision": 1700000000123}"#),
            Ok(ClientFrame::Resume {
                after: 42,
                revision: Some(1_700_000_000_123)
            })
        );
    }

    #[test]
    fn parses_typing() {
        assert_eq!(
            ClientFrame::parse(r#"{"typing": true}"#),
            Ok(ClientFrame::Typing)
        );
    }

    #[test]
    fn rejects_malformed_frames() {
        for bad in [
            "not json",
            "[1,2]",
            "{}",
            r#"{"body": 5}"#,
            r#"{"resume_after": -1}"#,
            r#"{"body":"x","client_id":"<bad>"}"#,
            r#"["hi", "c-1"]"#,
        ] {
            assert_eq!(ClientFrame::parse(bad), Err(FrameError::BadFrame), "{bad}");
        }
    }

    #[test]
    fn body_errors_keep_their_code() {
        let err = ClientFrame::parse(r#"{"body":"   "}"#).unwrap_err();
        assert_eq!(err.code(), "empty");
    }

    proptest::proptest! {
        #[test]
        fn parsed_frames_agree_with_their_json(
            body in proptest::option::of("\\PC{0,20}"),
            client_id in "[a-z0-9_<-]{0,3}",
            typing: bool,
            resume_after in proptest::option::of(0..3u64),
            reply_to in proptest::option::of("[0-9x]{0,2}"),
        ) {
            let frame = serde_json::json!({
                "body": body, "client_id": client_id, "typing": typing, "resume_after": resume_after,
                "reply_to": reply_to,
            });
            crate::invariants::check_client_frame(&frame.to_string());
        }
    }
}
