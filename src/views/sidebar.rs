//! The sidebar's room list, grouped by recency in the viewer's time zone.

use askama::Template;
use time::OffsetDateTime;

use crate::clock::from_millis;
use crate::domain::Slug;
use crate::store::{DirectMember, MentionMark, ReadMark, ReaderRecord};

/// A room as the sidebar lists it.
#[derive(Debug, Clone)]
pub struct RoomSummary {
    pub slug: Slug,
    pub name: String,
    /// Listed apart, under "Archived".
    pub archived: bool,
    pub last_id: u64,
    /// Messages that count as unread so far (`RoomRecord::counted`).
    pub counted: u64,
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
    /// Slugs of the rooms the viewer left, space-separated: the page keeps them out of the
    /// live copies too. Empty in the shared copy.
    pub left: String,
}

/// Named rooms the sidebar lists at most (besides the one open): past them it says how many
/// more there are, so a server with thousands of rooms still sends a small page and small
/// live updates.
pub const SIDEBAR_ROOMS: usize = 50;

/// What the sidebar says of the rooms it does not list.
#[derive(Debug, Default)]
pub struct MoreRooms {
    pub count: usize,
    /// Unread messages in those of them the viewer is a member of and has not muted; `None`
    /// in the shared live copy, whose readers keep the figure their page was rendered with.
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
    pub counted: u64,
    pub current: bool,
    /// How far the viewer has read, if a member; `None` in the shared live copy, whose
    /// readers apply their own marks.
    pub read: Option<ReadMark>,
    pub muted: bool,
    /// `key:id` of the newest message mentioning each person, for the page's script to
    /// mark rooms live; the same in every copy.
    pub mention_marks: String,
    /// The newest message mentioning the viewer (0 for none, or in the shared copy).
    pub viewer_mentioned_at: u64,
}

impl SidebarRoom {
    /// Messages that count, sent since the viewer's mark: none in a room the viewer is not
    /// a member of, or has open.
    pub fn unread(&self) -> u64 {
        match self.read {
            Some(mark) if !self.current => self.counted.saturating_sub(mark.counted),
            _ => 0,
        }
    }

    /// The count its badge shows: none for a muted room, which is quiet by choice.
    pub fn badge(&self) -> Option<u64> {
        Some(self.unread()).filter(|&unread| unread > 0 && !self.muted)
    }

    /// Whether a message the viewer has not seen mentions them: in any room, member or not,
    /// since being named is what matters.
    pub fn mentioned(&self) -> bool {
        !self.current && self.viewer_mentioned_at > self.read.map_or(0, |mark| mark.id)
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
            if !current && viewer.as_ref().is_some_and(|v| v.reader.has_left(slug)) {
                continue;
            }
            let is_direct = direct_with.is_some();
            // A direct conversation's people are its members from its first message.
            let read = viewer.as_ref().and_then(|v| {
                v.reader
                    .mark(slug)
                    .or(is_direct.then_some(ReadMark::default()))
            });
            let muted = viewer.as_ref().is_some_and(|v| v.reader.has_muted(slug));
            if !is_direct && !current {
                if listed == SIDEBAR_ROOMS {
                    more.count += 1;
                    if let (Some(unread), Some(mark)) = (more.unread.as_mut(), read)
                        && !muted
                    {
                        *unread += room.counted.saturating_sub(mark.counted);
                    }
                    continue;
                }
                listed += 1;
            }
            let entry = SidebarRoom {
                slug: room.slug.clone(),
                name: match direct_with {
                    Some((_, Some(other))) => other,
                    _ => room.name.clone(),
                },
                last_id: room.last_id,
                counted: room.counted,
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
            left: viewer.map_or_else(String::new, |v| v.reader.left.join(" ")),
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
