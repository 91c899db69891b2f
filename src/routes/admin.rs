//! Moderation: redeeming the admin secret, each room's admin panel (rename, archive,
//! kick), and the list of every bot (delete). Every action but redeeming takes [`Admin`], so anyone else gets 403; each one
//! leaves a system line in the room's stream. Direct conversations are not moderated: to
//! admins too they are 404 here, as everywhere. (Deleting anyone's message is in
//! `routes::messages`, on the same path as deleting one's own.)

use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use tower_sessions::Session;

use super::extract::admin::{self, Admin};
use super::extract::client::{ClientAddr, Guess};
use crate::bots::BotError;
use crate::domain::{Nickname, RoomName, Slug};
use crate::error::AppError;
use crate::hub::{Hub, NewMessage, Room};
use crate::identity::{CurrentUser, LoginEnd, login_handle};
use crate::security::CspNonce;
use crate::state::AppState;
use crate::store::{self, BotRecord};
use crate::views::{Chrome, render};

/// This area's routes; [`super::router`] puts them behind the session layer and the cross-site check.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(redeem_form).post(redeem))
        .route("/rooms/{slug}/admin", get(panel))
        .route("/rooms/{slug}/admin/rename", post(rename))
        .route("/rooms/{slug}/admin/archive", post(archive))
        .route("/rooms/{slug}/admin/unarchive", post(unarchive))
        .route("/rooms/{slug}/admin/kick", post(kick))
        .route("/admin/bots", get(bots))
        .route("/admin/bots/{id}/delete", post(delete_bot))
}

#[derive(Template)]
#[template(path = "admin_redeem.html")]
struct RedeemPage {
    page: Chrome,
    token: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_panel.html")]
struct PanelPage {
    page: Chrome,
    slug: Slug,
    name: String,
    archived: bool,
    here: Vec<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_bots.html")]
struct BotsPage {
    page: Chrome,
    bots: Vec<BotRecord>,
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// The form that takes the admin token; the setup link opens it filled in.
pub async fn redeem_form(
    viewer: Option<CurrentUser>,
    admin: Option<Admin>,
    Query(query): Query<TokenQuery>,
    Extension(nonce): Extension<CspNonce>,
) -> Result<Response, AppError> {
    // Tokens are hex; anything else is not carried through the login.
    let token: String = query
        .token
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let Some(viewer) = viewer else {
        // The login's `next` keeps the setup link's token.
        let next = match token.is_empty() {
            true => "%2Fadmin".to_owned(),
            false => format!("%2Fadmin%3Ftoken%3D{token}"),
        };
        return Ok(Redirect::to(&format!("/login?next={next}")).into_response());
    };
    let page = RedeemPage {
        page: Chrome::new("Admin", Some(&viewer), &nonce.0).for_admin(admin.is_some()),
        token,
        error: None,
    };
    Ok(render(&page)?.into_response())
}

#[derive(Deserialize)]
pub struct RedeemForm {
    #[serde(default)]
    token: String,
}

#[tracing::instrument(skip_all, fields(nickname = %viewer.nickname))]
pub async fn redeem(
    State(state): State<AppState>,
    session: Session,
    viewer: CurrentUser,
    client: ClientAddr,
    Extension(nonce): Extension<CspNonce>,
    Form(form): Form<RedeemForm>,
) -> Result<Response, AppError> {
    let guess = Guess::start(&state, client).await?;
    if !state.admin.redeem(form.token.trim()).await? {
        tracing::warn!("a wrong admin token was given");
        let page = RedeemPage {
            page: Chrome::new("Admin", Some(&viewer), &nonce.0),
            token: String::new(),
            error: Some(
                "That is not the admin token, or the setup link has been used already.".into(),
            ),
        };
        return Ok((StatusCode::FORBIDDEN, render(&page)?).into_response());
    }
    guess.right().await;
    admin::grant(&session, &viewer).await?;
    tracing::info!("admin rights granted to this session");
    Ok(Redirect::to("/").into_response())
}

/// A room admins may moderate: any but a direct conversation, which stays 404.
fn moderated_room(hub: &Hub, slug: &str) -> Result<Arc<Room>, AppError> {
    Slug::parse(slug)
        .and_then(|slug| hub.room(&slug))
        .filter(|room| room.slug.direct_members().is_none())
        .ok_or(AppError::NotFound)
}

fn panel_page(admin: &Admin, nonce: &CspNonce, room: &Room, error: Option<String>) -> PanelPage {
    let viewer = admin.person();
    PanelPage {
        page: Chrome::new(format!("Moderate {}", room.name()), viewer, &nonce.0).for_admin(true),
        slug: room.slug.clone(),
        name: room.name(),
        archived: room.is_archived(),
        here: room.here(),
        error,
    }
}

fn refuse(
    admin: &Admin,
    nonce: &CspNonce,
    room: &Room,
    error: String,
) -> Result<Response, AppError> {
    let page = panel_page(admin, nonce, room, Some(error));
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
}

fn back_to(room: &Room) -> Response {
    Redirect::to(&format!("/rooms/{}", room.slug)).into_response()
}

/// The room's admin panel: rename, archive or reopen, remove someone.
pub async fn panel(
    State(state): State<AppState>,
    admin: Admin,
    Path(slug): Path<String>,
    Extension(nonce): Extension<CspNonce>,
) -> Result<Response, AppError> {
    let room = moderated_room(&state.hub, &slug)?;
    Ok(render(&panel_page(&admin, &nonce, &room, None))?.into_response())
}

#[derive(Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    name: String,
}

/// A new name, shown live everywhere; the slug, and so every link, stays.
#[tracing::instrument(skip_all, fields(room = %slug))]
pub async fn rename(
    State(state): State<AppState>,
    admin: Admin,
    Path(slug): Path<String>,
    Extension(nonce): Extension<CspNonce>,
    Form(form): Form<RenameForm>,
) -> Result<Response, AppError> {
    let room = moderated_room(&state.hub, &slug)?;
    let name = match RoomName::parse(&form.name) {
        Ok(name) => name,
        Err(e) => return refuse(&admin, &nonce, &room, e.to_string()),
    };
    if name.as_str() != room.name() {
        state
            .hub
            .rename_room(&room, &name, &admin.display_name())
            .await?;
    }
    Ok(back_to(&room))
}

pub async fn archive(
    State(state): State<AppState>,
    admin: Admin,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    set_archived(state, admin, slug, true).await
}

pub async fn unarchive(
    State(state): State<AppState>,
    admin: Admin,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    set_archived(state, admin, slug, false).await
}

async fn set_archived(
    state: AppState,
    admin: Admin,
    slug: String,
    archived: bool,
) -> Result<Response, AppError> {
    let room = moderated_room(&state.hub, &slug)?;
    if room.is_archived() != archived {
        state
            .hub
            .set_archived(&room, archived, &admin.display_name())
            .await?;
    }
    Ok(back_to(&room))
}

#[derive(Deserialize)]
pub struct KickForm {
    #[serde(default)]
    nickname: String,
}

/// Removes whoever holds a nickname: every session of their login ends, their open sockets
/// close (1008, "removed by an admin"), and the nickname is free for anyone. Not a ban: they
/// may log in again.
#[tracing::instrument(skip_all, fields(room = %slug, nickname = %form.nickname))]
pub async fn kick(
    State(state): State<AppState>,
    admin: Admin,
    Path(slug): Path<String>,
    Extension(nonce): Extension<CspNonce>,
    Form(form): Form<KickForm>,
) -> Result<Response, AppError> {
    let room = moderated_room(&state.hub, &slug)?;
    let Ok(nickname) = Nickname::parse(&form.nickname) else {
        return refuse(&admin, &nonce, &room, "That is not a nickname.".into());
    };
    // Claims change only under this lock: nobody takes the name between the check and the
    // release.
    let _claiming = state.claims.lock().await?;
    let key = nickname.key();
    let Some(claim) = store::blocking(&state.storage, move |s| s.claim(&key)).await? else {
        return refuse(
            &admin,
            &nonce,
            &room,
            format!("Nobody holds “{nickname}” right now."),
        );
    };
    if admin
        .person()
        .is_some_and(|me| me.login_id == claim.login_id)
    {
        return refuse(
            &admin,
            &nonce,
            &room,
            "That is you. To leave, log out.".into(),
        );
    }
    if let Some(bot_id) = claim.bot_id() {
        // A bot's name: freeing it alone would leave the bot posting with its token.
        match state.bots.delete(None, bot_id).await {
            Err(BotError::NotFound) => {
                // A claim without its bot: only the claim is left to free.
                let key = claim.nickname_key.clone();
                store::blocking(&state.storage, move |s| s.delete_claim(&key)).await?;
            }
            deleted => drop(deleted?),
        }
        tracing::info!(by = admin.nickname(), "bot removed");
        let by = admin.display_name();
        let line = format!("{by} removed the bot {}", claim.nickname);
        state.hub.post(&room, NewMessage::system(&by, line)).await?;
        return Ok(back_to(&room));
    }
    // Sessions first, so the sockets closed next can't be reopened with them.
    state
        .sessions
        .end_login(&claim.login_id, LoginEnd::Removed)
        .await?;
    state
        .hub
        .end_login_because(&claim.login_id, LoginEnd::Removed);
    let key = claim.nickname_key.clone();
    store::blocking(&state.storage, move |s| s.delete_claim(&key)).await?;
    state
        .hub
        .nickname_passed_on(&login_handle(&claim.login_id))
        .await?;
    tracing::info!(by = admin.nickname(), "removed");
    let by = admin.display_name();
    let line = format!("{by} removed {}", claim.nickname);
    state.hub.post(&room, NewMessage::system(&by, line)).await?;
    Ok(back_to(&room))
}

/// Every bot, each with a button that deletes it.
pub async fn bots(
    State(state): State<AppState>,
    admin: Admin,
    Extension(nonce): Extension<CspNonce>,
) -> Result<Response, AppError> {
    let page = BotsPage {
        page: Chrome::new("Bots", admin.person(), &nonce.0).for_admin(true),
        bots: state.bots.all(),
    };
    Ok(render(&page)?.into_response())
}

/// Deletes any bot: its token and webhook stop and its name is free; its messages stay.
#[tracing::instrument(skip_all, fields(bot = %id))]
pub async fn delete_bot(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let _claiming = state.claims.lock().await?;
    let bot = state.bots.delete(None, &id).await?;
    tracing::info!(by = admin.nickname(), name = %bot.name, "bot deleted by an admin");
    Ok(Redirect::to("/admin/bots").into_response())
}
