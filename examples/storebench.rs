//! Scenario 5, durable writes: persisted messages per second through the store's group
//! commit (`Storage::append` with batches, one synced PoloDB transaction each), on an empty
//! database and again after filling it to a million messages; then how long the real binary
//! takes to answer `/healthz` on that data directory.
//!
//! ```sh
//! cargo build --release
//! cargo run --release --example storebench                      # quick: fill 100k
//! cargo run --release --example storebench -- --fill 1000000    # the issue's figure
//! # PostgreSQL: databases of its own, made (and dropped) through this one
//! cargo run --release --example storebench -- --database-url postgres://root@%2Frun%2Fpostgresql/postgres
//! ```
//!
//! `--dedup` adds what the committer does for a send with a `client_id`: one dedup lookup
//! per message (a miss) and one dedup record in the same commit.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use chat::domain::Slug;
use chat::store::{
    MessageKind, MessageRecord, PendingMessage, PgStore, PoloStore, RoomRecord, Storage,
};
use clap::Parser;
use hdrhistogram::Histogram;

/// Persisted messages per second through `Storage::append`.
#[derive(Debug, Parser)]
#[command(name = "storebench")]
struct Args {
    /// Batch sizes to measure (the committer folds up to 512 requests into one commit).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 16, 128, 512])]
    batches: Vec<usize>,
    /// Seconds per measurement, at most.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Messages per measurement, at most (so measuring does not fill the database itself).
    #[arg(long, default_value_t = 50_000)]
    max_messages: u64,
    /// Messages to store before measuring again (0 skips the second round).
    #[arg(long, default_value_t = 100_000)]
    fill: u64,
    /// Seconds the fill may take at most.
    #[arg(long, default_value_t = 300.0)]
    fill_seconds: f64,
    /// Bytes in each message body.
    #[arg(long, default_value_t = 80)]
    body_bytes: usize,
    /// Also look up and store a dedup record per message, as a send with a `client_id` does.
    #[arg(long)]
    dedup: bool,
    /// Where the temporary database goes (on disk, so fsync is real).
    #[arg(long, default_value = "target/bench")]
    work_dir: PathBuf,
    /// The chat binary for the start-up check; skipped when it does not exist.
    #[arg(long, default_value = "target/release/chat")]
    chat_bin: PathBuf,
    /// Keep the database directory (or databases) afterwards.
    #[arg(long)]
    keep: bool,
    /// Measure PostgreSQL instead of PoloDB: a database on that server where this role may
    /// `CREATE DATABASE`; each measurement gets a fresh database of its own.
    #[arg(long)]
    database_url: Option<String>,
}

struct Writer {
    store: Box<dyn Storage>,
    room: Slug,
    next_id: u64,
    body: String,
    dedup: bool,
}

impl Writer {
    fn batch(&mut self, size: usize) -> Vec<PendingMessage> {
        let now = now_millis();
        (0..size)
            .map(|_| {
                self.next_id += 1;
                let id = self.next_id;
                let client_id = self.dedup.then(|| format!("c{id}"));
                PendingMessage {
                    dedup_key: client_id.as_ref().map(|c| format!("bench-login/{c}")),
                    webhooks: Vec::new(),
                    record: MessageRecord {
                        client_id,
                        ..MessageRecord::new(
                            &self.room,
                            id,
                            MessageKind::User,
                            "bench".into(),
                            String::new(),
                            self.body.clone(),
                            now,
                        )
                    },
                }
            })
            .collect()
    }

    /// One group commit the way the committer does it (the store looks the resend keys up
    /// in its commit).
    fn commit(&mut self, size: usize) -> anyhow::Result<()> {
        let batch = self.batch(size);
        self.store.append(&batch)?;
        Ok(())
    }
}

struct Rate {
    batch: usize,
    messages: u64,
    secs: f64,
    commit_latency: Histogram<u64>,
}

impl Rate {
    fn per_sec(&self) -> f64 {
        self.messages as f64 / self.secs
    }
}

fn measure(writer: &mut Writer, batch: usize, args: &Args) -> anyhow::Result<Rate> {
    let mut commit_latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let start = Instant::now();
    let limit = Duration::from_secs_f64(args.seconds);
    let mut messages = 0;
    while start.elapsed() < limit && messages < args.max_messages {
        let t = Instant::now();
        writer.commit(batch)?;
        commit_latency.saturating_record(t.elapsed().as_micros().max(1) as u64);
        messages += batch as u64;
    }
    Ok(Rate {
        batch,
        messages,
        secs: start.elapsed().as_secs_f64(),
        commit_latency,
    })
}

fn print_rates(label: &str, rates: &[Rate]) {
    println!("\n{label}:");
    println!("| batch | messages/s | commits/s | commit p50 ms | commit p99 ms |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for r in rates {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.2} |",
            r.batch,
            r.per_sec(),
            r.messages as f64 / r.batch as f64 / r.secs,
            r.commit_latency.value_at_quantile(0.5) as f64 / 1000.0,
            r.commit_latency.value_at_quantile(0.99) as f64 / 1000.0,
        );
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// `url` naming the database `name` instead.
fn database_named(url: &str, name: &str) -> String {
    let path = url.rfind('/').expect("a database URL ends with /database") + 1;
    let query = url[path..].find('?').map_or(url.len(), |at| path + at);
    format!("{}{name}{}", &url[..path], &url[query..])
}

/// Where a fresh database named `name` is: a directory, or with `--database-url` a new
/// database on that server.
fn fresh_store(args: &Args, dir: &Path, name: &str) -> anyhow::Result<Box<dyn Storage>> {
    Ok(match &args.database_url {
        None => Box::new(PoloStore::open(&dir.join(name))?),
        Some(url) => {
            let database = format!("storebench_{}_{name}", std::process::id());
            let mut admin = postgres::Client::connect(url, postgres::NoTls)?;
            admin.batch_execute(&format!("CREATE DATABASE {database}"))?;
            Box::new(PgStore::connect(&database_named(url, &database))?)
        }
    })
}

/// Drops the databases `fresh_store` made on the server (a directory goes with `dir`).
fn drop_databases(args: &Args) -> anyhow::Result<()> {
    let Some(url) = &args.database_url else {
        return Ok(());
    };
    let mut admin = postgres::Client::connect(url, postgres::NoTls)?;
    let prefix = format!("storebench_{}_", std::process::id());
    let made: Vec<String> = admin
        .query("SELECT datname FROM pg_database", &[])?
        .iter()
        .map(|row| row.get::<_, String>(0))
        .filter(|name| name.starts_with(&prefix))
        .collect();
    for database in made {
        admin.batch_execute(&format!("DROP DATABASE {database} WITH (FORCE)"))?;
    }
    Ok(())
}

/// A fresh database with the lobby in it.
fn open_writer(args: &Args, dir: &Path, name: &str) -> anyhow::Result<Writer> {
    let store = fresh_store(args, dir, name)?;
    // What the chat does first on a new database: marks its data as this build's version,
    // so the start-up check below measures a start, not a one-time upgrade.
    chat::store::upgrade(store.as_ref())?;
    let room = Slug::lobby();
    store.create_room(&RoomRecord::new(
        room.clone(),
        "lobby".into(),
        "",
        now_millis(),
    ))?;
    Ok(Writer {
        store,
        room,
        next_id: 0,
        body: "m".repeat(args.body_bytes.max(1)),
        dedup: args.dedup,
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.work_dir)?;
    let dir = tempfile::Builder::new()
        .prefix("storebench-")
        .tempdir_in(&args.work_dir)?;
    println!(
        "storebench: databases under {}, bodies of {} bytes, dedup {}, each measurement at most {} s / {} messages",
        dir.path().display(),
        args.body_bytes,
        args.dedup,
        args.seconds,
        args.max_messages
    );

    // Each batch size on an empty database of its own.
    let mut empty = Vec::new();
    for (i, &batch) in args.batches.iter().enumerate() {
        let mut writer = open_writer(&args, dir.path(), &format!("empty{i}"))?;
        empty.push(measure(&mut writer, batch.max(1), &args)?);
    }
    print_rates("empty database", &empty);

    let data_dir = dir.path().join("data");
    let mut writer = open_writer(&args, dir.path(), "data")?;
    if args.fill > 0 {
        println!("\nfilling to {} messages in batches of 512…", args.fill);
        let start = Instant::now();
        let limit = Duration::from_secs_f64(args.fill_seconds);
        let mut chunk_start = Instant::now();
        let mut chunk_from = writer.next_id;
        while writer.next_id < args.fill && start.elapsed() < limit {
            let size = 512.min((args.fill - writer.next_id) as usize);
            writer.commit(size)?;
            if writer.next_id - chunk_from >= 100_000 || writer.next_id == args.fill {
                println!(
                    "  {:>9} stored, {:.0} messages/s over the last {}",
                    writer.next_id,
                    (writer.next_id - chunk_from) as f64 / chunk_start.elapsed().as_secs_f64(),
                    writer.next_id - chunk_from
                );
                chunk_start = Instant::now();
                chunk_from = writer.next_id;
            }
        }
        println!(
            "  filled to {} in {:.1} s",
            writer.next_id,
            start.elapsed().as_secs_f64()
        );
        let mut full = Vec::new();
        for &batch in &args.batches {
            full.push(measure(&mut writer, batch.max(1), &args)?);
        }
        print_rates(
            &format!("after the fill ({} messages stored)", writer.next_id),
            &full,
        );
        println!("\n| batch | rate full ÷ rate empty |");
        println!("| ---: | ---: |");
        for (e, f) in empty.iter().zip(&full) {
            println!("| {} | {:.2} |", e.batch, f.per_sec() / e.per_sec());
        }
    }

    let stored = writer.next_id;
    let closing = Instant::now();
    drop(writer);
    println!(
        "\nclosed the database in {:.2} s (dropping waits for RocksDB compaction)",
        closing.elapsed().as_secs_f64()
    );

    let database = args
        .database_url
        .as_deref()
        .map(|url| database_named(url, &format!("storebench_{}_data", std::process::id())));
    let reopening = Instant::now();
    let reopened: Box<dyn Storage> = match &database {
        None => Box::new(PoloStore::open(&data_dir)?),
        Some(url) => Box::new(PgStore::connect(url)?),
    };
    let rooms = reopened.rooms()?;
    println!(
        "reopened in-process with {} stored: open + rooms() in {:.3} s (lobby last_id {})",
        stored,
        reopening.elapsed().as_secs_f64(),
        rooms
            .iter()
            .find(|r| r.slug == Slug::lobby())
            .map_or(0, |r| r.last_id)
    );
    drop(reopened);

    if args.chat_bin.exists() {
        let secs = time_to_healthz(&args.chat_bin, &data_dir, database.as_deref(), dir.path())?;
        println!(
            "`{}` on that data dir answered /healthz {:.3} s after spawn",
            args.chat_bin.display(),
            secs
        );
    } else {
        println!(
            "{} not found: skipped the start-up check (cargo build --release)",
            args.chat_bin.display()
        );
    }

    if args.keep {
        println!("kept {}", dir.keep().display());
    } else {
        drop_databases(&args)?;
    }
    Ok(())
}

/// Spawns the chat on `data_dir` (on `database_url`, if given) and returns the seconds until
/// `/healthz` answers 200.
fn time_to_healthz(
    chat_bin: &Path,
    data_dir: &Path,
    database_url: Option<&str>,
    log_dir: &Path,
) -> anyhow::Result<f64> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = std::fs::File::create(log_dir.join("chat.log"))?;
    let start = Instant::now();
    let mut child = Command::new(chat_bin)
        .arg("--addr")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(data_dir)
        .args(database_url.map(|url| format!("--database-url={url}")))
        .arg("--log")
        .arg("warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the chat")?;
    let mut answered = None;
    while start.elapsed() < Duration::from_secs(60) {
        if healthz(addr) {
            answered = Some(start.elapsed().as_secs_f64());
            break;
        }
        if child.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: a signal to our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let stop = Instant::now();
    while stop.elapsed() < Duration::from_secs(5) {
        if child.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    answered.context("the chat never answered /healthz (see chat.log)")
}

fn healthz(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    // The server answers only a `Host` that names it, port included.
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer.starts_with(b"HTTP/1.1 200")
}
