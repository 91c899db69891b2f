//! "Link another device": a one-time link with a QR code logs a second browser in as the same
//! person; it works once, and logging out on one device logs out both.

use crate::helpers::{Visitor, spawn_app};

/// Makes a device link as `visitor`, as the sidebar's button does; returns its path.
pub(crate) async fn device_link(visitor: &Visitor) -> String {
    let made = visitor.post_form("/devices/link", &[]).await;
    assert_eq!(made.status(), 200, "a link is made");
    assert_eq!(made.headers()["cache-control"], "no-store");
    let page = made.text().await.unwrap();
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
pub(crate) async fn who_is(visitor: &Visitor) -> Option<String> {
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

#[tokio::test]
async fn a_link_is_made_only_by_a_post_and_a_login_keeps_its_three_newest() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let offer = alice.get_text("/devices/link").await;
    assert!(
        !offer.contains("/devices/claim/"),
        "opening the page makes no link"
    );
    assert!(offer.contains(r#"<form method="post" action="/devices/link">"#));
    assert!(
        alice
            .get_text("/")
            .await
            .contains(r#"<form method="post" action="/devices/link">"#),
        "the sidebar's button posts"
    );
    let cross_site = alice
        .http
        .post(app.url("/devices/link"))
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403, "another site can't make one");

    let mut links = Vec::new();
    for _ in 0..5 {
        links.push(device_link(&alice).await);
    }
    let mut working = Vec::new();
    for link in &links {
        working.push(app.visitor().get(link).await.status().as_u16());
    }
    assert_eq!(
        working,
        [410, 410, 200, 200, 200],
        "each new link replaces the oldest past three"
    );

    // However many alice makes, bob still gets his.
    for _ in 0..20 {
        device_link(&alice).await;
    }
    let bob = app.login("bob").await;
    let link = device_link(&bob).await;
    let phone = app.visitor();
    assert_eq!(phone.post_form(&link, &[]).await.status(), 303);
    assert_eq!(who_is(&phone).await.as_deref(), Some("bob"));
}
