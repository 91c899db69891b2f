//! The room list as the sidebar shows it, and its live updates.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::extract::ws::Utf8Bytes;
use time::{OffsetDateTime, UtcOffset};
use tokio::sync::broadcast;

use super::Hub;
use crate::store::ReaderRecord;
use crate::views::{self, RoomSummary};

/// A new state of the room list, rendered at most once per viewer time zone and shared.
/// People in a direct conversation also get their own `#dm-list`, rendered once per person
/// and time zone.
pub struct SidebarUpdate {
    rooms: Vec<RoomSummary>,
    now: OffsetDateTime,
    frames: Mutex<HashMap<UtcOffset, Utf8Bytes>>,
    /// Login handles of everyone in a direct conversation: the rest skip straight to the
    /// shared frame.
    in_direct: HashSet<String>,
    direct_frames: Mutex<HashMap<(String, UtcOffset), Utf8Bytes>>,
}

impl SidebarUpdate {
    pub(super) fn new(rooms: Vec<RoomSummary>) -> SidebarUpdate {
        let in_direct = rooms
            .iter()
            .flat_map(|room| room.members.iter().map(|m| m.login.clone()))
            .collect();
        SidebarUpdate {
            rooms,
            now: OffsetDateTime::now_utc(),
            frames: Mutex::new(HashMap::new()),
            in_direct,
            direct_frames: Mutex::new(HashMap::new()),
        }
    }

    /// The frame for the viewer with this login handle, in this time zone.
    pub fn frame_for(&self, offset: UtcOffset, login: &str) -> Utf8Bytes {
        let shared = self.shared_frame(offset);
        if !self.in_direct.contains(login) {
            return shared;
        }
        let mut frames = self.direct_frames.lock().expect("sidebar frames lock");
        frames
            .entry((login.to_owned(), offset))
            .or_insert_with(|| {
                let reader = ReaderRecord::default();
                let mut list = views::Sidebar::new(
                    &self.rooms,
                    self.now.to_offset(offset),
                    Some(views::SidebarViewer {
                        current: None,
                        reader: &reader,
                        login,
                    }),
                );
                // The page applies its own read marks, as on the shared list.
                for room in &mut list.direct {
                    room.read = None;
                }
                Utf8Bytes::from(format!("{shared}{}", list.direct_list()))
            })
            .clone()
    }

    fn shared_frame(&self, offset: UtcOffset) -> Utf8Bytes {
        let mut frames = self.frames.lock().expect("sidebar frames lock");
        frames
            .entry(offset)
            .or_insert_with(|| {
                let list = views::Sidebar::new(&self.rooms, self.now.to_offset(offset), None);
                Utf8Bytes::from(list.render_list())
            })
            .clone()
    }
}

impl Hub {
    /// Every room, most recently active first.
    pub fn room_summaries(&self) -> Vec<RoomSummary> {
        let mut rooms: Vec<RoomSummary> = self
            .rooms
            .read()
            .expect("rooms lock")
            .values()
            .map(|room| RoomSummary {
                slug: room.slug.clone(),
                name: room.name(),
                archived: room.is_archived(),
                last_id: room.last_id(),
                counted: room.counted(),
                last_activity: room.last_activity(),
                mentions: room.mention_marks(),
                members: room.members(),
            })
            .collect();
        rooms.sort_by(|a, b| {
            b.last_activity
                .cmp(&a.last_activity)
                .then_with(|| a.slug.cmp(&b.slug))
        });
        rooms
    }

    pub fn sidebar_updates(&self) -> broadcast::Receiver<Arc<SidebarUpdate>> {
        self.sidebar.subscribe()
    }
}
