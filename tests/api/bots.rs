//! Bots and the API: tokens made on the settings page (shown once), posting and reading with
//! `Authorization: Bearer`, the rate limit, webhooks on @mention (against a real HTTP server
//! started here), and bot names that no person can take.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::helpers::{
    ADMIN_TOKEN, Backend, TestApp, Visitor, WAIT, on_both_backends, spawn_app, spawn_app_in,
    spawn_app_on, spawn_app_with,
};

/// Makes a bot on the settings page; returns its token, read from the one page that shows it.
pub(crate) async fn make_bot(person: &Visitor, name: &str) -> String {
    let response = person.post_form("/settings/bots", &[("name", name)]).await;
    assert_eq!(response.status(), 201, "making bot {name}");
    assert_eq!(response.headers()["cache-control"], "no-store");
    token_in(&response.text().await.unwrap()).expect("the page shows the token")
}

fn token_in(page: &str) -> Option<String> {
    let at = page.find(r#"data-token=""#)? + r#"data-token=""#.len();
    Some(page[at..at + page[at..].find('"')?].to_owned())
}

/// The id of `name`'s bot on its owner's settings page.
pub(crate) async fn bot_id(owner: &Visitor, name: &str) -> String {
    bot_id_in(&owner.get_text("/settings/bots").await, name)
}

/// An API client, as curl would be: no cookies, no `Origin`.
pub(crate) struct Api {
    http: reqwest::Client,
    app_url: String,
    token: String,
}

impl Api {
    pub(crate) fn new(app: &TestApp, token: &str) -> Api {
        Api {
            http: reqwest::Client::builder().timeout(WAIT).build().unwrap(),
            app_url: app.url(""),
            token: token.to_owned(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.app_url))
            .bearer_auth(&self.token)
    }

    pub(crate) async fn post_json(&self, room: &str, body: Value) -> reqwest::Response {
        self.request(Method::POST, &format!("/api/rooms/{room}/messages"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn say(&self, room: &str, text: &str) -> u64 {
        let response = self.post_json(room, json!({ "body": text })).await;
        assert_eq!(response.status(), 201, "posting {text:?}");
        response.json::<Value>().await.unwrap()["id"]
            .as_u64()
            .unwrap()
    }

    pub(crate) async fn read(&self, room: &str, query: &str) -> reqwest::Response {
        self.request(Method::GET, &format!("/api/rooms/{room}/messages{query}"))
            .send()
            .await
            .unwrap()
    }
}

/// Asserts a JSON error answer with this status and code.
async fn assert_error(response: reqwest::Response, status: u16, code: &str) {
    assert_eq!(response.status(), status);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"], code, "{error}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
}

on_both_backends!(
    a_token_is_shown_once_and_the_bot_posts_live_and_for_good,
    a_bot_retrying_with_the_same_client_id_is_stored_once,
);

async fn a_token_is_shown_once_and_the_bot_posts_live_and_for_good(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let alice = app.login("alice").await;
    let token = make_bot(&alice, "helper").await;
    assert!(token.starts_with("chatbot_"), "{token}");
    let settings = alice.get_text("/settings/bots").await;
    assert!(settings.contains(r#"<span class="bot-name">helper</span>"#));
    assert!(!settings.contains(&token), "the token is never shown again");
    assert!(
        alice
            .get_text("/")
            .await
            .contains(r#"href="/settings/bots""#),
        "the sidebar links to the settings page"
    );

    let mut ws = alice.ws("lobby").await;
    ws.resume(0).await;
    let api = Api::new(&app, &token);
    let posted = api
        .post_json("lobby", json!({ "body": "hello from **a bot**" }))
        .await;
    assert_eq!(posted.status(), 201);
    let location = posted.headers()["location"].to_str().unwrap().to_owned();
    let posted: Value = posted.json().await.unwrap();
    let id = posted["id"].as_u64().unwrap();
    assert_eq!(location, format!("/rooms/lobby/messages/{id}"));
    assert_eq!(
        posted["permalink"],
        format!("{}/rooms/lobby/messages/{id}#msg-{id}", app.origin())
    );

    let frame = ws.next_containing("from <strong>a bot</strong>").await;
    assert!(frame.contains(&format!(r#"id="msg-{id}""#)), "{frame}");
    assert!(frame.contains(r#"data-author="helper""#), "{frame}");
    assert!(frame.contains(r#"data-bot="""#), "{frame}");
    assert!(frame.contains(r#"<span class="msg-badge""#), "{frame}");

    let plain = api
        .request(Method::POST, "/api/rooms/lobby/messages")
        .header("Content-Type", "text/plain; charset=utf-8")
        .body("plain text works too")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 201);
    ws.next_containing("plain text works too").await;

    let data_dir = app.stop().await;
    let app = spawn_app_in(data_dir, |_| {}).await;
    let bob = app.login("bob").await;
    let page = bob.get_text("/rooms/lobby").await;
    let article = &page[page.find(&format!(r#"id="msg-{id}""#)).unwrap()..];
    let article = &article[..article.find("</article>").unwrap()];
    assert!(article.contains("from <strong>a bot</strong>"), "{article}");
    assert!(
        article.contains(r#"class="msg-badge""#),
        "still a bot after a restart"
    );
    assert!(page.contains("plain text works too"));
    let api = Api::new(&app, &token);
    api.say("lobby", "and the token still works").await;
}

#[tokio::test]
async fn missing_wrong_and_revoked_tokens_get_401() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let token = make_bot(&alice, "helper").await;
    let api = Api::new(&app, &token);
    api.say("lobby", "works").await;

    let anonymous = reqwest::Client::new()
        .post(app.url("/api/rooms/lobby/messages"))
        .json(&json!({ "body": "who am I" }))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    assert_error(anonymous, 401, "unauthorized").await;
    // The right bot id with a wrong secret, and a token of the wrong shape.
    let forged = format!("{}0", &token[..token.len() - 1]);
    let forged = if forged == token {
        format!("{}1", &token[..token.len() - 1])
    } else {
        forged
    };
    for bad in [forged.as_str(), "chatbot_", "nonsense"] {
        let response = Api::new(&app, bad)
            .post_json("lobby", json!({"body": "x"}))
            .await;
        assert_error(response, 401, "unauthorized").await;
        assert_error(
            Api::new(&app, bad).read("lobby", "").await,
            401,
            "unauthorized",
        )
        .await;
    }
    // A session cookie is no API credential.
    let with_cookie = alice
        .http
        .get(app.url("/api/rooms/lobby/messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status(), 401);

    let id = bot_id(&alice, "helper").await;
    let revoked = alice
        .post_form(&format!("/settings/bots/{id}/revoke"), &[])
        .await;
    assert_eq!(revoked.status(), 303);
    assert!(
        alice
            .get_text("/settings/bots")
            .await
            .contains("token revoked")
    );
    assert_error(
        api.post_json("lobby", json!({"body": "x"})).await,
        401,
        "unauthorized",
    )
    .await;
    assert_error(api.read("lobby", "").await, 401, "unauthorized").await;

    // Someone else can't manage alice's bot.
    let mallory = app.login("mallory").await;
    let stolen = mallory
        .post_form(&format!("/settings/bots/{id}/token"), &[])
        .await;
    assert_eq!(stolen.status(), 404);

    let renewed = alice
        .post_form(&format!("/settings/bots/{id}/token"), &[])
        .await;
    assert_eq!(renewed.status(), 200);
    let new_token = token_in(&renewed.text().await.unwrap()).unwrap();
    assert_ne!(new_token, token);
    Api::new(&app, &new_token).say("lobby", "back again").await;
    assert_error(api.read("lobby", "").await, 401, "unauthorized").await;
}

#[tokio::test]
async fn unknown_rooms_and_other_peoples_direct_conversations_are_404() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let _bob = app.login("bob").await;
    let dm = alice.message_directly("bob", "secret").await;
    let api = Api::new(&app, &make_bot(&alice, "helper").await);

    for room in ["nowhere", &dm, &dm.replace('~', "%7E")] {
        let post = api.post_json(room, json!({ "body": "let me in" })).await;
        assert_error(post, 404, "not_found").await;
        assert_error(api.read(room, "?after=0").await, 404, "not_found").await;
    }
    let history = alice.get_text(&format!("/rooms/{dm}")).await;
    assert!(history.contains("secret") && !history.contains("let me in"));
}

#[tokio::test]
async fn after_returns_exactly_the_newer_messages() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    alice.post_form("/rooms", &[("name", "reading")]).await;
    let api = Api::new(&app, &make_bot(&alice, "reader").await);
    let mut ids = Vec::new();
    for n in 1..=5 {
        ids.push(api.say("reading", &format!("message {n}")).await);
    }
    alice
        .post_form("/rooms/reading/messages", &[("body", "from a person")])
        .await;
    let person_id = ids[4] + 1;
    let deleted = alice
        .htmx(
            Method::DELETE,
            &format!("/rooms/reading/messages/{person_id}"),
            &[],
        )
        .await;
    assert_eq!(deleted.status(), 200);

    let page: Value = api
        .read("reading", &format!("?after={}", ids[1]))
        .await
        .json()
        .await
        .unwrap();
    let got: Vec<u64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(got, vec![ids[2], ids[3], ids[4], person_id]);
    assert_eq!(page["last_id"], person_id);
    let first = &page["messages"][0];
    assert_eq!(first["author"], "reader");
    assert_eq!(first["bot"], true);
    assert_eq!(first["body"], "message 3");
    assert_eq!(first["kind"], "user");
    assert_eq!(first["edited"], false);
    assert_eq!(first["deleted"], false);
    assert!(
        time::OffsetDateTime::parse(
            first["created_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );
    let last = &page["messages"][3];
    assert_eq!(last["author"], "alice");
    assert_ne!(
        last["login"], first["login"],
        "a person's login is not the bot's"
    );
    assert_eq!(last["login"].as_str().unwrap().len(), 20);
    assert_eq!(last["bot"], false);
    assert_eq!(last["deleted"], true);
    assert_eq!(last["body"], "");

    let limited: Value = api
        .read("reading", "?after=0&limit=2")
        .await
        .json()
        .await
        .unwrap();
    let got: Vec<u64> = limited["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        got,
        vec![1, 2],
        "system line 1 (room created), then the first post"
    );
    assert_eq!(limited["messages"][0]["kind"], "system");

    let nothing: Value = api
        .read("reading", &format!("?after={person_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(nothing["messages"], json!([]));
    assert_error(api.read("reading", "?after=soon").await, 400, "bad_request").await;
}

#[tokio::test]
async fn bad_bodies_get_json_errors() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let api = Api::new(&app, &make_bot(&alice, "helper").await);
    let post = |content_type: &'static str, body: Vec<u8>| {
        api.request(Method::POST, "/api/rooms/lobby/messages")
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };

    assert_error(
        api.post_json("lobby", json!({ "body": "  " })).await,
        422,
        "empty",
    )
    .await;
    let long = "x".repeat(4001);
    assert_error(
        api.post_json("lobby", json!({ "body": long })).await,
        413,
        "too_long",
    )
    .await;
    let huge = vec![b'x'; 200 * 1024];
    assert_error(post("text/plain", huge).await.unwrap(), 413, "too_long").await;
    assert_error(
        post("application/json", b"{\"body\": ".to_vec())
            .await
            .unwrap(),
        400,
        "bad_request",
    )
    .await;
    assert_error(
        post("application/json", b"{\"text\": \"hi\"}".to_vec())
            .await
            .unwrap(),
        422,
        "bad_json",
    )
    .await;
    assert_error(
        post("text/plain", vec![0xff, 0xfe]).await.unwrap(),
        400,
        "bad_request",
    )
    .await;
    assert_error(
        post("application/x-www-form-urlencoded", b"body=hi".to_vec())
            .await
            .unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    let page: Value = api.read("lobby", "").await.json().await.unwrap();
    assert_eq!(page["messages"], json!([]), "nothing refused was stored");
}

async fn a_bot_retrying_with_the_same_client_id_is_stored_once(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let alice = app.login("alice").await;
    let api = Api::new(&app, &make_bot(&alice, "helper").await);
    let send = json!({ "body": "once", "client_id": "retry-1" });
    let first = api.post_json("lobby", send.clone()).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = api.post_json("lobby", send).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    let page: Value = api.read("lobby", "").await.json().await.unwrap();
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_rate_limit_applies_to_bots() {
    let app = spawn_app_with(|config| {
        config.rate_limit = 0.5;
        config.rate_burst = 2.0;
    })
    .await;
    let alice = app.login("alice").await;
    let api = Api::new(&app, &make_bot(&alice, "chatty").await);
    api.say("lobby", "one").await;
    api.say("lobby", "two").await;
    let limited = api.post_json("lobby", json!({ "body": "three" })).await;
    assert_eq!(limited.headers()["retry-after"], "2");
    assert_error(limited, 429, "rate_limited").await;
    // A person's bucket is their own.
    let person = alice
        .post_form("/rooms/lobby/messages", &[("body", "still me")])
        .await;
    assert_eq!(person.status(), 303);
}

/// One request the webhook receiver got, and what it answered.
pub(crate) struct Call {
    pub(crate) status: u16,
    signature: String,
    body: Vec<u8>,
    pub(crate) payload: Value,
}

/// A webhook receiver on port 0: answers the first `failures` requests with 500 after `stall`,
/// then 200 at once, and hands every request to the test as it arrives.
pub(crate) async fn webhook_receiver(
    failures: usize,
    stall: Duration,
) -> (SocketAddr, mpsc::UnboundedReceiver<Call>) {
    slow_webhook_receiver(failures, stall, Duration::ZERO).await
}

/// A [`webhook_receiver`] that takes `every_answer` to answer each 200 too.
pub(crate) async fn slow_webhook_receiver(
    failures: usize,
    stall: Duration,
    every_answer: Duration,
) -> (SocketAddr, mpsc::UnboundedReceiver<Call>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let seen = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                let seen = seen.clone();
                async move {
                    let failing = seen.fetch_add(1, Ordering::SeqCst) < failures;
                    let status = if failing { 500 } else { 200 };
                    let _ = tx.send(Call {
                        status,
                        signature: headers
                            .get("x-chat-signature")
                            .map(|v| v.to_str().unwrap().to_owned())
                            .unwrap_or_default(),
                        payload: serde_json::from_slice(&body).unwrap(),
                        body: body.to_vec(),
                    });
                    if failing {
                        tokio::time::sleep(stall).await;
                    }
                    tokio::time::sleep(every_answer).await;
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, rx)
}

/// What a receiver computes to check a delivery: the HMAC-SHA256 of the body, keyed with the
/// hex SHA-256 of the bot's token.
fn signature(token: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    use sha2::Digest;
    let key: String = sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Asserts that no webhook call arrives within `wait`; `why` says what it would mean.
pub(crate) async fn no_call_within(
    calls: &mut mpsc::UnboundedReceiver<Call>,
    wait: Duration,
    why: impl std::fmt::Display,
) {
    let call = tokio::time::timeout(wait, calls.recv()).await;
    assert!(call.is_err(), "{why}");
}

pub(crate) async fn next_call(calls: &mut mpsc::UnboundedReceiver<Call>) -> Call {
    tokio::time::timeout(WAIT, calls.recv())
        .await
        .expect("a webhook call in time")
        .unwrap()
}

#[tokio::test]
async fn a_mention_reaches_the_bots_webhook_and_is_retried_after_a_500() {
    // The receiver is on loopback, as a bot next to the server would be.
    let app = spawn_app_with(|config| config.allow_private_webhooks = true).await;
    let alice = app.login("alice").await;
    let token = make_bot(&alice, "helper").await;
    let api = Api::new(&app, &token);
    let (receiver, mut calls) = webhook_receiver(1, Duration::ZERO).await;
    let url = format!("http://{receiver}/hook");

    let set = api
        .request(Method::PUT, "/api/webhook")
        .json(&json!({ "url": url }))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    assert_eq!(set.json::<Value>().await.unwrap()["url"], url);
    let shown = alice.get_text("/settings/bots").await;
    assert!(
        shown.contains(&format!(r#"value="{url}""#)),
        "the page shows it"
    );

    // Not mentioned, or mentioning itself: nothing is sent.
    alice
        .post_form(
            "/rooms/lobby/messages",
            &[("body", "helper is not mentioned")],
        )
        .await;
    api.say("lobby", "I am @helper").await;
    alice
        .post_form(
            "/rooms/lobby/messages",
            &[("body", "@Helper what time is it?")],
        )
        .await;

    let first = next_call(&mut calls).await;
    assert_eq!(first.status, 500);
    let second = next_call(&mut calls).await;
    assert_eq!(second.status, 200);
    assert_eq!(
        first.body, second.body,
        "the retry carries the same payload"
    );
    assert_eq!(second.signature, signature(&token, &second.body));
    let retried = second.payload;
    assert_eq!(retried["event"], "mention");
    assert_eq!(retried["bot"], "helper");
    assert_eq!(retried["room"], "lobby");
    assert_eq!(retried["message"]["author"], "alice");
    assert_eq!(retried["message"]["author_is_bot"], false);
    assert_eq!(retried["message"]["body"], "@Helper what time is it?");
    let id = retried["message"]["id"].as_u64().unwrap();
    assert_eq!(id, 3);
    assert_eq!(
        retried["permalink"],
        format!("{}/rooms/lobby/messages/{id}#msg-{id}", app.origin())
    );
    no_call_within(
        &mut calls,
        Duration::from_millis(500),
        "delivered once it succeeded",
    )
    .await;

    // A direct conversation's words don't go to a bot that isn't in it.
    let _bob = app.login("bob").await;
    alice.message_directly("bob", "@helper psst").await;
    no_call_within(
        &mut calls,
        Duration::from_millis(500),
        "nothing from a conversation the bot can't read",
    )
    .await;

    // The settings form removes it; then mentions go nowhere.
    let bot = bot_id(&alice, "helper").await;
    let cleared = alice
        .post_form(&format!("/settings/bots/{bot}/webhook"), &[("url", "")])
        .await;
    assert_eq!(cleared.status(), 303);
    alice
        .post_form(
            "/rooms/lobby/messages",
            &[("body", "@helper are you there?")],
        )
        .await;
    no_call_within(
        &mut calls,
        Duration::from_millis(500),
        "no webhook, no call",
    )
    .await;
    let refused = alice
        .post_form(
            &format!("/settings/bots/{bot}/webhook"),
            &[("url", "javascript:alert(1)")],
        )
        .await;
    assert_eq!(refused.status(), 422);
}

#[tokio::test]
async fn a_bot_name_cannot_be_taken_as_a_nickname_nor_the_other_way_round() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    make_bot(&alice, "Helper").await;

    // Case, width and look-alikes count as the same name, as for people.
    for taken in ["helper", "ＨＥＬＰＥＲ", "hеlper"] {
        let refused = app
            .visitor()
            .post_form("/login", &[("nickname", taken)])
            .await;
        assert_eq!(refused.status(), 422, "{taken}");
        assert!(
            refused
                .text()
                .await
                .unwrap()
                .contains("is the name of a bot")
        );
    }
    let again = alice
        .post_form("/settings/bots", &[("name", "HELPER")])
        .await;
    assert_eq!(again.status(), 422, "two bots can't share a name");

    let _bob = app.login("bob").await;
    for taken in ["bob", "Bob", "alice"] {
        let refused = alice.post_form("/settings/bots", &[("name", taken)]).await;
        assert_eq!(refused.status(), 422, "{taken} is logged in");
        assert!(refused.text().await.unwrap().contains("is taken"));
    }
    let bad = alice
        .post_form("/settings/bots", &[("name", "two words")])
        .await;
    assert_eq!(bad.status(), 422);
    assert!(
        !alice
            .get_text("/settings/bots")
            .await
            .contains("bot-name\">bob<")
    );
}

#[tokio::test]
async fn the_settings_page_needs_a_login_and_the_sites_own_forms() {
    let app = spawn_app().await;
    let stranger = app.visitor();
    let response = stranger.get("/settings/bots").await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/login?next=/settings/bots");

    let alice = app.login("alice").await;
    let cross_site = alice
        .http
        .post(app.url("/settings/bots"))
        .header("Origin", "http://evil.example")
        .form(&[("name", "sneaky")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    assert!(!alice.get_text("/settings/bots").await.contains("sneaky"));
}

#[tokio::test]
async fn a_webhook_that_hangs_times_out_is_retried_and_holds_up_nothing() {
    let app = spawn_app_with(|config| {
        config.webhook_timeout = 2.0;
        config.allow_private_webhooks = true;
    })
    .await;
    let alice = app.login("alice").await;
    let api = Api::new(&app, &make_bot(&alice, "helper").await);
    let (receiver, mut calls) = webhook_receiver(1, Duration::from_secs(60)).await;
    let set = api
        .request(Method::PUT, "/api/webhook")
        .json(&json!({ "url": format!("http://{receiver}/hook") }))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);

    let mut ws = alice.ws("lobby").await;
    ws.resume(0).await;
    ws.say("@helper are you awake?").await;
    let hanging = next_call(&mut calls).await;
    assert_eq!(hanging.payload["message"]["body"], "@helper are you awake?");

    // While the receiver holds the first delivery, messages flow as ever: well inside the
    // 2 s a delivery may wait, so nothing waited for it.
    let started = tokio::time::Instant::now();
    ws.say("meanwhile").await;
    ws.next_containing("meanwhile").await;
    api.say("lobby", "me too").await;
    ws.next_containing("me too").await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let retried = next_call(&mut calls).await;
    assert_eq!(retried.status, 200);
    assert_eq!(retried.body, hanging.body);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "retried after the 2 s timeout, not after the receiver's minute"
    );
}

#[tokio::test]
async fn without_the_flag_a_loopback_webhook_is_refused_and_never_delivered() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let token = make_bot(&alice, "helper").await;
    let api = Api::new(&app, &token);
    let (receiver, mut calls) = webhook_receiver(0, Duration::ZERO).await;
    let port = receiver.port();
    for url in [
        format!("http://{receiver}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        format!("http://0x7f.1:{port}/hook"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/hook".to_owned(),
    ] {
        let set = api
            .request(Method::PUT, "/api/webhook")
            .json(&json!({ "url": url }))
            .send()
            .await
            .unwrap();
        assert_error(set, 422, "private_address").await;
    }
    let bot = bot_id(&alice, "helper").await;
    let refused = alice
        .post_form(
            &format!("/settings/bots/{bot}/webhook"),
            &[("url", &format!("http://localhost:{port}/hook"))],
        )
        .await;
    assert_eq!(refused.status(), 422);
    let page = refused.text().await.unwrap();
    assert!(page.contains("--allow-private-webhooks"), "{page}");
    let settings = alice.get_text("/settings/bots").await;
    assert!(
        !settings.contains(&format!(":{port}/hook")),
        "nothing was set"
    );

    // Set while the operator allowed it: after a restart without the flag, never delivered,
    // by name or by address.
    let mut dir = app.stop().await;
    for (i, url) in [
        format!("http://localhost:{port}/hook"),
        format!("http://{receiver}/hook"),
    ]
    .iter()
    .enumerate()
    {
        let allowing = spawn_app_in(dir, |config| config.allow_private_webhooks = true).await;
        let set = Api::new(&allowing, &token)
            .request(Method::PUT, "/api/webhook")
            .json(&json!({ "url": url }))
            .send()
            .await
            .unwrap();
        assert_eq!(set.status(), 200, "allowed by the flag");
        let app = spawn_app_in(allowing.stop().await, |_| {}).await;
        let person = app.login(&format!("carol{i}")).await;
        let posted = person
            .post_form("/rooms/lobby/messages", &[("body", "@helper hello?")])
            .await;
        assert_eq!(posted.status(), 303);
        no_call_within(
            &mut calls,
            Duration::from_millis(1500),
            format!("{url} was called"),
        )
        .await;
        dir = app.stop().await;
    }
}

/// The settings page and a bot's message as a person sees them (screenshots `bots.png` and
/// `bot-message.png` under target/screenshots/).
#[tokio::test]
async fn in_a_browser_a_bot_is_made_from_the_sidebar_and_its_message_shows_a_badge() {
    use crate::browser::{Driver, log_in, save_screenshot, shown};
    use fantoccini::Locator;

    let app = spawn_app().await;
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    log_in(&browser, &app, "alice").await;
    shown(&browser, ".me a[href='/settings/bots']")
        .await
        .click()
        .await
        .unwrap();
    let name = shown(&browser, "#bot-name").await;
    name.send_keys("deploybot").await.unwrap();
    browser
        .find(Locator::Css(
            "form[action='/settings/bots'] button[type=submit]",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let token = shown(&browser, "#fresh-token")
        .await
        .prop("value")
        .await
        .unwrap()
        .expect("the token is in the field");
    assert!(token.starts_with("chatbot_"));
    shown(&browser, ".bot[data-bot-id] .bot-name").await;
    save_screenshot(&browser, "bots").await;

    let api = Api::new(&app, &token);
    api.say("lobby", "Deploy finished **green**").await;
    browser.goto(&app.url("/rooms/lobby")).await.unwrap();
    let badge = shown(
        &browser,
        ".msg[data-author='deploybot'][data-bot] .msg-badge",
    )
    .await;
    assert_eq!(badge.text().await.unwrap().to_lowercase(), "bot");
    save_screenshot(&browser, "bot-message").await;
    browser.close().await.unwrap();
}

/// Points `token`'s bot's webhook at `receiver`.
pub(crate) async fn set_webhook(app: &TestApp, token: &str, receiver: SocketAddr) {
    let set = Api::new(app, token)
        .request(Method::PUT, "/api/webhook")
        .json(&json!({ "url": format!("http://{receiver}/hook") }))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
}

#[tokio::test]
async fn an_owner_deletes_a_bot_its_token_and_webhook_stop_and_its_name_is_free() {
    // The receivers listen on loopback.
    let app = spawn_app_with(|config| config.allow_private_webhooks = true).await;
    let alice = app.login("alice").await;
    let token = make_bot(&alice, "helper").await;
    let (receiver, mut calls) = webhook_receiver(0, Duration::ZERO).await;
    set_webhook(&app, &token, receiver).await;
    let api = Api::new(&app, &token);
    api.say("lobby", "before").await;
    let id = bot_id(&alice, "helper").await;
    assert!(
        alice
            .get_text("/settings/bots")
            .await
            .contains(&format!(r#"action="/settings/bots/{id}/delete""#)),
        "the settings page has the button"
    );

    let mallory = app.login("mallory").await;
    let stolen = mallory
        .post_form(&format!("/settings/bots/{id}/delete"), &[])
        .await;
    assert_eq!(stolen.status(), 404, "only its owner deletes it");
    api.say("lobby", "still here").await;

    let deleted = alice
        .post_form(&format!("/settings/bots/{id}/delete"), &[])
        .await;
    assert_eq!(deleted.status(), 303);
    assert!(
        !alice
            .get_text("/settings/bots")
            .await
            .contains(r#"<span class="bot-name">helper</span>"#)
    );
    assert_error(
        api.post_json("lobby", json!({"body": "x"})).await,
        401,
        "unauthorized",
    )
    .await;
    alice
        .post_form("/rooms/lobby/messages", &[("body", "@helper hello?")])
        .await;
    no_call_within(
        &mut calls,
        Duration::from_millis(500),
        "a deleted bot's webhook gets nothing",
    )
    .await;
    let page = alice.get_text("/rooms/lobby").await;
    assert!(page.contains("still here"), "its messages stay");
    let taken = app
        .visitor()
        .post_form("/login", &[("nickname", "helper")])
        .await;
    assert_eq!(taken.status(), 303, "its name is free again");
}

#[tokio::test]
async fn an_admin_deletes_any_bot_and_removing_a_bots_name_removes_the_bot() {
    let app = spawn_app_with(|config| config.admin_token = Some(ADMIN_TOKEN.into())).await;
    let alice = app.login("alice").await;
    let first = make_bot(&alice, "first").await;
    let second = make_bot(&alice, "second").await;
    Api::new(&app, &second).say("lobby", "hello").await;

    let admin = app.login("carol").await;
    assert_eq!(
        alice.get("/admin/bots").await.status(),
        403,
        "not for anyone else"
    );
    assert_eq!(
        admin
            .post_form("/admin", &[("token", ADMIN_TOKEN)])
            .await
            .status(),
        303
    );
    let list = admin.get_text("/admin/bots").await;
    assert!(list.contains(r#"<span class="bot-name">first</span>"#));
    assert!(list.contains(r#"<span class="bot-name">second</span>"#));
    let id = bot_id_in(&list, "first");
    assert_eq!(
        alice
            .post_form(&format!("/admin/bots/{id}/delete"), &[])
            .await
            .status(),
        403
    );
    let deleted = admin
        .post_form(&format!("/admin/bots/{id}/delete"), &[])
        .await;
    assert_eq!(deleted.status(), 303);
    assert_error(
        Api::new(&app, &first).read("lobby", "").await,
        401,
        "unauthorized",
    )
    .await;
    assert!(!admin.get_text("/admin/bots").await.contains(">first<"));

    // "Remove" on a bot's name in a room's panel deletes the bot, not just the claim.
    let removed = admin
        .post_form("/rooms/lobby/admin/kick", &[("nickname", "second")])
        .await;
    assert_eq!(removed.status(), 303);
    assert_error(
        Api::new(&app, &second)
            .post_json("lobby", json!({"body": "still posting?"}))
            .await,
        401,
        "unauthorized",
    )
    .await;
    let page = admin.get_text("/rooms/lobby").await;
    assert!(
        page.contains("carol (admin) removed the bot second"),
        "{page}"
    );
    assert!(
        !alice
            .get_text("/settings/bots")
            .await
            .contains(r#"class="bot-name""#)
    );
    let taken = app
        .visitor()
        .post_form("/login", &[("nickname", "second")])
        .await;
    assert_eq!(taken.status(), 303, "the name is free");
}

/// The id of `name`'s bot in a page listing bots.
fn bot_id_in(page: &str, name: &str) -> String {
    let name_at = page
        .find(&format!(r#"<span class="bot-name">{name}</span>"#))
        .expect("the bot is listed");
    let li = &page[page[..name_at].rfind("data-bot-id=\"").unwrap() + 13..];
    li[..li.find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn one_address_makes_a_bounded_number_of_bots_an_hour() {
    let app = spawn_app_with(|config| config.bot_rate = 2.0).await;
    let alice = app.login("alice").await;
    make_bot(&alice, "one").await;
    make_bot(&alice, "two").await;
    let refused = alice
        .post_form("/settings/bots", &[("name", "three")])
        .await;
    assert_eq!(refused.status(), 429);
    let page = refused.text().await.unwrap();
    assert!(page.contains("Try again later"), "the page says why");
    assert!(page.contains(r#"value="three""#), "the name is kept");
    let bob = app.login("bob").await;
    let refused = bob.post_form("/settings/bots", &[("name", "bobs")]).await;
    assert_eq!(
        refused.status(),
        429,
        "a new login from the same address too"
    );
}

#[tokio::test]
async fn one_bots_hanging_webhook_does_not_hold_up_anothers() {
    // The receivers listen on loopback.
    let app = spawn_app_with(|config| config.allow_private_webhooks = true).await;
    let alice = app.login("alice").await;
    let slow = make_bot(&alice, "slow").await;
    let quick = make_bot(&alice, "quick").await;
    let (hanging, mut slow_calls) = webhook_receiver(usize::MAX, Duration::from_secs(60)).await;
    let (answering, mut quick_calls) = webhook_receiver(0, Duration::ZERO).await;
    set_webhook(&app, &slow, hanging).await;
    set_webhook(&app, &quick, answering).await;

    let mut ws = alice.ws("lobby").await;
    ws.resume(0).await;
    for n in 0..40 {
        ws.say(&format!("@slow are you there? {n}")).await;
    }
    ws.next_containing("are you there? 39").await;
    next_call(&mut slow_calls).await;

    let asked = tokio::time::Instant::now();
    ws.say("@quick and you?").await;
    let call = next_call(&mut quick_calls).await;
    assert_eq!(call.payload["message"]["body"], "@quick and you?");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "delivered at once, not after slow's timeouts: {:?}",
        asked.elapsed()
    );
}

#[tokio::test]
async fn a_bot_cannot_take_a_name_a_person_just_let_go() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    assert_eq!(bob.post_form("/logout", &[]).await.status(), 303);
    // Bob may come back for it: a bot would keep it from him for good.
    let refused = alice.post_form("/settings/bots", &[("name", "Bob")]).await;
    assert_eq!(refused.status(), 422);
    assert_eq!(
        app.visitor()
            .post_form("/login", &[("nickname", "bob")])
            .await
            .status(),
        303
    );
    // A name nobody has held is free for a bot.
    make_bot(&alice, "robot").await;
}
