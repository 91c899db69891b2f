use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chat::store::{PgStore, PoloStore, Storage};
use chat::{Application, Config};
use futures_util::{SinkExt, StreamExt};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::redirect::Policy;
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(10);

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("TEST_LOG").unwrap_or_default())
            .with_test_writer()
            .try_init();
    }
}

#[path = "../../src/store/postgres/test_cluster.rs"]
pub mod test_cluster;

/// Where a test server keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    PoloDb,
    Postgres,
}

/// A test server's data: its directory (attachments, and PoloDB's database) and, on
/// PostgreSQL, its own database in the test process's cluster. A restart starts on the same.
#[derive(Clone)]
pub struct AppData {
    dir: Arc<TempDir>,
    database_url: Option<String>,
}

impl AppData {
    pub fn new(backend: Backend) -> AppData {
        AppData {
            dir: Arc::new(tempfile::tempdir().unwrap()),
            // On a thread of its own: the client blocks, which an async test's thread can't.
            database_url: (backend == Backend::Postgres).then(|| {
                std::thread::spawn(test_cluster::fresh_database)
                    .join()
                    .unwrap()
            }),
        }
    }

    /// Data for another instance on the same PostgreSQL database: a directory of its own.
    pub fn another_instance(&self) -> AppData {
        assert!(
            self.database_url.is_some(),
            "instances share PostgreSQL only"
        );
        AppData {
            dir: Arc::new(tempfile::tempdir().unwrap()),
            database_url: self.database_url.clone(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh directory, on the PostgreSQL database at `url`.
    pub fn on_database(url: String) -> AppData {
        AppData {
            dir: Arc::new(tempfile::tempdir().unwrap()),
            database_url: Some(url),
        }
    }

    /// The same directory (attachments), with a new, empty PostgreSQL database.
    pub fn with_fresh_database(&self) -> AppData {
        AppData {
            dir: self.dir.clone(),
            database_url: Some(
                std::thread::spawn(test_cluster::fresh_database)
                    .join()
                    .unwrap(),
            ),
        }
    }

    /// Runs `work` on the stopped server's storage, opened directly, off the async thread
    /// (storage calls block).
    pub async fn with_storage<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Storage) -> T + Send + 'static,
    ) -> T {
        let data = self.clone();
        tokio::task::spawn_blocking(move || match &data.database_url {
            Some(url) => work(&PgStore::connect(url).unwrap()),
            None => work(&PoloStore::open(data.path()).unwrap()),
        })
        .await
        .unwrap()
    }

    /// The PostgreSQL database's URL, on that backend.
    pub fn database_url(&self) -> Option<&str> {
        self.database_url.as_deref()
    }
}

impl From<Arc<TempDir>> for AppData {
    fn from(dir: Arc<TempDir>) -> AppData {
        AppData {
            dir,
            database_url: None,
        }
    }
}

/// Turns each `async fn name(backend: Backend)` into two tests, `name::polodb` and
/// `name::postgres`.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                use crate::helpers::Backend;

                #[tokio::test]
                async fn polodb() {
                    super::$test(Backend::PoloDb).await
                }

                #[tokio::test]
                async fn postgres() {
                    super::$test(Backend::Postgres).await
                }
            }
        )*
    };
}

pub(crate) use on_both_backends;

/// A running server and the data it owns.
pub struct TestApp {
    pub addr: SocketAddr,
    pub data: AppData,
    /// The one-time admin setup link the server printed at start, if it made one.
    pub admin_setup_link: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_on(Backend::PoloDb).await
}

pub async fn spawn_app_on(backend: Backend) -> TestApp {
    spawn_app_in(AppData::new(backend), |_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_in(AppData::new(Backend::PoloDb), configure).await
}

/// Starts a server on `data`, e.g. again after a restart.
pub async fn spawn_app_in(
    data: impl Into<AppData>,
    configure: impl FnOnce(&mut Config),
) -> TestApp {
    init_logs();
    let data = data.into();
    let mut config = Config::for_tests(data.path());
    config.database_url = data.database_url.clone();
    configure(&mut config);
    let app = Application::build(config).await.expect("app builds");
    let addr = app.address();
    let admin_setup_link = app.admin_setup_link().map(str::to_owned);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        data,
        admin_setup_link,
        stop: Some(stop),
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client with its own cookie jar that does not follow redirects.
    pub fn visitor(&self) -> Visitor {
        self.visitor_from(None)
    }

    /// A visitor whose connections come from `source` (any of 127.0.0.0/8 reaches the
    /// server), to be another client address.
    pub fn visitor_from(&self, source: impl Into<Option<IpAddr>>) -> Visitor {
        Visitor::of(&self.origin(), source.into())
    }

    /// A visitor holding `cookie` (`name=value`, from [`Visitor::cookie`]): a browser that
    /// was logged in before a restart or a move.
    pub fn visitor_with(&self, cookie: &str) -> Visitor {
        let visitor = self.visitor();
        let url = self.url("/").parse().unwrap();
        visitor.jar.add_cookie_str(cookie, &url);
        visitor
    }

    /// A visitor logged in as `nickname`.
    pub async fn login(&self, nickname: &str) -> Visitor {
        let visitor = self.visitor();
        let response = visitor.post_form("/login", &[("nickname", nickname)]).await;
        assert_eq!(response.status(), 303, "login as {nickname}");
        visitor
    }

    /// Stops the server gracefully and waits until the database is closed.
    pub async fn stop(mut self) -> AppData {
        self.shutdown().await;
        self.data.clone()
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(20), server)
                .await
                .expect("server stops in time")
                .expect("server task")
                .expect("server ran cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Fetches again until `done` holds for what `fetch` returns, or `WAIT` has passed, and
/// returns the last: for what shows up a moment later, such as search results.
pub async fn eventually<T, Fetched>(
    mut fetch: impl FnMut() -> Fetched,
    done: impl Fn(&T) -> bool,
) -> T
where
    Fetched: Future<Output = T>,
{
    let start = tokio::time::Instant::now();
    loop {
        let fetched = fetch().await;
        if done(&fetched) || start.elapsed() > WAIT {
            return fetched;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The `--admin-token` of tests that use one: long enough that the chat accepts it.
pub const ADMIN_TOKEN: &str = "a-long-random-admin-token";

/// `app`'s own `/metrics` page, asked directly with [`ADMIN_TOKEN`].
pub async fn scrape(app: &TestApp) -> String {
    scrape_at(&app.url("/metrics")).await
}

/// The metrics page at `url`, asked with the tests' admin token.
pub async fn scrape_at(url: &str) -> String {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(ADMIN_TOKEN)
        .timeout(WAIT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The value of an unlabelled sample in a Prometheus text page.
pub fn sample(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{page}"))
        .trim()
        .parse()
        .unwrap()
}

pub struct Visitor {
    pub http: reqwest::Client,
    jar: Arc<Jar>,
    base: String,
    origin: String,
}

impl Visitor {
    /// A visitor of the chat at `origin` (`http://host:port`, a proxy's say) whose
    /// connections come from `source`.
    pub fn of(origin: &str, source: Option<IpAddr>) -> Visitor {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(Policy::none())
            .timeout(WAIT)
            .local_address(source)
            .build()
            .unwrap();
        Visitor {
            http,
            jar,
            base: origin.to_owned(),
            origin: origin.to_owned(),
        }
    }

    pub fn cookie(&self) -> Option<String> {
        let url = self.base.parse().unwrap();
        self.jar
            .cookies(&url)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{}", self.base, path))
            .send()
            .await
            .unwrap()
    }

    pub async fn get_text(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.unwrap()
    }

    /// A form POST as a browser on this site sends it (with `Origin`).
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{}", self.base, path))
            .header("Origin", &self.origin)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Starts (or writes into) the direct conversation with `nickname` by sending `body`
    /// from `/dm/{nickname}`; returns the conversation's slug.
    pub async fn message_directly(&self, nickname: &str, body: &str) -> String {
        let sent = self
            .post_form(&format!("/dm/{nickname}"), &[("body", body)])
            .await;
        assert_eq!(sent.status(), 303, "POST /dm/{nickname}");
        let location = sent.headers()["location"].to_str().unwrap();
        location.strip_prefix("/rooms/").unwrap().to_owned()
    }

    /// A request as htmx sends it from the page: `HX-Request`, `Origin`, form-encoded values.
    pub async fn htmx(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .request(method, format!("{}{}", self.base, path))
            .header("Origin", &self.origin)
            .header("HX-Request", "true")
            .form(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn ws(&self, room: &str) -> Ws {
        self.try_ws(room, Some(&self.origin.clone()))
            .await
            .expect("socket opens")
    }

    /// Opens a room socket; on refusal returns the HTTP status.
    pub async fn try_ws(&self, room: &str, origin: Option<&str>) -> Result<Ws, u16> {
        let url = format!("{}/rooms/{room}/ws", self.base.replace("http://", "ws://"));
        let mut request = url.into_client_request().unwrap();
        if let Some(cookie) = self.cookie() {
            request
                .headers_mut()
                .insert("Cookie", HeaderValue::from_str(&cookie).unwrap());
        }
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("Origin", HeaderValue::from_str(origin).unwrap());
        }
        match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("connect in time")
        {
            Ok((stream, _)) => Ok(Ws { stream }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(e) => panic!("unexpected socket error: {e}"),
        }
    }
}

pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What a socket read ended with.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    Text(String),
    Closed(Option<u16>),
}

impl Ws {
    pub async fn send_json(&mut self, value: serde_json::Value) {
        self.stream
            .send(Message::text(value.to_string()))
            .await
            .unwrap();
    }

    /// Sends a message as htmx-ext-ws does: form values plus `HEADERS`.
    pub async fn say(&mut self, body: &str) {
        self.send_json(serde_json::json!({
            "body": body,
            "HEADERS": {"HX-Request": "true", "HX-Trigger": "composer"},
        }))
        .await;
    }

    pub async fn resume(&mut self, after: u64) {
        self.send_json(serde_json::json!({ "resume_after": after }))
            .await;
    }

    /// The next text frame or close, skipping pings; panics after `WAIT`.
    pub async fn next(&mut self) -> Received {
        self.next_within(WAIT).await.expect("a frame in time")
    }

    pub async fn next_within(&mut self, wait: Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()?;
            match frame {
                Some(Ok(Message::Text(text))) => return Some(Received::Text(text.to_string())),
                Some(Ok(Message::Close(frame))) => {
                    return Some(Received::Closed(frame.map(|f| f.code.into())));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Some(Received::Closed(None)),
            }
        }
    }

    /// The next text frame, whatever it is.
    pub async fn next_raw(&mut self) -> String {
        match self.next().await {
            Received::Text(text) => text,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next text frame that isn't presence, typing, the sidebar, or only system lines
    /// ("alice joined"): the frames most tests are about.
    pub async fn next_text(&mut self) -> String {
        loop {
            let frame = self.next_raw().await;
            if !is_ambient(&frame) {
                return frame;
            }
        }
    }

    /// Skips frames until one contains `needle`.
    pub async fn next_containing(&mut self, needle: &str) -> String {
        loop {
            let frame = self.next_raw().await;
            if frame.contains(needle) {
                return frame;
            }
        }
    }

    /// Reads until the close frame; returns its code.
    pub async fn closed_with(&mut self) -> Option<u16> {
        loop {
            if let Received::Closed(code) = self.next().await {
                return code;
            }
        }
    }

    /// Asserts no frame but ambient ones (presence, typing, sidebar, system lines) arrives
    /// for a while.
    pub async fn expect_silence(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        while let Some(Received::Text(text)) = self
            .next_within(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            if !is_ambient(&text) {
                panic!("expected no frame, got {text}");
            }
        }
    }
}

/// Frames about who is here, who types, the room list, the room revision, or only system
/// lines.
pub fn is_ambient(frame: &str) -> bool {
    frame.starts_with(r#"<section id="presence""#)
        || frame.starts_with(r#"<div id="typing""#)
        || frame.starts_with(r#"<nav id="room-list""#)
        || frame.starts_with(r#"<span id="room-revision""#)
        || (frame.starts_with(r#"<div id="messages" hx-swap-oob="beforeend">"#)
            && !frame.contains(r#"data-kind="user""#))
}

/// Ids of the people's messages (not system lines) in an HTML text, in document order.
pub fn user_message_ids(html: &str) -> Vec<u64> {
    html.split("<article ")
        .skip(1)
        .filter(|article| article.contains(r#"data-kind="user""#))
        .flat_map(|article| message_ids(&format!("<article {article}")))
        .collect()
}

/// Message ids (`msg-N`) in an HTML text, in document order.
pub fn message_ids(html: &str) -> Vec<u64> {
    html.match_indices("id=\"msg-")
        .filter_map(|(at, _)| {
            let rest = &html[at + 8..];
            rest[..rest.find('"')?].parse().ok()
        })
        .collect()
}

/// The viewer's login handle, from a page's `<body data-viewer-login>`.
pub fn viewer_login(page: &str) -> String {
    let value = &page[page
        .find(r#"data-viewer-login=""#)
        .expect("data-viewer-login")
        + 19..];
    value[..value.find('"').unwrap()].to_owned()
}

/// The sidebar link of `slug` in a page (the whole `<a>…</a>`), if the sidebar lists it.
pub fn sidebar_link<'a>(page: &'a str, slug: &str) -> Option<&'a str> {
    let at = page.find(&format!(r#"data-slug="{slug}""#))?;
    let start = page[..at].rfind("<a ").unwrap();
    let end = at + page[at..].find("</a>").unwrap();
    Some(&page[start..end])
}

/// The unread count the sidebar shows for `slug`; `None` for no count (or no link).
pub fn sidebar_badge(page: &str, slug: &str) -> Option<u64> {
    let link = sidebar_link(page, slug)?;
    let at = link.find(r#"<span class="badge""#).unwrap();
    let badge = &link[at..];
    let text = &badge[badge.find('>').unwrap() + 1..badge.find("</span>").unwrap()];
    text.parse().ok()
}

/// Every file under `dir`, by its path inside it.
pub fn files_under(dir: &str) -> std::collections::BTreeSet<String> {
    let mut files = std::collections::BTreeSet::new();
    let mut folders = vec![std::path::PathBuf::from(dir)];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let inside = path.strip_prefix(dir).unwrap().to_str().unwrap();
                files.insert(inside.to_owned());
            }
        }
    }
    files
}
