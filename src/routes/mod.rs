//! Thin HTTP handlers, one file per area.

pub mod rooms;
pub mod ws;

pub async fn healthz() -> &'static str {
    "ok"
}
