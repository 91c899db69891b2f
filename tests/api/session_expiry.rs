//! A session that expires unused ends like a logout: its open sockets close with 1008, its
//! cookie logs nobody in, and its nickname is free. Sessions that are still live keep theirs.

use std::time::Duration;

use crate::helpers::spawn_app_with;

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
