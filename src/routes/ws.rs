//! The WebSockets: `/rooms/{slug}/ws` for a room page, `/ws` for pages without a room (it
//! carries only sidebar updates). Each has one connection task that reads frames and forwards
//! live events, and one writer task that owns the sending half behind a bounded queue.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use futures_util::stream::{FuturesUnordered, SplitSink, StreamExt};
use time::UtcOffset;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::{Instant, interval_at, sleep_until, timeout};

use super::viewer_offset;
use crate::auth::CurrentUser;
use crate::domain::{ClientFrame, FrameError, Slug};
use crate::error::AppError;
use crate::hub::{Appended, CatchUp, Hub, LiveEvent, NewMessage, Room, SocketGuard};
use crate::rate_limit::RateLimiter;
use crate::startup::AppState;
use crate::store::{MessageKind, StoreResult};
use crate::views::{self, ComposerError, History};

/// A socket message over this is refused and the socket closed with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Frames waiting for one socket. A reader this far behind is closed with 1013.
const OUT_QUEUE: usize = 256;
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
    upgrade: WebSocketUpgrade,
) -> Result<Response, AppError> {
    let room = Slug::parse(&slug)
        .and_then(|slug| state.hub.room(&slug))
        .ok_or(AppError::NotFound);
    accept(state, viewer, headers, upgrade, Some(room)).await
}

/// The socket of pages without a room: sidebar updates only.
pub async fn global_socket(
    State(state): State<AppState>,
    viewer: Option<CurrentUser>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, AppError> {
    accept(state, viewer, headers, upgrade, None).await
}

async fn accept(
    state: AppState,
    viewer: Option<CurrentUser>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
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
    let tracker = state.tracker.clone();
    Ok(upgrade
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| tracker.track_future(connection.run(socket))))
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

/// Why a connection ends.
enum End {
    Close(u16, &'static str),
    /// The peer is gone or broken: nothing more can be sent.
    Drop,
}

/// A full outgoing queue: the reader stopped draining.
struct Stalled;

type PendingAppend = std::pin::Pin<
    Box<dyn std::future::Future<Output = (Option<String>, StoreResult<Appended>)> + Send>,
>;

struct Outbox {
    queue: mpsc::Sender<Message>,
}

impl Outbox {
    fn push(&self, message: Message) -> Result<(), Stalled> {
        match self.queue.try_send(message) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(Stalled),
            // The writer has gone: the socket is closing anyway.
            Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
        }
    }

    fn text(&self, text: impl Into<Utf8Bytes>) -> Result<(), Stalled> {
        self.push(Message::Text(text.into()))
    }
}

/// A room socket's position in its room's stream.
struct Feed {
    room: Arc<Room>,
    events: broadcast::Receiver<Arc<LiveEvent>>,
    /// The newest message id this socket has sent (or that the client already had).
    last_sent: u64,
    /// False until the page's `resume_after` (or the grace period): live messages wait, so
    /// they can't overtake the catch-up.
    live: bool,
}

impl Feed {
    async fn next_event(
        feed: &mut Option<Feed>,
    ) -> Result<Arc<LiveEvent>, broadcast::error::RecvError> {
        match feed {
            Some(feed) if feed.live => feed.events.recv().await,
            _ => std::future::pending().await,
        }
    }
}

impl Connection {
    #[tracing::instrument(
        name = "socket",
        skip_all,
        fields(room = %self.room.as_ref().map_or("", |r| r.slug.as_str()), nickname = %self.viewer.nickname)
    )]
    async fn run(self, socket: WebSocket) {
        let (sink, mut stream) = socket.split();
        let (queue, queued) = mpsc::channel(OUT_QUEUE);
        let (close_tx, close_rx) = oneshot::channel();
        let writer = tokio::spawn(write_loop(sink, queued, close_rx));
        let outbox = Outbox { queue };

        let mut sidebar = self.hub.sidebar_updates();
        // Subscribed before reading `last_id`: whatever is newer arrives on the channel.
        let mut feed = self.room.as_ref().map(|room| Feed {
            room: room.clone(),
            events: room.subscribe(),
            last_sent: room.last_id(),
            live: false,
        });
        if let Some(room) = &self.room {
            self.hub.arrive(room, &self.viewer.nickname);
        }
        tracing::debug!("socket open");
        let resume_deadline = Instant::now() + self.resume_grace;
        let mut pings = interval_at(Instant::now() + self.ping_every, self.ping_every);
        let mut unanswered_pings = 0u32;
        let mut appends: FuturesUnordered<PendingAppend> = FuturesUnordered::new();
        let mut error_shown = false;
        let shutdown = self.hub.shutdown_token().clone();
        let ended = self.guard.ended().clone();

        let end = loop {
            let waiting_for_resume = feed.as_ref().is_some_and(|f| !f.live);
            let step: Result<Option<End>, Stalled> = tokio::select! {
                biased;
                _ = shutdown.cancelled() => Ok(Some(End::Close(CLOSE_RESTART, "server restarting"))),
                _ = ended.cancelled() => Ok(Some(End::Close(CLOSE_POLICY, "logged out"))),
                frame = stream.next() => {
                    unanswered_pings = 0;
                    match frame {
                        None | Some(Ok(Message::Close(_))) => Ok(Some(End::Drop)),
                        Some(Err(e)) => Ok(Some(read_failure(e))),
                        Some(Ok(Message::Text(text))) => {
                            self.handle_frame(&text, &outbox, &mut feed, &mut appends, &mut error_shown)
                                .await
                                .map(|_| None)
                        }
                        Some(Ok(Message::Binary(_))) => {
                            error_shown = true;
                            outbox.text(frame_error(FrameError::BadFrame, None)).map(|_| None)
                        }
                        Some(Ok(_)) => Ok(None),
                    }
                }
                Some((client_id, result)) = appends.next() => {
                    self.acknowledge(&outbox, feed.as_ref(), client_id, result, &mut error_shown).map(|_| None)
                }
                event = Feed::next_event(&mut feed) => {
                    let feed = feed.as_mut().expect("events come only from a feed");
                    match event {
                        Ok(event) => match &*event {
                            LiveEvent::Message { id, frame } if *id > feed.last_sent => {
                                feed.last_sent = *id;
                                outbox.text(frame.clone()).map(|_| None)
                            }
                            LiveEvent::Message { .. } => Ok(None),
                            LiveEvent::Replace(frame) => outbox.text(frame.clone()).map(|_| None),
                        },
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            // Fell behind the broadcast: refill the gap from the room's window.
                            let after = feed.last_sent;
                            self.resume(&outbox, feed, after).await.map(|_| None)
                        }
                        Err(broadcast::error::RecvError::Closed) => Ok(Some(End::Close(CLOSE_RESTART, "room closed"))),
                    }
                }
                update = sidebar.recv() => match update {
                    Ok(update) => outbox.text(update.frame_for(self.offset)).map(|_| None),
                    // Only the newest list matters; a skipped one is replaced by the next.
                    Err(broadcast::error::RecvError::Lagged(_)) => Ok(None),
                    Err(broadcast::error::RecvError::Closed) => Ok(Some(End::Close(CLOSE_RESTART, "server restarting"))),
                },
                _ = sleep_until(resume_deadline), if waiting_for_resume => {
                    if let Some(feed) = feed.as_mut() {
                        feed.live = true;
                    }
                    Ok(None)
                }
                _ = pings.tick() => {
                    unanswered_pings += 1;
                    if unanswered_pings > 2 {
                        tracing::debug!("peer missed two pings");
                        Ok(Some(End::Drop))
                    } else {
                        outbox.push(Message::Ping(Bytes::new())).map(|_| None)
                    }
                }
            };
            match step {
                Ok(None) => continue,
                Ok(Some(end)) => break end,
                Err(Stalled) => {
                    tracing::info!("closing a socket that stopped reading");
                    break End::Close(CLOSE_TRY_AGAIN, "too far behind; reconnect to catch up");
                }
            }
        };

        if let End::Close(code, reason) = end {
            let _ = close_tx.send(CloseFrame {
                code,
                reason: reason.into(),
            });
        } else {
            writer.abort();
        }
        let closing = matches!(end, End::Close(..));
        drop(outbox);
        let _ = timeout(Duration::from_secs(2), writer).await;
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
        tracing::debug!("socket closed");
        if let Some(feed) = feed {
            self.hub.depart(&feed.room, &self.viewer.nickname);
            if let Err(e) = self
                .hub
                .mark_read(&self.viewer.login_id, &feed.room.slug, feed.last_sent)
                .await
            {
                tracing::warn!(error = %e, "could not remember what was read");
            }
        }
        drop(self.guard);
    }

    async fn handle_frame(
        &self,
        text: &str,
        outbox: &Outbox,
        feed: &mut Option<Feed>,
        appends: &mut FuturesUnordered<PendingAppend>,
        error_shown: &mut bool,
    ) -> Result<(), Stalled> {
        let Some(feed) = feed.as_mut() else {
            // The global socket only listens.
            return Ok(());
        };
        match ClientFrame::parse(text) {
            Ok(ClientFrame::Resume { after }) => self.resume(outbox, feed, after).await,
            Ok(ClientFrame::Typing) => {
                self.hub.typing(&feed.room, &self.viewer.nickname);
                Ok(())
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
                feed.live = true;
                self.hub.stopped_typing(&feed.room, &self.viewer.nickname);
                let client_id = client_id.map(|c| c.as_str().to_owned());
                let answer = self.hub.submit(
                    &feed.room,
                    NewMessage {
                        kind: MessageKind::User,
                        author: self.viewer.nickname.clone(),
                        body: body.into_string(),
                        dedup: client_id.clone().map(|c| (self.viewer.login_id.clone(), c)),
                        reply_to,
                    },
                );
                appends.push(Box::pin(async move {
                    let result = answer.await.unwrap_or_else(|_| {
                        Err(crate::store::StoreError("the committer stopped".into()))
                    });
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

    /// Sends what the client missed after `after` (or a reset when that is too much), and
    /// goes live from there.
    async fn resume(&self, outbox: &Outbox, feed: &mut Feed, after: u64) -> Result<(), Stalled> {
        let catch_up = match self.hub.catch_up(&feed.room, after).await {
            Ok(catch_up) => catch_up,
            Err(e) => {
                tracing::error!(error = %e, "catch-up failed");
                return outbox.text(frame_error_store());
            }
        };
        // A second resume that goes back behind what was already sent can't be appended in
        // order: reset instead.
        let out_of_order = feed.live && after < feed.last_sent;
        feed.live = true;
        match catch_up {
            CatchUp::Replay(messages) if !out_of_order => {
                for chunk in messages.chunks(REPLAY_CHUNK) {
                    outbox.text(views::append_fragment(chunk.iter().map(Arc::as_ref)))?;
                }
                if let Some(newest) = messages.last() {
                    feed.last_sent = newest.id;
                }
                feed.last_sent = feed.last_sent.max(after.min(feed.room.last_id()));
                Ok(())
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
                    Ok(frame) => outbox.text(frame),
                    Err(e) => {
                        tracing::error!(error = %e, "reset render failed");
                        Ok(())
                    }
                }
            }
        }
    }

    fn acknowledge(
        &self,
        outbox: &Outbox,
        feed: Option<&Feed>,
        client_id: Option<String>,
        result: StoreResult<Appended>,
        error_shown: &mut bool,
    ) -> Result<(), Stalled> {
        match result {
            Ok(appended) => {
                if let (Appended::Duplicate(id), Some(feed)) = (appended, feed)
                    && let Some(original) = self.hub.recent_message(&feed.room, id)
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
                tracing::error!(error = %e, "message not stored");
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

fn read_failure(error: axum::Error) -> End {
    let too_big = error
        .into_inner()
        .downcast_ref::<tungstenite::Error>()
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)));
    if too_big {
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

/// Owns the sending half. Sends queued frames in order, flushing once per batch of what is
/// queued rather than once per frame; a close request jumps the queue, and a socket that
/// can't take it within a second is dropped.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut queued: mpsc::Receiver<Message>,
    mut close: oneshot::Receiver<CloseFrame>,
) {
    loop {
        let first = tokio::select! {
            biased;
            frame = &mut close => return send_close(&mut sink, frame.ok()).await,
            message = queued.recv() => match message {
                Some(message) => message,
                // The connection ended; send its close frame if it left one.
                None => return send_close(&mut sink, close.try_recv().ok()).await,
            },
        };
        let closing = tokio::select! {
            biased;
            frame = &mut close => Some(frame.ok()),
            written = async {
                sink.feed(first).await?;
                for _ in 1..WRITE_BATCH {
                    match queued.try_recv() {
                        Ok(message) => sink.feed(message).await?,
                        Err(_) => break,
                    }
                }
                sink.flush().await
            } => {
                if written.is_err() {
                    return;
                }
                None
            }
        };
        if let Some(frame) = closing {
            return send_close(&mut sink, frame).await;
        }
    }
}

async fn send_close(sink: &mut SplitSink<WebSocket, Message>, frame: Option<CloseFrame>) {
    if let Some(frame) = frame {
        let _ = timeout(
            Duration::from_secs(1),
            sink.send(Message::Close(Some(frame))),
        )
        .await;
    }
}
