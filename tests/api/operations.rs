//! Operations: `/metrics`, and the `backup`, `restore` and `export` subcommands of the real
//! binary, against a running server and against a stopped data directory.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::crash::server_bin;
use crate::helpers::{
    ADMIN_TOKEN, AppData, Backend, TestApp, Visitor, WAIT, eventually, on_both_backends, sample,
    scrape, sidebar_badge, spawn_app_in, spawn_app_on, user_message_ids,
};

async fn spawn_ops_app() -> TestApp {
    spawn_ops_app_on(Backend::PoloDb).await
}

async fn spawn_ops_app_on(backend: Backend) -> TestApp {
    spawn_app_in(AppData::new(backend), |config| {
        config.admin_token = Some(ADMIN_TOKEN.into())
    })
    .await
}

/// Runs the chat binary with `args`; `CHAT_*` variables from the environment are left out.
pub async fn chat(args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(server_bin());
    command.args(args).kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CHAT_") {
            command.env_remove(name);
        }
    }
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the subcommand finishes in time")
        .expect("the binary runs")
}

fn succeeded(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn path_arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `GET path` with an `Authorization` header, if any.
async fn get_as(app: &TestApp, path: &str, bearer: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(app.url(path)).timeout(WAIT);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// Scrapes until the sample satisfies `wanted`; panics after `WAIT`.
async fn wait_for_sample(app: &TestApp, name: &str, wanted: impl Fn(f64) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let value = sample(&scrape(app).await, name);
        if wanted(value) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} stays {value}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Posts as a plain form, which answers once the message is stored.
async fn post(visitor: &Visitor, room: &str, body: &str) {
    let response = visitor
        .post_form(&format!("/rooms/{room}/messages"), &[("body", body)])
        .await;
    assert_eq!(response.status(), 303, "posting {body:?}");
}

/// A room's history through the export endpoint: one JSON value per line.
async fn exported(app: &TestApp, room: &str) -> Vec<Value> {
    let response = get_as(app, &format!("/ops/rooms/{room}/export"), Some(ADMIN_TOKEN)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    json_lines(&response.text().await.unwrap())
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn id_and_body(message: &Value) -> (u64, String) {
    (
        message["id"].as_u64().unwrap(),
        message["body"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn metrics_count_persisted_and_delivered_messages_and_open_sockets() {
    let app = spawn_ops_app().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    alice.post_form("/rooms", &[("name", "metered")]).await;
    let mut alice_ws = alice.ws("metered").await;
    alice_ws.resume(0).await;
    alice_ws.next_containing("room created by alice").await;
    bob.get_text("/rooms/metered").await;
    let mut bob_ws = bob.ws("metered").await;
    bob_ws.resume(0).await;
    // Published (and counted) before anyone is shown it; once bob has it, he is subscribed.
    alice_ws.next_containing("bob joined").await;
    bob_ws.next_containing("bob joined").await;

    let before = scrape(&app).await;
    assert_eq!(sample(&before, "chat_sockets"), 2.0);
    for body in ["one", "two", "three"] {
        alice_ws.say(body).await;
    }
    for ws in [&mut alice_ws, &mut bob_ws] {
        ws.next_containing("three").await;
    }
    let after = scrape(&app).await;

    let delta = |name| sample(&after, name) - sample(&before, name);
    assert_eq!(delta("chat_messages_persisted_total"), 3.0);
    assert_eq!(
        delta("chat_messages_delivered_total"),
        6.0,
        "3 messages × 2 sockets"
    );
    assert_eq!(delta("chat_store_commit_batch_size_sum"), 3.0);
    assert!(delta("chat_store_commit_seconds_count") >= 1.0);
    // Recorded once the whole batch is out, which may be just after a socket got it.
    let fanouts = sample(&before, "chat_fanout_latency_seconds_count");
    wait_for_sample(&app, "chat_fanout_latency_seconds_count", |n| n > fanouts).await;
    // Rooms: lobby and metered.
    assert_eq!(sample(&after, "chat_rooms"), 2.0);
    assert!(
        after.contains("# TYPE chat_fanout_latency_seconds histogram"),
        "{after}"
    );
    assert!(
        after.contains("# HELP chat_messages_delivered_total"),
        "{after}"
    );

    drop(bob_ws);
    wait_for_sample(&app, "chat_sockets", |n| n == 1.0).await;
}

#[tokio::test]
async fn operations_endpoints_need_the_admin_token() {
    let paths = ["/metrics", "/ops/backup", "/ops/rooms/lobby/export"];
    let without_token = spawn_app_on(Backend::PoloDb).await;
    for path in paths {
        let response = get_as(&without_token, path, Some(ADMIN_TOKEN)).await;
        assert_eq!(response.status(), 404, "{path} without a configured token");
    }

    let app = spawn_ops_app().await;
    for path in paths {
        assert_eq!(get_as(&app, path, None).await.status(), 401, "{path}");
        let wrong = get_as(&app, path, Some("a-long-random-admin-tokeN")).await;
        assert_eq!(wrong.status(), 401, "{path} with a wrong token");
        let shorter = get_as(&app, path, Some("a-long")).await;
        assert_eq!(shorter.status(), 401, "{path} with a prefix of the token");
        assert_eq!(
            get_as(&app, path, Some(ADMIN_TOKEN)).await.status(),
            200,
            "{path}"
        );
    }
    let unknown = get_as(&app, "/ops/rooms/nowhere/export", Some(ADMIN_TOKEN)).await;
    assert_eq!(unknown.status(), 404);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("refused.tar");
    let origin = app.origin();
    for token in ["wrong", ""] {
        let refused = chat(&[
            "backup",
            "--server",
            &origin,
            "--admin-token",
            token,
            "--out",
            path_arg(&out),
        ])
        .await;
        assert!(!refused.status.success(), "a backup with token {token:?}");
        assert!(!out.exists(), "no archive is left behind");
    }
    let no_token = chat(&["backup", "--server", &origin, "--out", path_arg(&out)]).await;
    assert!(!no_token.status.success());
    assert!(
        String::from_utf8_lossy(&no_token.stderr).contains("admin token"),
        "{}",
        String::from_utf8_lossy(&no_token.stderr)
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Posts numbered messages until told to stop; returns the bodies acknowledged.
async fn keep_posting(
    visitor: Visitor,
    prefix: &'static str,
    stop: Arc<AtomicBool>,
) -> Vec<String> {
    let mut acknowledged = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let body = format!("{prefix}-{n}");
        post(&visitor, "busy", &body).await;
        acknowledged.push(body);
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_servers_backup_restores_what_was_acknowledged_and_nothing_half() {
    let app = spawn_ops_app().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    alice.post_form("/rooms", &[("name", "busy")]).await;
    post(&alice, "busy", "the zebra crossing").await;
    for n in 1..=20 {
        post(&alice, "busy", &format!("before-{n}")).await;
    }
    let acknowledged_before = exported(&app, "busy").await;
    let alice_cookie = alice.cookie().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let posters = [
        tokio::spawn(keep_posting(alice, "alice", stop.clone())),
        tokio::spawn(keep_posting(bob, "bob", stop.clone())),
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("running.tar");
    let backup = chat(&[
        "backup",
        "--server",
        &app.origin(),
        "--admin-token",
        ADMIN_TOKEN,
        "--out",
        path_arg(&archive),
    ])
    .await;
    succeeded(&backup, "backup");
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let mut during = 0;
    for poster in posters {
        during += poster.await.unwrap().len();
    }
    assert!(during > 0, "messages were posted while the backup ran");
    let original = exported(&app, "busy").await;

    let restored_dir = Arc::new(tempfile::tempdir().unwrap());
    let restore = chat(&[
        "restore",
        "--in",
        path_arg(&archive),
        "--data-dir",
        path_arg(restored_dir.path()),
    ])
    .await;
    succeeded(&restore, "restore");
    let restored_app = spawn_app_in(restored_dir, |config| {
        config.admin_token = Some(ADMIN_TOKEN.into())
    })
    .await;
    let restored = exported(&restored_app, "busy").await;

    eprintln!(
        "{} messages before the backup, {} in the backup, {} in the end",
        acknowledged_before.len(),
        restored.len(),
        original.len()
    );
    // Everything acknowledged before the backup began, with the same ids.
    let restored_ids: BTreeSet<(u64, String)> = restored.iter().map(id_and_body).collect();
    for message in &acknowledged_before {
        assert!(restored_ids.contains(&id_and_body(message)), "{message}");
    }
    // One point in time: exactly the history up to some message, no gaps, nothing half.
    assert!(restored.len() >= acknowledged_before.len());
    assert_eq!(restored[..], original[..restored.len()]);

    // The session survived, and ids go on after the newest restored one.
    let again = restored_app.visitor();
    let response = again
        .http
        .post(restored_app.url("/rooms/busy/messages"))
        .header("Cookie", &alice_cookie)
        .header("Origin", restored_app.origin())
        .form(&[("body", "after the restore")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "alice is still logged in");
    let newest = restored.last().unwrap()["id"].as_u64().unwrap();
    let page = again
        .http
        .get(restored_app.url("/rooms/busy"))
        .header("Cookie", &alice_cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(user_message_ids(&page).last(), Some(&(newest + 1)));
    assert!(page.contains("after the restore"));

    // Search finds what it found before.
    let search = eventually(
        || async {
            again
                .http
                .get(restored_app.url("/search?q=zebra"))
                .header("Cookie", &alice_cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
                .replace("&#x2f;", "/")
                .replace("&#35;", "#")
        },
        |page| page.contains("/rooms/busy/messages/2#msg-2"),
    )
    .await;
    assert!(search.contains("/rooms/busy/messages/2#msg-2"), "{search}");
}

#[tokio::test]
async fn a_stopped_data_dirs_backup_round_trips_with_its_files_and_restore_wants_an_empty_dir() {
    let app = spawn_ops_app().await;
    let alice = app.login("alice").await;
    alice.post_form("/rooms", &[("name", "quiet")]).await;
    for body in ["first", "second", "third"] {
        post(&alice, "quiet", body).await;
    }
    let attachment = app.data.path().join("files/ab/ab12cd");
    std::fs::create_dir_all(attachment.parent().unwrap()).unwrap();
    std::fs::write(&attachment, b"\x89PNG not really").unwrap();
    let history = exported(&app, "quiet").await;
    assert_eq!(history.len(), 4, "room created, and three messages");

    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("stopped.tar");
    let data_dir = path_arg(app.data.path()).to_owned();
    let locked = chat(&[
        "backup",
        "--data-dir",
        &data_dir,
        "--out",
        path_arg(&archive),
    ])
    .await;
    assert!(
        !locked.status.success(),
        "a running server's directory is locked"
    );
    assert!(!archive.exists());

    let stopped = app.stop().await;
    let backup = chat(&[
        "backup",
        "--data-dir",
        &data_dir,
        "--out",
        path_arg(&archive),
    ])
    .await;
    succeeded(&backup, "backup of a stopped data dir");

    let restored_dir = Arc::new(tempfile::tempdir().unwrap());
    let target = path_arg(restored_dir.path()).to_owned();
    let restore = chat(&["restore", "--in", path_arg(&archive), "--data-dir", &target]).await;
    succeeded(&restore, "restore");
    assert_eq!(
        std::fs::read(restored_dir.path().join("files/ab/ab12cd")).unwrap(),
        b"\x89PNG not really"
    );

    // A cut-short archive is refused, and leaves nothing behind to be forced over.
    let cut = dir.path().join("cut.tar");
    let whole = std::fs::read(&archive).unwrap();
    // The manifest's header and block, the database's header, and part of the database.
    std::fs::write(&cut, &whole[..3 * 512 + 100]).unwrap();
    let empty = tempfile::tempdir().unwrap();
    let damaged = chat(&[
        "restore",
        "--in",
        path_arg(&cut),
        "--data-dir",
        path_arg(empty.path()),
    ])
    .await;
    assert!(!damaged.status.success());
    assert!(
        String::from_utf8_lossy(&damaged.stderr).contains("ends early"),
        "{}",
        String::from_utf8_lossy(&damaged.stderr)
    );
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);

    // Not into a directory that holds something, unless forced.
    let refused = chat(&["restore", "--in", path_arg(&archive), "--data-dir", &target]).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let keep = stopped.path().join("keep.txt");
    std::fs::write(&keep, "mine").unwrap();
    let refused = chat(&[
        "restore",
        "--in",
        path_arg(&archive),
        "--data-dir",
        &data_dir,
    ])
    .await;
    assert!(!refused.status.success());
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "mine");
    let forced = chat(&[
        "restore",
        "--in",
        path_arg(&archive),
        "--data-dir",
        &target,
        "--force",
    ])
    .await;
    succeeded(&forced, "restore --force");

    let restored_app = spawn_app_in(restored_dir, |config| {
        config.admin_token = Some(ADMIN_TOKEN.into())
    })
    .await;
    assert_eq!(exported(&restored_app, "quiet").await, history);
}

on_both_backends!(export_writes_a_rooms_history_as_json_lines_from_a_server_or_its_database);

async fn export_writes_a_rooms_history_as_json_lines_from_a_server_or_its_database(
    backend: Backend,
) {
    let app = spawn_ops_app_on(backend).await;
    let alice = app.login("alice").await;
    alice.post_form("/rooms", &[("name", "minutes")]).await;
    for body in ["agenda", "teh plan", "**decided**\nship it"] {
        post(&alice, "minutes", body).await;
    }
    let edited = alice
        .htmx(
            Method::PUT,
            "/rooms/minutes/messages/3",
            &[("body", "the plan")],
        )
        .await;
    assert_eq!(edited.status(), 200);
    let deleted = alice
        .htmx(Method::DELETE, "/rooms/minutes/messages/2", &[])
        .await;
    assert_eq!(deleted.status(), 200);

    let output = chat(&[
        "export",
        "--server",
        &app.origin(),
        "--admin-token",
        ADMIN_TOKEN,
        "--room",
        "minutes",
    ])
    .await;
    succeeded(&output, "export");
    let lines = json_lines(&String::from_utf8(output.stdout).unwrap());
    let summary: Vec<(u64, &str, &str, &str, bool, bool)> = lines
        .iter()
        .map(|m| {
            (
                m["id"].as_u64().unwrap(),
                m["kind"].as_str().unwrap(),
                m["author"].as_str().unwrap(),
                m["body"].as_str().unwrap(),
                m["edited_at"].is_string(),
                m["deleted"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "system", "alice", "room created by alice", false, false),
            (2, "user", "alice", "", false, true),
            (3, "user", "alice", "the plan", true, false),
            (4, "user", "alice", "**decided**\nship it", false, false),
        ]
    );
    for line in &lines {
        let created = line["created_at"].as_str().unwrap();
        assert!(
            time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{created}"
        );
    }

    let data = app.stop().await;
    let source = match data.database_url() {
        Some(url) => ["--database-url", url],
        None => ["--data-dir", path_arg(data.path())],
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("minutes.jsonl");
    let output = chat(
        &[
            &["export"],
            &source[..],
            &["--room", "minutes", "--out", path_arg(&out)],
        ]
        .concat(),
    )
    .await;
    succeeded(&output, "export from the stopped server's database");
    assert_eq!(json_lines(&std::fs::read_to_string(&out).unwrap()), lines);

    let unknown = chat(&[&["export"], &source[..], &["--room", "nowhere"]].concat()).await;
    assert!(!unknown.status.success());
}

#[tokio::test]
async fn a_backup_of_a_server_on_postgres_says_to_use_pg_dump_and_writes_nothing() {
    let app = spawn_ops_app_on(Backend::Postgres).await;
    let answer = get_as(&app, "/ops/backup", Some(ADMIN_TOKEN)).await;
    assert_eq!(answer.status(), 501);
    assert!(answer.text().await.unwrap().contains("pg_dump"));

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup.tar");
    let url = app.data.database_url().unwrap().to_owned();
    let origin = app.origin();
    let from_server = ["--server", &origin, "--admin-token", ADMIN_TOKEN];
    let from_database = ["--database-url", &url];
    for source in [&from_server[..], &from_database[..]] {
        let output = chat(&[&["backup"], source, &["--out", path_arg(&out)]].concat()).await;
        assert!(!output.status.success());
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(said.contains("pg_dump"), "{said}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{said}");
    }
}

#[tokio::test]
async fn every_subcommand_has_help() {
    for command in [
        &["--help"][..],
        &["backup", "--help"],
        &["restore", "--help"],
        &["export", "--help"],
    ] {
        let output = chat(command).await;
        succeeded(&output, &command.join(" "));
        let help = String::from_utf8(output.stdout).unwrap();
        assert!(help.contains("Usage: chat"), "{help}");
    }
    let top = String::from_utf8(chat(&["--help"]).await.stdout).unwrap();
    for flag in [
        "--addr",
        "--data-dir",
        "--admin-token",
        "backup",
        "restore",
        "export",
    ] {
        assert!(top.contains(flag), "{flag} in\n{top}");
    }
    let backup = String::from_utf8(chat(&["backup", "--help"]).await.stdout).unwrap();
    for flag in ["--server", "--data-dir", "--out", "--admin-token"] {
        assert!(backup.contains(flag), "{flag} in\n{backup}");
    }
}

/// A tar header and the entry's contents.
type RawEntry = (tar::Header, &'static [u8]);

/// `archive` with `extra` entries appended, each a header (name and link name written raw,
/// as a hostile tool would) and its contents.
fn with_entries(archive: &Path, out: &Path, extra: &[RawEntry]) {
    let mut original = tar::Archive::new(std::fs::File::open(archive).unwrap());
    let mut crafted = tar::Builder::new(std::fs::File::create(out).unwrap());
    for entry in original.entries().unwrap() {
        let entry = entry.unwrap();
        let mut header = entry.header().clone();
        let path = entry.path().unwrap().into_owned();
        crafted.append_data(&mut header, path, entry).unwrap();
    }
    for (header, contents) in extra {
        crafted.append(header, *contents).unwrap();
    }
    crafted.into_inner().unwrap();
}

fn raw_entry(kind: tar::EntryType, name: &str, link: Option<&str>, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    let raw = &mut header.as_old_mut().name;
    raw[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(link) = link {
        header.set_link_name_literal(link).unwrap();
    }
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    header
}

#[tokio::test]
async fn restore_refuses_links_and_paths_that_lead_out_of_the_data_dir() {
    let app = spawn_ops_app().await;
    let alice = app.login("alice").await;
    post(&alice, "lobby", "a message").await;
    let stopped = app.stop().await;
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("backup.tar");
    let backup = chat(&[
        "backup",
        "--data-dir",
        path_arg(stopped.path()),
        "--out",
        path_arg(&archive),
    ])
    .await;
    succeeded(&backup, "backup");

    // Outside the data directory: a secret that must not come back through the attachment
    // URL, and a place nothing may be written to.
    let secret = work.path().join("secret.txt");
    std::fs::write(&secret, "outside").unwrap();
    let escaped = work.path().join("escaped.txt");
    let target = work.path().join("data");
    let secret_name = path_arg(&secret).to_owned();
    let escaped_name = path_arg(&escaped).to_owned();
    let work_name = path_arg(work.path()).to_owned();
    use tar::EntryType::{Link, Regular, Symlink};
    // What the refusal names, and the entries appended to a good backup.
    let cases: Vec<(&str, Vec<RawEntry>)> = vec![
        (
            "symbolic link",
            vec![(
                raw_entry(Symlink, "files/leak", Some(&secret_name), 0),
                &b""[..],
            )],
        ),
        (
            "symbolic link",
            vec![(
                raw_entry(Symlink, "files/leak", Some("../../secret.txt"), 0),
                &b""[..],
            )],
        ),
        (
            "hard link",
            vec![(
                raw_entry(Link, "files/leak", Some(&secret_name), 0),
                &b""[..],
            )],
        ),
        (
            "symbolic link",
            vec![
                (
                    raw_entry(Symlink, "files/dir", Some(&work_name), 0),
                    &b""[..],
                ),
                (
                    raw_entry(Regular, "files/dir/escaped.txt", None, 3),
                    &b"bad"[..],
                ),
            ],
        ),
        (
            "out of the data directory",
            vec![(
                raw_entry(Regular, "files/../../escaped.txt", None, 3),
                &b"bad"[..],
            )],
        ),
        (
            "out of the data directory",
            vec![(raw_entry(Regular, &escaped_name, None, 3), &b"bad"[..])],
        ),
    ];
    for (i, (refusal, extra)) in cases.iter().enumerate() {
        let crafted = work.path().join(format!("crafted-{i}.tar"));
        with_entries(&archive, &crafted, extra);
        let restore = chat(&[
            "restore",
            "--in",
            path_arg(&crafted),
            "--data-dir",
            path_arg(&target),
        ])
        .await;
        let stderr = String::from_utf8_lossy(&restore.stderr);
        assert!(!restore.status.success(), "case {i} was restored: {stderr}");
        assert!(
            stderr.contains("refusing") && stderr.contains(refusal),
            "case {i}: {stderr}"
        );
        assert!(!escaped.exists(), "case {i} wrote outside");
        assert!(
            !target.join("files").exists(),
            "case {i}: a failed restore takes away what it wrote"
        );
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "outside");
    }

    // The archive itself still restores.
    let restore = chat(&[
        "restore",
        "--in",
        path_arg(&archive),
        "--data-dir",
        path_arg(&target),
    ])
    .await;
    succeeded(&restore, "restore of the untouched archive");
}

on_both_backends!(readiness_says_whether_the_database_answers);

async fn readiness_says_whether_the_database_answers(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let visitor = app.visitor();
    let ready = visitor.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), "ready");
    let Some(url) = app.data.database_url().map(str::to_owned) else {
        return;
    };

    // The database stops taking connections and drops the instance's: readiness says so,
    // liveness does not. (A database can't shut itself out: the admin uses the cluster's
    // `postgres` database.)
    let (cluster, database) = url.rsplit_once('/').expect("a database URL");
    let admin_url = format!("{cluster}/postgres");
    let admin =
        tokio::task::spawn_blocking(move || postgres::Client::connect(&admin_url, postgres::NoTls))
            .await
            .unwrap()
            .expect("an admin connection");
    let admin = run_sql(
        admin,
        format!(
            "ALTER DATABASE {database} ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}';"
        ),
    )
    .await;
    let not_ready = eventually(
        || visitor.get("/readyz"),
        |response| response.status() == 503,
    )
    .await;
    assert_eq!(not_ready.status(), 503);
    let why = not_ready.text().await.unwrap();
    assert!(why.starts_with("not ready: the database"), "{why}");
    assert_eq!(visitor.get("/healthz").await.status(), 200);

    // Back: ready again, with no restart.
    let admin = run_sql(
        admin,
        format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true"),
    )
    .await;
    let ready = eventually(
        || visitor.get("/readyz"),
        |response| response.status() == 200,
    )
    .await;
    assert_eq!(ready.status(), 200);
    tokio::task::spawn_blocking(move || drop(admin))
        .await
        .unwrap();
}

/// Runs `sql` on `client` off the async workers: the blocking client runs a runtime of its
/// own.
async fn run_sql(mut client: postgres::Client, sql: String) -> postgres::Client {
    tokio::task::spawn_blocking(move || {
        client
            .batch_execute(&sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        client
    })
    .await
    .unwrap()
}

/// A PoloDB data directory moves into PostgreSQL with what people rely on: the history
/// (searchable), who is logged in, unread counts, bots, and a resend still stored once.
#[tokio::test]
async fn a_data_directory_moves_into_postgresql_with_everything_people_rely_on() {
    let app = spawn_app_on(Backend::PoloDb).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    alice.post_form("/rooms", &[("name", "plans")]).await;
    bob.get_text("/rooms/plans").await;
    let resent =
        serde_json::json!({ "body": "the offsite moves to Lisbon", "client_id": "resent-1" });
    let mut socket = alice.ws("plans").await;
    socket.resume(0).await;
    socket.send_json(resent.clone()).await;
    socket.next_containing("the offsite moves to Lisbon").await;
    socket.say("booking the flights tomorrow").await;
    socket.next_containing("booking the flights").await;
    drop(socket);
    let bot_token = crate::bots::make_bot(&alice, "deploybot").await;
    let history = alice.get_text("/rooms/plans").await;
    let messages = user_message_ids(&history);
    assert_eq!(messages.len(), 2);
    let unread = sidebar_badge(&bob.get_text("/").await, "plans");
    assert_eq!(unread, Some(2));
    let photo = crate::attachments::png(64, 48);
    let attached = crate::attachments::upload(
        &alice,
        &app,
        "lobby",
        &[crate::attachments::Part::file(
            "photo.png",
            "image/png",
            photo.clone(),
        )],
    )
    .await;
    assert_eq!(attached.status(), 200);
    let (photo_id, _) = crate::attachments::newest_message(&alice, "lobby").await;
    let data = app.stop().await;

    let data = data.with_fresh_database();
    let url = data.database_url().unwrap().to_owned();
    let dir = data.path().to_str().unwrap().to_owned();
    let moved = chat(&[
        "move-to-postgres",
        "--data-dir",
        &dir,
        "--database-url",
        &url,
    ])
    .await;
    let printed = String::from_utf8_lossy(&moved.stdout);
    assert!(moved.status.success(), "{moved:?}");
    assert!(printed.contains("messages"), "{printed}");
    // A second run would mix two chats: refused, and nothing changes.
    let again = chat(&[
        "move-to-postgres",
        "--data-dir",
        &dir,
        "--database-url",
        &url,
    ])
    .await;
    assert!(!again.status.success());
    let refusal = String::from_utf8_lossy(&again.stderr);
    assert!(refusal.contains("already holds chat data"), "{refusal}");

    // A data directory of its own: everything, attachments too, is in PostgreSQL now.
    let app = spawn_app_in(AppData::on_database(url), |_| {}).await;
    let alice = app.visitor_with(&alice.cookie().unwrap());
    let file = alice
        .get(&format!("/rooms/lobby/messages/{photo_id}/file"))
        .await;
    assert_eq!(file.status(), 200);
    assert_eq!(file.bytes().await.unwrap().to_vec(), photo);
    let thumbnail = alice
        .get(&format!("/rooms/lobby/messages/{photo_id}/thumbnail"))
        .await;
    assert_eq!(thumbnail.status(), 200, "the thumbnail moved too");
    let bob = app.visitor_with(&bob.cookie().unwrap());
    let response = alice.get("/rooms/plans").await;
    assert_eq!(response.status(), 200, "still logged in");
    let moved_history = response.text().await.unwrap();
    assert_eq!(user_message_ids(&moved_history), messages);
    assert!(moved_history.contains("the offsite moves to Lisbon"));
    let bob_home = bob.get_text("/").await;
    assert_eq!(
        sidebar_badge(&bob_home, "plans"),
        Some(2),
        "the same unread count"
    );
    let found = alice.get_text("/search?q=lisb").await;
    assert!(found.contains("moves to <mark>Lisb"), "{found}");
    let posted = crate::bots::Api::new(&app, &bot_token)
        .post_json("plans", serde_json::json!({ "body": "deployed" }))
        .await;
    assert!(posted.status().is_success(), "the bot's token still works");

    // The resend of a message stored before the move is stored once.
    let mut socket = alice.ws("plans").await;
    socket.resume(0).await;
    socket.send_json(resent.clone()).await;
    socket.say("after the move").await;
    socket.next_containing("after the move").await;
    let after = alice.get_text("/rooms/plans").await;
    assert_eq!(after.matches("the offsite moves to Lisbon").count(), 1);
    assert_eq!(user_message_ids(&after).len(), messages.len() + 2);
}
