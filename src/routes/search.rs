//! Search across the rooms the viewer can read: a plain GET form, so it works without
//! JavaScript, answered by a full page of the newest matches linking to their permalinks.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::extract::page::PageContext;
use crate::clock::from_millis;
use crate::domain::{QueryError, SearchQuery, Snippet, excerpt};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{self, SearchCursor};
use crate::views::{Chrome, Sidebar, render, rfc3339, utc_time_text};

/// This area's routes; [`super::router`] puts them behind the session layer and the cross-site check.
pub fn router() -> Router<AppState> {
    Router::new().route("/search", get(search))
}

/// Results per page.
pub const RESULTS_PER_PAGE: usize = 50;
/// Characters of a message shown around its first match.
const EXCERPT_CHARS: usize = 240;

#[derive(Template)]
#[template(path = "search.html")]
pub struct SearchPage {
    pub page: Chrome,
    pub sidebar: Sidebar,
    /// The query as typed.
    pub query: String,
    pub outcome: Outcome,
}

pub enum Outcome {
    /// Nothing to search for yet, or a query that can't be run; shown as a friendly note.
    Note(String),
    Results {
        hits: Vec<Hit>,
        /// The cursor of the next page, if there may be more.
        more: Option<String>,
        /// Whether this page continues an earlier one.
        continued: bool,
    },
}

/// One matching message as the results list shows it.
pub struct Hit {
    pub slug: String,
    pub room_name: String,
    pub id: i64,
    pub author: String,
    pub datetime: String,
    /// Until the page's script writes it in the viewer's own format.
    pub when: String,
    pub excerpt: Vec<Snippet>,
}

#[derive(Deserialize)]
pub struct SearchParams {
    #[serde(default)]
    q: String,
    before: Option<String>,
}

pub async fn search(
    State(state): State<AppState>,
    Query(params): Query<SearchParams>,
    context: PageContext,
) -> Result<Response, AppError> {
    let viewer = &context.viewer;
    let reader = state.hub.reader(&viewer.login_id).await?;
    let (status, outcome) = match SearchQuery::parse(&params.q) {
        Err(QueryError::Empty) => (StatusCode::OK, Outcome::Note(QueryError::Empty.to_string())),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Outcome::Note(e.to_string()),
        ),
        Ok(query) => {
            let before = params.before.as_deref().and_then(SearchCursor::parse);
            let continued = before.is_some();
            let hub = state.hub.clone();
            let login = viewer.handle().to_owned();
            let terms = query.terms().to_vec();
            let found = store::blocking(&state.storage, move |s| {
                s.search(&query, before.as_ref(), RESULTS_PER_PAGE, &|room| {
                    hub.can_read(&login, room)
                })
            })
            .await?;
            let hits = found
                .hits
                .iter()
                .map(|message| Hit {
                    slug: message.room.as_str().to_owned(),
                    room_name: state
                        .hub
                        .room(&message.room)
                        .map_or_else(|| message.room.to_string(), |room| room.name()),
                    id: message.id,
                    author: message.author.clone(),
                    datetime: rfc3339(from_millis(message.created_at)),
                    when: utc_time_text(from_millis(message.created_at)),
                    excerpt: excerpt(&message.searchable_text(), &terms, EXCERPT_CHARS),
                })
                .collect();
            (
                StatusCode::OK,
                Outcome::Results {
                    hits,
                    more: found.more.map(|cursor| cursor.as_str().to_owned()),
                    continued,
                },
            )
        }
    };
    let page = SearchPage {
        page: context.chrome(search_title(&params.q)),
        sidebar: context.sidebar(&state, None, &reader),
        query: params.q.trim().to_owned(),
        outcome,
    };
    Ok((status, render(&page)?).into_response())
}

fn search_title(query: &str) -> String {
    match query.trim() {
        "" => "Search".to_owned(),
        query => format!("{} – Search", query.chars().take(60).collect::<String>()),
    }
}
