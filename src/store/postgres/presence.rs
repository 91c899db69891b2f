//! Presence shared between instances: each writes who is here and typing on its own sockets,
//! per room, and keeps a heartbeat; each reads the others' rows of instances whose heartbeat
//! is recent, so an instance that dies stops counting by itself.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use postgres::GenericClient;

use super::super::{RoomPresence, StoreResult};
use super::announce;
use crate::domain::Slug;

/// An instance gone this long (no heartbeat) is forgotten, rows and all.
const FORGET_AFTER_SECONDS: f64 = 3600.0;

pub(super) fn share(
    client: &mut impl GenericClient,
    origin: &str,
    rooms: &[RoomPresence],
) -> StoreResult<()> {
    let mut txn = client.transaction()?;
    mark_alive(&mut txn, origin)?;
    for shown in rooms {
        if shown.here.is_empty() && shown.typing.is_empty() {
            txn.execute(
                "DELETE FROM presence WHERE instance = $1 AND room = $2",
                &[&origin, &shown.room.as_str()],
            )?;
        } else {
            txn.execute(
                "INSERT INTO presence (instance, room, here, typing) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (instance, room)
                 DO UPDATE SET here = EXCLUDED.here, typing = EXCLUDED.typing",
                &[&origin, &shown.room.as_str(), &shown.here, &shown.typing],
            )?;
        }
    }
    txn.commit()?;
    let payloads: Vec<String> = rooms
        .iter()
        .flat_map(|shown| announce::presence_changed(origin, &shown.room))
        .collect();
    announce::announce_after_commit(client, &payloads);
    Ok(())
}

/// Marks this instance alive, and forgets instances long gone (and budgets long refilled).
pub(super) fn beat(client: &mut impl GenericClient, origin: &str) -> StoreResult<()> {
    mark_alive(client, origin)?;
    client.execute(
        "WITH gone AS (
             DELETE FROM instances WHERE seen_at < now() - make_interval(secs => $1) RETURNING id
         )
         DELETE FROM presence WHERE instance IN (SELECT id FROM gone)",
        &[&FORGET_AFTER_SECONDS],
    )?;
    client.execute(
        "DELETE FROM rate_buckets WHERE at < now() - make_interval(secs => $1)",
        &[&FORGET_AFTER_SECONDS],
    )?;
    Ok(())
}

fn mark_alive(client: &mut impl GenericClient, origin: &str) -> StoreResult<()> {
    client.execute(
        "INSERT INTO instances (id, seen_at) VALUES ($1, now())
         ON CONFLICT (id) DO UPDATE SET seen_at = now()",
        &[&origin],
    )?;
    Ok(())
}

pub(super) fn elsewhere(
    client: &mut impl GenericClient,
    origin: &str,
    room: Option<&Slug>,
    alive_for: Duration,
) -> StoreResult<Vec<RoomPresence>> {
    let rows = client.query(
        "SELECT p.room, p.here, p.typing
         FROM presence p JOIN instances i ON i.id = p.instance
         WHERE p.instance <> $1
           AND i.seen_at > now() - make_interval(secs => $2)
           AND ($3::text IS NULL OR p.room = $3)",
        &[&origin, &alive_for.as_secs_f64(), &room.map(Slug::as_str)],
    )?;
    let mut by_room: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    for row in rows {
        let (here, typing) = by_room.entry(row.get(0)).or_default();
        here.extend(row.get::<_, Vec<String>>(1));
        typing.extend(row.get::<_, Vec<String>>(2));
    }
    Ok(by_room
        .into_iter()
        .filter_map(|(room, (here, typing))| {
            Some(RoomPresence {
                room: Slug::parse(&room)?,
                here: here.into_iter().collect(),
                typing: typing.into_iter().collect(),
            })
        })
        .collect())
}
