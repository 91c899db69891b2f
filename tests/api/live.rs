use std::time::Duration;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{
    Backend, Received, message_ids, on_both_backends, spawn_app, spawn_app_on, spawn_app_with,
    user_message_ids,
};

#[tokio::test]
async fn two_clients_in_a_room_see_each_others_messages_and_another_room_does_not() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let carol = app.login("carol").await;
    carol.post_form("/rooms", &[("name", "elsewhere")]).await;

    let mut a = alice.ws("lobby").await;
    let mut b = bob.ws("lobby").await;
    let mut c = carol.ws("elsewhere").await;
    for ws in [&mut a, &mut b, &mut c] {
        ws.resume(0).await;
    }

    a.say("hi bob").await;
    let to_bob = b.next_text().await;
    let to_alice = a.next_text().await;
    assert_eq!(
        to_bob, to_alice,
        "the same bytes go to everyone, sender included"
    );
    assert!(to_bob.starts_with(r#"<div id="messages" hx-swap-oob="beforeend">"#));
    assert_eq!(user_message_ids(&to_bob).len(), 1);
    assert!(to_bob.contains(r#"data-author="alice""#));
    assert!(to_bob.contains(r#"data-kind="user""#));
    assert!(to_bob.contains("<time datetime=\""));

    b.say("hi alice").await;
    assert!(a.next_text().await.contains("hi alice"));
    assert!(b.next_text().await.contains("hi alice"));

    c.expect_silence(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn a_long_message_with_multibyte_characters_arrives_whole() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let mut a = alice.ws("lobby").await;
    let mut b = bob.ws("lobby").await;
    a.resume(0).await;
    b.resume(0).await;

    // Several kilobytes go out in pieces, cut between characters of 2 and 4 bytes.
    let body = format!("{}{}", "é".repeat(1501), "😀".repeat(1200));
    a.say(&body).await;
    let frame = b.next_text().await;
    assert!(frame.contains(&body), "{} bytes arrived", frame.len());
    assert_eq!(frame, a.next_text().await);
}

#[tokio::test]
async fn html_is_escaped_newlines_kept_formatting_rendered_and_urls_become_safe_links() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let mut ws = alice.ws("lobby").await;
    ws.resume(0).await;
    ws.say("<script>alert(1)</script>\nline **two** https://example.com/x?a=1&b=2")
        .await;
    let frame = ws.next_text().await;
    assert!(!frame.contains("<script>"), "{frame}");
    assert!(
        frame.contains("<p>&lt;script&gt;alert(1)&lt;/script&gt;</p><p>line <strong>two</strong>"),
        "{frame}"
    );
    assert!(frame.contains(
        r#"<a href="https://example.com/x?a=1&amp;b=2" target="_blank" rel="noopener nofollow ugc">"#
    ));
}

#[tokio::test]
async fn a_foreign_origin_gets_403_and_no_session_gets_401() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    assert_eq!(
        alice
            .try_ws("lobby", Some("http://evil.example"))
            .await
            .err(),
        Some(403)
    );
    assert_eq!(alice.try_ws("lobby", None).await.err(), Some(403));
    let stranger = app.visitor();
    assert_eq!(
        stranger.try_ws("lobby", Some(&app.origin())).await.err(),
        Some(401)
    );
    assert_eq!(
        alice
            .try_ws("no-such-room", Some(&app.origin()))
            .await
            .err(),
        Some(404)
    );
}

#[tokio::test]
async fn bad_frames_get_an_error_fragment_broadcast_nothing_and_keep_the_socket() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let mut a = alice.ws("lobby").await;
    let mut b = bob.ws("lobby").await;
    a.resume(0).await;
    b.resume(0).await;

    a.stream.send(Message::text("{not json")).await.unwrap();
    let error = a.next_text().await;
    assert!(error.contains(r#"id="composer-error""#), "{error}");
    assert!(error.contains(r#"data-error="bad_frame""#), "{error}");
    assert!(error.contains(r#"role="alert""#));

    a.say("   \n ").await;
    assert!(a.next_text().await.contains(r#"data-error="empty""#));

    a.say(&"z".repeat(4001)).await;
    assert!(a.next_text().await.contains(r#"data-error="too_long""#));

    b.expect_silence(Duration::from_millis(300)).await;

    // Still open: a valid message goes through and clears the error.
    a.say("fine now").await;
    let mut saw_message = false;
    let mut saw_clear = false;
    for _ in 0..2 {
        let frame = a.next_text().await;
        saw_message |= frame.contains("fine now");
        saw_clear |= frame == r#"<div id="composer-error" role="alert"></div>"#;
    }
    assert!(saw_message && saw_clear);
    assert!(b.next_text().await.contains("fine now"));
}

#[tokio::test]
async fn a_frame_over_64_kib_closes_the_socket_with_1009() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let mut ws = alice.ws("lobby").await;
    ws.resume(0).await;
    let huge = serde_json::json!({ "body": "x".repeat(70 * 1024) }).to_string();
    ws.stream.send(Message::text(huge)).await.unwrap();
    assert_eq!(ws.closed_with().await, Some(1009));
}

on_both_backends!(
    a_resent_client_id_is_stored_once_and_acknowledged,
    the_same_client_id_in_another_room_is_another_message,
);

async fn a_resent_client_id_is_stored_once_and_acknowledged(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let alice = app.login("alice").await;
    let mut ws = alice.ws("lobby").await;
    ws.resume(0).await;
    let frame = serde_json::json!({ "body": "only once", "client_id": "c-42", "HEADERS": {} });
    ws.send_json(frame.clone()).await;
    let first = ws.next_text().await;
    assert!(first.contains(r#"data-client-id="c-42""#), "{first}");
    let id = user_message_ids(&first)[0];

    // A reconnect re-sends it.
    let mut again = alice.ws("lobby").await;
    again.resume(id).await;
    again.send_json(frame).await;
    let ack = again.next_text().await;
    assert!(
        ack.starts_with(&format!(r#"<article class="msg" id="msg-{id}""#)),
        "{ack}"
    );

    again.say("next").await;
    let next = user_message_ids(&again.next_text().await)[0];
    assert!(next > id);
    let page = alice.get_text("/rooms/lobby").await;
    assert_eq!(user_message_ids(&page), vec![id, next]);
    assert_eq!(page.matches("only once").count(), 1);
}

async fn the_same_client_id_in_another_room_is_another_message(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let alice = app.login("alice").await;
    alice.post_form("/rooms", &[("name", "elsewhere")]).await;
    let frame = serde_json::json!({ "body": "twice, two rooms", "client_id": "c-7" });
    let mut lobby = alice.ws("lobby").await;
    lobby.resume(0).await;
    lobby.send_json(frame.clone()).await;
    lobby.next_containing("twice, two rooms").await;

    let mut elsewhere = alice.ws("elsewhere").await;
    elsewhere.resume(0).await;
    elsewhere.send_json(frame).await;
    elsewhere.next_containing("twice, two rooms").await;
    let page = alice.get_text("/rooms/elsewhere").await;
    assert_eq!(
        page.matches("twice, two rooms").count(),
        1,
        "stored in this room"
    );
}

#[tokio::test]
async fn resume_after_replays_exactly_the_missed_messages_before_live_ones() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    for n in 1..=30 {
        let body = format!("m{n}");
        alice
            .post_form("/rooms/lobby/messages", &[("body", body.as_str())])
            .await;
    }
    let bob = app.login("bob").await;
    let mut b = bob.ws("lobby").await;
    // A live message arrives before bob asks to resume; it must come after the replay.
    alice
        .post_form("/rooms/lobby/messages", &[("body", "m31")])
        .await;
    b.resume(12).await;
    // Everything after 12, system lines included, in order, with no gap or repeat.
    let mut ids = Vec::new();
    loop {
        let frame = b.next_raw().await;
        if !frame.starts_with(r#"<div id="messages""#) {
            continue;
        }
        ids.extend(message_ids(&frame));
        if frame.contains(">m31<") {
            break;
        }
    }
    let newest = *ids.last().unwrap();
    assert_eq!(ids, (13..=newest).collect::<Vec<_>>());
    alice
        .post_form("/rooms/lobby/messages", &[("body", "m32")])
        .await;
    let frame = b.next_containing(">m32<").await;
    assert_eq!(message_ids(&frame), vec![newest + 1]);
}

#[tokio::test]
async fn more_than_500_missed_gives_the_reset_fragment() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let mut a = alice.ws("lobby").await;
    a.resume(0).await;
    for n in 1..=520 {
        a.send_json(serde_json::json!({ "body": format!("n{n}"), "client_id": format!("k{n}") }))
            .await;
        a.next_containing(&format!(">n{n}<")).await;
    }
    let bob = app.login("bob").await;
    let mut b = bob.ws("lobby").await;
    b.resume(10).await;
    let reset = b.next_text().await;
    assert!(
        reset.starts_with(r#"<div id="messages" hx-swap-oob="innerHTML">"#),
        "{}",
        &reset[..200.min(reset.len())]
    );
    let ids = message_ids(&reset);
    let newest = *ids.last().unwrap();
    assert!(newest >= 520);
    assert_eq!(ids, (newest - 49..=newest).collect::<Vec<_>>());
    assert!(
        reset.contains(&format!("before={}", newest - 49)),
        "a load-older link"
    );
}

#[tokio::test]
async fn logout_closes_the_sessions_sockets_with_1008() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let mut first = alice.ws("lobby").await;
    let mut second = alice.ws("lobby").await;
    alice.post_form("/logout", &[]).await;
    assert_eq!(first.closed_with().await, Some(1008));
    assert_eq!(second.closed_with().await, Some(1008));
}

#[tokio::test]
async fn more_than_20_sockets_per_session_are_refused() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let mut open = Vec::new();
    for _ in 0..20 {
        open.push(alice.ws("lobby").await);
    }
    assert_eq!(
        alice.try_ws("lobby", Some(&app.origin())).await.err(),
        Some(429)
    );
    drop(open.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(alice.try_ws("lobby", Some(&app.origin())).await.is_ok());
}

#[tokio::test]
async fn a_reader_that_never_reads_is_disconnected_without_delaying_others() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let stalled = app.login("stalled").await;
    let mut a = alice.ws("lobby").await;
    let mut b = bob.ws("lobby").await;
    let mut s = stalled.ws("lobby").await;
    a.resume(0).await;
    b.resume(0).await;
    s.resume(0).await;

    // Big messages fill the stalled reader's socket buffers and queue quickly.
    let body = "w".repeat(3900);
    let mut delays = Vec::new();
    for n in 0..2500 {
        let sent = std::time::Instant::now();
        a.send_json(serde_json::json!({ "body": format!("{n} {body}") }))
            .await;
        let frame = b.next_text().await;
        delays.push(sent.elapsed());
        assert!(frame.contains(&format!(">{n} w")), "in order");
        a.next_text().await;
    }
    delays.sort();
    let median = delays[delays.len() / 2];
    assert!(
        median < Duration::from_millis(50),
        "median delivery {median:?}"
    );

    // The stalled reader was closed; reading now finds the close after what was buffered.
    let mut closed = None;
    for _ in 0..10_000 {
        match s.next().await {
            Received::Closed(code) => {
                closed = Some(code);
                break;
            }
            Received::Text(_) => {}
        }
    }
    let code = closed.expect("the stalled socket was closed");
    assert!(code == Some(1013) || code.is_none(), "closed with {code:?}");
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_dropped() {
    let app = spawn_app_with(|config| config.ping_interval = 0.2).await;
    let alice = app.login("alice").await;
    let mut ws = alice.ws("lobby").await;
    ws.resume(0).await;
    // tungstenite answers pings only while the stream is read; not reading = dead peer.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ws.closed_with().await;
}

#[tokio::test]
async fn over_the_rate_limit_the_sender_is_told_and_accepted_messages_are_all_kept() {
    let app = spawn_app_with(|config| {
        config.rate_limit = 1.0;
        config.rate_burst = 3.0;
    })
    .await;
    let alice = app.login("alice").await;
    let mut ws = alice.ws("lobby").await;
    ws.resume(0).await;
    for n in 1..=5 {
        ws.send_json(
            serde_json::json!({ "body": format!("burst {n}"), "client_id": format!("b{n}") }),
        )
        .await;
    }
    let mut stored = Vec::new();
    let mut limited = Vec::new();
    while stored.len() + limited.len() < 5 {
        let frame = ws.next_text().await;
        if frame.contains(r#"data-error="rate_limited""#) {
            let id = frame.split(r#"data-client-id=""#).nth(1).unwrap();
            limited.push(id[..id.find('"').unwrap()].to_owned());
        } else if !user_message_ids(&frame).is_empty() {
            stored.extend(user_message_ids(&frame));
        }
    }
    assert_eq!(stored.len(), 3, "the burst passes");
    assert_eq!(
        limited,
        vec!["b4", "b5"],
        "the rest are refused, each said so"
    );
    let page = alice.get_text("/rooms/lobby").await;
    assert_eq!(
        user_message_ids(&page),
        stored,
        "everything accepted is stored"
    );
    assert!(!page.contains("burst 4"));

    // The no-JS form is limited too, and keeps the text.
    let response = alice
        .post_form("/rooms/lobby/messages", &[("body", "one more")])
        .await;
    assert_eq!(response.status(), 429);
    assert!(response.text().await.unwrap().contains("one more"));
}
