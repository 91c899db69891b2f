//! The client side of `scripts/full-disk` (issue 5, "Storage failure" on a real disk): runs
//! the real server with its data directory on a small filesystem, fills that filesystem
//! while a WebSocket client sends messages, frees it again, and checks what people rely on:
//!
//! - a send the disk can't take gets the `store_failed` error fragment, and nobody is shown
//!   that message;
//! - meanwhile `/healthz`, room pages and other rooms keep being served;
//! - once space is free, sends are stored and shown again, without restarting;
//! - after a restart, every acknowledged message is in the history with its id and body, and
//!   no refused one is.
//!
//! ```sh
//! sudo scripts/full-disk            # mounts a small ext4, runs this, unmounts
//! cargo run --example fulldisk -- --mount /mnt/small --server target/debug/chat
//! ```
//!
//! `--mount` must be a directory on a small filesystem of its own that nothing else writes
//! to: this fills it with a file named `ballast`, and keeps the database in `data/` there.

#[path = "crashloop/harness.rs"]
mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use tokio::sync::watch;
use tokio::time::{Instant, sleep};

use harness::{
    ChildServer, Event, Frame, Msg, Socket, Visitor, WAIT, history, parse_frame, sequence_problems,
};

/// Fill the server's filesystem while a client sends; free it; check nothing was lost.
#[derive(Parser)]
struct Args {
    /// A directory on a small filesystem of its own (a few MiB).
    #[arg(long)]
    mount: PathBuf,
    /// The server binary; default: `chat` in the same target directory as this example.
    #[arg(long, env = "CHAT_BIN")]
    server: Option<PathBuf>,
    /// Where the server logs go (not on the small filesystem, which will be full).
    #[arg(long, default_value = "/tmp/fulldisk-logs")]
    logs: PathBuf,
    /// Refused sends to see before space is freed.
    #[arg(long, default_value_t = 5)]
    refusals: usize,
}

/// What became of one send.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Shown back to the sender with this id.
    Stored(u64),
    /// The `store_failed` error fragment.
    Refused,
}

/// Every send of the sending client, by client id: `(body, outcome)`.
type Sends = Arc<Mutex<BTreeMap<String, (String, Outcome)>>>;

fn count(sends: &Sends, stored: bool) -> usize {
    sends
        .lock()
        .unwrap()
        .values()
        .filter(|(_, outcome)| matches!(outcome, Outcome::Stored(_)) == stored)
        .count()
}

/// Sends numbered messages one at a time until `stop`, and records what became of each:
/// its own message shown back (stored) or the `store_failed` fragment (refused).
async fn send_until(
    mut socket: Socket,
    sends: Sends,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    for n in 1u64.. {
        if *stop.borrow() {
            return Ok(());
        }
        let client_id = format!("fd-{n}");
        let body = format!("fulldisk {n}");
        socket.say(&body, Some(&client_id)).await?;
        let outcome = loop {
            match parse_frame(&socket.next_text().await?) {
                Frame::Append(messages) => {
                    if let Some(mine) = messages
                        .iter()
                        .find(|m| m.client_id.as_deref() == Some(&client_id))
                    {
                        anyhow::ensure!(mine.body == body, "shown as {mine:?}");
                        break Outcome::Stored(mine.id);
                    }
                }
                Frame::Error {
                    code,
                    client_id: for_id,
                } => {
                    anyhow::ensure!(
                        code == "store_failed" && for_id.as_deref() == Some(&client_id),
                        "unexpected error fragment {code} for {for_id:?}"
                    );
                    break Outcome::Refused;
                }
                _ => {}
            }
        };
        let refused = outcome == Outcome::Refused;
        sends.lock().unwrap().insert(client_id, (body, outcome));
        if refused {
            // As a person would retry: not in a tight loop.
            tokio::select! {
                _ = sleep(Duration::from_millis(50)) => {}
                _ = stop.changed() => {}
            }
        }
    }
    unreachable!()
}

/// Collects every user message shown to an onlooker, until its socket is closed.
async fn watch_room(mut socket: Socket, shown: Arc<Mutex<Vec<Msg>>>) {
    while let Event::Text(text) = socket.next_event().await {
        if let Frame::Append(messages) = parse_frame(&text) {
            shown
                .lock()
                .unwrap()
                .extend(messages.into_iter().filter(|m| m.kind == "user"));
        }
    }
}

/// Writes zeros into `path` until the filesystem refuses; returns the bytes written.
fn fill(path: &Path) -> anyhow::Result<u64> {
    let mut file = std::fs::File::create(path)?;
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("filling the disk"),
        }
    }
    // Whatever the cache still holds must fail here rather than later.
    let _ = file.sync_all();
    Ok(written)
}

async fn wait_until(
    what: &str,
    within: Duration,
    mut done: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() > deadline {
            bail!("timed out after {within:?} waiting for {what}");
        }
        sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

struct Checks {
    failures: Vec<String>,
}

impl Checks {
    fn check(&mut self, ok: bool, what: &str) {
        println!("  [{}] {what}", if ok { "ok" } else { "FAIL" });
        if !ok {
            self.failures.push(what.to_owned());
        }
    }
}

fn server_binary(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(bin) = &args.server {
        return Ok(bin.clone());
    }
    // target/{profile}/examples/fulldisk → target/{profile}/chat
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|profile| profile.join("chat"))
        .context("placing the server binary")?;
    anyhow::ensure!(
        bin.exists(),
        "{} not found; build it (cargo build --all-targets) or pass --server",
        bin.display()
    );
    Ok(bin)
}

fn df(mount: &Path) -> String {
    std::process::Command::new("df")
        .arg("-h")
        .arg(mount)
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let bin = server_binary(&args)?;
    let data_dir = args.mount.join("data");
    let ballast = args.mount.join("ballast");
    anyhow::ensure!(
        !data_dir.exists(),
        "{} exists: start from a fresh filesystem",
        data_dir.display()
    );
    std::fs::create_dir_all(&args.logs)?;
    let flags = ["--rate-limit", "0", "--log", "info"];
    let mut checks = Checks {
        failures: Vec::new(),
    };

    println!(
        "fulldisk: server {}, data {}",
        bin.display(),
        data_dir.display()
    );
    println!("  filesystem: {}", df(&args.mount));
    let mut server =
        ChildServer::start(&bin, &data_dir, None, &args.logs.join("first.log"), &flags).await?;
    let base = server.base();

    // Everyone logs in while there is room: a login writes its session.
    let alice = Visitor::logged_in(&base, "alice").await?;
    let bob = Visitor::logged_in(&base, "bob").await?;
    let carol = Visitor::logged_in(&base, "carol").await?;
    let created = carol.post_form("/rooms", &[("name", "elsewhere")]).await?;
    anyhow::ensure!(
        created.status() == 303,
        "creating a room: {}",
        created.status()
    );
    let posted = carol
        .post_form(
            "/rooms/elsewhere/messages",
            &[("body", "a message elsewhere")],
        )
        .await?;
    anyhow::ensure!(
        posted.status() == 303,
        "posting elsewhere: {}",
        posted.status()
    );

    let mut sender = alice.socket("lobby").await?;
    sender.resume(0).await?;
    let mut onlooker = bob.socket("lobby").await?;
    onlooker.resume(0).await?;
    let shown_to_bob = Arc::new(Mutex::new(Vec::new()));
    let bob_watching = tokio::spawn(watch_room(onlooker, shown_to_bob.clone()));
    let sends: Sends = Arc::default();
    let (stop, stopped) = watch::channel(false);
    let sending = tokio::spawn(send_until(sender, sends.clone(), stopped));
    wait_until("the first stored messages", WAIT, || {
        count(&sends, true) >= 10
    })
    .await?;

    // The disk fills up while alice keeps sending.
    let filled = tokio::task::spawn_blocking({
        let ballast = ballast.clone();
        move || fill(&ballast)
    })
    .await??;
    println!(
        "  filled: {} KiB of ballast; {}",
        filled / 1024,
        df(&args.mount)
    );
    let stored_before_full = count(&sends, true);
    let refusals = args.refusals;
    let refused = wait_until("refused sends", Duration::from_secs(30), || {
        count(&sends, false) >= refusals
    })
    .await;
    checks.check(
        refused.is_ok(),
        &format!("with the disk full, sends get store_failed ({refused:?})"),
    );

    let health = alice.get("/healthz").await?;
    checks.check(
        health.status() == 200,
        &format!(
            "/healthz answers while the disk is full ({})",
            health.status()
        ),
    );
    let elsewhere = carol.get("/rooms/elsewhere").await?;
    let status = elsewhere.status();
    let page = elsewhere.text().await.unwrap_or_default();
    checks.check(
        status == 200 && page.contains("a message elsewhere"),
        &format!("another room's page is served while the disk is full ({status})"),
    );
    let lobby = history(&carol, "lobby").await;
    checks.check(
        lobby.is_ok(),
        &format!(
            "the room's history pages are served while the disk is full ({:?})",
            lobby.as_ref().err()
        ),
    );

    // Space again, no restart: sending works again.
    std::fs::remove_file(&ballast)?;
    println!("  freed: {}", df(&args.mount));
    let refused_at_free = count(&sends, false);
    let stored_at_free = count(&sends, true);
    let recovered = wait_until(
        "stored messages after freeing space",
        Duration::from_secs(30),
        || count(&sends, true) >= stored_at_free + 10,
    )
    .await;
    checks.check(
        recovered.is_ok(),
        &format!("after space is freed, sends are stored again ({recovered:?})"),
    );
    let _ = stop.send(true);
    if let Ok(Err(e)) = tokio::time::timeout(WAIT, sending)
        .await
        .context("the sender stops")?
    {
        checks.check(false, &format!("the sending client: {e:#}"));
    }
    let refused_after_free = count(&sends, false) - refused_at_free;

    // Let bob's socket catch the last broadcasts, then compare.
    sleep(Duration::from_millis(500)).await;
    let sends = sends.lock().unwrap().clone();
    let stored: BTreeMap<u64, &str> = sends
        .values()
        .filter_map(|(body, outcome)| match outcome {
            Outcome::Stored(id) => Some((*id, body.as_str())),
            Outcome::Refused => None,
        })
        .collect();
    let refused_bodies: BTreeSet<&str> = sends
        .values()
        .filter(|(_, outcome)| *outcome == Outcome::Refused)
        .map(|(body, _)| body.as_str())
        .collect();
    let bob_saw: BTreeMap<u64, String> = shown_to_bob
        .lock()
        .unwrap()
        .iter()
        .map(|m| (m.id, m.body.clone()))
        .collect();
    let bob_saw_refused: Vec<&String> = bob_saw
        .values()
        .filter(|body| refused_bodies.contains(body.as_str()))
        .collect();
    checks.check(
        bob_saw_refused.is_empty(),
        &format!("no refused message was broadcast (bob saw {bob_saw_refused:?})"),
    );
    let bob_missed: Vec<u64> = stored
        .keys()
        .filter(|id| !bob_saw.contains_key(id))
        .copied()
        .collect();
    checks.check(
        bob_missed.is_empty(),
        &format!("every stored message was broadcast (bob missed {bob_missed:?})"),
    );

    // A restart on the same data: every acknowledged message is there, and no refused one.
    server.terminate()?;
    let exit = server.wait(Duration::from_secs(20)).await?;
    checks.check(exit.success(), &format!("graceful exit ({exit})"));
    bob_watching.abort();
    let mut server =
        ChildServer::start(&bin, &data_dir, None, &args.logs.join("second.log"), &flags).await?;
    let checker = Visitor::logged_in(&server.base(), "checker").await?;
    let after_restart = history(&checker, "lobby").await?;
    checks.check(
        sequence_problems(&after_restart).is_empty(),
        &format!(
            "ids run 1, 2, 3, ... with no body twice ({:?})",
            sequence_problems(&after_restart)
        ),
    );
    let kept: BTreeMap<u64, &str> = after_restart
        .iter()
        .filter(|m| m.kind == "user")
        .map(|m| (m.id, m.body.as_str()))
        .collect();
    let lost: Vec<(&u64, &&str)> = stored
        .iter()
        .filter(|(id, body)| kept.get(id) != Some(body))
        .collect();
    checks.check(
        lost.is_empty(),
        &format!(
            "all {} acknowledged messages are in the history after a restart (lost {lost:?})",
            stored.len()
        ),
    );
    let resurrected: Vec<&&str> = kept
        .values()
        .filter(|body| refused_bodies.contains(*body))
        .collect();
    checks.check(
        resurrected.is_empty(),
        &format!("no refused message is in the history ({resurrected:?})"),
    );
    server.terminate()?;
    server.wait(Duration::from_secs(20)).await?;

    println!();
    println!("summary");
    println!("  stored before the disk was full: {stored_before_full}");
    println!(
        "  refused while full:               {refused_at_free}, after freeing space: {refused_after_free}"
    );
    println!("  stored in all:                    {}", stored.len());
    println!(
        "  server logs:                      {}",
        args.logs.display()
    );
    if checks.failures.is_empty() {
        println!("  result:                           PASS");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("  result:                           FAIL");
        Ok(ExitCode::FAILURE)
    }
}
