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

use std::collections::HashMap;
use std::io::Write;
use std::sync::{LazyLock, OnceLock};

use axum::body::Bytes;
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
    /// The script of every page that has one, but search.
    pub main: Script,
    /// The search page's: no socket and no htmx, so it needs only a few modules.
    pub search: Script,
    /// The tab's icon (lucide's message-square-plus, as the login card shows it).
    pub favicon: String,
}

/// An entry module, under the modules' folder digest, and the modules it imports.
pub struct Script {
    pub entry: String,
    /// Every module it imports, directly or not, preloaded together rather than discovered
    /// one import at a time. Dynamic imports (`import("./after-paint/start.js")`) are left
    /// out: they load after the first paint.
    pub preloads: Vec<String>,
}

impl Script {
    fn of(entry: &str) -> Script {
        let url = |module: &str| format!("/static/js/{}/{module}", modules_digest());
        let mut reached = std::collections::BTreeSet::new();
        let mut queue = vec![entry.to_owned()];
        while let Some(module) = queue.pop() {
            if reached.insert(module.clone()) {
                queue.extend(static_imports(&module));
            }
        }
        reached.remove(entry);
        Script {
            entry: url(entry),
            preloads: reached.iter().map(|module| url(module)).collect(),
        }
    }
}

/// What `module` (a path under `static/js/`) imports before it runs (`import … from "./x.js"`,
/// `import "./x.js"`, `export … from "./x.js"`, each on one line as the modules write them),
/// resolved against its folder. A module it misses would still load, found by the browser
/// one import later.
fn static_imports(module: &str) -> Vec<String> {
    let file = Static::get(&format!("js/{module}"))
        .unwrap_or_else(|| panic!("static/js/{module} is imported but not embedded"));
    let source = String::from_utf8_lossy(&file.data).into_owned();
    let folder: Vec<&str> = module.split('/').collect();
    let folder = &folder[..folder.len() - 1];
    source
        .lines()
        .map(str::trim)
        .filter(|line| {
            line.starts_with("import ") || (line.starts_with("export ") && line.contains(" from "))
        })
        .filter_map(|line| line.rsplit('"').nth(1))
        .map(|specifier| {
            let mut path: Vec<&str> = folder.to_vec();
            for part in specifier.split('/') {
                match part {
                    "." => {}
                    ".." => {
                        path.pop().unwrap_or_else(|| {
                            panic!("static/js/{module} imports {specifier}, outside static/js")
                        });
                    }
                    name => path.push(name),
                }
            }
            path.join("/")
        })
        .collect()
}

pub fn urls() -> &'static Urls {
    static URLS: LazyLock<Urls> = LazyLock::new(|| Urls {
        css: versioned("app.css"),
        htmx: versioned("vendor/htmx-2.0.11.min.js"),
        ws: versioned("vendor/htmx-ext-ws-2.0.4.min.js"),
        main: Script::of("main.js"),
        search: Script::of("search.js"),
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

/// The paths of `static/js/`'s modules, sorted.
fn module_files() -> Vec<String> {
    let mut files: Vec<String> = Static::iter()
        .filter(|p| p.starts_with("js/"))
        .map(|p| p.into_owned())
        .collect();
    files.sort();
    files
}

/// One version for all of `static/js/`: a change to any module (or a module added, removed or
/// renamed) gives every module a new URL, so no cached module can import a stale sibling.
fn modules_digest() -> &'static str {
    static DIGEST: LazyLock<String> = LazyLock::new(|| {
        let mut digest = Sha256::new();
        for path in module_files() {
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

/// An embedded file with its encodings, made once at its first request: brotli at its best
/// quality costs tens of milliseconds, too much per request but nothing once.
struct Encoded {
    mime: String,
    tag: String,
    identity: Bytes,
    /// `None` where the encoding saves nothing (an icon already small).
    br: Option<Bytes>,
    gzip: Option<Bytes>,
}

/// Only text compresses; the rest is served as it is.
fn compressible(mime: &str) -> bool {
    mime.starts_with("text/")
        || matches!(
            mime,
            "application/javascript" | "application/json" | "image/svg+xml"
        )
}

fn encoded(path: &str) -> Option<&'static Encoded> {
    static FILES: LazyLock<HashMap<String, OnceLock<Encoded>>> = LazyLock::new(|| {
        Static::iter()
            .map(|path| (path.into_owned(), OnceLock::new()))
            .collect()
    });
    let slot = FILES.get(path)?;
    Some(slot.get_or_init(|| {
        let file = Static::get(path).expect("listed by Static::iter");
        let mime = file.metadata.mimetype().to_owned();
        let identity = file.data.into_owned();
        let smaller =
            |encoded: Vec<u8>| (encoded.len() < identity.len()).then(|| Bytes::from(encoded));
        let (br, gzip) = if compressible(&mime) {
            (
                smaller(brotli_best(&identity)),
                smaller(gzip_best(&identity)),
            )
        } else {
            (None, None)
        };
        Encoded {
            tag: etag(path).unwrap_or_default(),
            mime,
            br,
            gzip,
            identity: Bytes::from(identity),
        }
    }))
}

fn brotli_best(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        ..Default::default()
    };
    brotli::enc::BrotliCompress(&mut &data[..], &mut out, &params).expect("writes to memory");
    out
}

fn gzip_best(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).expect("writes to memory");
    encoder.finish().expect("writes to memory")
}

/// Whether `Accept-Encoding` allows `coding` (named, or by `*`), honouring `;q=0`.
fn accepts(headers: &HeaderMap, coding: &str) -> bool {
    let mut star = false;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        for item in value.to_str().unwrap_or_default().split(',') {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            if name.eq_ignore_ascii_case(coding) {
                return !refused;
            }
            star |= name == "*" && !refused;
        }
    }
    star
}

/// The embedded file at `path`, in the best encoding the request accepts, cached for a year
/// when it was asked for by a versioned URL.
fn respond(path: &str, versioned: bool, headers: &HeaderMap) -> Response {
    let Some(file) = encoded(path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (coding, body) = match (&file.br, &file.gzip) {
        (Some(br), _) if accepts(headers, "br") => (Some("br"), br),
        (_, Some(gzip)) if accepts(headers, "gzip") => (Some("gzip"), gzip),
        _ => (None, &file.identity),
    };
    // One tag per encoding (RFC 9110 8.8.3.3: a strong tag names exact bytes); any of them
    // still names the same file, so any of them is a hit.
    let quoted = match coding {
        Some(coding) => format!("\"{}-{coding}\"", file.tag),
        None => format!("\"{}\"", file.tag),
    };
    let cache = if versioned {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',').map(str::trim).any(|tag| {
                tag.trim_start_matches("W/")
                    .trim_matches('"')
                    .split('-')
                    .next()
                    .is_some_and(|tag| tag == file.tag)
            })
        });
    let mut response = if cached {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, file.mime.clone())], body.clone()).into_response()
    };
    let out = response.headers_mut();
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(&quoted) {
        out.insert(header::ETAG, value);
    }
    if let Some(coding) = coding.filter(|_| !cached) {
        out.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    if file.br.is_some() || file.gzip.is_some() {
        out.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_resolve_against_the_importing_modules_folder() {
        let imports = static_imports("after-paint/start.js");
        assert!(imports.contains(&"page.js".to_owned()), "{imports:?}");
        assert!(
            imports.contains(&"after-paint/mentions.js".to_owned()),
            "{imports:?}"
        );
    }

    #[test]
    fn a_script_preloads_what_it_imports_before_it_runs_and_nothing_it_imports_later() {
        let names = |script: &Script| -> Vec<String> {
            script
                .preloads
                .iter()
                .map(|url| url.rsplit_once(modules_digest()).unwrap().1.to_owned())
                .collect()
        };
        assert_eq!(
            names(&urls().search),
            ["/page.js", "/sidebar.js", "/times.js"]
        );
        let main = names(&urls().main);
        assert!(main.contains(&"/socket.js".to_owned()), "{main:?}");
        assert!(
            !main
                .iter()
                .any(|name| name.contains("after-paint") || name == "/search.js"),
            "{main:?}"
        );
    }
}
