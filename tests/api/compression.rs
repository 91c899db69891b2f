//! Text compression: pages, fragments, JSON and the embedded static files go out as brotli or
//! gzip when the browser asks for them; attachments, downloads and the WebSocket never do.

use std::io::Read;

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::attachments::{Part, upload};
use crate::helpers::{Ws, spawn_app, user_message_ids};

/// `body` decoded as `coding` says.
fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "br" => brotli::Decompressor::new(body, 4096)
            .read_to_end(&mut out)
            .unwrap(),
        "gzip" => flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .unwrap(),
        other => panic!("unexpected coding {other}"),
    };
    out
}

/// The raw body and its `Content-Encoding` (empty for identity), asking with `accept`.
async fn fetch(
    http: &reqwest::Client,
    url: &str,
    accept: Option<&str>,
) -> (reqwest::header::HeaderMap, String, Vec<u8>) {
    let mut request = http.get(url);
    if let Some(accept) = accept {
        request = request.header("Accept-Encoding", accept);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    let headers = response.headers().clone();
    let coding = headers
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (headers, coding, response.bytes().await.unwrap().to_vec())
}

fn versioned_link<'a>(page: &'a str, prefix: &str) -> &'a str {
    page.split('"')
        .find(|s| s.starts_with(prefix))
        .unwrap_or_else(|| panic!("a link starting with {prefix}"))
}

#[tokio::test]
async fn pages_and_static_files_come_compressed_when_asked_and_decode_to_the_same_bytes() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    // Her first visit makes her a member, which the room says: after it, the page stays put.
    alice.get_text("/rooms/lobby").await;
    let mut ws = alice.ws("lobby").await;
    ws.resume(0).await;
    ws.next_containing("alice joined").await;
    ws.say(&"A message long enough to be worth compressing. ".repeat(20))
        .await;
    ws.next_containing("worth compressing").await;

    let page = alice.get_text("/rooms/lobby").await;
    let script = versioned_link(&page, "/static/vendor/htmx-2.0.11.min.js");
    let css = versioned_link(&page, "/static/app.css?v=");
    for path in ["/rooms/lobby", script, css] {
        let url = app.url(path);
        let (_, identity_coding, identity) = fetch(&alice.http, &url, None).await;
        assert_eq!(identity_coding, "", "{path} without Accept-Encoding");
        for (accept, coding) in [("gzip, deflate, br, zstd", "br"), ("gzip", "gzip")] {
            let (headers, got, body) = fetch(&alice.http, &url, Some(accept)).await;
            assert_eq!(got, coding, "{path} asked with {accept}");
            assert!(
                headers["vary"]
                    .to_str()
                    .unwrap()
                    .to_ascii_lowercase()
                    .contains("accept-encoding"),
                "{path}: {headers:?}"
            );
            assert!(body.len() < identity.len() / 2, "{path} as {coding}");
            let decoded = decode(coding, &body);
            if path == "/rooms/lobby" {
                // A page carries a fresh CSP nonce each time: compare everything but its line.
                let strip = |html: &[u8]| {
                    String::from_utf8(html.to_vec())
                        .unwrap()
                        .lines()
                        .filter(|line| !line.contains("nonce="))
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                };
                assert_eq!(strip(&decoded), strip(&identity), "{path} as {coding}");
            } else {
                assert_eq!(decoded, identity, "{path} as {coding}");
            }
        }
    }

    // An encoding refused with q=0 is not used, and a revalidation of any variant is a hit.
    let (_, coding, _) = fetch(&alice.http, &app.url(css), Some("br;q=0, gzip")).await;
    assert_eq!(coding, "gzip");
    let (headers, _, _) = fetch(&alice.http, &app.url(css), Some("br")).await;
    let revalidated = alice
        .http
        .get(app.url(css))
        .header("If-None-Match", headers["etag"].clone())
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
}

#[tokio::test]
async fn attachments_and_the_websocket_are_never_compressed() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;

    // A text file that would compress very well is still sent as it is: a download.
    let text = "the same line again and again\n".repeat(200).into_bytes();
    let sent = upload(
        &alice,
        &app,
        "lobby",
        &[Part::file("notes.txt", "text/plain", text.clone())],
    )
    .await;
    assert_eq!(sent.status(), 200);
    let page = alice.get_text("/rooms/lobby").await;
    let id = *user_message_ids(&page).last().unwrap();
    let (headers, coding, body) = fetch(
        &alice.http,
        &app.url(&format!("/rooms/lobby/messages/{id}/file")),
        Some("gzip, deflate, br, zstd"),
    )
    .await;
    assert_eq!(coding, "", "{headers:?}");
    assert_eq!(body, text);

    // The upgrade as a browser sends it, asking for compressed HTTP and a deflating socket.
    let url = app.url("/rooms/lobby/ws").replace("http://", "ws://");
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert(
        "Cookie",
        HeaderValue::from_str(&alice.cookie().unwrap()).unwrap(),
    );
    headers.insert("Origin", HeaderValue::from_str(&app.origin()).unwrap());
    headers.insert(
        "Accept-Encoding",
        HeaderValue::from_static("gzip, deflate, br"),
    );
    headers.insert(
        "Sec-WebSocket-Extensions",
        HeaderValue::from_static("permessage-deflate; client_max_window_bits"),
    );
    let (stream, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), 101);
    assert!(!response.headers().contains_key("content-encoding"));
    assert!(!response.headers().contains_key("sec-websocket-extensions"));
    let mut ws = Ws { stream };
    ws.say("still plain frames").await;
    ws.next_containing("still plain frames").await;
}
