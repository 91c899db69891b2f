//! Webhook deliveries queued in the table every instance reads: written in the commit that
//! stores the message, taken with `SKIP LOCKED` under a lease, so each goes out from one
//! instance, and one whose instance dies is taken over once its lease runs out.

use std::time::Duration;

use postgres::GenericClient;

use super::super::append::{Appended, PendingMessage};
use super::super::{StoreResult, WebhookJob};
use super::rows;

/// Queues the deliveries of the messages of `batch` that were stored (`appended`).
pub(super) fn queue(
    client: &mut impl GenericClient,
    batch: &[PendingMessage],
    appended: &[Appended],
) -> StoreResult<()> {
    for (pending, appended) in batch.iter().zip(appended) {
        let Appended::Stored(id) = *appended else {
            continue;
        };
        for bot_id in &pending.webhooks {
            client.execute(
                "INSERT INTO webhook_jobs (room, message_id, bot_id) VALUES ($1, $2, $3)",
                &[&pending.record.room.as_str(), &(id as i64), bot_id],
            )?;
        }
    }
    Ok(())
}

pub(super) fn take(
    client: &mut impl GenericClient,
    origin: &str,
    limit: usize,
    lease: Duration,
) -> StoreResult<Vec<WebhookJob>> {
    let rows = client.query(
        "UPDATE webhook_jobs SET taken_by = $1, taken_until = now() + make_interval(secs => $2)
         WHERE (room, message_id, bot_id) IN (
             SELECT room, message_id, bot_id FROM webhook_jobs
             WHERE taken_until IS NULL OR taken_until < now()
             ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED)
         RETURNING seq, room, message_id, bot_id",
        &[&origin, &lease.as_secs_f64(), &(limit as i64)],
    )?;
    let mut taken = rows
        .iter()
        .map(|row| {
            let seq: i64 = row.try_get("seq")?;
            let job = WebhookJob {
                room: rows::slug(row.try_get("room")?)?,
                message_id: row.try_get("message_id")?,
                bot_id: row.try_get("bot_id")?,
            };
            Ok((seq, job))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    taken.sort_by_key(|(seq, _)| *seq);
    Ok(taken.into_iter().map(|(_, job)| job).collect())
}

pub(super) fn hold(
    client: &mut impl GenericClient,
    origin: &str,
    job: &WebhookJob,
    lease: Duration,
) -> StoreResult<bool> {
    let held = client.execute(
        "UPDATE webhook_jobs SET taken_until = now() + make_interval(secs => $5)
         WHERE room = $1 AND message_id = $2 AND bot_id = $3 AND taken_by = $4",
        &[
            &job.room.as_str(),
            &job.message_id,
            &job.bot_id,
            &origin,
            &lease.as_secs_f64(),
        ],
    )?;
    Ok(held == 1)
}

pub(super) fn finish(
    client: &mut impl GenericClient,
    origin: &str,
    job: &WebhookJob,
) -> StoreResult<()> {
    client.execute(
        "DELETE FROM webhook_jobs
         WHERE room = $1 AND message_id = $2 AND bot_id = $3 AND taken_by = $4",
        &[&job.room.as_str(), &job.message_id, &job.bot_id, &origin],
    )?;
    Ok(())
}

pub(super) fn release(client: &mut impl GenericClient, origin: &str) -> StoreResult<()> {
    client.execute(
        "UPDATE webhook_jobs SET taken_by = NULL, taken_until = NULL WHERE taken_by = $1",
        &[&origin],
    )?;
    Ok(())
}
