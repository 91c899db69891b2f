//! Device links in a table every instance reads, so a link made through one instance works
//! through any, and still only once.

use postgres::GenericClient;

use super::super::{DeviceLinkRecord, StoreResult};
use crate::clock::now_millis;

pub(super) fn put(
    client: &mut impl GenericClient,
    link: &DeviceLinkRecord,
    per_login: usize,
    max_pending: usize,
) -> StoreResult<bool> {
    let mut txn = client.transaction()?;
    txn.execute(
        "DELETE FROM device_links WHERE expires_at <= $1",
        &[&now_millis()],
    )?;
    let own: i64 = txn
        .query_one(
            "SELECT count(*) FROM device_links WHERE login_id = $1",
            &[&link.login_id],
        )?
        .get(0);
    if own as usize >= per_login {
        // The oldest go, so the login keeps its newest `per_login` with this one.
        txn.execute(
            "DELETE FROM device_links WHERE token_hash IN (
                 SELECT token_hash FROM device_links WHERE login_id = $1
                 ORDER BY expires_at LIMIT $2)",
            &[&link.login_id, &(own - per_login as i64 + 1)],
        )?;
    } else {
        let all: i64 = txn
            .query_one("SELECT count(*) FROM device_links", &[])?
            .get(0);
        if all as usize >= max_pending {
            return Ok(false);
        }
    }
    txn.execute(
        "INSERT INTO device_links (token_hash, login_id, nickname, expires_at)
         VALUES ($1, $2, $3, $4)",
        &[
            &link.token_hash,
            &link.login_id,
            &link.nickname,
            &link.expires_at,
        ],
    )?;
    txn.commit()?;
    Ok(true)
}

pub(super) fn find(
    client: &mut impl GenericClient,
    token_hash: &str,
    now_millis: i64,
    take: bool,
) -> StoreResult<Option<DeviceLinkRecord>> {
    let sql = if take {
        "DELETE FROM device_links WHERE token_hash = $1
         RETURNING token_hash, login_id, nickname, expires_at"
    } else {
        "SELECT token_hash, login_id, nickname, expires_at FROM device_links
         WHERE token_hash = $1"
    };
    let Some(row) = client.query_opt(sql, &[&token_hash])? else {
        return Ok(None);
    };
    let link = DeviceLinkRecord {
        token_hash: row.try_get(0)?,
        login_id: row.try_get(1)?,
        nickname: row.try_get(2)?,
        expires_at: row.try_get(3)?,
    };
    Ok((link.expires_at > now_millis).then_some(link))
}
