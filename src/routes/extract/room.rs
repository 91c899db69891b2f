//! The room a path names, as the viewer may see it: to anyone who may not read it, a direct
//! conversation does not exist (404).

use std::sync::Arc;

use crate::error::AppError;
use crate::hub::{Hub, Room};
use crate::identity::CurrentUser;

/// The room at this URL segment, if the viewer may read it.
pub fn find_room(hub: &Hub, slug: &str, viewer: &CurrentUser) -> Result<Arc<Room>, AppError> {
    hub.readable_room(slug, viewer.handle())
        .ok_or(AppError::NotFound)
}

/// A room the viewer may change something in: readable, and not archived.
pub fn writable_room(hub: &Hub, slug: &str, viewer: &CurrentUser) -> Result<Arc<Room>, AppError> {
    let room = find_room(hub, slug, viewer)?;
    if room.is_archived() {
        return Err(AppError::Archived);
    }
    Ok(room)
}
