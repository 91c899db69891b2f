//! Static files embedded in the binary, served with an ETag and, when asked for by their
//! versioned URL, cached for a year.
//!
//! The page script is a set of ES modules in `static/js/` that import each other by relative
//! specifiers (`./socket.js`). They are served only under `/static/js/{digest}/{file}`, where
//! `digest` covers every file of that folder, so a relative import resolves to a versioned
//! URL by itself: no import map (the CSP allows no inline script) and no rewriting. Any other
//! URL for a module (no digest, another digest, a query string) is 404, never a redirect or a
//! copy: a module fetched under two URLs runs twice with two copies of its state, and a page
//! from before a deploy must not mix old and new modules (its next reload gets the new set).

use std::sync::LazyLock;

use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

#[derive(RustEmbed)]
#[folder = "static/"]
struct Static;

/// Versioned URLs of the files every page links.
pub struct Urls {
    pub css: String,
    pub htmx: String,
    pub ws: String,
    /// The page script's entry module, under the modules' folder digest.
    pub app: String,
    /// The tab's icon (lucide's message-square-plus, as the login card shows it).
    pub favicon: String,
}

pub fn urls() -> &'static Urls {
    static URLS: LazyLock<Urls> = LazyLock::new(|| Urls {
        css: versioned("app.css"),
        htmx: versioned("vendor/htmx-2.0.11.min.js"),
        ws: versioned("vendor/htmx-ext-ws-2.0.4.min.js"),
        app: format!("/static/js/{}/main.js", modules_digest()),
        favicon: versioned("favicon.svg"),
    });
    &URLS
}

fn etag(path: &str) -> Option<String> {
    let hash = Static::get(path)?.metadata.sha256_hash();
    Some(crate::security::hex(&hash[..8]))
}

fn versioned(path: &str) -> String {
    let version = etag(path).unwrap_or_else(|| panic!("static/{path} is not embedded"));
    format!("/static/{path}?v={version}")
}

/// One version for all of `static/js/`: a change to any module (or a module added, removed or
/// renamed) gives every module a new URL, so no cached module can import a stale sibling.
fn modules_digest() -> &'static str {
    static DIGEST: LazyLock<String> = LazyLock::new(|| {
        let mut files: Vec<_> = Static::iter().filter(|p| p.starts_with("js/")).collect();
        files.sort();
        let mut digest = Sha256::new();
        for path in files {
            let hash = Static::get(&path).map(|f| f.metadata.sha256_hash());
            digest.update(path.as_bytes());
            digest.update([0]);
            digest.update(hash.unwrap_or_default());
        }
        crate::security::hex(&digest.finalize()[..8])
    });
    &DIGEST
}

pub async fn serve(
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(module) = path.strip_prefix("js/") {
        return match module.split_once('/') {
            Some((digest, file)) if digest == modules_digest() && query.is_none() => {
                respond(&format!("js/{file}"), true, &headers)
            }
            _ => StatusCode::NOT_FOUND.into_response(),
        };
    }
    let versioned = etag(&path).is_some_and(|tag| query.is_some_and(|q| q == format!("v={tag}")));
    respond(&path, versioned, &headers)
}

/// The embedded file at `path`, cached for a year when it was asked for by a versioned URL.
fn respond(path: &str, versioned: bool, headers: &HeaderMap) -> Response {
    let Some(file) = Static::get(path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let tag = etag(path).unwrap_or_default();
    let quoted = format!("\"{tag}\"");
    let cache = if versioned {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == quoted.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, file.metadata.mimetype().to_owned())],
            file.data.into_owned(),
        )
            .into_response()
    };
    let out = response.headers_mut();
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(&quoted) {
        out.insert(header::ETAG, value);
    }
    response
}
