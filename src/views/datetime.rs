//! How times are written into markup.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// Shown until the page's script puts the time in the reader's zone.
pub(super) fn utc_time_text(at: OffsetDateTime) -> String {
    at.format(format_description!("[hour]:[minute] UTC"))
        .unwrap_or_default()
}
