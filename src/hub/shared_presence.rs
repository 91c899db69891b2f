//! Presence across instances sharing the database. This instance's own "here" and "typing"
//! go to the store when they change, on a thread of its own that writes the latest of each
//! room; the others' come back by announcement (see the listener) and by a regular sweep
//! with the heartbeat, which also drops an instance that died without a word.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant};

use super::Hub;
use crate::domain::Slug;
use crate::store::{RoomPresence, Storage, StoreError, StoreResult};

/// How long to wait before sharing again after the database refused.
const RETRY_WAIT: Duration = Duration::from_secs(1);

pub(super) fn spawn(hub: &Arc<Hub>, shares: Receiver<Vec<RoomPresence>>) -> StoreResult<()> {
    let (weak, storage) = (Arc::downgrade(hub), hub.storage.clone());
    let timeout = hub.settings.instance_timeout;
    thread::Builder::new()
        .name("presence".into())
        .spawn(move || share(weak, storage.as_ref(), &shares, timeout))
        .map_err(|e| StoreError::Database(format!("cannot start presence sharing: {e}")))?;
    Ok(())
}

/// Runs until the hub, which holds the sending side, is gone; then takes this instance's
/// people out, so a server stopped on purpose doesn't leave them shown until its timeout.
fn share(
    hub: Weak<Hub>,
    storage: &dyn Storage,
    shares: &Receiver<Vec<RoomPresence>>,
    timeout: Duration,
) {
    let beat_every = timeout / 4;
    let mut next_beat = Instant::now();
    let mut pending: BTreeMap<Slug, RoomPresence> = BTreeMap::new();
    let mut shown: BTreeSet<Slug> = BTreeSet::new();
    loop {
        let wait = next_beat.saturating_duration_since(Instant::now());
        match shares.recv_timeout(wait) {
            Ok(rooms) => {
                pending.extend(rooms.into_iter().map(|r| (r.room.clone(), r)));
                // Whatever else came meanwhile goes in the same write, the latest per room.
                while let Ok(more) = shares.try_recv() {
                    pending.extend(more.into_iter().map(|r| (r.room.clone(), r)));
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let empty = |room: Slug| RoomPresence {
                    room,
                    here: Vec::new(),
                    typing: Vec::new(),
                };
                let rooms: Vec<RoomPresence> = shown.into_iter().map(empty).collect();
                if let Err(e) = storage.share_presence(&rooms) {
                    tracing::warn!(error = %e, "could not take this instance's people out of presence");
                }
                return;
            }
        }
        if !pending.is_empty() {
            let rooms: Vec<RoomPresence> = pending.values().cloned().collect();
            match storage.share_presence(&rooms) {
                Ok(()) => {
                    for room in std::mem::take(&mut pending).into_values() {
                        if room.here.is_empty() && room.typing.is_empty() {
                            shown.remove(&room.room);
                        } else {
                            shown.insert(room.room);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not share presence; retrying");
                    thread::sleep(RETRY_WAIT);
                }
            }
        }
        if Instant::now() >= next_beat {
            next_beat = Instant::now() + beat_every;
            let Some(hub) = hub.upgrade() else {
                return;
            };
            let swept = storage
                .heartbeat()
                .and_then(|()| storage.presence_elsewhere(None, timeout));
            match swept {
                Ok(shown) => hub.show_presence_elsewhere(None, shown),
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the other instances' presence")
                }
            }
        }
    }
}
