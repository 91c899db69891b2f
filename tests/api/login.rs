use crate::helpers::{Backend, on_both_backends, spawn_app, spawn_app_on, spawn_app_with};

#[tokio::test]
async fn a_valid_nickname_logs_in_and_sees_the_welcome_view() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let page = alice.get_text("/").await;
    assert!(page.contains("What shall we talk about?"), "{page}");
    assert!(page.contains(">alice<"), "the viewer's name is shown");
}

#[tokio::test]
async fn logged_out_visitors_are_sent_to_the_login_form() {
    let app = spawn_app().await;
    let visitor = app.visitor();
    let response = visitor.get("/").await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/login");
    let response = visitor.get("/rooms/lobby").await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/login?next=/rooms/lobby");
}

#[tokio::test]
async fn login_returns_to_a_local_next_but_never_off_site() {
    let app = spawn_app().await;
    let visitor = app.visitor();
    let response = visitor
        .post_form("/login", &[("nickname", "bob"), ("next", "/rooms/lobby")])
        .await;
    assert_eq!(response.headers()["location"], "/rooms/lobby");
    let other = app.visitor();
    let response = other
        .post_form(
            "/login",
            &[("nickname", "carol"), ("next", "//evil.example")],
        )
        .await;
    assert_eq!(response.headers()["location"], "/");
}

#[tokio::test]
async fn blank_long_and_spaced_nicknames_are_refused_with_an_explanation() {
    let app = spawn_app().await;
    let long = "x".repeat(33);
    for (nickname, explanation) in [
        ("   ", "choose a nickname"),
        (long.as_str(), "at most 32 characters"),
        ("two words", "no spaces"),
    ] {
        let visitor = app.visitor();
        let response = visitor.post_form("/login", &[("nickname", nickname)]).await;
        assert_eq!(response.status(), 422, "{nickname:?}");
        let page = response.text().await.unwrap();
        assert!(page.contains(explanation), "{nickname:?}: {page}");
        assert!(visitor.get("/").await.status() == 303, "not logged in");
    }
}

on_both_backends!(
    a_held_nickname_is_refused_ignoring_case_and_the_input_is_kept,
    logout_releases_the_nickname_and_ends_the_session,
);

async fn a_held_nickname_is_refused_ignoring_case_and_the_input_is_kept(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let _alice = app.login("alice").await;
    let other = app.visitor();
    let response = other.post_form("/login", &[("nickname", "ALICE")]).await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(page.contains("is taken"), "{page}");
    assert!(
        page.contains("Link another device"),
        "and what to do if it is oneself elsewhere: {page}"
    );
    assert!(page.contains("value=\"ALICE\""), "input kept: {page}");
}

async fn logout_releases_the_nickname_and_ends_the_session(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let alice = app.login("alice").await;
    let old_cookie = alice.cookie().unwrap();
    let response = alice.post_form("/logout", &[]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/login");

    // The old cookie no longer logs anyone in.
    let replay = app.visitor();
    let response = replay
        .http
        .get(app.url("/"))
        .header("Cookie", old_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);

    // And the name is free again.
    let newcomer = app.visitor();
    let response = newcomer.post_form("/login", &[("nickname", "Alice")]).await;
    assert_eq!(response.status(), 303);
}

#[tokio::test]
async fn login_cycles_the_session_id() {
    let app = spawn_app().await;
    let visitor = app.visitor();
    visitor.get("/login").await;
    let before = visitor.cookie();
    visitor.post_form("/login", &[("nickname", "dave")]).await;
    let after = visitor.cookie().expect("a session cookie");
    assert_ne!(before, Some(after));
}

#[tokio::test]
async fn session_cookies_are_http_only_and_same_site_lax() {
    let app = spawn_app().await;
    let visitor = app.visitor();
    let response = visitor.post_form("/login", &[("nickname", "erin")]).await;
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn a_cross_site_form_post_is_refused() {
    let app = spawn_app().await;
    let visitor = app.visitor();
    let response = visitor
        .http
        .post(app.url("/login"))
        .header("Origin", "http://evil.example")
        .form(&[("nickname", "mallory")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn a_held_nickname_cannot_be_taken_by_a_look_alike() {
    let app = spawn_app().await;
    let _alice = app.login("alice").await;
    for look_alike in ["\u{0430}lice", "ＡＬＩＣＥ"] {
        let response = app
            .visitor()
            .post_form("/login", &[("nickname", look_alike)])
            .await;
        assert_eq!(response.status(), 422, "{look_alike}");
    }
}

#[tokio::test]
async fn with_a_join_code_nobody_gets_in_without_it() {
    let app = spawn_app_with(|config| config.join_code = Some("open-sesame".into())).await;
    let stranger = app.visitor();
    let form = stranger.get_text("/login").await;
    assert!(
        form.contains(r#"name="code""#),
        "the form asks for the code"
    );
    let response = stranger
        .post_form("/login", &[("nickname", "eve"), ("code", "guess")])
        .await;
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("join code is not right")
    );
    assert_eq!(
        stranger.get("/rooms/lobby").await.status(),
        303,
        "still outside"
    );
    assert_eq!(stranger.get("/join/guess").await.status(), 404);

    let response = stranger
        .post_form("/login", &[("nickname", "eve"), ("code", "open-sesame")])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(stranger.get("/rooms/lobby").await.status(), 200);

    // An invite link carries the code, and the form stops asking for it.
    let invited = app.visitor();
    let response = invited.get("/join/open-sesame").await;
    assert_eq!(response.headers()["location"], "/login");
    assert!(!invited.get_text("/login").await.contains(r#"name="code""#));
    let response = invited.post_form("/login", &[("nickname", "frank")]).await;
    assert_eq!(response.status(), 303);
}

/// `next` as browsers read it: tabs and newlines dropped, `\` taken for `/`. Each of these
/// led off-site, or broke the response, while only the prefix was checked.
const OFF_SITE_NEXTS: [&str; 16] = [
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example/rooms",
    "/\n/evil.example",
    "/\r\n/evil.example",
    " //evil.example",
    "/.//evil.example",
    "/%2e//evil.example",
    "https:evil.example",
    "http://evil.example/",
    "javascript:alert(1)",
    "java\tscript:alert(1)",
    "//evil\u{3002}example",
    "\u{0}//evil.example",
    "\\/evil.example",
];

#[tokio::test]
async fn login_never_leads_off_site_however_next_is_written() {
    let app = spawn_app().await;
    for (i, next) in OFF_SITE_NEXTS.iter().enumerate() {
        let visitor = app.visitor();
        let response = visitor
            .post_form(
                "/login",
                &[("nickname", &format!("person{i}")), ("next", next)],
            )
            .await;
        assert_eq!(response.status(), 303, "{next:?}");
        assert_eq!(response.headers()["location"], "/", "{next:?}");

        // The form never carries it, and someone logged in is not sent there either.
        let form = app
            .visitor()
            .get_text(&format!("/login?next={}", urlencode(next)))
            .await;
        assert!(!form.contains(r#"name="next""#), "{next:?}: {form}");
        let response = visitor
            .get(&format!("/login?next={}", urlencode(next)))
            .await;
        assert_eq!(response.status(), 303, "{next:?}");
        assert_eq!(response.headers()["location"], "/", "{next:?}");
    }
    // What the issue showed: `%09` in the link.
    let alice = app.login("alice").await;
    let response = alice.get("/login?next=/%09/evil.example/x").await;
    assert_eq!(response.headers()["location"], "/");
}

#[tokio::test]
async fn a_local_next_survives_written_back_as_a_plain_path() {
    let app = spawn_app().await;
    let visitor = app.visitor();
    let form = visitor
        .get_text("/login?next=%2Frooms%2Flobby%3Fx%3D1")
        .await;
    assert!(
        form.contains(r#"name="next" value="/rooms/lobby?x=1""#),
        "{form}"
    );
    // CR and LF are dropped as a browser drops them, never a broken header or a 500.
    let response = visitor
        .post_form(
            "/login",
            &[
                ("nickname", "bob"),
                ("next", "/rooms/lob\r\nby\r\nSet-Cookie: x=1"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        "/rooms/lobbySet-Cookie:%20x=1"
    );
    assert_eq!(response.headers().get_all("set-cookie").iter().count(), 1);
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn wrong_join_codes_are_throttled_per_address_even_for_the_right_code() {
    let app = spawn_app_with(|config| config.join_code = Some("open-sesame".into())).await;
    let guesser = app.visitor();
    for attempt in 0..10 {
        let response = if attempt % 2 == 0 {
            guesser
                .post_form("/login", &[("nickname", "eve"), ("code", "guess")])
                .await
        } else {
            guesser.get(&format!("/join/guess{attempt}")).await
        };
        assert!(
            matches!(response.status().as_u16(), 404 | 422),
            "attempt {attempt}: {}",
            response.status()
        );
    }
    let response = guesser
        .post_form("/login", &[("nickname", "eve"), ("code", "open-sesame")])
        .await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let page = response.text().await.unwrap();
    assert!(page.contains("Too many wrong"), "{page}");
    assert_eq!(guesser.get("/join/open-sesame").await.status(), 429);
    assert_eq!(
        guesser.get("/rooms/lobby").await.status(),
        303,
        "still outside"
    );

    // Another address has its own budget.
    let neighbour = app.visitor_from(std::net::IpAddr::from([127, 0, 0, 2]));
    let response = neighbour
        .post_form("/login", &[("nickname", "frank"), ("code", "open-sesame")])
        .await;
    assert_eq!(response.status(), 303);
}

#[tokio::test]
async fn right_codes_cost_nothing_and_the_budget_comes_back() {
    let window = std::time::Duration::from_millis(1500);
    let app = spawn_app_with(|config| {
        config.join_code = Some("open-sesame".into());
        config.guess_window = window;
    })
    .await;
    // Right codes are not counted: more of them than the budget all pass.
    for i in 0..15 {
        let response = app.visitor().get("/join/open-sesame").await;
        assert_eq!(response.status(), 303, "right code {i}");
    }
    let guesser = app.visitor();
    for _ in 0..10 {
        guesser
            .post_form("/login", &[("nickname", "eve"), ("code", "guess")])
            .await;
    }
    tokio::time::sleep(window + std::time::Duration::from_millis(200)).await;
    let response = guesser
        .post_form("/login", &[("nickname", "eve"), ("code", "open-sesame")])
        .await;
    assert_eq!(response.status(), 303, "once the window has passed");
}
