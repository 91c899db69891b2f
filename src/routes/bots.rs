//! The bots settings page: make a bot, see its token once, get a new one or revoke it, and
//! set the URL that mentions of it are POSTed to. Plain forms, so it works without JavaScript.

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::extract::client::ClientAddr;
use super::extract::page::PageContext;
use crate::bots::{BotError, MAX_BOTS_PER_LOGIN};
use crate::domain::Nickname;
use crate::error::AppError;
use crate::identity::CurrentUser;
use crate::state::AppState;
use crate::views::{Chrome, Sidebar, render};

/// This area's routes; [`super::router`] puts them behind the session layer and the cross-site check.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings/bots", get(settings).post(create))
        .route("/settings/bots/{id}/token", post(new_token))
        .route("/settings/bots/{id}/revoke", post(revoke))
        .route("/settings/bots/{id}/webhook", post(set_webhook))
        .route("/settings/bots/{id}/delete", post(delete))
}

#[derive(Template)]
#[template(path = "bots.html")]
pub struct BotsPage {
    pub page: Chrome,
    pub sidebar: Sidebar,
    pub bots: Vec<BotRow>,
    /// A token just made: shown on this response only.
    pub fresh: Option<FreshToken>,
    /// The name typed into the form, kept when it is refused.
    pub name: String,
    pub error: Option<String>,
    /// This server's origin, for the curl examples.
    pub base_url: String,
}

pub struct BotRow {
    pub id: String,
    pub name: String,
    pub active: bool,
    pub webhook_url: String,
}

pub struct FreshToken {
    pub bot: String,
    pub token: String,
}

impl From<BotError> for AppError {
    fn from(e: BotError) -> Self {
        match e {
            BotError::NotFound => AppError::NotFound,
            BotError::Store(e) => AppError::Store(e),
            other => AppError::Internal(other.to_string()),
        }
    }
}

async fn bots_page(
    state: &AppState,
    page: &PageContext,
    headers: &HeaderMap,
) -> Result<BotsPage, AppError> {
    let viewer = &page.viewer;
    let reader = state.hub.reader(&viewer.login_id).await?;
    let bots = state
        .bots
        .owned_by(&viewer.login_id)
        .into_iter()
        .map(|bot| BotRow {
            active: bot.token_hash.is_some(),
            webhook_url: bot.webhook_url.unwrap_or_default(),
            id: bot.id,
            name: bot.name,
        })
        .collect();
    Ok(BotsPage {
        page: page.chrome("Bots"),
        sidebar: page.sidebar(state, None, &reader),
        bots,
        fresh: None,
        name: String::new(),
        error: None,
        base_url: state.origin.base_url(headers, state.config.secure_cookies),
    })
}

/// A page carrying a token must not be kept by any cache.
fn no_store(status: StatusCode, page: &BotsPage) -> Result<Response, AppError> {
    let mut response = (status, render(page)?).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

pub async fn settings(
    State(state): State<AppState>,
    context: PageContext,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let page = bots_page(&state, &context, &headers).await?;
    no_store(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct NewBotForm {
    #[serde(default)]
    name: String,
}

/// Makes a bot and shows its token, once. A login has at most
/// [`crate::bots::MAX_BOTS_PER_LOGIN`], and a client address makes at most `--bot-rate`
/// an hour (past it, 429).
pub async fn create(
    State(state): State<AppState>,
    context: PageContext,
    client: ClientAddr,
    headers: HeaderMap,
    Form(form): Form<NewBotForm>,
) -> Result<Response, AppError> {
    let viewer = &context.viewer;
    let origin = state.origin.base_url(&headers, state.config.secure_cookies);
    let made = match Nickname::parse(&form.name) {
        Err(e) => Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            e.to_string().replace("nickname", "bot name"),
        )),
        Ok(_) if state.bots.owned_by(&viewer.login_id).len() >= MAX_BOTS_PER_LOGIN => Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            BotError::TooMany.to_string(),
        )),
        Ok(_) if !state.creation.reserved_names.allow(&client.rate_key()) => Err((
            StatusCode::TOO_MANY_REQUESTS,
            "Many bots were made from your address in the last hour. Try again later.".into(),
        )),
        Ok(name) => {
            // The same lock as logins: a name is checked and claimed in one step.
            let _claiming = state.claims.lock().await?;
            match state.bots.create(&name, &viewer.login_id, origin).await {
                Ok(made) => Ok(made),
                Err(e @ (BotError::NameTaken(_) | BotError::TooMany)) => {
                    Err((StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    let mut page = bots_page(&state, &context, &headers).await?;
    match made {
        Ok((bot, token)) => {
            page.fresh = Some(FreshToken {
                bot: bot.name,
                token,
            });
            no_store(StatusCode::CREATED, &page)
        }
        Err((status, error)) => {
            page.name = form.name;
            page.error = Some(error);
            no_store(status, &page)
        }
    }
}

/// A new token for the bot; the old one stops working.
pub async fn new_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    context: PageContext,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let viewer = &context.viewer;
    let token = state.bots.new_token(&viewer.login_id, &id).await?;
    let mut page = bots_page(&state, &context, &headers).await?;
    let bot = page
        .bots
        .iter()
        .find(|b| b.id == id)
        .map(|b| b.name.clone())
        .unwrap_or_default();
    page.fresh = Some(FreshToken { bot, token });
    no_store(StatusCode::OK, &page)
}

pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    viewer: CurrentUser,
) -> Result<Response, AppError> {
    state.bots.revoke(&viewer.login_id, &id).await?;
    Ok(Redirect::to("/settings/bots").into_response())
}

/// Deletes the viewer's bot: its token and webhook stop, and its name is free again.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    viewer: CurrentUser,
) -> Result<Response, AppError> {
    let _claiming = state.claims.lock().await?;
    state.bots.delete(Some(&viewer.login_id), &id).await?;
    Ok(Redirect::to("/settings/bots").into_response())
}

#[derive(Deserialize)]
pub struct WebhookForm {
    #[serde(default)]
    url: String,
}

/// Sets the bot's webhook URL; an empty one removes it.
pub async fn set_webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
    context: PageContext,
    headers: HeaderMap,
    Form(form): Form<WebhookForm>,
) -> Result<Response, AppError> {
    let viewer = &context.viewer;
    let origin = state.origin.base_url(&headers, state.config.secure_cookies);
    match state
        .bots
        .set_webhook(Some(&viewer.login_id), &id, &form.url, origin)
        .await
    {
        Ok(()) => Ok(Redirect::to("/settings/bots").into_response()),
        Err(refused @ (BotError::BadUrl | BotError::PrivateWebhook(_))) => {
            let mut page = bots_page(&state, &context, &headers).await?;
            page.error = Some(refused.to_string());
            no_store(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(e) => Err(e.into()),
    }
}
