//! The sidebar's room list, grouped by recency in the viewer's time zone.

use askama::Template;
use time::OffsetDateTime;

use crate::clock::from_millis;
use crate::domain::Slug;
use crate::store::{DirectMember, MentionMark, ReaderRecord};

/// A room as the sidebar lists it.
#[derive(Debug, Clone)]
pub struct RoomSummary {
    pub slug: Slug,
    pub name: String,
    /// Listed apart, under "Archived".
    pub archived: bool,
    pub last_id: u64,
    /// Unix milliseconds.
    pub last_activity: i64,
    pub mentions: Vec<MentionMark>,
    /// A direct conversation's two people; empty for a named room.
    pub members: Vec<DirectMember>,
}

/// The sidebar's room list, grouped by how recently each room was active in the viewer's
/// time zone. Pages mark it for their viewer; the live copy is the same for everyone.
#[derive(Template)]
#[template(path = "_room_list.html")]
pub struct Sidebar {
    pub groups: Vec<SidebarGroup>,
    /// The viewer's direct conversations, named after the other person. Never in the shared
    /// live copy: the page keeps them in a list of their own.
    pub direct: Vec<SidebarRoom>,
    /// The rooms past the [`SIDEBAR_ROOMS`] most recently active, listed at `/rooms`.
    pub more: MoreRooms,
}

/// Named rooms the sidebar lists at most (besides the one open): past them it says how many
/// more there are, so a server with thousands of rooms still sends a small page and small
/// live updates.
pub const SIDEBAR_ROOMS: usize = 50;

/// What the sidebar says of the rooms it does not list.
#[derive(Debug, Default)]
pub struct MoreRooms {
    pub count: usize,
    /// Unread messages in those of them the viewer has not muted; `None` in the shared live
    /// copy, whose readers keep the figure their page was rendered with.
    pub unread: Option<u64>,
}

pub struct SidebarGroup {
    pub label: &'static str,
    pub rooms: Vec<SidebarRoom>,
}

pub struct SidebarRoom {
    pub slug: Slug,
    pub name: String,
    pub last_id: u64,
    pub current: bool,
    /// The viewer's newest seen id; `None` in the shared live copy.
    pub read: Option<u64>,
    pub muted: bool,
    /// `key:id` of the newest message mentioning each person, for the page's script to
    /// mark rooms live; the same in every copy.
    pub mention_marks: String,
    /// The newest message mentioning the viewer (0 for none, or in the shared copy).
    pub viewer_mentioned_at: u64,
}

impl SidebarRoom {
    pub fn unread(&self) -> u64 {
        match self.read {
            Some(read) if !self.current => self.last_id.saturating_sub(read),
            _ => 0,
        }
    }

    /// The count its badge shows: none for a muted room, which is quiet by choice.
    pub fn badge(&self) -> Option<u64> {
        Some(self.unread()).filter(|&unread| unread > 0 && !self.muted)
    }

    /// Whether an unread message mentions the viewer.
    pub fn mentioned(&self) -> bool {
        self.unread() > 0
            && self
                .read
                .is_some_and(|read| self.viewer_mentioned_at > read)
    }
}

/// Which room a page shows, and who is looking and what they have read.
pub struct SidebarViewer<'a> {
    pub current: Option<&'a Slug>,
    pub reader: &'a ReaderRecord,
    /// The viewer's login handle.
    pub login: &'a str,
}

const GROUPS: [&str; 6] = [
    "Today",
    "Yesterday",
    "Previous 7 days",
    "Previous 30 days",
    "Older",
    "Archived",
];
/// Archived rooms are listed last, whatever their activity.
const ARCHIVED_GROUP: usize = 5;

impl Sidebar {
    /// `rooms` come most recently active first; `now` is in the viewer's offset.
    pub fn new(
        rooms: &[RoomSummary],
        now: OffsetDateTime,
        viewer: Option<SidebarViewer<'_>>,
    ) -> Sidebar {
        let today = now.date();
        let mut groups: Vec<SidebarGroup> = GROUPS
            .iter()
            .map(|label| SidebarGroup {
                label,
                rooms: Vec::new(),
            })
            .collect();
        let mut direct = Vec::new();
        let mut listed = 0;
        let mut more = MoreRooms {
            count: 0,
            unread: viewer.as_ref().map(|_| 0),
        };
        for room in rooms {
            let direct_with = room.slug.direct_members().map(|_| {
                let me = viewer.as_ref().map_or("", |v| v.login);
                (
                    room.members.iter().any(|m| m.login == me),
                    direct_partner(&room.members, me),
                )
            });
            if let Some((mine, _)) = direct_with
                && !mine
            {
                continue;
            }
            let active = from_millis(room.last_activity)
                .to_offset(now.offset())
                .date();
            let group = match (today - active).whole_days() {
                _ if room.archived => ARCHIVED_GROUP,
                ..=0 => 0,
                1 => 1,
                2..=7 => 2,
                8..=30 => 3,
                _ => 4,
            };
            let slug = room.slug.as_str();
            let current = viewer.as_ref().and_then(|v| v.current) == Some(&room.slug);
            let read = viewer
                .as_ref()
                .map(|v| v.reader.last_read.get(slug).copied().unwrap_or(0).max(0) as u64);
            let muted = viewer
                .as_ref()
                .is_some_and(|v| v.reader.muted.iter().any(|m| m == slug));
            if direct_with.is_none() && !current {
                if listed == SIDEBAR_ROOMS {
                    more.count += 1;
                    if let (Some(unread), Some(read)) = (more.unread.as_mut(), read)
                        && !muted
                    {
                        *unread += room.last_id.saturating_sub(read);
                    }
                    continue;
                }
                listed += 1;
            }
            let is_direct = direct_with.is_some();
            let entry = SidebarRoom {
                slug: room.slug.clone(),
                name: match direct_with {
                    Some((_, Some(other))) => other,
                    _ => room.name.clone(),
                },
                last_id: room.last_id,
                current,
                read,
                muted,
                mention_marks: room
                    .mentions
                    .iter()
                    .map(|mark| format!("{}:{}", mark.key, mark.id))
                    .collect::<Vec<_>>()
                    .join(" "),
                viewer_mentioned_at: viewer
                    .as_ref()
                    .and_then(|v| room.mentions.iter().find(|m| m.key == v.login))
                    .map_or(0, |mark| mark.id.max(0) as u64),
            };
            if is_direct {
                direct.push(entry);
            } else {
                groups[group].rooms.push(entry);
            }
        }
        groups.retain(|g| !g.rooms.is_empty());
        Sidebar {
            groups,
            direct,
            more,
        }
    }

    /// The `#room-list` fragment, which replaces the list by id.
    pub fn render_list(&self) -> String {
        self.render().unwrap_or_else(|e| {
            tracing::error!(error = %e, "sidebar render failed");
            String::new()
        })
    }

    /// The `#dm-list` fragment: the viewer's direct conversations (hidden while there are
    /// none, so a live copy has something to replace).
    pub fn direct_list(&self) -> String {
        DirectList {
            rooms: &self.direct,
        }
        .render()
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "direct list render failed");
            String::new()
        })
    }
}

#[derive(Template)]
#[template(path = "_direct_list.html")]
struct DirectList<'a> {
    rooms: &'a [SidebarRoom],
}

/// In a direct conversation, the name of the person who isn't the login `viewer`, marked if
/// they are a former holder of it.
pub fn direct_partner(members: &[DirectMember], viewer: &str) -> Option<String> {
    members
        .iter()
        .find(|member| member.login != viewer)
        .map(DirectMember::shown_name)
}
