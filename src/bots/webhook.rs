//! Outgoing webhooks: when a message mentions a bot that has a webhook URL, a JSON POST goes
//! there. Delivery runs off the request path and off the committer: the committer only puts
//! it in a bounded queue (dropping it, with a warning, when the queue is full), or, with a
//! shared store, the store queues it in the message's own commit (see [`super::webhook_jobs`]).
//! A dispatcher sorts the deliveries into one line per bot, each bounded on its own, and each
//! bot's line is delivered in order, one at a time, with a timeout, retrying failures with
//! exponential backoff. So a bot whose webhook hangs, or that is mentioned a thousand times,
//! holds up only its own deliveries. It connects only to public addresses unless
//! `--allow-private-webhooks` (see [`super::destination`]).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::destination::{self, DestinationError};
use super::webhook_jobs::{HeldJob, StoredJobs};
use super::{Bots, WebhookTarget};
use crate::hub::{BotsHook, Room};
use crate::security::hex;
use crate::store::{MessageKind, MessageRecord, Storage};

/// The header that carries `sha256=` and the hex HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "x-chat-signature";

/// Deliveries in flight at once, each to a different bot; the rest wait in their lines.
const CONCURRENT_DELIVERIES: usize = 64;

/// How deliveries are made; flags (defaults in `Config`), so tests can shorten them.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Per attempt, connecting included.
    pub timeout: Duration,
    /// Attempts per delivery, the first one included.
    pub attempts: u32,
    /// The wait before the first retry; each later one waits twice as long.
    pub backoff: Duration,
    /// Deliveries waiting at most; past it new ones are dropped.
    pub queue: usize,
    /// Deliveries waiting for one bot at most; past it that bot's new ones are dropped.
    pub bot_queue: usize,
    /// `--allow-private-webhooks`: deliver to loopback and private addresses too.
    pub allow_private: bool,
}

impl WebhookSettings {
    /// The longest one delivery takes: every attempt timing out, with every backoff between.
    pub fn longest_delivery(&self) -> Duration {
        let attempts = self.attempts.max(1);
        let backoffs = (1..attempts).fold(0u32, |sum, attempt| {
            sum.saturating_add(1 << (attempt - 1).min(16))
        });
        self.timeout
            .saturating_mul(attempts)
            .saturating_add(self.backoff.saturating_mul(backoffs))
    }
}

/// What a bot's webhook receives.
#[derive(Debug, Clone, Serialize)]
pub struct MentionPayload {
    pub event: &'static str,
    pub bot: String,
    pub room: String,
    pub message: PayloadMessage,
    pub permalink: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PayloadMessage {
    pub id: i64,
    pub author: String,
    pub author_is_bot: bool,
    pub body: String,
    pub created_at: String,
}

impl MentionPayload {
    /// What `target`'s webhook receives for `message`. `public_url` (`--public-url`) wins
    /// over the origin the bot's owner used, for the permalink.
    pub fn new(
        target: &WebhookTarget,
        message: &MessageRecord,
        public_url: Option<&str>,
    ) -> MentionPayload {
        let origin = public_url.unwrap_or(&target.origin);
        let permalink = format!(
            "{}/rooms/{}/messages/{}#msg-{}",
            origin.trim_end_matches('/'),
            message.room,
            message.id,
            message.id
        );
        let created_at =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(message.created_at) * 1_000_000)
                .ok()
                .and_then(|at| at.format(&Rfc3339).ok())
                .unwrap_or_default();
        MentionPayload {
            event: "mention",
            bot: target.bot.clone(),
            room: message.room.to_string(),
            message: PayloadMessage {
                id: message.id,
                author: message.author.clone(),
                author_is_bot: message.bot,
                body: message.body.clone(),
                created_at,
            },
            permalink,
        }
    }
}

/// One POST to make, to wherever the bot's webhook is when its turn comes.
pub struct Delivery {
    pub bot_id: String,
    pub payload: MentionPayload,
    /// The stored job it comes from, with a shared store: finished once delivered.
    pub job: Option<HeldJob>,
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `key`, as GitHub's webhooks do it.
pub fn signature(key: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

/// The sending end of the delivery queue.
pub struct Webhooks {
    queue: mpsc::Sender<Delivery>,
    /// With a shared store, where deliveries wait instead.
    stored: Option<Arc<StoredJobs>>,
}

impl Webhooks {
    /// Starts delivering until shutdown: the dispatcher, and with a
    /// [shared](Storage::is_shared) store the taker of the jobs it queues.
    pub fn start(
        settings: WebhookSettings,
        storage: &Arc<dyn Storage>,
        bots: Arc<Bots>,
        public_url: Option<String>,
        shutdown: CancellationToken,
    ) -> Webhooks {
        let (mut webhooks, deliveries) = Webhooks::new(&settings);
        if storage.is_shared() {
            let stored = Arc::new(StoredJobs::new(
                storage.clone(),
                settings.longest_delivery(),
                settings.queue,
            ));
            tokio::spawn(take_stored_jobs(
                stored.clone(),
                webhooks.queue.clone(),
                bots.clone(),
                public_url,
                shutdown.clone(),
            ));
            webhooks.stored = Some(stored);
        }
        tokio::spawn(run_deliveries(deliveries, settings, bots, shutdown));
        webhooks
    }

    /// The queue, and its receiving end for [`run_deliveries`].
    fn new(settings: &WebhookSettings) -> (Webhooks, mpsc::Receiver<Delivery>) {
        let (queue, deliveries) = mpsc::channel(settings.queue.max(1));
        (
            Webhooks {
                queue,
                stored: None,
            },
            deliveries,
        )
    }

    /// Queues a delivery without waiting: when the queue is full it is dropped.
    pub fn enqueue(&self, delivery: Delivery) -> bool {
        match self.queue.try_send(delivery) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(dropped)) => {
                tracing::warn!(
                    bot = %dropped.payload.bot,
                    message = dropped.payload.message.id,
                    "webhook queue full; mention not delivered"
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// How often each instance looks for stored jobs that others queued or left (its own
/// commits wake it at once).
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Takes stored jobs into `queue` until shutdown, then lets go of those still held.
async fn take_stored_jobs(
    stored: Arc<StoredJobs>,
    queue: mpsc::Sender<Delivery>,
    bots: Arc<Bots>,
    public_url: Option<String>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stored.woken() => {}
            () = tokio::time::sleep(LOOK_EVERY) => {}
            () = shutdown.cancelled() => break,
        }
        while let Some((jobs, asked)) = stored.take_more().await {
            let count = jobs.len();
            for job in jobs {
                if let Some(delivery) = delivery_of(&bots, public_url.as_deref(), job).await
                    && queue.send(delivery).await.is_err()
                {
                    return;
                }
            }
            if count < asked {
                break;
            }
        }
    }
    stored.release().await;
}

/// What to deliver for a stored job just taken. `None` when there is nothing to deliver
/// (the message is gone or deleted, or the bot has no webhook now: the job is finished), or
/// its message could not be read (put down: taken again when the lease runs out).
async fn delivery_of(bots: &Bots, public_url: Option<&str>, job: HeldJob) -> Option<Delivery> {
    let Some(target) = bots.webhook_of(&job.job.bot_id) else {
        job.finish().await;
        return None;
    };
    let message = match job.message().await {
        Ok(Some(message)) if !message.deleted => message,
        Ok(_) => {
            job.finish().await;
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "a webhook job's message could not be read");
            job.put_down();
            return None;
        }
    };
    Some(Delivery {
        bot_id: target.id.clone(),
        payload: MentionPayload::new(&target, &message, public_url),
        job: Some(job),
    })
}

/// What waits, bot by bot. A bot has a line exactly while its worker runs.
#[derive(Default)]
struct Lines {
    by_bot: HashMap<String, VecDeque<Delivery>>,
    /// Deliveries in all the lines.
    waiting: usize,
}

/// What each bot's worker shares.
struct Dispatch {
    lines: Mutex<Lines>,
    client: reqwest::Client,
    settings: WebhookSettings,
    slots: Arc<Semaphore>,
    bots: Arc<Bots>,
    shutdown: CancellationToken,
}

/// Delivers queued webhooks until shutdown: sorts them into a line per bot, and runs one
/// worker per bot with something waiting. `bots` says, before each delivery, whether the
/// bot still has that webhook (a deleted bot, a revoked token or a removed webhook gets
/// nothing more).
async fn run_deliveries(
    mut deliveries: mpsc::Receiver<Delivery>,
    settings: WebhookSettings,
    bots: Arc<Bots>,
    shutdown: CancellationToken,
) {
    let mut builder = reqwest::Client::builder()
        .timeout(settings.timeout)
        // A redirect could lead anywhere, past the checks: none is followed.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("chat-webhooks/", env!("CARGO_PKG_VERSION")));
    if !settings.allow_private {
        // Names resolve to checked public addresses only, and connections go straight to
        // them: a proxy from the environment would connect wherever it was told.
        builder = builder
            .dns_resolver(Arc::new(destination::PublicOnly))
            .no_proxy();
    }
    let client = match builder.build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook client; webhooks are off");
            return;
        }
    };
    let dispatch = Arc::new(Dispatch {
        lines: Mutex::default(),
        client,
        settings,
        slots: Arc::new(Semaphore::new(CONCURRENT_DELIVERIES)),
        bots,
        shutdown: shutdown.clone(),
    });
    loop {
        let delivery = tokio::select! {
            delivery = deliveries.recv() => match delivery {
                Some(delivery) => delivery,
                None => return,
            },
            () = shutdown.cancelled() => return,
        };
        let bot = delivery.bot_id.clone();
        if dispatch.line_up(delivery) {
            tokio::spawn(work_line(dispatch.clone(), bot));
        }
    }
}

impl Dispatch {
    /// Puts a delivery in its bot's line; `true` if the line is new and needs a worker.
    fn line_up(&self, delivery: Delivery) -> bool {
        let mut lines = self.lines.lock().expect("webhook lines lock");
        let full = if lines.waiting >= self.settings.queue {
            Some("webhook queue full")
        } else if lines
            .by_bot
            .get(&delivery.bot_id)
            .is_some_and(|line| line.len() >= self.settings.bot_queue)
        {
            Some("this bot's webhook queue is full")
        } else {
            None
        };
        if let Some(full) = full {
            match &delivery.job {
                // Still queued in the store: taken again once its lease runs out.
                Some(job) => {
                    tracing::info!(bot = %delivery.payload.bot, "{full}; the mention waits");
                    job.put_down();
                }
                None => tracing::warn!(
                    bot = %delivery.payload.bot,
                    message = delivery.payload.message.id,
                    "{full}; mention not delivered"
                ),
            }
            return false;
        }
        let started = match lines.by_bot.entry(delivery.bot_id.clone()) {
            Entry::Occupied(mut line) => {
                line.get_mut().push_back(delivery);
                false
            }
            Entry::Vacant(line) => {
                line.insert(VecDeque::from([delivery]));
                true
            }
        };
        lines.waiting += 1;
        started
    }

    /// The bot's next delivery; `None` when its line is empty, which ends the line (under
    /// the same lock, so a delivery lined up meanwhile starts a new worker).
    fn next_for(&self, bot: &str) -> Option<Delivery> {
        let mut lines = self.lines.lock().expect("webhook lines lock");
        let next = lines.by_bot.get_mut(bot).and_then(VecDeque::pop_front);
        match next {
            Some(_) => lines.waiting -= 1,
            None => {
                lines.by_bot.remove(bot);
            }
        }
        next
    }
}

/// Delivers one bot's line, in order, one at a time, until it is empty.
async fn work_line(dispatch: Arc<Dispatch>, bot_id: String) {
    while let Some(delivery) = dispatch.next_for(&bot_id) {
        // Where the bot's webhook is now: it may be gone, or have moved.
        let Some(target) = dispatch.bots.webhook_of(&bot_id) else {
            if let Some(job) = &delivery.job {
                job.finish().await;
            }
            continue;
        };
        let Ok(_slot) = dispatch.slots.acquire().await else {
            return;
        };
        // Another instance took the job over (its lease ran out here), or it is done.
        if let Some(job) = &delivery.job
            && !job.hold().await
        {
            continue;
        }
        tokio::select! {
            () = deliver(&dispatch.client, &target, &delivery, &dispatch.settings) => {}
            () = dispatch.shutdown.cancelled() => return,
        }
        if let Some(job) = &delivery.job {
            job.finish().await;
        }
    }
}

/// Tries until a 2xx, a refusal that retrying can't fix, or the last attempt.
async fn deliver(
    client: &reqwest::Client,
    target: &WebhookTarget,
    delivery: &Delivery,
    settings: &WebhookSettings,
) {
    let body = match serde_json::to_vec(&delivery.payload) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "webhook payload did not serialise");
            return;
        }
    };
    let signed = signature(&target.signing_key, &body);
    if !settings.allow_private
        && let Err(refused @ DestinationError::NotPublic { .. }) =
            check_destination(&target.url).await
    {
        // Set before the rule, or its name now points elsewhere: retrying won't change it.
        tracing::warn!(bot = %delivery.payload.bot, reason = %refused, "webhook not delivered");
        return;
    }
    let attempts = settings.attempts.max(1);
    for attempt in 1..=attempts {
        let outcome = client
            .post(&target.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, &signed)
            .body(body.clone())
            .send()
            .await;
        let retry = match outcome {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => {
                let status = response.status();
                let retry = status.is_server_error()
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status == reqwest::StatusCode::REQUEST_TIMEOUT;
                tracing::debug!(%status, attempt, bot = %delivery.payload.bot, "webhook refused");
                retry
            }
            Err(e) => {
                tracing::debug!(error = %e, attempt, bot = %delivery.payload.bot, "webhook failed");
                true
            }
        };
        if !retry || attempt == attempts {
            break;
        }
        tokio::time::sleep(settings.backoff.saturating_mul(1 << (attempt - 1).min(16))).await;
    }
    tracing::warn!(
        bot = %delivery.payload.bot,
        message = delivery.payload.message.id,
        "webhook not delivered"
    );
}

/// Where `url` leads, checked (an address in the URL is not resolved, so the client's
/// resolver never sees it: it is checked here).
async fn check_destination(url: &str) -> Result<(), DestinationError> {
    match url::Url::parse(url) {
        Ok(url) => destination::check(&url).await,
        Err(e) => Err(DestinationError::Unresolved {
            host: url.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// Turns mentions of bots with webhooks into queued deliveries.
pub struct MentionWebhooks {
    pub bots: Arc<Bots>,
    pub webhooks: Webhooks,
    /// `--public-url`, which wins over the origin the bot's owner used.
    pub public_url: Option<String>,
}

impl BotsHook for MentionWebhooks {
    fn changed_elsewhere(&self) {
        self.bots.reload();
    }

    fn webhooks_for(
        &self,
        room: &Room,
        message: &MessageRecord,
        mentions: &[String],
    ) -> Vec<String> {
        if message.kind != MessageKind::User {
            return Vec::new();
        }
        let mut bots: Vec<String> = Vec::new();
        for key in mentions {
            let Some(target) = self.bots.webhook_for(key) else {
                continue;
            };
            // A direct conversation's words never leave it, even when someone names a bot;
            // and a bot answering its own mention would loop.
            let own = message.bot && message.author == target.bot;
            if room.readable_by(&target.handle) && !own && !bots.contains(&target.id) {
                bots.push(target.id);
            }
        }
        bots
    }

    fn mentioned(&self, message: &MessageRecord, bots: &[String]) {
        if let Some(stored) = &self.webhooks.stored {
            // Queued in the commit: the taker brings them out.
            stored.wake();
            return;
        }
        for bot_id in bots {
            if let Some(target) = self.bots.webhook_of(bot_id) {
                self.webhooks.enqueue(Delivery {
                    bot_id: target.id.clone(),
                    payload: MentionPayload::new(&target, message, self.public_url.as_deref()),
                    job: None,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: i64) -> Delivery {
        Delivery {
            bot_id: "helper-id".into(),
            job: None,
            payload: MentionPayload {
                event: "mention",
                bot: "helper".into(),
                room: "lobby".into(),
                message: PayloadMessage {
                    id,
                    author: "alice".into(),
                    author_is_bot: false,
                    body: "@helper hi".into(),
                    created_at: String::new(),
                },
                permalink: String::new(),
            },
        }
    }

    #[test]
    fn the_signature_is_the_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_full_queue_drops_instead_of_waiting() {
        let settings = WebhookSettings {
            timeout: Duration::from_secs(1),
            attempts: 1,
            backoff: Duration::from_millis(1),
            queue: 2,
            bot_queue: 2,
            allow_private: false,
        };
        let (webhooks, mut queued) = Webhooks::new(&settings);
        assert!(webhooks.enqueue(delivery(1)));
        assert!(webhooks.enqueue(delivery(2)));
        assert!(!webhooks.enqueue(delivery(3)), "dropped, not blocked");
        assert_eq!(queued.try_recv().unwrap().payload.message.id, 1);
        assert!(
            webhooks.enqueue(delivery(4)),
            "room again once one is taken"
        );
    }
}
