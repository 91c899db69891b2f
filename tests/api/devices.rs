//! "Link another device": a one-time link with a QR code logs a second browser in as the same
//! person; it works once, and logging out on one device logs out both.

use crate::helpers::{Visitor, spawn_app};

/// Makes a device link as `visitor`; returns its path.
async fn device_link(visitor: &Visitor) -> String {
    let page = visitor.get_text("/devices/link").await;
    assert!(page.contains("<svg"), "the page shows a QR code");
    let at = page.find("/devices/claim/").expect("a claim link");
    let token: String = page[at + "/devices/claim/".len()..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    assert_eq!(token.len(), 48);
    format!("/devices/claim/{token}")
}

/// Whose page `/` is for this browser, if it is logged in.
async fn who_is(visitor: &Visitor) -> Option<String> {
    let response = visitor.get("/").await;
    if response.status() != 200 {
        return None;
    }
    let page = response.text().await.unwrap();
    let at = page.find(r#"data-viewer=""#)? + r#"data-viewer=""#.len();
    Some(page[at..at + page[at..].find('"')?].to_owned())
}

#[tokio::test]
async fn a_device_link_logs_another_browser_in_once_and_logout_ends_both() {
    let app = spawn_app().await;
    let laptop = app.login("alice").await;
    let link = device_link(&laptop).await;

    let phone = app.visitor();
    let ask = phone.get(&link).await;
    assert_eq!(ask.status(), 200);
    assert!(
        ask.text().await.unwrap().contains("Log in as alice"),
        "it asks first"
    );
    let claimed = phone.post_form(&link, &[]).await;
    assert_eq!(claimed.status(), 303);
    assert_eq!(who_is(&phone).await.as_deref(), Some("alice"));
    phone.ws("lobby").await;

    let stranger = app.visitor();
    assert_eq!(
        stranger.post_form(&link, &[]).await.status(),
        410,
        "it works once"
    );
    assert_eq!(stranger.get(&link).await.status(), 410);
    assert_eq!(who_is(&stranger).await, None);

    laptop.post_form("/logout", &[]).await;
    assert_eq!(
        who_is(&phone).await,
        None,
        "logging out ends the linked device too"
    );
    let taken = app
        .visitor()
        .post_form("/login", &[("nickname", "alice")])
        .await;
    assert_eq!(taken.status(), 303, "and frees the nickname");
}

#[tokio::test]
async fn a_link_made_before_logging_out_logs_nobody_in() {
    let app = spawn_app().await;
    let laptop = app.login("alice").await;
    let link = device_link(&laptop).await;
    laptop.post_form("/logout", &[]).await;
    let phone = app.visitor();
    assert_eq!(phone.post_form(&link, &[]).await.status(), 410);
    assert_eq!(who_is(&phone).await, None);
    assert_eq!(
        app.visitor().get("/devices/link").await.status(),
        303,
        "needs a login"
    );
}
