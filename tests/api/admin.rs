//! Moderation: admin rights come from a secret (the admin token, or the one-time setup
//! link), and admins delete anyone's message, rename, archive and reopen rooms, and remove
//! people. Everyone else gets 403; every action shows as a line in the room.

use std::time::Duration;

use fantoccini::Locator;
use futures_util::StreamExt;
use reqwest::Method;
use tokio_tungstenite::tungstenite::Message;

use crate::attachments::{Part, png, upload};
use crate::bots::{Api, make_bot};
use crate::browser::{
    Driver, log_in, open_toolbar, save_screenshot, say as type_message, script, shown, until,
};
use crate::helpers::{
    ADMIN_TOKEN, TestApp, Visitor, WAIT, Ws, spawn_app, spawn_app_in, spawn_app_with,
    user_message_ids,
};

async fn app_with_token() -> TestApp {
    spawn_app_with(|config| config.admin_token = Some(ADMIN_TOKEN.into())).await
}

/// `nickname`, logged in, whose session redeemed the admin token.
async fn admin(app: &TestApp, nickname: &str) -> Visitor {
    let visitor = app.login(nickname).await;
    let redeemed = visitor.post_form("/admin", &[("token", ADMIN_TOKEN)]).await;
    assert_eq!(redeemed.status(), 303, "the admin token is accepted");
    visitor
}

/// A socket in `room` that has caught up.
async fn socket(visitor: &Visitor, room: &str) -> Ws {
    let mut ws = visitor.ws(room).await;
    ws.resume(0).await;
    ws
}

/// Someone says `text` in the room of `ws`; returns its id once `ws` has it.
async fn say(ws: &mut Ws, text: &str) -> u64 {
    ws.say(text).await;
    let frame = ws.next_containing(text).await;
    user_message_ids(&frame)[0]
}

/// The code and reason of the socket's close frame.
pub(crate) async fn close_frame(ws: &mut Ws) -> (u16, String) {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.stream.next())
            .await
            .expect("a close in time");
        match frame {
            Some(Ok(Message::Close(Some(close)))) => {
                return (close.code.into(), close.reason.to_string());
            }
            Some(Ok(Message::Close(None))) | Some(Err(_)) | None => {
                panic!("the socket ended without a close frame")
            }
            Some(Ok(_)) => continue,
        }
    }
}

fn setup_token(link: &str) -> String {
    link.split_once("token=")
        .expect("a token in the link")
        .1
        .to_owned()
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_the_right_one_makes_the_session_admin_across_a_restart() {
    let app = app_with_token().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    assert_eq!(alice.get("/rooms/lobby/admin").await.status(), 403);

    let wrong = alice.post_form("/admin", &[("token", "guess")]).await;
    assert_eq!(wrong.status(), 403);
    assert!(wrong.text().await.unwrap().contains("not the admin token"));
    assert_eq!(
        alice.get("/rooms/lobby/admin").await.status(),
        403,
        "a wrong token grants nothing"
    );

    let right = alice.post_form("/admin", &[("token", ADMIN_TOKEN)]).await;
    assert_eq!(right.status(), 303);
    let panel = alice.get_text("/rooms/lobby/admin").await;
    assert!(panel.contains("/rooms/lobby/admin/rename"), "{panel}");
    let page = alice.get_text("/rooms/lobby").await;
    assert!(page.contains(r#"<body class="is-admin""#));
    assert!(page.contains(r#"href="/rooms/lobby/admin""#));
    let theirs = bob.get_text("/rooms/lobby").await;
    assert!(!theirs.contains("is-admin") && !theirs.contains(r#"href="/rooms/lobby/admin""#));

    let cookie = alice.cookie().unwrap();
    let dir = app.stop().await;
    let app = spawn_app_in(dir, |config| config.admin_token = Some(ADMIN_TOKEN.into())).await;
    let again = app.visitor();
    let panel = again
        .http
        .get(app.url("/rooms/lobby/admin"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(panel.status(), 200, "the grant is kept with the session");

    let logout = again
        .http
        .post(app.url("/logout"))
        .header("Cookie", &cookie)
        .header("Origin", app.origin())
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 303);
    let after = again
        .http
        .get(app.url("/rooms/lobby/admin"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 403, "logging out ends the grant");
}

#[tokio::test]
async fn the_setup_link_works_once_and_a_restart_before_then_replaces_it() {
    let app = spawn_app().await;
    let first = app
        .admin_setup_link
        .clone()
        .expect("a setup link at first start");
    assert!(first.starts_with(&format!("{}/admin?token=", app.origin())));

    let dir = app.stop().await;
    let app = spawn_app_in(dir, |_| {}).await;
    let link = app.admin_setup_link.clone().expect("unused: a new link");
    assert_ne!(link, first);

    let stranger = app.visitor();
    let path = link.trim_start_matches(&app.origin()).to_owned();
    let to_login = stranger.get(&path).await;
    assert_eq!(to_login.status(), 303);
    assert_eq!(
        to_login.headers()["location"],
        format!("/login?next=%2Fadmin%3Ftoken%3D{}", setup_token(&link)).as_str(),
        "logging in keeps the token"
    );

    let alice = app.login("alice").await;
    let form = alice.get_text(&path).await;
    assert!(form.contains(&format!(r#"value="{}""#, setup_token(&link))));
    let old = alice
        .post_form("/admin", &[("token", &setup_token(&first))])
        .await;
    assert_eq!(old.status(), 403, "the replaced link no longer works");
    let used = alice
        .post_form("/admin", &[("token", &setup_token(&link))])
        .await;
    assert_eq!(used.status(), 303);
    assert_eq!(alice.get("/rooms/lobby/admin").await.status(), 200);

    let bob = app.login("bob").await;
    let again = bob
        .post_form("/admin", &[("token", &setup_token(&link))])
        .await;
    assert_eq!(again.status(), 403, "the link works once");
    let bearer = bob
        .http
        .get(app.url("/rooms/lobby/admin"))
        .bearer_auth(setup_token(&link))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 401, "the setup token is no bearer token");

    let dir = app.stop().await;
    let app = spawn_app_in(dir, |_| {}).await;
    assert_eq!(app.admin_setup_link, None, "redeemed: no new link");
}

#[tokio::test]
async fn non_admins_get_403_on_every_admin_action_and_nothing_changes() {
    let app = app_with_token().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let mut b = socket(&bob, "lobby").await;
    let id = say(&mut b, "bob was here").await;

    let posts = [
        ("/rooms/lobby/admin/rename", vec![("name", "hijacked")]),
        ("/rooms/lobby/admin/archive", vec![]),
        ("/rooms/lobby/admin/unarchive", vec![]),
        ("/rooms/lobby/admin/kick", vec![("nickname", "bob")]),
    ];
    for (path, form) in &posts {
        let refused = alice.post_form(path, form).await;
        assert_eq!(refused.status(), 403, "POST {path}");
    }
    assert_eq!(alice.get("/rooms/lobby/admin").await.status(), 403);
    let delete = alice
        .htmx(Method::DELETE, &format!("/rooms/lobby/messages/{id}"), &[])
        .await;
    assert_eq!(delete.status(), 403);
    let anonymous = app.visitor();
    let refused = anonymous.post_form("/rooms/lobby/admin/archive", &[]).await;
    assert_eq!(refused.status(), 403);
    let wrong_bearer = anonymous
        .http
        .post(app.url("/rooms/lobby/admin/archive"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_bearer.status(), 401);

    b.expect_silence(Duration::from_millis(300)).await;
    let page = bob.get_text("/rooms/lobby").await;
    assert!(page.contains(r#"<span id="room-name">lobby</span>"#));
    assert!(page.contains("bob was here") && !page.contains("(admin)"));
    assert!(!page.contains("data-archived"));

    // A machine with the admin token may act.
    let bearer = anonymous
        .http
        .post(app.url("/rooms/lobby/admin/rename"))
        .bearer_auth(ADMIN_TOKEN)
        .form(&[("name", "Front door")])
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 303);
    assert!(
        bob.get_text("/rooms/lobby")
            .await
            .contains(r#"<span id="room-name">Front door</span>"#)
    );
}

#[tokio::test]
async fn an_admin_deletes_someone_elses_message_live_and_for_good_and_the_room_is_told() {
    let app = app_with_token().await;
    let alice = admin(&app, "alice").await;
    let bob = app.login("bob").await;
    let mut a = socket(&alice, "lobby").await;
    let mut b = socket(&bob, "lobby").await;
    let id = say(&mut b, "buy cheap watches").await;
    a.next_containing("buy cheap watches").await;

    let deleted = alice
        .htmx(Method::DELETE, &format!("/rooms/lobby/messages/{id}"), &[])
        .await;
    assert_eq!(deleted.status(), 200);
    for ws in [&mut a, &mut b] {
        let frame = ws.next_containing(&format!(r#"id="msg-{id}""#)).await;
        assert!(frame.contains("Message deleted") && !frame.contains("watches"));
        let line = ws
            .next_containing("alice (admin) deleted a message by bob")
            .await;
        assert!(line.contains(r#"data-kind="system""#), "{line}");
    }

    let dir = app.stop().await;
    let app = spawn_app_in(dir, |_| {}).await;
    let page = app.login("carol").await.get_text("/rooms/lobby").await;
    assert!(page.contains(&format!(r#"id="msg-{id}""#)) && !page.contains("watches"));
    assert!(page.contains("alice (admin) deleted a message by bob"));
}

#[tokio::test]
async fn an_admin_renames_a_room_live_in_its_header_and_every_sidebar_and_the_link_stays() {
    let app = app_with_token().await;
    let alice = admin(&app, "alice").await;
    let bob = app.login("bob").await;
    let created = bob.post_form("/rooms", &[("name", "Planning")]).await;
    assert_eq!(created.headers()["location"], "/rooms/planning");
    let mut b = socket(&bob, "planning").await;

    let bad = alice
        .post_form("/rooms/planning/admin/rename", &[("name", "   ")])
        .await;
    assert_eq!(bad.status(), 422);
    let renamed = alice
        .post_form("/rooms/planning/admin/rename", &[("name", "Roadmap 2027")])
        .await;
    assert_eq!(renamed.status(), 303);
    assert_eq!(renamed.headers()["location"], "/rooms/planning");

    b.next_containing(r#"<span id="room-name">Roadmap 2027</span>"#)
        .await;
    let line = b
        .next_containing("alice (admin) renamed the room to “Roadmap 2027”")
        .await;
    assert!(line.contains(r#"data-kind="system""#));
    let sidebar = b.next_containing(r#"<nav id="room-list""#).await;
    assert!(sidebar.contains("Roadmap 2027") && !sidebar.contains(">Planning<"));

    let dir = app.stop().await;
    let app = spawn_app_in(dir, |_| {}).await;
    let page = app.login("carol").await.get_text("/rooms/planning").await;
    assert!(page.contains(r#"<span id="room-name">Roadmap 2027</span>"#));
    assert!(page.contains("<title>Roadmap 2027 · Chat</title>"));
}

#[tokio::test]
async fn an_archived_room_refuses_posts_and_changes_keeps_its_history_and_can_be_reopened() {
    let app = app_with_token().await;
    let alice = admin(&app, "alice").await;
    let bob = app.login("bob").await;
    bob.post_form("/rooms", &[("name", "old-news")]).await;
    let bot = Api::new(&app, &make_bot(&bob, "newsbot").await);
    let mut b = socket(&bob, "old-news").await;
    let id = say(&mut b, "history stays").await;

    let archived = alice.post_form("/rooms/old-news/admin/archive", &[]).await;
    assert_eq!(archived.status(), 303);
    // The line goes out first: it is the last thing the room says.
    b.next_containing("alice (admin) archived the room").await;
    let notice = b.next_containing(r#"id="room-state""#).await;
    assert!(notice.contains("data-archived"), "{notice}");

    b.say("anyone here?").await;
    let refused = b.next_containing("composer-error").await;
    assert!(refused.contains(r#"data-error="archived""#), "{refused}");
    let posted = bob
        .post_form("/rooms/old-news/messages", &[("body", "hello?")])
        .await;
    assert_eq!(posted.status(), 403);
    assert!(
        posted
            .text()
            .await
            .unwrap()
            .contains(r#"data-error="archived""#)
    );
    let path = format!("/rooms/old-news/messages/{id}");
    let edit = bob.htmx(Method::PUT, &path, &[("body", "rewritten")]).await;
    assert_eq!(edit.status(), 403);
    let react = bob
        .htmx(
            Method::POST,
            &format!("{path}/reactions"),
            &[("emoji", "👍")],
        )
        .await;
    assert_eq!(react.status(), 403);
    let topic = bob
        .post_form("/rooms/old-news/topic", &[("topic", "new")])
        .await;
    assert_eq!(topic.status(), 403);
    let delete = bob.htmx(Method::DELETE, &path, &[]).await;
    assert_eq!(delete.status(), 403);
    // Nor by the other ways in: a file with a caption, the bot API.
    let uploaded = upload(
        &bob,
        &app,
        "old-news",
        &[
            Part::file("late.png", "image/png", png(4, 4)),
            Part::caption("a late caption"),
        ],
    )
    .await;
    assert_eq!(uploaded.status(), 403);
    let api_post = bot
        .post_json("old-news", serde_json::json!({ "body": "beep" }))
        .await;
    assert_eq!(api_post.status(), 403);

    let dir = app.stop().await;
    let app = spawn_app_in(dir, |config| config.admin_token = Some(ADMIN_TOKEN.into())).await;
    // bob's session outlives the restart, so someone else reads now.
    let reader = app.login("dave").await;
    let page = reader.get_text("/rooms/old-news").await;
    assert!(page.contains("history stays") && page.contains("data-archived"));
    assert!(!page.contains("anyone here?") && !page.contains("hello?"));
    assert!(!page.contains("a late caption") && !page.contains("beep"));
    assert_eq!(
        user_message_ids(&page),
        vec![id],
        "nothing was posted after archiving"
    );
    let archived_group = page.find("<h2>Archived</h2>").expect("an Archived group");
    let listed = page.find(r#"data-slug="old-news""#).expect("listed");
    assert!(listed > archived_group, "listed under Archived");

    let alice = admin(&app, "alice2").await;
    let mut b = socket(&reader, "old-news").await;
    let reopened = alice
        .post_form("/rooms/old-news/admin/unarchive", &[])
        .await;
    assert_eq!(reopened.status(), 303);
    b.next_containing("alice2 (admin) reopened the room").await;
    let notice = b.next_containing(r#"id="room-state""#).await;
    assert!(!notice.contains("data-archived"), "{notice}");
    let new_id = say(&mut b, "back in business").await;
    assert!(new_id > id);
    assert!(
        !reader.get_text("/").await.contains("<h2>Archived</h2>"),
        "no longer listed apart"
    );
}

#[tokio::test]
async fn a_removed_nickname_loses_its_tabs_and_sessions_and_the_name_is_free_again() {
    let app = app_with_token().await;
    let alice = admin(&app, "alice").await;
    let bob = app.login("bob").await;
    let mut a = socket(&alice, "lobby").await;
    let mut tab1 = socket(&bob, "lobby").await;
    let mut tab2 = socket(&bob, "lobby").await;
    assert_eq!(
        app.visitor()
            .post_form("/login", &[("nickname", "bob")])
            .await
            .status(),
        422,
        "held while bob is logged in"
    );

    let unknown = alice
        .post_form("/rooms/lobby/admin/kick", &[("nickname", "nobody")])
        .await;
    assert_eq!(unknown.status(), 422);
    let myself = alice
        .post_form("/rooms/lobby/admin/kick", &[("nickname", "alice")])
        .await;
    assert_eq!(myself.status(), 422);

    let kicked = alice
        .post_form("/rooms/lobby/admin/kick", &[("nickname", "bob")])
        .await;
    assert_eq!(kicked.status(), 303);
    for tab in [&mut tab1, &mut tab2] {
        assert_eq!(
            close_frame(tab).await,
            (1008, "removed by an admin".to_owned())
        );
    }
    a.next_containing("alice (admin) removed bob").await;

    let next = bob.get("/").await;
    assert_eq!(next.status(), 303);
    assert_eq!(next.headers()["location"], "/login");
    assert_eq!(
        bob.try_ws("lobby", Some(&app.origin())).await.err(),
        Some(401)
    );

    let newcomer = app.visitor();
    let taken = newcomer.post_form("/login", &[("nickname", "bob")]).await;
    assert_eq!(taken.status(), 303, "the nickname is free for someone else");
    assert_eq!(alice.get("/rooms/lobby/admin").await.status(), 200);
}

#[tokio::test]
async fn direct_conversations_stay_404_to_admins() {
    let app = app_with_token().await;
    let alice = admin(&app, "alice").await;
    let bob = app.login("bob").await;
    let _carol = app.login("carol").await;
    let room = format!("/rooms/{}", bob.message_directly("carol", "hi").await);
    let mut b = socket(&bob, room.trim_start_matches("/rooms/")).await;
    let id = say(&mut b, "just between us").await;

    assert_eq!(alice.get(&room).await.status(), 404);
    assert_eq!(alice.get(&format!("{room}/admin")).await.status(), 404);
    let rename = alice
        .post_form(&format!("{room}/admin/rename"), &[("name", "x")])
        .await;
    assert_eq!(rename.status(), 404);
    let delete = alice
        .htmx(Method::DELETE, &format!("{room}/messages/{id}"), &[])
        .await;
    assert_eq!(delete.status(), 404);
    let page = bob.get_text(&room).await;
    assert!(page.contains("just between us") && !page.contains("(admin)"));
    assert_eq!(user_message_ids(&page), vec![1, id], "still there");
}

#[tokio::test]
async fn in_the_browser_an_admin_gets_the_controls_and_the_people_affected_see_each_action_live() {
    let app = app_with_token().await;
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    let bob = driver.browser().await;
    log_in(&alice, &app, "alice").await;
    log_in(&bob, &app, "bob").await;
    alice.goto(&app.url("/admin")).await.unwrap();
    shown(&alice, "#admin-token")
        .await
        .send_keys(ADMIN_TOKEN)
        .await
        .unwrap();
    alice
        .find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    shown(&alice, "main.welcome").await;
    alice.goto(&app.url("/rooms/lobby")).await.unwrap();
    bob.goto(&app.url("/rooms/lobby")).await.unwrap();
    shown(&alice, "body.is-admin .admin-link").await;

    type_message(&alice, "house rules apply").await;
    type_message(&bob, "buy cheap watches").await;
    shown(&alice, ".msg[data-author='bob']").await;
    shown(&bob, ".msg[data-author='alice']").await;
    let delete_shown = "return getComputedStyle(document.querySelector(\"#msg-toolbar [data-action='delete']\")).display !== 'none';";
    let edit_shown = "return getComputedStyle(document.querySelector(\"#msg-toolbar [data-action='edit']\")).display !== 'none';";
    open_toolbar(&bob, ".msg[data-author='alice']").await;
    assert_eq!(
        script(&bob, delete_shown).await,
        serde_json::json!(false),
        "not for bob"
    );
    open_toolbar(&alice, ".msg[data-author='bob']").await;
    assert_eq!(
        script(&alice, delete_shown).await,
        serde_json::json!(true),
        "for the admin"
    );
    assert_eq!(
        script(&alice, edit_shown).await,
        serde_json::json!(false),
        "delete only"
    );

    alice
        .find(Locator::Css("#msg-toolbar [data-action='delete']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    alice.accept_alert().await.unwrap();
    until(
        &bob,
        "bob to see his message deleted and why",
        "var m = document.querySelector(\".msg[data-author='bob']\"); \
         return !!m && m.classList.contains('deleted') && !m.textContent.includes('watches') \
           && document.getElementById('messages').textContent.includes('alice (admin) deleted a message by bob');",
    )
    .await;

    alice.goto(&app.url("/rooms/lobby/admin")).await.unwrap();
    alice
        .find(Locator::Css("form[action$='/admin/archive'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &bob,
        "bob's composer to give way to the archived notice",
        "var notice = document.getElementById('room-state'); \
         return getComputedStyle(document.getElementById('composer')).display === 'none' \
           && !!notice && notice.offsetHeight > 0 && notice.textContent.includes('archived');",
    )
    .await;
    save_screenshot(&bob, "archived-room").await;

    shown(&alice, "main.room").await;
    alice.goto(&app.url("/rooms/lobby/admin")).await.unwrap();
    shown(&alice, "#kick-nickname")
        .await
        .send_keys("bob")
        .await
        .unwrap();
    alice
        .find(Locator::Css("form[action$='/admin/kick'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &bob,
        "bob to be told he was removed",
        "return document.getElementById('connection').textContent.includes('An admin removed you');",
    )
    .await;
    until(
        &bob,
        "bob to land on the login form",
        "return location.pathname === '/login' && !!document.getElementById('nickname');",
    )
    .await;
    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

#[tokio::test]
async fn guesses_at_the_admin_token_are_throttled_per_address_even_for_the_right_one() {
    let app = app_with_token().await;
    let alice = app.login("alice").await;
    let machine = app.visitor();
    let metrics = |visitor: &Visitor, token: &str| {
        visitor
            .http
            .get(app.url("/metrics"))
            .bearer_auth(token)
            .send()
    };
    for _ in 0..5 {
        let wrong = alice.post_form("/admin", &[("token", "guess")]).await;
        assert_eq!(wrong.status(), 403);
        assert_eq!(metrics(&machine, "guess").await.unwrap().status(), 401);
    }

    let page = alice.post_form("/admin", &[("token", ADMIN_TOKEN)]).await;
    assert_eq!(page.status(), 429, "people get a page");
    assert!(page.headers().contains_key("retry-after"));
    assert!(page.text().await.unwrap().contains("Too many wrong"));
    assert_eq!(alice.get("/rooms/lobby/admin").await.status(), 403);

    let plain = metrics(&machine, ADMIN_TOKEN).await.unwrap();
    assert_eq!(plain.status(), 429, "machines get plain text");
    assert!(plain.headers().contains_key("retry-after"));
    assert!(
        plain.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let action = machine
        .http
        .post(app.url("/rooms/lobby/admin/archive"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(action.status(), 429);

    let elsewhere = app.visitor_from(std::net::IpAddr::from([127, 0, 0, 2]));
    assert_eq!(
        metrics(&elsewhere, ADMIN_TOKEN).await.unwrap().status(),
        200
    );
}
