//! Attachments: files uploaded as multipart into a room, stored once per content hash under
//! `--data-dir/files`, typed by their bytes, and served only to people who can read the room.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, RgbaImage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    Backend, TestApp, Visitor, WAIT, eventually, on_both_backends, spawn_app, spawn_app_in,
    spawn_app_on, spawn_app_with, user_message_ids,
};

/// One part of a multipart form.
pub struct Part<'a> {
    pub name: &'a str,
    pub file_name: Option<&'a str>,
    pub content_type: &'a str,
    pub bytes: Vec<u8>,
}

impl<'a> Part<'a> {
    pub fn file(file_name: &'a str, content_type: &'a str, bytes: Vec<u8>) -> Part<'a> {
        Part {
            name: "file",
            file_name: Some(file_name),
            content_type,
            bytes,
        }
    }

    pub fn caption(text: &str) -> Part<'a> {
        Part {
            name: "body",
            file_name: None,
            content_type: "text/plain; charset=utf-8",
            bytes: text.as_bytes().to_vec(),
        }
    }
}

/// A `multipart/form-data` body as a browser builds it.
fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "----chat-test-boundary-7MA4YWxkTrZu0gW".to_owned();
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let disposition = match part.file_name {
            Some(file) => format!(
                "Content-Disposition: form-data; name=\"{}\"; filename=\"{file}\"\r\n",
                part.name
            ),
            None => format!("Content-Disposition: form-data; name=\"{}\"\r\n", part.name),
        };
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(format!("Content-Type: {}\r\n\r\n", part.content_type).as_bytes());
        body.extend_from_slice(&part.bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Uploads as the paperclip form does through htmx.
pub async fn upload(
    visitor: &Visitor,
    base: &TestApp,
    room: &str,
    parts: &[Part<'_>],
) -> reqwest::Response {
    let (content_type, body) = multipart(parts);
    visitor
        .http
        .post(base.url(&format!("/rooms/{room}/attachments")))
        .header("Origin", base.origin())
        .header("HX-Request", "true")
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

pub fn png(width: u32, height: u32) -> Vec<u8> {
    let pixels = RgbaImage::from_fn(width, height, |x, y| {
        image::Rgba([(x % 256) as u8, (y % 256) as u8, 128, 255])
    });
    encode(DynamicImage::ImageRgba8(pixels), ImageFormat::Png)
}

fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

/// Stored files (not thumbnails, not unfinished uploads) under the data dir.
fn stored_files(app: &TestApp) -> Vec<String> {
    files_in(&app.data.path().join("files"))
        .into_iter()
        .filter(|name| !name.ends_with(".thumb") && name != "incoming")
        .collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The newest person's message in a room page, as markup.
pub(crate) async fn newest_message(visitor: &Visitor, room: &str) -> (u64, String) {
    let page = visitor.get_text(&format!("/rooms/{room}")).await;
    let id = *user_message_ids(&page)
        .last()
        .expect("a message in the room");
    let start = page.find(&format!(r#"id="msg-{id}""#)).unwrap();
    let end = page[start..].find("</article>").unwrap() + start;
    (id, page[start..end].to_owned())
}

#[tokio::test]
async fn an_upload_over_the_limit_gets_413_and_stores_nothing() {
    let limit = 100 * 1024;
    let app = spawn_app_with(|config| config.max_upload = limit).await;
    let alice = app.login("alice").await;

    let over = upload(
        &alice,
        &app,
        "lobby",
        &[Part::file(
            "big.bin",
            "application/octet-stream",
            vec![7; limit as usize + 1],
        )],
    )
    .await;
    assert_eq!(over.status(), 413);
    let error = over.text().await.unwrap();
    assert!(error.contains(r#"data-error="too_large""#), "{error}");
    assert!(
        error.contains("at most 100 KB"),
        "says what the limit is: {error}"
    );
    assert!(
        stored_files(&app).is_empty(),
        "nothing kept: {:?}",
        stored_files(&app)
    );
    assert!(files_in(&app.data.path().join("files/incoming")).is_empty());
    let page = alice.get_text("/rooms/lobby").await;
    assert!(user_message_ids(&page).is_empty(), "no message either");

    // A request declaring far more than the limit is refused before its body is read.
    let mut raw = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /rooms/lobby/attachments HTTP/1.1\r\nHost: {}\r\nOrigin: {}\r\nCookie: {}\r\n\
         Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {}\r\n\r\n",
        app.addr,
        app.origin(),
        alice.cookie().unwrap(),
        limit * 1000
    );
    raw.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 12];
    tokio::time::timeout(WAIT, raw.read_exact(&mut answer))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    assert_eq!(&answer, b"HTTP/1.1 413");

    // Exactly the limit is fine; the rest of the app keeps its small form limit.
    let at_limit = upload(
        &alice,
        &app,
        "lobby",
        &[Part::file(
            "ok.bin",
            "application/octet-stream",
            vec![7; limit as usize],
        )],
    )
    .await;
    assert_eq!(at_limit.status(), 200);
    assert_eq!(stored_files(&app).len(), 1);
    let long_form = alice
        .post_form("/rooms/lobby/messages", &[("body", &"x".repeat(70 * 1024))])
        .await;
    assert_eq!(long_form.status(), 413, "forms are still limited to 64 KiB");
    app.stop().await;
}

#[tokio::test]
async fn a_bad_caption_or_no_file_is_refused_in_the_composer_and_stores_nothing() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;

    let no_file = upload(&alice, &app, "lobby", &[Part::caption("just words")]).await;
    assert_eq!(no_file.status(), 422);
    assert!(
        no_file
            .text()
            .await
            .unwrap()
            .contains(r#"data-error="no_file""#)
    );

    let long = upload(
        &alice,
        &app,
        "lobby",
        &[
            Part::caption(&"y".repeat(4001)),
            Part::file("a.png", "image/png", png(4, 4)),
        ],
    )
    .await;
    assert_eq!(long.status(), 422);
    assert!(
        long.text()
            .await
            .unwrap()
            .contains(r#"data-error="too_long""#)
    );
    assert!(stored_files(&app).is_empty());
    let page = alice.get_text("/rooms/lobby").await;
    assert!(user_message_ids(&page).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn types_are_sniffed_from_the_bytes_never_from_the_name_or_claimed_type() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;

    // PNG bytes posing as a text file are an image.
    let sent = upload(
        &alice,
        &app,
        "lobby",
        &[Part::file("notes.txt", "text/plain", png(40, 30))],
    )
    .await;
    assert_eq!(sent.status(), 200);
    let (id, markup) = newest_message(&alice, "lobby").await;
    assert!(
        markup.contains(r#"class="attachment attachment-image""#),
        "{markup}"
    );
    assert!(
        markup.contains(&format!(
            r#"<img src="/rooms/lobby/messages/{id}/thumbnail" width="40" height="30""#
        )),
        "{markup}"
    );
    let file = alice.get(&format!("/rooms/lobby/messages/{id}/file")).await;
    assert_eq!(file.status(), 200);
    assert_eq!(file.headers()["content-type"], "image/png");
    assert!(
        file.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline;")
    );
    assert_eq!(file.headers()["x-content-type-options"], "nosniff");
    assert_eq!(file.bytes().await.unwrap().as_ref(), png(40, 30).as_slice());

    // HTML claiming to be a PNG is a download, and never HTML.
    let html = b"<!doctype html><html><script>alert(document.cookie)</script></html>".to_vec();
    upload(
        &alice,
        &app,
        "lobby",
        &[Part::file("cat.png", "image/png", html.clone())],
    )
    .await;
    let (id, markup) = newest_message(&alice, "lobby").await;
    assert!(
        markup.contains(r#"class="attachment attachment-file""#),
        "{markup}"
    );
    assert!(!markup.contains("<img"), "{markup}");
    let file = alice.get(&format!("/rooms/lobby/messages/{id}/file")).await;
    assert_eq!(file.headers()["content-type"], "application/octet-stream");
    assert_eq!(
        file.headers()["content-disposition"],
        r#"attachment; filename="cat.png"; filename*=UTF-8''cat.png"#
    );
    assert_eq!(file.headers()["x-content-type-options"], "nosniff");
    assert!(
        file.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(file.bytes().await.unwrap().as_ref(), html.as_slice());
    let thumbnail = alice
        .get(&format!("/rooms/lobby/messages/{id}/thumbnail"))
        .await;
    assert_eq!(thumbnail.status(), 404, "a download has no thumbnail");

    // An SVG, even sent as one, is never shown or served inline.
    let svg =
        br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#.to_vec();
    upload(
        &alice,
        &app,
        "lobby",
        &[Part::file("logo.svg", "image/svg+xml", svg)],
    )
    .await;
    let (id, markup) = newest_message(&alice, "lobby").await;
    assert!(!markup.contains("<img"), "{markup}");
    let file = alice.get(&format!("/rooms/lobby/messages/{id}/file")).await;
    assert_eq!(file.headers()["content-type"], "application/octet-stream");
    assert!(
        file.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );

    // A name that is markup is shown as text, and safe in the header.
    let name = "<img src=x onerror=alert(1)> résumé;.pdf";
    upload(
        &alice,
        &app,
        "lobby",
        &[Part::file(name, "application/pdf", b"%PDF-1.4".to_vec())],
    )
    .await;
    let (id, markup) = newest_message(&alice, "lobby").await;
    assert!(
        markup.contains("&#60;img src=x onerror=alert(1)&#62;") || markup.contains("&lt;img src=x"),
        "{markup}"
    );
    assert!(!markup.contains("<img src=x"), "{markup}");
    let file = alice.get(&format!("/rooms/lobby/messages/{id}/file")).await;
    let disposition = file.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(disposition.contains("filename*=UTF-8''%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E%20r%C3%A9sum%C3%A9%3B.pdf"), "{disposition}");
    app.stop().await;
}

on_both_backends!(
    the_same_bytes_uploaded_twice_are_stored_once,
    an_image_message_arrives_live_and_is_still_there_after_a_restart,
);

async fn the_same_bytes_uploaded_twice_are_stored_once(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let bytes = b"the same report, twice".to_vec();

    upload(
        &alice,
        &app,
        "lobby",
        &[Part::file("report.txt", "text/plain", bytes.clone())],
    )
    .await;
    let (first, _) = newest_message(&alice, "lobby").await;
    upload(
        &bob,
        &app,
        "lobby",
        &[Part::file(
            "copy of report.txt",
            "text/plain",
            bytes.clone(),
        )],
    )
    .await;
    let (second, markup) = newest_message(&bob, "lobby").await;
    assert_ne!(first, second);
    assert!(
        markup.contains("copy of report.txt"),
        "each message keeps its own name"
    );

    assert_eq!(stored_files(&app).len(), 1, "{:?}", stored_files(&app));
    for id in [first, second] {
        let served = bob.get(&format!("/rooms/lobby/messages/{id}/file")).await;
        assert_eq!(served.bytes().await.unwrap().as_ref(), bytes.as_slice());
    }
    upload(
        &bob,
        &app,
        "lobby",
        &[Part::file("other.txt", "text/plain", b"different".to_vec())],
    )
    .await;
    assert_eq!(stored_files(&app).len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn only_people_who_can_read_the_room_get_its_files() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let carol = app.login("carol").await;
    let room = &alice.message_directly("bob", "a file follows").await;

    let sent = upload(
        &alice,
        &app,
        room,
        &[Part::file("secret.png", "image/png", png(8, 8))],
    )
    .await;
    assert_eq!(sent.status(), 200);
    let (id, _) = newest_message(&bob, room).await;
    for path in [
        format!("/rooms/{room}/messages/{id}/file"),
        format!("/rooms/{room}/messages/{id}/thumbnail"),
    ] {
        assert_eq!(bob.get(&path).await.status(), 200, "bob: {path}");
        assert_eq!(carol.get(&path).await.status(), 404, "carol: {path}");
        let logged_out = app.visitor().get(&path).await;
        assert_eq!(logged_out.status(), 303, "logged out: {path}");
        assert!(
            logged_out.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/login?next=")
        );
    }
    // Nor can carol post into it, or reach its file through a room she can read.
    let intruding = upload(
        &carol,
        &app,
        room,
        &[Part::file("x.txt", "text/plain", b"x".to_vec())],
    )
    .await;
    assert_eq!(intruding.status(), 404);
    assert_eq!(
        carol
            .get(&format!("/rooms/lobby/messages/{id}/file"))
            .await
            .status(),
        404
    );
    // A deleted message's file is gone with it.
    let deleted = alice
        .htmx(
            reqwest::Method::DELETE,
            &format!("/rooms/{room}/messages/{id}"),
            &[],
        )
        .await;
    assert_eq!(deleted.status(), 200);
    assert_eq!(
        bob.get(&format!("/rooms/{room}/messages/{id}/file"))
            .await
            .status(),
        404
    );
    app.stop().await;
}

async fn an_image_message_arrives_live_and_is_still_there_after_a_restart(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let mut bobs_socket = bob.ws("lobby").await;
    bobs_socket.resume(0).await;

    let sent = upload(
        &alice,
        &app,
        "lobby",
        &[
            Part::file("harbour.png", "image/png", png(1200, 600)),
            Part::caption("the harbour at dawn"),
        ],
    )
    .await;
    assert_eq!(sent.status(), 200);
    assert_eq!(
        sent.text().await.unwrap(),
        r#"<div id="composer-error" role="alert"></div>"#
    );
    let frame = bobs_socket.next_text().await;
    assert!(
        frame.starts_with(r#"<div id="messages" hx-swap-oob="beforeend">"#),
        "{frame}"
    );
    let id = user_message_ids(&frame)[0];
    let img =
        format!(r#"<img src="/rooms/lobby/messages/{id}/thumbnail" width="480" height="240""#);
    assert!(frame.contains(&img), "{frame}");
    assert!(
        frame.contains("the harbour at dawn"),
        "the caption is the body"
    );
    assert!(frame.contains("1200 × 600"), "{frame}");

    // The caption and the name are found by search.
    for word in ["dawn", "harbour.png"] {
        let path = format!("/search?q={word}");
        let found = eventually(
            || bob.get_text(&path),
            |page| page.contains(&format!("/rooms/lobby/messages/{id}")),
        )
        .await;
        assert!(
            found.contains(&format!("/rooms/lobby/messages/{id}")),
            "search {word}"
        );
    }

    let data_dir = app.stop().await;
    let app = spawn_app_in(data_dir, |_| {}).await;
    let dave = app.login("dave").await;
    let page = dave.get_text("/rooms/lobby").await;
    assert!(page.contains(&img), "history after the restart");
    let served = dave.get(&format!("/rooms/lobby/messages/{id}/file")).await;
    assert_eq!(served.status(), 200);
    assert_eq!(
        served.bytes().await.unwrap().as_ref(),
        png(1200, 600).as_slice()
    );
    app.stop().await;
}

#[tokio::test]
async fn images_are_shown_fitting_the_box_from_sharp_thumbnails_that_never_grow() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    // (image, shown at, thumbnail pixels: twice the shown size, never more than the image)
    for ((width, height), (shown_width, shown_height), (thumb_width, thumb_height)) in [
        ((1200, 600), (480, 240), (960, 480)),
        // Fitted it would be 120 wide: shown 160 wide instead, cut to its top 675 rows.
        ((300, 900), (160, 360), (300, 675)),
        ((800, 500), (480, 300), (800, 500)),
        ((100, 50), (100, 50), (100, 50)),
    ] {
        let sent = upload(
            &alice,
            &app,
            "lobby",
            &[Part::file("p.png", "image/png", png(width, height))],
        )
        .await;
        assert_eq!(sent.status(), 200);
        let (id, markup) = newest_message(&alice, "lobby").await;
        assert!(
            markup.contains(&format!(
                r#"thumbnail" width="{shown_width}" height="{shown_height}""#
            )),
            "{markup}"
        );
        let thumbnail = alice
            .get(&format!("/rooms/lobby/messages/{id}/thumbnail"))
            .await;
        assert_eq!(thumbnail.status(), 200);
        assert_eq!(
            thumbnail.headers()["content-type"],
            "image/png",
            "kept its transparency channel"
        );
        let decoded = image::load_from_memory(&thumbnail.bytes().await.unwrap()).unwrap();
        assert_eq!(
            (decoded.width(), decoded.height()),
            (thumb_width, thumb_height)
        );
    }

    // A GIF is shown as itself, so it moves.
    let gif = encode(
        DynamicImage::ImageRgba8(RgbaImage::new(64, 32)),
        ImageFormat::Gif,
    );
    upload(
        &alice,
        &app,
        "lobby",
        &[Part::file("wave.gif", "image/gif", gif)],
    )
    .await;
    let (id, markup) = newest_message(&alice, "lobby").await;
    assert!(
        markup.contains(&format!(
            r#"<img src="/rooms/lobby/messages/{id}/file" width="64" height="32""#
        )),
        "{markup}"
    );

    // An opaque JPEG gets a JPEG thumbnail.
    let photo = encode(
        DynamicImage::ImageRgb8(image::RgbImage::new(1920, 1440)),
        ImageFormat::Jpeg,
    );
    upload(
        &alice,
        &app,
        "lobby",
        &[Part::file("photo.jpg", "image/jpeg", photo)],
    )
    .await;
    let (id, _) = newest_message(&alice, "lobby").await;
    let thumbnail = alice
        .get(&format!("/rooms/lobby/messages/{id}/thumbnail"))
        .await;
    assert_eq!(thumbnail.headers()["content-type"], "image/jpeg");
    let decoded = image::load_from_memory(&thumbnail.bytes().await.unwrap()).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (960, 720));

    // A phone photo taken sideways (EXIF orientation 6: turn 90° clockwise) is shown upright.
    let mut sideways = Cursor::new(Vec::new());
    let mut encoder = image::codecs::jpeg::JpegEncoder::new(&mut sideways);
    let rotate_clockwise = [
        b"MM\0\x2a\0\0\0\x08".as_slice(), // big-endian TIFF, first directory at 8
        b"\0\x01",                        // one entry:
        b"\x01\x12\0\x03\0\0\0\x01\0\x06\0\0", // Orientation, SHORT, 1 value: 6
        b"\0\0\0\0",                      // no next directory
    ]
    .concat();
    image::ImageEncoder::set_exif_metadata(&mut encoder, rotate_clockwise).unwrap();
    DynamicImage::ImageRgb8(image::RgbImage::new(200, 100))
        .write_with_encoder(encoder)
        .unwrap();
    let sideways = sideways.into_inner();
    upload(
        &alice,
        &app,
        "lobby",
        &[Part::file("upright.jpg", "image/jpeg", sideways)],
    )
    .await;
    let (id, markup) = newest_message(&alice, "lobby").await;
    assert!(markup.contains(r#"width="100" height="200""#), "{markup}");
    assert!(markup.contains("100 × 200"), "{markup}");
    let thumbnail = alice
        .get(&format!("/rooms/lobby/messages/{id}/thumbnail"))
        .await;
    let decoded = image::load_from_memory(&thumbnail.bytes().await.unwrap()).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (100, 200));

    // An image too large to decode safely is offered as a download, not decoded.
    upload(
        &alice,
        &app,
        "lobby",
        &[Part::file("wide.png", "image/png", png(20_000, 1))],
    )
    .await;
    let (_, markup) = newest_message(&alice, "lobby").await;
    assert!(markup.contains("attachment-file"), "{markup}");
    app.stop().await;
}

#[tokio::test]
async fn without_javascript_an_upload_is_a_plain_form_that_redirects_back() {
    let app = spawn_app_with(|config| config.max_upload = 1024).await;
    let alice = app.login("alice").await;
    let plain = |parts: &[Part<'_>]| {
        let (content_type, body) = multipart(parts);
        alice
            .http
            .post(app.url("/rooms/lobby/attachments"))
            .header("Origin", app.origin())
            .header("Content-Type", content_type)
            .body(body)
    };

    let sent = plain(&[Part::file("a.txt", "text/plain", b"hello".to_vec())])
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 303);
    assert_eq!(sent.headers()["location"], "/rooms/lobby");
    let (_, markup) = newest_message(&alice, "lobby").await;
    assert!(markup.contains("a.txt"), "{markup}");

    let refused = plain(&[Part::file("b.txt", "text/plain", vec![1; 2048])])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 413);
    let page = refused.text().await.unwrap();
    assert!(page.contains(r#"id="composer""#), "the room page again");
    assert!(page.contains(r#"data-error="too_large""#), "with the error");
    app.stop().await;
}

/// Sends an upload over a raw socket in `pieces`, pausing `pause` between them; returns the
/// status line.
async fn trickle_upload(
    app: &TestApp,
    visitor: &Visitor,
    pieces: usize,
    pause: std::time::Duration,
) -> String {
    let (content_type, body) = multipart(&[Part::file(
        "slow.bin",
        "application/octet-stream",
        vec![5; 4096],
    )]);
    let mut raw = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /rooms/lobby/attachments HTTP/1.1\r\nHost: {}\r\nOrigin: {}\r\nCookie: {}\r\n\
         HX-Request: true\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        app.addr,
        app.origin(),
        visitor.cookie().unwrap(),
        body.len()
    );
    raw.write_all(head.as_bytes()).await.unwrap();
    for piece in body.chunks(body.len().div_ceil(pieces)) {
        tokio::time::sleep(pause).await;
        if raw.write_all(piece).await.is_err() {
            break;
        }
    }
    let mut answer = vec![0; 12];
    tokio::time::timeout(WAIT, raw.read_exact(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    String::from_utf8(answer).unwrap()
}

#[tokio::test]
async fn an_upload_may_outlast_the_request_timeout_while_it_keeps_sending_but_not_stall() {
    let app = spawn_app_with(|config| {
        config.request_timeout = 1.0;
        config.upload_timeout = 8.0;
    })
    .await;
    let alice = app.login("alice").await;
    let pause = std::time::Duration::from_millis(400);

    let slow = trickle_upload(&app, &alice, 6, pause).await;
    assert_eq!(
        slow, "HTTP/1.1 200",
        "2.4 s of steady sending, past the 1 s request timeout"
    );
    assert_eq!(stored_files(&app).len(), 1);

    let stalled = trickle_upload(&app, &alice, 2, std::time::Duration::from_millis(1500)).await;
    assert_eq!(stalled, "HTTP/1.1 408", "1.5 s without a byte");
    assert_eq!(stored_files(&app).len(), 1);
    assert!(files_in(&app.data.path().join("files/incoming")).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn several_files_at_once_are_a_message_each_with_the_caption_on_the_first() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let mut bobs_socket = app.login("bob").await.ws("lobby").await;
    bobs_socket.resume(0).await;

    let sent = upload(
        &alice,
        &app,
        "lobby",
        &[
            Part::caption("two drawings"),
            Part::file("one.png", "image/png", png(10, 10)),
            Part::file("two.png", "image/png", png(20, 10)),
        ],
    )
    .await;
    assert_eq!(sent.status(), 200);
    let first = bobs_socket.next_text().await;
    let second = bobs_socket.next_text().await;
    assert!(
        first.contains("one.png") && first.contains("two drawings"),
        "{first}"
    );
    assert!(
        second.contains("two.png") && !second.contains("two drawings"),
        "{second}"
    );
    assert_eq!(
        user_message_ids(&second)[0],
        user_message_ids(&first)[0] + 1,
        "in the order sent"
    );
    app.stop().await;
}
