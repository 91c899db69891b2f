//! The WebSockets: `/rooms/{slug}/ws` for a room page, `/ws` for pages without a room (it
//! carries only sidebar updates).
//!
//! Each socket has two tasks. The connection task reads the page's frames. The writer task owns
//! the sending half and takes the room's live events and the sidebar updates straight from
//! their broadcast channels, so a delivery wakes one task. What the connection task has to say
//! (replies, errors, pings, the resume point, the close) reaches the writer through an
//! [`Outbox`], which holds no memory while it is empty.
//!
//! The handshake is done here ([`Upgrade`]) rather than with axum's `WebSocketUpgrade`, so the
//! writer can use tungstenite's frames: a long fragment goes out in pieces, because tungstenite
//! keeps its write buffer at the largest size it ever held, for every socket, for good.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use futures_util::stream::{FuturesUnordered, SplitSink, SplitStream, StreamExt};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use time::UtcOffset;
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, Utf8Bytes};

use super::rooms::archived_error;
use super::viewer_offset;
use crate::auth::CurrentUser;
use crate::domain::{ClientFrame, FrameError, Slug};
use crate::error::AppError;
use crate::hub::{Appended, CatchUp, Hub, LiveEvent, NewMessage, Room, SidebarUpdate, SocketGuard};
use crate::rate_limit::RateLimiter;
use crate::startup::AppState;
use crate::store::{MessageKind, StoreResult};
use crate::views::{self, ComposerError, History};

type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// A socket message over this is refused and the socket closed with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Bytes tungstenite reads at a time, and keeps per socket for good. Pages send small frames
/// (a message plus htmx's headers); a bigger one grows the buffer while it is read.
const READ_BUFFER: usize = 1024;
/// Longer text goes out as continuation frames of at most this many bytes, which bounds
/// tungstenite's write buffer. Most single messages fit in one.
const TEXT_PIECE: usize = 1024;
/// tungstenite's write buffer holds one piece (after a write that the socket took only in
/// part) plus a pong or a close; this is its hard limit.
const MAX_WRITE_BUFFER: usize = 2 * TEXT_PIECE;
/// Frames a writer holds that its socket has not taken yet. A reader this far behind is
/// closed with 1013.
const OUT_QUEUE: usize = 256;
/// Orders the writer has not taken yet; more means it is stuck behind a socket that stopped
/// reading, and the socket is closed with 1013.
const OUTBOX_LIMIT: usize = 64;
/// Frames written before one flush, at most.
const WRITE_BATCH: usize = 64;
/// Messages per catch-up frame.
const REPLAY_CHUNK: usize = 100;

const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_RESTART: u16 = 1012;
const CLOSE_TRY_AGAIN: u16 = 1013;

pub async fn room_socket(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    viewer: Option<CurrentUser>,
    headers: HeaderMap,
    upgrade: Upgrade,
) -> Result<Response, AppError> {
    let room = Slug::parse(&slug)
        .and_then(|slug| state.hub.room(&slug))
        .filter(|room| {
            viewer
                .as_ref()
                .is_none_or(|v| room.readable_by(v.mention_key()))
        })
        .ok_or(AppError::NotFound);
    accept(state, viewer, headers, upgrade, Some(room)).await
}

/// The socket of pages without a room: sidebar updates only.
pub async fn global_socket(
    State(state): State<AppState>,
    viewer: Option<CurrentUser>,
    headers: HeaderMap,
    upgrade: Upgrade,
) -> Result<Response, AppError> {
    accept(state, viewer, headers, upgrade, None).await
}

async fn accept(
    state: AppState,
    viewer: Option<CurrentUser>,
    headers: HeaderMap,
    upgrade: Upgrade,
    room: Option<Result<Arc<Room>, AppError>>,
) -> Result<Response, AppError> {
    let Some(viewer) = viewer else {
        return Ok((StatusCode::UNAUTHORIZED, "Log in first.").into_response());
    };
    if !state.origin.matches(&headers) {
        return Ok((StatusCode::FORBIDDEN, "Foreign origin.").into_response());
    }
    let room = room.transpose()?;
    let Some(guard) = state.hub.open_socket(&viewer.login_id) else {
        return Ok((StatusCode::TOO_MANY_REQUESTS, "Too many open tabs.").into_response());
    };
    let connection = Connection {
        hub: state.hub.clone(),
        room,
        viewer,
        offset: viewer_offset(&headers),
        guard,
        rate_limiter: state.rate_limiter.clone(),
        ping_every: state.config.ping_interval(),
        resume_grace: state.config.resume_grace(),
    };
    let (response, upgraded) = upgrade.accept();
    // The socket's task is spawned as is, not wrapped in another: every byte of its state is
    // kept for every open socket.
    tokio::spawn(state.tracker.track_future(connection.run(upgraded)));
    Ok(response)
}

/// A WebSocket handshake request (HTTP/1.1): what axum's `WebSocketUpgrade` checks, answered
/// with tungstenite's own stream.
pub struct Upgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        let refuse = |status: StatusCode, text: &'static str| (status, text).into_response();
        if parts.method != Method::GET {
            return Err(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "WebSocket handshakes use GET.",
            ));
        }
        let has_token = |name: header::HeaderName, token: &str| {
            parts.headers.get_all(name).iter().any(|value| {
                value
                    .to_str()
                    .unwrap_or_default()
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case(token))
            })
        };
        if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
            return Err(refuse(
                StatusCode::UPGRADE_REQUIRED,
                "This is a WebSocket endpoint.",
            ));
        }
        if parts.headers.get(header::SEC_WEBSOCKET_VERSION) != Some(&HeaderValue::from_static("13"))
        {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "Only WebSocket version 13 is supported.",
            ));
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .cloned()
            .ok_or_else(|| refuse(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing."))?;
        let on_upgrade = parts.extensions.remove::<OnUpgrade>().ok_or_else(|| {
            refuse(
                StatusCode::UPGRADE_REQUIRED,
                "This connection can't upgrade.",
            )
        })?;
        Ok(Upgrade { key, on_upgrade })
    }
}

impl Upgrade {
    /// The 101 answer, and the upgrade to await once it has gone out.
    fn accept(self) -> (Response, OnUpgrade) {
        let accept = tungstenite::handshake::derive_accept_key(self.key.as_bytes());
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        (response, self.on_upgrade)
    }
}

/// The socket, once the 101 has gone out and hyper hands over the connection.
async fn open_socket(upgraded: OnUpgrade) -> Option<Socket> {
    let upgraded = upgraded.await.ok()?;
    let io = TokioIo::new(upgraded);
    Some(WebSocketStream::from_raw_socket(io, Role::Server, Some(socket_config())).await)
}

/// Reads are bounded by the frame limit; writes by the piece size.
fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
        .read_buffer_size(READ_BUFFER)
        // Each frame goes to the socket as it is fed; nothing waits in tungstenite's buffer.
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
}

struct Connection {
    hub: Arc<Hub>,
    /// `None` for the global socket.
    room: Option<Arc<Room>>,
    viewer: CurrentUser,
    /// The viewer's time zone, for the sidebar's day groups.
    offset: UtcOffset,
    guard: SocketGuard,
    rate_limiter: Arc<RateLimiter>,
    ping_every: Duration,
    resume_grace: Duration,
}

/// Why the connection task stops reading.
enum End {
    Close(u16, &'static str),
    /// The peer is gone or broken: nothing more can be sent.
    Drop,
    /// The writer stopped by itself, with the close code it sent, if any.
    WriterDone(Option<u16>),
}

/// A full queue: the reader stopped draining.
struct Stalled;

type PendingAppend = std::pin::Pin<
    Box<dyn std::future::Future<Output = (Option<String>, StoreResult<Appended>)> + Send>,
>;

/// A frame for the writer to send.
enum Outgoing {
    /// An HTML fragment, shared with every other socket that gets it.
    Text(Bytes),
    Ping,
}

/// Something the connection task asks its writer to do, in order.
enum Order {
    Send(Outgoing),
    /// The page's `resume_after` and room revision: replay what it missed, then go live.
    Resume(u64, Option<u64>),
    /// The page sent a message: live from now on, resumed or not.
    GoLive,
}

/// From the connection task to its writer.
#[derive(Default)]
struct Outbox {
    state: Mutex<OutboxState>,
    wake: Notify,
    /// The newest message id the writer has sent (or that the client already had), for
    /// marking the room read when the socket closes.
    last_sent: AtomicU64,
}

#[derive(Default)]
struct OutboxState {
    orders: VecDeque<Order>,
    /// Jumps the queue: the writer sends it and stops.
    close: Option<(u16, &'static str)>,
}

impl Outbox {
    fn order(&self, order: Order) -> Result<(), Stalled> {
        {
            let mut state = self.state.lock().expect("outbox lock");
            if state.orders.len() >= OUTBOX_LIMIT {
                return Err(Stalled);
            }
            state.orders.push_back(order);
        }
        self.wake.notify_one();
        Ok(())
    }

    fn text(&self, text: String) -> Result<(), Stalled> {
        self.order(Order::Send(Outgoing::Text(text.into())))
    }

    fn close(&self, code: u16, reason: &'static str) {
        self.state.lock().expect("outbox lock").close = Some((code, reason));
        self.wake.notify_one();
    }

    /// Everything ordered so far, leaving the queue without an allocation.
    fn take(&self) -> (VecDeque<Order>, Option<(u16, &'static str)>) {
        let mut state = self.state.lock().expect("outbox lock");
        (std::mem::take(&mut state.orders), state.close.take())
    }

    fn close_requested(&self) -> Option<(u16, &'static str)> {
        self.state.lock().expect("outbox lock").close.take()
    }
}

impl Connection {
    /// The connection task: upgrades, starts the writer, reads the page's frames, closes.
    /// Only the reading phase is inline: each byte of this future's state is kept for every
    /// open socket, so the one-off phases are boxed, and `self` is captured by the `async`
    /// block rather than taken by an `async fn` (which would store it twice).
    #[allow(clippy::manual_async_fn)] // An `async fn` keeps `self` twice: 1.75 → 1.42 KiB.
    fn run(self, upgraded: OnUpgrade) -> impl Future<Output = ()> + Send {
        async move {
            let Some(socket) = Box::pin(open_socket(upgraded)).await else {
                return;
            };
            let (sink, mut stream) = socket.split();
            let outbox = Arc::new(Outbox::default());
            // Subscribed before reading `last_id`: whatever is newer arrives on the channel.
            let feed = self.room.as_ref().map(|room| Feed {
                room: room.clone(),
                events: room.subscribe(),
                last_sent: room.last_id(),
                live: false,
                lagged: false,
                revision: 0,
            });
            if let Some(feed) = &feed {
                outbox.last_sent.store(feed.last_sent, Ordering::Relaxed);
                self.hub.arrive(&feed.room, &self.viewer.nickname);
            }
            let writer = Writer {
                sink,
                hub: self.hub.clone(),
                backlog: VecDeque::new(),
                inputs: Inputs {
                    outbox: outbox.clone(),
                    feed,
                    sidebar: self.hub.sidebar_updates(),
                    offset: self.offset,
                    mention_key: self.viewer.mention_key().into(),
                },
            };
            let mut writer = tokio::spawn(writer.run());
            tracing::debug!(room = self.slug(), nickname = %self.viewer.nickname, "socket open");
            let end = self.read(&mut stream, &outbox, &mut writer).await;
            Box::pin(self.close(end, stream, outbox, writer)).await;
            // `self.guard` goes last, with `self`: the socket counts against its login until
            // here.
        }
    }

    /// Ends the socket: the close frame and its handshake, then what the room keeps of it.
    async fn close(
        &self,
        end: End,
        mut stream: SplitStream<Socket>,
        outbox: Arc<Outbox>,
        mut writer: JoinHandle<Option<u16>>,
    ) {
        if matches!(
            end,
            End::Close(CLOSE_TRY_AGAIN, _) | End::WriterDone(Some(CLOSE_TRY_AGAIN))
        ) {
            self.hub.metrics().slow_consumers.increment(1);
        }
        let closing = match end {
            End::Close(code, reason) => {
                outbox.close(code, reason);
                let _ = timeout(Duration::from_secs(2), &mut writer).await;
                true
            }
            End::Drop => {
                writer.abort();
                let _ = writer.await;
                false
            }
            End::WriterDone(sent) => {
                if sent == Some(CLOSE_TRY_AGAIN) {
                    tracing::info!(
                        room = self.slug(),
                        nickname = %self.viewer.nickname,
                        "closing a socket that stopped reading"
                    );
                }
                sent.is_some()
            }
        };
        if closing {
            // Finish the closing handshake: dropping a socket with unread data resets the
            // connection, and the client would see 1006 instead of our close code.
            let _ = timeout(Duration::from_secs(1), async {
                while let Some(Ok(message)) = stream.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
        tracing::debug!(room = self.slug(), nickname = %self.viewer.nickname, "socket closed");
        if let Some(room) = &self.room {
            self.hub.depart(room, &self.viewer.nickname);
            let last_sent = outbox.last_sent.load(Ordering::Relaxed);
            if let Err(e) = self
                .hub
                .mark_read(&self.viewer.login_id, &room.slug, last_sent)
                .await
            {
                tracing::warn!(error = %e, room = %room.slug, nickname = %self.viewer.nickname, "could not remember what was read");
            }
        }
    }

    /// Reads the page's frames until the socket should end, and why.
    async fn read(
        &self,
        stream: &mut SplitStream<Socket>,
        outbox: &Outbox,
        writer: &mut JoinHandle<Option<u16>>,
    ) -> End {
        let shutdown = self.hub.shutdown_token().cancelled();
        let ended = self.guard.ended().cancelled();
        // One timer for the resume grace and the pings, whichever is due first.
        let mut resume_deadline = self
            .room
            .is_some()
            .then(|| Instant::now() + self.resume_grace);
        let mut next_ping = Instant::now() + self.ping_every;
        let timer = sleep_until(resume_deadline.map_or(next_ping, |d| d.min(next_ping)));
        tokio::pin!(shutdown, ended, timer);
        let mut unanswered_pings = 0u32;
        // Made on the first send: most sockets never send.
        let mut appends: Option<FuturesUnordered<PendingAppend>> = None;
        let mut error_shown = false;

        loop {
            let step: Result<Option<End>, Stalled> = tokio::select! {
                biased;
                _ = &mut shutdown => Ok(Some(End::Close(CLOSE_RESTART, "server restarting"))),
                _ = &mut ended => Ok(Some(End::Close(CLOSE_POLICY, self.guard.end_reason()))),
                done = &mut *writer => Ok(Some(End::WriterDone(done.unwrap_or(None)))),
                frame = stream.next() => {
                    unanswered_pings = 0;
                    match frame {
                        None | Some(Ok(Message::Close(_))) => Ok(Some(End::Drop)),
                        Some(Err(e)) => Ok(Some(read_failure(e))),
                        Some(Ok(Message::Text(text))) => self
                            .handle_frame(&text, outbox, &mut appends, &mut resume_deadline, &mut error_shown)
                            .map(|_| None),
                        Some(Ok(Message::Binary(_))) => {
                            error_shown = true;
                            outbox.text(frame_error(FrameError::BadFrame, None)).map(|_| None)
                        }
                        Some(Ok(_)) => Ok(None),
                    }
                }
                Some((client_id, result)) = next_append(&mut appends) => {
                    self.acknowledge(outbox, client_id, result, &mut error_shown).map(|_| None)
                }
                _ = &mut timer => {
                    let now = Instant::now();
                    let mut step = Ok(None);
                    if resume_deadline.is_some_and(|d| d <= now) {
                        // No `resume_after` in time: live from here.
                        resume_deadline = None;
                        step = outbox.order(Order::GoLive).map(|_| None);
                    }
                    if next_ping <= now {
                        next_ping = now + self.ping_every;
                        unanswered_pings += 1;
                        step = if unanswered_pings > 2 {
                            tracing::debug!(room = self.slug(), nickname = %self.viewer.nickname, "peer missed two pings");
                            Ok(Some(End::Drop))
                        } else {
                            step.and_then(|_| outbox.order(Order::Send(Outgoing::Ping)).map(|_| None))
                        };
                    }
                    timer.as_mut().reset(resume_deadline.map_or(next_ping, |d| d.min(next_ping)));
                    step
                }
            };
            match step {
                Ok(None) => continue,
                Ok(Some(end)) => return end,
                Err(Stalled) => {
                    tracing::info!(
                        room = self.slug(),
                        nickname = %self.viewer.nickname,
                        "closing a socket that stopped reading"
                    );
                    return End::Close(CLOSE_TRY_AGAIN, "too far behind; reconnect to catch up");
                }
            }
        }
    }

    fn slug(&self) -> &str {
        self.room.as_ref().map_or("", |r| r.slug.as_str())
    }

    fn handle_frame(
        &self,
        text: &str,
        outbox: &Outbox,
        appends: &mut Option<FuturesUnordered<PendingAppend>>,
        resume_deadline: &mut Option<Instant>,
        error_shown: &mut bool,
    ) -> Result<(), Stalled> {
        let Some(room) = &self.room else {
            // The global socket only listens.
            return Ok(());
        };
        match ClientFrame::parse(text) {
            Ok(ClientFrame::Resume { after, revision }) => {
                *resume_deadline = None;
                outbox.order(Order::Resume(after, revision))
            }
            Ok(ClientFrame::Typing) => {
                self.hub.typing(room, &self.viewer.nickname);
                Ok(())
            }
            Ok(ClientFrame::Send { client_id, .. }) if room.is_archived() => {
                *error_shown = true;
                let mut error = archived_error();
                error.client_id = client_id.map(|c| c.as_str().to_owned());
                outbox.text(render_error(&error))
            }
            Ok(ClientFrame::Send { client_id, .. })
                if !self.rate_limiter.allow(&self.viewer.login_id) =>
            {
                // Refused and said so, with the client id, so the page gives the text back.
                *error_shown = true;
                outbox.text(frame_error(
                    FrameError::RateLimited,
                    client_id.map(|c| c.as_str().to_owned()),
                ))
            }
            Ok(ClientFrame::Send {
                body,
                client_id,
                reply_to,
            }) => {
                if resume_deadline.take().is_some() {
                    outbox.order(Order::GoLive)?;
                }
                self.hub.stopped_typing(room, &self.viewer.nickname);
                let client_id = client_id.map(|c| c.as_str().to_owned());
                let answer = self.hub.submit(
                    room,
                    NewMessage {
                        kind: MessageKind::User,
                        author: self.viewer.nickname.clone(),
                        body: body.into_string(),
                        dedup: client_id.clone().map(|c| (self.viewer.login_id.clone(), c)),
                        reply_to,
                        attachment: None,
                    },
                );
                appends
                    .get_or_insert_with(FuturesUnordered::new)
                    .push(Box::pin(async move {
                        let result = answer
                            .await
                            .unwrap_or(Err(crate::store::StoreError::CommitterStopped));
                        (client_id, result)
                    }));
                Ok(())
            }
            Err(e) => {
                *error_shown = true;
                outbox.text(frame_error(e, None))
            }
        }
    }

    fn acknowledge(
        &self,
        outbox: &Outbox,
        client_id: Option<String>,
        result: StoreResult<Appended>,
        error_shown: &mut bool,
    ) -> Result<(), Stalled> {
        match result {
            Ok(appended) => {
                if let (Appended::Duplicate(id), Some(room)) = (appended, &self.room)
                    && let Some(original) = self.hub.recent_message(room, id)
                {
                    // Replaces the copy the client already has, by id: an acknowledgement.
                    outbox.text(original.html.clone())?;
                }
                if std::mem::take(error_shown) {
                    outbox.text(ComposerError::cleared())?;
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, room = self.slug(), nickname = %self.viewer.nickname, "message not stored");
                *error_shown = true;
                let mut error = ComposerError::new(
                    "store_failed",
                    "Your message could not be saved. Please send it again.",
                );
                error.client_id = client_id;
                outbox.text(render_error(&error))
            }
        }
    }
}

async fn next_append(
    appends: &mut Option<FuturesUnordered<PendingAppend>>,
) -> Option<(Option<String>, StoreResult<Appended>)> {
    match appends {
        Some(appends) => appends.next().await,
        None => None,
    }
}

fn read_failure(error: tungstenite::Error) -> End {
    if matches!(error, tungstenite::Error::Capacity(_)) {
        End::Close(CLOSE_TOO_BIG, "message too big")
    } else {
        End::Drop
    }
}

fn render_error(error: &ComposerError) -> String {
    askama::Template::render(error).unwrap_or_else(|_| ComposerError::cleared())
}

fn frame_error(error: FrameError, client_id: Option<String>) -> String {
    let mut fragment = ComposerError::new(error.code(), error.to_string());
    fragment.client_id = client_id;
    render_error(&fragment)
}

fn frame_error_store() -> String {
    render_error(&ComposerError::new(
        "store_failed",
        "Recent messages could not be loaded. Reload the page to try again.",
    ))
}

/// A room socket's position in its room's stream.
struct Feed {
    room: Arc<Room>,
    events: broadcast::Receiver<Arc<LiveEvent>>,
    /// The newest message id this socket has taken to send (or that the client already had).
    last_sent: u64,
    /// False until the page's `resume_after` (or the grace period): live messages wait, so
    /// they can't overtake the catch-up.
    live: bool,
    /// The receiver fell behind the broadcast: no more events until the gap is refilled from
    /// the window, so nothing arrives out of order.
    lagged: bool,
    /// The newest room revision (message change) this socket has taken to send.
    revision: u64,
}

/// What a writer waits on besides its socket.
struct Inputs {
    outbox: Arc<Outbox>,
    /// `None` for the global socket.
    feed: Option<Feed>,
    sidebar: broadcast::Receiver<Arc<SidebarUpdate>>,
    offset: UtcOffset,
    /// Whose direct conversations to list.
    mention_key: Box<str>,
}

/// What the writer does next.
enum Input {
    Frame(Outgoing),
    /// Look at the outbox, or refill a gap: work for when no write is pending.
    Attend,
    Stop(Stop),
}

/// Why a writer stops.
enum Stop {
    /// The connection task asked for this close.
    Close(u16, &'static str),
    /// The socket stopped taking frames.
    Stalled,
    Restart(&'static str),
    /// The socket failed: nothing more can be sent.
    Gone,
}

impl Inputs {
    /// Waits for the next thing to send. Cancel-safe: nothing taken is lost when it is dropped.
    async fn next(&mut self) -> Input {
        tokio::select! {
            biased;
            event = next_event(&mut self.feed) => {
                let feed = self.feed.as_mut().expect("events come only from a feed");
                match event {
                    Ok(event) => feed.take(&event, &self.outbox).map_or(Input::Attend, Input::Frame),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        feed.lagged = true;
                        Input::Attend
                    }
                    Err(broadcast::error::RecvError::Closed) => Input::Stop(Stop::Restart("room closed")),
                }
            }
            update = self.sidebar.recv() => match update {
                Ok(update) => Input::Frame(Outgoing::Text(update.frame_for(self.offset, &self.mention_key).into())),
                // Only the newest list matters; a skipped one is replaced by the next.
                Err(broadcast::error::RecvError::Lagged(_)) => Input::Attend,
                Err(broadcast::error::RecvError::Closed) => Input::Stop(Stop::Restart("server restarting")),
            },
            _ = self.outbox.wake.notified() => match self.outbox.close_requested() {
                Some((code, reason)) => Input::Stop(Stop::Close(code, reason)),
                None => Input::Attend,
            },
        }
    }

    /// A live frame that is already waiting in the room's channel, without waiting for one.
    fn ready(&mut self) -> Option<Outgoing> {
        let feed = self.feed.as_mut()?;
        if !feed.live || feed.lagged {
            return None;
        }
        loop {
            match feed.events.try_recv() {
                Ok(event) => {
                    if let Some(frame) = feed.take(&event, &self.outbox) {
                        return Some(frame);
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    feed.lagged = true;
                    return None;
                }
                Err(_) => return None,
            }
        }
    }
}

impl Feed {
    /// The frame to send for a live event, if this socket hasn't sent it already.
    fn take(&mut self, event: &LiveEvent, outbox: &Outbox) -> Option<Outgoing> {
        match event {
            LiveEvent::Message { id, frame } if *id > self.last_sent => {
                self.last_sent = *id;
                outbox.last_sent.store(*id, Ordering::Relaxed);
                Some(shared_text(frame))
            }
            LiveEvent::Message { .. } => None,
            LiveEvent::Replace(frame) => Some(shared_text(frame)),
            LiveEvent::Changed { revision, frame } => {
                self.revision = self.revision.max(*revision);
                Some(shared_text(frame))
            }
        }
    }
}

async fn next_event(
    feed: &mut Option<Feed>,
) -> Result<Arc<LiveEvent>, broadcast::error::RecvError> {
    match feed {
        Some(feed) if feed.live && !feed.lagged => feed.events.recv().await,
        _ => std::future::pending().await,
    }
}

/// Owns the sending half. Sends in order, flushing once per batch of what is ready; a close
/// request jumps the queue.
struct Writer {
    sink: SplitSink<Socket, Message>,
    hub: Arc<Hub>,
    inputs: Inputs,
    /// Frames taken but not yet written: it fills only while the socket is slow to take them.
    backlog: VecDeque<Outgoing>,
}

impl Writer {
    /// Returns the code of the close frame it sent, if any. One flat loop, and `self` in
    /// the `async` block: every nested future or copy would add to the state that each
    /// socket keeps.
    #[allow(clippy::manual_async_fn)] // An `async fn` keeps `self` twice: 864 → 688 bytes.
    fn run(mut self) -> impl Future<Output = Option<u16>> + Send {
        async move {
            let stop = 'writing: loop {
                if let Err(stop) = self.attend().await {
                    break stop;
                }
                let first = match self.backlog.pop_front() {
                    Some(outgoing) => outgoing,
                    None => match self.inputs.next().await {
                        Input::Frame(outgoing) => outgoing,
                        Input::Attend => continue,
                        Input::Stop(stop) => break stop,
                    },
                };
                // Write it and whatever else is ready (up to a batch), then flush once.
                let mut pieces = Pieces::new(first);
                let mut batched = 1;
                loop {
                    let piece = match pieces.next() {
                        Some(piece) => piece,
                        None if batched < WRITE_BATCH => {
                            let Some(next) =
                                self.backlog.pop_front().or_else(|| self.inputs.ready())
                            else {
                                break;
                            };
                            batched += 1;
                            pieces = Pieces::new(next);
                            continue;
                        }
                        None => break,
                    };
                    if let Err(stop) =
                        drive(self.sink.feed(piece), &mut self.inputs, &mut self.backlog).await
                    {
                        break 'writing stop;
                    }
                }
                if let Err(stop) =
                    drive(self.sink.flush(), &mut self.inputs, &mut self.backlog).await
                {
                    break stop;
                }
            };
            let (code, reason) = match stop {
                Stop::Close(code, reason) => (code, reason),
                Stop::Stalled => (CLOSE_TRY_AGAIN, "too far behind; reconnect to catch up"),
                Stop::Restart(reason) => (CLOSE_RESTART, reason),
                Stop::Gone => return None,
            };
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: Utf8Bytes::from_static(reason),
            };
            let closing = timeout(
                Duration::from_secs(1),
                self.sink.send(Message::Close(Some(frame))),
            );
            let _ = Box::pin(closing).await;
            Some(code)
        }
    }

    /// Carries out the connection task's orders and refills a lag: work that may wait on the
    /// database, done while no write is pending.
    async fn attend(&mut self) -> Result<(), Stop> {
        let (orders, close) = self.inputs.outbox.take();
        if let Some((code, reason)) = close {
            return Err(Stop::Close(code, reason));
        }
        for order in orders {
            match order {
                Order::Send(outgoing) => self.queue(outgoing)?,
                // Boxed: rare, and it would otherwise enlarge every socket's task.
                Order::Resume(after, revision) => Box::pin(self.resume(after, revision)).await?,
                Order::GoLive => {
                    if let Some(feed) = self.inputs.feed.as_mut() {
                        feed.live = true;
                    }
                }
            }
        }
        if let Some(feed) = self.inputs.feed.as_ref()
            && feed.lagged
        {
            // Fell behind the broadcast: refill the gap from the room's window.
            let (after, revision) = (feed.last_sent, feed.revision);
            Box::pin(self.resume(after, Some(revision))).await?;
        }
        Ok(())
    }

    fn queue(&mut self, outgoing: Outgoing) -> Result<(), Stop> {
        if self.backlog.len() >= OUT_QUEUE {
            return Err(Stop::Stalled);
        }
        self.backlog.push_back(outgoing);
        Ok(())
    }

    /// Queues what the client missed: messages after `after` (or a reset when that is too
    /// much) and changes to older ones after `revision`; then goes live.
    async fn resume(&mut self, after: u64, revision: Option<u64>) -> Result<(), Stop> {
        let Some(feed) = self.inputs.feed.as_mut() else {
            return Ok(());
        };
        let missed = match self.hub.catch_up(&feed.room, after, revision).await {
            Ok(missed) => missed,
            Err(e) => {
                tracing::error!(error = %e, room = %feed.room.slug, "catch-up failed");
                feed.lagged = false;
                return self.queue(Outgoing::Text(frame_error_store().into()));
            }
        };
        // A second resume that goes back behind what was already sent can't be appended in
        // order: reset instead.
        let out_of_order = feed.live && after < feed.last_sent;
        feed.live = true;
        feed.lagged = false;
        feed.revision = feed.revision.max(missed.revision);
        let mut frames: Vec<String> = missed.changed.iter().map(|m| m.html.clone()).collect();
        match missed.catch_up {
            CatchUp::Replay(messages) if !out_of_order => {
                if let Some(newest) = messages.last() {
                    feed.last_sent = newest.id;
                }
                feed.last_sent = feed.last_sent.max(after.min(feed.room.last_id()));
                frames.extend(
                    messages
                        .chunks(REPLAY_CHUNK)
                        .map(|chunk| views::append_fragment(chunk.iter().map(Arc::as_ref))),
                );
            }
            CatchUp::Replay(_) | CatchUp::Reset(_) => {
                let page = self.hub.newest_page(&feed.room).await.unwrap_or_default();
                feed.last_sent = page.last().map_or(feed.last_sent, |m| m.id);
                let history = History {
                    slug: feed.room.slug.clone(),
                    messages: page,
                    first_unread: None,
                };
                match views::reset_fragment(&history) {
                    Ok(frame) => frames = vec![frame],
                    Err(e) => {
                        tracing::error!(error = %e, room = %feed.room.slug, "reset render failed");
                    }
                }
            }
        }
        frames.push(views::revision_marker(missed.revision));
        self.inputs
            .outbox
            .last_sent
            .store(feed.last_sent, Ordering::Relaxed);
        for frame in frames {
            self.queue(Outgoing::Text(frame.into()))?;
        }
        Ok(())
    }
}

/// One outgoing message as WebSocket frames: text longer than `TEXT_PIECE` as a text frame
/// and continuation frames, cut between characters.
struct Pieces {
    rest: Option<Bytes>,
    ping: bool,
    started: bool,
}

impl Pieces {
    fn new(outgoing: Outgoing) -> Pieces {
        match outgoing {
            Outgoing::Text(text) => Pieces {
                rest: Some(text),
                ping: false,
                started: false,
            },
            Outgoing::Ping => Pieces {
                rest: None,
                ping: true,
                started: false,
            },
        }
    }

    fn next(&mut self) -> Option<Message> {
        if std::mem::take(&mut self.ping) {
            return Some(Message::Ping(Bytes::new()));
        }
        let rest = self.rest.as_mut()?;
        let mut cut = rest.len().min(TEXT_PIECE);
        // Not inside a UTF-8 sequence: continuation bytes are 0b10xx_xxxx.
        while cut > 0 && cut < rest.len() && rest[cut] & 0xC0 == 0x80 {
            cut -= 1;
        }
        let piece = rest.split_to(cut);
        let last = rest.is_empty();
        if last {
            self.rest = None;
        }
        let opcode = if std::mem::replace(&mut self.started, true) {
            OpCode::Data(Data::Continue)
        } else {
            OpCode::Data(Data::Text)
        };
        Some(Message::Frame(Frame::message(piece, opcode, last)))
    }
}

/// Runs one write on the socket; meanwhile keeps taking frames into the backlog, so a reader
/// that stopped is noticed (the backlog fills) while the write waits.
async fn drive(
    write: impl Future<Output = Result<(), tungstenite::Error>>,
    inputs: &mut Inputs,
    backlog: &mut VecDeque<Outgoing>,
) -> Result<(), Stop> {
    tokio::pin!(write);
    loop {
        tokio::select! {
            biased;
            written = &mut write => return written.map_err(|_| Stop::Gone),
            input = inputs.next() => match input {
                Input::Frame(outgoing) => {
                    if backlog.len() >= OUT_QUEUE {
                        return Err(Stop::Stalled);
                    }
                    backlog.push_back(outgoing);
                }
                Input::Attend => {}
                Input::Stop(stop) => return Err(stop),
            },
        }
    }
}

/// A frame rendered once for everyone: its bytes are shared, not copied.
fn shared_text(frame: &axum::extract::ws::Utf8Bytes) -> Outgoing {
    Outgoing::Text(Bytes::from(frame.clone()))
}
