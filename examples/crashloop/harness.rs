//! Real-process test harness, shared by `examples/crashloop` (the 20-cycle script) and the
//! integration tests in `tests/api/` (`crash`, `graceful`, `store_failure`), which include this
//! file with `#[path]`. It only uses the server through its public contract (DESIGN.md): HTTP
//! login, room pages, history pages and the room WebSocket.
//!
//! - [`ChildServer`]: the real `chat` binary as a child process, on a port of its own, with
//!   SIGKILL and SIGTERM.
//! - [`Visitor`] / [`Socket`]: an HTTP client with its own cookie jar, and a room socket.
//! - [`Chatter`]: a client that sends numbered messages over the socket and keeps the view a
//!   page would show (htmx out-of-band swaps), optionally reconnecting with `resume_after`.
//! - [`history`]: a room's whole history, paged through `GET /rooms/{slug}` and `?before=`.
//! - [`crash_loop`]: the SIGKILL/restart cycles with their checks.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::net::TcpListener as StdTcpListener;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::redirect::Policy;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait may take.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long a server start (database recovery included) may take.
pub const START_WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// The server as a child process
// ---------------------------------------------------------------------------------------------

/// A port that was free a moment ago: bind port 0, read the port, let it go.
pub fn free_port() -> u16 {
    StdTcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral port")
}

/// The real server binary running as a child process.
pub struct ChildServer {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl ChildServer {
    /// Starts `bin` on `data_dir` and waits until `/healthz` answers. With `port: None` it
    /// picks a free port (and tries another if that one was taken meanwhile). Output goes to
    /// `log`. `extra` are more flags, e.g. `["--shutdown-grace", "5"]`.
    pub async fn start(
        bin: &Path,
        data_dir: &Path,
        port: Option<u16>,
        log: &Path,
        extra: &[&str],
    ) -> anyhow::Result<ChildServer> {
        let attempts = if port.is_some() { 1 } else { 3 };
        let mut last_error = None;
        for _ in 0..attempts {
            let port = port.unwrap_or_else(free_port);
            match Self::start_on(bin, data_dir, port, log, extra).await {
                Ok(server) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    async fn start_on(
        bin: &Path,
        data_dir: &Path,
        port: u16,
        log: &Path,
        extra: &[&str],
    ) -> anyhow::Result<ChildServer> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = Command::new(bin)
            .arg("--addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env_remove("CHAT_PUBLIC_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut server = ChildServer {
            child,
            port,
            log: log.to_owned(),
        };
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()?;
        let deadline = Instant::now() + START_WAIT;
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "the server exited at start ({status}):\n{}",
                    server.log_tail()
                );
            }
            if let Ok(response) = probe.get(server.url("/healthz")).send().await
                && response.status() == 200
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("no /healthz within {START_WAIT:?}:\n{}", server.log_tail());
            }
            sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// SIGKILL, then reap it.
    pub async fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        self.child.start_kill()?;
        self.wait(WAIT).await
    }

    /// SIGTERM: the graceful shutdown.
    pub fn terminate(&self) -> anyhow::Result<()> {
        let pid = self.child.id().context("the server has already exited")?;
        // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
        let sent = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        if sent != 0 {
            bail!("kill(SIGTERM): {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits for the process to exit.
    pub async fn wait(&mut self, within: Duration) -> anyhow::Result<ExitStatus> {
        timeout(within, self.child.wait())
            .await
            .with_context(|| format!("the server did not exit within {within:?}"))?
            .context("waiting for the server")
    }

    /// The last lines the server printed, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP and WebSocket clients
// ---------------------------------------------------------------------------------------------

/// An HTTP client with its own cookie jar that does not follow redirects, like one browser.
pub struct Visitor {
    pub http: reqwest::Client,
    jar: Arc<Jar>,
    pub base: String,
    pub origin: String,
}

impl Visitor {
    /// `base` is `http://host:port`, which is also the origin the server expects.
    pub fn new(base: &str) -> Visitor {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(Policy::none())
            .timeout(WAIT)
            .build()
            .expect("an HTTP client");
        Visitor {
            http,
            jar,
            base: base.trim_end_matches('/').to_owned(),
            origin: base.trim_end_matches('/').to_owned(),
        }
    }

    /// A visitor logged in as `nickname` (POST /login, expecting 303).
    pub async fn logged_in(base: &str, nickname: &str) -> anyhow::Result<Visitor> {
        let visitor = Visitor::new(base);
        let response = visitor
            .post_form("/login", &[("nickname", nickname)])
            .await?;
        if response.status() != 303 {
            bail!("login as {nickname}: {}", response.status());
        }
        Ok(visitor)
    }

    pub fn cookie(&self) -> Option<String> {
        let url = self.base.parse().ok()?;
        self.jar
            .cookies(&url)
            .and_then(|v| v.to_str().ok().map(str::to_owned))
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .with_context(|| format!("GET {path}"))
    }

    /// GET as htmx does (`HX-Request`), expecting 200; returns the body.
    pub async fn get_fragment(&self, path: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("HX-Request", "true")
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        if response.status() != 200 {
            bail!("GET {path}: {}", response.status());
        }
        Ok(response.text().await?)
    }

    /// A form POST as a browser on this site sends it (with `Origin`).
    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> anyhow::Result<reqwest::Response> {
        self.http
            .post(format!("{}{path}", self.base))
            .header("Origin", &self.origin)
            .form(form)
            .send()
            .await
            .with_context(|| format!("POST {path}"))
    }

    /// Opens the room socket with this visitor's cookie and the site's origin.
    pub async fn socket(&self, room: &str) -> anyhow::Result<Socket> {
        let url = format!("{}/rooms/{room}/ws", self.base.replace("http://", "ws://"));
        let mut request = url.into_client_request()?;
        if let Some(cookie) = self.cookie() {
            request
                .headers_mut()
                .insert("Cookie", HeaderValue::from_str(&cookie)?);
        }
        request
            .headers_mut()
            .insert("Origin", HeaderValue::from_str(&self.origin)?);
        let (stream, _) = timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .context("socket connect timed out")??;
        Ok(Socket {
            stream,
            ended_by: None,
        })
    }
}

/// What a socket read gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Text(String),
    /// A close frame's code, or `None` when the connection just ended.
    Closed(Option<u16>),
}

pub struct Socket {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// How the connection ended when it ended without a close frame.
    pub ended_by: Option<String>,
}

impl Socket {
    pub async fn send_json(&mut self, value: serde_json::Value) -> anyhow::Result<()> {
        timeout(WAIT, self.stream.send(Message::text(value.to_string())))
            .await
            .context("socket send timed out")??;
        Ok(())
    }

    /// A composer send as htmx-ext-ws makes it: form values plus `HEADERS`.
    pub async fn say(&mut self, body: &str, client_id: Option<&str>) -> anyhow::Result<()> {
        let mut frame = serde_json::json!({
            "body": body,
            "HEADERS": {"HX-Request": "true", "HX-Trigger": "composer"},
        });
        if let Some(client_id) = client_id {
            frame["client_id"] = client_id.into();
        }
        self.send_json(frame).await
    }

    pub async fn resume(&mut self, after: u64) -> anyhow::Result<()> {
        self.send_json(serde_json::json!({ "resume_after": after }))
            .await
    }

    /// The next text frame or the end of the connection, skipping pings. Cancel-safe.
    pub async fn next_event(&mut self) -> Event {
        loop {
            match self.stream.next().await {
                Some(Ok(Message::Text(text))) => return Event::Text(text.to_string()),
                Some(Ok(Message::Close(frame))) => {
                    return Event::Closed(frame.map(|f| f.code.into()));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    self.ended_by = Some(e.to_string());
                    return Event::Closed(None);
                }
                None => {
                    self.ended_by = Some("end of stream".into());
                    return Event::Closed(None);
                }
            }
        }
    }

    /// `None` if nothing arrives within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Event> {
        timeout(wait, self.next_event()).await.ok()
    }

    /// The next text frame; fails on a close or after `WAIT`.
    pub async fn next_text(&mut self) -> anyhow::Result<String> {
        match self.next_within(WAIT).await {
            Some(Event::Text(text)) => Ok(text),
            Some(Event::Closed(code)) => bail!("socket closed ({code:?}) instead of a frame"),
            None => bail!("no frame within {WAIT:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fragments
// ---------------------------------------------------------------------------------------------

/// One message as rendered by `_message.html`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub id: u64,
    /// `user`, or `system` for lines such as "alice joined".
    pub kind: String,
    /// Empty for system lines.
    pub author: String,
    /// The text of `.msg-body`: its one paragraph, unwrapped (the bodies this harness sends
    /// are plain words that need no escaping and carry no formatting).
    pub body: String,
    pub client_id: Option<String>,
}

/// What one server frame does to the page, read as htmx-ext-ws swaps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `<div id="messages" hx-swap-oob="beforeend">`: live messages and catch-ups.
    Append(Vec<Msg>),
    /// `<div id="messages" hx-swap-oob="innerHTML">`: the list replaced by the newest page.
    Reset(Vec<Msg>),
    /// A bare `<article id="msg-N">`: replaces that element (a resend's acknowledgement).
    Replace(Vec<Msg>),
    /// `#composer-error` with a code, and the `client_id` of the refused send.
    Error {
        code: String,
        client_id: Option<String>,
    },
    /// The empty `#composer-error`.
    ErrorCleared,
    Other(String),
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_owned())
}

/// Every `<article>` message in an HTML text, in document order.
pub fn parse_messages(html: &str) -> Vec<Msg> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<article") {
        let article = &rest[start..];
        let Some(end) = article.find("</article>") else {
            break;
        };
        let whole = &article[..end];
        let tag = &whole[..whole.find('>').unwrap_or(whole.len())];
        let id = attribute(tag, "id")
            .and_then(|id| id.strip_prefix("msg-").and_then(|n| n.parse().ok()));
        if let Some(id) = id {
            let body = whole
                .find("<div class=\"msg-body\">")
                .map(|at| {
                    let inner = &whole[at + "<div class=\"msg-body\">".len()..];
                    let inner = inner.strip_suffix("</div>").unwrap_or(inner);
                    inner
                        .strip_prefix("<p>")
                        .and_then(|p| p.strip_suffix("</p>"))
                        .unwrap_or(inner)
                        .to_owned()
                })
                .unwrap_or_default();
            out.push(Msg {
                id,
                kind: attribute(tag, "data-kind").unwrap_or_default(),
                author: attribute(tag, "data-author").unwrap_or_default(),
                body,
                client_id: attribute(tag, "data-client-id"),
            });
        }
        rest = &article[end + "</article>".len()..];
    }
    out
}

pub fn parse_frame(text: &str) -> Frame {
    if text.starts_with(r#"<div id="messages" hx-swap-oob="beforeend">"#) {
        Frame::Append(parse_messages(text))
    } else if text.starts_with(r#"<div id="messages" hx-swap-oob="innerHTML">"#) {
        Frame::Reset(parse_messages(text))
    } else if text.starts_with("<article") {
        Frame::Replace(parse_messages(text))
    } else if text.starts_with(r#"<div id="composer-error""#) {
        let tag = &text[..text.find('>').unwrap_or(text.len())];
        match attribute(tag, "data-error") {
            Some(code) => Frame::Error {
                code,
                client_id: attribute(tag, "data-client-id"),
            },
            None => Frame::ErrorCleared,
        }
    } else {
        Frame::Other(text.to_owned())
    }
}

/// A room's whole history, oldest first: the room page for the newest messages, then
/// `GET /rooms/{slug}/messages?before={oldest}` (as htmx's "load older") until id 1.
pub async fn history(visitor: &Visitor, room: &str) -> anyhow::Result<Vec<Msg>> {
    let response = visitor.get(&format!("/rooms/{room}")).await?;
    if response.status() != 200 {
        bail!("GET /rooms/{room}: {}", response.status());
    }
    let page = response.text().await?;
    let mut pages = vec![parse_messages(&page)];
    loop {
        let oldest = match pages.last().and_then(|p| p.first()) {
            Some(m) if m.id > 1 => m.id,
            _ => break,
        };
        let older = parse_messages(
            &visitor
                .get_fragment(&format!("/rooms/{room}/messages?before={oldest}"))
                .await?,
        );
        if older.is_empty() {
            break;
        }
        if older.last().is_some_and(|m| m.id >= oldest) {
            bail!(
                "the page before {oldest} holds id {}",
                older.last().unwrap().id
            );
        }
        pages.push(older);
    }
    Ok(pages.into_iter().rev().flatten().collect())
}

/// What is wrong with a history as a room sequence: ids must run 1, 2, 3, ... and no user
/// message body may be stored twice (every body this harness sends is unique).
pub fn sequence_problems(history: &[Msg]) -> Vec<String> {
    let mut problems = Vec::new();
    for (at, m) in history.iter().enumerate() {
        if m.id != at as u64 + 1 {
            problems.push(format!(
                "history position {} holds id {} (expected {})",
                at + 1,
                m.id,
                at + 1
            ));
            break;
        }
    }
    let mut bodies: HashMap<&str, u64> = HashMap::new();
    for m in history.iter().filter(|m| m.kind == "user") {
        if let Some(first) = bodies.insert(&m.body, m.id) {
            problems.push(format!(
                "body {:?} stored twice, as {first} and {}",
                m.body, m.id
            ));
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// A chatting client
// ---------------------------------------------------------------------------------------------

/// How a [`Chatter`] behaves.
#[derive(Debug, Clone)]
pub struct ChatterPlan {
    pub room: String,
    /// Prefix of this client's bodies and client ids; unique per client.
    pub tag: String,
    /// Messages to send in all; `None` sends until the connection ends.
    pub total: Option<u64>,
    /// Sends not yet acknowledged at most.
    pub window: usize,
    /// Least time between two sends; `None` sends as fast as the window allows.
    pub pace: Option<Duration>,
    /// After the connection ends: reconnect (with `resume_after`) and resend what was not
    /// acknowledged, as a page does after 1012; or stop.
    pub reconnect: bool,
    /// The first `resume_after`: the newest id the client already has.
    pub resume_from: u64,
    /// Give up (and report it) after this long.
    pub deadline: Duration,
}

/// Progress the test watches while the chatter runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub acked: AtomicU64,
    /// Every message is sent and acknowledged.
    pub done: AtomicBool,
    /// Set by the test: finish once the view reaches this id (and everything is sent).
    pub finish_at: AtomicU64,
    pub newest_seen: AtomicU64,
    pub connected: AtomicBool,
}

/// What one chatter saw and did.
#[derive(Debug, Default)]
pub struct ChatterLog {
    pub tag: String,
    /// Every message of every fragment, in arrival order.
    pub received: Vec<Msg>,
    /// The message ids the page shows, in order.
    pub view: Vec<u64>,
    /// Gaps, duplicates, out-of-order appends and resets in the view.
    pub view_problems: Vec<String>,
    /// Frames that are neither messages nor composer errors (presence, typing, sidebar).
    pub other_frames: u64,
    /// `(client_id, body)` of every message it sent, first sends only.
    pub sent: Vec<(String, String)>,
    /// Client ids acknowledged (seen back in any fragment).
    pub acked: BTreeSet<String>,
    /// Close codes, one per connection that ended.
    pub closes: Vec<Option<u16>>,
    /// For connections that ended without a close frame: the error (e.g. a reset).
    pub ended_by: Vec<String>,
    /// Error fragments, as `code` or `code client_id`.
    pub errors: Vec<String>,
    pub resends: u64,
    pub connections: u64,
    /// Why it stopped early, if it did.
    pub failure: Option<String>,
}

pub struct Chatter;

impl Chatter {
    /// Runs one client until it is done (see [`ChatterPlan`]); never panics, always returns
    /// what it saw.
    pub async fn run(
        visitor: Arc<Visitor>,
        plan: ChatterPlan,
        progress: Arc<Progress>,
    ) -> ChatterLog {
        let mut state = ChatterState {
            log: ChatterLog {
                tag: plan.tag.clone(),
                ..ChatterLog::default()
            },
            pending: BTreeMap::new(),
            next_seq: 0,
            newest: plan.resume_from,
            progress,
        };
        let deadline = Instant::now() + plan.deadline;
        if let Err(e) = state.run(&visitor, &plan, deadline).await {
            state.log.failure = Some(format!("{e:#}"));
        }
        state.progress.connected.store(false, Ordering::SeqCst);
        state.log
    }
}

struct ChatterState {
    log: ChatterLog,
    /// Unacknowledged sends by sequence number: `(client_id, body)`.
    pending: BTreeMap<u64, (String, String)>,
    next_seq: u64,
    /// Newest id in the view, the next `resume_after`.
    newest: u64,
    progress: Arc<Progress>,
}

enum Step {
    Event(Event),
    Send,
    Check,
    Timeout,
}

impl ChatterState {
    fn all_sent(&self, plan: &ChatterPlan) -> bool {
        plan.total.is_some_and(|t| self.next_seq >= t)
    }

    fn finished(&self, plan: &ChatterPlan) -> bool {
        let target = self.progress.finish_at.load(Ordering::SeqCst);
        target > 0 && self.all_sent(plan) && self.pending.is_empty() && self.newest >= target
    }

    async fn run(
        &mut self,
        visitor: &Visitor,
        plan: &ChatterPlan,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        loop {
            let mut socket = self.connect(visitor, plan, deadline).await?;
            self.log.connections += 1;
            self.progress.connected.store(true, Ordering::SeqCst);
            let end = self.converse(&mut socket, plan, deadline).await;
            self.progress.connected.store(false, Ordering::SeqCst);
            match end {
                Conversation::Finished => {
                    let _ = timeout(Duration::from_secs(1), socket.stream.close(None)).await;
                    return Ok(());
                }
                Conversation::Closed(code) => {
                    self.log.closes.push(code);
                    if code.is_none() {
                        self.log
                            .ended_by
                            .push(socket.ended_by.take().unwrap_or_default());
                    }
                    if !plan.reconnect {
                        return Ok(());
                    }
                }
                Conversation::Failed(e) => return Err(e),
            }
        }
    }

    /// Connects, retrying (as htmx-ext-ws does) while the server is away; then sends
    /// `resume_after` first and resends what was never acknowledged.
    async fn connect(
        &mut self,
        visitor: &Visitor,
        plan: &ChatterPlan,
        deadline: Instant,
    ) -> anyhow::Result<Socket> {
        let mut socket = loop {
            match visitor.socket(&plan.room).await {
                Ok(socket) => break socket,
                Err(e) if Instant::now() < deadline && self.log.connections > 0 => {
                    let _ = e;
                    sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e.context("connecting the room socket")),
            }
        };
        socket.resume(self.newest).await?;
        let resend: Vec<(String, String)> = self.pending.values().cloned().collect();
        for (client_id, body) in resend {
            self.log.resends += 1;
            socket.say(&body, Some(&client_id)).await?;
        }
        Ok(socket)
    }

    async fn converse(
        &mut self,
        socket: &mut Socket,
        plan: &ChatterPlan,
        deadline: Instant,
    ) -> Conversation {
        let mut next_send = Instant::now();
        let mut checks = tokio::time::interval(Duration::from_millis(25));
        loop {
            if self.finished(plan) {
                return Conversation::Finished;
            }
            let can_send = !self.all_sent(plan) && self.pending.len() < plan.window;
            let step = tokio::select! {
                biased;
                event = socket.next_event() => Step::Event(event),
                _ = sleep_until(next_send), if can_send => Step::Send,
                _ = checks.tick() => Step::Check,
                _ = sleep_until(deadline) => Step::Timeout,
            };
            match step {
                Step::Event(Event::Closed(code)) => return Conversation::Closed(code),
                Step::Event(Event::Text(text)) => self.take(parse_frame(&text)),
                Step::Send => {
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    let client_id = format!("{}-n{seq}", plan.tag);
                    let body = format!("{} message {seq}", plan.tag);
                    self.pending.insert(seq, (client_id.clone(), body.clone()));
                    self.log.sent.push((client_id.clone(), body.clone()));
                    if let Some(pace) = plan.pace {
                        next_send = Instant::now() + pace;
                    }
                    if socket.say(&body, Some(&client_id)).await.is_err() {
                        // The connection is gone; the read side reports how it ended.
                        continue;
                    }
                }
                Step::Check => {}
                Step::Timeout => {
                    return Conversation::Failed(anyhow::anyhow!(
                        "deadline passed: sent {}, pending {}, newest {}, finish at {}",
                        self.next_seq,
                        self.pending.len(),
                        self.newest,
                        self.progress.finish_at.load(Ordering::SeqCst)
                    ));
                }
            }
            if self.all_sent(plan) && self.pending.is_empty() {
                self.progress.done.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Applies a frame to the view the page would show, and notes acknowledgements.
    fn take(&mut self, frame: Frame) {
        let messages = match frame {
            Frame::Append(messages) => {
                for m in &messages {
                    // The view only ever grows by the next id: anything else is a gap, a
                    // duplicate or out of order.
                    if m.id <= self.newest {
                        self.log.view_problems.push(format!(
                            "msg-{} appended after msg-{} (a duplicate or out of order)",
                            m.id, self.newest
                        ));
                    } else if m.id != self.newest + 1 {
                        self.log.view_problems.push(format!(
                            "msg-{} appended after msg-{} (a gap)",
                            m.id, self.newest
                        ));
                    }
                    self.log.view.push(m.id);
                    self.newest = self.newest.max(m.id);
                }
                messages
            }
            Frame::Reset(messages) => {
                self.log.view_problems.push(format!(
                    "reset to {} messages after msg-{}",
                    messages.len(),
                    self.newest
                ));
                self.log.view = messages.iter().map(|m| m.id).collect();
                self.newest = messages.last().map_or(self.newest, |m| m.id);
                messages
            }
            // Replaces the element with that id; htmx drops it when there is none.
            Frame::Replace(messages) => messages,
            Frame::Error { code, client_id } => {
                self.log.errors.push(match client_id {
                    Some(id) => format!("{code} {id}"),
                    None => code,
                });
                Vec::new()
            }
            Frame::ErrorCleared => Vec::new(),
            Frame::Other(_) => {
                self.log.other_frames += 1;
                Vec::new()
            }
        };
        for m in messages {
            if let Some(client_id) = &m.client_id {
                let seq = self
                    .pending
                    .iter()
                    .find(|(_, (id, _))| id == client_id)
                    .map(|(seq, _)| *seq);
                if let Some(seq) = seq {
                    self.pending.remove(&seq);
                    self.log.acked.insert(client_id.clone());
                    self.progress.acked.fetch_add(1, Ordering::SeqCst);
                }
            }
            self.log.received.push(m);
        }
        self.progress
            .newest_seen
            .store(self.newest, Ordering::SeqCst);
    }
}

enum Conversation {
    Finished,
    Closed(Option<u16>),
    Failed(anyhow::Error),
}

// ---------------------------------------------------------------------------------------------
// The crash loop
// ---------------------------------------------------------------------------------------------

/// How to run [`crash_loop`].
#[derive(Debug, Clone)]
pub struct CrashPlan {
    pub cycles: u32,
    pub clients: usize,
    /// Kill after a random time in this range (ms), counted once every client has an ack.
    pub kill_after_ms: (u64, u64),
    /// Unacknowledged sends per client.
    pub window: usize,
}

/// The outcome of [`crash_loop`].
#[derive(Debug, Default)]
pub struct CrashReport {
    /// Kill/restart cycles after which every check passed.
    pub cycles_passed: u32,
    pub cycles_run: u32,
    /// Messages some client received a fragment for (distinct ids).
    pub acknowledged: u64,
    /// Of those, found in the history with the same id, author and body.
    pub found: u64,
    /// Messages in the history at the end.
    pub stored: u64,
    /// Messages the clients sent.
    pub sent: u64,
    /// One line per cycle.
    pub lines: Vec<String>,
    pub failures: Vec<String>,
}

/// Every message some client received a fragment for, by id (the first fragment wins; a
/// second fragment with other content is a failure).
type Seen = BTreeMap<u64, Msg>;

fn note_received(seen: &mut Seen, message: &Msg, failures: &mut Vec<String>) {
    match seen.get(&message.id) {
        None => {
            seen.insert(message.id, message.clone());
        }
        Some(known) if known.body == message.body && known.author == message.author => {}
        Some(known) => failures.push(format!(
            "msg-{} was shown as {:?} by {} and as {:?} by {}",
            message.id, known.body, known.author, message.body, message.author
        )),
    }
}

/// Checks the history after a restart against everything clients were shown.
fn check_history(history: &[Msg], seen: &Seen, failures: &mut Vec<String>) -> u64 {
    failures.extend(sequence_problems(history));
    let by_id: HashMap<u64, &Msg> = history.iter().map(|m| (m.id, m)).collect();
    let mut found = 0;
    let mut missing = Vec::new();
    for (id, shown) in seen {
        match by_id.get(id) {
            Some(stored) if stored.body == shown.body && stored.author == shown.author => {
                found += 1
            }
            Some(stored) => failures.push(format!(
                "msg-{id} was shown as {:?} by {} but is stored as {:?} by {}",
                shown.body, shown.author, stored.body, stored.author
            )),
            None => missing.push(*id),
        }
    }
    if !missing.is_empty() {
        failures.push(format!(
            "{} acknowledged messages are missing after the restart: {:?}",
            missing.len(),
            &missing[..missing.len().min(20)]
        ));
    }
    found
}

/// SIGKILL/restart cycles on one data directory (the server runs with `--rate-limit 0`: the
/// clients send as fast as their window allows). Each cycle: start the server, check the
/// history against every fragment any client was ever shown, let `clients` fresh logins send
/// numbered messages, SIGKILL the process mid-stream. After the last kill: one more start,
/// the same check, and a message whose id must follow the stored ones.
///
/// `say` gets a line per cycle as it happens.
pub async fn crash_loop(
    bin: &Path,
    data_dir: &Path,
    plan: &CrashPlan,
    mut say: impl FnMut(&str),
) -> CrashReport {
    let mut report = CrashReport::default();
    let mut seen = Seen::new();
    for cycle in 1..=plan.cycles + 1 {
        let mut failures = Vec::new();
        let log = data_dir.join(format!("server-{cycle}.log"));
        let mut server =
            match ChildServer::start(bin, data_dir, None, &log, &["--rate-limit", "0"]).await {
                Ok(server) => server,
                Err(e) => {
                    report.failures.push(format!("cycle {cycle}: start: {e:#}"));
                    return report;
                }
            };
        let base = server.base();

        // After a restart: everything anyone was shown is stored, as it was shown.
        let checker = match Visitor::logged_in(&base, &format!("check{cycle}")).await {
            Ok(v) => v,
            Err(e) => {
                report.failures.push(format!("cycle {cycle}: {e:#}"));
                return report;
            }
        };
        let stored = match history(&checker, "lobby").await {
            Ok(h) => h,
            Err(e) => {
                report
                    .failures
                    .push(format!("cycle {cycle}: history: {e:#}"));
                return report;
            }
        };
        let floor = stored.last().map_or(0, |m| m.id);
        let found = check_history(&stored, &seen, &mut failures);
        if cycle > 1 {
            report.cycles_run += 1;
            report.found = found;
            report.acknowledged = seen.len() as u64;
            report.stored = stored.len() as u64;
            if failures.is_empty() {
                report.cycles_passed += 1;
            }
            report.lines.push(format!(
                "cycle {}: restart found {found}/{} acknowledged messages, {} stored, {}",
                cycle - 1,
                seen.len(),
                stored.len(),
                if failures.is_empty() {
                    "ok".to_owned()
                } else {
                    format!("FAILED: {}", failures.join("; "))
                }
            ));
            say(report.lines.last().unwrap());
        }
        report.failures.extend(
            failures
                .drain(..)
                .map(|f| format!("cycle {}: {f}", cycle - 1)),
        );

        if cycle == plan.cycles + 1 {
            // Ids continue after the last restart: the next message takes floor + 1.
            let next = next_id_check(&checker, floor).await;
            if let Err(e) = next {
                report
                    .failures
                    .push(format!("after the last restart: {e:#}"));
            }
            let _ = server.terminate();
            let _ = server.wait(Duration::from_secs(15)).await;
            break;
        }

        // Clients send numbered messages until the process dies under them. All log in
        // first: a client that joined after more than a catch-up's worth was sent would be
        // reset, not replayed.
        let mut visitors = Vec::new();
        for i in 0..plan.clients {
            let nickname = format!("k{cycle}c{i}");
            match Visitor::logged_in(&base, &nickname).await {
                Ok(v) => visitors.push((nickname, Arc::new(v))),
                Err(e) => {
                    report.failures.push(format!("cycle {cycle}: {e:#}"));
                    return report;
                }
            }
        }
        let mut clients = Vec::new();
        for (nickname, visitor) in visitors {
            let progress = Arc::new(Progress::default());
            let plan = ChatterPlan {
                room: "lobby".into(),
                tag: nickname,
                total: None,
                window: plan.window,
                pace: None,
                reconnect: false,
                resume_from: floor,
                deadline: Duration::from_secs(30),
            };
            let task = tokio::spawn(Chatter::run(visitor, plan, progress.clone()));
            clients.push((progress, task));
        }
        let streaming = timeout(WAIT, async {
            while clients
                .iter()
                .any(|(p, _)| p.acked.load(Ordering::SeqCst) == 0)
            {
                sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        if streaming.is_err() {
            report.failures.push(format!(
                "cycle {cycle}: not every client got an acknowledgement within {WAIT:?}"
            ));
        }
        let (low, high) = plan.kill_after_ms;
        sleep(Duration::from_millis(rand::random_range(
            low..=high.max(low),
        )))
        .await;
        // Mid-stream: every client is still connected when the process dies.
        let connected = clients
            .iter()
            .filter(|(p, _)| p.connected.load(Ordering::SeqCst))
            .count();
        if connected < plan.clients {
            report.failures.push(format!(
                "cycle {cycle}: only {connected} of {} clients were still connected at the kill",
                plan.clients
            ));
        }
        if let Err(e) = server.kill().await {
            report.failures.push(format!("cycle {cycle}: kill: {e:#}"));
            return report;
        }

        let mut sent = 0;
        let mut acked = 0;
        for (i, (_, task)) in clients.into_iter().enumerate() {
            let log = match timeout(WAIT, task).await {
                Ok(Ok(log)) => log,
                _ => {
                    report.failures.push(format!(
                        "cycle {cycle}: client {i} did not stop after the kill"
                    ));
                    continue;
                }
            };
            sent += log.sent.len() as u64;
            acked += log.acked.len() as u64;
            if let Some(failure) = &log.failure {
                report
                    .failures
                    .push(format!("cycle {cycle}: {}: {failure}", log.tag));
            }
            if log.closes.iter().any(Option::is_some) {
                report.failures.push(format!(
                    "cycle {cycle}: {}: the server closed the socket ({:?}) before it was killed",
                    log.tag, log.closes
                ));
            }
            for problem in log.view_problems.iter().chain(&log.errors) {
                report
                    .failures
                    .push(format!("cycle {cycle}: {}: {problem}", log.tag));
            }
            let mut cycle_failures = Vec::new();
            for m in &log.received {
                // Ids continue without reuse: the clients resumed after the floor, so all
                // they are shown is newer.
                if m.id <= floor {
                    cycle_failures.push(format!(
                        "msg-{} ({:?}) shown in this cycle is at or below the stored {floor}",
                        m.id, m.body
                    ));
                }
                note_received(&mut seen, m, &mut cycle_failures);
            }
            report.failures.extend(
                cycle_failures
                    .into_iter()
                    .map(|f| format!("cycle {cycle}: {f}")),
            );
        }
        report.sent += sent;
        say(&format!(
            "cycle {cycle}: {} clients sent {sent}, {acked} acknowledged to their senders, {} in flight at the kill after msg-{}",
            plan.clients,
            sent - acked,
            seen.keys().next_back().copied().unwrap_or(0)
        ));
    }
    report
}

/// Sends one message after a restart and checks that what the room stores next (the
/// visitor's "joined" line, then the message) takes the ids right after `floor`.
async fn next_id_check(visitor: &Visitor, floor: u64) -> anyhow::Result<()> {
    let mut socket = visitor.socket("lobby").await?;
    socket.resume(floor).await?;
    socket
        .say("after the last restart", Some("after-last"))
        .await?;
    let mut expected = floor + 1;
    loop {
        if let Frame::Append(messages) = parse_frame(&socket.next_text().await?) {
            for m in messages {
                if m.id != expected {
                    bail!(
                        "after the restart msg-{} came where msg-{expected} was due",
                        m.id
                    );
                }
                expected += 1;
                if m.client_id.as_deref() == Some("after-last") {
                    return Ok(());
                }
            }
        }
    }
}
