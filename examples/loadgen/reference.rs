//! The reference: a bare axum + tokio broadcast server with the chat's login and socket paths.
//! No database, no templates, no session store. The body is escaped into a fixed HTML string,
//! rendered once, and the same bytes go to every socket. Writers drain what is queued and
//! flush once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast;

#[derive(Debug, Clone, clap::Args)]
pub struct ReferenceArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3100")]
    pub addr: SocketAddr,
    /// The bytes `GET /rooms/{slug}` serves (the loadgen saves the chat's page here).
    #[arg(long)]
    pub page_file: Option<PathBuf>,
    /// Per-socket read buffer, bytes (the chat uses 4 KiB; tungstenite's default is 128 KiB).
    #[arg(long, default_value_t = 4096)]
    pub read_buffer: usize,
    /// Set TCP_NODELAY on accepted sockets.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub nodelay: bool,
    /// Broadcast capacity (the chat uses 1024).
    #[arg(long, default_value_t = 1024)]
    pub capacity: usize,
}

struct Shared {
    /// Assigns ids and publishes under one lock, so ids and broadcast order agree.
    publish: Mutex<(u64, broadcast::Sender<Utf8Bytes>)>,
    page: Bytes,
    read_buffer: usize,
}

type AppState = Arc<Shared>;

pub async fn serve(args: ReferenceArgs) -> anyhow::Result<()> {
    let page = match &args.page_file {
        Some(path) => Bytes::from(std::fs::read(path)?),
        None => Bytes::from(synthetic_page(50)),
    };
    let (tx, _) = broadcast::channel(args.capacity);
    let state = Arc::new(Shared {
        publish: Mutex::new((0, tx)),
        page,
        read_buffer: args.read_buffer,
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/login", post(login))
        .route("/rooms/{slug}", get(room_page))
        .route("/rooms/{slug}/ws", get(room_socket))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let nodelay = args.nodelay;
    let listener = listener.tap_io(move |tcp| {
        if nodelay {
            let _ = tcp.set_nodelay(true);
        }
    });
    eprintln!("reference serving on {}", args.addr);
    axum::serve(listener, app).await?;
    Ok(())
}

/// A page of the same shape as the chat's, for when the reference runs without it.
pub fn synthetic_page(messages: usize) -> String {
    let mut page = String::from("<!doctype html><html><body><div id=\"messages\">");
    for id in 1..=messages {
        page.push_str(&message_html(
            id as u64,
            "someone",
            &format!("history message {id}"),
        ));
    }
    page.push_str("</div></body></html>");
    page
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    nickname: String,
}

/// The cookie carries the nickname itself: there is no session store.
async fn login(Form(form): Form<LoginForm>) -> Response {
    let nickname = form.nickname.trim();
    let valid = !nickname.is_empty()
        && nickname.chars().count() <= 32
        && nickname
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid {
        return (StatusCode::UNPROCESSABLE_ENTITY, "bad nickname").into_response();
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_owned()),
            (
                header::SET_COOKIE,
                format!("chat_session={nickname}; HttpOnly; SameSite=Lax; Path=/"),
            ),
        ],
    )
        .into_response()
}

fn nickname(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix("chat_session="))
        .map(str::to_owned)
}

async fn room_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if nickname(&headers).is_none() {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        state.page.clone(),
    )
        .into_response()
}

fn origin_matches(headers: &HeaderMap) -> bool {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    matches!((origin, host), (Some(o), Some(h)) if o.strip_prefix("http://") == Some(h))
}

async fn room_socket(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(author) = nickname(&headers) else {
        return (StatusCode::UNAUTHORIZED, "Log in first.").into_response();
    };
    if !origin_matches(&headers) {
        return (StatusCode::FORBIDDEN, "Foreign origin.").into_response();
    }
    let read_buffer = state.read_buffer;
    upgrade
        .read_buffer_size(read_buffer)
        .write_buffer_size(0)
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| connection(state, socket, author))
}

#[derive(Deserialize)]
struct Frame {
    body: Option<String>,
}

async fn connection(state: AppState, socket: WebSocket, author: String) {
    let (mut sink, mut stream) = socket.split();
    let mut live = state.publish.lock().expect("publish lock").1.subscribe();
    let writer = tokio::spawn(async move {
        loop {
            let first = match live.recv().await {
                Ok(frame) => frame,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if sink.feed(Message::Text(first)).await.is_err() {
                return;
            }
            // Drain what is already queued, then flush once.
            let mut batched = 0;
            while batched < 64 {
                match live.try_recv() {
                    Ok(frame) => {
                        if sink.feed(Message::Text(frame)).await.is_err() {
                            return;
                        }
                        batched += 1;
                    }
                    Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                    Err(_) => break,
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let author_html = escape(&author);
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Text(text) => {
                let Ok(frame) = serde_json::from_str::<Frame>(&text) else {
                    continue;
                };
                let Some(body) = frame.body else {
                    // `{"resume_after": N}`: there is no history to replay.
                    continue;
                };
                let body = body.trim();
                if body.is_empty() {
                    continue;
                }
                let body = escape(body);
                let mut publish = state.publish.lock().expect("publish lock");
                publish.0 += 1;
                let html = format!(
                    "<div id=\"messages\" hx-swap-oob=\"beforeend\">{}</div>",
                    message_html(publish.0, &author_html, &body)
                );
                let _ = publish.1.send(Utf8Bytes::from(html));
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    writer.abort();
}

fn message_html(id: u64, author_html: &str, body_html: &str) -> String {
    format!(
        "<article class=\"msg\" id=\"msg-{id}\" data-kind=\"user\" data-author=\"{author_html}\">\
         <div class=\"msg-body\">{body_html}</div></article>"
    )
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
