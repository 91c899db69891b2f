//! Membership: a person joins a room once, by opening it (or by making it), and that is its
//! only "joined" line; moving between rooms, reloading and closing tabs say nothing. Only
//! what people and bots say counts as unread, and only in rooms one is a member of. Leaving
//! is an explicit action that says "left" once and takes the room out of one's sidebar.

use std::sync::Arc;
use std::time::Duration;

use crate::admin::close_frame;
use crate::helpers::{
    Backend, on_both_backends, sidebar_badge as badge, sidebar_link, spawn_app, spawn_app_in,
    spawn_app_on,
};
use crate::identity::{ALICES_SESSION, OldDatabase};

#[tokio::test]
async fn opening_a_room_joins_it_once_and_coming_and_going_says_nothing() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    bob.get_text("/rooms/lobby").await;
    for _ in 0..3 {
        alice.get_text("/rooms/lobby").await;
        let mut ws = alice.ws("lobby").await;
        ws.resume(0).await;
        ws.next_containing("alice joined").await;
        drop(ws);
        alice.get_text("/").await;
    }
    // Past the debounce after the last tab closed (half a second in tests), and a tick.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let page = bob.get_text("/rooms/lobby").await;
    assert_eq!(page.matches("alice joined").count(), 1, "{page}");
    assert!(!page.contains("alice left"), "{page}");
    assert_eq!(page.matches("bob joined").count(), 1, "{page}");
}

on_both_backends!(only_what_people_say_counts_as_unread);

async fn only_what_people_say_counts_as_unread(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let alice = app.login("alice").await;
    alice.get_text("/rooms/lobby").await;
    alice.get_text("/").await;
    // Others coming in and changing the topic are system lines: nothing to read.
    let bob = app.login("bob").await;
    bob.get_text("/rooms/lobby").await;
    let carol = app.login("carol").await;
    carol.get_text("/rooms/lobby").await;
    let topic = carol
        .post_form("/rooms/lobby/topic", &[("topic", "Plans")])
        .await;
    assert_eq!(topic.status(), 303);
    let home = alice.get_text("/").await;
    assert_eq!(badge(&home, "lobby"), None, "{home}");

    for body in ["one", "two"] {
        let sent = bob
            .post_form("/rooms/lobby/messages", &[("body", body)])
            .await;
        assert_eq!(sent.status(), 303);
    }
    carol.get_text("/rooms/lobby").await;
    let home = alice.get_text("/").await;
    assert_eq!(badge(&home, "lobby"), Some(2), "{home}");
    // The page carries the counts the live sidebar goes on from.
    let link = sidebar_link(&home, "lobby").unwrap();
    assert!(link.contains(r#"data-counted="2""#), "{link}");
    assert!(link.contains(r#"data-read-count="0""#), "{link}");
}

#[tokio::test]
async fn rooms_one_never_opened_count_nothing_and_their_maker_is_a_member_quietly() {
    let app = spawn_app().await;
    let bob = app.login("bob").await;
    let made = bob.post_form("/rooms", &[("name", "busy")]).await;
    assert_eq!(made.status(), 303);
    for body in ["one", "two", "three"] {
        bob.post_form("/rooms/busy/messages", &[("body", body)])
            .await;
    }
    let newcomer = app.login("alice").await;
    let home = newcomer.get_text("/").await;
    assert!(
        sidebar_link(&home, "busy").is_some(),
        "still listed: {home}"
    );
    assert_eq!(badge(&home, "busy"), None, "{home}");
    assert_eq!(badge(&home, "lobby"), None, "{home}");

    let page = bob.get_text("/rooms/busy").await;
    assert!(page.contains("room created by bob"), "{page}");
    assert!(!page.contains("bob joined"), "{page}");
}

#[tokio::test]
async fn leaving_a_room_says_so_once_and_takes_it_out_of_the_sidebar() {
    let app = spawn_app().await;
    let bob = app.login("bob").await;
    bob.post_form("/rooms", &[("name", "plans")]).await;
    let alice = app.login("alice").await;
    alice.get_text("/rooms/plans").await;
    let mut watching = bob.ws("plans").await;
    watching.resume(0).await;
    watching.next_containing("alice joined").await;

    let left = alice.post_form("/rooms/plans/leave", &[]).await;
    assert_eq!(left.status(), 303);
    assert_eq!(left.headers()["location"], "/");
    watching.next_containing("alice left").await;
    let home = alice.get_text("/").await;
    assert!(sidebar_link(&home, "plans").is_none(), "{home}");
    // The page keeps it out of the live copies of the list too.
    assert!(home.contains(r#"data-left="plans""#), "{home}");

    // What is said after she left is nothing of hers to read, and leaving twice says nothing.
    bob.post_form("/rooms/plans/messages", &[("body", "after she left")])
        .await;
    alice.post_form("/rooms/plans/leave", &[]).await;
    let page = bob.get_text("/rooms/plans").await;
    assert_eq!(page.matches("alice left").count(), 1, "{page}");

    // Opening it again joins it again, and it is back in her sidebar.
    let page = alice.get_text("/rooms/plans").await;
    assert!(page.contains("after she left"));
    let home = alice.get_text("/").await;
    assert!(sidebar_link(&home, "plans").is_some(), "{home}");
    assert!(!home.contains("data-left"), "{home}");
    watching.next_containing("alice joined").await;
    let page = bob.get_text("/rooms/plans").await;
    assert_eq!(page.matches("alice joined").count(), 2, "{page}");

    // A direct conversation can't be left: the other person would write into the void.
    let dm = bob.message_directly("alice", "hi").await;
    let refused = alice.post_form(&format!("/rooms/{dm}/leave"), &[]).await;
    assert_eq!(refused.status(), 422);
}

on_both_backends!(leaving_a_room_closes_its_other_tabs_there_and_nothing_else);

/// Leaving closes the person's other tabs of the room (1008, "left the room", which the page
/// explains and does not reconnect after): a stale tab would go on showing them "here now"
/// and posting as someone who left. Their tabs of other rooms, and everyone else's, stay.
async fn leaving_a_room_closes_its_other_tabs_there_and_nothing_else(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let bob = app.login("bob").await;
    bob.post_form("/rooms", &[("name", "plans")]).await;
    let alice = app.login("alice").await;
    alice.get_text("/rooms/plans").await;
    let mut tab = alice.ws("plans").await;
    tab.resume(0).await;
    let mut other_tab = alice.ws("plans").await;
    other_tab.resume(0).await;
    let mut lobby_tab = alice.ws("lobby").await;
    lobby_tab.resume(0).await;
    let mut bobs = bob.ws("plans").await;
    bobs.resume(0).await;
    bobs.next_containing(r#"data-author="alice""#).await;

    assert_eq!(
        alice.post_form("/rooms/plans/leave", &[]).await.status(),
        303
    );
    for socket in [&mut tab, &mut other_tab] {
        assert_eq!(
            close_frame(socket).await,
            (1008, "left the room".to_owned())
        );
    }
    let here = loop {
        let frame = bobs.next_raw().await;
        if frame.starts_with(r#"<section id="presence""#)
            && !frame.contains(r#"data-author="alice""#)
        {
            break frame;
        }
    };
    assert!(here.contains(r#"data-author="bob""#), "{here}");
    lobby_tab.say("still in the lobby").await;
    lobby_tab.next_containing("still in the lobby").await;
    bobs.say("bob stays").await;
    bobs.next_containing("bob stays").await;

    // Opening it again joins again, and the new tab stays open.
    alice.get_text("/rooms/plans").await;
    let mut back = alice.ws("plans").await;
    back.resume(0).await;
    back.say("back again").await;
    back.next_containing("back again").await;
    // Leaving again closes that one too.
    assert_eq!(
        alice.post_form("/rooms/plans/leave", &[]).await.status(),
        303
    );
    assert_eq!(
        close_frame(&mut back).await,
        (1008, "left the room".to_owned())
    );
}

#[tokio::test]
async fn an_older_database_counts_only_what_people_said_since_each_mark() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let data_dir = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let old = OldDatabase::open(&data_dir);
        let lobby = old.room("lobby", "lobby", 1_000);
        old.said(&lobby, 1, "alice", "seen", 2_000, Some("L1"));
        old.system_line(&lobby, 2, "bob joined", 3_000);
        old.said(&lobby, 3, "bob", "unread one", 4_000, None);
        old.system_line(&lobby, 4, "carol joined", 5_000);
        old.system_line(&lobby, 5, "carol left", 6_000);
        old.said(&lobby, 6, "bob", "unread two", 7_000, None);
        old.system_line(&lobby, 7, "bob left", 8_000);
        old.logged_in("alice", "L1", ALICES_SESSION);
        old.read("L1", &lobby, 2);
    })
    .await
    .unwrap();

    let app = spawn_app_in(dir, |_| {}).await;
    let home = app
        .visitor()
        .http
        .get(app.url("/"))
        .header("Cookie", format!("chat_session={ALICES_SESSION}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(badge(&home, "lobby"), Some(2), "{home}");
    let link = sidebar_link(&home, "lobby").unwrap();
    assert!(link.contains(r#"data-counted="3""#), "{link}");
    assert!(link.contains(r#"data-read-count="1""#), "{link}");
}

/// What a new user saw: two rooms made, back to the lobby, and the title read "(3) lobby"
/// with a badge on each room for their own "left" lines. Now nothing counts until someone
/// says something, and "Leave this room" is how a room goes.
#[tokio::test]
async fn in_the_browser_coming_and_going_counts_nothing_and_leaving_is_a_button() {
    use fantoccini::Locator;

    use crate::browser::{Driver, click_shown, log_in, save_screenshot, script, shown, until};

    let app = spawn_app().await;
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    log_in(&alice, &app, "alice").await;
    for name in ["design", "hiring"] {
        alice.goto(&app.url("/")).await.unwrap();
        let field = alice.find(Locator::Css("#room-name")).await.unwrap();
        field.send_keys(name).await.unwrap();
        click_shown(&alice, ".start-room button[type=submit]").await;
        shown(&alice, &format!("main.room[data-room='{name}']")).await;
    }
    click_shown(&alice, "#room-list a[data-slug='lobby']").await;
    shown(&alice, "main.room[data-room='lobby']").await;
    click_shown(&alice, "#room-list a[data-slug='design']").await;
    shown(&alice, "main.room[data-room='design']").await;
    click_shown(&alice, "#room-list a[data-slug='lobby']").await;
    shown(&alice, "main.room[data-room='lobby']").await;
    // Past the debounce that once posted "left" lines.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let quiet = script(
        &alice,
        r#"return {
             title: document.title,
             badges: [...document.querySelectorAll('#room-list .badge')].map(b => b.textContent).join(''),
             lines: [...document.querySelectorAll('.msg[data-kind=system]')].map(m => m.querySelector('.msg-body').textContent.trim()),
           };"#,
    )
    .await;
    assert_eq!(quiet["title"], "lobby · Chat", "{quiet}");
    assert_eq!(quiet["badges"], "", "{quiet}");
    assert_eq!(
        quiet["lines"],
        serde_json::json!(["alice joined"]),
        "{quiet}"
    );
    // Her own name under "Here now" is no link to a conversation with herself.
    until(
        &alice,
        "her own name marked, not linked",
        r#"const me = document.querySelector('#presence li[data-author=alice]');
           return !!me && !me.querySelector('a') && me.textContent.trim() === 'alice';"#,
    )
    .await;

    // Bob coming into design says so there, and counts for nothing; what he says counts.
    let bob = app.login("bob").await;
    bob.get_text("/rooms/design").await;
    bob.post_form("/rooms/design/messages", &[("body", "mockups are up")])
        .await;
    until(
        &alice,
        "one unread in design, and in the title",
        r#"const link = document.querySelector('#room-list a[data-slug=design]');
           return link.querySelector('.badge').textContent === '1'
               && document.title === '(1) lobby · Chat';"#,
    )
    .await;
    save_screenshot(&alice, "membership-one-unread").await;

    // Leaving hiring takes it out of the sidebar, here and in the live copies of the list.
    alice.goto(&app.url("/rooms/hiring")).await.unwrap();
    click_shown(&alice, "form.leave button").await;
    shown(&alice, ".start-room").await;
    bob.post_form("/rooms", &[("name", "later")]).await;
    until(
        &alice,
        "a live list with the new room, without the one she left",
        r#"return !!document.querySelector('#room-list a[data-slug=later]')
               && !document.querySelector('#room-list li:not([hidden]) a[data-slug=hiring]');"#,
    )
    .await;
    save_screenshot(&alice, "membership-left-hiring").await;

    // Leaving design in a second tab: the first one, still on design, says why it stopped.
    alice.goto(&app.url("/rooms/design")).await.unwrap();
    shown(&alice, "main.room[data-room='design']").await;
    let first_tab = alice.window().await.unwrap();
    let second_tab = alice.new_window(true).await.unwrap().handle;
    alice.switch_to_window(second_tab).await.unwrap();
    alice.goto(&app.url("/rooms/design")).await.unwrap();
    click_shown(&alice, "form.leave button").await;
    shown(&alice, ".start-room").await;
    alice.switch_to_window(first_tab).await.unwrap();
    let banner = shown(&alice, "#connection").await;
    assert_eq!(
        banner.text().await.unwrap(),
        "You left this room. Reload the page to join it again."
    );
    let composer_off = script(
        &alice,
        "return document.getElementById('composer-body').disabled;",
    )
    .await;
    assert_eq!(
        composer_off,
        serde_json::json!(true),
        "nothing to send into"
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(
        banner.is_displayed().await.unwrap(),
        "no reconnecting behind it"
    );
    save_screenshot(&alice, "membership-left-in-another-tab").await;
    alice.close().await.unwrap();
}
