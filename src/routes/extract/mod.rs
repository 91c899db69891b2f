//! What handlers take from a request besides its path and body: who is acting as an admin,
//! the page context (viewer, time zone, nonce), and the room a path names.

pub mod admin;
pub mod page;
pub mod room;

use axum::http::{HeaderMap, header};
use time::UtcOffset;

/// The viewer's UTC offset from the `tz` cookie (minutes east of UTC) that the page script
/// sets; UTC without it, so pages still group by day without JavaScript.
pub fn viewer_offset(headers: &HeaderMap) -> UtcOffset {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix("tz="))
        .filter_map(|minutes| minutes.parse::<i32>().ok())
        .find_map(|minutes| {
            UtcOffset::from_whole_seconds(minutes.clamp(-18 * 60, 18 * 60) * 60).ok()
        })
        .unwrap_or(UtcOffset::UTC)
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
