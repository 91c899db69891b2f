//! @mentions: rendered as chips, marked on the message for the viewer's CSS, remembered per
//! room so the mentioned person's sidebar marks the room until they read it, and offered as
//! suggestions while typing.

use reqwest::Method;

use crate::helpers::{sidebar_link, spawn_app, spawn_app_in, user_message_ids, viewer_login};

#[tokio::test]
async fn a_mention_is_a_chip_and_marks_the_room_for_that_person_until_read() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    alice.post_form("/rooms", &[("name", "elsewhere")]).await;

    let mut ws = bob.ws("lobby").await;
    ws.resume(0).await;
    ws.say("@Alice could you look? cc @nobody.").await;
    let frame = ws.next_text().await;
    let id = user_message_ids(&frame)[0];
    assert!(
        frame.contains(r#"<span class="mention" data-mention="alice">@Alice</span>"#),
        "{frame}"
    );
    // It mentions alice's login (nobody holds "nobody"), not her name.
    let page = alice.get_text("/rooms/elsewhere").await;
    let alices_login = viewer_login(&page);
    assert!(
        frame.contains(&format!(r#"data-mentions="{alices_login}""#)),
        "{frame}"
    );
    assert!(
        page.contains(&format!(r#".msg[data-mentions~="{alices_login}"]"#)),
        "the viewer's CSS highlights messages that mention her"
    );
    let link = sidebar_link(&page, "lobby").unwrap();
    assert!(link.contains(r#"class="mentioned""#), "{link}");
    // Marked for her login, not her name: a later "alice" would be someone else.
    let marked = format!("{}:{id}", viewer_login(&page));
    assert!(link.contains(&marked), "{link}");
    let bobs = bob.get_text("/rooms/elsewhere").await;
    assert!(
        !sidebar_link(&bobs, "lobby")
            .unwrap()
            .contains("mentioned\""),
        "only the mentioned person's sidebar marks it"
    );

    // Still marked after a restart, until alice reads the room.
    let cookie = alice.cookie().unwrap();
    let dir = app.stop().await;
    let app = spawn_app_in(dir, |_| {}).await;
    let client = app.visitor().http;
    let as_alice = |path: &str| client.get(app.url(path)).header("Cookie", &cookie).send();
    let page = as_alice("/rooms/elsewhere")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        sidebar_link(&page, "lobby")
            .unwrap()
            .contains(r#"class="mentioned""#)
    );
    as_alice("/rooms/lobby").await.unwrap();
    let page = as_alice("/rooms/elsewhere")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !sidebar_link(&page, "lobby")
            .unwrap()
            .contains(r#"class="mentioned""#)
    );
}

#[tokio::test]
async fn typing_at_offers_recent_people_in_the_room_but_not_oneself() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    for name in ["bob", "bea", "carol"] {
        let person = app.login(name).await;
        person
            .post_form("/rooms/lobby/messages", &[("body", "hello")])
            .await;
    }
    let offered = |html: String| -> Vec<String> {
        html.split(r#"data-nickname=""#)
            .skip(1)
            .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
            .collect()
    };
    let all = alice
        .htmx(Method::GET, "/rooms/lobby/mentions?q=", &[])
        .await;
    assert_eq!(all.status(), 200);
    assert_eq!(
        offered(all.text().await.unwrap()),
        ["carol", "bea", "bob"],
        "newest first"
    );

    let b = alice
        .htmx(Method::GET, "/rooms/lobby/mentions?q=B", &[])
        .await;
    assert_eq!(offered(b.text().await.unwrap()), ["bea", "bob"]);

    alice
        .post_form("/rooms/lobby/messages", &[("body", "me too")])
        .await;
    let a = alice
        .htmx(Method::GET, "/rooms/lobby/mentions?q=a", &[])
        .await;
    let a = a.text().await.unwrap();
    assert!(offered(a.clone()).is_empty(), "never oneself: {a}");
    assert!(a.contains(" hidden>"), "an empty list stays hidden: {a}");

    let odd = alice
        .htmx(Method::GET, "/rooms/lobby/mentions?q=%3Cscript%3E", &[])
        .await;
    assert_eq!(odd.status(), 200);
    assert!(offered(odd.text().await.unwrap()).is_empty());
    assert_eq!(alice.get("/rooms/nowhere/mentions?q=").await.status(), 404);
}
