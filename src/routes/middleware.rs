//! The middleware every request passes: the `Host` check, same-origin checks, security
//! headers, compression, time limits.

use axum::extract::{Request, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};

use crate::error::AppError;
use crate::security::{CspNonce, LocalAddr, hex};
use crate::state::AppState;

/// Refuses state-changing requests from other sites. Browsers send `Origin` on every POST;
/// clients that send none (curl, scripts) are not browsers and carry no ambient cookies risk.
pub async fn reject_cross_site(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let headers = request.headers();
    let cross_site = headers.contains_key(header::ORIGIN) && !state.origin.matches(headers)
        || headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site");
    if !safe && cross_site {
        return (
            StatusCode::FORBIDDEN,
            "Cross-site request refused: this form must be sent from the chat itself.",
        )
            .into_response();
    }
    next.run(request).await
}

/// What every request passes first, in one layer: the `Host` check, the time limit, and the
/// security headers with the page's CSP nonce on every answer.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let nonce = hex(&rand::rng().random::<[u8; 16]>());
    let response = if !names_this_server(&state, &request) {
        AppError::UnknownHost.into_response()
    } else {
        let limit = if is_upload(&request) {
            state.config.upload_timeout()
        } else {
            state.config.request_timeout()
        };
        request.extensions_mut().insert(CspNonce(nonce.clone()));
        // Answers 408 when a request, body included, takes longer than `--request-timeout`,
        // or `--upload-timeout` for an upload (25 MiB needs more than 30 s on a slow link).
        match tokio::time::timeout(limit, next.run(request)).await {
            Ok(response) => response,
            Err(_) => StatusCode::REQUEST_TIMEOUT.into_response(),
        }
    };
    with_security_headers(response, &nonce)
}

/// Whether the request's `Host` names this server (see [`crate::security::OwnOrigin`]); other
/// requests get 421. A page on another site whose name resolves to this machine (DNS
/// rebinding) would be same-origin with its own script, and could log in and read rooms.
fn names_this_server(state: &AppState, request: &Request) -> bool {
    let local = request
        .extensions()
        .get::<LocalAddr>()
        .map(|addr| addr.0.ip().to_canonical());
    request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .is_some_and(|host| state.origin.accepts_host(host, local))
}

fn with_security_headers(mut response: Response, nonce: &str) -> Response {
    let headers = response.headers_mut();
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'nonce-{nonce}'; \
         img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'; object-src 'none'"
    );
    // A response with a stricter policy of its own (a served file) keeps it.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY)
        && let Ok(value) = HeaderValue::from_str(&csp)
    {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// Whether a request is an upload, which may take longer than other requests.
fn is_upload(request: &axum::extract::Request) -> bool {
    request.method() == axum::http::Method::POST
        && request.uri().path().starts_with("/rooms/")
        && request.uri().path().ends_with("/attachments")
}

/// Gzip or brotli for pages, fragments and JSON, by the request's `Accept-Encoding`. Brotli's
/// default quality (11) is meant for files compressed once; at 4 a page costs well under a
/// millisecond and still beats gzip.
pub fn compression() -> CompressionLayer<impl Predicate> {
    CompressionLayer::new()
        .no_deflate()
        .no_zstd()
        .quality(CompressionLevel::Precise(4))
        .compress_when(SizeAbove::new(256).and(compressible))
}

/// Only text the chat itself wrote: never an attachment, a backup or an export (each sent as a
/// download, mostly already compressed or streamed), and never the WebSocket upgrade (no body;
/// the socket's frames stay uncompressed so every subscriber shares the same bytes).
fn compressible(status: StatusCode, _: Version, headers: &HeaderMap, _: &Extensions) -> bool {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    status != StatusCode::SWITCHING_PROTOCOLS
        && !headers.contains_key(header::CONTENT_DISPOSITION)
        && matches!(
            essence,
            "text/html"
                | "text/css"
                | "text/javascript"
                | "application/javascript"
                | "image/svg+xml"
                | "application/json"
        )
}
