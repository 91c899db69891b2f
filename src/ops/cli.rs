//! The maintenance subcommands: `chat backup`, `chat restore`, `chat export`,
//! `chat move-to-postgres`.
//!
//! Each reads either a running server, through its admin endpoints, or a stopped server's
//! data directory directly (a running server locks it), or, for `export`, the PostgreSQL
//! database a server keeps its data in.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::{archive, export, move_to_postgres};
use crate::domain::Slug;
use crate::store::{DATABASE_DIR, PG_DUMP_INSTEAD, PgStore, PoloStore, Storage};

/// Where a subcommand writes: a file or standard output.
type Output = Box<dyn Write + Send>;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a backup archive: a tar of the database, as of one point in time, and of the
    /// attachment files. From a running server (`--server`) or a stopped data directory
    /// (`--data-dir`).
    Backup(BackupArgs),
    /// Restore a backup archive into an empty (or missing) data directory.
    Restore(RestoreArgs),
    /// Write a room's history as JSON lines (id, kind, author, created_at, body, edited_at,
    /// deleted), oldest first.
    Export(ExportArgs),
    /// Copy a stopped server's data directory's database into an empty PostgreSQL database,
    /// then start the server with `--database-url` (and the same `--data-dir`, which keeps
    /// the attachments' bytes).
    MoveToPostgres(MoveArgs),
}

/// Where the data comes from: exactly one of `--server`, `--data-dir` and `--database-url`.
#[derive(Debug, Args)]
pub struct Source {
    /// A running server's base URL, plain HTTP (e.g. `http://127.0.0.1:3000`, the address it
    /// listens on behind its proxy). Needs the admin token.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present_any = ["data_dir", "database_url"],
        conflicts_with_all = ["data_dir", "database_url"]
    )]
    pub server: Option<String>,

    /// A stopped server's data directory, read directly.
    #[arg(long, value_name = "DIR", conflicts_with = "database_url")]
    pub data_dir: Option<PathBuf>,

    /// The PostgreSQL database a server keeps its data in (its `--database-url`), read
    /// directly; servers may go on running. Not taken from `CHAT_DATABASE_URL`, so a
    /// server's environment never changes where a command reads.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,

    /// The server's admin token (its `--admin-token`), sent as `Authorization: Bearer`.
    #[arg(long, env = "CHAT_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub source: Source,

    /// The archive to write; it appears only once complete.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive `chat backup` wrote.
    #[arg(long = "in", value_name = "FILE")]
    pub input: PathBuf,

    /// The data directory to restore into: empty or missing. Start the server on it after.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Restore into a directory that is not empty, replacing its database and files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub source: Source,

    /// The room's slug, as in its URL.
    #[arg(long)]
    pub room: String,

    /// Where to write; standard output without it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MoveArgs {
    /// The stopped server's data directory; only read.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,

    /// The empty PostgreSQL database to fill (it gets the schema if it has none). Not taken
    /// from `CHAT_DATABASE_URL`, as for `export`.
    #[arg(long, value_name = "URL")]
    pub database_url: String,
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Backup(args) => backup(args).await,
        Command::Restore(args) => tokio::task::spawn_blocking(move || restore(&args)).await?,
        Command::Export(args) => export(args).await,
        Command::MoveToPostgres(args) => {
            tokio::task::spawn_blocking(move || move_to_postgres(&args)).await?
        }
    }
}

fn move_to_postgres(args: &MoveArgs) -> anyhow::Result<()> {
    let from = open_stopped(&args.data_dir)?;
    let to = PgStore::connect(&args.database_url).context("connecting to PostgreSQL")?;
    let files_dir = args.data_dir.join("files");
    let moved = move_to_postgres::move_to_postgres(&from, &files_dir, &to)?;
    for (kind, count) in moved {
        println!("{count:>9} {kind}");
    }
    println!(
        "Done. Start the server with --database-url; the data directory {} is no longer used.",
        args.data_dir.display()
    );
    Ok(())
}

async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let source = args.source;
    if source.database_url.is_some() {
        bail!("{PG_DUMP_INSTEAD}");
    }
    write_then_rename(&args.out, async move |out| match source.server {
        Some(server) => {
            let token = admin_token(source.admin_token)?;
            download(&server, "/ops/backup", &token, out).await
        }
        None => {
            let dir = source.data_dir.context("--server or --data-dir")?;
            let mut out = out;
            tokio::task::spawn_blocking(move || {
                let store = open_stopped(&dir)?;
                let snapshot = archive::snapshot(&store, &dir)?;
                let manifest = archive::write_archive(snapshot, &dir, &mut out)?;
                let documents: u64 = manifest.documents.values().sum();
                eprintln!(
                    "backed up {documents} documents and {} files",
                    manifest.files
                );
                anyhow::Ok(())
            })
            .await?
        }
    })
    .await
}

fn restore(args: &RestoreArgs) -> anyhow::Result<()> {
    let file =
        File::open(&args.input).with_context(|| format!("opening {}", args.input.display()))?;
    let manifest = archive::restore(BufReader::new(file), &args.data_dir, args.force)
        .with_context(|| format!("restoring {}", args.input.display()))?;
    let documents: u64 = manifest.documents.values().sum();
    eprintln!(
        "restored {documents} documents and {} files, as of {}, into {}",
        manifest.files,
        manifest.created_at,
        args.data_dir.display()
    );
    Ok(())
}

async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let room = Slug::parse(&args.room).with_context(|| format!("{} is not a room", args.room))?;
    let source = args.source;
    let write = async move |mut out: Output| -> anyhow::Result<()> {
        match source.server {
            Some(server) => {
                let token = admin_token(source.admin_token)?;
                download(&server, &format!("/ops/rooms/{room}/export"), &token, out).await
            }
            None => {
                let database_url = source.database_url;
                let dir = source.data_dir;
                tokio::task::spawn_blocking(move || {
                    let store: Box<dyn Storage> = match (database_url, dir) {
                        (Some(url), _) => {
                            Box::new(PgStore::connect(&url).context("connecting to PostgreSQL")?)
                        }
                        (None, Some(dir)) => Box::new(open_stopped(&dir)?),
                        (None, None) => bail!("--server, --data-dir or --database-url"),
                    };
                    let last_id = export::last_id(store.as_ref(), &room)?;
                    export::write_room(store.as_ref(), &room, last_id, &mut out)?;
                    out.flush()?;
                    anyhow::Ok(())
                })
                .await?
            }
        }
    };
    match &args.out {
        Some(path) => write_then_rename(path, write).await,
        None => write(Box::new(BufWriter::new(std::io::stdout()))).await,
    }
}

/// Writes `path` through a temporary name beside it, renamed once `write` succeeded, so an
/// interrupted run never leaves something that looks complete.
async fn write_then_rename(
    path: &Path,
    write: impl AsyncFnOnce(Output) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    match write(Box::new(BufWriter::new(file))).await {
        Ok(()) => std::fs::rename(&partial, path)
            .with_context(|| format!("renaming {} to {}", partial.display(), path.display())),
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn admin_token(token: Option<String>) -> anyhow::Result<String> {
    token.context("--server needs the admin token: --admin-token or CHAT_ADMIN_TOKEN")
}

/// Streams `server` + `path` into `out`. A body cut off midway (the server failed, or the
/// connection broke) is an error, not a short file.
async fn download(
    server: &str,
    path: &str,
    token: &str,
    mut out: impl Write,
) -> anyhow::Result<()> {
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let mut response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("asking {url}"))?;
    match response.status() {
        status if status.is_success() => {}
        reqwest::StatusCode::UNAUTHORIZED => bail!("{url} refused the admin token"),
        // Says why, as a server on PostgreSQL does when asked for a backup.
        reqwest::StatusCode::NOT_IMPLEMENTED => {
            bail!("{url}: {}", response.text().await.unwrap_or_default())
        }
        reqwest::StatusCode::NOT_FOUND => {
            bail!("{url} answered 404: no such room, or the server runs without --admin-token")
        }
        status => bail!("{url} answered {status}"),
    }
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("reading from {url}"))?
    {
        out.write_all(&chunk).context("writing")?;
    }
    out.flush().context("writing")?;
    Ok(())
}

/// Opens the database of a data directory no server is running on.
fn open_stopped(dir: &Path) -> anyhow::Result<PoloStore> {
    if !dir.join(DATABASE_DIR).is_dir() {
        bail!("there is no database in {}", dir.display());
    }
    PoloStore::open(dir).with_context(|| {
        format!(
            "opening the database in {} (if a server is running on it, use --server)",
            dir.display()
        )
    })
}
