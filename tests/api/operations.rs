//! Operations: `/metrics`, behind the admin token.

use std::time::Duration;

use crate::helpers::{TestApp, WAIT, spawn_app_with};

const TOKEN: &str = "a-long-random-admin-token";

async fn spawn_ops_app() -> TestApp {
    spawn_app_with(|config| config.admin_token = Some(TOKEN.into())).await
}

/// `GET path` with an `Authorization` header, if any.
async fn get_as(app: &TestApp, path: &str, bearer: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(app.url(path)).timeout(WAIT);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn scrape(app: &TestApp) -> String {
    let response = get_as(app, "/metrics", Some(TOKEN)).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The value of an unlabelled sample in a Prometheus text page.
fn sample(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{page}"))
        .trim()
        .parse()
        .unwrap()
}

/// Scrapes until the sample satisfies `wanted`; panics after `WAIT`.
async fn wait_for_sample(app: &TestApp, name: &str, wanted: impl Fn(f64) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let value = sample(&scrape(app).await, name);
        if wanted(value) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} stays {value}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn metrics_count_persisted_and_delivered_messages_and_open_sockets() {
    let app = spawn_ops_app().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    alice.post_form("/rooms", &[("name", "metered")]).await;
    let mut alice_ws = alice.ws("metered").await;
    alice_ws.resume(0).await;
    alice_ws.next_containing("alice joined").await;
    let mut bob_ws = bob.ws("metered").await;
    bob_ws.resume(0).await;
    // Published (and counted) before anyone is shown it.
    alice_ws.next_containing("bob joined").await;

    let before = scrape(&app).await;
    assert_eq!(sample(&before, "chat_sockets"), 2.0);
    for body in ["one", "two", "three"] {
        alice_ws.say(body).await;
    }
    for ws in [&mut alice_ws, &mut bob_ws] {
        ws.next_containing("three").await;
    }
    let after = scrape(&app).await;

    let delta = |name| sample(&after, name) - sample(&before, name);
    assert_eq!(delta("chat_messages_persisted_total"), 3.0);
    assert_eq!(
        delta("chat_messages_delivered_total"),
        6.0,
        "3 messages × 2 sockets"
    );
    assert_eq!(delta("chat_store_commit_batch_size_sum"), 3.0);
    assert!(delta("chat_store_commit_seconds_count") >= 1.0);
    // Recorded once the whole batch is out, which may be just after a socket got it.
    let fanouts = sample(&before, "chat_fanout_latency_seconds_count");
    wait_for_sample(&app, "chat_fanout_latency_seconds_count", |n| n > fanouts).await;
    // Rooms: lobby and metered.
    assert_eq!(sample(&after, "chat_rooms"), 2.0);
    assert!(
        after.contains("# TYPE chat_fanout_latency_seconds histogram"),
        "{after}"
    );
    assert!(
        after.contains("# HELP chat_messages_delivered_total"),
        "{after}"
    );

    drop(bob_ws);
    wait_for_sample(&app, "chat_sockets", |n| n == 1.0).await;
}

#[tokio::test]
async fn operations_endpoints_need_the_admin_token() {
    let paths = ["/metrics"];
    let without_token = spawn_app_with(|_| {}).await;
    for path in paths {
        let response = get_as(&without_token, path, Some(TOKEN)).await;
        assert_eq!(response.status(), 404, "{path} without a configured token");
    }

    let app = spawn_ops_app().await;
    for path in paths {
        assert_eq!(get_as(&app, path, None).await.status(), 401, "{path}");
        let wrong = get_as(&app, path, Some("a-long-random-admin-tokeN")).await;
        assert_eq!(wrong.status(), 401, "{path} with a wrong token");
        let shorter = get_as(&app, path, Some("a-long")).await;
        assert_eq!(shorter.status(), 401, "{path} with a prefix of the token");
        assert_eq!(
            get_as(&app, path, Some(TOKEN)).await.status(),
            200,
            "{path}"
        );
    }
}
