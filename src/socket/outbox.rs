//! What the connection task asks of its writer.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use axum::body::Bytes;
use tokio::sync::Notify;

/// Orders the writer has not taken yet; more means it is stuck behind a socket that stopped
/// reading, and the socket is closed with 1013.
const OUTBOX_LIMIT: usize = 64;

/// A full queue: the reader stopped draining.
pub(super) struct Stalled;

/// A frame for the writer to send.
pub(super) enum Outgoing {
    /// An HTML fragment, shared with every other socket that gets it.
    Text(Bytes),
    Ping,
}

/// Something the connection task asks its writer to do, in order.
pub(super) enum Order {
    Send(Outgoing),
    /// The page's `resume_after` and room revision: replay what it missed, then go live.
    Resume(u64, Option<u64>),
    /// The page sent a message: live from now on, resumed or not.
    GoLive,
}

/// From the connection task to its writer.
#[derive(Default)]
pub(super) struct Outbox {
    state: Mutex<OutboxState>,
    pub(super) wake: Notify,
    /// The newest message id the writer has sent (or that the client already had), for
    /// marking the room read when the socket closes.
    pub(super) last_sent: AtomicU64,
}

#[derive(Default)]
struct OutboxState {
    orders: VecDeque<Order>,
    /// Jumps the queue: the writer sends it and stops.
    close: Option<(u16, &'static str)>,
}

impl Outbox {
    pub(super) fn order(&self, order: Order) -> Result<(), Stalled> {
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

    pub(super) fn text(&self, text: String) -> Result<(), Stalled> {
        self.order(Order::Send(Outgoing::Text(text.into())))
    }

    pub(super) fn close(&self, code: u16, reason: &'static str) {
        self.state.lock().expect("outbox lock").close = Some((code, reason));
        self.wake.notify_one();
    }

    /// Everything ordered so far, leaving the queue without an allocation.
    pub(super) fn take(&self) -> (VecDeque<Order>, Option<(u16, &'static str)>) {
        let mut state = self.state.lock().expect("outbox lock");
        (std::mem::take(&mut state.orders), state.close.take())
    }

    pub(super) fn close_requested(&self) -> Option<(u16, &'static str)> {
        self.state.lock().expect("outbox lock").close.take()
    }
}
