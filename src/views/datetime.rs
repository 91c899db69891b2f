//! How times are written into markup.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// Shown until the page's script writes the time in the reader's own language and zone
/// (`static/js/times.js`), and without scripts: one unambiguous form everywhere, since the
/// same bytes go to readers in every zone and locale.
pub fn utc_time_text(at: OffsetDateTime) -> String {
    at.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute] UTC"
    ))
    .unwrap_or_default()
}
