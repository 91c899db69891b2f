//! The writer task: owns the sending half, takes live events and sidebar updates from their
//! channels and the connection task's orders from the outbox.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use time::UtcOffset;
use tokio::sync::broadcast;
use tokio::time::timeout;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, Utf8Bytes};

use super::composer::frame_error_store;
use super::handshake::Socket;
use super::outbox::{Order, Outbox, Outgoing};
use super::pieces::Pieces;
use super::{CLOSE_RESTART, CLOSE_TRY_AGAIN};
use crate::hub::{CatchUp, Hub, LiveEvent, Room, SidebarUpdate};
use crate::views::{self, History};

/// Frames a writer holds that its socket has not taken yet. A reader this far behind is
/// closed with 1013.
const OUT_QUEUE: usize = 256;
/// Frames written before one flush, at most.
const WRITE_BATCH: usize = 64;
/// Messages per catch-up frame.
const REPLAY_CHUNK: usize = 100;

/// A room socket's position in its room's stream.
pub(super) struct Feed {
    pub(super) room: Arc<Room>,
    pub(super) events: broadcast::Receiver<Arc<LiveEvent>>,
    /// The newest message id this socket has taken to send (or that the client already had).
    pub(super) last_sent: u64,
    /// False until the page's `resume_after` (or the grace period): live messages wait, so
    /// they can't overtake the catch-up.
    pub(super) live: bool,
    /// The receiver fell behind the broadcast: no more events until the gap is refilled from
    /// the window, so nothing arrives out of order.
    pub(super) lagged: bool,
    /// The newest room revision (message change) this socket has taken to send.
    pub(super) revision: u64,
}

/// What a writer waits on besides its socket.
pub(super) struct Inputs {
    pub(super) outbox: Arc<Outbox>,
    /// `None` for the global socket.
    pub(super) feed: Option<Feed>,
    pub(super) sidebar: broadcast::Receiver<Arc<SidebarUpdate>>,
    pub(super) offset: UtcOffset,
    /// The viewer's login handle: whose direct conversations to list.
    pub(super) login: Box<str>,
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
                Ok(update) => Input::Frame(Outgoing::Text(update.frame_for(self.offset, &self.login).into())),
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
            LiveEvent::Messages { first, last, frame } => {
                match Overlap::of(self.last_sent, *first, *last) {
                    Overlap::None => {
                        self.last_sent = *last;
                        outbox.last_sent.store(*last, Ordering::Relaxed);
                        Some(shared_text(frame))
                    }
                    Overlap::Whole => None,
                    // The rest comes from the room's window, in order.
                    Overlap::Part => {
                        self.lagged = true;
                        None
                    }
                }
            }
            LiveEvent::Replace(frame) => Some(shared_text(frame)),
            LiveEvent::Changed { revision, frame } => {
                self.revision = self.revision.max(*revision);
                Some(shared_text(frame))
            }
        }
    }
}

/// How much of a live frame of messages a socket has sent already (by a catch-up).
#[derive(Debug, PartialEq, Eq)]
enum Overlap {
    None,
    Part,
    Whole,
}

impl Overlap {
    /// For a socket that has sent up to `last_sent` and a frame of messages `first..=last`.
    fn of(last_sent: u64, first: u64, last: u64) -> Overlap {
        if first > last_sent {
            Overlap::None
        } else if last > last_sent {
            Overlap::Part
        } else {
            Overlap::Whole
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
pub(super) struct Writer {
    pub(super) sink: SplitSink<Socket, Message>,
    pub(super) hub: Arc<Hub>,
    pub(super) inputs: Inputs,
    /// Frames taken but not yet written: it fills only while the socket is slow to take them.
    pub(super) backlog: VecDeque<Outgoing>,
}

impl Writer {
    /// Returns the code of the close frame it sent, if any. One flat loop, and `self` in
    /// the `async` block: every nested future or copy would add to the state that each
    /// socket keeps.
    #[allow(clippy::manual_async_fn)] // An `async fn` keeps `self` twice: 864 → 688 bytes.
    pub(super) fn run(mut self) -> impl Future<Output = Option<u16>> + Send {
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
                let history = History::new(feed.room.slug.clone(), page, None);
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

#[cfg(test)]
mod tests {
    use super::Overlap;

    #[test]
    fn a_live_frame_is_sent_skipped_or_refilled_by_what_the_socket_has_sent() {
        assert_eq!(Overlap::of(5, 6, 8), Overlap::None);
        assert_eq!(Overlap::of(0, 1, 1), Overlap::None);
        assert_eq!(Overlap::of(5, 4, 7), Overlap::Part);
        assert_eq!(Overlap::of(5, 5, 6), Overlap::Part);
        assert_eq!(Overlap::of(5, 2, 5), Overlap::Whole);
        assert_eq!(Overlap::of(5, 3, 3), Overlap::Whole);
    }
}
