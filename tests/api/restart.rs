use std::time::Duration;

use crate::helpers::{
    Backend, Received, message_ids, on_both_backends, spawn_app, spawn_app_in, spawn_app_on,
    user_message_ids,
};

on_both_backends!(history_sessions_and_ids_survive_a_restart);

async fn history_sessions_and_ids_survive_a_restart(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let alice = app.login("alice").await;
    alice.post_form("/rooms", &[("name", "durable")]).await;
    for body in ["one", "two", "three"] {
        let response = alice
            .post_form("/rooms/durable/messages", &[("body", body)])
            .await;
        assert_eq!(response.status(), 303);
    }
    let cookie = alice.cookie().unwrap();
    let data_dir = app.stop().await;

    let app = spawn_app_in(data_dir, |_| {}).await;
    let again = app.visitor();
    let response = again
        .http
        .get(app.url("/rooms/durable"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "still logged in after the restart");
    let page = response.text().await.unwrap();
    let before = user_message_ids(&page);
    assert_eq!(before.len(), 3);
    let newest = *message_ids(&page).last().unwrap();
    for body in ["one", "two", "three"] {
        assert!(page.contains(body));
    }

    // The nickname is still held by the live session.
    let other = app.visitor();
    let refused = other.post_form("/login", &[("nickname", "alice")]).await;
    assert_eq!(refused.status(), 422);

    // Ids continue without reuse.
    let response = again
        .http
        .post(app.url("/rooms/durable/messages"))
        .header("Cookie", &cookie)
        .header("Origin", app.origin())
        .form(&[("body", "four")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let page = again
        .http
        .get(app.url("/rooms/durable"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(user_message_ids(&page), [before, vec![newest + 1]].concat());
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1012_so_pages_reconnect() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let mut ws = alice.ws("lobby").await;
    ws.resume(0).await;
    ws.say("before the restart").await;
    assert!(ws.next_text().await.contains("before the restart"));
    let stopping = tokio::spawn(app.stop());
    let code = loop {
        match ws.next().await {
            Received::Closed(code) => break code,
            Received::Text(_) => {}
        }
    };
    assert_eq!(code, Some(1012));
    tokio::time::timeout(Duration::from_secs(15), stopping)
        .await
        .expect("shutdown finishes within its grace period")
        .unwrap();
}

#[tokio::test]
async fn pages_reconnecting_right_after_a_start_are_not_announced_as_arrivals() {
    let app = crate::helpers::spawn_app_with(|config| config.quiet_after_start = 30.0).await;
    let alice = app.login("alice").await;
    let mut ws = alice.ws("lobby").await;
    ws.resume(0).await;
    ws.say("back again").await;
    ws.next_containing("back again").await;
    let page = alice.get_text("/rooms/lobby").await;
    assert!(page.contains("back again"));
    assert!(!page.contains("alice joined"), "{page}");
}
