//! The bot API: JSON over HTTP with `Authorization: Bearer TOKEN`. Bots post through the hub
//! like people do (stored before anyone sees it, rendered once), and read a room's messages
//! after an id. No cookies are read or set here, so the session layer and its cross-site
//! check stay out of the way.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::extract::bearer_token;
use crate::bots::{BotError, BotIdentity};
use crate::domain::{BodyError, ClientId, MessageBody};
use crate::hub::{Appended, NewMessage};
use crate::state::AppState;
use crate::store::{self, MessageKind, MessageRecord, StoreError};

/// Messages one read returns at most.
pub const MAX_PAGE: u64 = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/rooms/{slug}/messages",
            get(read_messages).post(post_message),
        )
        .route("/api/webhook", put(set_webhook).delete(remove_webhook))
}

/// The API's one error type: each answer is JSON `{"error": code, "message": text}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("A valid bot token is needed: `Authorization: Bearer TOKEN`.")]
    Unauthorized,
    #[error("There is no such room.")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("Send the message as JSON (`{{\"body\": \"…\"}}`) or as text/plain.")]
    UnsupportedMediaType,
    #[error("{1}")]
    Unprocessable(&'static str, String),
    #[error("{0}")]
    TooLarge(String),
    #[error("Too many messages: wait a moment and send again.")]
    RateLimited { retry_after: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unprocessable(code, _) => (StatusCode::UNPROCESSABLE_ENTITY, code),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_long"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Store(StoreError::Archived) => (StatusCode::FORBIDDEN, "archived"),
            ApiError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_failed"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Store(StoreError::Archived) => {
                "This room is archived: nothing can be posted in it.".to_owned()
            }
            ApiError::Store(e) => {
                tracing::error!(error = %e, "API request failed");
                "Storage is unavailable; nothing was stored. Try again in a moment.".to_owned()
            }
            other => other.to_string(),
        };
        let mut response =
            (status, Json(json!({ "error": code, "message": message }))).into_response();
        let headers = response.headers_mut();
        match self {
            ApiError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::RateLimited { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            _ => {}
        }
        response
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLong => ApiError::TooLarge(e.to_string()),
            other => ApiError::Unprocessable(other.code(), other.to_string()),
        }
    }
}

impl From<BotError> for ApiError {
    fn from(e: BotError) -> Self {
        match e {
            BotError::Store(e) => ApiError::Store(e),
            // The bot was there when its token was checked.
            BotError::NotFound => ApiError::Unauthorized,
            refused @ BotError::PrivateWebhook(_) => {
                ApiError::Unprocessable("private_address", refused.to_string())
            }
            other => ApiError::Unprocessable("invalid", other.to_string()),
        }
    }
}

/// The bot whose token the request carries; 401 without a current one.
impl FromRequestParts<AppState> for BotIdentity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers).ok_or(ApiError::Unauthorized)?;
        state.bots.authenticate(token).ok_or(ApiError::Unauthorized)
    }
}

#[derive(Deserialize)]
struct PostJson {
    body: String,
    /// A random id per message: a retried POST with the same one is stored once.
    client_id: Option<String>,
    /// The id of a message in the same room that this one answers.
    reply_to: Option<u64>,
}

#[derive(Serialize)]
struct Posted {
    id: u64,
    room: String,
    permalink: String,
}

/// `POST /api/rooms/{slug}/messages`: posts as the bot, live to the room. 201 with the id, or
/// 200 with the original id for a repeated `client_id`.
#[tracing::instrument(skip_all, fields(bot = %bot.name, room = %slug))]
pub async fn post_message(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    bot: BotIdentity,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let room = state
        .hub
        .readable_room(&slug, &bot.handle)
        .ok_or(ApiError::NotFound)?;
    let bytes = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(e.body_text()),
        _ => ApiError::BadRequest(e.body_text()),
    })?;
    let post = read_post(&headers, &bytes)?;
    let body = MessageBody::parse(&post.body)?;
    if !state.rate_limiter.allow(&bot.rate_key()) {
        // The bucket refills a message's worth in 1/rate seconds.
        let retry_after = (1.0 / state.config.rate_limit).ceil().max(1.0) as u64;
        return Err(ApiError::RateLimited { retry_after });
    }
    let client_id = post.client_id.as_deref().and_then(ClientId::parse);
    let message = NewMessage::said_by_bot(&bot.name, &bot.handle, body)
        .with_client_id(&bot.rate_key(), client_id.as_ref())
        .answering(post.reply_to);
    let (status, id) = match state.hub.post_as_bot(&room, message).await? {
        Appended::Stored(id) => (StatusCode::CREATED, id),
        Appended::Duplicate(id) => (StatusCode::OK, id),
    };
    let path = format!("/rooms/{}/messages/{id}", room.slug);
    let base = state.origin.base_url(&headers, state.config.secure_cookies);
    let posted = Posted {
        id,
        room: room.slug.to_string(),
        permalink: format!("{base}{path}#msg-{id}"),
    };
    let mut response = (status, Json(posted)).into_response();
    if let Ok(location) = HeaderValue::from_str(&path) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// A JSON body (`{"body": …}`) or plain text, by `Content-Type`; plain text when none is given.
fn read_post(headers: &HeaderMap, bytes: &[u8]) -> Result<PostJson, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match content_type.as_deref() {
        Some("application/json") => serde_json::from_slice(bytes).map_err(|e| {
            if e.is_data() {
                ApiError::Unprocessable(
                    "bad_json",
                    format!("The JSON needs a string \"body\": {e}"),
                )
            } else {
                ApiError::BadRequest(format!("The body is not valid JSON: {e}"))
            }
        }),
        None | Some("text/plain") => Ok(PostJson {
            body: String::from_utf8(bytes.to_vec())
                .map_err(|_| ApiError::BadRequest("The text is not valid UTF-8.".into()))?,
            client_id: None,
            reply_to: None,
        }),
        Some(_) => Err(ApiError::UnsupportedMediaType),
    }
}

#[derive(Deserialize)]
pub struct AfterQuery {
    #[serde(default)]
    after: u64,
    limit: Option<u64>,
}

/// One message as the API shows it.
#[derive(Serialize)]
struct ApiMessage {
    id: i64,
    /// `user` for people and bots, `system` for lines such as "alice joined".
    kind: &'static str,
    /// Empty for system lines.
    author: String,
    /// The author's login handle (what "the same person" means: a later holder of the
    /// nickname has another); empty for system lines.
    login: String,
    bot: bool,
    /// Empty once deleted.
    body: String,
    created_at: String,
    edited: bool,
    edited_at: Option<String>,
    deleted: bool,
    reply_to: Option<i64>,
}

impl From<MessageRecord> for ApiMessage {
    fn from(m: MessageRecord) -> Self {
        ApiMessage {
            id: m.id,
            kind: m.kind.as_str(),
            author: match m.kind {
                MessageKind::User => m.author,
                MessageKind::System => String::new(),
            },
            login: m.login,
            bot: m.bot,
            body: m.body,
            created_at: rfc3339(m.created_at),
            edited: m.edited_at.is_some(),
            edited_at: m.edited_at.map(rfc3339),
            deleted: m.deleted,
            reply_to: m.reply_to.map(|r| r.id),
        }
    }
}

fn rfc3339(millis: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// `GET /api/rooms/{slug}/messages?after=N&limit=M`: the messages with ids above `after`,
/// oldest first, at most `limit` (100 at most). `last_id` says whether there are more.
pub async fn read_messages(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    bot: BotIdentity,
    query: Result<Query<AfterQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let room = state
        .hub
        .readable_room(&slug, &bot.handle)
        .ok_or(ApiError::NotFound)?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = query.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let last_id = room.last_id();
    let from = query.after.saturating_add(1);
    let to = query.after.saturating_add(limit).min(last_id);
    let records = if from > to {
        Vec::new()
    } else {
        let slug = room.slug.clone();
        store::blocking(&state.storage, move |s| s.messages(&slug, from, to)).await?
    };
    let messages: Vec<ApiMessage> = records.into_iter().map(ApiMessage::from).collect();
    Ok(Json(json!({
        "room": room.slug.as_str(),
        "last_id": last_id,
        "messages": messages,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct WebhookJson {
    url: String,
}

/// `PUT /api/webhook` with `{"url": "https://…"}`: mentions of the bot are POSTed there.
pub async fn set_webhook(
    State(state): State<AppState>,
    bot: BotIdentity,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let WebhookJson { url } = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("Send JSON with a string \"url\": {e}")))?;
    if url.trim().is_empty() {
        return Err(ApiError::Unprocessable(
            "invalid",
            "The URL is empty; DELETE /api/webhook removes the webhook.".into(),
        ));
    }
    let origin = state.origin.base_url(&headers, state.config.secure_cookies);
    state.bots.set_webhook(None, &bot.id, &url, origin).await?;
    Ok(Json(json!({ "url": state.bots.webhook_url(&bot.id) })).into_response())
}

/// `DELETE /api/webhook`: mentions are no longer delivered.
pub async fn remove_webhook(
    State(state): State<AppState>,
    bot: BotIdentity,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let origin = state.origin.base_url(&headers, state.config.secure_cookies);
    state.bots.set_webhook(None, &bot.id, "", origin).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
