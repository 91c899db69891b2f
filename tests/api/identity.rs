//! Identity is the login, not the nickname string: whoever takes a released nickname is
//! someone else, and inherits none of the earlier holder's conversations or messages. A
//! nickname claim is one atomic step. Data from before logins were recorded is upgraded
//! without losing anything, and without handing it to today's holder of a name.

use std::sync::Arc;

use chat::domain::{Nickname, Slug};
use chat::identity::login_handle;
use chat::store::{
    Appended, ClaimRecord, MessageKind, MessageRecord, PendingMessage, PoloStore, RoomRecord,
    SessionRecord, Storage,
};
use futures_util::future::join_all;
use reqwest::Method;

use crate::bots::{Api, make_bot};
use crate::helpers::{
    ADMIN_TOKEN, AppData, Backend, Visitor, eventually, on_both_backends, spawn_app, spawn_app_in,
    spawn_app_on, user_message_ids, viewer_login,
};

/// `data-login` of message `id` in a page.
fn login_of(page: &str, id: u64) -> String {
    let at = page
        .find(&format!(r#"id="msg-{id}""#))
        .unwrap_or_else(|| panic!("msg-{id} in the page"));
    let tag = &page[at..at + page[at..].find('>').unwrap()];
    let value = &tag[tag.find(r#"data-login=""#).expect("data-login") + 12..];
    value[..value.find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn a_later_holder_of_a_nickname_inherits_nothing_of_the_earlier_one() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;

    let said = bob
        .post_form("/rooms/lobby/messages", &[("body", "bob was here")])
        .await;
    assert_eq!(said.status(), 303);
    let lobby = bob.get_text("/rooms/lobby").await;
    let id = *user_message_ids(&lobby).last().unwrap();
    let first_bob = viewer_login(&lobby);
    assert_eq!(
        login_of(&lobby, id),
        first_bob,
        "his message carries his login"
    );

    let asked = alice
        .post_form("/rooms/lobby/messages", &[("body", "@bob are you there?")])
        .await;
    assert_eq!(asked.status(), 303);
    let dm = bob.message_directly("alice", "our secret plan").await;
    assert!(dm.starts_with("dm~"), "{dm}");
    assert_eq!(bob.post_form("/logout", &[]).await.status(), 303);

    let mallory = app.login("bob").await;
    let page = mallory.get_text("/rooms/lobby").await;
    assert_ne!(viewer_login(&page), first_bob, "a new login");
    // What mentioned the first bob still names him, not the new one.
    assert!(page.contains(&format!(r#"data-mentions="{first_bob}""#)));
    assert!(!page.contains(&format!(r#"data-mentions="{}""#, viewer_login(&page))));
    assert_eq!(
        login_of(&page, id),
        first_bob,
        "the message stays the first bob's"
    );
    assert!(
        page.contains(r#"data-author="bob""#),
        "and keeps the name it was sent under"
    );

    // None of the first bob's conversation: not by its path, search, socket or sidebar.
    let room = format!("/rooms/{dm}");
    assert_eq!(mallory.get(&room).await.status(), 404);
    assert_eq!(
        mallory
            .post_form(&format!("{room}/messages"), &[("body", "me again")])
            .await
            .status(),
        404
    );
    assert_eq!(
        mallory.try_ws(&dm, Some(&app.origin())).await.err(),
        Some(404)
    );
    assert!(!mallory.get_text("/").await.contains(&dm));
    let link = format!("/rooms/{dm}/messages/");
    let found = |page: &String| page.contains(&link);
    assert!(
        found(&eventually(|| alice.get_text("/search?q=secret"), found).await),
        "alice still finds it"
    );
    assert!(!found(&mallory.get_text("/search?q=secret").await));
    let their_bot = Api::new(&app, &make_bot(&mallory, "mallorys-bot").await);
    assert_eq!(
        their_bot.read(&dm, "?after=0").await.status(),
        404,
        "nor by the API"
    );

    // Opening /dm/alice starts a new, empty conversation; it doesn't reach the old one.
    let fresh = mallory.get_text("/dm/alice").await;
    assert!(!fresh.contains("our secret plan"));
    let new_dm = mallory.message_directly("alice", "hi, new here").await;
    assert_ne!(new_dm, dm);
    let alices_sidebar = alice.get_text("/").await;
    assert!(alices_sidebar.contains(&dm) && alices_sidebar.contains(&new_dm));
    // To alice, the first bob is marked as a former holder of the name; the new one is bob.
    let entry = |slug: &str| {
        let at = alices_sidebar
            .find(&format!(r#"data-slug="{slug}""#))
            .unwrap();
        alices_sidebar[at..at + alices_sidebar[at..].find("</a>").unwrap()].to_owned()
    };
    assert!(entry(&dm).contains(r#"<span class="room-name">bob (former holder)</span>"#));
    assert!(entry(&new_dm).contains(r#"<span class="room-name">bob</span>"#));
    assert!(
        alice
            .get_text(&format!("/rooms/{dm}"))
            .await
            .contains("<title>bob (former holder) · Chat</title>")
    );

    // Nor can they change the first bob's message.
    let message = format!("/rooms/lobby/messages/{id}");
    assert_eq!(mallory.get(&format!("{message}/edit")).await.status(), 403);
    let edit = mallory
        .htmx(Method::PUT, &message, &[("body", "bob was wrong")])
        .await;
    assert_eq!(edit.status(), 403);
    let delete = mallory.htmx(Method::DELETE, &message, &[]).await;
    assert_eq!(delete.status(), 403);
    assert!(
        alice
            .get_text("/rooms/lobby")
            .await
            .contains("bob was here")
    );
}

#[tokio::test]
async fn opening_a_conversation_changes_nothing_until_the_first_message() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;

    let page = alice.get_text("/dm/bob").await;
    assert!(
        page.contains(r#"action="/dm/bob""#),
        "a composer for the first message"
    );
    assert!(
        !bob.get_text("/").await.contains("dm~"),
        "bob is told nothing"
    );
    assert!(!alice.get_text("/").await.contains("dm~"));

    let empty = alice.post_form("/dm/bob", &[("body", "   ")]).await;
    assert_eq!(empty.status(), 422);
    assert!(!bob.get_text("/").await.contains("dm~"));

    let dm = alice.message_directly("bob", "hello bob").await;
    let bobs = bob.get_text(&format!("/rooms/{dm}")).await;
    assert!(bobs.contains("hello bob"));
    assert!(
        !bobs.contains("room created by"),
        "no line about the room itself"
    );
    // Opening it again goes to the same conversation.
    let again = alice.get("/dm/bob").await;
    assert_eq!(again.status(), 303);
    assert_eq!(again.headers()["location"], format!("/rooms/{dm}").as_str());
}

on_both_backends!(
    logins_racing_for_one_nickname_leave_exactly_one_holder,
    a_protected_nickname_survives_logout_and_comes_back_with_its_password,
);

async fn logins_racing_for_one_nickname_leave_exactly_one_holder(backend: Backend) {
    let app = spawn_app_on(backend).await;
    for round in 0..4 {
        let nickname = format!("racer{round}");
        let visitors: Vec<_> = (0..8).map(|_| app.visitor()).collect();
        let form = [("nickname", nickname.as_str())];
        let answers = join_all(visitors.iter().map(|v| v.post_form("/login", &form))).await;
        let statuses: Vec<u16> = answers.iter().map(|a| a.status().as_u16()).collect();
        assert_eq!(
            statuses.iter().filter(|&&s| s == 303).count(),
            1,
            "round {round}: {statuses:?}"
        );
        assert!(
            statuses.iter().all(|&s| s == 303 || s == 422),
            "{statuses:?}"
        );
    }
}

/// A database as a build from before logins wrote it: rooms, messages and direct
/// conversations named by nickname only, resend records keyed `{login}/{client_id}`, and no
/// data version.
pub(crate) struct OldDatabase(PoloStore);

impl OldDatabase {
    pub(crate) fn open(dir: &std::path::Path) -> OldDatabase {
        OldDatabase(PoloStore::open(dir).unwrap())
    }

    /// Room `slug` (a named room's, or `dm~a~b` named "a & b"), created at `at`.
    pub(crate) fn room(&self, slug: &str, name: &str, at: i64) -> Slug {
        let slug = Slug::parse(slug).unwrap();
        let record = RoomRecord::new(slug.clone(), name.into(), "", at);
        self.0.create_room(&record).unwrap();
        slug
    }

    /// Message `id` of `room`, by `author` at `at`; with `sent_by`, as that login sent it with
    /// a client id, which leaves a resend record naming the login.
    pub(crate) fn said(
        &self,
        room: &Slug,
        id: u64,
        author: &str,
        body: &str,
        at: i64,
        sent_by: Option<&str>,
    ) {
        let client_id = format!("{room}-{id}");
        let message = MessageRecord {
            client_id: sent_by.map(|_| client_id.clone()),
            ..MessageRecord::new(
                room,
                id,
                MessageKind::User,
                author.into(),
                String::new(),
                body.into(),
                at,
            )
        };
        self.append(message, sent_by);
    }

    /// System line `id` of `room` ("alice joined"), at `at`.
    pub(crate) fn system_line(&self, room: &Slug, id: u64, body: &str, at: i64) {
        let actor = body.split(' ').next().unwrap_or_default().to_owned();
        let message = MessageRecord::new(
            room,
            id,
            MessageKind::System,
            actor,
            String::new(),
            body.into(),
            at,
        );
        self.append(message, None);
    }

    /// `login` has read `room` up to message `id`.
    pub(crate) fn read(&self, login: &str, room: &Slug, id: i64) {
        let mut reader = self.0.reader(login).unwrap().unwrap_or_default();
        reader.login_id = login.into();
        reader.last_read.insert(room.to_string(), id);
        self.0.save_reader(&reader).unwrap();
    }

    /// Stores `message` under its own id (the next of its room: the fixture's ids are dense).
    fn append(&self, message: MessageRecord, sent_by: Option<&str>) {
        let id = message.id as u64;
        let client_id = message.client_id.clone().unwrap_or_default();
        let pending = PendingMessage {
            record: message,
            dedup_key: sent_by.map(|login| format!("{login}/{client_id}")),
            webhooks: Vec::new(),
        };
        let outcome = self.0.append(&[pending]).unwrap();
        assert_eq!(outcome.appended, [Appended::Stored(id)]);
    }

    /// `nickname` held by `login`, logged in now with the session `session_id` (a session id
    /// as tower-sessions writes them: 16 bytes in URL-safe base64).
    pub(crate) fn logged_in(&self, nickname: &str, login: &str, session_id: &str) {
        let name = Nickname::parse(nickname).unwrap();
        self.0
            .put_claim(&ClaimRecord::new(&name, login.into()))
            .unwrap();
        self.0
            .create_session(&SessionRecord {
                id: session_id.into(),
                login_id: Some(login.into()),
                data: format!(r#"{{"user":{{"nickname":"{nickname}","login_id":"{login}"}}}}"#),
                expires_at: time::OffsetDateTime::now_utc().unix_timestamp() + 3600,
            })
            .unwrap();
    }
}

/// Two session ids as an older build stored them; the cookie holds the id.
pub(crate) const ALICES_SESSION: &str = "AAAAAAAAAAAAAAAAAAAAAQ";
const BOBS_SESSION: &str = "AAAAAAAAAAAAAAAAAAAAAg";

/// Writes a database as a build from before logins left it: a message and a direct
/// conversation of alice's, and nobody logged in.
fn write_old_database(dir: &std::path::Path) {
    let old = OldDatabase::open(dir);
    let lobby = old.room("lobby", "lobby", 1_000);
    let dm = old.room("dm~alice~bob", "alice & bob", 1_000);
    old.said(&lobby, 1, "alice", "old hello from alice", 2_000, None);
    old.said(&dm, 1, "alice", "old secret for bob", 2_000, None);
}

/// What a person logging in as `nickname` today finds of the old alice's things; returns
/// the login her old message belongs to.
async fn check_upgraded(app: &crate::helpers::TestApp, nickname: &str) -> String {
    let today = app.login(nickname).await;
    let lobby = today.get_text("/rooms/lobby").await;
    assert!(lobby.contains("old hello from alice"), "nothing is lost");
    let old_login = login_of(&lobby, 1);
    assert!(!old_login.is_empty(), "the old message has a login now");
    assert_ne!(
        old_login,
        viewer_login(&lobby),
        "a former holder's, not hers"
    );
    assert_eq!(
        today.get("/rooms/lobby/messages/1/edit").await.status(),
        403
    );
    assert_eq!(today.get("/rooms/dm~alice~bob").await.status(), 404);
    assert!(!today.get_text("/").await.contains("dm~alice~bob"));
    old_login
}

#[tokio::test]
async fn a_database_from_before_logins_is_upgraded_at_first_open() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let data_dir = dir.path().to_owned();
    tokio::task::spawn_blocking(move || write_old_database(&data_dir))
        .await
        .unwrap();
    let app = spawn_app_in(dir.clone(), |_| {}).await;
    let former = check_upgraded(&app, "alice").await;
    // Upgraded once: a restart finds it done, and the former holder stays who it was.
    let dir = app.stop().await;
    let app = spawn_app_in(dir, |_| {}).await;
    assert_eq!(check_upgraded(&app, "bob").await, former);
}

#[tokio::test]
async fn a_backup_from_before_logins_is_upgraded_when_restored() {
    let old = tempfile::tempdir().unwrap();
    let archive = old.path().join("old.tar");
    let (old_dir, archive_path) = (old.path().join("data"), archive.clone());
    tokio::task::spawn_blocking(move || {
        write_old_database(&old_dir);
        let store = PoloStore::open(&old_dir).unwrap();
        let snapshot = chat::ops::archive::snapshot(&store, &old_dir).unwrap();
        let out = std::fs::File::create(&archive_path).unwrap();
        chat::ops::archive::write_archive(snapshot, &old_dir, out).unwrap();
    })
    .await
    .unwrap();

    let restored = Arc::new(tempfile::tempdir().unwrap());
    let output = crate::operations::chat(&[
        "restore",
        "--in",
        archive.to_str().unwrap(),
        "--data-dir",
        restored.path().to_str().unwrap(),
    ])
    .await;
    assert!(output.status.success(), "{output:?}");
    let app = spawn_app_in(restored, |_| {}).await;
    check_upgraded(&app, "alice").await;
}

/// Protects the visitor's nickname with `password` from the settings page.
async fn protect(visitor: &Visitor, password: &str) {
    let form = [("password", password), ("confirm", password)];
    let protected = visitor.post_form("/settings/nickname", &form).await;
    assert_eq!(protected.status(), 200);
    assert!(protected.text().await.unwrap().contains("data-protected"));
}

async fn a_protected_nickname_survives_logout_and_comes_back_with_its_password(backend: Backend) {
    let app = spawn_app_in(AppData::new(backend), |config| {
        config.admin_token = Some(ADMIN_TOKEN.into())
    })
    .await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let dm = bob
        .message_directly("alice", "kept behind a password")
        .await;
    let before = viewer_login(&bob.get_text("/").await);

    let mismatch = bob
        .post_form(
            "/settings/nickname",
            &[("password", "correct horse"), ("confirm", "correct hose")],
        )
        .await;
    assert_eq!(mismatch.status(), 422);
    protect(&bob, "correct horse").await;
    assert_eq!(bob.post_form("/logout", &[]).await.status(), 303);

    // Logged out, the name is still not free: it asks for the password.
    let mallory = app.visitor();
    let asked = mallory.post_form("/login", &[("nickname", "bob")]).await;
    assert_eq!(asked.status(), 422);
    assert!(asked.text().await.unwrap().contains(r#"name="password""#));
    let wrong = mallory
        .post_form(
            "/login",
            &[("nickname", "bob"), ("password", "battery staple")],
        )
        .await;
    assert_eq!(wrong.status(), 422);
    assert_eq!(mallory.get("/").await.status(), 303, "still logged out");

    // The password returns to the same login, with its conversation.
    let back = app.visitor();
    let logged_in = back
        .post_form(
            "/login",
            &[("nickname", "BOB"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(logged_in.status(), 303);
    assert_eq!(viewer_login(&back.get_text("/").await), before);
    assert!(
        back.get_text(&format!("/rooms/{dm}"))
            .await
            .contains("kept behind a password")
    );
    let again = back.get("/dm/alice").await;
    assert_eq!(again.headers()["location"], format!("/rooms/{dm}").as_str());

    // An admin can release it (the answer to a forgotten password): then it is a new person's.
    let admin = app.login("carol").await;
    let redeemed = admin.post_form("/admin", &[("token", ADMIN_TOKEN)]).await;
    assert_eq!(redeemed.status(), 303);
    let removed = admin
        .post_form("/rooms/lobby/admin/kick", &[("nickname", "bob")])
        .await;
    assert_eq!(removed.status(), 303);
    let newcomer = app.login("bob").await;
    assert_ne!(viewer_login(&newcomer.get_text("/").await), before);
    assert_eq!(newcomer.get(&format!("/rooms/{dm}")).await.status(), 404);
    assert!(
        alice
            .get_text(&format!("/rooms/{dm}"))
            .await
            .contains("kept behind")
    );
}

#[tokio::test]
async fn wrong_passwords_are_throttled_per_nickname_and_per_address() {
    let app = spawn_app().await;
    let bob = app.login("bob").await;
    protect(&bob, "correct horse").await;
    bob.post_form("/logout", &[]).await;

    let guesser = app.visitor();
    let mut statuses = Vec::new();
    for n in 0..12 {
        let password = format!("guess number {n}");
        let answer = guesser
            .post_form(
                "/login",
                &[("nickname", "bob"), ("password", password.as_str())],
            )
            .await;
        statuses.push(answer.status().as_u16());
    }
    assert!(statuses.starts_with(&[422; 10]), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // From another address the nickname's own budget is spent too, even for the right one.
    let elsewhere = app.visitor_from("127.0.0.2".parse::<std::net::IpAddr>().unwrap());
    let refused = elsewhere
        .post_form(
            "/login",
            &[("nickname", "bob"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(refused.status(), 429);
}

#[tokio::test]
async fn an_upgrade_gives_a_logged_in_holder_what_they_provably_wrote() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let data_dir = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let old = OldDatabase::open(&data_dir);
        let lobby = old.room("lobby", "lobby", 1_000);
        old.room("dm~alice~bob", "alice & bob", 1_500);
        old.room("dm~alice~carol", "alice & carol", 3_500);
        // Alice's login "L1" is still logged in and holds her name; a resend record shows
        // it wrote message 2 (at 3,000), but nothing shows it wrote message 1 (at 2,000).
        old.said(&lobby, 1, "alice", "before", 2_000, None);
        old.said(&lobby, 2, "alice", "after", 3_000, Some("L1"));
        old.logged_in("alice", "L1", ALICES_SESSION);
    })
    .await
    .unwrap();
    let (lobby, dm_before, dm_after) = (
        Slug::lobby(),
        Slug::parse("dm~alice~bob").unwrap(),
        Slug::parse("dm~alice~carol").unwrap(),
    );

    let app = spawn_app_in(dir, |_| {}).await;
    let dir = app.stop().await;
    let data_dir = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let store = PoloStore::open(&data_dir).unwrap();
        let alice = login_handle("L1");
        let messages = store.messages(&lobby, 1, 2).unwrap();
        assert_ne!(
            messages[0].login, alice,
            "not provably hers: a former holder's"
        );
        assert_eq!(messages[1].login, alice, "written by her login: hers");
        let rooms = store.rooms().unwrap();
        let members = |slug: &Slug| {
            let room = rooms.iter().find(|r| r.slug == *slug).unwrap();
            room.members
                .iter()
                .map(|m| m.login.clone())
                .collect::<Vec<_>>()
        };
        assert!(
            !members(&dm_before).contains(&alice),
            "begun before her login was"
        );
        assert!(members(&dm_after).contains(&alice), "begun after: hers");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_conversation_from_before_the_upgrade_is_found_by_its_two_logins() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let data_dir = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let old = OldDatabase::open(&data_dir);
        let lobby = old.room("lobby", "lobby", 1_000);
        let dm = old.room("dm~alice~bob", "alice & bob", 5_000);
        // Both logins wrote in the lobby before the conversation began.
        old.said(&lobby, 1, "alice", "alice says hi", 2_000, Some("L1"));
        old.said(&lobby, 2, "bob", "bob says hi", 3_000, Some("L2"));
        old.said(&dm, 1, "alice", "just us two", 6_000, None);
        old.logged_in("alice", "L1", ALICES_SESSION);
        old.logged_in("bob", "L2", BOBS_SESSION);
    })
    .await
    .unwrap();

    let app = spawn_app_in(dir, |_| {}).await;
    let as_alice = |path: &str| {
        app.visitor()
            .http
            .get(app.url(path))
            .header("Cookie", format!("chat_session={ALICES_SESSION}"))
            .send()
    };
    // Both were logged in before the conversation began: it is theirs, and /dm finds it.
    let opened = as_alice("/dm/bob").await.unwrap();
    assert_eq!(opened.status(), 303);
    assert_eq!(opened.headers()["location"], "/rooms/dm~alice~bob");
    let page = as_alice("/rooms/dm~alice~bob").await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("just us two"));
}
