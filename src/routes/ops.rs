//! `/metrics`, `/ops/backup` and `/ops/rooms/{slug}/export`.
//!
//! All three need `Authorization: Bearer <admin token>`; without a configured token they
//! answer 404, so a server never hands out its data or numbers by default.

use std::io::{self, BufWriter, Write};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::mpsc;

use super::extract::bearer_token;
use super::extract::client::{ClientAddr, Guess, TooManyGuesses};
use crate::domain::Slug;
use crate::error::AppError;
use crate::ops::{OpsError, archive, export};
use crate::state::AppState;
use crate::store::PG_DUMP_INSTEAD;

/// Bytes per body chunk of a streamed answer.
const CHUNK: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/ops/backup", get(backup))
        .route("/ops/rooms/{slug}/export", get(export_room))
}

/// A request that carried the admin token, checked as [`crate::admin`] checks it. Without a
/// configured token these endpoints don't exist (404), and a session can't stand in for it.
pub struct OperatorToken;

impl FromRequestParts<AppState> for OperatorToken {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if state
            .config
            .admin_token
            .as_deref()
            .is_none_or(str::is_empty)
        {
            return Err(AppError::NotFound.into_response());
        }
        let unauthorized = || {
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "This needs the admin token: Authorization: Bearer <token>.",
            )
                .into_response()
        };
        let Some(given) = bearer_token(&parts.headers) else {
            return Err(unauthorized());
        };
        let client = ClientAddr::of(parts, &state.config.trusted_proxy);
        let guess = Guess::start(state, client)
            .await
            .map_err(TooManyGuesses::plain)?;
        if !state.admin.is_admin_token(given) {
            return Err(unauthorized());
        }
        guess.right().await;
        Ok(OperatorToken)
    }
}

async fn metrics(_: OperatorToken, State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        {
            state.metrics.rooms.set(state.hub.room_count() as f64);
            state.metrics.render()
        },
    )
        .into_response()
}

/// Answers at once, then takes the snapshot (writes wait meanwhile, briefly) and streams the
/// archive: a big database never runs into the request timeout, and a failure breaks the body
/// off, so the client can't take it for whole. Data in PostgreSQL is backed up with its
/// own tools: the answer says so.
async fn backup(_: OperatorToken, State(state): State<AppState>) -> Response {
    if state.config.database_url.is_some() {
        return (StatusCode::NOT_IMPLEMENTED, PG_DUMP_INSTEAD).into_response();
    }
    let storage = state.storage.clone();
    let data_dir = state.config.data_dir.clone();
    let body = streamed(move |out| {
        let started = Instant::now();
        let snapshot = archive::snapshot(storage.as_ref(), &data_dir)?;
        tracing::info!(
            pause_ms = started.elapsed().as_millis() as u64,
            "backup snapshot taken"
        );
        archive::write_archive(snapshot, &data_dir, out).map(drop)
    });
    (
        [
            (header::CONTENT_TYPE, "application/x-tar"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"chat-backup.tar\"",
            ),
        ],
        body,
    )
        .into_response()
}

async fn export_room(
    _: OperatorToken,
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    let room = Slug::parse(&slug)
        .and_then(|slug| state.hub.room(&slug))
        .ok_or(AppError::NotFound)?;
    let storage = state.storage.clone();
    // Up to the newest message as the export starts; later ones are left for the next.
    let last_id = room.last_id();
    let slug = room.slug.clone();
    let body =
        streamed(move |out| export::write_room(storage.as_ref(), &slug, last_id, out).map(drop));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// A response body written by blocking code, a chunk at a time: memory stays bounded
/// however big the answer, and a client that goes away stops the writing. A failure midway
/// breaks the body off, so the client can't take it for whole.
fn streamed(work: impl FnOnce(&mut dyn Write) -> Result<(), OpsError> + Send + 'static) -> Body {
    let (chunks, mut receive) = mpsc::channel::<io::Result<Bytes>>(4);
    let failures = chunks.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = BufWriter::with_capacity(CHUNK, ChunkWriter(chunks));
        let written =
            work(&mut out).and_then(|()| out.flush().map_err(OpsError::io("sending the answer")));
        if let Err(e) = written {
            // Whatever is still buffered must not follow the error.
            drop(out.into_parts());
            tracing::warn!(error = %e, "a streamed answer was cut short");
            let _ = failures.blocking_send(Err(io::Error::other(e.to_string())));
        }
    });
    Body::from_stream(futures_util::stream::poll_fn(move |cx| {
        receive.poll_recv(cx)
    }))
}

/// Sends what is written as body chunks, waiting while the client is slow to take them.
struct ChunkWriter(mpsc::Sender<io::Result<Bytes>>);

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
