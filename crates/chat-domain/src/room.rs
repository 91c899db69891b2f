use std::fmt;

use serde::{Deserialize, Serialize};

pub const MAX_ROOM_NAME_CHARS: usize = 80;
pub const MAX_SLUG_CHARS: usize = 64;

/// A room's display name, trimmed, with a non-empty slug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomName {
    name: String,
    slug: Slug,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RoomNameError {
    #[error("A room name needs at least one letter or digit.")]
    Empty,
    #[error("A room name can be at most {MAX_ROOM_NAME_CHARS} characters long.")]
    TooLong,
}

impl RoomName {
    pub fn parse(input: &str) -> Result<Self, RoomNameError> {
        let name = input.trim();
        if name.chars().count() > MAX_ROOM_NAME_CHARS {
            return Err(RoomNameError::TooLong);
        }
        let slug = Slug::from_name(name).ok_or(RoomNameError::Empty)?;
        Ok(RoomName {
            name: name.to_owned(),
            slug,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    pub fn slug(&self) -> &Slug {
        &self.slug
    }
}

/// The URL key of a room: lower-case letters and digits, with single `-` between runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    /// Lowercases the name, keeps Unicode letters and digits, turns each run of anything else
    /// into one `-`, trims `-` at both ends, and cuts to 64 characters.
    pub fn from_name(name: &str) -> Option<Slug> {
        let mut slug = String::with_capacity(name.len());
        let mut pending_dash = false;
        for c in name.chars().flat_map(char::to_lowercase) {
            if c.is_alphanumeric() {
                if pending_dash && !slug.is_empty() {
                    slug.push('-');
                }
                pending_dash = false;
                slug.push(c);
            } else {
                pending_dash = true;
            }
        }
        let cut: String = slug.chars().take(MAX_SLUG_CHARS).collect();
        let cut = cut.trim_end_matches('-');
        (!cut.is_empty()).then(|| Slug(cut.to_owned()))
    }

    /// Accepts a slug from a URL only if it is already in canonical form: a named room's, or
    /// a direct conversation's.
    pub fn parse(path_segment: &str) -> Option<Slug> {
        Slug::from_name(path_segment)
            .filter(|slug| slug.0 == path_segment)
            .or_else(|| Slug::parse_direct(path_segment))
    }

    /// The room of a direct conversation between two people, named by their mention keys.
    /// `~` never survives [`Slug::from_name`], so no named room can take or reach this slug.
    pub fn direct(a: &str, b: &str) -> Slug {
        let (first, second) = if a <= b { (a, b) } else { (b, a) };
        Slug(format!("{DIRECT_PREFIX}{first}~{second}"))
    }

    fn parse_direct(path_segment: &str) -> Option<Slug> {
        let (a, b) = path_segment.strip_prefix(DIRECT_PREFIX)?.split_once('~')?;
        let key = |k: &str| {
            !k.is_empty()
                && k.chars().all(|c| {
                    (c.is_alphanumeric() && !c.is_uppercase()) || matches!(c, '_' | '-' | '.')
                })
        };
        (key(a) && key(b) && a < b).then(|| Slug::direct(a, b))
    }

    /// The two people of a direct conversation (their mention keys); `None` for a named room.
    pub fn direct_members(&self) -> Option<(&str, &str)> {
        self.0.strip_prefix(DIRECT_PREFIX)?.split_once('~')
    }

    pub fn lobby() -> Slug {
        Slug("lobby".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const DIRECT_PREFIX: &str = "dm~";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_slug_names_both_people_in_order_and_no_room_name_reaches_it() {
        let dm = Slug::direct("bob", "alice");
        assert_eq!(dm.as_str(), "dm~alice~bob");
        assert_eq!(dm, Slug::direct("alice", "bob"));
        assert_eq!(dm.direct_members(), Some(("alice", "bob")));
        assert_eq!(Slug::parse("dm~alice~bob"), Some(dm.clone()));
        assert_eq!(Slug::lobby().direct_members(), None);
        for not_canonical in [
            "dm~bob~alice",
            "dm~alice~alice",
            "dm~Alice~bob",
            "dm~a~b~c",
            "dm~~b",
        ] {
            assert_eq!(Slug::parse(not_canonical), None, "{not_canonical}");
        }
        assert_eq!(slug("dm~alice~bob").as_deref(), Some("dm-alice-bob"));
    }

    fn slug(name: &str) -> Option<String> {
        Slug::from_name(name).map(|s| s.0)
    }

    #[test]
    fn slug_lowercases_and_joins_runs_with_one_dash() {
        assert_eq!(slug("Hello,   World!").as_deref(), Some("hello-world"));
        assert_eq!(slug("--Rust & Tokio--").as_deref(), Some("rust-tokio"));
        assert_eq!(slug("Café Ünïcode 42").as_deref(), Some("café-ünïcode-42"));
        assert_eq!(slug("日本語 チャット").as_deref(), Some("日本語-チャット"));
    }

    #[test]
    fn slug_is_empty_without_letters_or_digits() {
        assert_eq!(slug(" !?- "), None);
        assert_eq!(RoomName::parse("***"), Err(RoomNameError::Empty));
    }

    #[test]
    fn slug_is_cut_to_64_characters_without_a_trailing_dash() {
        let long = format!("{} {}", "a".repeat(63), "b".repeat(10));
        let s = slug(&long).unwrap();
        assert_eq!(s, "a".repeat(63));
        assert_eq!(slug(&"é".repeat(100)).unwrap().chars().count(), 64);
    }

    #[test]
    fn parse_accepts_only_canonical_slugs() {
        assert!(Slug::parse("lobby").is_some());
        assert!(Slug::parse("Lobby").is_none());
        assert!(Slug::parse("a--b").is_none());
    }

    proptest::proptest! {
        #[test]
        fn slugs_keep_the_rules_of_the_design(input in "\\PC{0,100}") {
            crate::invariants::check_room_name(&input);
        }
    }
}
