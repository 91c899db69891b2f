//! Accessibility as a gate: axe-core (vendored under `tests/vendor/`, never served) checks
//! every kind of page, with own messages, a mention and an open toolbar on screen, in light
//! and dark, wide and on a phone. And dates: one format, the reader's own.

use fantoccini::{Client, Locator};

use crate::browser::{
    Driver, log_in, open, open_toolbar, save_screenshot, say, script, search_until_found, shown,
    until,
};
use crate::helpers::spawn_app;

const AXE: &str = include_str!("../vendor/axe-4.14.1.min.js");

/// Every axe violation on the page as it is now, one line each: rule, impact, the nodes.
async fn axe_violations(browser: &Client, page: &str) -> Vec<String> {
    if script(browser, "return typeof window.axe;").await != serde_json::json!("object") {
        script(browser, AXE).await;
    }
    let found = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] })
               .then((r) => done(r.violations.map((v) => ({
                 id: v.id, impact: v.impact, help: v.help,
                 nodes: v.nodes.map((n) => n.target.join(' ') + ': ' + n.failureSummary),
               }))))
               .catch((e) => done([{ id: 'axe-error', impact: 'fatal', help: String(e), nodes: [] }]));",
            vec![],
        )
        .await
        .unwrap();
    found
        .as_array()
        .expect("a list of violations")
        .iter()
        .map(|v| {
            format!(
                "{page}: {} ({}) {}\n    {}",
                v["id"].as_str().unwrap_or_default(),
                v["impact"].as_str().unwrap_or_default(),
                v["help"].as_str().unwrap_or_default(),
                v["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| n.as_str().unwrap_or_default().replace('\n', " "))
                    .collect::<Vec<_>>()
                    .join("\n    ")
            )
        })
        .collect()
}

#[tokio::test]
async fn no_page_has_an_axe_violation_light_or_dark_wide_or_on_a_phone() {
    let app = spawn_app().await;
    let bob = app.login("bob").await;
    bob.post_form("/rooms", &[("name", "Design review")]).await;
    let driver = Driver::start().await;
    let mut violations = Vec::new();
    for (variant, nickname, phone, dark) in [
        ("wide-light", "alice", false, false),
        ("wide-dark", "amy", false, true),
        ("phone-light", "ann", true, false),
        ("phone-dark", "ava", true, true),
    ] {
        let flags: &[&str] = if dark { &["--force-dark-mode"] } else { &[] };
        let browser = if phone {
            driver.phone(flags).await
        } else {
            driver
                .browser_with(&[&["--window-size=1280,800"][..], flags].concat())
                .await
        };
        let mut check = async |page: &str| {
            let found = axe_violations(&browser, &format!("{variant} {page}")).await;
            violations.extend(found);
        };

        open(&browser, &app, "/login", "#nickname").await;
        assert_eq!(
            script(
                &browser,
                "return matchMedia('(prefers-color-scheme: dark)').matches;"
            )
            .await,
            serde_json::json!(dark),
            "{variant}: the colour scheme asked for"
        );
        check("login").await;

        log_in(&browser, &app, nickname).await;
        check("welcome").await;

        bob.post_form(
            "/rooms/lobby/messages",
            &[(
                "body",
                &format!("@{nickname} can you look at the **plan** before `noon`?"),
            )],
        )
        .await;
        open(&browser, &app, "/rooms/lobby", "#composer-body").await;
        say(&browser, "On it, reading the plan now.").await;
        say(&browser, "Looks good: https://example.com/plan").await;
        let own = format!(".msg[data-author='{nickname}']");
        until(
            &browser,
            "both own messages",
            &format!("return document.querySelectorAll(\"{own}\").length === 2;"),
        )
        .await;
        shown(&browser, ".msg[data-author='bob'][data-mentions]").await;
        check("room").await;
        let first_own = script(
            &browser,
            // The first of a run: later ones in it show no header (and so no link) yet.
            &format!("return document.querySelector(\"{own}\").id;"),
        )
        .await;
        open_toolbar(&browser, &format!("#{}", first_own.as_str().unwrap())).await;
        check("room with the toolbar open").await;
        save_screenshot(&browser, &format!("axe-room-{variant}")).await;

        search_until_found(&browser, &app, "plan", 1).await;
        check("search").await;
        save_screenshot(&browser, &format!("axe-search-{variant}")).await;
        for (path, ready) in [
            ("/rooms", "main"),
            ("/settings/bots", "main"),
            ("/settings/nickname", "main"),
            ("/devices/link", "main"),
        ] {
            open(&browser, &app, path, ready).await;
            check(path).await;
        }
        browser.close().await.unwrap();
    }
    assert!(
        violations.is_empty(),
        "{} axe violations:\n{}",
        violations.len(),
        violations.join("\n")
    );
}

/// Messages, edits and search results show one date format, the reader's own (here German):
/// the time alone for today, with the date before; the automatic room name carries no date.
#[tokio::test]
async fn dates_are_written_in_the_readers_language_the_same_way_everywhere() {
    let app = spawn_app().await;
    let bob = app.login("bob").await;
    let driver = Driver::start().await;
    let alice = driver
        .browser_with(&["--window-size=1280,800", "--accept-lang=de-DE"])
        .await;
    driver
        .cdp(
            &alice,
            "Emulation.setLocaleOverride",
            serde_json::json!({ "locale": "de-DE" }),
        )
        .await;
    driver
        .cdp(
            &alice,
            "Emulation.setTimezoneOverride",
            serde_json::json!({ "timezoneId": "Europe/Berlin" }),
        )
        .await;
    log_in(&alice, &app, "alice").await;
    assert_eq!(
        script(
            &alice,
            "return Intl.DateTimeFormat().resolvedOptions().locale;"
        )
        .await,
        serde_json::json!("de-DE"),
    );

    // The automatic name of a chat started with nothing typed.
    alice
        .find(Locator::Css(".start-room button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The welcome page has a `#room-name` too (the name field): wait for the room's.
    let name = shown(&alice, "main.room #room-name")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(name, "Chat by alice");

    alice.goto(&app.url("/rooms/lobby")).await.unwrap();
    say(&alice, "Termin am Montag").await;
    shown(&alice, ".msg[data-author='alice'] time[data-local]").await;
    // Live, over the socket: someone else's message.
    bob.post_form("/rooms/lobby/messages", &[("body", "Montag passt")])
        .await;
    shown(&alice, ".msg[data-author='bob'] time[data-local]").await;
    let shown_times = script(
        &alice,
        "return [...document.querySelectorAll('.msg[data-kind=user] .msg-meta time')]
           .map((t) => [t.getAttribute('datetime'), t.textContent]);",
    )
    .await;
    for pair in shown_times.as_array().unwrap() {
        let (iso, text) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        let expected = script(
            &alice,
            &format!(
                "return new Intl.DateTimeFormat('de-DE', {{ hour: 'numeric', minute: '2-digit' }})
                   .format(new Date('{iso}'));"
            ),
        )
        .await;
        assert_eq!(
            serde_json::json!(text),
            expected,
            "today's message at {iso}"
        );
        let parts: Vec<&str> = text.split(':').collect();
        assert!(
            parts.len() == 2 && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit())),
            "German time of day, 24-hour: {text}"
        );
    }

    // Search results show the same text for the same message.
    search_until_found(&alice, &app, "Montag", 2).await;
    let hits = script(
        &alice,
        "return [...document.querySelectorAll('.search-hit time')]
           .map((t) => [t.getAttribute('datetime'), t.textContent]);",
    )
    .await;
    assert_eq!(hits.as_array().unwrap().len(), 2, "{hits}");
    for hit in hits.as_array().unwrap() {
        assert!(
            shown_times.as_array().unwrap().contains(hit),
            "search shows {hit} as the room did: {shown_times}"
        );
    }

    // Older times carry the date, in German too.
    let older = script(
        &alice,
        "const entry = document.querySelector('script[type=module]').src;
         return import(entry.replace(/[^/]+$/, 'times.js'))
           .then((times) => times.formatTime(new Date('2025-12-03T09:25:00Z')));",
    )
    .await;
    let older = older.as_str().unwrap();
    assert!(
        older.contains("Dez") && older.contains("2025"),
        "an older date in German: {older}"
    );
    save_screenshot(&alice, "dates-de").await;
    alice.close().await.unwrap();
}
