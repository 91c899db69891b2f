//! Storage failure: the server runs on a PoloDB store whose `append` can be switched to fail,
//! as a full disk would. The sender gets the `store_failed` error fragment, nothing is
//! broadcast, the no-JavaScript form gets 503 with the text kept, everything else keeps
//! serving, and once the store works again messages are stored and broadcast with ids that
//! continue where they were.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chat::domain::{SearchQuery, Slug};
use chat::identity::LoginEnd;
use chat::store::{
    AppendOutcome, BotRecord, ClaimRecord, DedupRecord, DirectMember, FileRecord, MessageKind,
    MessageRecord, PendingMessage, PoloStore, ReaderRecord, RoomRecord, SearchCursor, SearchPage,
    SessionRecord, Storage, StoreError, StoreResult,
};
use chat::{Application, Config};

use crate::crash::harness::{
    Event, Frame, Msg, Socket, Visitor, history, parse_frame, sequence_problems,
};
use crate::helpers::test_cluster::OwnCluster;
use crate::helpers::{ADMIN_TOKEN, AppData, Backend, eventually, sidebar_link, spawn_app_in};

/// PoloDB with a switch that makes every message write (`append`, `update_message`) fail.
struct FlakyStore {
    inner: PoloStore,
    fail_appends: AtomicBool,
    failed: AtomicU64,
}

impl Storage for FlakyStore {
    fn rooms(&self) -> StoreResult<Vec<RoomRecord>> {
        self.inner.rooms()
    }
    fn room(&self, slug: &Slug) -> StoreResult<Option<RoomRecord>> {
        self.inner.room(slug)
    }
    fn create_room(&self, room: &RoomRecord) -> StoreResult<bool> {
        self.inner.create_room(room)
    }
    fn set_topic(&self, room: &Slug, topic: &str) -> StoreResult<()> {
        self.inner.set_topic(room, topic)
    }
    fn rename_room(&self, room: &Slug, name: &str) -> StoreResult<()> {
        self.inner.rename_room(room, name)
    }
    fn set_archived(&self, room: &Slug, archived: bool) -> StoreResult<()> {
        self.inner.set_archived(room, archived)
    }
    fn set_members(&self, room: &Slug, members: &[DirectMember]) -> StoreResult<()> {
        self.inner.set_members(room, members)
    }
    fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        self.inner.setting(key)
    }
    fn put_setting(&self, key: &str, value: &str) -> StoreResult<()> {
        self.inner.put_setting(key, value)
    }
    fn append(&self, batch: &[PendingMessage]) -> StoreResult<AppendOutcome> {
        if self.fail_appends.load(Ordering::SeqCst) {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::OutOfSpace(
                "No space left on device (simulated)".into(),
            ));
        }
        self.inner.append(batch)
    }
    fn messages(&self, room: &Slug, from: u64, to: u64) -> StoreResult<Vec<MessageRecord>> {
        self.inner.messages(room, from, to)
    }
    fn rewrite(&self, messages: &[MessageRecord], rooms: &[RoomRecord]) -> StoreResult<()> {
        self.inner.rewrite(messages, rooms)
    }
    fn delete_login_sessions(&self, login_id: &str, why: LoginEnd) -> StoreResult<()> {
        self.inner.delete_login_sessions(login_id, why)
    }
    fn delete_expired_sessions(&self, now_unix: i64) -> StoreResult<u64> {
        self.inner.delete_expired_sessions(now_unix)
    }
    fn bots(&self) -> StoreResult<Vec<BotRecord>> {
        self.inner.bots()
    }
    fn create_bot(&self, bot: &BotRecord, claim: &ClaimRecord) -> StoreResult<()> {
        self.inner.create_bot(bot, claim)
    }
    fn save_bot(&self, bot: &BotRecord) -> StoreResult<()> {
        self.inner.save_bot(bot)
    }
    fn delete_bot(&self, id: &str, claim_key: Option<&str>) -> StoreResult<()> {
        self.inner.delete_bot(id, claim_key)
    }
    fn update_message(&self, message: &MessageRecord) -> StoreResult<()> {
        if self.fail_appends.load(Ordering::SeqCst) {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::OutOfSpace(
                "No space left on device (simulated)".into(),
            ));
        }
        self.inner.update_message(message)
    }
    fn search(
        &self,
        query: &SearchQuery,
        before: Option<&SearchCursor>,
        limit: usize,
        can_read: &dyn Fn(&Slug) -> bool,
    ) -> StoreResult<SearchPage> {
        self.inner.search(query, before, limit, can_read)
    }
    fn dedup_records(&self) -> StoreResult<Vec<DedupRecord>> {
        self.inner.dedup_records()
    }
    fn file(&self, hash: &str) -> StoreResult<Option<FileRecord>> {
        self.inner.file(hash)
    }
    fn put_file(&self, file: &FileRecord) -> StoreResult<()> {
        self.inner.put_file(file)
    }
    fn reader(&self, login_id: &str) -> StoreResult<Option<ReaderRecord>> {
        self.inner.reader(login_id)
    }
    fn readers(&self) -> StoreResult<Vec<ReaderRecord>> {
        self.inner.readers()
    }
    fn save_reader(&self, reader: &ReaderRecord) -> StoreResult<()> {
        self.inner.save_reader(reader)
    }
    fn claim(&self, nickname_key: &str) -> StoreResult<Option<ClaimRecord>> {
        self.inner.claim(nickname_key)
    }
    fn put_claim(&self, claim: &ClaimRecord) -> StoreResult<()> {
        self.inner.put_claim(claim)
    }
    fn delete_claim(&self, nickname_key: &str) -> StoreResult<()> {
        self.inner.delete_claim(nickname_key)
    }
    fn session(&self, id: &str) -> StoreResult<Option<SessionRecord>> {
        self.inner.session(id)
    }
    fn create_session(&self, session: &SessionRecord) -> StoreResult<bool> {
        self.inner.create_session(session)
    }
    fn save_session(&self, session: &SessionRecord) -> StoreResult<()> {
        self.inner.save_session(session)
    }
    fn delete_session(&self, id: &str) -> StoreResult<()> {
        self.inner.delete_session(id)
    }
    fn login_is_live(&self, login_id: &str, now_unix: i64) -> StoreResult<bool> {
        self.inner.login_is_live(login_id, now_unix)
    }
}

/// The next message or composer-error frame, skipping presence, typing and sidebar updates.
async fn next_frame(socket: &mut Socket) -> Frame {
    loop {
        match parse_frame(&socket.next_text().await.expect("a frame")) {
            frame if is_ambient(&frame) => continue,
            frame => return frame,
        }
    }
}

/// Presence and the like, or only system lines ("bob joined"), which are committed on their
/// own and may arrive a little after the messages around them.
fn is_ambient(frame: &Frame) -> bool {
    match frame {
        Frame::Other(_) => true,
        Frame::Append(messages) => messages.iter().all(|m| m.kind == "system"),
        _ => false,
    }
}

/// Reads frames until one holds the system line `body`: a join is committed on its own, and
/// once seen it can no longer land after the messages a test sends next.
async fn wait_for_system_line(socket: &mut Socket, body: &str) {
    loop {
        let frame = parse_frame(&socket.next_text().await.expect("a frame"));
        if let Frame::Append(messages) = frame
            && messages
                .iter()
                .any(|m| m.kind == "system" && m.body == body)
        {
            return;
        }
    }
}

/// Nothing stored is shown and no error arrives for a while (presence updates may).
async fn expect_no_messages(socket: &mut Socket, who: &str) {
    let until = tokio::time::Instant::now() + Duration::from_millis(400);
    while let Some(event) = socket
        .next_within(until.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        match event {
            Event::Text(text) => {
                if !is_ambient(&parse_frame(&text)) {
                    panic!("{who} should get nothing, got {text}");
                }
            }
            Event::Closed(code) => panic!("{who}'s socket closed ({code:?})"),
        }
    }
}

/// The user messages of the next frame that has any (system lines such as "alice joined"
/// take ids from the same sequence and are skipped here).
async fn next_user_messages(socket: &mut Socket) -> Vec<Msg> {
    loop {
        match next_frame(socket).await {
            Frame::Append(messages) => {
                let users: Vec<Msg> = messages.into_iter().filter(|m| m.kind == "user").collect();
                if !users.is_empty() {
                    return users;
                }
            }
            Frame::ErrorCleared => continue,
            other => panic!("expected appended messages, got {other:?}"),
        }
    }
}

/// The sender gets its message back and (after an error) the cleared error, in either order.
async fn sender_sees(socket: &mut Socket, cleared_too: bool) -> Msg {
    let mut message = None;
    let mut cleared = !cleared_too;
    while message.is_none() || !cleared {
        match next_frame(socket).await {
            Frame::Append(messages) => {
                let mut users: Vec<Msg> =
                    messages.into_iter().filter(|m| m.kind == "user").collect();
                if let Some(m) = users.pop() {
                    assert!(message.is_none() && users.is_empty(), "one message: {m:?}");
                    message = Some(m);
                }
            }
            Frame::ErrorCleared if !cleared => cleared = true,
            other => panic!("unexpected frame for the sender: {other:?}"),
        }
    }
    message.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_refuses_with_an_error_fragment_broadcasts_nothing_and_recovers() {
    let data_dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FlakyStore {
        inner: PoloStore::open(data_dir.path()).unwrap(),
        fail_appends: AtomicBool::new(false),
        failed: AtomicU64::new(0),
    });
    let app = Application::build_with_storage(Config::for_tests(data_dir.path()), store.clone())
        .await
        .unwrap();
    let base = format!("http://{}", app.address());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));

    let alice = Visitor::logged_in(&base, "alice").await.unwrap();
    let bob = Visitor::logged_in(&base, "bob").await.unwrap();
    // Opening the room makes bob a member, which the room says.
    history(&bob, "lobby").await.unwrap();
    let mut a = alice.socket("lobby").await.unwrap();
    let mut b = bob.socket("lobby").await.unwrap();
    a.resume(0).await.unwrap();
    b.resume(0).await.unwrap();
    wait_for_system_line(&mut a, "bob joined").await;

    a.say("before the failure", Some("ok-1")).await.unwrap();
    let first = sender_sees(&mut a, false).await;
    assert_eq!(next_user_messages(&mut b).await, vec![first.clone()]);
    let last_good = first.id;

    // The disk fills up.
    store.fail_appends.store(true, Ordering::SeqCst);
    a.say("doomed", Some("doomed-1")).await.unwrap();
    match next_frame(&mut a).await {
        Frame::Error { code, client_id } => {
            assert_eq!(code, "store_failed");
            assert_eq!(client_id.as_deref(), Some("doomed-1"));
        }
        other => panic!("expected the store_failed error fragment, got {other:?}"),
    }
    expect_no_messages(&mut b, "bob (nothing is broadcast)").await;
    expect_no_messages(&mut a, "alice (the error only)").await;

    // Without JavaScript: 503 and the room page with the error and the text kept.
    let response = alice
        .post_form(
            "/rooms/lobby/messages",
            &[("body", "kept across the failure")],
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let page = response.text().await.unwrap();
    assert!(
        page.contains(r#"<div id="composer-error" role="alert" data-error="store_failed""#),
        "{page}"
    );
    assert!(
        page.contains(">kept across the failure</textarea>"),
        "the text is kept in the composer"
    );
    expect_no_messages(&mut b, "bob (nothing is broadcast)").await;

    // The server keeps serving meanwhile: health, logins, pages, sockets (carol's "joined"
    // line can't be stored either, and is not shown).
    let health = alice.get("/healthz").await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");
    let carol = Visitor::logged_in(&base, "carol").await.unwrap();
    let shown = history(&carol, "lobby").await.unwrap();
    assert_eq!(shown.last(), Some(&first), "nothing newer is stored");
    let mut c = carol.socket("lobby").await.unwrap();
    c.resume(0).await.unwrap();
    assert_eq!(next_user_messages(&mut c).await, vec![first.clone()]);
    a.say("still failing", Some("doomed-2")).await.unwrap();
    assert!(matches!(
        next_frame(&mut a).await,
        Frame::Error { code, client_id } if code == "store_failed" && client_id.as_deref() == Some("doomed-2")
    ));
    expect_no_messages(&mut b, "bob (nothing is broadcast)").await;
    expect_no_messages(&mut c, "carol (nothing is broadcast)").await;
    assert!(
        store.failed.load(Ordering::SeqCst) >= 3,
        "the store was asked"
    );

    // The disk has room again: the resend of the refused message is stored (its client id
    // was never recorded), broadcast, and takes the next id: no gap from the failures.
    store.fail_appends.store(false, Ordering::SeqCst);
    a.say("doomed", Some("doomed-1")).await.unwrap();
    let resent = sender_sees(&mut a, true).await;
    assert_eq!(resent.id, last_good + 1, "ids continue without a gap");
    assert_eq!(resent.body, "doomed");
    assert_eq!(next_user_messages(&mut b).await, vec![resent.clone()]);
    assert_eq!(next_user_messages(&mut c).await, vec![resent.clone()]);

    b.say("after recovery", None).await.unwrap();
    let third = sender_sees(&mut b, false).await;
    assert_eq!(third.id, last_good + 2);
    assert_eq!(next_user_messages(&mut a).await, vec![third.clone()]);

    let response = alice
        .post_form(
            "/rooms/lobby/messages",
            &[("body", "kept across the failure")],
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let fourth = next_user_messages(&mut a).await;
    assert_eq!(next_user_messages(&mut b).await, fourth);
    assert_eq!(fourth.len(), 1);
    assert_eq!(fourth[0].id, last_good + 3);

    let stored = history(&carol, "lobby").await.unwrap();
    assert_eq!(sequence_problems(&stored), Vec::<String>::new());
    let users: Vec<(u64, &str)> = stored
        .iter()
        .filter(|m| m.kind == "user")
        .map(|m| (m.id, m.body.as_str()))
        .collect();
    assert_eq!(
        users,
        vec![
            (last_good, "before the failure"),
            (last_good + 1, "doomed"),
            (last_good + 2, "after recovery"),
            (last_good + 3, "kept across the failure"),
        ]
    );

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the server stops in time")
        .unwrap()
        .unwrap();
}

/// A store that can't take a snapshot (this one has no `dump`) breaks the backup's body off
/// after its 200: the subcommand fails and leaves no archive that could pass for whole.
#[tokio::test]
async fn a_backup_the_store_cannot_take_fails_and_leaves_no_archive() {
    let data_dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FlakyStore {
        inner: PoloStore::open(data_dir.path()).unwrap(),
        fail_appends: AtomicBool::new(false),
        failed: AtomicU64::new(0),
    });
    let mut config = Config::for_tests(data_dir.path());
    config.admin_token = Some(ADMIN_TOKEN.into());
    let app = Application::build_with_storage(config, store)
        .await
        .unwrap();
    let base = format!("http://{}", app.address());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));

    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("backup.tar");
    let backup = crate::operations::chat(&[
        "backup",
        "--server",
        &base,
        "--admin-token",
        ADMIN_TOKEN,
        "--out",
        out.to_str().unwrap(),
    ])
    .await;
    assert!(!backup.status.success());
    assert_eq!(std::fs::read_dir(out_dir.path()).unwrap().count(), 0);

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the server stops in time")
        .unwrap()
        .unwrap();
}

/// PostgreSQL stopped under a running server and started again (`pg_ctl stop -m fast`, as an
/// operator or a failover does it): sends meanwhile are refused with `store_failed` and the
/// text goes back to the page; the server is not ready, then is again by itself; nothing
/// acknowledged is lost, and the page's resend is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_restarted_under_a_server_refuses_sends_meanwhile_and_loses_nothing() {
    let (cluster, url) = tokio::task::spawn_blocking(OwnCluster::start)
        .await
        .unwrap();
    let cluster = Arc::new(cluster);
    let app = spawn_app_in(AppData::on_database(url), |_| {}).await;
    let base = app.url("");
    let alice = Visitor::logged_in(&base, "alice").await.unwrap();
    // Opening the room makes her a member, which the room says.
    history(&alice, "lobby").await.unwrap();
    let mut a = alice.socket("lobby").await.unwrap();
    a.resume(0).await.unwrap();
    wait_for_system_line(&mut a, "alice joined").await;
    a.say("before the restart", Some("pg-1")).await.unwrap();
    let before = sender_sees(&mut a, false).await;
    let ready = |status: u16| {
        let alice = &alice;
        async move {
            eventually(
                || async { alice.get("/readyz").await.unwrap().status() },
                |got| *got == status,
            )
            .await
        }
    };

    let stopping = cluster.clone();
    tokio::task::spawn_blocking(move || stopping.stop())
        .await
        .unwrap();
    a.say("said while it is down", Some("pg-2")).await.unwrap();
    match next_frame(&mut a).await {
        Frame::Error { code, client_id } => {
            assert_eq!(code, "store_failed");
            assert_eq!(client_id.as_deref(), Some("pg-2"));
        }
        other => panic!("expected the store_failed error fragment, got {other:?}"),
    }
    assert_eq!(
        ready(503).await,
        503,
        "not ready while the database is away"
    );
    assert_eq!(alice.get("/healthz").await.unwrap().status(), 200);

    let starting = cluster.clone();
    tokio::task::spawn_blocking(move || starting.start_again())
        .await
        .unwrap();
    assert_eq!(ready(200).await, 200, "ready again without a restart");
    // The page sends the refused text again under the same client_id.
    a.say("said while it is down", Some("pg-2")).await.unwrap();
    let resent = sender_sees(&mut a, true).await;
    a.say("after the restart", Some("pg-3")).await.unwrap();
    let after = sender_sees(&mut a, false).await;
    assert!(before.id < resent.id && resent.id < after.id);

    let stored: Vec<String> = history(&alice, "lobby")
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.kind == "user")
        .map(|m| m.body)
        .collect();
    assert_eq!(
        stored,
        [
            "before the restart",
            "said while it is down",
            "after the restart"
        ]
    );
}

/// Between the chat and PostgreSQL: passes everything through, but once armed, it passes on
/// the COMMIT of the next message append and then cuts that connection before PostgreSQL's
/// answer comes back. The messages are stored, and the chat cannot know it.
struct CommitCutter {
    addr: std::net::SocketAddr,
    armed: Arc<AtomicBool>,
}

impl CommitCutter {
    /// In front of the test cluster at `url`, which names its Unix socket's directory
    /// (percent-encoded) and port.
    async fn start(url: &str) -> CommitCutter {
        let (directory, port) = host_and_port(url).rsplit_once(':').unwrap();
        let socket = format!("{}/.s.PGSQL.{port}", directory.replace("%2F", "/"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let armed = Arc::new(AtomicBool::new(false));
        let arming = armed.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::UnixStream::connect(&socket).await.unwrap();
                tokio::spawn(cut_commit_between(client, server, arming.clone()));
            }
        });
        CommitCutter { addr, armed }
    }

    /// `url` with the cutter in place of the server.
    fn in_front_of(&self, url: &str) -> String {
        url.replacen(host_and_port(url), &self.addr.to_string(), 1)
    }
}

fn host_and_port(url: &str) -> &str {
    let at = url.rfind('@').unwrap() + 1;
    &url[at..at + url[at..].find('/').unwrap()]
}

/// Relays one connection. Messages from the client are read whole (the protocol's startup
/// messages have no type byte; every later one has), so an append's transaction is seen
/// from its `SELECT … FROM rooms … FOR UPDATE` to its `COMMIT`.
async fn cut_commit_between(
    client: tokio::net::TcpStream,
    server: tokio::net::UnixStream,
    armed: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const SSL_OR_GSS_REQUEST: [u32; 2] = [80_877_103, 80_877_104];
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let holding = Arc::new(AtomicBool::new(false));
    let held = holding.clone();
    let answers = tokio::spawn(async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = from_server.read(&mut buffer).await.unwrap_or(0);
            if read == 0 || held.load(Ordering::SeqCst) {
                return;
            }
            if to_client.write_all(&buffer[..read]).await.is_err() {
                return;
            }
        }
    });
    let mut typed = false;
    let mut appending = false;
    loop {
        let mut head = vec![0u8; if typed { 5 } else { 4 }];
        if from_client.read_exact(&mut head).await.is_err() {
            break;
        }
        let length = u32::from_be_bytes(head[head.len() - 4..].try_into().unwrap()) as usize;
        let mut body = vec![0u8; length - 4];
        if from_client.read_exact(&mut body).await.is_err() {
            break;
        }
        let text = String::from_utf8_lossy(&body);
        let commit = typed && head[0] == b'Q' && text.starts_with("COMMIT");
        let cut = commit && appending && armed.swap(false, Ordering::SeqCst);
        if typed && matches!(head[0], b'P' | b'Q') && text.contains("FROM rooms") {
            appending |= text.contains("FOR UPDATE");
        }
        if commit || (typed && head[0] == b'Q' && text.starts_with("ROLLBACK")) {
            appending = false;
        }
        if cut {
            holding.store(true, Ordering::SeqCst);
        }
        if !typed {
            let code = u32::from_be_bytes(body[..4].try_into().unwrap());
            typed = !SSL_OR_GSS_REQUEST.contains(&code);
        }
        if to_server.write_all(&head).await.is_err() || to_server.write_all(&body).await.is_err() {
            break;
        }
        if cut {
            // Long enough for the commit to be made; then both ends close.
            tokio::time::sleep(Duration::from_millis(300)).await;
            break;
        }
    }
    answers.abort();
}

/// The connection to PostgreSQL drops during a COMMIT that went through: the sender is told
/// `store_failed` (the outcome is unknown), the page's resend under the same client_id is
/// acknowledged, not stored again, and the message is shown once and stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_whose_commit_answer_is_lost_is_refused_and_its_resend_is_stored_once() {
    let data = AppData::new(Backend::Postgres);
    let url = data.database_url().unwrap().to_owned();
    let cutter = CommitCutter::start(&url).await;
    // No sweep within the test: only the resend can bring the lost commit out.
    let app = spawn_app_in(AppData::on_database(cutter.in_front_of(&url)), |config| {
        config.instance_timeout = 120.0
    })
    .await;
    // Bob has read the lobby and watches his sidebar from another room.
    let bob = Visitor::logged_in(&app.url(""), "bob").await.unwrap();
    bob.get("/rooms/lobby").await.unwrap();
    bob.post_form("/rooms", &[("name", "elsewhere")])
        .await
        .unwrap();
    let mut bobs_sidebar = bob.socket("elsewhere").await.unwrap();
    let alice = Visitor::logged_in(&app.url(""), "alice").await.unwrap();
    history(&alice, "lobby").await.unwrap();
    let mut a = alice.socket("lobby").await.unwrap();
    a.resume(0).await.unwrap();
    wait_for_system_line(&mut a, "alice joined").await;
    a.say("before the cut", Some("cut-1")).await.unwrap();
    sender_sees(&mut a, false).await;

    cutter.armed.store(true, Ordering::SeqCst);
    a.say("its answer is lost", Some("cut-2")).await.unwrap();
    let mut refused = false;
    let mut shown = 0;
    while !refused {
        match next_frame(&mut a).await {
            Frame::Error { code, client_id } => {
                assert_eq!(code, "store_failed");
                assert_eq!(client_id.as_deref(), Some("cut-2"));
                refused = true;
            }
            Frame::Append(messages) => {
                shown += messages
                    .iter()
                    .filter(|m| m.body == "its answer is lost")
                    .count();
            }
            other => panic!("unexpected frame: {other:?}"),
        }
    }
    assert!(!cutter.armed.load(Ordering::SeqCst), "the cutter cut");
    let stored = || {
        data.with_storage(|storage| {
            let messages = storage.messages(&Slug::lobby(), 1, u64::MAX).unwrap();
            messages
                .into_iter()
                .filter(|m| m.kind == MessageKind::User)
                .map(|m| m.body)
                .collect::<Vec<String>>()
        })
    };
    assert_eq!(
        eventually(stored, |bodies| bodies.len() == 2).await,
        ["before the cut", "its answer is lost"],
        "the commit went through"
    );

    // The page sends the refused text again under the same client_id: the chat finds the
    // commit, and shows it once.
    a.say("its answer is lost", Some("cut-2")).await.unwrap();
    let mut cleared = false;
    while !cleared || shown == 0 {
        match next_frame(&mut a).await {
            Frame::Append(messages) => {
                shown += messages
                    .iter()
                    .filter(|m| m.body == "its answer is lost")
                    .count();
            }
            Frame::ErrorCleared => cleared = true,
            Frame::Replace(_) => {}
            other => panic!("unexpected frame: {other:?}"),
        }
    }
    // Bob's sidebar counts it, before anything else is said in the lobby. (Its live lists
    // are the same bytes for everyone; each page works out its badges from these counts.)
    loop {
        let frame = bobs_sidebar.next_text().await.unwrap();
        if sidebar_link(&frame, "lobby").is_some_and(|link| link.contains(r#"data-counted="2""#)) {
            break;
        }
    }
    a.say("after the cut", Some("cut-3")).await.unwrap();
    let after = sender_sees(&mut a, false).await;
    assert_eq!(shown, 1, "shown once");
    assert_eq!(after.body, "after the cut");

    assert_eq!(
        stored().await,
        ["before the cut", "its answer is lost", "after the cut"]
    );
}
