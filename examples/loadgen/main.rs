//! Load generator for the chat, with its own reference server.
//!
//! Every scenario runs against the real `chat` binary (a child process with a fresh data
//! directory) and against a bare axum + tokio broadcast server (`serve-reference`, another
//! child process of this same binary), back to back, and prints chat ÷ reference.
//!
//! ```sh
//! cargo build --release
//! cargo run --release --example loadgen -- fanout --clients 1000 --duration 20
//! cargo run --release --example loadgen -- --help
//! ```
//!
//! See BENCHMARKS.md for every scenario and the figures.

mod clients;
mod net;
mod page;
mod procs;
mod reference;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use clients::{Mode, Outcome, Plan};
use net::Sources;
use page::{PageOutcome, PagePlan};
use procs::{Kind, Launch, Server};

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Benchmarks the chat against a bare broadcast server, scenario by scenario"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Targets {
    Both,
    Chat,
    Reference,
}

#[derive(Debug, Clone, Args)]
struct Common {
    /// The chat binary to benchmark (build it with `cargo build --release`).
    #[arg(long, global = true, default_value = "target/release/chat")]
    chat_bin: PathBuf,
    /// Which servers to run.
    #[arg(long, global = true, value_enum, default_value_t = Targets::Both)]
    target: Targets,
    /// Runs per server; the summary shows medians. Runs alternate chat, reference.
    #[arg(long, global = true, default_value_t = 1)]
    repeat: usize,
    /// Loopback source addresses to spread client sockets over (127.0.0.2, 127.0.0.3, …).
    #[arg(long, global = true, default_value_t = 8)]
    sources: usize,
    /// Where the chat's temporary data directories go (on disk, so fsync is real).
    #[arg(long, global = true, default_value = "target/bench")]
    work_dir: PathBuf,
    /// The chat's `--log` filter.
    #[arg(long, global = true, default_value = "info")]
    chat_log: String,
    /// Extra argument for the chat (repeatable), e.g. `--chat-arg=--ping-interval=60`.
    #[arg(long, global = true, allow_hyphen_values = true)]
    chat_arg: Vec<String>,
    /// Extra environment variable for the chat (repeatable), `KEY=VALUE`.
    #[arg(long, global = true)]
    chat_env: Vec<String>,
    /// Extra argument for the reference (repeatable), e.g. `--reference-arg=--nodelay=false`.
    #[arg(long, global = true, allow_hyphen_values = true)]
    reference_arg: Vec<String>,
    /// Seconds a server gets to exit after SIGTERM before SIGKILL.
    #[arg(long, global = true, default_value_t = 3.0)]
    stop_grace: f64,
    /// Tokio worker threads of the load generator.
    #[arg(long, global = true, default_value_t = 2)]
    threads: usize,
    /// Chat instances on one PostgreSQL database (give it with
    /// `--chat-env CHAT_DATABASE_URL=…`); clients and senders take turns among them.
    #[arg(long, global = true, default_value_t = 1)]
    chat_instances: usize,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scenario 1: many clients in one room, a few senders at a fixed total rate.
    Fanout(FanoutArgs),
    /// Scenario 2: closed-loop senders, as fast as the server turns messages around.
    Saturation(SaturationArgs),
    /// Scenario 3: logged-in idle sockets; server RSS per connection.
    Idle(IdleArgs),
    /// Scenario 4: `GET /rooms/{slug}` with history, requests per second.
    Page(PageArgs),
    /// Scenario 6: the fan-out scenario at several client counts.
    Growth(GrowthArgs),
    /// Issue 5's slow consumer: the fan-out scenario twice, the second time with readers that
    /// stop reading; reports the others' latency both times and the server's memory.
    SlowConsumer(SlowConsumerArgs),
    /// Runs the reference server (the load generator starts it as a child process).
    ServeReference(reference::ReferenceArgs),
}

#[derive(Debug, Clone, Args)]
struct ConnArgs {
    /// The room every client joins.
    #[arg(long, default_value = "lobby")]
    room: String,
    /// Sockets opened with each login's cookie (the chat allows 20 per login).
    #[arg(long, default_value_t = 1)]
    sockets_per_login: usize,
    /// Logins in flight at once.
    #[arg(long, default_value_t = 16)]
    login_concurrency: usize,
    /// WebSocket handshakes in flight at once.
    #[arg(long, default_value_t = 128)]
    connect_concurrency: usize,
    /// Seconds the login phase may take.
    #[arg(long, default_value_t = 180.0)]
    login_timeout: f64,
    /// Seconds the connect phase may take.
    #[arg(long, default_value_t = 120.0)]
    connect_timeout: f64,
    /// Extra bytes of padding in each message body.
    #[arg(long, default_value_t = 0)]
    body_pad: usize,
    /// Leave out the `client_id` the page's script adds to each send.
    #[arg(long)]
    no_client_id: bool,
}

#[derive(Debug, Clone, Args)]
struct FanoutArgs {
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// The first `senders` clients also send.
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Messages per second, all senders together.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds to wait for outstanding deliveries after sending stops.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// Seconds between the last connect and the first send.
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Debug, Clone, Args)]
struct SaturationArgs {
    #[arg(long, default_value_t = 100)]
    clients: usize,
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Messages each sender keeps in flight.
    #[arg(long, default_value_t = 1)]
    inflight: usize,
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    /// Seconds a sender waits for its own copy before sending again.
    #[arg(long, default_value_t = 5.0)]
    closed_timeout: f64,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Debug, Clone, Args)]
struct IdleArgs {
    /// Idle sockets; clamped to what the open-files limit leaves.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Seconds to let the connections settle before reading the server's memory.
    #[arg(long, default_value_t = 5.0)]
    settle: f64,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Debug, Clone, Args)]
struct PageArgs {
    #[arg(long, default_value = "lobby")]
    room: String,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Messages of history the chat's room gets first.
    #[arg(long, default_value_t = 50)]
    history: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
}

#[derive(Debug, Clone, Args)]
struct SlowConsumerArgs {
    #[arg(long, default_value_t = 100)]
    clients: usize,
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Messages per second, all senders together.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Clients that stop reading in the second run of each pair.
    #[arg(long, default_value_t = 1)]
    slow_readers: usize,
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Debug, Clone, Args)]
struct GrowthArgs {
    /// Client counts to run the fan-out scenario at.
    #[arg(long, value_delimiter = ',', default_values_t = vec![50, 100, 200])]
    sizes: Vec<usize>,
    #[arg(long, default_value_t = 10)]
    senders: usize,
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    #[command(flatten)]
    conn: ConnArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::ServeReference(args) = &cli.command {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        return runtime.block_on(reference::serve(args.clone()));
    }
    let fd_limit = procs::raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.common.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(bench(cli, fd_limit))
}

struct Bench {
    common: Common,
    launch: Launch,
    sources: Arc<Sources>,
}

impl Bench {
    fn kinds(&self) -> Vec<Kind> {
        match self.common.target {
            Targets::Both => vec![Kind::Chat, Kind::Reference],
            Targets::Chat => vec![Kind::Chat],
            Targets::Reference => vec![Kind::Reference],
        }
    }
}

async fn bench(cli: Cli, fd_limit: u64) -> anyhow::Result<()> {
    let common = cli.common.clone();
    if common.target != Targets::Reference && !common.chat_bin.exists() {
        anyhow::bail!(
            "{} does not exist: run `cargo build --release` first (or pass --chat-bin)",
            common.chat_bin.display()
        );
    }
    let launch = Launch {
        chat_bin: std::fs::canonicalize(&common.chat_bin).unwrap_or(common.chat_bin.clone()),
        chat_log: common.chat_log.clone(),
        chat_args: common.chat_arg.clone(),
        chat_env: common
            .chat_env
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        work_dir: common.work_dir.clone(),
        reference_args: common.reference_arg.clone(),
        stop_grace: Duration::from_secs_f64(common.stop_grace),
        chat_instances: common.chat_instances.max(1),
    };
    if launch.chat_instances > 1
        && !launch
            .chat_env
            .iter()
            .any(|(k, _)| k == "CHAT_DATABASE_URL")
    {
        anyhow::bail!("--chat-instances needs --chat-env CHAT_DATABASE_URL=postgres://…");
    }
    let bench = Bench {
        sources: Arc::new(Sources::new(common.sources)),
        common,
        launch,
    };
    println!(
        "loadgen: open-files limit {fd_limit}, {} source addresses, {} worker threads",
        bench.common.sources, bench.common.threads
    );
    match cli.command {
        Command::Fanout(a) => {
            let plan = plan_from(
                &a.conn,
                a.clients,
                a.senders,
                Mode::Open { rate: a.rate },
                a.duration,
                a.drain,
                a.settle,
                5.0,
            );
            println!(
                "== fan-out: {} clients, {} senders, {} msg/s for {} s",
                a.clients, a.senders, a.rate, a.duration
            );
            let results = compare_clients(&bench, &plan).await?;
            summarize_deliveries(&results);
        }
        Command::Saturation(a) => {
            let plan = plan_from(
                &a.conn,
                a.clients,
                a.senders,
                Mode::Closed {
                    inflight: a.inflight,
                },
                a.duration,
                a.drain,
                a.settle,
                a.closed_timeout,
            );
            println!(
                "== saturation: {} clients, {} closed-loop senders ({} in flight each) for {} s",
                a.clients, a.senders, a.inflight, a.duration
            );
            let results = compare_clients(&bench, &plan).await?;
            summarize_deliveries(&results);
        }
        Command::Idle(a) => {
            // Leave room for the generator's own files.
            let room = fd_limit.saturating_sub(300) as usize;
            let clients = if a.clients > room {
                println!(
                    "idle: clamping {} clients to {room} (open-files limit {fd_limit})",
                    a.clients
                );
                room
            } else {
                a.clients
            };
            let plan = plan_from(&a.conn, clients, 0, Mode::Idle, 0.0, 0.0, a.settle, 5.0);
            println!("== idle capacity: {clients} logged-in idle sockets");
            let results = compare_clients(&bench, &plan).await?;
            summarize_idle(&results);
        }
        Command::Page(a) => {
            println!(
                "== room page: GET /rooms/{} with {} messages, {} connections, {} s",
                a.room, a.history, a.connections, a.duration
            );
            let results = compare_page(&bench, &a).await?;
            summarize_page(&results);
        }
        Command::Growth(a) => {
            let mut rows = Vec::new();
            for &size in &a.sizes {
                let plan = plan_from(
                    &a.conn,
                    size,
                    a.senders.min(size),
                    Mode::Open { rate: a.rate },
                    a.duration,
                    a.drain,
                    a.settle,
                    5.0,
                );
                println!(
                    "== growth: fan-out with {size} clients, {} senders, {} msg/s for {} s",
                    a.senders, a.rate, a.duration
                );
                let results = compare_clients(&bench, &plan).await?;
                summarize_deliveries(&results);
                rows.push((size, results));
            }
            summarize_growth(&rows);
        }
        Command::SlowConsumer(a) => {
            let plain = plan_from(
                &a.conn,
                a.clients,
                a.senders,
                Mode::Open { rate: a.rate },
                a.duration,
                a.drain,
                a.settle,
                5.0,
            );
            let slowed = Plan {
                slow_readers: a.slow_readers,
                ..plain.clone()
            };
            println!(
                "== slow consumer: {} clients, {} senders, {} msg/s for {} s; each pair of runs \
                 without, then with {} reader(s) that stop reading",
                a.clients, a.senders, a.rate, a.duration, a.slow_readers
            );
            let results = compare_slow_consumer(&bench, &plain, &slowed).await?;
            summarize_slow_consumer(&results);
        }
        Command::ServeReference(_) => unreachable!("handled before the runtime starts"),
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn plan_from(
    conn: &ConnArgs,
    clients: usize,
    senders: usize,
    mode: Mode,
    duration: f64,
    drain: f64,
    settle: f64,
    closed_timeout: f64,
) -> Plan {
    Plan {
        clients,
        senders: senders.min(clients),
        mode,
        duration: Duration::from_secs_f64(duration),
        drain: Duration::from_secs_f64(drain),
        settle: Duration::from_secs_f64(settle),
        room: conn.room.clone(),
        sockets_per_login: conn.sockets_per_login.clamp(1, 20),
        login_concurrency: conn.login_concurrency,
        connect_concurrency: conn.connect_concurrency,
        login_timeout: Duration::from_secs_f64(conn.login_timeout),
        connect_timeout: Duration::from_secs_f64(conn.connect_timeout),
        body_pad: conn.body_pad,
        client_id: !conn.no_client_id,
        closed_timeout: Duration::from_secs_f64(closed_timeout),
        slow_readers: 0,
    }
}

type Results<T> = Vec<(Kind, Vec<T>)>;

fn push<T>(results: &mut Results<T>, kind: Kind, value: T) {
    match results.iter_mut().find(|(k, _)| *k == kind) {
        Some((_, values)) => values.push(value),
        None => results.push((kind, vec![value])),
    }
}

async fn compare_clients(bench: &Bench, plan: &Plan) -> anyhow::Result<Results<Outcome>> {
    let mut results = Vec::new();
    for round in 1..=bench.common.repeat.max(1) {
        for kind in bench.kinds() {
            println!("[{kind} #{round}] load average before: {}", loadavg());
            let server = Server::start(&bench.launch, kind, None).await?;
            let outcome = clients::run(plan, &server, &bench.sources).await;
            let mut server = server;
            let alive = server.alive();
            server.stop().await;
            let outcome = outcome.with_context(|| format!("{kind} run {round}"))?;
            print_outcome(kind, round, &outcome, plan);
            if !alive {
                println!("  !! the {kind} server died during the run");
            }
            push(&mut results, kind, outcome);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Ok(results)
}

/// Per server, runs without and with the slow readers, back to back in the same round.
async fn compare_slow_consumer(
    bench: &Bench,
    plain: &Plan,
    slowed: &Plan,
) -> anyhow::Result<Results<(Outcome, Outcome)>> {
    let mut results = Vec::new();
    for round in 1..=bench.common.repeat.max(1) {
        for kind in bench.kinds() {
            let mut pair = Vec::new();
            for plan in [plain, slowed] {
                println!(
                    "[{kind} #{round}, {} slow] load average before: {}",
                    plan.slow_readers,
                    loadavg()
                );
                let server = Server::start(&bench.launch, kind, None).await?;
                let outcome = clients::run(plan, &server, &bench.sources).await;
                server.stop().await;
                let outcome = outcome.with_context(|| format!("{kind} run {round}"))?;
                print_outcome(kind, round, &outcome, plan);
                print_slow(&outcome);
                pair.push(outcome);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let with = pair.pop().expect("two runs");
            let without = pair.pop().expect("two runs");
            push(&mut results, kind, (without, with));
        }
    }
    Ok(results)
}

fn print_slow(o: &Outcome) {
    let m = &o.mem_during;
    println!(
        "  server RSS KiB while sending: min {}, max {}, last {} ({} samples)",
        m.min_rss_kib, m.max_rss_kib, m.last_rss_kib, m.samples
    );
    if let Some(slow) = &o.slow {
        println!(
            "  {} slow reader(s): server closed one after {}; when read, they held {} frames and ended {:?}",
            slow.readers,
            slow.closed_after_secs
                .map_or("– (never)".to_owned(), |s| format!("{s:.1} s")),
            slow.frames_buffered,
            slow.endings
        );
    }
}

async fn compare_page(bench: &Bench, args: &PageArgs) -> anyhow::Result<Results<PageOutcome>> {
    let plan = PagePlan {
        room: args.room.clone(),
        connections: args.connections,
        duration: Duration::from_secs_f64(args.duration),
        warmup: Duration::from_secs_f64(args.warmup),
    };
    std::fs::create_dir_all(&bench.common.work_dir)?;
    let page_file = bench
        .common
        .work_dir
        .join(format!("room-page-{}.html", std::process::id()));
    let mut results = Vec::new();
    for round in 1..=bench.common.repeat.max(1) {
        for kind in bench.kinds() {
            println!("[{kind} #{round}] load average before: {}", loadavg());
            let have_page = page_file.exists();
            let server = Server::start(
                &bench.launch,
                kind,
                have_page.then_some(page_file.as_path()),
            )
            .await?;
            let setup = async {
                let (cookies, _, failures) = clients::login_many(
                    &[server.addr],
                    &bench.sources,
                    round as u32,
                    1,
                    1,
                    Duration::from_secs(30),
                )
                .await;
                let cookie = cookies
                    .into_iter()
                    .next()
                    .with_context(|| format!("login failed: {failures:?}"))?;
                if kind == Kind::Chat {
                    page::seed_history(server.addr, &args.room, &cookie, args.history).await?;
                }
                let bytes = page::fetch_page(server.addr, &args.room, &cookie).await?;
                anyhow::Ok((cookie, bytes))
            };
            let (cookie, bytes) = setup.await.with_context(|| format!("{kind} page setup"))?;
            if kind == Kind::Chat && !have_page {
                std::fs::write(&page_file, &bytes)?;
            }
            let newest = net::newest_message_id(&String::from_utf8_lossy(&bytes));
            let outcome = page::run(&plan, &server, &bench.sources, &cookie).await;
            server.stop().await;
            let outcome = outcome?;
            println!(
                "[{kind} #{round}] {:.0} req/s ({} requests, {} errors), {} bytes/page (newest msg-{newest}), \
                 latency ms p50 {:.2} p99 {:.2} max {:.2}; server CPU {:.1} s ({:.0} µs/request), loadgen CPU {:.1} s",
                outcome.requests_per_s,
                outcome.requests,
                outcome.errors,
                outcome.bytes_per_response,
                outcome.p(0.5),
                outcome.p(0.99),
                outcome.latency.max() as f64 / 1000.0,
                outcome.server_cpu_secs,
                outcome.server_cpu_secs * 1e6 / outcome.requests.max(1) as f64,
                outcome.loadgen_cpu_secs,
            );
            push(&mut results, kind, outcome);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let _ = std::fs::remove_file(&page_file);
    Ok(results)
}

fn print_outcome(kind: Kind, round: usize, o: &Outcome, plan: &Plan) {
    let failures = if o.failures.is_empty() {
        String::new()
    } else {
        format!(" {:?}", o.failures)
    };
    println!(
        "[{kind} #{round}] connected {}/{}, failed {}{failures} (logins {} ok / {} failed in {:.1} s, connects {:.1} s)",
        o.connected,
        o.clients,
        o.failed,
        o.logins_ok,
        o.logins_failed,
        o.login_secs,
        o.connect_secs
    );
    if plan.mode == Mode::Idle {
        println!(
            "  server RSS KiB: start {}, logged in {}, connected {} (HWM {}) => {:.2} KiB per connection",
            o.mem_start.rss_kib,
            o.mem_logged_in.rss_kib,
            o.mem_connected.rss_kib,
            o.mem_connected.hwm_kib,
            o.rss_per_conn_kib()
        );
        return;
    }
    let pct = if o.expected > 0 {
        100.0 * o.received as f64 / o.expected as f64
    } else {
        0.0
    };
    println!(
        "  sent {}, expected {}, received {} ({pct:.3}%), duplicates {}, error frames {}, dropped {}, closed-loop timeouts {}",
        o.sent, o.expected, o.received, o.duplicates, o.error_frames, o.dropped, o.closed_timeouts
    );
    println!(
        "  {:.0} deliveries/s over {:.2} s; latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
        o.deliveries_per_s,
        o.elapsed_secs,
        o.p(0.5),
        o.p(0.9),
        o.p(0.99),
        o.max_ms()
    );
    let persisted = match o.persisted {
        Some(n) => format!("; persisted {n}/{}", o.sent),
        None => String::new(),
    };
    println!(
        "  server CPU {:.2} s ({:.2} µs/delivery), loadgen CPU {:.2} s{persisted}",
        o.server_cpu_secs,
        o.server_us_per_delivery(),
        o.loadgen_cpu_secs
    );
}

/// The 1, 5 and 15 minute load averages: other work on the machine skews every figure.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn med<T>(results: &Results<T>, kind: Kind, metric: impl Fn(&T) -> f64) -> Option<f64> {
    results
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, runs)| median(runs.iter().map(&metric).collect()))
}

fn fmt_value(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "–".into(),
    }
}

/// Prints `| metric | chat | reference | chat ÷ reference |` rows, medians over the runs.
/// A summary row: name, decimals, and how to read the metric from one run.
type Row<'a, T> = (&'a str, usize, &'a dyn Fn(&T) -> f64);

fn table<T>(results: &Results<T>, rows: &[Row<'_, T>]) {
    let runs = results.first().map_or(0, |(_, r)| r.len());
    println!("\nmedians of {runs} run(s) per server:");
    println!("| metric | chat | reference | chat ÷ reference |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, decimals, metric) in rows {
        let chat = med(results, Kind::Chat, metric);
        let reference = med(results, Kind::Reference, metric);
        let ratio = match (chat, reference) {
            (Some(c), Some(r)) if r != 0.0 => Some(c / r),
            _ => None,
        };
        println!(
            "| {name} | {} | {} | {} |",
            fmt_value(chat, *decimals),
            fmt_value(reference, *decimals),
            fmt_value(ratio, 2)
        );
    }
    println!();
}

fn summarize_deliveries(results: &Results<Outcome>) {
    table(
        results,
        &[
            ("connected", 0, &|o: &Outcome| o.connected as f64),
            ("sent", 0, &|o: &Outcome| o.sent as f64),
            ("expected deliveries", 0, &|o: &Outcome| o.expected as f64),
            ("received deliveries", 0, &|o: &Outcome| o.received as f64),
            ("delivered %", 3, &|o: &Outcome| {
                100.0 * o.received as f64 / o.expected.max(1) as f64
            }),
            ("deliveries/s", 0, &|o: &Outcome| o.deliveries_per_s),
            ("p50 ms", 2, &|o: &Outcome| o.p(0.5)),
            ("p90 ms", 2, &|o: &Outcome| o.p(0.9)),
            ("p99 ms", 2, &|o: &Outcome| o.p(0.99)),
            ("max ms", 2, &|o: &Outcome| o.max_ms()),
            ("server CPU µs/delivery", 2, &|o: &Outcome| {
                o.server_us_per_delivery()
            }),
        ],
    );
}

fn summarize_idle(results: &Results<Outcome>) {
    table(
        results,
        &[
            ("connected", 0, &|o: &Outcome| o.connected as f64),
            ("RSS logged in (KiB)", 0, &|o: &Outcome| {
                o.mem_logged_in.rss_kib as f64
            }),
            ("RSS connected (KiB)", 0, &|o: &Outcome| {
                o.mem_connected.rss_kib as f64
            }),
            ("VmHWM (KiB)", 0, &|o: &Outcome| {
                o.mem_connected.hwm_kib as f64
            }),
            ("KiB per connection", 2, &|o: &Outcome| o.rss_per_conn_kib()),
            ("login s", 1, &|o: &Outcome| o.login_secs),
            ("connect s", 1, &|o: &Outcome| o.connect_secs),
        ],
    );
}

fn summarize_page(results: &Results<PageOutcome>) {
    table(
        results,
        &[
            ("requests/s", 0, &|o: &PageOutcome| o.requests_per_s),
            ("p50 ms", 2, &|o: &PageOutcome| o.p(0.5)),
            ("p99 ms", 2, &|o: &PageOutcome| o.p(0.99)),
            ("bytes/page", 0, &|o: &PageOutcome| {
                o.bytes_per_response as f64
            }),
            ("errors", 0, &|o: &PageOutcome| o.errors as f64),
            ("server CPU µs/request", 1, &|o: &PageOutcome| {
                o.server_cpu_secs * 1e6 / o.requests.max(1) as f64
            }),
        ],
    );
}

fn summarize_slow_consumer(results: &Results<(Outcome, Outcome)>) {
    let runs = results.first().map_or(0, |(_, r)| r.len());
    println!(
        "\nmedians of {runs} pair(s) per server (the others' latency, without → with the slow readers):"
    );
    println!(
        "| server | p50 ms | p99 ms | max ms | delivered % | max RSS KiB | slow reader closed after s |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (kind, pairs) in results {
        let med_of = |f: &dyn Fn(&Outcome) -> f64, with: bool| {
            median(
                pairs
                    .iter()
                    .map(|(without, slowed)| f(if with { slowed } else { without }))
                    .collect(),
            )
        };
        let both = |f: &dyn Fn(&Outcome) -> f64, decimals: usize| {
            format!(
                "{:.decimals$} → {:.decimals$}",
                med_of(f, false),
                med_of(f, true)
            )
        };
        let closed: Vec<f64> = pairs
            .iter()
            .filter_map(|(_, with)| with.slow.as_ref()?.closed_after_secs)
            .collect();
        println!(
            "| {kind} | {} | {} | {} | {} | {} | {} |",
            both(&|o| o.p(0.5), 2),
            both(&|o| o.p(0.99), 2),
            both(&|o| o.max_ms(), 2),
            both(&|o| 100.0 * o.received as f64 / o.expected.max(1) as f64, 3),
            both(&|o| o.mem_during.max_rss_kib as f64, 0),
            if closed.is_empty() {
                "never".to_owned()
            } else {
                format!("{:.1}", median(closed))
            },
        );
    }
    println!();
}

fn summarize_growth(rows: &[(usize, Results<Outcome>)]) {
    println!("growth (medians):");
    println!(
        "| clients | chat p99 ms | ref p99 ms | p99 ratio | chat µs CPU/delivery | ref µs CPU/delivery | chat deliveries/s | ref deliveries/s | chat delivered % | ref delivered % |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (size, results) in rows {
        let p99 = |k| med(results, k, |o: &Outcome| o.p(0.99));
        let cpu = |k| med(results, k, |o: &Outcome| o.server_us_per_delivery());
        let rate = |k| med(results, k, |o: &Outcome| o.deliveries_per_s);
        let pct = |k| {
            med(results, k, |o: &Outcome| {
                100.0 * o.received as f64 / o.expected.max(1) as f64
            })
        };
        let ratio = match (p99(Kind::Chat), p99(Kind::Reference)) {
            (Some(c), Some(r)) if r > 0.0 => Some(c / r),
            _ => None,
        };
        println!(
            "| {size} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            fmt_value(p99(Kind::Chat), 2),
            fmt_value(p99(Kind::Reference), 2),
            fmt_value(ratio, 2),
            fmt_value(cpu(Kind::Chat), 2),
            fmt_value(cpu(Kind::Reference), 2),
            fmt_value(rate(Kind::Chat), 0),
            fmt_value(rate(Kind::Reference), 0),
            fmt_value(pct(Kind::Chat), 3),
            fmt_value(pct(Kind::Reference), 3),
        );
    }
}
