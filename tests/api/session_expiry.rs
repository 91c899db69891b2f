//! A session that expires unused ends like a logout: its open sockets close with 1008, its
//! cookie logs nobody in, and its nickname is free. Sessions that are still live keep theirs.

use std::time::Duration;

use crate::helpers::{AppData, Backend, Visitor, on_both_backends, spawn_app_in, spawn_app_with};

/// Session records keep whole seconds, so a session ends up to a second early.
const LIFETIME: Duration = Duration::from_secs(6);

#[tokio::test]
async fn an_expired_sessions_sockets_close_with_1008_and_its_nickname_is_free() {
    let app = spawn_app_with(|config| {
        config.session_lifetime_override = Some(LIFETIME);
        config.expiry_check_interval = Duration::from_millis(100);
    })
    .await;
    let alice = app.login("alice").await;
    let mut first = alice.ws("lobby").await;
    let mut second = alice.ws("lobby").await;
    // Carol logs in halfway through alice's session, so hers is live when alice's ends.
    tokio::time::sleep(LIFETIME / 2).await;
    let carol = app.login("carol").await;
    let mut carols = carol.ws("lobby").await;

    assert_eq!(first.closed_with().await, Some(1008));
    assert_eq!(second.closed_with().await, Some(1008));

    carols.say("carol is still connected").await;
    assert!(
        carols
            .next_text()
            .await
            .contains("carol is still connected")
    );
    assert_eq!(
        alice.try_ws("lobby", Some(&app.origin())).await.err(),
        Some(401),
        "the expired cookie opens no socket"
    );
    app.login("alice").await;
}

on_both_backends!(expired_sessions_are_deleted_from_the_database_and_live_ones_kept);

async fn expired_sessions_are_deleted_from_the_database_and_live_ones_kept(backend: Backend) {
    let app = spawn_app_in(AppData::new(backend), |config| {
        config.session_lifetime_override = Some(LIFETIME);
        config.session_sweep_interval = Duration::from_millis(200);
    })
    .await;
    let alices = session_id(&app.login("alice").await);
    tokio::time::sleep(LIFETIME / 2).await;
    let carols = session_id(&app.login("carol").await);
    // Alice's session is past its end (plus the second records may lose), carol's is not.
    tokio::time::sleep(LIFETIME / 2 + Duration::from_millis(1500)).await;

    let (alices, carols) = app
        .stop()
        .await
        .with_storage(move |store| {
            (
                store.session(&alices).unwrap(),
                store.session(&carols).unwrap(),
            )
        })
        .await;
    assert_eq!(alices, None, "alice's expired session is gone");
    assert!(carols.is_some(), "carol's live one stays");
}

/// The id in a visitor's session cookie, read while the cookie is live.
fn session_id(visitor: &Visitor) -> String {
    let cookie = visitor.cookie().expect("a session cookie");
    cookie
        .split(';')
        .find_map(|pair| pair.trim().strip_prefix("chat_session="))
        .expect("the session cookie")
        .to_owned()
}
