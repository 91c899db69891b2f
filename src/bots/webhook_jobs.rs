//! Webhook deliveries that wait in a [shared](Storage::is_shared) store: it queues them in the
//! commit that stores the message, so a message stored is a mention queued, on whichever
//! instance. Each instance takes jobs under a lease, delivers them, and finishes them; the
//! jobs of an instance that dies are taken over once their leases run out. A job is leased
//! again for the whole of its delivery just before it starts, and only by the instance that
//! holds it, so each goes out from one instance (twice only if one dies mid-POST).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::store::{self, MessageRecord, Storage, StoreResult, WebhookJob};

/// The jobs this instance holds, and how it holds them.
pub struct StoredJobs {
    storage: Arc<dyn Storage>,
    /// Covers a delivery's every attempt and backoff, twice over.
    lease: Duration,
    /// Jobs taken at most before some are delivered.
    most_in_hand: usize,
    in_hand: AtomicUsize,
    wake: Notify,
}

impl StoredJobs {
    /// `longest_delivery` is the longest one delivery may take; `most_in_hand`, the jobs
    /// taken at most before some are delivered.
    pub fn new(
        storage: Arc<dyn Storage>,
        longest_delivery: Duration,
        most_in_hand: usize,
    ) -> StoredJobs {
        StoredJobs {
            storage,
            lease: longest_delivery.saturating_mul(2),
            most_in_hand,
            in_hand: AtomicUsize::new(0),
            wake: Notify::new(),
        }
    }

    /// A commit here queued jobs: take them now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Until [`StoredJobs::wake`] is called.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Takes as many jobs as there is room for in this instance's hands; with how many it
    /// asked for (fewer came: none are left). `None` with no room, or when the store fails.
    pub async fn take_more(self: &Arc<Self>) -> Option<(Vec<HeldJob>, usize)> {
        let room = self
            .most_in_hand
            .saturating_sub(self.in_hand.load(Ordering::Acquire));
        if room == 0 {
            return None;
        }
        let lease = self.lease;
        let taken = store::blocking(&self.storage, move |s| s.take_webhook_jobs(room, lease));
        match taken.await {
            Ok(jobs) => {
                self.in_hand.fetch_add(jobs.len(), Ordering::AcqRel);
                let held = jobs
                    .into_iter()
                    .map(|job| HeldJob {
                        job,
                        jobs: self.clone(),
                    })
                    .collect();
                Some((held, room))
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not take webhook jobs; trying again");
                None
            }
        }
    }

    /// Lets go of every job this instance holds, for other instances to take now.
    pub async fn release(&self) {
        if let Err(e) = store::blocking(&self.storage, |s| s.release_webhook_jobs()).await {
            tracing::warn!(error = %e, "webhook jobs not let go; others take them when leases end");
        }
    }

    async fn hold(&self, job: &WebhookJob) -> bool {
        let (held_job, lease) = (job.clone(), self.lease);
        let held = store::blocking(&self.storage, move |s| s.hold_webhook_job(&held_job, lease));
        match held.await {
            Ok(true) => true,
            Ok(false) => {
                self.put_down();
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "webhook job not held; it waits for its lease");
                self.put_down();
                false
            }
        }
    }

    async fn finish(&self, job: &WebhookJob) {
        let done = job.clone();
        if let Err(e) = store::blocking(&self.storage, move |s| s.finish_webhook_job(&done)).await {
            tracing::warn!(error = %e, "webhook job not finished; it may go out again");
        }
        self.put_down();
    }

    fn put_down(&self) {
        self.in_hand.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A job this instance took from the store: each ends in exactly one of `finish`,
/// `put_down`, or a `hold` that fails.
pub struct HeldJob {
    pub job: WebhookJob,
    jobs: Arc<StoredJobs>,
}

impl HeldJob {
    /// The message it delivers, if it is still there.
    pub async fn message(&self) -> StoreResult<Option<MessageRecord>> {
        let (room, id) = (self.job.room.clone(), self.job.message_id.max(0) as u64);
        let found = store::blocking(&self.jobs.storage, move |s| s.messages(&room, id, id)).await?;
        Ok(found.into_iter().next())
    }

    /// Leases it for its delivery, about to start; `false` (and put down) if it is no
    /// longer this instance's.
    pub async fn hold(&self) -> bool {
        self.jobs.hold(&self.job).await
    }

    /// It was delivered, or given up on, or has nothing to deliver: off the queue.
    pub async fn finish(&self) {
        self.jobs.finish(&self.job).await
    }

    /// It leaves this instance's hands, still queued in the store: taken again (here or
    /// elsewhere) once its lease runs out.
    pub fn put_down(&self) {
        self.jobs.put_down()
    }
}
