//! Static files embedded in the binary, served with an ETag and, when asked for by their
//! versioned URL, cached for a year.

use std::sync::LazyLock;

use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Static;

/// Versioned URLs of the files every page links.
pub struct Urls {
    pub css: String,
    pub htmx: String,
    pub ws: String,
    pub app: String,
}

pub fn urls() -> &'static Urls {
    static URLS: LazyLock<Urls> = LazyLock::new(|| Urls {
        css: versioned("app.css"),
        htmx: versioned("vendor/htmx-2.0.11.min.js"),
        ws: versioned("vendor/htmx-ext-ws-2.0.4.min.js"),
        app: versioned("app.js"),
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

pub async fn serve(
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(file) = Static::get(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let tag = etag(&path).unwrap_or_default();
    let quoted = format!("\"{tag}\"");
    let cache = if query.is_some_and(|q| q == format!("v={tag}")) {
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
