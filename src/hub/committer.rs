//! The committer thread: the only writer of message ids. It takes whatever requests are
//! queued, stores them in one synced commit, then publishes them in id order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::now_millis;
use super::room::{Room, render};
use super::{Appended, MAX_BATCH};
use crate::domain::Slug;
use crate::store::{
    AppendBatch, DedupRecord, MessageKind, MessageRecord, Storage, StoreError, StoreResult,
};

/// Recently seen `(login, client_id)` keys kept in memory, so most resends skip the database.
const DEDUP_CACHE: usize = 16_384;

/// A request to persist one message, answered once it is committed (or refused).
pub(super) struct AppendRequest {
    pub room: Arc<Room>,
    pub kind: MessageKind,
    pub author: String,
    pub body: String,
    pub client_id: Option<String>,
    pub dedup_key: Option<String>,
    pub reply: oneshot::Sender<StoreResult<Appended>>,
}

/// Bounded memory of recent dedup keys, oldest forgotten first.
struct DedupCache {
    ids: HashMap<String, u64>,
    order: VecDeque<String>,
}

impl DedupCache {
    fn get(&self, key: &str) -> Option<u64> {
        self.ids.get(key).copied()
    }

    fn insert(&mut self, key: String, id: u64) {
        if self.order.len() >= DEDUP_CACHE
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        self.order.push_back(key.clone());
        self.ids.insert(key, id);
    }
}

/// The committer: takes whatever requests are queued (up to `MAX_BATCH`), stores them in one
/// synced commit, then publishes them in id order. Exits when every sender is gone, after
/// draining the queue: that is the shutdown flush.
pub(super) fn run_committer(
    storage: &dyn Storage,
    mut requests: mpsc::Receiver<AppendRequest>,
    sidebar_dirty: &AtomicBool,
) {
    let mut dedup = DedupCache {
        ids: HashMap::new(),
        order: VecDeque::new(),
    };
    while let Some(first) = requests.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        if commit_batch(storage, &mut dedup, batch) {
            sidebar_dirty.store(true, Ordering::Release);
        }
    }
}

/// Returns whether anything was published.
fn commit_batch(
    storage: &dyn Storage,
    dedup: &mut DedupCache,
    requests: Vec<AppendRequest>,
) -> bool {
    let now = now_millis();
    let mut next_ids: HashMap<Slug, (Arc<Room>, u64)> = HashMap::new();
    let mut batch = AppendBatch::default();
    let mut accepted = Vec::with_capacity(requests.len());
    let mut keys_in_batch: HashMap<String, u64> = HashMap::new();

    for request in requests {
        if let Some(key) = &request.dedup_key {
            let known = match keys_in_batch.get(key).copied().or_else(|| dedup.get(key)) {
                Some(id) => Ok(Some(id)),
                None => storage
                    .dedup_lookup(key)
                    .map(|found| found.map(|r| r.id as u64)),
            };
            match known {
                Ok(Some(id)) => {
                    let _ = request.reply.send(Ok(Appended::Duplicate(id)));
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = request.reply.send(Err(e));
                    continue;
                }
            }
        }
        let slot = next_ids
            .entry(request.room.slug.clone())
            .or_insert_with(|| (request.room.clone(), request.room.last_id()));
        slot.1 += 1;
        let id = slot.1;
        let record = MessageRecord {
            key: MessageRecord::key_for(&request.room.slug, id),
            room: request.room.slug.clone(),
            id: id as i64,
            kind: request.kind,
            author: request.author.clone(),
            body: request.body.clone(),
            created_at: now,
            client_id: request.client_id.clone(),
        };
        if let Some(key) = &request.dedup_key {
            keys_in_batch.insert(key.clone(), id);
            batch.dedup.push(DedupRecord {
                key: key.clone(),
                room: request.room.slug.clone(),
                id: id as i64,
            });
        }
        batch.messages.push(record);
        accepted.push(request);
    }
    if accepted.is_empty() {
        return false;
    }
    batch.room_heads = next_ids
        .into_iter()
        .map(|(slug, (_, last))| (slug, last as i64, now))
        .collect();

    match storage.append(&batch) {
        Ok(()) => {
            for (request, record) in accepted.into_iter().zip(&batch.messages) {
                let id = record.id as u64;
                request.room.publish(Arc::new(render(record)), now);
                if let Some(key) = request.dedup_key {
                    dedup.insert(key, id);
                }
                let _ = request.reply.send(Ok(Appended::Stored(id)));
            }
            true
        }
        Err(e) => {
            tracing::error!(error = %e, messages = accepted.len(), "commit failed");
            for request in accepted {
                let _ = request.reply.send(Err(StoreError(e.0.clone())));
            }
            false
        }
    }
}
