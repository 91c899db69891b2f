//! Direct messages: a private room between two people, opened at `/dm/{nickname}`. Only the
//! two can see it, by any path; to everyone else it does not exist.

use reqwest::Method;

use std::time::Duration;

use crate::helpers::{Received, eventually, spawn_app, user_message_ids};

#[tokio::test]
async fn a_direct_conversation_is_seen_by_its_two_people_only() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let bob = app.login("Bob").await;
    let carol = app.login("carol").await;

    let dm = alice.message_directly("bob", "hello").await;
    assert!(dm.starts_with("dm~"), "{dm}");
    let page = alice.get_text(&format!("/rooms/{dm}")).await;
    assert!(page.contains(&format!(r#"ws-connect="/rooms/{dm}/ws""#)));

    let mut to_bob = bob.ws(&dm).await;
    to_bob.resume(1).await;
    let mut from_alice = alice.ws(&dm).await;
    from_alice.resume(1).await;
    from_alice.say("just between us").await;
    let frame = to_bob.next_containing("just between us").await;
    let id = user_message_ids(&frame)[0];

    // Both see it in their own sidebar section, named after the other person.
    let bobs_page = bob.get_text("/").await;
    assert!(
        bobs_page.contains(r#"<nav id="dm-list""#),
        "bob's sidebar lists it"
    );
    assert!(bobs_page.contains(r#"<span class="room-name">alice</span>"#));
    assert!(
        !bobs_page[..bobs_page.find(r#"<nav id="dm-list""#).unwrap()].contains(&dm),
        "not among the rooms"
    );

    // Carol: 404 everywhere, and no trace of it in her sidebar.
    let room = format!("/rooms/{dm}");
    let room = room.as_str();
    for path in [
        room.to_owned(),
        format!("{room}/messages?before=10"),
        format!("{room}/messages/{id}"),
        format!("{room}/messages/{id}/edit"),
        format!("{room}/mentions?q="),
    ] {
        assert_eq!(carol.get(&path).await.status(), 404, "GET {path}");
    }
    let react = carol
        .htmx(
            Method::POST,
            &format!("{room}/messages/{id}/reactions"),
            &[("emoji", "👍")],
        )
        .await;
    assert_eq!(react.status(), 404);
    let post = carol
        .post_form(&format!("{room}/messages"), &[("body", "let me in")])
        .await;
    assert_eq!(post.status(), 404);
    assert_eq!(
        carol.try_ws(&dm, Some(&app.origin())).await.err(),
        Some(404)
    );
    let found = |page: String| page.contains(&format!("/rooms/{dm}/messages/"));
    assert!(
        found(
            eventually(
                || bob.get_text("/search?q=between"),
                |page| found(page.clone())
            )
            .await
        ),
        "bob finds it"
    );
    assert!(
        !found(carol.get_text("/search?q=between").await),
        "carol's search never shows it"
    );
    let carols_page = carol.get_text("/").await;
    assert!(!carols_page.contains(&dm));
    assert_eq!(
        carol.get("/dm/alice").await.status(),
        200,
        "her own conversation with alice would be another one"
    );
    assert!(
        carols_page.contains(
            r#"<nav id="dm-list" class="room-list dm-list" aria-label="Direct messages" hidden>"#
        ),
        "her list of direct messages is there to fill, hidden"
    );

    // Creating a room by that name makes an ordinary, different room.
    let made = carol.post_form("/rooms", &[("name", &dm)]).await;
    assert!(
        made.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/rooms/dm-")
    );
    assert!(!bob.get_text(room).await.contains("let me in"));
}

#[tokio::test]
async fn a_conversation_needs_someone_real_on_the_other_side() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    assert_eq!(
        alice.get("/dm/alice").await.status(),
        404,
        "not with oneself"
    );
    assert_eq!(
        alice.get("/dm/nobody").await.status(),
        404,
        "not with nobody"
    );
    assert_eq!(alice.get("/dm/%3Cscript%3E").await.status(), 404);
}

#[tokio::test]
async fn a_new_conversation_appears_live_in_the_other_persons_sidebar_only() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let carol = app.login("carol").await;
    let mut bobs_lobby = bob.ws("lobby").await;
    bobs_lobby.resume(0).await;
    let mut carols_lobby = carol.ws("lobby").await;
    carols_lobby.resume(0).await;

    let dm = alice.message_directly("bob", "hi bob").await;

    let frame = bobs_lobby.next_containing(r#"<nav id="dm-list""#).await;
    let list = &frame[frame.find(r#"<nav id="dm-list""#).unwrap()..];
    assert!(list.contains(&format!(r#"href="/rooms/{dm}""#)), "{list}");
    assert!(
        list.contains(r#"<span class="room-name">alice</span>"#),
        "{list}"
    );
    assert!(!list.contains(" hidden>"), "{list}");

    // Carol gets the same room-list updates, and nothing of theirs.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(800);
    let mut updates = 0;
    while let Some(Received::Text(frame)) = carols_lobby
        .next_within(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        updates += usize::from(frame.contains(r#"<nav id="room-list""#));
        assert!(
            !frame.contains("dm-list") && !frame.contains(&dm),
            "{frame}"
        );
    }
    assert!(updates > 0, "carol's list was updated too");
}
