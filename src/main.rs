use clap::Parser;
use std::io::Write;
use tracing_subscriber::EnvFilter;

use chat::config::Cli;
use chat::{Application, Config};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    tune_allocator();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = log_filter(&cli.config.log)?;
    match cli.command {
        Some(command) => {
            // Standard output may be the export itself.
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .init();
            chat::ops::cli::run(command).await
        }
        None => {
            tracing_subscriber::fmt().with_env_filter(filter).init();
            serve(cli.config).await
        }
    }
}

/// mimalloc rather than glibc's malloc: allocation was an eighth of a room page's CPU. Its
/// defaults keep freed memory for a while and commit arenas eagerly, which cost idle sockets
/// 2.5 times the memory (`BENCHMARKS.md`, scenario 3), so both are turned off.
fn tune_allocator() {
    // Indices into mimalloc 2's `mi_option_e`, which the bindings don't all name.
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: plain integer options, set before any other thread starts.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
    }
}

/// The `--log` filter. tower-sessions opens an info-level span for every request and every
/// session read; they say nothing the request log doesn't, and cost more than rendering the
/// page, so they stay off unless the filter names the crate.
fn log_filter(directives: &str) -> anyhow::Result<EnvFilter> {
    let mut filter = EnvFilter::try_new(directives)?;
    if !directives.contains("tower_sessions") {
        for quiet in ["tower_sessions=warn", "tower_sessions_core=warn"] {
            filter = filter.add_directive(quiet.parse()?);
        }
    }
    Ok(filter)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    tracing::info!(address = %app.address(), "serving");
    app.run_until_stopped(shutdown_signal()).await?;
    // Every commit is already synced, so nothing is left to run: dropping the database would
    // wait for compaction, and C++'s static destructors, which `exit` runs, can pull RocksDB's
    // mutexes from under its background threads ("pthread lock: Invalid argument", SIGABRT).
    let _ = std::io::stdout().flush();
    // SAFETY: `_exit` ends the process at once; no Rust state outlives it.
    unsafe { libc::_exit(0) }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
