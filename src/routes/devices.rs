//! "Link another device": a one-time link (and its QR code) that logs a second browser in as
//! the same person, sharing their login, so a phone and a laptop can share a nickname.

use axum::Router;
use axum::routing::get;

use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use qrcode::QrCode;
use qrcode::render::svg;
use tower_sessions::Session;

use crate::clock::now_millis;
use crate::devices::{LINK_LIFETIME, LINKS_PER_LOGIN, LinkError};
use crate::error::AppError;
use crate::identity::{CurrentUser, USER_KEY};
use crate::security::CspNonce;
use crate::state::AppState;
use crate::store;
use crate::views::{Chrome, ErrorPage, render};

/// This area's routes; [`super::router`] puts them behind the session layer and the cross-site check.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/devices/link", get(link_form).post(new_link))
        .route("/devices/claim/{token}", get(confirm_claim).post(claim))
}

#[derive(Template)]
#[template(path = "link_device.html")]
struct LinkPage {
    page: Chrome,
    /// The link and its QR code (SVG); `None` on the page that offers to make one.
    link: Option<(String, String)>,
    minutes: u64,
    links_per_login: usize,
}

#[derive(Template)]
#[template(path = "claim_device.html")]
struct ClaimPage {
    page: Chrome,
    token: String,
    nickname: String,
}

/// The page that makes a link: a form, because making one is a change (a GET could be
/// made by any page the person visits, or a prefetch).
pub async fn link_form(
    viewer: CurrentUser,
    Extension(nonce): Extension<CspNonce>,
) -> Result<Response, AppError> {
    let page = link_page(&viewer, &nonce, None);
    Ok(render(&page)?.into_response())
}

/// Makes a link for the viewer and shows it with its QR code.
pub async fn new_link(
    State(state): State<AppState>,
    viewer: CurrentUser,
    headers: HeaderMap,
    Extension(nonce): Extension<CspNonce>,
) -> Result<Response, AppError> {
    let token = match state.device_links.issue(viewer.clone()).await {
        Ok(token) => token,
        Err(LinkError::Store(e)) => return Err(e.into()),
        Err(e @ LinkError::TooMany) => {
            let heading = "No link right now";
            let page = ErrorPage {
                page: Chrome::new(heading, Some(&viewer), &nonce.0),
                heading: heading.into(),
                text: e.to_string(),
            };
            return Ok((StatusCode::TOO_MANY_REQUESTS, render(&page)?).into_response());
        }
    };
    let base = state.origin.base_url(&headers, state.config.secure_cookies);
    let url = format!("{base}/devices/claim/{token}");
    let qr_svg = QrCode::new(url.as_bytes())
        .map_err(|e| AppError::Internal(format!("QR code: {e}")))?
        .render::<svg::Color>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build();
    let page = link_page(&viewer, &nonce, Some((url, qr_svg)));
    let mut response = render(&page)?.into_response();
    // The link logs a browser in: no cache keeps it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn link_page(viewer: &CurrentUser, nonce: &CspNonce, link: Option<(String, String)>) -> LinkPage {
    LinkPage {
        page: Chrome::new("Link another device", Some(viewer), &nonce.0),
        link,
        minutes: LINK_LIFETIME.as_secs() / 60,
        links_per_login: LINKS_PER_LOGIN,
    }
}

/// Opening the link asks first, so a link preview fetching it doesn't use it up.
pub async fn confirm_claim(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Extension(nonce): Extension<CspNonce>,
) -> Result<Response, AppError> {
    let Some(user) = state.device_links.peek(&token).await? else {
        return Ok(link_gone(&nonce));
    };
    let page = ClaimPage {
        page: Chrome::new("Log in on this device", None, &nonce.0),
        token,
        nickname: user.nickname.to_string(),
    };
    Ok(render(&page)?.into_response())
}

/// Logs this browser in as the link's person, in the same login (logging out ends both).
pub async fn claim(
    State(state): State<AppState>,
    Path(token): Path<String>,
    session: Session,
    Extension(nonce): Extension<CspNonce>,
) -> Result<Response, AppError> {
    let Some(user) = state.device_links.take(&token).await? else {
        return Ok(link_gone(&nonce));
    };
    // The person may have logged out since making the link: then it logs nobody in.
    let key = user.nickname.key();
    let login_id = user.login_id.clone();
    let still_held = store::blocking(&state.storage, move |s| {
        Ok(s.holder(&key, now_millis())?
            .is_some_and(|c| c.login_id == login_id))
    })
    .await?;
    if !still_held {
        return Ok(link_gone(&nonce));
    }
    session.cycle_id().await?;
    session.insert(USER_KEY, user.stored()).await?;
    tracing::info!(nickname = %user.nickname, "linked another device");
    Ok(Redirect::to("/").into_response())
}

fn link_gone(nonce: &CspNonce) -> Response {
    let heading = "This link no longer works";
    let page = ErrorPage {
        page: Chrome::new(heading, None, &nonce.0),
        heading: heading.into(),
        text: "A device link works once, for ten minutes, and only while its person is logged in. Ask for a new one from the device that is logged in.".into(),
    };
    match render(&page) {
        Ok(html) => (StatusCode::GONE, html).into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}
