//! Thin HTTP handlers, one file per area.

pub mod admin;
pub mod api;
pub mod attachments;
pub mod bots;
pub mod devices;
pub mod messages;
pub mod rooms;
pub mod search;
pub mod ws;

use axum::http::{HeaderMap, header};
use time::UtcOffset;

pub async fn healthz() -> &'static str {
    "ok"
}

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
