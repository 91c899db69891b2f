//! The crash test as a script: 20 SIGKILL/restart cycles of the real server on one data
//! directory while clients send numbered messages (issue 5, "Durability and recovery").
//!
//! ```sh
//! cargo run --example crashloop                      # 20 cycles, 4 clients, debug build
//! cargo run --release --example crashloop -- --cycles 50 --clients 8
//! cargo run --example crashloop -- --server target/release/chat --keep
//! ```
//!
//! Each cycle starts `chat` on a free port, checks that every message any client was ever
//! shown a fragment for is in the history (room page + "load older" pages) with the same id,
//! author and body, that ids run 1, 2, 3, ... with no body stored twice, then lets fresh
//! clients send numbered messages as fast as a 32-deep window allows, and SIGKILLs the process
//! at a random moment mid-stream. After the last kill it restarts once more, checks again, and
//! checks that the next message takes the next id. It exits non-zero if any check failed.
//!
//! Without `--server` it builds the `chat` binary of the same profile first (`cargo build
//! --bin chat`), since cargo does not build binaries for examples.

mod harness;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

use harness::{CrashPlan, crash_loop};

/// SIGKILL/restart cycles of the chat server with clients sending; prints a summary.
#[derive(Parser)]
struct Args {
    /// Kill/restart cycles.
    #[arg(long, default_value_t = 20)]
    cycles: u32,
    /// Clients sending in each cycle.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Unacknowledged messages per client (a deep window keeps the committer busy, so the
    /// kill lands mid-commit).
    #[arg(long, default_value_t = 32)]
    window: usize,
    /// Least milliseconds between the first acknowledgements and the kill.
    #[arg(long, default_value_t = 100)]
    kill_min_ms: u64,
    /// Most milliseconds between the first acknowledgements and the kill.
    #[arg(long, default_value_t = 1500)]
    kill_max_ms: u64,
    /// The server binary; default: `chat` next to this example, built first.
    #[arg(long, env = "CHAT_BIN")]
    server: Option<PathBuf>,
    /// Data directory (must be empty or new); default: a temporary one.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep the temporary data directory and server logs.
    #[arg(long)]
    keep: bool,
}

fn server_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/{profile}/examples/crashloop → target/{profile}/chat
    let profile_dir = exe
        .parent()
        .and_then(|examples| examples.parent())
        .ok_or_else(|| anyhow::anyhow!("cannot place {}", exe.display()))?;
    if let Some(cargo) = std::env::var_os("CARGO") {
        eprintln!("crashloop: building the server (cargo build --bin chat; --server skips this)");
        let mut build = std::process::Command::new(cargo);
        build
            .args(["build", "--bin", "chat", "--manifest-path"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status()?;
        anyhow::ensure!(status.success(), "cargo build --bin chat failed");
    }
    let bin = profile_dir.join("chat");
    anyhow::ensure!(
        bin.exists(),
        "{} not found; build it or pass --server",
        bin.display()
    );
    Ok(bin)
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let bin = match args.server {
        Some(bin) => bin,
        None => server_binary()?,
    };
    let temp = tempfile::tempdir()?;
    let data_dir = args.data_dir.unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&data_dir)?;
    println!(
        "crashloop: {} cycles, {} clients, server {}, data {}",
        args.cycles,
        args.clients,
        bin.display(),
        data_dir.display()
    );
    let plan = CrashPlan {
        cycles: args.cycles,
        clients: args.clients,
        kill_after_ms: (args.kill_min_ms, args.kill_max_ms),
        window: args.window,
    };
    let started = Instant::now();
    let report = crash_loop(&bin, &data_dir, &plan, |line| println!("  {line}")).await;
    let elapsed = started.elapsed();

    println!();
    println!("summary");
    println!(
        "  cycles passed:          {}/{}",
        report.cycles_passed, args.cycles
    );
    println!("  messages sent:          {}", report.sent);
    println!("  messages acknowledged:  {}", report.acknowledged);
    println!("  messages found:         {}", report.found);
    println!("  messages stored:        {}", report.stored);
    println!("  time:                   {:.1} s", elapsed.as_secs_f64());
    if args.keep {
        let kept = temp.keep();
        println!("  kept:                   {}", kept.display());
    }
    let ok = report.failures.is_empty()
        && report.cycles_passed == args.cycles
        && report.found == report.acknowledged;
    if ok {
        println!("  result:                 PASS");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("  result:                 FAIL");
        for failure in &report.failures {
            println!("  - {failure}");
        }
        Ok(ExitCode::FAILURE)
    }
}
