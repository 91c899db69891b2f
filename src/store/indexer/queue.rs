//! Stored messages waiting for the indexer, in commit order: bounded, and lingering a moment
//! so a trickle of messages makes one index commit rather than one each.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::store::MessageRecord;

/// Messages that wait for the indexer at most (a few MB); past it, batches are dropped and
/// read back from the store.
pub(in crate::store) const QUEUE_BOUND: usize = 32_768;
/// Messages indexed in one commit at most, so one commit's latency stays bounded.
pub(super) const MAX_INDEX_COMMIT: usize = 8_192;
/// How long the first queued messages wait for more before an index commit of fewer than
/// `MAX_INDEX_COMMIT`: at a steady trickle a commit per message batch would cost an fsync
/// and a thread wake-up each, competing with the fan-out for the same cores.
const LINGER: Duration = Duration::from_millis(100);

/// Stored messages waiting to be indexed, in commit order.
pub(super) struct IndexQueue {
    state: Mutex<Queued>,
    changed: Condvar,
    bound: usize,
}

struct Queued {
    batches: VecDeque<Vec<MessageRecord>>,
    messages: usize,
    /// When the oldest queued batch arrived.
    oldest: Option<Instant>,
    /// The store holds messages the queue lacks: read them back before going on.
    behind: bool,
    closed: bool,
}

pub(super) enum Work {
    CatchUp,
    Index(Vec<MessageRecord>),
}

impl IndexQueue {
    pub(super) fn new(bound: usize) -> IndexQueue {
        IndexQueue {
            state: Mutex::new(Queued {
                batches: VecDeque::new(),
                messages: 0,
                oldest: None,
                // What the last run left unindexed, first.
                behind: true,
                closed: false,
            }),
            changed: Condvar::new(),
            bound,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queued> {
        self.state.lock().expect("index queue lock")
    }

    /// Queues committed messages, or drops them if the queue is full: never waits.
    pub(super) fn push(&self, messages: &[MessageRecord]) {
        if messages.is_empty() {
            return;
        }
        let mut queued = self.lock();
        if queued.closed {
            return;
        }
        if queued.messages + messages.len() > self.bound {
            queued.behind = true;
        } else {
            queued.batches.push_back(messages.to_vec());
            queued.messages += messages.len();
            queued.oldest.get_or_insert_with(Instant::now);
        }
        drop(queued);
        self.changed.notify_one();
    }

    pub(super) fn fall_behind(&self) {
        self.lock().behind = true;
        self.changed.notify_one();
    }

    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    pub(super) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The next work, if any (waiting for some if `wait`); `None` once closed.
    pub(super) fn take(&self, wait: bool) -> Option<Work> {
        let mut queued = self.lock();
        loop {
            if queued.closed {
                return None;
            }
            if queued.behind {
                queued.behind = false;
                return Some(Work::CatchUp);
            }
            if wait
                && queued.messages < MAX_INDEX_COMMIT
                && let Some(oldest) = queued.oldest
                && let Some(left) = (oldest + LINGER).checked_duration_since(Instant::now())
                && !left.is_zero()
            {
                queued = self
                    .changed
                    .wait_timeout(queued, left)
                    .expect("index queue lock")
                    .0;
                continue;
            }
            if let Some(mut messages) = queued.batches.pop_front() {
                while let Some(next) = queued.batches.front()
                    && messages.len() + next.len() <= MAX_INDEX_COMMIT
                {
                    messages.extend(queued.batches.pop_front().into_iter().flatten());
                }
                queued.messages -= messages.len();
                if queued.batches.is_empty() {
                    queued.oldest = None;
                }
                return Some(Work::Index(messages));
            }
            if !wait {
                return None;
            }
            queued = self.changed.wait(queued).expect("index queue lock");
        }
    }

    /// Sleeps for `time`, or until closed.
    pub(super) fn pause(&self, time: Duration) {
        let queued = self.lock();
        let _ = self
            .changed
            .wait_timeout_while(queued, time, |queued| !queued.closed);
    }
}
