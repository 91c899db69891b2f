//! What handlers take from a request besides its path and body: who is acting as an admin,
//! the page context (viewer, time zone, nonce), the room a path names, and the client's
//! address with its budget of wrong guesses.

pub mod admin;
pub mod client;
pub mod page;
pub mod room;

use axum::http::{HeaderMap, header};
use time::UtcOffset;

/// The viewer's UTC offset from the `tz` cookie (minutes east of UTC) that the page script
/// sets; UTC without it, so pages still group by day without JavaScript. Pages and sockets
/// both read it here.
pub fn viewer_offset(headers: &HeaderMap) -> UtcOffset {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix("tz="))
        .map_or(UtcOffset::UTC, time_zone_offset)
}

/// Real time zones lie between UTC−12:00 and UTC+14:00, on quarter hours. Anything else is
/// UTC, and a near miss is rounded to the quarter hour: the sidebar is rendered once per
/// offset in use, so the offsets a client can name must be few (at most 105).
pub fn time_zone_offset(minutes: &str) -> UtcOffset {
    const QUARTER: i32 = 15;
    let Ok(minutes) = minutes.trim().parse::<i32>() else {
        return UtcOffset::UTC;
    };
    if !(-12 * 60..=14 * 60).contains(&minutes) {
        return UtcOffset::UTC;
    }
    let rounded = (minutes + QUARTER / 2).div_euclid(QUARTER) * QUARTER;
    UtcOffset::from_whole_seconds(rounded.clamp(-12 * 60, 14 * 60) * 60).unwrap_or(UtcOffset::UTC)
}

/// The token of an `Authorization: Bearer <token>` header, trimmed (the scheme is
/// case-insensitive, as HTTP says).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset_of(cookie: &str) -> i32 {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, cookie.parse().unwrap());
        viewer_offset(&headers).whole_minutes().into()
    }

    #[test]
    fn only_real_time_zones_count_rounded_to_quarter_hours() {
        assert_eq!(offset_of("tz=60"), 60);
        assert_eq!(offset_of("a=b; tz=-300"), -300);
        assert_eq!(offset_of("tz=330"), 330, "India");
        assert_eq!(offset_of("tz=345"), 345, "Nepal");
        assert_eq!(offset_of("tz=765"), 765, "Chatham");
        assert_eq!(offset_of("tz=840"), 840, "Kiribati, the easternmost");
        assert_eq!(offset_of("tz=-720"), -720, "the westernmost");
        assert_eq!(offset_of("tz=7"), 0, "rounded to the quarter hour");
        assert_eq!(offset_of("tz=338"), 345);
        assert_eq!(offset_of("tz=-7"), 0);
        assert_eq!(offset_of("tz=-8"), -15);
        for outside in ["tz=841", "tz=-721", "tz=1080", "tz=-1080", "tz=99999999999"] {
            assert_eq!(offset_of(outside), 0, "{outside} is no time zone: UTC");
        }
        for junk in ["tz=", "tz=abc", "tz=1.5", "nothing=1"] {
            assert_eq!(offset_of(junk), 0, "{junk}");
        }
        let distinct: std::collections::HashSet<i32> = (-2000..2000)
            .map(|minutes| offset_of(&format!("tz={minutes}")))
            .collect();
        assert!(distinct.len() <= 105, "{} offsets", distinct.len());
    }
}
