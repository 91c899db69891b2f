//! Two instances on one PostgreSQL database are one chat: whichever instance a socket is on,
//! it receives every message of its room once, in id order, and the changes made on the
//! other instance.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::Method;

use crate::admin::close_frame;
use crate::attachments::{Part, newest_message, png, upload};
use crate::bots::{
    Api, bot_id, make_bot, next_call, no_call_within, set_webhook, slow_webhook_receiver,
    webhook_receiver,
};
use crate::crash::harness::{self, ChildServer};
use crate::crash::server_bin;
use crate::devices::{device_link, who_is};
use crate::helpers::{
    ADMIN_TOKEN, AppData, Backend, TestApp, Visitor, Ws, eventually, message_ids, sidebar_badge,
    spawn_app_in, spawn_app_on, user_message_ids,
};
use chat::domain::Slug;
use chat::store::{MessageKind, MessageRecord, PgStore, Storage};

const SENDERS_PER_INSTANCE: usize = 3;
const MESSAGES_PER_SENDER: usize = 20;

async fn two_instances() -> (TestApp, TestApp) {
    let a = spawn_app_on(Backend::Postgres).await;
    let b = spawn_app_in(a.data.another_instance(), |_| {}).await;
    (a, b)
}

/// Someone logged in on `app` with a socket in the lobby, caught up from its first message.
async fn watching(app: &TestApp, nickname: &str) -> (Visitor, Ws) {
    let visitor = app.login(nickname).await;
    let mut ws = visitor.ws("lobby").await;
    ws.resume(0).await;
    (visitor, ws)
}

/// Reads appended messages until `people` of them are people's; returns the ids of all
/// appended (system lines too), in the order they came.
async fn appended_ids(ws: &mut Ws, people: usize) -> Vec<u64> {
    let (mut ids, mut seen) = (Vec::new(), 0);
    while seen < people {
        let frame = ws.next_raw().await;
        if frame.starts_with(r#"<div id="messages" hx-swap-oob="beforeend">"#) {
            ids.extend(message_ids(&frame));
            seen += user_message_ids(&frame).len();
        }
    }
    ids
}

/// The next frame that replaces message `id`.
async fn replaced(ws: &mut Ws, id: u64) -> String {
    loop {
        let frame = ws.next_raw().await;
        if frame.starts_with(r#"<article class="msg"#)
            && frame.contains(&format!(r#"id="msg-{id}""#))
        {
            return frame;
        }
    }
}

/// Each sender posts its messages one after the other; all senders at once.
async fn flood(senders: &[(String, Visitor)]) {
    join_all(senders.iter().map(|(name, visitor)| async move {
        for n in 0..MESSAGES_PER_SENDER {
            let body = format!("{name} says {n}");
            let sent = visitor
                .post_form("/rooms/lobby/messages", &[("body", &body)])
                .await;
            assert_eq!(sent.status(), 303, "{body}");
        }
    }))
    .await;
}

#[tokio::test]
async fn sockets_on_both_instances_receive_every_message_once_in_order_and_changes_travel() {
    let (a, b) = two_instances().await;
    let (_, mut on_a) = watching(&a, "watcher-a").await;
    let (_, mut on_b) = watching(&b, "watcher-b").await;
    let mut senders = Vec::new();
    for (app, instance) in [(&a, "a"), (&b, "b")] {
        for n in 0..SENDERS_PER_INSTANCE {
            let name = format!("{instance}{n}");
            senders.push((name.clone(), app.login(&name).await));
        }
    }

    flood(&senders).await;
    let people = 2 * SENDERS_PER_INSTANCE * MESSAGES_PER_SENDER;
    for ws in [&mut on_a, &mut on_b] {
        let ids = appended_ids(ws, people).await;
        let expected: Vec<u64> = (1..=ids.len() as u64).collect();
        assert_eq!(
            ids, expected,
            "every message once, in id order, from the first"
        );
    }
    let stored = a
        .data
        .with_storage(|s| s.messages(&Slug::lobby(), 1, u64::MAX).unwrap())
        .await;
    let mut bodies: Vec<&str> = stored
        .iter()
        .filter(|m| m.body.contains(" says "))
        .map(|m| m.body.as_str())
        .collect();
    bodies.sort_unstable();
    bodies.dedup();
    assert_eq!(bodies.len(), people, "each stored once");

    // An edit on A reaches the socket on B; a reaction on B reaches the socket on A.
    let (author, editor) = &senders[0];
    let id = stored
        .iter()
        .find(|m| m.body == format!("{author} says 0"))
        .unwrap()
        .id as u64;
    let path = format!("/rooms/lobby/messages/{id}");
    let edited = editor
        .htmx(Method::PUT, &path, &[("body", "said, and then *edited*")])
        .await;
    assert_eq!(edited.status(), 200);
    for ws in [&mut on_a, &mut on_b] {
        let frame = replaced(ws, id).await;
        assert!(frame.contains("<em>edited</em>"), "{frame}");
    }

    let (reactor, on_instance_b) = &senders[SENDERS_PER_INSTANCE];
    let reacted = on_instance_b
        .htmx(
            Method::POST,
            &format!("{path}/reactions"),
            &[("emoji", "🎉")],
        )
        .await;
    assert_eq!(reacted.status(), 200);
    for ws in [&mut on_b, &mut on_a] {
        let frame = replaced(ws, id).await;
        assert!(
            frame.contains(&format!(r#"data-by="{reactor}""#)),
            "{frame}"
        );
        assert!(frame.contains("<em>edited</em>"), "the edit stays: {frame}");
    }
}

#[tokio::test]
async fn a_topic_and_a_room_made_on_one_instance_show_on_the_other() {
    let (a, b) = two_instances().await;
    let (_, mut on_b) = watching(&b, "bob").await;
    let alice = a.login("alice").await;

    let topic = alice
        .post_form("/rooms/lobby/topic", &[("topic", "Release day")])
        .await;
    assert_eq!(topic.status(), 303);
    let frame = on_b.next_containing(r#"id="room-topic""#).await;
    assert!(frame.contains("Release day"), "{frame}");

    let made = alice.post_form("/rooms", &[("name", "Plans")]).await;
    assert_eq!(made.status(), 303);
    let bob = b.login("bob2").await;
    let page = crate::helpers::eventually(
        || bob.get("/rooms/plans"),
        |response| response.status() == 200,
    )
    .await;
    assert_eq!(page.status(), 200, "the room exists on B too");
    let page = page.text().await.unwrap();
    assert!(page.contains("room created by alice"), "with its history");
}

#[tokio::test]
async fn an_instance_that_lost_its_listening_connection_catches_up_after_reconnecting() {
    let (a, b) = two_instances().await;
    let (_, mut on_b) = watching(&b, "bob").await;
    let alice = a.login("alice").await;
    let url = a.data.database_url().unwrap().to_owned();

    // Cuts every listening connection: what is said meanwhile is announced to nobody.
    tokio::task::spawn_blocking(move || {
        let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let cut = admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND query LIKE 'LISTEN%'",
                &[],
            )
            .unwrap();
        assert_eq!(cut, 2, "one listener per instance");
    })
    .await
    .unwrap();
    for n in 0..3 {
        let body = format!("while away {n}");
        let sent = alice
            .post_form("/rooms/lobby/messages", &[("body", &body)])
            .await;
        assert_eq!(sent.status(), 303);
    }

    let ids = appended_ids(&mut on_b, 3).await;
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<u64>>());
    // Listening again: later messages arrive as they are said.
    let sent = alice
        .post_form("/rooms/lobby/messages", &[("body", "back")])
        .await;
    assert_eq!(sent.status(), 303);
    let frame = on_b.next_containing("back").await;
    assert_eq!(message_ids(&frame), [ids.len() as u64 + 1]);
}

/// Ending a login on one instance ends it on the other at once: its sockets there close
/// (1008, with the reason the page shows), and its session is gone there too.
#[tokio::test]
async fn a_login_ended_on_one_instance_is_ended_on_the_other() {
    let a = spawn_app_in(AppData::new(Backend::Postgres), |config| {
        config.admin_token = Some(ADMIN_TOKEN.into())
    })
    .await;
    let b = spawn_app_in(a.data.another_instance(), |_| {}).await;

    // Logging out on A.
    let alice = a.login("alice").await;
    let alice_on_b = b.visitor_with(&alice.cookie().unwrap());
    assert_eq!(
        alice_on_b.get("/rooms/lobby").await.status(),
        200,
        "one session, both instances"
    );
    let mut socket = alice_on_b.ws("lobby").await;
    socket.resume(0).await;
    assert_eq!(alice.post_form("/logout", &[]).await.status(), 303);
    assert_eq!(
        close_frame(&mut socket).await,
        (1008, "logged out".to_owned())
    );
    assert_eq!(
        alice_on_b.get("/rooms/lobby").await.status(),
        303,
        "logged out on B too"
    );

    // Removed by an admin on A.
    let carol = a.login("carol").await;
    let redeemed = carol.post_form("/admin", &[("token", ADMIN_TOKEN)]).await;
    assert_eq!(redeemed.status(), 303);
    let bob = b.login("bob").await;
    let mut socket = bob.ws("lobby").await;
    socket.resume(0).await;
    let kicked = carol
        .post_form("/rooms/lobby/admin/kick", &[("nickname", "bob")])
        .await;
    assert_eq!(kicked.status(), 303);
    assert_eq!(
        close_frame(&mut socket).await,
        (1008, "removed by an admin".to_owned())
    );
    assert_eq!(bob.get("/").await.status(), 303);
}

/// Leaving a room on one instance closes the person's tabs of it on the other.
#[tokio::test]
async fn a_room_left_on_one_instance_closes_its_tabs_on_the_other() {
    let (a, b) = two_instances().await;
    let alice = a.login("alice").await;
    alice.get_text("/rooms/lobby").await;
    let alice_on_b = b.visitor_with(&alice.cookie().unwrap());
    let mut socket = alice_on_b.ws("lobby").await;
    socket.resume(0).await;
    assert_eq!(
        alice.post_form("/rooms/lobby/leave", &[]).await.status(),
        303
    );
    assert_eq!(
        close_frame(&mut socket).await,
        (1008, "left the room".to_owned())
    );
}

/// People asking for one nickname on both instances at the same moment: exactly one gets it,
/// however the requests interleave.
#[tokio::test]
async fn a_nickname_wanted_on_two_instances_at_once_goes_to_exactly_one() {
    let (a, b) = two_instances().await;
    for round in 0..5 {
        let nickname = format!("wanted{round}");
        let attempts = (0..8).map(|i| {
            let app = if i % 2 == 0 { &a } else { &b };
            let nickname = nickname.clone();
            async move {
                let visitor = app.visitor();
                let response = visitor
                    .post_form("/login", &[("nickname", nickname.as_str())])
                    .await;
                response.status().as_u16()
            }
        });
        let statuses = join_all(attempts).await;
        let winners = statuses.iter().filter(|status| **status == 303).count();
        assert_eq!(winners, 1, "{nickname}: {statuses:?}");
    }
}

/// A bot made on one instance works on the other at once, and a token revoked on one stops
/// working on both: each instance keeps its bots in memory, and hears of the other's changes.
#[tokio::test]
async fn a_bot_made_or_revoked_on_one_instance_is_known_to_the_other() {
    let (a, b) = two_instances().await;
    let alice = a.login("alice").await;
    let token = make_bot(&alice, "helper").await;
    let on_b = Api::new(&b, &token);
    let status = || async { on_b.read("lobby", "").await.status().as_u16() };
    assert_eq!(eventually(status, |s| *s == 200).await, 200, "made on A");

    let id = bot_id(&alice, "helper").await;
    let revoked = alice
        .post_form(&format!("/settings/bots/{id}/revoke"), &[])
        .await;
    assert_eq!(revoked.status(), 303);
    assert_eq!(eventually(status, |s| *s == 401).await, 401, "revoked on A");
}

/// The real server binary as another instance on `a`'s database (it can be killed with
/// -9), with `flags`; its data directory lives as long as the returned guard.
async fn child_instance(a: &TestApp, flags: &[&str]) -> (ChildServer, tempfile::TempDir) {
    child_instance_on(&a.data, flags).await
}

/// [`child_instance`] on `data`'s database, whether or not an app runs on it.
pub(crate) async fn child_instance_on(
    data: &AppData,
    flags: &[&str],
) -> (ChildServer, tempfile::TempDir) {
    let url = data.database_url().expect("on PostgreSQL").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--database-url", url.as_str()];
    args.extend_from_slice(flags);
    let b = ChildServer::start(
        server_bin(),
        dir.path(),
        None,
        &dir.path().join("b.log"),
        &args,
    )
    .await
    .unwrap();
    (b, dir)
}

/// The next frame on `ws` for which `wanted` holds (others are skipped).
async fn frame_where(ws: &mut Ws, wanted: impl Fn(&str) -> bool) -> String {
    loop {
        let frame = ws.next_raw().await;
        if wanted(&frame) {
            return frame;
        }
    }
}

fn here_now(frame: &str) -> Option<&str> {
    frame
        .starts_with(r#"<section id="presence""#)
        .then_some(frame)
}

/// "Here now" and "is typing" show people on any instance, and the people of an instance
/// killed without a word leave them by themselves, within its heartbeat timeout.
#[tokio::test]
async fn here_and_typing_show_across_instances_and_a_killed_instance_stops_counting() {
    let a = spawn_app_on(Backend::Postgres).await;
    let a = spawn_app_in(a.stop().await, |config| config.instance_timeout = 2.0).await;
    let (mut b, _b_dir) = child_instance(&a, &["--instance-timeout", "2"]).await;

    let (_alice, mut on_a) = watching(&a, "alice").await;
    let bob = harness::Visitor::logged_in(&b.base(), "bob").await.unwrap();
    let mut on_b = bob.socket("lobby").await.unwrap();
    frame_where(&mut on_a, |f| {
        here_now(f).is_some_and(|f| f.contains(r#"data-author="bob""#))
    })
    .await;
    loop {
        let frame = on_b.next_text().await.unwrap();
        if here_now(&frame).is_some_and(|f| f.contains(r#"data-author="alice""#)) {
            break;
        }
    }

    on_b.send_json(serde_json::json!({ "typing": true }))
        .await
        .unwrap();
    frame_where(&mut on_a, |f| {
        f.starts_with(r#"<div id="typing""#) && f.contains("bob is typing")
    })
    .await;

    b.kill().await.unwrap();
    let killed = tokio::time::Instant::now();
    let gone = frame_where(&mut on_a, |f| {
        here_now(f).is_some_and(|f| !f.contains(r#"data-author="bob""#))
    })
    .await;
    assert!(gone.contains(r#"data-author="alice""#), "{gone}");
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "bob counted {:?} after his instance died",
        killed.elapsed()
    );
}

/// An instance stopped on purpose (a restart, a deploy) takes its people out of "Here now"
/// on the others at once, rather than after its heartbeat timeout.
#[tokio::test]
async fn an_instance_stopped_on_purpose_takes_its_people_out_at_once() {
    let (a, b) = two_instances().await;
    let (_alice, mut on_a) = watching(&a, "alice").await;
    let (_carol, on_b) = watching(&b, "carol").await;
    frame_where(&mut on_a, |f| {
        here_now(f).is_some_and(|f| f.contains(r#"data-author="carol""#))
    })
    .await;
    // Its sockets still open: the server closes them as it stops.
    b.stop().await;
    let stopped = tokio::time::Instant::now();
    frame_where(&mut on_a, |f| {
        here_now(f).is_some_and(|f| !f.contains(r#"data-author="carol""#))
    })
    .await;
    // The default timeout is 20 s.
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "carol counted {:?} after her instance stopped",
        stopped.elapsed()
    );
    drop(on_b);
}

/// What someone read on one instance is read on the other: the unread count there follows.
#[tokio::test]
async fn messages_read_on_one_instance_are_read_on_the_other() {
    let (a, b) = two_instances().await;
    let alice_on_a = a.login("alice").await;
    alice_on_a.get_text("/rooms/lobby").await;
    let alice_on_b = b.visitor_with(&alice_on_a.cookie().expect("logged in"));
    let bob = b.login("bob").await;
    for body in ["one", "two"] {
        let sent = bob
            .post_form("/rooms/lobby/messages", &[("body", body)])
            .await;
        assert_eq!(sent.status(), 303);
    }
    let home = || alice_on_a.get_text("/");
    let unread = |page: &String| sidebar_badge(page, "lobby");
    let before = eventually(home, |page| unread(page) == Some(2)).await;
    assert_eq!(unread(&before), Some(2), "{before}");

    alice_on_b.get_text("/rooms/lobby").await;
    let after = alice_on_a.get_text("/").await;
    assert_eq!(unread(&after), None, "read on B: {after}");
}

/// A device link made through one instance works through the other, once; a login's
/// fourth link still replaces its first.
#[tokio::test]
async fn a_device_link_made_on_one_instance_works_once_on_the_other() {
    let (a, b) = two_instances().await;
    let laptop = a.login("alice").await;
    let link = device_link(&laptop).await;

    let phone = b.visitor();
    let ask = phone.get(&link).await;
    assert_eq!(ask.status(), 200);
    assert!(ask.text().await.unwrap().contains("Log in as alice"));
    assert_eq!(phone.post_form(&link, &[]).await.status(), 303);
    assert_eq!(who_is(&phone).await.as_deref(), Some("alice"));
    let stranger = a.visitor();
    assert_eq!(
        stranger.post_form(&link, &[]).await.status(),
        410,
        "used up"
    );

    let first = device_link(&laptop).await;
    for _ in 0..3 {
        device_link(&laptop).await;
    }
    assert_eq!(b.visitor().get(&first).await.status(), 410, "replaced");
}

/// A file attached through one instance is served by the other, which has no disk in
/// common with it: the bytes and the thumbnail are in the database, in chunks.
#[tokio::test]
async fn a_file_attached_on_one_instance_is_served_by_the_other() {
    let (a, b) = two_instances().await;
    let alice = a.login("alice").await;
    let bob = b.login("bob").await;
    let photo = png(800, 600);
    // Three chunks and a bit: the boundaries are crossed.
    let archive: Vec<u8> = (0..800 * 1024u32).map(|n| (n * 7 % 251) as u8).collect();
    for part in [
        Part::file("photo.png", "image/png", photo.clone()),
        Part::file("notes.bin", "application/octet-stream", archive.clone()),
    ] {
        assert_eq!(upload(&alice, &a, "lobby", &[part]).await.status(), 200);
    }
    let (id, _) = eventually(
        || newest_message(&bob, "lobby"),
        |(_, markup)| markup.contains("notes.bin"),
    )
    .await;
    let bob = &bob;
    let fetch = |path: String| async move {
        let response = bob.get(&path).await;
        assert_eq!(response.status(), 200, "{path}");
        response.bytes().await.unwrap().to_vec()
    };
    assert_eq!(
        fetch(format!("/rooms/lobby/messages/{id}/file")).await,
        archive
    );
    let photo_id = id - 1;
    assert_eq!(
        fetch(format!("/rooms/lobby/messages/{photo_id}/file")).await,
        photo
    );
    let thumbnail = fetch(format!("/rooms/lobby/messages/{photo_id}/thumbnail")).await;
    assert!(
        image::load_from_memory(&thumbnail).is_ok(),
        "a thumbnail that decodes"
    );
}

/// A message stored without its announcement (the NOTIFY after a commit can fail) still
/// reaches every instance's sockets, within a heartbeat interval, with nothing else said
/// in the room.
#[tokio::test]
async fn a_message_whose_announcement_was_lost_still_shows_on_every_instance() {
    let a = spawn_app_on(Backend::Postgres).await;
    let a = spawn_app_in(a.stop().await, |config| config.instance_timeout = 2.0).await;
    let (_alice, mut on_a) = watching(&a, "alice").await;
    let url = a.data.database_url().expect("on PostgreSQL").to_owned();
    // Stored as another instance would store it, minus the announcement.
    tokio::task::spawn_blocking(move || {
        let store = PgStore::connect(&url).unwrap();
        let mut lobby = store.room(&Slug::lobby()).unwrap().unwrap();
        lobby.last_id += 1;
        lobby.counted += 1;
        let message = MessageRecord::new(
            &Slug::lobby(),
            lobby.last_id as u64,
            MessageKind::User,
            "bob".into(),
            "login-bob".into(),
            "announced to nobody".into(),
            lobby.last_activity,
        );
        store.rewrite(&[message], &[lobby]).unwrap();
    })
    .await
    .unwrap();
    on_a.next_containing("announced to nobody").await;
}

/// Wrong guesses at a secret count against one budget however they are spread over the
/// instances: ten wrong admin tokens, half through each, use up the address's tries on both.
#[tokio::test]
async fn wrong_guesses_spread_over_two_instances_share_one_budget() {
    let first = spawn_app_on(Backend::Postgres).await;
    let data = first.stop().await;
    let a = spawn_app_in(data.clone(), |c| c.admin_token = Some(ADMIN_TOKEN.into())).await;
    let b = spawn_app_in(data.another_instance(), |c| {
        c.admin_token = Some(ADMIN_TOKEN.into())
    })
    .await;
    let metrics = |app: &TestApp, token: &'static str| {
        let url = app.url("/metrics");
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for n in 0..chat::config::WRONG_GUESSES {
        let app = if n % 2 == 0 { &a } else { &b };
        assert_eq!(metrics(app, "guess").await, 401, "wrong guess {n}");
    }
    assert_eq!(metrics(&a, ADMIN_TOKEN).await, 429, "used up on A");
    assert_eq!(metrics(&b, ADMIN_TOKEN).await, 429, "and on B");
}

/// One instance killed with -9 while people on both send: every message acknowledged on
/// either is stored once, ids stay dense, and the other instance's sockets got them all in
/// order, once.
#[tokio::test]
async fn an_instance_killed_while_people_send_loses_no_acknowledged_message() {
    let a = spawn_app_on(Backend::Postgres).await;
    let (mut b, _b_dir) = child_instance(&a, &["--rate-limit", "0"]).await;
    let (_alice, mut watcher) = watching(&a, "alice").await;
    let bob = harness::Visitor::logged_in(&b.base(), "bob").await.unwrap();
    let mut on_b = bob.socket("lobby").await.unwrap();
    on_b.resume(0).await.unwrap();
    let carol = harness::Visitor::logged_in(&a.origin(), "carol")
        .await
        .unwrap();
    let mut on_a = carol.socket("lobby").await.unwrap();
    on_a.resume(0).await.unwrap();

    /// Sends `body` and waits until the sender's own socket shows it: acknowledged.
    async fn acknowledged(socket: &mut harness::Socket, body: &str) -> bool {
        if socket.say(body, Some(body)).await.is_err() {
            return false;
        }
        while let Some(harness::Event::Text(text)) =
            socket.next_within(Duration::from_secs(5)).await
        {
            if let harness::Frame::Append(messages) = harness::parse_frame(&text)
                && messages.iter().any(|m| m.body == body)
            {
                return true;
            }
        }
        false
    }

    let mut acked = Vec::new();
    for n in 0..40 {
        for (socket, body) in [(&mut on_b, format!("b{n}")), (&mut on_a, format!("a{n}"))] {
            assert!(acknowledged(socket, &body).await, "{body}");
            acked.push(body);
        }
    }
    // In flight when B dies: these may or may not be stored, each at most once.
    for n in 40..50 {
        let _ = on_b.say(&format!("b{n}"), Some(&format!("b{n}"))).await;
    }
    b.kill().await.unwrap();
    for n in 40..60 {
        let body = format!("a{n}");
        assert!(
            acknowledged(&mut on_a, &body).await,
            "{body} after the kill"
        );
        acked.push(body);
    }

    let dora = harness::Visitor::logged_in(&a.origin(), "dora")
        .await
        .unwrap();
    let history = harness::history(&dora, "lobby").await.unwrap();
    assert_eq!(harness::sequence_problems(&history), Vec::<String>::new());
    for body in &acked {
        let stored = history.iter().filter(|m| &m.body == body).count();
        assert_eq!(stored, 1, "{body} stored {stored} times");
    }
    let last = history.last().unwrap().id;
    let mut seen = Vec::new();
    while seen.last() != Some(&last) {
        let frame = watcher.next_raw().await;
        if frame.starts_with(r#"<div id="messages" hx-swap-oob="beforeend">"#) {
            seen.extend(message_ids(&frame));
        }
    }
    assert_eq!(
        seen,
        (1..=last).collect::<Vec<_>>(),
        "every id once, in order"
    );
}

/// Mentions of a bot stored through either instance reach its webhook once each: both
/// instances take the deliveries queued in the database, and never the same one.
#[tokio::test]
async fn each_mention_stored_on_either_instance_reaches_the_webhook_once() {
    let data = spawn_app_on(Backend::Postgres).await.stop().await;
    let a = spawn_app_in(data.clone(), |c| c.allow_private_webhooks = true).await;
    let owner = a.login("owner").await;
    let token = make_bot(&owner, "helper").await;
    // Each answer takes a while, so deliveries queue up and both instances look for them
    // while the first are taken.
    let (receiver, mut calls) =
        slow_webhook_receiver(0, Duration::ZERO, Duration::from_millis(150)).await;
    set_webhook(&a, &token, receiver).await;
    let b = spawn_app_in(data.another_instance(), |c| c.allow_private_webhooks = true).await;

    let (alice, bob) = (a.login("alice").await, b.login("bob").await);
    let mut expected = Vec::new();
    for n in 0..10 {
        for (who, visitor) in [("alice", &alice), ("bob", &bob)] {
            let body = format!("@helper {who} {n}");
            let posted = visitor
                .post_form("/rooms/lobby/messages", &[("body", &body)])
                .await;
            assert_eq!(posted.status(), 303);
            expected.push(body);
        }
    }
    let mut delivered = Vec::new();
    for _ in &expected {
        let call = next_call(&mut calls).await;
        delivered.push(call.payload["message"]["body"].as_str().unwrap().to_owned());
    }
    no_call_within(
        &mut calls,
        Duration::from_secs(2),
        "a mention delivered twice",
    )
    .await;
    delivered.sort();
    expected.sort();
    assert_eq!(delivered, expected, "each mention once");
}

/// An instance killed while it delivers a mention leaves it queued in the database: the
/// other instance delivers it once the dead one's lease runs out, and only once.
#[tokio::test]
async fn a_mention_whose_instance_dies_mid_delivery_goes_out_from_the_other() {
    const WEBHOOK: [&str; 5] = [
        "--allow-private-webhooks",
        "--webhook-timeout",
        "2",
        "--webhook-attempts",
        "1",
    ];
    let data = spawn_app_on(Backend::Postgres).await.stop().await;
    let (mut dying, _dir) = child_instance_on(&data, &WEBHOOK).await;

    let alice = Visitor::of(&dying.base(), None);
    let login = alice.post_form("/login", &[("nickname", "alice")]).await;
    assert_eq!(login.status(), 303);
    let token = make_bot(&alice, "helper").await;
    let (receiver, mut calls) = webhook_receiver(1, Duration::from_secs(60)).await;
    let set = reqwest::Client::new()
        .put(dying.url("/api/webhook"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "url": format!("http://{receiver}/hook") }))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let posted = alice
        .post_form("/rooms/lobby/messages", &[("body", "@helper still there?")])
        .await;
    assert_eq!(posted.status(), 303);
    // The receiver holds its first call for a minute: the instance dies during it.
    let hanging = next_call(&mut calls).await;
    dying.kill().await.unwrap();

    let _survivor = spawn_app_in(data, |c| {
        c.allow_private_webhooks = true;
        c.webhook_timeout = 2.0;
        c.webhook_attempts = 1;
    })
    .await;
    let delivered = tokio::time::timeout(Duration::from_secs(20), calls.recv())
        .await
        .expect("the mention goes out from the instance left")
        .unwrap();
    assert_eq!(delivered.payload, hanging.payload, "the same mention");
    no_call_within(
        &mut calls,
        Duration::from_secs(3),
        "the mention went out twice",
    )
    .await;
}
