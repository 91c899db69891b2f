//! The WebSocket handshake, and the limits of the socket it opens.

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::{Role, WebSocketConfig};

use super::pieces::TEXT_PIECE;

pub(super) type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// A socket message over this is refused and the socket closed with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Bytes tungstenite reads at a time, and keeps per socket for good. Pages send small frames
/// (a message plus htmx's headers); a bigger one grows the buffer while it is read.
const READ_BUFFER: usize = 1024;
/// tungstenite's write buffer holds one piece (after a write that the socket took only in
/// part) plus a pong or a close; this is its hard limit.
const MAX_WRITE_BUFFER: usize = 2 * TEXT_PIECE;

/// A WebSocket handshake request (HTTP/1.1): what axum's `WebSocketUpgrade` checks, answered
/// with tungstenite's own stream.
pub struct Upgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        let refuse = |status: StatusCode, text: &'static str| (status, text).into_response();
        if parts.method != Method::GET {
            return Err(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "WebSocket handshakes use GET.",
            ));
        }
        let has_token = |name: header::HeaderName, token: &str| {
            parts.headers.get_all(name).iter().any(|value| {
                value
                    .to_str()
                    .unwrap_or_default()
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case(token))
            })
        };
        if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
            return Err(refuse(
                StatusCode::UPGRADE_REQUIRED,
                "This is a WebSocket endpoint.",
            ));
        }
        if parts.headers.get(header::SEC_WEBSOCKET_VERSION) != Some(&HeaderValue::from_static("13"))
        {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "Only WebSocket version 13 is supported.",
            ));
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .cloned()
            .ok_or_else(|| refuse(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing."))?;
        let on_upgrade = parts.extensions.remove::<OnUpgrade>().ok_or_else(|| {
            refuse(
                StatusCode::UPGRADE_REQUIRED,
                "This connection can't upgrade.",
            )
        })?;
        Ok(Upgrade { key, on_upgrade })
    }
}

impl Upgrade {
    /// The 101 answer, and the upgrade to await once it has gone out.
    pub fn accept(self) -> (Response, OnUpgrade) {
        let accept = tungstenite::handshake::derive_accept_key(self.key.as_bytes());
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        (response, self.on_upgrade)
    }
}

/// The socket, once the 101 has gone out and hyper hands over the connection.
pub(super) async fn open_socket(upgraded: OnUpgrade) -> Option<Socket> {
    let upgraded = upgraded.await.ok()?;
    let io = TokioIo::new(upgraded);
    Some(WebSocketStream::from_raw_socket(io, Role::Server, Some(socket_config())).await)
}

/// Reads are bounded by the frame limit; writes by the piece size.
fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
        .read_buffer_size(READ_BUFFER)
        // Each frame goes to the socket as it is fed; nothing waits in tungstenite's buffer.
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
}
