//! Many WebSocket clients in one room: log in, connect, resume, then send and receive on a
//! shared clock. Every phase has a deadline.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{MissedTickBehavior, interval_at, sleep_until};
use tokio_tungstenite::tungstenite::Message;

use crate::net::{self, HttpConn, Sources, Ws};
use crate::procs::{self, Memory, Server};

/// Latency histograms are sharded so that receivers rarely contend on a lock.
const SHARDS: usize = 64;
/// Highest latency the histograms track, in microseconds (two minutes).
const MAX_LATENCY_US: u64 = 120_000_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Open loop: `rate` messages per second in total, spread over the senders.
    Open { rate: f64 },
    /// Closed loop: each sender keeps `inflight` messages out and sends the next one when its
    /// own copy comes back.
    Closed { inflight: usize },
    /// Nobody sends; sockets just stay open.
    Idle,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub clients: usize,
    pub senders: usize,
    pub mode: Mode,
    pub duration: Duration,
    pub drain: Duration,
    pub settle: Duration,
    pub room: String,
    pub sockets_per_login: usize,
    pub login_concurrency: usize,
    pub connect_concurrency: usize,
    pub login_timeout: Duration,
    pub connect_timeout: Duration,
    pub body_pad: usize,
    pub client_id: bool,
    /// Closed loop: a sender that hears nothing back for this long sends again.
    pub closed_timeout: Duration,
    /// Extra clients that connect, resume, and then never read (issue 5's slow consumer).
    pub slow_readers: usize,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub clients: usize,
    pub logins_ok: usize,
    pub logins_failed: usize,
    pub login_secs: f64,
    pub connected: usize,
    pub failed: usize,
    pub failures: BTreeMap<String, usize>,
    pub connect_secs: f64,
    pub sent: u64,
    pub expected: u64,
    pub received: u64,
    pub duplicates: u64,
    pub error_frames: u64,
    pub dropped: u64,
    pub closed_timeouts: u64,
    /// From the start signal to the last delivery.
    pub elapsed_secs: f64,
    pub deliveries_per_s: f64,
    pub latency: Histogram<u64>,
    pub server_cpu_secs: f64,
    pub loadgen_cpu_secs: f64,
    /// Server memory right after start, after the logins, and once the sockets settled.
    pub mem_start: Memory,
    pub mem_logged_in: Memory,
    pub mem_connected: Memory,
    /// This run's messages found in the room's stored history afterwards (chat only).
    pub persisted: Option<u64>,
    /// Server memory sampled while messages flowed.
    pub mem_during: MemorySamples,
    /// What became of the readers that stopped reading, if the plan had any.
    pub slow: Option<SlowReport>,
}

/// Server `VmRSS` sampled during the send phase.
#[derive(Debug, Clone, Default)]
pub struct MemorySamples {
    pub samples: usize,
    pub min_rss_kib: u64,
    pub max_rss_kib: u64,
    pub last_rss_kib: u64,
}

impl MemorySamples {
    fn add(&mut self, rss_kib: u64) {
        if self.samples == 0 || rss_kib < self.min_rss_kib {
            self.min_rss_kib = rss_kib;
        }
        self.max_rss_kib = self.max_rss_kib.max(rss_kib);
        self.last_rss_kib = rss_kib;
        self.samples += 1;
    }
}

/// How the server treated the clients that stopped reading.
#[derive(Debug, Clone)]
pub struct SlowReport {
    pub readers: usize,
    /// Seconds from the first send until the server logged that it closed a socket that
    /// stopped reading (the chat logs it; the reference never closes one).
    pub closed_after_secs: Option<f64>,
    /// How each reader's socket ended when it finally read what was buffered: the close code
    /// the server sent, or how the stream ended without one.
    pub endings: BTreeMap<String, usize>,
    /// Frames the readers found buffered for them when they finally read.
    pub frames_buffered: u64,
}

impl Outcome {
    pub fn p(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.latency.max() as f64 / 1000.0
    }

    /// Server CPU microseconds per delivery in the measured window.
    pub fn server_us_per_delivery(&self) -> f64 {
        if self.received == 0 {
            return 0.0;
        }
        self.server_cpu_secs * 1e6 / self.received as f64
    }

    /// KiB of server RSS per connected socket, above the logged-in baseline.
    pub fn rss_per_conn_kib(&self) -> f64 {
        if self.connected == 0 {
            return 0.0;
        }
        (self.mem_connected.rss_kib as f64 - self.mem_logged_in.rss_kib as f64)
            / self.connected as f64
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Wait,
    Go(tokio::time::Instant),
    StopSending,
    Close,
}

#[derive(Debug, Clone, Copy)]
enum Role {
    Receiver,
    Open {
        sender: usize,
        interval: Duration,
        offset: Duration,
    },
    Closed {
        sender: usize,
        inflight: usize,
    },
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    duplicates: AtomicU64,
    error_frames: AtomicU64,
    dropped: AtomicU64,
    closed_timeouts: AtomicU64,
    last_arrival_us: AtomicU64,
}

#[derive(Default)]
struct ConnectBook {
    closed: bool,
    connected: usize,
    failed: usize,
    failures: BTreeMap<String, usize>,
}

impl ConnectBook {
    fn fail(&mut self, kind: String) {
        self.failed += 1;
        *self.failures.entry(kind).or_default() += 1;
    }
}

struct Shared {
    /// `lg{run}s`: marks this run's messages in bodies. Tokens are letters and digits only,
    /// so the chat's Markdown-style formatting leaves them alone.
    prefix: String,
    run: u32,
    senders: usize,
    base: Instant,
    /// Client `n` connects to the one at `n` modulo their number (its login's cookie works
    /// on any: the instances share their sessions).
    servers: Vec<SocketAddr>,
    room: String,
    resume_after: u64,
    pad: String,
    client_id: bool,
    closed_timeout: Duration,
    counters: Counters,
    book: Mutex<ConnectBook>,
    hists: Vec<Mutex<Histogram<u64>>>,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }

    fn frame(&self, sender: usize, seq: u64) -> String {
        let t = self.now_us();
        let client_id = if self.client_id {
            format!(r#""client_id":"c{}x{sender}x{seq}","#, self.run)
        } else {
            String::new()
        };
        // What htmx-ext-ws sends for the composer form: its values plus HEADERS.
        format!(
            r#"{{"body":"{prefix}{sender}q{seq}t{t}{pad}",{client_id}"HEADERS":{{"HX-Request":"true","HX-Trigger":"composer","HX-Trigger-Name":null,"HX-Target":"composer","HX-Current-URL":"http://{server}/rooms/{room}"}}}}"#,
            prefix = self.prefix,
            pad = self.pad,
            server = self.servers[sender % self.servers.len()],
            room = self.room,
        )
    }

    /// Reads every message body in a fragment; returns how many were the client's own.
    fn receive(&self, text: &str, shard: usize, last_seq: &mut [u64], me: Option<usize>) -> usize {
        let now = self.now_us();
        let mut own = 0;
        let mut fresh = 0;
        let mut latencies: [u64; 16] = [0; 16];
        let mut n_lat = 0;
        for token in body_tokens(text) {
            let Some((sender, seq, sent_at)) = parse_token(token, &self.prefix) else {
                continue;
            };
            let sender = sender as usize;
            if sender >= last_seq.len() {
                continue;
            }
            if seq <= last_seq[sender] {
                self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            last_seq[sender] = seq;
            fresh += 1;
            if Some(sender) == me {
                own += 1;
            }
            if n_lat == latencies.len() {
                self.record(shard, &latencies[..n_lat]);
                n_lat = 0;
            }
            latencies[n_lat] = now.saturating_sub(sent_at).max(1);
            n_lat += 1;
        }
        if n_lat > 0 {
            self.record(shard, &latencies[..n_lat]);
        }
        if fresh > 0 {
            self.counters.received.fetch_add(fresh, Ordering::Relaxed);
            self.counters
                .last_arrival_us
                .fetch_max(now, Ordering::Relaxed);
        }
        if text.contains("data-error=\"") {
            self.counters.error_frames.fetch_add(1, Ordering::Relaxed);
        }
        own
    }

    fn record(&self, shard: usize, latencies: &[u64]) {
        let mut hist = self.hists[shard % SHARDS].lock().expect("histogram lock");
        for &l in latencies {
            hist.saturating_record(l);
        }
    }
}

/// The first word of every message body in a fragment. Bodies are
/// `<div class="msg-body…">…</div>`, possibly wrapped in `<p>` (the chat formats them); the
/// word ends at the first character that is not a letter or digit.
fn body_tokens(html: &str) -> impl Iterator<Item = &str> {
    const MARK: &str = "class=\"msg-body";
    let mut rest = html;
    std::iter::from_fn(move || {
        let at = rest.find(MARK)?;
        rest = &rest[at + MARK.len()..];
        // Past the end of the opening tag, then past any tags that wrap the text.
        rest = &rest[rest.find('>').map_or(rest.len(), |i| i + 1)..];
        while rest.starts_with('<') {
            rest = &rest[rest.find('>').map_or(rest.len(), |i| i + 1)..];
        }
        let end = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        Some(&rest[..end])
    })
}

/// `{prefix}{sender}q{seq}t{sent_at_us}` → `(sender, seq, sent_at_us)`.
fn parse_token(token: &str, prefix: &str) -> Option<(u64, u64, u64)> {
    let rest = token.strip_prefix(prefix)?;
    let (sender, rest) = rest.split_once('q')?;
    let (seq, sent_at) = rest.split_once('t')?;
    Some((
        sender.parse().ok()?,
        seq.parse().ok()?,
        sent_at.parse().ok()?,
    ))
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("histogram bounds")
}

/// GET the room page and read the newest message id from it.
pub async fn newest_id(server: SocketAddr, room: &str, cookie: &str) -> anyhow::Result<u64> {
    let mut conn = HttpConn::open([127, 0, 0, 1].into(), server).await?;
    let mut body = Vec::new();
    let head = tokio::time::timeout(
        Duration::from_secs(10),
        conn.get(&format!("/rooms/{room}"), Some(cookie), &mut body),
    )
    .await??;
    if head.status != 200 {
        anyhow::bail!("GET /rooms/{room} answered {}", head.status);
    }
    Ok(net::newest_message_id(&String::from_utf8_lossy(&body)))
}

/// Pages back through the room's stored history ("load older" fragments) from the newest
/// message down to `after`, and counts the distinct bodies that start with `prefix`. Bounded
/// by `limit`; returns the count and whether the walk finished.
pub async fn count_persisted(
    server: SocketAddr,
    room: &str,
    cookie: &str,
    prefix: &str,
    after: u64,
    limit: Duration,
) -> anyhow::Result<(u64, bool)> {
    let walk = async {
        let mut conn = HttpConn::open([127, 0, 0, 1].into(), server).await?;
        let mut body = Vec::new();
        let mut before = newest_id(server, room, cookie).await? + 1;
        let mut seen = std::collections::HashSet::new();
        while before > after + 1 {
            let head = conn
                .get_with(
                    &format!("/rooms/{room}/messages?before={before}"),
                    Some(cookie),
                    "HX-Request: true\r\n",
                    &mut body,
                )
                .await?;
            if head.status != 200 {
                anyhow::bail!("history page answered {}", head.status);
            }
            let html = String::from_utf8_lossy(&body);
            for token in body_tokens(&html) {
                if token.starts_with(prefix) {
                    seen.insert(token.to_owned());
                }
            }
            match net::oldest_message_id(&html) {
                Some(oldest) if oldest < before => before = oldest,
                _ => break,
            }
        }
        anyhow::Ok(seen.len() as u64)
    };
    match tokio::time::timeout(limit, walk).await {
        Ok(count) => Ok((count?, true)),
        Err(_) => Ok((0, false)),
    }
}

/// Logs in `count` nicknames, `concurrency` at a time, until `limit`. Returns the cookies and
/// the number of failures.
pub async fn login_many(
    servers: &[SocketAddr],
    sources: &Arc<Sources>,
    run: u32,
    count: usize,
    concurrency: usize,
    limit: Duration,
) -> (Vec<String>, usize, BTreeMap<String, usize>) {
    let deadline = tokio::time::sleep(limit);
    let logins = futures_util::stream::iter(0..count)
        .map(|i| {
            let sources = sources.clone();
            async move {
                let nickname = format!("lg{run}u{i}");
                let server = servers[i % servers.len()];
                net::login(sources.pick(), server, &nickname, Duration::from_secs(30)).await
            }
        })
        .buffer_unordered(concurrency.max(1))
        .take_until(deadline);
    let results: Vec<_> = logins.collect().await;
    let mut cookies = Vec::with_capacity(count);
    let mut failures = BTreeMap::new();
    for result in results {
        match result {
            Ok(cookie) => cookies.push(cookie),
            Err(e) => *failures.entry(net::failure_kind(&e)).or_default() += 1,
        }
    }
    let failed = count - cookies.len();
    (cookies, failed, failures)
}

/// Runs one plan against one server.
pub async fn run(plan: &Plan, server: &Server, sources: &Arc<Sources>) -> anyhow::Result<Outcome> {
    let run: u32 = rand_u32();
    let mem_start = server.memory();

    // Log in.
    let started = Instant::now();
    let logins = plan.clients.div_ceil(plan.sockets_per_login.max(1));
    let (cookies, logins_failed, login_failures) = login_many(
        &server.addrs(),
        sources,
        run,
        logins,
        plan.login_concurrency,
        plan.login_timeout,
    )
    .await;
    let login_secs = started.elapsed().as_secs_f64();
    if cookies.is_empty() {
        anyhow::bail!("no login succeeded: {login_failures:?}");
    }
    let baseline_id = newest_id(server.addr, &plan.room, &cookies[0])
        .await
        .unwrap_or(0);
    let mem_logged_in = server.memory();

    let shared = Arc::new(Shared {
        prefix: format!("lg{run}s"),
        run,
        senders: plan.senders,
        base: Instant::now(),
        servers: server.addrs(),
        room: plan.room.clone(),
        resume_after: baseline_id,
        pad: if plan.body_pad > 0 {
            format!(" {}", "x".repeat(plan.body_pad))
        } else {
            String::new()
        },
        client_id: plan.client_id,
        closed_timeout: plan.closed_timeout,
        counters: Counters::default(),
        book: Mutex::new(ConnectBook::default()),
        hists: (0..SHARDS).map(|_| Mutex::new(new_histogram())).collect(),
    });

    // Connect.
    let started = Instant::now();
    let (phase_tx, phase_rx) = watch::channel(Phase::Wait);
    let permits = Arc::new(Semaphore::new(plan.connect_concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for idx in 0..plan.clients {
        let Some(cookie) = cookies.get(idx / plan.sockets_per_login.max(1)).cloned() else {
            shared
                .book
                .lock()
                .expect("book lock")
                .fail("no login".into());
            continue;
        };
        let role = role_for(plan, idx);
        tasks.spawn(client(
            idx,
            shared.clone(),
            sources.clone(),
            cookie,
            role,
            phase_rx.clone(),
            permits.clone(),
        ));
    }
    let connect_deadline = Instant::now() + plan.connect_timeout;
    loop {
        {
            let book = shared.book.lock().expect("book lock");
            if book.connected + book.failed >= plan.clients {
                break;
            }
        }
        if Instant::now() >= connect_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (connected, failed, failures) = {
        let mut book = shared.book.lock().expect("book lock");
        book.closed = true;
        let pending = plan.clients - book.connected - book.failed;
        for _ in 0..pending {
            book.fail("connect deadline".into());
        }
        (book.connected, book.failed, book.failures.clone())
    };
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(plan.settle).await;
    let mem_connected = server.memory();

    // Readers that connect and resume like everyone else, then never read again.
    let mut slow_sockets = Vec::new();
    if plan.slow_readers > 0 {
        let (slow_cookies, _, slow_failures) = login_many(
            &server.addrs(),
            sources,
            run + 1,
            plan.slow_readers,
            plan.login_concurrency,
            plan.login_timeout,
        )
        .await;
        for cookie in &slow_cookies {
            let mut ws = net::ws_connect(sources.pick(), server.addr, &plan.room, cookie).await?;
            ws.send(Message::text(format!(
                r#"{{"resume_after": {baseline_id}}}"#
            )))
            .await?;
            slow_sockets.push(ws);
        }
        if slow_sockets.len() < plan.slow_readers {
            anyhow::bail!("slow readers could not log in: {slow_failures:?}");
        }
    }
    // Samples the server's memory (and, for slow readers, watches its log) while sending.
    let (sampling_tx, mut sampling_rx) = watch::channel(false);
    let sampler = {
        let pid = server.pid;
        let log = server.log.clone();
        let watch_log = plan.slow_readers > 0;
        tokio::spawn(async move {
            let started = Instant::now();
            let mut memory = MemorySamples::default();
            let mut closed_after = None;
            let mut ticks = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = sampling_rx.changed() => break,
                }
                memory.add(procs::memory(pid).rss_kib);
                if watch_log && closed_after.is_none() {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    if text.contains(STALLED_LOG_LINE) {
                        closed_after = Some(started.elapsed().as_secs_f64());
                    }
                }
            }
            (memory, closed_after)
        })
    };

    // Send, then drain.
    let cpu_server_0 = server.cpu_seconds();
    let cpu_self_0 = procs::cpu_seconds(std::process::id());
    let go_at = tokio::time::Instant::now();
    let go_us = shared.now_us();
    let mut persisted = None;
    if plan.mode != Mode::Idle {
        let _ = phase_tx.send(Phase::Go(go_at));
        tokio::time::sleep(plan.duration).await;
        let _ = phase_tx.send(Phase::StopSending);
        // Let a send that was being written finish before counting.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let drain_until = Instant::now() + plan.drain;
        loop {
            let sent = shared.counters.sent.load(Ordering::Relaxed);
            let received = shared.counters.received.load(Ordering::Relaxed);
            if received >= sent * connected as u64 || Instant::now() >= drain_until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let server_cpu_secs = server.cpu_seconds() - cpu_server_0;
    let loadgen_cpu_secs = procs::cpu_seconds(std::process::id()) - cpu_self_0;
    if plan.mode != Mode::Idle && server.kind == procs::Kind::Chat {
        let walk = count_persisted(
            server.addr,
            &plan.room,
            &cookies[0],
            &shared.prefix,
            baseline_id,
            Duration::from_secs(30),
        );
        match walk.await {
            Ok((count, true)) => persisted = Some(count),
            Ok((_, false)) => println!("  (the history walk ran out of time)"),
            Err(e) => println!("  (the history walk failed: {e:#})"),
        }
    }

    let _ = sampling_tx.send(true);
    let (mem_during, closed_after_secs) = sampler.await.unwrap_or_default();
    let slow = if slow_sockets.is_empty() {
        None
    } else {
        let mut endings = BTreeMap::new();
        let mut frames_buffered = 0;
        for ws in &mut slow_sockets {
            let (ending, frames) = read_to_end(ws, Duration::from_secs(5)).await;
            *endings.entry(ending).or_default() += 1;
            frames_buffered += frames;
        }
        Some(SlowReport {
            readers: slow_sockets.len(),
            closed_after_secs,
            endings,
            frames_buffered,
        })
    };
    drop(slow_sockets);

    // Close.
    let _ = phase_tx.send(Phase::Close);
    let closing = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), closing)
        .await
        .is_err()
    {
        tasks.abort_all();
    }

    let c = &shared.counters;
    let sent = c.sent.load(Ordering::Relaxed);
    let received = c.received.load(Ordering::Relaxed);
    let last = c.last_arrival_us.load(Ordering::Relaxed);
    let elapsed_secs = if last > go_us {
        (last - go_us) as f64 / 1e6
    } else {
        plan.duration.as_secs_f64()
    };
    let mut latency = new_histogram();
    for shard in &shared.hists {
        latency
            .add(&*shard.lock().expect("histogram lock"))
            .expect("same bounds");
    }
    let mut failures = failures;
    for (kind, n) in login_failures {
        *failures.entry(format!("login: {kind}")).or_default() += n;
    }
    Ok(Outcome {
        clients: plan.clients,
        logins_ok: cookies.len(),
        logins_failed,
        login_secs,
        connected,
        failed,
        failures,
        connect_secs,
        sent,
        expected: sent * connected as u64,
        received,
        duplicates: c.duplicates.load(Ordering::Relaxed),
        error_frames: c.error_frames.load(Ordering::Relaxed),
        dropped: c.dropped.load(Ordering::Relaxed),
        closed_timeouts: c.closed_timeouts.load(Ordering::Relaxed),
        elapsed_secs,
        deliveries_per_s: received as f64 / elapsed_secs.max(1e-9),
        latency,
        server_cpu_secs,
        loadgen_cpu_secs,
        mem_start,
        mem_logged_in,
        mem_connected,
        persisted,
        mem_during,
        slow,
    })
}

/// What the chat logs when it closes a socket that stopped reading.
const STALLED_LOG_LINE: &str = "closing a socket that stopped reading";

/// Reads what a socket has buffered until it ends, and says how it ended.
async fn read_to_end(ws: &mut Ws, limit: Duration) -> (String, u64) {
    let mut frames = 0;
    let reading = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => {
                    return match frame {
                        Some(frame) => format!("close {}", u16::from(frame.code)),
                        None => "close without a code".to_owned(),
                    };
                }
                Some(Ok(_)) => frames += 1,
                Some(Err(e)) => return format!("error: {}", net::failure_kind(&e.into())),
                None => return "end of stream".to_owned(),
            }
        }
    };
    match tokio::time::timeout(limit, reading).await {
        Ok(ending) => (ending, frames),
        Err(_) => ("still open".to_owned(), frames),
    }
}

fn role_for(plan: &Plan, idx: usize) -> Role {
    if idx >= plan.senders {
        return Role::Receiver;
    }
    match plan.mode {
        Mode::Open { rate } => {
            let interval = Duration::from_secs_f64(plan.senders as f64 / rate.max(1e-3));
            Role::Open {
                sender: idx,
                interval,
                // Spread the senders evenly over one interval.
                offset: interval.mul_f64(idx as f64 / plan.senders as f64),
            }
        }
        Mode::Closed { inflight } => Role::Closed {
            sender: idx,
            inflight: inflight.max(1),
        },
        Mode::Idle => Role::Receiver,
    }
}

fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    ((nanos ^ (nanos >> 32)) as u32 ^ std::process::id().rotate_left(16)) % 1_000_000
}

async fn client(
    idx: usize,
    shared: Arc<Shared>,
    sources: Arc<Sources>,
    cookie: String,
    role: Role,
    phase: watch::Receiver<Phase>,
    permits: Arc<Semaphore>,
) {
    let connected = {
        let _permit = permits.acquire().await;
        if shared.book.lock().expect("book lock").closed {
            return;
        }
        let attempt = async {
            let server = shared.servers[idx % shared.servers.len()];
            let mut ws = net::ws_connect(sources.pick(), server, &shared.room, &cookie).await?;
            // What the page's script sends first on every open.
            ws.send(Message::text(format!(
                r#"{{"resume_after": {}}}"#,
                shared.resume_after
            )))
            .await?;
            anyhow::Ok(ws)
        };
        tokio::time::timeout(Duration::from_secs(30), attempt).await
    };
    let mut ws = {
        let mut book = shared.book.lock().expect("book lock");
        match connected {
            _ if book.closed => return,
            Ok(Ok(ws)) => {
                book.connected += 1;
                ws
            }
            Ok(Err(e)) => {
                book.fail(net::failure_kind(&e));
                return;
            }
            Err(_) => {
                book.fail("connect timeout".into());
                return;
            }
        }
    };
    live(idx, &mut ws, &shared, role, phase).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
}

/// The connected life of one client: read everything, and send when its role says so.
async fn live(
    idx: usize,
    ws: &mut Ws,
    shared: &Shared,
    role: Role,
    mut phase: watch::Receiver<Phase>,
) {
    let mut last_seq = vec![0u64; shared.senders];
    let me = match role {
        Role::Receiver => None,
        Role::Open { sender, .. } | Role::Closed { sender, .. } => Some(sender),
    };
    let mut seq = 0u64;
    let mut sending = false;
    let mut ticker: Option<tokio::time::Interval> = None;
    let mut outstanding = 0usize;
    let mut waiting_since = tokio::time::Instant::now();
    let far = tokio::time::Instant::now() + Duration::from_secs(86_400);
    loop {
        let closed_deadline = match role {
            Role::Closed { .. } if sending && outstanding > 0 => {
                waiting_since + shared.closed_timeout
            }
            _ => far,
        };
        // What to send after this step.
        let mut to_send = 0usize;
        tokio::select! {
            biased;
            changed = phase.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = *phase.borrow_and_update();
                match now {
                    Phase::Wait => {}
                    Phase::Go(at) => {
                        sending = true;
                        match role {
                            Role::Open { interval, offset, .. } => {
                                let mut t = interval_at(at + offset, interval);
                                t.set_missed_tick_behavior(MissedTickBehavior::Burst);
                                ticker = Some(t);
                            }
                            Role::Closed { inflight, .. } => {
                                to_send = inflight;
                            }
                            Role::Receiver => {}
                        }
                    }
                    Phase::StopSending => {
                        sending = false;
                        ticker = None;
                    }
                    Phase::Close => return,
                }
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let own = shared.receive(&text, idx, &mut last_seq, me);
                    if let Role::Closed { .. } = role && own > 0 {
                        outstanding = outstanding.saturating_sub(own);
                        if sending {
                            to_send = own;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    if *phase.borrow() != Phase::Close {
                        shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    return;
                }
                Some(Ok(_)) => {}
            },
            _ = async {
                match ticker.as_mut() {
                    Some(t) => { t.tick().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {
                to_send = 1;
            }
            _ = sleep_until(closed_deadline) => {
                // Nothing came back in time: count it and keep the loop going.
                shared.counters.closed_timeouts.fetch_add(outstanding as u64, Ordering::Relaxed);
                to_send = outstanding;
                outstanding = 0;
            }
        }
        for _ in 0..to_send {
            let Some(sender) = me else { break };
            seq += 1;
            let frame = shared.frame(sender, seq);
            if ws.send(Message::text(frame)).await.is_err() {
                shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            shared.counters.sent.fetch_add(1, Ordering::Relaxed);
            if outstanding == 0 {
                waiting_since = tokio::time::Instant::now();
            }
            outstanding += 1;
        }
    }
}
