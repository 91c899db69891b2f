//! The connection task: reads the page's frames and answers them through the outbox.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, SplitStream, StreamExt};
use hyper::upgrade::OnUpgrade;
use time::UtcOffset;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout};
use tungstenite::Message;

use tokio_util::sync::CancellationToken;

use super::composer::{frame_error, refused_client_id, render_error};
use super::handshake::{Socket, open_socket};
use super::outbox::{Order, Outbox, Outgoing, Stalled};
use super::writer::{Feed, Inputs, Writer};
use super::{CLOSE_POLICY, CLOSE_RESTART, CLOSE_TOO_BIG, CLOSE_TRY_AGAIN};
use crate::domain::{ClientFrame, FrameError};
use crate::hub::{Appended, Hub, NewMessage, Room, SocketGuard, committed};
use crate::identity::CurrentUser;
use crate::metrics::Metrics;
use crate::rate_limit::{Bucket, RateLimiter};
use crate::store::{StoreError, StoreResult};
use crate::views::ComposerError;

/// `resume_after` frames one socket may send at once, and then per second. A page sends one
/// each time its socket opens; each may replay hundreds of messages.
const RESUME_BURST: f64 = 3.0;
const RESUMES_PER_SECOND: f64 = 0.1;

/// One socket, as its handler hands it over: what it needs from the application, and no more.
pub struct Connection {
    pub hub: Arc<Hub>,
    /// `None` for the global socket.
    pub room: Option<Arc<Room>>,
    pub viewer: CurrentUser,
    /// The viewer's time zone, for the sidebar's day groups.
    pub offset: UtcOffset,
    /// Counts the socket against its login's cap; cancelled when the login ends, which closes
    /// the socket with 1008.
    pub guard: SocketGuard,
    /// The per-login message limit, shared with the other ways of posting.
    pub rate_limiter: Arc<RateLimiter>,
    /// A peer that leaves two pings unanswered is dropped.
    pub ping_every: Duration,
    /// How long live delivery waits for the page's `resume_after` before going live anyway.
    pub resume_grace: Duration,
    /// Cancelled when the server shuts down: the socket closes with 1012.
    pub shutdown: CancellationToken,
    pub metrics: Arc<Metrics>,
}

/// Why the connection task stops reading.
enum End {
    Close(u16, &'static str),
    /// The peer is gone or broken: nothing more can be sent.
    Drop,
    /// The writer stopped by itself, with the close code it sent, if any.
    WriterDone(Option<u16>),
}

type PendingAppend = std::pin::Pin<
    Box<dyn std::future::Future<Output = (Option<String>, StoreResult<Appended>)> + Send>,
>;

impl Connection {
    /// The connection task: upgrades, starts the writer, reads the page's frames, closes.
    /// Only the reading phase is inline: each byte of this future's state is kept for every
    /// open socket, so the one-off phases are boxed, and `self` is captured by the `async`
    /// block rather than taken by an `async fn` (which would store it twice).
    #[allow(clippy::manual_async_fn)] // An `async fn` keeps `self` twice: 1.75 → 1.42 KiB.
    pub fn run(self, upgraded: OnUpgrade) -> impl Future<Output = ()> + Send {
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
                    login: self.viewer.handle().into(),
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
            self.metrics.slow_consumers.increment(1);
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
                .mark_read(&self.viewer.login_id, room, last_sent)
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
        let shutdown = self.shutdown.cancelled();
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
        let mut resumes = Bucket::full(RESUME_BURST);

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
                            .handle_frame(&text, outbox, &mut appends, &mut resume_deadline, &mut resumes, &mut error_shown)
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
        resumes: &mut Bucket,
        error_shown: &mut bool,
    ) -> Result<(), Stalled> {
        let Some(room) = &self.room else {
            // The global socket only listens.
            return Ok(());
        };
        match ClientFrame::parse(text) {
            Ok(ClientFrame::Resume { .. })
                if !resumes.take(Instant::now(), RESUMES_PER_SECOND, RESUME_BURST) =>
            {
                *error_shown = true;
                outbox.text(render_error(&ComposerError::new(
                    FrameError::RateLimited.code(),
                    "The page asked to catch up too often. Wait a moment, or reload the page.",
                )))
            }
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
                let mut error = ComposerError::archived();
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
                let message = NewMessage::said(&self.viewer, body)
                    .with_client_id(&self.viewer.login_id, client_id.as_ref())
                    .answering(reply_to);
                let client_id = client_id.map(|c| c.as_str().to_owned());
                let answer = committed(self.hub.submit(room, message));
                appends
                    .get_or_insert_with(FuturesUnordered::new)
                    .push(Box::pin(async move { (client_id, answer.await) }));
                Ok(())
            }
            Err(e) => {
                *error_shown = true;
                outbox.text(frame_error(e, refused_client_id(text)))
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
                *error_shown = true;
                let mut error = match e {
                    StoreError::Archived => ComposerError::archived(),
                    e => {
                        tracing::error!(error = %e, room = self.slug(), nickname = %self.viewer.nickname, "message not stored");
                        ComposerError::new(
                            "store_failed",
                            "Your message could not be saved. Please send it again.",
                        )
                    }
                };
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
