//! Changing messages after they are sent: edits, deletions, reactions, replies and
//! permalinks. Each change is stored, pushed live as a replacement of the message by id, and
//! only the author may edit or delete.

use reqwest::Method;

use crate::helpers::{TestApp, Ws, is_ambient, spawn_app, spawn_app_in, user_message_ids};

/// `alice` and `bob` in the lobby with sockets open; alice has said `text`, with this id.
async fn two_people_and_a_message(
    app: &TestApp,
    text: &str,
) -> (
    crate::helpers::Visitor,
    Ws,
    crate::helpers::Visitor,
    Ws,
    u64,
) {
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let mut a = alice.ws("lobby").await;
    let mut b = bob.ws("lobby").await;
    a.resume(0).await;
    b.resume(0).await;
    a.say(text).await;
    let frame = b.next_text().await;
    a.next_text().await;
    let id = user_message_ids(&frame)[0];
    (alice, a, bob, b, id)
}

/// The next frame that replaces message `id` by id (not an append).
async fn next_replacement(ws: &mut Ws, id: u64) -> String {
    let frame = ws.next_text().await;
    assert!(
        frame.starts_with(r#"<article class="msg"#) && frame.contains(&format!(r#"id="msg-{id}""#)),
        "expected message {id} replaced, got {frame}"
    );
    frame
}

#[tokio::test]
async fn the_author_edits_a_message_in_place_and_everyone_sees_it_marked_edited() {
    let app = spawn_app().await;
    let (alice, mut a, _bob, mut b, id) = two_people_and_a_message(&app, "teh plan").await;

    let form = alice
        .htmx(
            Method::GET,
            &format!("/rooms/lobby/messages/{id}/edit"),
            &[],
        )
        .await;
    assert_eq!(form.status(), 200);
    let form = form.text().await.unwrap();
    assert!(
        form.contains(&format!(r#"hx-put="/rooms/lobby/messages/{id}""#)),
        "{form}"
    );
    assert!(form.contains(">teh plan</textarea>"), "{form}");

    let saved = alice
        .htmx(
            Method::PUT,
            &format!("/rooms/lobby/messages/{id}"),
            &[("body", "the **plan**")],
        )
        .await;
    assert_eq!(saved.status(), 200);
    let saved = saved.text().await.unwrap();
    assert!(saved.contains("the <strong>plan</strong>"), "{saved}");
    assert!(
        saved.contains(r#"class="msg-edited">edited <time datetime=""#),
        "{saved}"
    );

    for ws in [&mut a, &mut b] {
        let frame = next_replacement(ws, id).await;
        let (frame, revision) = frame
            .split_once(r#"<span id="room-revision""#)
            .expect("a change carries the room revision");
        assert!(revision.starts_with(r#" data-revision=""#), "{revision}");
        assert_eq!(
            frame, saved,
            "the same rendering goes to everyone and to the editor"
        );
    }
    let page = alice.get_text("/rooms/lobby").await;
    assert!(page.contains("the <strong>plan</strong>") && !page.contains("teh plan"));
}

/// The room revision in a page or revision marker.
fn revision_in(html: &str) -> u64 {
    let start = html
        .find(r#"id="room-revision" data-revision=""#)
        .expect("a revision")
        + 34;
    let digits: String = html[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().expect("a number")
}

/// Resumes after message `after` and revision `revision`; returns the frames that replace
/// messages, and the revision the catch-up ends with.
async fn reconnect(ws: &mut Ws, after: u64, revision: u64) -> (Vec<String>, u64) {
    ws.send_json(serde_json::json!({ "resume_after": after, "revision": revision }))
        .await;
    let mut replaced = Vec::new();
    loop {
        let frame = ws.next_raw().await;
        if frame.starts_with(r#"<span id="room-revision""#) {
            return (replaced, revision_in(&frame));
        }
        if !is_ambient(&frame) {
            replaced.push(frame);
        }
    }
}

/// Says each text as alice and returns the ids, in order.
async fn alice_says(a: &mut Ws, texts: &[&str]) -> Vec<u64> {
    let mut ids = Vec::new();
    for text in texts {
        a.say(text).await;
        ids.extend(user_message_ids(&a.next_text().await));
    }
    ids
}

#[tokio::test]
async fn a_page_that_reconnects_is_sent_the_edits_deletions_and_reactions_it_missed() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let mut a = alice.ws("lobby").await;
    a.resume(0).await;
    let ids = alice_says(&mut a, &["zero", "one", "two", "three"]).await;
    let path = |id: u64| format!("/rooms/lobby/messages/{id}");
    let edit = |id: u64, body: &'static str| {
        let alice = &alice;
        let path = path(id);
        async move {
            let saved = alice.htmx(Method::PUT, &path, &[("body", body)]).await;
            assert_eq!(saved.status(), 200);
        }
    };

    edit(ids[0], "zero, seen before bob's page").await;
    let page = bob.get_text("/rooms/lobby").await;
    assert!(page.contains("zero, seen before"));
    let seen = revision_in(&page);

    // While bob's page is away: an edit, a deletion and a reaction.
    edit(ids[1], "one, edited while bob was away").await;
    let deleted = alice.htmx(Method::DELETE, &path(ids[2]), &[]).await;
    assert_eq!(deleted.status(), 200);
    let reacted = alice
        .htmx(
            Method::POST,
            &format!("{}/reactions", path(ids[3])),
            &[("emoji", "🎉")],
        )
        .await;
    assert_eq!(reacted.status(), 200);

    let mut b = bob.ws("lobby").await;
    let (replaced, now) = reconnect(&mut b, ids[3], seen).await;
    assert_eq!(
        replaced.len(),
        3,
        "each change it missed, once: {replaced:?}"
    );
    assert!(replaced[0].contains(&format!(r#"id="msg-{}""#, ids[1])));
    assert!(replaced[0].contains("one, edited while bob was away"));
    assert!(replaced[1].contains(&format!(r#"id="msg-{}""#, ids[2])));
    assert!(replaced[1].contains("Message deleted") && !replaced[1].contains(">two<"));
    assert!(replaced[2].contains(&format!(r#"id="msg-{}""#, ids[3])));
    assert!(replaced[2].contains("🎉"));
    assert!(now > seen, "the page moves to the newest revision");

    // Reconnecting again from there: nothing to replace.
    let mut again = bob.ws("lobby").await;
    let (replaced, _) = reconnect(&mut again, ids[3], now).await;
    assert!(replaced.is_empty(), "{replaced:?}");
}

#[tokio::test]
async fn changes_made_before_a_restart_reach_a_page_from_before_it() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let mut a = alice.ws("lobby").await;
    a.resume(0).await;
    let ids = alice_says(&mut a, &["before", "untouched"]).await;
    let seen = revision_in(&alice.get_text("/rooms/lobby").await);
    let path = format!("/rooms/lobby/messages/{}", ids[0]);
    let saved = alice
        .htmx(Method::PUT, &path, &[("body", "after, edited")])
        .await;
    assert_eq!(saved.status(), 200);
    drop(a);

    let dir = app.stop().await;
    let app = spawn_app_in(dir, |_| {}).await;
    let carol = app.login("carol").await;
    let mut c = carol.ws("lobby").await;
    let (replaced, now) = reconnect(&mut c, ids[1], seen).await;
    assert_eq!(replaced.len(), 1, "{replaced:?}");
    assert!(replaced[0].contains("after, edited"), "{replaced:?}");

    let mut fresh = carol.ws("lobby").await;
    let (replaced, _) = reconnect(&mut fresh, ids[1], now).await;
    assert!(replaced.is_empty(), "a page of this process has it already");
}

#[tokio::test]
async fn nobody_edits_or_deletes_another_persons_message() {
    let app = spawn_app().await;
    let (alice, _a, bob, mut b, id) = two_people_and_a_message(&app, "mine").await;

    let path = format!("/rooms/lobby/messages/{id}");
    let edit = bob.htmx(Method::PUT, &path, &[("body", "yours now")]).await;
    assert_eq!(edit.status(), 403);
    let delete = bob.htmx(Method::DELETE, &path, &[]).await;
    assert_eq!(delete.status(), 403);
    let form = bob.htmx(Method::GET, &format!("{path}/edit"), &[]).await;
    assert_eq!(form.status(), 403);

    b.expect_silence(std::time::Duration::from_millis(400))
        .await;
    let page = alice.get_text("/rooms/lobby").await;
    assert!(page.contains(">mine</p>") && !page.contains("yours now"));

    let missing = alice
        .htmx(Method::PUT, "/rooms/lobby/messages/999", &[("body", "x")])
        .await;
    assert_eq!(missing.status(), 404);
    let empty = alice.htmx(Method::PUT, &path, &[("body", "   ")]).await;
    assert_eq!(empty.status(), 422, "an edit is checked like a new message");
}

/// A reload shows each change at once: the newest page's markup, shared by every viewer with
/// nothing unread, is made again after a new message, an edit, a reaction and a deletion.
#[tokio::test]
async fn a_reloaded_room_shows_every_new_message_edit_reaction_and_deletion() {
    let app = spawn_app().await;
    let (alice, mut a, _bob, _b, id) = two_people_and_a_message(&app, "first draft").await;
    let message = format!("/rooms/lobby/messages/{id}");
    // Her first view posts her "joined" line and the second marks it read: from the third on
    // she has nothing unread, and is sent the shared markup, which the third makes.
    for _ in 0..3 {
        assert!(alice.get_text("/rooms/lobby").await.contains("first draft"));
    }

    let edited = alice
        .htmx(Method::PUT, &message, &[("body", "second draft")])
        .await;
    assert_eq!(edited.status(), 200);
    next_replacement(&mut a, id).await;
    let page = alice.get_text("/rooms/lobby").await;
    assert!(page.contains("second draft") && !page.contains("first draft"));

    let reacted = alice
        .htmx(
            Method::POST,
            &format!("{message}/reactions"),
            &[("emoji", "🎉")],
        )
        .await;
    assert_eq!(reacted.status(), 200);
    next_replacement(&mut a, id).await;
    let page = alice.get_text("/rooms/lobby").await;
    assert!(page.contains(r#"data-by="alice" title="alice">🎉"#));

    a.say("and a new one").await;
    a.next_text().await;
    // Her own message is not unread, but the view that marks it read is the one before the
    // shared markup.
    for _ in 0..2 {
        let page = alice.get_text("/rooms/lobby").await;
        assert!(page.contains("and a new one"));
    }

    let deleted = alice.htmx(Method::DELETE, &message, &[]).await;
    assert_eq!(deleted.status(), 200);
    next_replacement(&mut a, id).await;
    let page = alice.get_text("/rooms/lobby").await;
    assert!(page.contains("Message deleted") && !page.contains("second draft"));
}

#[tokio::test]
async fn a_deleted_message_leaves_a_marker_in_place_everywhere_and_after_a_restart() {
    let app = spawn_app().await;
    let (alice, mut a, _bob, mut b, id) = two_people_and_a_message(&app, "oops, a secret").await;

    let deleted = alice
        .htmx(Method::DELETE, &format!("/rooms/lobby/messages/{id}"), &[])
        .await;
    assert_eq!(deleted.status(), 200);
    for ws in [&mut a, &mut b] {
        let frame = next_replacement(ws, id).await;
        assert!(frame.contains("Message deleted"), "{frame}");
        assert!(!frame.contains("secret"), "{frame}");
    }
    let again = alice
        .htmx(Method::DELETE, &format!("/rooms/lobby/messages/{id}"), &[])
        .await;
    assert_eq!(again.status(), 404, "already gone");

    let dir = app.stop().await;
    let app = spawn_app_in(dir, |_| {}).await;
    let page = app.login("carol").await.get_text("/rooms/lobby").await;
    assert!(
        page.contains(&format!(r#"id="msg-{id}""#)),
        "the message keeps its place"
    );
    assert!(page.contains("Message deleted") && !page.contains("secret"));
}

#[tokio::test]
async fn reactions_toggle_per_person_with_counts_and_names_live_and_stored() {
    let app = spawn_app().await;
    let (alice, mut a, bob, mut b, id) = two_people_and_a_message(&app, "ship it?").await;
    let path = format!("/rooms/lobby/messages/{id}/reactions");

    assert_eq!(
        bob.htmx(Method::POST, &path, &[("emoji", "👍")])
            .await
            .status(),
        200
    );
    let frame = next_replacement(&mut a, id).await;
    assert!(
        frame.contains(r#"data-by="bob" title="bob">👍 <span class="count">1</span>"#),
        "{frame}"
    );

    assert_eq!(
        alice
            .htmx(Method::POST, &path, &[("emoji", "👍")])
            .await
            .status(),
        200
    );
    let frame = next_replacement(&mut a, id).await;
    assert!(
        frame.contains(r#"data-by="bob alice" title="bob, alice">👍 <span class="count">2</span>"#),
        "{frame}"
    );

    assert_eq!(
        bob.htmx(Method::POST, &path, &[("emoji", "👍")])
            .await
            .status(),
        200
    );
    let frame = next_replacement(&mut a, id).await;
    assert!(
        frame.contains(r#"data-by="alice" title="alice">👍 <span class="count">1</span>"#),
        "{frame}"
    );

    let odd = bob.htmx(Method::POST, &path, &[("emoji", "<b>")]).await;
    assert_eq!(odd.status(), 422);

    // Without JavaScript the same form posts and comes back to the message.
    let plain = bob.post_form(&path, &[("emoji", "🎉")]).await;
    assert_eq!(plain.status(), 303);
    for ws in [&mut a, &mut b] {
        while !next_replacement(ws, id).await.contains("🎉") {}
    }

    let dir = app.stop().await;
    let app = spawn_app_in(dir, |_| {}).await;
    let page = app.login("carol").await.get_text("/rooms/lobby").await;
    assert!(
        page.contains(r#"data-by="alice" title="alice">👍"#),
        "stored across a restart"
    );
    assert!(page.contains(r#"data-by="bob" title="bob">🎉"#));
}

#[tokio::test]
async fn a_reply_quotes_the_message_it_answers_and_links_to_it() {
    let app = spawn_app().await;
    let (alice, mut a, _bob, mut b, id) =
        two_people_and_a_message(&app, "Lunch at noon? <b>bring</b> snacks").await;

    b.send_json(serde_json::json!({
        "body": "yes!",
        "reply_to": id.to_string(),
        "HEADERS": {"HX-Request": "true"},
    }))
    .await;
    let frame = a.next_text().await;
    assert!(
        frame.contains(&format!(
            r##"<a class="msg-reply" href="/rooms/lobby/messages/{id}#msg-{id}""##
        )),
        "{frame}"
    );
    assert!(
        frame.contains(r#"<span class="msg-reply-author">alice</span>"#),
        "{frame}"
    );
    assert!(
        frame.contains("Lunch at noon? &#60;b&#62;bring&#60;/b&#62; snacks"),
        "the excerpt is escaped text: {frame}"
    );
    let reply_id = user_message_ids(&frame)[0];
    b.next_text().await;

    // A reply to a message that doesn't exist is still a message, without a quote.
    b.send_json(serde_json::json!({"body": "hello?", "reply_to": 999}))
        .await;
    let frame = a.next_text().await;
    assert!(
        frame.contains("hello?") && !frame.contains("msg-reply"),
        "{frame}"
    );
    b.next_text().await;

    // The quote follows the original: its new text after an edit, none once deleted.
    let path = format!("/rooms/lobby/messages/{id}");
    let edited = alice
        .htmx(Method::PUT, &path, &[("body", "Lunch at one")])
        .await;
    assert_eq!(edited.status(), 200);
    next_replacement(&mut b, id).await;
    let frame = next_replacement(&mut b, reply_id).await;
    assert!(
        frame.contains(r#"<span class="msg-reply-excerpt">Lunch at one</span>"#),
        "{frame}"
    );
    let deleted = alice.htmx(Method::DELETE, &path, &[]).await;
    assert_eq!(deleted.status(), 200);
    next_replacement(&mut b, id).await;
    let frame = next_replacement(&mut b, reply_id).await;
    assert!(
        frame.contains(r#"<span class="msg-reply-excerpt">Message deleted</span>"#)
            && !frame.contains("Lunch"),
        "{frame}"
    );
    let page = alice.get_text("/rooms/lobby").await;
    assert!(!page.contains("Lunch"), "stored too");
}

#[tokio::test]
async fn a_permalink_opens_the_room_at_the_message_even_when_it_is_old() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    for n in 1..=120 {
        let sent = alice
            .post_form("/rooms/lobby/messages", &[("body", &format!("note {n}"))])
            .await;
        assert_eq!(sent.status(), 303);
    }
    let page = alice.get_text("/rooms/lobby").await;
    let ids = user_message_ids(&page);
    let (old, newest) = (ids[0] - 40, *ids.last().unwrap());

    let page = alice
        .get_text(&format!("/rooms/lobby/messages/{old}"))
        .await;
    assert!(
        page.contains(&format!(r#"data-focus="{old}""#)),
        "the page marks the message"
    );
    let shown = user_message_ids(&page);
    assert!(shown.contains(&old) && shown.contains(&(old - 20)) && shown.contains(&(old + 20)));
    assert!(!shown.contains(&newest), "only the history around it");
    assert!(page.contains("Back to the newest messages"));

    let recent = alice
        .get_text(&format!("/rooms/lobby/messages/{newest}"))
        .await;
    assert!(
        recent.contains(r#"ws-connect="/rooms/lobby/ws""#),
        "a recent one opens the live room"
    );
    assert!(recent.contains(&format!(r#"data-focus="{newest}""#)));

    let fragment = alice
        .htmx(Method::GET, &format!("/rooms/lobby/messages/{old}"), &[])
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        user_message_ids(&fragment),
        vec![old],
        "to htmx, just the message"
    );
    assert_eq!(
        alice
            .get(&format!("/rooms/lobby/messages/{}", newest + 5))
            .await
            .status(),
        404
    );
    assert_eq!(alice.get("/rooms/nowhere/messages/1").await.status(), 404);
}
