//! Webhook deliveries that wait in a [shared](Storage::is_shared) store: it queues them in the
//! commit that stores the message, so a message stored is a mention queued, on whichever
//! instance. Each instance takes jobs under a lease, delivers them, and finishes them; the
//! jobs of an instance that dies are taken over once their leases run out. A job is leased
//! again for the whole of its delivery just before it starts, and only by the instance that
//! holds it, so each goes out from one instance (twice only if one dies mid-POST).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::Bots;
use super::webhook::{Delivery, MentionPayload, WebhookSettings};
use crate::store::{self, Storage, WebhookJob};

/// How often each instance looks for jobs that others queued or left (its own commits wake
/// it at once).
const LOOK_EVERY: Duration = Duration::from_secs(1);

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
    pub fn new(storage: Arc<dyn Storage>, settings: &WebhookSettings) -> StoredJobs {
        StoredJobs {
            storage,
            lease: settings.longest_delivery().saturating_mul(2),
            most_in_hand: settings.queue,
            in_hand: AtomicUsize::new(0),
            wake: Notify::new(),
        }
    }

    /// A commit here queued jobs: take them now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Leases `job` for its delivery, about to start; `false` (and put down) if it is no
    /// longer this instance's.
    pub async fn hold(&self, job: &WebhookJob) -> bool {
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

    /// `job` was delivered, or given up on: off the queue.
    pub async fn finish(&self, job: &WebhookJob) {
        let done = job.clone();
        if let Err(e) = store::blocking(&self.storage, move |s| s.finish_webhook_job(&done)).await {
            tracing::warn!(error = %e, "webhook job not finished; it may go out again");
        }
        self.put_down();
    }

    /// A job taken leaves this instance's hands, still queued in the store.
    pub fn put_down(&self) {
        self.in_hand.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Takes queued jobs into `queue` until shutdown, then lets go of those still held.
pub async fn take(
    stored: Arc<StoredJobs>,
    queue: mpsc::Sender<Delivery>,
    bots: Arc<Bots>,
    public_url: Option<String>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stored.wake.notified() => {}
            () = tokio::time::sleep(LOOK_EVERY) => {}
            () = shutdown.cancelled() => break,
        }
        loop {
            let room = stored
                .most_in_hand
                .saturating_sub(stored.in_hand.load(Ordering::Acquire));
            if room == 0 {
                break;
            }
            let lease = stored.lease;
            let taken =
                store::blocking(&stored.storage, move |s| s.take_webhook_jobs(room, lease)).await;
            let jobs = match taken {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "could not take webhook jobs; trying again");
                    break;
                }
            };
            let count = jobs.len();
            for job in jobs {
                stored.in_hand.fetch_add(1, Ordering::AcqRel);
                match delivery_of(&stored, &bots, public_url.as_deref(), job).await {
                    Taken::Deliver(delivery) => {
                        if queue.send(delivery).await.is_err() {
                            return;
                        }
                    }
                    Taken::Nothing(job) => stored.finish(&job).await,
                    Taken::Later => stored.put_down(),
                }
            }
            if count < room {
                break;
            }
        }
    }
    let storage = stored.storage.clone();
    if let Err(e) = store::blocking(&storage, |s| s.release_webhook_jobs()).await {
        tracing::warn!(error = %e, "webhook jobs not let go; others take them when leases end");
    }
}

/// What becomes of a job just taken.
enum Taken {
    Deliver(Delivery),
    /// Nothing to deliver: the message is gone or deleted, or the bot has no webhook now.
    Nothing(WebhookJob),
    /// Its message could not be read: it is taken again when the lease runs out.
    Later,
}

async fn delivery_of(
    stored: &StoredJobs,
    bots: &Bots,
    public_url: Option<&str>,
    job: WebhookJob,
) -> Taken {
    let Some(target) = bots.webhook_of(&job.bot_id) else {
        return Taken::Nothing(job);
    };
    let (room, id) = (job.room.clone(), job.message_id.max(0) as u64);
    let found = store::blocking(&stored.storage, move |s| s.messages(&room, id, id)).await;
    let message = match found {
        Ok(mut messages) => match messages.pop() {
            Some(message) if !message.deleted => message,
            _ => return Taken::Nothing(job),
        },
        Err(e) => {
            tracing::warn!(error = %e, "a webhook job's message could not be read");
            return Taken::Later;
        }
    };
    Taken::Deliver(Delivery {
        bot_id: job.bot_id.clone(),
        payload: MentionPayload::new(&target, &message, public_url),
        job: Some(job),
    })
}
