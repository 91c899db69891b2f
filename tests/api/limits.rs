//! What one person, or one address, may do how often: every way of storing something a
//! person wrote goes through the message rate limit; creating rooms has a rate per login
//! and per address and a total per login; a socket can't ask to catch up over and over.

use crate::attachments::{Part, png, upload};
use crate::helpers::{TestApp, spawn_app_with, user_message_ids};

/// A server whose message limit allows a burst of three and then next to nothing.
async fn app_with_a_burst_of_three() -> TestApp {
    spawn_app_with(|config| {
        config.rate_limit = 0.01;
        config.rate_burst = 3.0;
    })
    .await
}

#[tokio::test]
async fn a_first_message_from_the_welcome_form_counts_against_the_rate_limit() {
    let app = app_with_a_burst_of_three().await;
    let alice = app.login("alice").await;
    let mut statuses = Vec::new();
    for n in 1..=5 {
        let text = format!("welcome {n}");
        let response = alice
            .post_form("/rooms", &[("name", "lobby"), ("message", text.as_str())])
            .await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            let page = response.text().await.unwrap();
            assert!(page.contains(&text), "the text is kept");
            assert!(page.contains("too fast"), "and the page says why");
        }
    }
    assert_eq!(statuses, [303, 303, 303, 429, 429]);
    let page = alice.get_text("/rooms/lobby").await;
    assert_eq!(user_message_ids(&page).len(), 3, "only the burst is stored");
    assert!(!page.contains("welcome 4"));
}

#[tokio::test]
async fn topic_changes_count_against_the_rate_limit() {
    let app = app_with_a_burst_of_three().await;
    let alice = app.login("alice").await;
    let mut statuses = Vec::new();
    for n in 1..=5 {
        let topic = format!("topic {n}");
        let response = alice
            .post_form("/rooms/lobby/topic", &[("topic", topic.as_str())])
            .await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [303, 303, 303, 429, 429]);
    let page = alice.get_text("/rooms/lobby").await;
    assert_eq!(page.matches("set the topic to").count(), 3, "three lines");
    assert!(page.contains(r#"<p id="room-topic" class="topic">topic 3</p>"#));
}

#[tokio::test]
async fn each_file_of_an_upload_spends_a_token() {
    let app = app_with_a_burst_of_three().await;
    let alice = app.login("alice").await;
    let files: Vec<Part> = (1..=5)
        .map(|n| Part::file("dot.png", "image/png", png(n, n)))
        .collect();
    let refused = upload(&alice, &app, "lobby", &files).await;
    assert_eq!(refused.status(), 429, "five files, three tokens");
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains(r#"data-error="rate_limited""#)
    );
    let page = alice.get_text("/rooms/lobby").await;
    assert!(user_message_ids(&page).is_empty(), "none of them is posted");

    let bob = app.login("bob").await;
    let files: Vec<Part> = (1..=3)
        .map(|n| Part::file("dot.png", "image/png", png(n, n)))
        .collect();
    assert_eq!(upload(&bob, &app, "lobby", &files).await.status(), 200);
    let page = bob.get_text("/rooms/lobby").await;
    assert_eq!(user_message_ids(&page).len(), 3, "within the burst: all");
}

#[tokio::test]
async fn rooms_one_login_or_address_creates_are_limited_per_minute() {
    let app = spawn_app_with(|config| config.room_rate = 3.0).await;
    let alice = app.login("alice").await;
    for n in 1..=3 {
        let name = format!("room {n}");
        let made = alice.post_form("/rooms", &[("name", name.as_str())]).await;
        assert_eq!(made.status(), 303, "{name}");
    }
    let refused = alice
        .post_form("/rooms", &[("name", "room 4"), ("message", "hello there")])
        .await;
    assert_eq!(refused.status(), 429);
    let page = refused.text().await.unwrap();
    assert!(page.contains("Wait a minute"), "the page says why");
    assert!(page.contains(r#"value="room 4""#), "the name is kept");
    assert!(page.contains("hello there"), "and the message");
    assert_eq!(alice.get("/rooms/room-4").await.status(), 404);
    let unnamed = alice.post_form("/rooms", &[]).await;
    assert_eq!(unnamed.status(), 429, "an unnamed room is a room too");

    // Joining is not creating.
    let joined = alice.post_form("/rooms", &[("name", "Room 1")]).await;
    assert_eq!(joined.status(), 303);
    assert_eq!(joined.headers()["location"], "/rooms/room-1");

    // A new login from the same address starts no new allowance.
    let bob = app.login("bob").await;
    let refused = bob.post_form("/rooms", &[("name", "bobs room")]).await;
    assert_eq!(refused.status(), 429);
}

#[tokio::test]
async fn a_login_creates_a_bounded_number_of_rooms_in_all() {
    let app = spawn_app_with(|config| config.rooms_per_login = 3).await;
    let alice = app.login("alice").await;
    for name in ["one", "two", "three"] {
        assert_eq!(
            alice.post_form("/rooms", &[("name", name)]).await.status(),
            303
        );
    }
    let refused = alice.post_form("/rooms", &[("name", "four")]).await;
    assert_eq!(refused.status(), 429);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("the most one login may")
    );
    assert_eq!(
        alice.post_form("/rooms", &[("name", "two")]).await.status(),
        303,
        "joining still works"
    );
    let bob = app.login("bob").await;
    assert_eq!(
        bob.post_form("/rooms", &[("name", "four")]).await.status(),
        303,
        "the total is per login"
    );
}

#[tokio::test]
async fn a_socket_that_keeps_asking_to_catch_up_is_told_to_wait() {
    let app = spawn_app_with(|_| {}).await;
    let alice = app.login("alice").await;
    let mut ws = alice.ws("lobby").await;
    for _ in 0..4 {
        ws.resume(0).await;
    }
    let mut caught_up = 0;
    loop {
        let frame = ws.next_raw().await;
        if frame.contains(r#"data-error="rate_limited""#) {
            break;
        }
        if frame.starts_with(r#"<span id="room-revision""#) {
            caught_up += 1;
        }
    }
    assert_eq!(caught_up, 3, "three catch-ups, then the refusal");
    // The socket stays open and live.
    ws.say("still here").await;
    ws.next_containing("still here").await;
}
