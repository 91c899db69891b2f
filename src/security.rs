//! Same-origin checks and security headers.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;

use crate::startup::AppState;

/// The server's own origin: `--public-url` when set, otherwise whatever `Host` the request
/// came to.
#[derive(Debug, Clone)]
pub struct OwnOrigin {
    public: Option<String>,
}

impl OwnOrigin {
    pub fn new(public_url: Option<&str>) -> Self {
        OwnOrigin {
            public: public_url.map(|url| url.trim_end_matches('/').to_ascii_lowercase()),
        }
    }

    /// This server's own origin as a person's browser reaches it: `--public-url`, or the
    /// request's `Host` (https when cookies are marked Secure).
    pub fn base_url(&self, headers: &HeaderMap, https: bool) -> String {
        match &self.public {
            Some(public) => public.clone(),
            None => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("localhost");
                format!("{}://{host}", if https { "https" } else { "http" })
            }
        }
    }

    /// Whether `Origin` names this server. A missing `Origin` is not a match.
    pub fn matches(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let origin = origin.to_ascii_lowercase();
        match &self.public {
            Some(public) => origin == *public,
            None => {
                let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
                    return false;
                };
                let host = host.to_ascii_lowercase();
                origin == format!("http://{host}") || origin == format!("https://{host}")
            }
        }
    }
}

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

/// A per-response nonce for the one inline `<style>` a page carries.
#[derive(Debug, Clone)]
pub struct CspNonce(pub String);

pub async fn security_headers(mut request: Request, next: Next) -> Response {
    let nonce = {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bytes: [u8; 16] = rand::rng().random();
        let mut hex = String::with_capacity(32);
        for b in bytes {
            hex.push(HEX[usize::from(b >> 4)] as char);
            hex.push(HEX[usize::from(b & 0xf)] as char);
        }
        hex
    };
    request.extensions_mut().insert(CspNonce(nonce.clone()));
    let mut response = next.run(request).await;
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
