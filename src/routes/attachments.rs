//! Attachments: uploading files into a room as messages, and serving them back to the people
//! who can read that room (and nobody else: to them, like the room, they don't exist).

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::extract::multipart::Field;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;

use super::extract::page::PageContext;
use super::extract::room::find_room;
use crate::domain::{FrameError, MessageBody};
use crate::error::AppError;
use crate::files::{
    DOWNLOAD_TYPE, StoredFile, UploadError, clean_file_name, content_disposition, stored_name,
};
use crate::hub::{NewMessage, Room};
use crate::identity::CurrentUser;
use crate::state::AppState;
use crate::store::{self, Attachment, FileRecord, StoreError};
use crate::views::{ComposerError, human_size, render};

/// This area's routes; [`super::router`] puts them behind the session layer and the cross-site check.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/rooms/{slug}/attachments",
            // Streamed to disk and limited per file by `--max-upload`, not by the form limit.
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/rooms/{slug}/messages/{id}/file", get(file))
        .route("/rooms/{slug}/messages/{id}/thumbnail", get(thumbnail))
}

/// Files one upload may carry; each becomes a message of its own.
const MAX_FILES: u64 = 10;
/// Room in a request for multipart boundaries, headers and the caption.
const FORM_OVERHEAD: u64 = 64 * 1024;

/// A refused upload: shown in the composer, with the status it is answered with.
struct Refusal {
    status: StatusCode,
    error: ComposerError,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, text: impl Into<String>) -> Refusal {
        Refusal {
            status,
            error: ComposerError::new(code, text),
        }
    }

    fn too_large(limit: u64) -> Refusal {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "That file is too large: files can be at most {}.",
                human_size(limit)
            ),
        )
    }

    /// The file is stored but its message was refused: the room is archived, or storage
    /// failed.
    fn not_posted(e: StoreError) -> Refusal {
        match e {
            StoreError::Archived => {
                let archived = ComposerError::archived();
                Refusal::new(StatusCode::FORBIDDEN, archived.code, archived.text)
            }
            e => Refusal::failed(e),
        }
    }

    /// Over the message rate limit; nothing of the upload is posted.
    fn rate_limited() -> Refusal {
        Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            FrameError::RateLimited.code(),
            "You are sending too fast: none of these files were sent. Wait a moment, then send them again.",
        )
    }

    fn failed(e: impl std::fmt::Display) -> Refusal {
        tracing::error!(error = %e, "upload not stored");
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_failed",
            "The file could not be saved. Please send it again.",
        )
    }
}

/// `POST /rooms/{slug}/attachments`: multipart with one or more `file` parts and an optional
/// `body` (the caption, given to the first file). Every file is stored (synced) before the
/// message that refers to it is committed, and each message is broadcast like any other.
/// htmx gets the cleared composer error (or the error, with its status); a plain form, 303
/// back to the room (or the room page with the error).
pub async fn upload(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    page: PageContext,
    headers: HeaderMap,
    multipart: Multipart,
) -> Result<Response, AppError> {
    let room = find_room(&state.hub, &slug, &page.viewer)?;
    let htmx = headers.contains_key("hx-request");
    let outcome = receive_and_post(&state, &room, &page.viewer, &headers, multipart).await;
    let refusal = match outcome {
        Ok(()) if htmx => return Ok(Html(ComposerError::cleared()).into_response()),
        Ok(()) => return Ok(Redirect::to(&format!("/rooms/{}", room.slug)).into_response()),
        Err(refusal) => refusal,
    };
    if htmx {
        return Ok((refusal.status, render(&refusal.error)?).into_response());
    }
    let shown = page
        .room_page(&state, &room, String::new(), Some(refusal.error))
        .await?;
    Ok((refusal.status, shown.to_response()?).into_response())
}

async fn receive_and_post(
    state: &AppState,
    room: &std::sync::Arc<Room>,
    viewer: &CurrentUser,
    headers: &HeaderMap,
    mut multipart: Multipart,
) -> Result<(), Refusal> {
    let limit = state.config.max_upload;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let most = limit
        .saturating_mul(MAX_FILES)
        .saturating_add(FORM_OVERHEAD);
    if declared.is_some_and(|length| length > most) {
        return Err(Refusal::too_large(limit));
    }
    // Each file is a message: the first one's token before reading anything, each later
    // one's before reading it.
    if !state.rate_limiter.allow(&viewer.login_id) {
        return Err(Refusal::rate_limited());
    }
    let bad_form = |e: axum::extract::multipart::MultipartError| {
        Refusal::new(
            e.status(),
            "bad_upload",
            "The upload did not arrive whole. Please send it again.",
        )
    };
    let mut caption: Option<MessageBody> = None;
    let mut files: Vec<(String, StoredFile)> = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(bad_form)? {
        match field.name() {
            Some("file") => {
                // A form sent with no file chosen still has an empty, nameless part.
                let name = field.file_name().unwrap_or_default().to_owned();
                if files.len() as u64 >= MAX_FILES {
                    return Err(Refusal::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "too_many_files",
                        format!("At most {MAX_FILES} files can be sent at once."),
                    ));
                }
                if !files.is_empty() && !state.rate_limiter.allow(&viewer.login_id) {
                    return Err(Refusal::rate_limited());
                }
                let idle = state.config.request_timeout();
                let stored = match state.files.receive(field, limit, idle).await {
                    Ok(stored) => stored,
                    Err(UploadError::TooLarge) => return Err(Refusal::too_large(limit)),
                    Err(UploadError::Stalled) => {
                        return Err(Refusal::new(
                            StatusCode::REQUEST_TIMEOUT,
                            "bad_upload",
                            "The upload stalled. Please send it again.",
                        ));
                    }
                    Err(UploadError::Interrupted(e)) => {
                        return Err(Refusal::new(
                            StatusCode::BAD_REQUEST,
                            "bad_upload",
                            format!("The upload did not arrive whole ({e}). Please send it again."),
                        ));
                    }
                    Err(e @ UploadError::Disk(_)) => return Err(Refusal::failed(e)),
                };
                if stored.size == 0 && name.is_empty() {
                    continue;
                }
                files.push((clean_file_name(Some(&name)), stored));
            }
            Some("body") => {
                let text = read_text(field).await?;
                if !text.trim().is_empty() {
                    caption = Some(MessageBody::parse(&text).map_err(|e| {
                        Refusal::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string())
                    })?);
                }
            }
            // Anything else is read (within the form limit) and ignored.
            _ => drop(read_text(field).await?),
        }
    }
    if files.is_empty() {
        return Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_file",
            "Choose a file to send.",
        ));
    }
    state.hub.stopped_typing(room, &viewer.nickname);
    for (name, stored) in files {
        let attachment = describe(state, name, &stored, &viewer.login_id).await?;
        let message = NewMessage::attached(viewer, attachment, caption.take());
        state
            .hub
            .post(room, message)
            .await
            .map_err(Refusal::not_posted)?;
    }
    Ok(())
}

/// A text part, refused past the form limit.
async fn read_text(mut field: Field<'_>) -> Result<String, Refusal> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|e| Refusal::new(e.status(), "bad_upload", e.to_string()))?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > FORM_OVERHEAD {
            let too_long = crate::domain::BodyError::TooLong;
            return Err(Refusal::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                too_long.code(),
                too_long.to_string(),
            ));
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// What the stored bytes are: known from an earlier upload of the same bytes, or sniffed
/// (and thumbnailed, in `login`'s turn) now and remembered.
async fn describe(
    state: &AppState,
    name: String,
    stored: &StoredFile,
    login: &str,
) -> Result<Attachment, Refusal> {
    let hash = stored.hash.clone();
    let known = store::blocking(&state.storage, move |s| s.file(&hash))
        .await
        .map_err(Refusal::failed)?;
    let record = match known {
        Some(record) => record,
        None => {
            let sniffed = state.files.sniff(stored, login).await;
            let record = FileRecord {
                hash: stored.hash.clone(),
                size: stored.size,
                media_type: sniffed.media_type,
                image: sniffed.image,
                created_at: crate::clock::now_millis(),
            };
            let saved = record.clone();
            store::blocking(&state.storage, move |s| s.put_file(&saved))
                .await
                .map_err(Refusal::failed)?;
            record
        }
    };
    Ok(Attachment {
        hash: record.hash,
        name,
        size: record.size,
        media_type: record.media_type,
        image: record.image,
    })
}

/// The attachment of message `id`, if the viewer can read its room and it still has one.
async fn find_attachment(
    state: &AppState,
    slug: &str,
    id: u64,
    viewer: &CurrentUser,
) -> Result<Attachment, AppError> {
    let room = find_room(&state.hub, slug, viewer)?;
    state
        .hub
        .message_record(&room, id)
        .await?
        .filter(|m| !m.deleted)
        .and_then(|m| m.attachment)
        .ok_or(AppError::NotFound)
}

/// `GET /rooms/{slug}/messages/{id}/file`: images inline as their sniffed type, anything else
/// as a download of `application/octet-stream`.
pub async fn file(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, u64)>,
    viewer: CurrentUser,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let attachment = find_attachment(&state, &slug, id, &viewer).await?;
    let (media_type, disposition) = match attachment.image {
        Some(_) => (attachment.media_type.as_str(), "inline"),
        None => (DOWNLOAD_TYPE, "attachment"),
    };
    let disposition = content_disposition(disposition, &attachment.name);
    let file = Served {
        hash: &attachment.hash,
        thumbnail: false,
    };
    serve(&state, file, media_type, &disposition, &headers).await
}

/// `GET /rooms/{slug}/messages/{id}/thumbnail`: an image attachment's thumbnail.
pub async fn thumbnail(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, u64)>,
    viewer: CurrentUser,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let attachment = find_attachment(&state, &slug, id, &viewer).await?;
    let image = attachment.image.as_ref().ok_or(AppError::NotFound)?;
    let disposition = content_disposition("inline", &attachment.name);
    let file = Served {
        hash: &attachment.hash,
        thumbnail: true,
    };
    serve(&state, file, &image.thumb_type, &disposition, &headers).await
}

/// Which stored bytes to serve.
struct Served<'a> {
    hash: &'a str,
    thumbnail: bool,
}

/// Streams a stored file. The bytes behind a hash never change, so their stored name (the
/// hash, or the thumbnail's) is the ETag.
/// The file's own CSP forbids everything, so even a browser that renders it runs nothing.
async fn serve(
    state: &AppState,
    file: Served<'_>,
    media_type: &str,
    disposition: &str,
    request: &HeaderMap,
) -> Result<Response, AppError> {
    let name = stored_name(file.hash, file.thumbnail).ok_or(AppError::NotFound)?;
    let etag = format!("\"{name}\"");
    let mut response = if request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let read = state.files.read(file.hash, file.thumbnail).await;
        let bytes = match read {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                tracing::error!(
                    hash = file.hash,
                    file.thumbnail,
                    "a stored attachment is missing"
                );
                return Err(AppError::NotFound);
            }
            Err(e) => return Err(AppError::Internal(format!("{}: {e}", file.hash))),
        };
        let mut response = Body::from_stream(bytes.chunks).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.length));
        insert(headers, header::CONTENT_TYPE, media_type);
        insert(headers, header::CONTENT_DISPOSITION, disposition);
        response
    };
    let headers = response.headers_mut();
    insert(headers, header::ETAG, &etag);
    insert(headers, header::CACHE_CONTROL, "private, max-age=86400");
    insert(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

fn insert(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(value) => {
            headers.insert(name, value);
        }
        Err(e) => tracing::error!(error = %e, %name, "header value refused"),
    }
}
