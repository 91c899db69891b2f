//! Search: `GET /search?q=` finds people's messages in every readable room, newest first,
//! with the matching words (or the start of them a query word found) marked in escaped text
//! and links to the permalinks. The index is kept in PoloDB and follows edits, deletions,
//! restarts and upgrades from builds that indexed whole words only.

use std::sync::Arc;
use std::time::Duration;

use chat::domain::Slug;
use chat::store::{
    DATABASE_DIR, MessageKind, MessageRecord, PendingMessage, PoloStore, RoomRecord, Storage,
};
use fantoccini::Locator;
use polodb_core::bson::{Document, doc};
use polodb_core::{CollectionT, Database};
use reqwest::Method;

use crate::browser::{
    Driver, click_shown, log_in, save_screenshot, script, search_until_found, shown,
};
use crate::helpers::{
    AppData, Backend, Visitor, eventually, on_both_backends, spawn_app, spawn_app_in, spawn_app_on,
    user_message_ids,
};

/// One result as the page lists it: the permalink, and the excerpt's HTML.
#[derive(Debug)]
struct Hit {
    link: String,
    text: String,
}

async fn search(visitor: &Visitor, query: &str) -> (u16, String) {
    search_path(visitor, &format!("/search?q={}", encode(query))).await
}

async fn search_path(visitor: &Visitor, path: &str) -> (u16, String) {
    let response = visitor.get(path).await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// A message is found a moment after it is sent: searches until the page lists `count`.
async fn search_for(visitor: &Visitor, query: &str, count: usize) -> (u16, String) {
    eventually(
        || search(visitor, query),
        |(_, page)| hits(page).len() == count,
    )
    .await
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn hits(page: &str) -> Vec<Hit> {
    page.split(r#"<li class="search-hit">"#)
        .skip(1)
        .map(|item| {
            let link = between(item, r#"<a href=""#, r#"""#);
            let text = between(item, r#"<span class="hit-text">"#, "</span>\n");
            Hit {
                link: link.replace("&#x2f;", "/").replace("&#35;", "#"),
                text: text.to_owned(),
            }
        })
        .collect()
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).expect(start) + start.len();
    let to = text[from..].find(end).expect(end) + from;
    &text[from..to]
}

fn permalink(room: &str, id: u64) -> String {
    format!("/rooms/{room}/messages/{id}#msg-{id}")
}

/// Posts as a plain form (no JavaScript), which answers once the message is stored.
async fn post(visitor: &Visitor, room: &str, body: &str) {
    let response = visitor
        .post_form(&format!("/rooms/{room}/messages"), &[("body", body)])
        .await;
    assert_eq!(response.status(), 303, "posting {body:?}");
}

/// The id of the newest message of `room` from the room page.
async fn newest_id(visitor: &Visitor, room: &str) -> u64 {
    let page = visitor.get_text(&format!("/rooms/{room}")).await;
    *user_message_ids(&page).last().expect("a message")
}

on_both_backends!(
    a_word_is_found_across_rooms_newest_first_with_the_match_marked,
    edits_change_what_a_message_is_found_by,
    deleted_messages_are_not_found,
    the_index_survives_a_restart_and_keeps_growing_after_it,
    a_query_of_several_words_finds_messages_with_all_of_them,
    more_than_a_page_of_results_continues_with_an_older_results_link,
    three_letters_or_more_find_the_words_they_start_as_people_type,
    an_edited_message_is_found_by_the_prefixes_of_its_new_words_only,
    a_deleted_message_is_found_by_no_prefix,
    case_width_and_composed_accents_meet_and_chinese_is_found_character_by_character,
);

async fn a_word_is_found_across_rooms_newest_first_with_the_match_marked(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    post(&alice, "lobby", "The pineapple pizza debate is back").await;
    let older = newest_id(&alice, "lobby").await;
    assert_eq!(
        bob.post_form("/rooms", &[("name", "kitchen")])
            .await
            .status(),
        303
    );
    post(&bob, "kitchen", "PINEAPPLE on toast? Pineapple!").await;
    let newer = newest_id(&bob, "kitchen").await;
    post(&bob, "kitchen", "pine apples are not a thing").await;

    let (status, page) = search_for(&alice, "pineapple", 2).await;
    assert_eq!(status, 200);
    let found = hits(&page);
    assert_eq!(
        found.iter().map(|h| h.link.as_str()).collect::<Vec<_>>(),
        [permalink("kitchen", newer), permalink("lobby", older)],
        "both rooms, newest first, whole words only: {page}"
    );
    assert_eq!(
        found[0].text,
        "<mark>PINEAPPLE</mark> on toast? <mark>Pineapple</mark>!"
    );
    assert_eq!(
        found[1].text,
        "The <mark>pineapple</mark> pizza debate is back"
    );
    assert!(
        page.contains("#kitchen") && page.contains(">bob<"),
        "{page}"
    );
    assert!(
        page.contains(r#"value="pineapple""#),
        "the query stays in the box"
    );
    assert!(!page.contains("Older results"), "one page holds them all");

    let (_, page) = search(&alice, "mango").await;
    assert!(hits(&page).is_empty());
    assert!(page.contains("No messages have all of “mango”."), "{page}");
}

#[tokio::test]
async fn the_highlight_is_escaped_text_never_markup_from_a_message() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    post(
        &alice,
        "lobby",
        r#"<script>alert("pwned")</script> the plan is <b>bold</b> & "quoted""#,
    )
    .await;

    let (_, page) = search_for(&alice, "plan", 1).await;
    let found = hits(&page);
    assert_eq!(found.len(), 1, "{page}");
    assert_eq!(
        found[0].text,
        "&#60;script&#62;alert(&#34;pwned&#34;)&#60;/script&#62; the <mark>plan</mark> is &#60;b&#62;bold&#60;/b&#62; &#38; &#34;quoted&#34;"
    );
    assert!(!page.contains("<script>alert") && !page.contains("<b>bold"));

    let (_, page) = search(&alice, "script").await;
    assert!(
        hits(&page)[0]
            .text
            .starts_with("&#60;<mark>script</mark>&#62;alert"),
        "{page}"
    );
}

async fn edits_change_what_a_message_is_found_by(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let alice = app.login("alice").await;
    post(&alice, "lobby", "meet at the harbour at noon").await;
    let id = newest_id(&alice, "lobby").await;
    assert_eq!(hits(&search_for(&alice, "harbour", 1).await.1).len(), 1);

    let edited = alice
        .htmx(
            Method::PUT,
            &format!("/rooms/lobby/messages/{id}"),
            &[("body", "meet at the station at noon")],
        )
        .await;
    assert_eq!(edited.status(), 200);

    let (_, page) = search(&alice, "harbour").await;
    assert!(hits(&page).is_empty(), "the old word is gone: {page}");
    let found = hits(&search(&alice, "station").await.1);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].link, permalink("lobby", id));
    assert_eq!(
        hits(&search(&alice, "noon meet").await.1).len(),
        1,
        "words the edit kept still find it"
    );
}

async fn deleted_messages_are_not_found(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let alice = app.login("alice").await;
    post(&alice, "lobby", "the launch code is 1234").await;
    let secret = newest_id(&alice, "lobby").await;
    post(&alice, "lobby", "the launch is on friday").await;
    let kept = newest_id(&alice, "lobby").await;
    assert_eq!(hits(&search_for(&alice, "launch", 2).await.1).len(), 2);

    let deleted = alice
        .htmx(
            Method::DELETE,
            &format!("/rooms/lobby/messages/{secret}"),
            &[],
        )
        .await;
    assert_eq!(deleted.status(), 200);

    let found = hits(&search(&alice, "launch").await.1);
    assert_eq!(
        found.iter().map(|h| h.link.clone()).collect::<Vec<_>>(),
        [permalink("lobby", kept)]
    );
    assert!(hits(&search(&alice, "1234").await.1).is_empty());
}

async fn the_index_survives_a_restart_and_keeps_growing_after_it(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let alice = app.login("alice").await;
    post(&alice, "lobby", "remember the lighthouse").await;
    let before_restart = newest_id(&alice, "lobby").await;

    let dir = app.stop().await;
    let app = spawn_app_in(dir, |_| {}).await;
    let carol = app.login("carol").await;
    let found = hits(&search_for(&carol, "lighthouse", 1).await.1);
    assert_eq!(
        found.iter().map(|h| h.link.clone()).collect::<Vec<_>>(),
        [permalink("lobby", before_restart)]
    );

    post(&carol, "lobby", "the lighthouse again").await;
    let after_restart = newest_id(&carol, "lobby").await;
    let found = hits(&search_for(&carol, "Lighthouse", 2).await.1);
    assert_eq!(
        found.iter().map(|h| h.link.clone()).collect::<Vec<_>>(),
        [
            permalink("lobby", after_restart),
            permalink("lobby", before_restart)
        ]
    );
}

async fn a_query_of_several_words_finds_messages_with_all_of_them(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let alice = app.login("alice").await;
    post(&alice, "lobby", "a red apple").await;
    let red_apple = newest_id(&alice, "lobby").await;
    post(&alice, "lobby", "a green apple").await;
    post(&alice, "lobby", "a red car").await;
    let red_car = newest_id(&alice, "lobby").await;

    let found = hits(&search_for(&alice, "Apple, red", 1).await.1);
    assert_eq!(
        found.iter().map(|h| h.link.clone()).collect::<Vec<_>>(),
        [permalink("lobby", red_apple)]
    );
    assert_eq!(found[0].text, "a <mark>red</mark> <mark>apple</mark>");
    let found = hits(&search_for(&alice, "red", 2).await.1);
    assert_eq!(
        found.iter().map(|h| h.link.clone()).collect::<Vec<_>>(),
        [permalink("lobby", red_car), permalink("lobby", red_apple)]
    );
    assert!(hits(&search(&alice, "green car").await.1).is_empty());
}

async fn more_than_a_page_of_results_continues_with_an_older_results_link(backend: Backend) {
    let app = spawn_app_in(AppData::new(backend), |config| config.rate_limit = 0.0).await;
    let alice = app.login("alice").await;
    for n in 1..=55 {
        post(&alice, "lobby", &format!("ping number {n}")).await;
    }
    let (_, first) = eventually(
        || search(&alice, "ping"),
        |(_, page)| {
            hits(page)
                .first()
                .is_some_and(|h| h.text.ends_with("number 55"))
        },
    )
    .await;
    let first_hits = hits(&first);
    assert_eq!(first_hits.len(), 50);
    assert!(first_hits[0].text.ends_with("number 55"), "newest first");
    let more = between(&first, r#"<a class="search-more" href=""#, r#"""#).replace("&amp;", "&");
    assert!(more.starts_with("/search?q=ping&before="), "{more}");

    let (status, second) = search_path(&alice, &more).await;
    assert_eq!(status, 200);
    let older: Vec<String> = hits(&second).into_iter().map(|h| h.text).collect();
    assert_eq!(
        older,
        (1..=5)
            .rev()
            .map(|n| format!("<mark>ping</mark> number {n}"))
            .collect::<Vec<_>>()
    );
    assert!(
        !second.contains("search-more"),
        "no link past the oldest match"
    );
}

#[tokio::test]
async fn an_empty_or_overlong_query_gets_a_friendly_note_not_an_error_page() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    for query in ["", "   ", "?!…"] {
        let (status, page) = search(&alice, query).await;
        assert_eq!(status, 200, "{query:?}");
        assert!(page.contains("Type a word to search for."), "{page}");
        assert!(page.contains(r#"<form class="search-form""#));
    }
    let (_, page) = search_path(&alice, "/search").await;
    assert!(page.contains("Type a word to search for."));

    let (status, page) = search(&alice, &"word ".repeat(50)).await;
    assert_eq!(status, 422);
    assert!(
        page.contains("A search can be at most 200 characters long."),
        "{page}"
    );
    assert!(
        page.contains(r#"id="sidebar""#),
        "the normal page, with the sidebar"
    );
}

#[tokio::test]
async fn logged_out_visitors_are_sent_to_log_in() {
    let app = spawn_app().await;
    let visitor = app.visitor();
    let response = visitor.get("/search?q=secret").await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        "/login?next=/search%3Fq%3Dsecret"
    );
    // And back to the same search, query and all, once logged in.
    let form = visitor.get_text("/login?next=/search%3Fq%3Dsecret").await;
    assert!(
        form.contains(r#"name="next" value="/search?q=secret""#),
        "{form}"
    );
    let logged_in = visitor
        .post_form(
            "/login",
            &[("nickname", "alice"), ("next", "/search?q=secret")],
        )
        .await;
    assert_eq!(logged_in.headers()["location"], "/search?q=secret");
}

#[tokio::test]
async fn every_page_has_a_search_box_that_works_without_javascript() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    for path in ["/", "/rooms/lobby"] {
        let page = alice.get_text(path).await;
        let form = between(&page, r#"<form class="sidebar-search""#, "</form>");
        assert!(
            form.contains(r#"method="get" action="/search""#) && form.contains(r#"name="q""#),
            "{path}: {form}"
        );
    }
}

#[tokio::test]
async fn a_search_typed_in_the_sidebar_leads_to_the_message_highlighted_in_its_room() {
    let app = spawn_app().await;
    let bob = app.login("bob").await;
    post(&bob, "lobby", "Who took my stapler?").await;
    let stapler = newest_id(&bob, "lobby").await;
    for n in 0..60 {
        post(&bob, "lobby", &format!("filler {n}")).await;
    }
    search_for(&bob, "stapler", 1).await;
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    log_in(&alice, &app, "alice").await;

    let box_ = shown(&alice, "#sidebar-search").await;
    box_.send_keys("stapler").await.unwrap();
    box_.send_keys("\u{E007}").await.unwrap(); // Enter
    let mark = shown(&alice, ".search-hit mark").await;
    assert_eq!(mark.text().await.unwrap(), "stapler");
    tokio::time::sleep(Duration::from_millis(200)).await;
    save_screenshot(&alice, "search").await;

    alice
        .find(Locator::Css(".search-hit a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let focused = shown(&alice, &format!("#msg-{stapler}.focused")).await;
    assert!(
        focused
            .text()
            .await
            .unwrap()
            .contains("Who took my stapler?")
    );
    assert!(
        focused.is_displayed().await.unwrap(),
        "scrolled to the message, older than the newest page"
    );
    save_screenshot(&alice, "search-permalink").await;
}

/// The search page runs its own small script, without the room's: its sidebar still counts
/// what the viewer hasn't read, its times are the reader's, and it collapses.
#[tokio::test]
async fn the_search_pages_sidebar_counts_unread_messages_and_collapses() {
    let app = spawn_app().await;
    let bob = app.login("bob").await;
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    log_in(&alice, &app, "alice").await;
    alice.goto(&app.url("/rooms/lobby")).await.unwrap();
    shown(&alice, "#composer-body").await;
    alice.goto(&app.url("/")).await.unwrap();
    shown(&alice, "main.welcome").await;
    post(&bob, "lobby", "The budget is due on Friday").await;
    post(&bob, "lobby", "Budget numbers are in the sheet").await;

    search_until_found(&alice, &app, "budget", 2).await;
    let badge = shown(&alice, "#room-list a[data-slug='lobby'] .badge").await;
    assert_eq!(badge.text().await.unwrap(), "2");
    assert_eq!(
        alice.title().await.unwrap(),
        "(2) budget – Search · Chat",
        "the tab counts them too"
    );
    let times = script(
        &alice,
        "return document.querySelectorAll('.search-hit time:not([data-local])').length;",
    )
    .await;
    assert_eq!(
        times,
        serde_json::json!(0),
        "every time in the reader's format"
    );

    click_shown(&alice, "#sidebar-toggle").await;
    let collapsed = script(
        &alice,
        "return document.getElementById('app').classList.contains('sidebar-collapsed');",
    )
    .await;
    assert_eq!(collapsed, serde_json::json!(true));
    save_screenshot(&alice, "search-collapsed").await;
    alice.close().await.unwrap();
}

#[tokio::test]
async fn the_search_page_names_its_two_search_landmarks_apart() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let page = alice.get_text("/search?q=anything").await;
    let labels: Vec<&str> = page
        .split(r#"role="search""#)
        .skip(1)
        .map(|rest| {
            let at = rest.find(r#"aria-label=""#).expect("a label") + 12;
            &rest[at..at + rest[at..].find('"').unwrap()]
        })
        .collect();
    assert_eq!(labels.len(), 2, "the sidebar's and the page's");
    assert_ne!(labels[0], labels[1], "axe's landmark-unique: {labels:?}");
}

/// The permalinks of the hits of a search, once it finds `count`.
async fn links(visitor: &Visitor, query: &str, count: usize) -> Vec<String> {
    let (_, page) = search_for(visitor, query, count).await;
    hits(&page).into_iter().map(|h| h.link).collect()
}

async fn three_letters_or_more_find_the_words_they_start_as_people_type(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let alice = app.login("alice").await;
    post(&alice, "lobby", "Looking for the lobby key").await;
    let looking = newest_id(&alice, "lobby").await;
    post(&alice, "lobby", "lo and behold").await;
    let lo = newest_id(&alice, "lobby").await;

    for query in ["look", "loo", "LOOKING"] {
        let (_, page) = search_for(&alice, query, 1).await;
        let found = hits(&page);
        assert_eq!(found[0].link, permalink("lobby", looking), "{query}");
        let marked = &query.to_lowercase()[..];
        let shown = format!("<mark>{}</mark>", &"Looking"[..marked.len()]);
        assert!(
            found[0].text.starts_with(&shown),
            "{query}: {}",
            found[0].text
        );
    }
    let (_, page) = search_for(&alice, "lob key", 1).await;
    assert_eq!(
        hits(&page)[0].text,
        "Looking for the <mark>lob</mark>by <mark>key</mark>"
    );
    assert_eq!(
        links(&alice, "lo", 1).await,
        [permalink("lobby", lo)],
        "two letters find the whole word only"
    );
    assert_eq!(
        hits(&search_for(&alice, "lo", 1).await.1)[0].text,
        "<mark>lo</mark> and behold"
    );
    assert!(hits(&search(&alice, "looks").await.1).is_empty());
    assert!(
        hits(&search(&alice, "ooking").await.1).is_empty(),
        "starts, not inside"
    );
}

async fn an_edited_message_is_found_by_the_prefixes_of_its_new_words_only(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let alice = app.login("alice").await;
    post(&alice, "lobby", "meet at the harbour").await;
    let id = newest_id(&alice, "lobby").await;
    assert_eq!(links(&alice, "harb", 1).await, [permalink("lobby", id)]);

    let edited = alice
        .htmx(
            Method::PUT,
            &format!("/rooms/lobby/messages/{id}"),
            &[("body", "meet at the station")],
        )
        .await;
    assert_eq!(edited.status(), 200);

    for gone in ["har", "harb", "harbour"] {
        assert!(hits(&search(&alice, gone).await.1).is_empty(), "{gone}");
    }
    for kept in ["sta", "stati", "mee"] {
        assert_eq!(
            links(&alice, kept, 1).await,
            [permalink("lobby", id)],
            "{kept}"
        );
    }
}

async fn a_deleted_message_is_found_by_no_prefix(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let alice = app.login("alice").await;
    post(&alice, "lobby", "the launch codeword").await;
    let id = newest_id(&alice, "lobby").await;
    assert_eq!(links(&alice, "cod", 1).await, [permalink("lobby", id)]);

    let deleted = alice
        .htmx(Method::DELETE, &format!("/rooms/lobby/messages/{id}"), &[])
        .await;
    assert_eq!(deleted.status(), 200);
    for query in ["lau", "launch", "cod", "codeword", "the"] {
        assert!(hits(&search(&alice, query).await.1).is_empty(), "{query}");
    }
}

/// Writes a database as the build before prefixes left it: messages in the lobby, whole
/// words' runs in `search_runs`, the lobby marked as indexed through its last message, and
/// that build's marker (no index format).
fn write_database_from_before_prefixes(dir: &std::path::Path, bodies: &[&str]) {
    let store = PoloStore::open(dir).unwrap();
    let lobby = Slug::lobby();
    store
        .create_room(&RoomRecord::new(lobby.clone(), "lobby".into(), "", 1_000))
        .unwrap();
    let messages: Vec<PendingMessage> = (1..)
        .zip(bodies)
        .map(|(id, body)| {
            let kind = MessageKind::User;
            let at = 2_000 + id as i64;
            MessageRecord::new(
                &lobby,
                id,
                kind,
                "alice".into(),
                String::new(),
                body.to_string(),
                at,
            )
            .into()
        })
        .collect();
    store.append(&messages).unwrap();
    drop(store);

    let db = Database::open_path(dir.join(DATABASE_DIR)).unwrap();
    db.collection::<Document>("search_prefix_runs")
        .drop()
        .unwrap();
    let marks = db.collection::<Document>("search_indexed");
    marks.delete_many(doc! {}).unwrap();
    marks
        .insert_one(doc! { "_id": "#watermarks", "id": 0 })
        .unwrap();
    marks
        .insert_one(doc! { "_id": "lobby", "id": bodies.len() as i64 })
        .unwrap();
    db.collection::<Document>("search_runs")
        .insert_one(doc! { "_id": "looking#0", "low": "", "postings": "" })
        .unwrap();
}

#[tokio::test]
async fn a_database_from_before_prefixes_finds_them_after_the_upgrade() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let data_dir = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        write_database_from_before_prefixes(&data_dir, &["looking for the lighthouse", "lo"])
    })
    .await
    .unwrap();

    let app = spawn_app_in(dir, |_| {}).await;
    let alice = app.login("alice").await;
    for query in ["look", "LIGH", "looking lighthouse"] {
        assert_eq!(
            links(&alice, query, 1).await,
            [permalink("lobby", 1)],
            "{query}"
        );
    }
    assert_eq!(links(&alice, "lo", 1).await, [permalink("lobby", 2)]);

    // New messages join the rebuilt index, and a restart keeps it.
    post(&alice, "lobby", "a lookout on the lighthouse").await;
    let newer = newest_id(&alice, "lobby").await;
    let dir = app.stop().await;
    let app = spawn_app_in(dir, |_| {}).await;
    let carol = app.login("carol").await;
    assert_eq!(
        links(&carol, "ligh", 2).await,
        [permalink("lobby", newer), permalink("lobby", 1)]
    );
}

async fn case_width_and_composed_accents_meet_and_chinese_is_found_character_by_character(
    backend: Backend,
) {
    let app = spawn_app_on(backend).await;
    let alice = app.login("alice").await;
    post(&alice, "lobby", "Un CAFÉ au lait").await;
    let cafe = newest_id(&alice, "lobby").await;
    post(&alice, "lobby", "ｆｕｌｌｗｉｄｔｈ letters").await;
    let wide = newest_id(&alice, "lobby").await;
    post(&alice, "lobby", "我们在北京见面").await;
    let beijing = newest_id(&alice, "lobby").await;

    let found = |page: &str| hits(page).into_iter().map(|h| h.link).collect::<Vec<_>>();
    // A decomposed é (e and a combining accent) meets the composed one.
    assert_eq!(
        found(&search_for(&alice, "cafe\u{301}", 1).await.1),
        [permalink("lobby", cafe)]
    );
    assert_eq!(
        found(&search_for(&alice, "FULLWIDTH", 1).await.1),
        [permalink("lobby", wide)]
    );
    assert_eq!(
        found(&search_for(&alice, "北京", 1).await.1),
        [permalink("lobby", beijing)]
    );
    assert!(
        found(&search(&alice, "南京").await.1).is_empty(),
        "every character must match"
    );
}
