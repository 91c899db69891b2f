//! What a new person trips over (issue 17): keyboard reach, phones, editing, the admin's
//! header, the collapsed sidebar, refused, offline and unanswered sends, tall images, copying a
//! token.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fantoccini::Client;
use fantoccini::actions::{InputSource, PointerAction, TouchActions};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::browser::{
    Driver, click_shown, log_in, log_in_at, open_toolbar, save_screenshot, say, script, shown,
    until,
};
use crate::helpers::test_cluster::OwnCluster;
use crate::helpers::{
    ADMIN_TOKEN, AppData, TestApp, Visitor, eventually, spawn_app, spawn_app_in, spawn_app_with,
};

const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";
const ESCAPE: &str = "\u{E00C}";

/// Presses keys on whatever has the focus, as a person at the keyboard does.
async fn press(browser: &Client, keys: &str) {
    browser
        .active_element()
        .await
        .unwrap()
        .send_keys(keys)
        .await
        .unwrap();
}

/// What has the focus, described well enough to assert on.
async fn focused(browser: &Client) -> serde_json::Value {
    script(
        browser,
        "var el = document.activeElement; var msg = el.closest('.msg'); \
         return { msg: msg ? msg.id : null, toolbar: !!el.closest('#msg-toolbar'), \
                  link: el.classList.contains('msg-link'), action: el.getAttribute('data-action'), \
                  summary: el.tagName === 'SUMMARY' };",
    )
    .await
}

async fn message_ids(browser: &Client, author: &str) -> Vec<String> {
    let ids = script(
        browser,
        &format!(
            "return [...document.querySelectorAll(\"#messages .msg[data-author='{author}']\")].map(m => m.id);"
        ),
    )
    .await;
    serde_json::from_value(ids).unwrap()
}

/// The bounding boxes (width, height) of what `selector` finds that is shown.
async fn shown_boxes(browser: &Client, selector: &str) -> Vec<(String, f64, f64)> {
    let boxes = script(
        browser,
        &format!(
            "return [...document.querySelectorAll(\"{selector}\")] \
               .filter(el => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden') \
               .map(el => {{ var r = el.getBoundingClientRect(); \
                 return [el.getAttribute('title') || el.id || el.className, r.width, r.height]; }});"
        ),
    )
    .await;
    serde_json::from_value(boxes).unwrap()
}

/// A finger's tap at a point of the screen.
async fn tap(browser: &Client, x: f64, y: f64) {
    let finger = TouchActions::new("finger".into())
        .then(PointerAction::MoveTo {
            duration: None,
            x,
            y,
        })
        .then(PointerAction::Down { button: 0 })
        .then(PointerAction::Up { button: 0 });
    browser.perform_actions(finger).await.unwrap();
}

#[tokio::test]
async fn keyboard_users_reach_every_messages_toolbar_and_get_the_focus_back() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    log_in(&alice, &app, "alice").await;
    alice.goto(&app.url("/rooms/lobby")).await.unwrap();
    for text in ["first of three", "second of three", "third of three"] {
        say(&alice, text).await;
    }
    until(
        &alice,
        "three messages, the last two grouped under the first",
        "return document.querySelectorAll('#messages .msg.grouped').length === 2;",
    )
    .await;
    let ids = message_ids(&alice, "alice").await;

    // From the first message's time link, Tab goes into its toolbar, through it, and on to
    // the next message, though that one shows no header.
    script(
        &alice,
        &format!(
            "document.querySelector('#{} .msg-link').focus(); return true;",
            ids[0]
        ),
    )
    .await;
    press(&alice, TAB).await;
    let at = focused(&alice).await;
    assert_eq!(at["toolbar"], true, "Tab goes into the toolbar: {at}");
    assert_eq!(at["summary"], true, "react first: {at}");
    for _ in 0..4 {
        press(&alice, TAB).await; // reply, copy link, edit, delete
    }
    assert_eq!(focused(&alice).await["action"], "delete");
    press(&alice, TAB).await;
    let at = focused(&alice).await;
    assert_eq!(at["msg"], ids[1].as_str(), "then the next message: {at}");
    assert_eq!(at["link"], true, "{at}");
    shown(&alice, "#msg-toolbar:not([hidden])").await;
    let marked = script(
        &alice,
        &format!(
            "return getComputedStyle(document.getElementById('{}')).outlineStyle;",
            ids[1]
        ),
    )
    .await;
    assert_ne!(marked, "none", "the focused message is marked");
    save_screenshot(&alice, "keyboard-toolbar").await;

    // Shift+Tab from the toolbar goes back to its message.
    press(&alice, TAB).await;
    press(&alice, "\u{E008}\u{E004}\u{E000}").await; // Shift+Tab, then Shift up
    assert_eq!(focused(&alice).await["msg"], ids[1].as_str());

    // Escape closes the reaction menu and leaves the focus on its button.
    let menu_open = "return document.querySelector('#msg-toolbar details.react-menu').open;";
    press(&alice, TAB).await;
    press(&alice, ENTER).await;
    assert_eq!(script(&alice, menu_open).await, serde_json::json!(true));
    press(&alice, ESCAPE).await;
    assert_eq!(script(&alice, menu_open).await, serde_json::json!(false));
    let on_button = focused(&alice).await;
    assert!(
        on_button["toolbar"] == true && on_button["summary"] == true,
        "{on_button}"
    );
    press(&alice, "\u{E008}\u{E004}\u{E000}").await; // back to the message
    assert_eq!(focused(&alice).await["msg"], ids[1].as_str());

    // A reaction by keyboard: the menu opens with Enter, the choice is made with Enter, and
    // the focus comes back to the message.
    press(&alice, TAB).await;
    press(&alice, ENTER).await;
    press(&alice, TAB).await;
    press(&alice, ENTER).await;
    shown(&alice, &format!("#{} .reaction[data-by='alice']", ids[1])).await;
    until(
        &alice,
        "the focus back on the reacted message",
        &format!(
            "var el = document.activeElement; return el.classList.contains('msg-link') && el.closest('.msg').id === '{}';",
            ids[1]
        ),
    )
    .await;

    // Edit by keyboard; Escape cancels it and gives the focus back to the message.
    press(&alice, TAB).await;
    for _ in 0..3 {
        press(&alice, TAB).await;
    }
    assert_eq!(focused(&alice).await["action"], "edit");
    press(&alice, ENTER).await;
    shown(&alice, &format!("#{}.editing textarea:focus", ids[1])).await;
    press(&alice, ESCAPE).await;
    until(
        &alice,
        "the edit cancelled, the focus on the message",
        &format!(
            "var el = document.activeElement; return !document.querySelector('.msg.editing') \
             && el.classList.contains('msg-link') && el.closest('.msg').id === '{}';",
            ids[1]
        ),
    )
    .await;
    alice.close().await.unwrap();
}

#[tokio::test]
async fn on_a_phone_the_header_fits_its_buttons_take_a_finger_and_the_drawer_closes_by_a_tap() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    // Someone else is here, to be found from the phone.
    let bob = app.login("bob").await;
    let _bob_here = bob.ws("lobby").await;
    let alice = driver.phone(&[]).await;
    log_in(&alice, &app, "alice").await;
    alice.goto(&app.url("/rooms/lobby")).await.unwrap();
    say(&alice, "typed on a phone").await;
    shown(&alice, ".msg[data-author='alice']").await;

    let width = script(&alice, "return document.documentElement.scrollWidth;").await;
    assert!(width.as_f64().unwrap() <= 375.0, "the page is {width} wide");
    let mute = script(
        &alice,
        "var r = document.querySelector('.mute button').getBoundingClientRect(); return r.right <= window.innerWidth && r.left >= 0;",
    )
    .await;
    assert_eq!(mute, true, "the mute bell is on the screen");
    let targets = ".room-head .icon-button, .room-head summary";
    let header = shown_boxes(&alice, targets).await;
    assert!(header.len() >= 4, "{header:?}");
    for (name, w, h) in &header {
        assert!(*w >= 44.0 && *h >= 44.0, "{name} is {w} × {h}");
    }
    open_toolbar(&alice, ".msg[data-author='alice']").await;
    let toolbar = shown_boxes(&alice, "#msg-toolbar .icon-button, #msg-toolbar summary").await;
    assert_eq!(toolbar.len(), 5, "{toolbar:?}");
    for (name, w, h) in &toolbar {
        assert!(*w >= 44.0 && *h >= 44.0, "toolbar {name} is {w} × {h}");
    }
    let toolbar_fits = script(
        &alice,
        "var r = document.getElementById('msg-toolbar').getBoundingClientRect(); return r.left >= 0 && r.right <= window.innerWidth;",
    )
    .await;
    assert_eq!(toolbar_fits, true);
    save_screenshot(&alice, "phone-header").await;

    // Who is here opens from the header, and a name there starts a direct conversation.
    click_shown(&alice, "#people-toggle").await;
    shown(&alice, "#presence a[href='/dm/bob']").await;
    save_screenshot(&alice, "phone-people").await;
    click_shown(&alice, "#presence a[href='/dm/bob']").await;
    shown(&alice, "textarea#start-message").await;
    alice.back().await.unwrap();
    shown(&alice, "#drawer-toggle").await;

    // The drawer opens over the page; its own close button is in reach, and a tap on the
    // dimmed page beside it closes it.
    click_shown(&alice, "#drawer-toggle").await;
    let drawer_open = "var r = document.getElementById('sidebar').getBoundingClientRect(); return r.left >= 0 && r.right > 200;";
    until(&alice, "the drawer to open", drawer_open).await;
    let close_reachable = script(
        &alice,
        "var b = document.getElementById('drawer-close'); var r = b.getBoundingClientRect(); \
         return r.width >= 44 && r.height >= 44 && r.right <= window.innerWidth \
           && b.contains(document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2));",
    )
    .await;
    assert_eq!(close_reachable, true, "the drawer's close button");
    save_screenshot(&alice, "phone-drawer").await;
    tap(&alice, 345.0, 500.0).await;
    until(
        &alice,
        "a tap beside the drawer to close it",
        "return !document.getElementById('app').classList.contains('drawer-open') \
           && document.getElementById('drawer-toggle').getAttribute('aria-expanded') === 'false';",
    )
    .await;
    // Closed by its button too.
    click_shown(&alice, "#drawer-toggle").await;
    until(&alice, "the drawer to open again", drawer_open).await;
    click_shown(&alice, "#drawer-close").await;
    until(
        &alice,
        "the close button to close it",
        "return !document.getElementById('app').classList.contains('drawer-open');",
    )
    .await;
    alice.close().await.unwrap();
}

#[tokio::test]
async fn editing_the_last_message_keeps_save_and_cancel_in_view_without_scrolling_the_page() {
    let app = spawn_app().await;
    let bob = app.login("bob").await;
    for n in 0..30 {
        bob.post_form(
            "/rooms/lobby/messages",
            &[("body", &format!("earlier message {n}"))],
        )
        .await;
    }
    let driver = Driver::start().await;
    for (name, nickname, alice) in [
        ("edit-last-wide", "alice", driver.browser().await),
        ("edit-last-phone", "ann", driver.phone(&[]).await),
    ] {
        log_in(&alice, &app, nickname).await;
        alice.goto(&app.url("/rooms/lobby")).await.unwrap();
        say(
            &alice,
            "the last message, which has a few words more than fit on one line of a phone",
        )
        .await;
        let mine = format!(".msg[data-author='{nickname}']");
        shown(&alice, &mine).await;
        open_toolbar(&alice, &mine).await;
        click_shown(&alice, "#msg-toolbar [data-action='edit']").await;
        shown(&alice, ".msg.editing textarea").await;
        until(
            &alice,
            &format!("{name}: Save and Cancel within the messages and the screen"),
            "var list = document.getElementById('messages').getBoundingClientRect(); \
             return [...document.querySelectorAll('.msg.editing .edit-actions button')].every(b => { \
               var r = b.getBoundingClientRect(); \
               return r.height > 0 && r.top >= list.top && r.bottom <= list.bottom && r.bottom <= window.innerHeight; });",
        )
        .await;
        let page = script(
            &alice,
            "var s = document.scrollingElement; return [s.scrollTop, s.scrollHeight - s.clientHeight];",
        )
        .await;
        assert_eq!(
            page,
            serde_json::json!([0, 0]),
            "{name}: the page itself never scrolls"
        );
        save_screenshot(&alice, name).await;
        alice.close().await.unwrap();
    }
}

#[tokio::test]
async fn the_admins_room_header_buttons_sit_together_on_one_line() {
    let app = spawn_app_with(|config| config.admin_token = Some(ADMIN_TOKEN.into())).await;
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    log_in(&alice, &app, "alice").await;
    alice.goto(&app.url("/admin")).await.unwrap();
    shown(&alice, "#admin-token")
        .await
        .send_keys(ADMIN_TOKEN)
        .await
        .unwrap();
    click_shown(&alice, "form button[type=submit]").await;
    shown(&alice, "main.welcome").await;
    alice.goto(&app.url("/rooms/lobby")).await.unwrap();
    shown(&alice, "body.is-admin .admin-link").await;
    let boxes = script(
        &alice,
        "return [...document.querySelectorAll('.room-head summary, .room-head .icon-button')] \
           .filter(el => el.getClientRects().length > 0) \
           .map(el => { var r = el.getBoundingClientRect(); \
             return { name: el.getAttribute('title'), middle: r.top + r.height / 2, left: r.left, right: r.right }; });",
    )
    .await;
    let boxes = boxes.as_array().unwrap();
    assert_eq!(boxes.len(), 4, "topic, shield, mute, leave: {boxes:?}");
    let middle = boxes[0]["middle"].as_f64().unwrap();
    for b in boxes {
        let off = (b["middle"].as_f64().unwrap() - middle).abs();
        assert!(
            off <= 1.5,
            "{} is {off} px off the line: {boxes:?}",
            b["name"]
        );
    }
    // The shield, mute and leave sit together at the end of the header.
    for pair in boxes[1..].windows(2) {
        let gap = pair[1]["left"].as_f64().unwrap() - pair[0]["right"].as_f64().unwrap();
        assert!((0.0..=8.0).contains(&gap), "{gap} px apart: {boxes:?}");
    }
    let end = script(
        &alice,
        "return document.querySelector('.room-head').getBoundingClientRect().right \
           - document.querySelector('.leave button').getBoundingClientRect().right;",
    )
    .await;
    assert!(
        end.as_f64().unwrap() < 30.0,
        "leave, after mute, at the end: {end}"
    );
    save_screenshot(&alice, "admin-header").await;
    alice.close().await.unwrap();
}

/// The room header has one bell, the room's mute. The offer of desktop notifications for
/// mentions is the viewer's own (this browser's), so it sits with their other settings at the
/// foot of the sidebar, on every page with the sidebar's script, until the browser answers.
#[tokio::test]
async fn the_offer_to_notify_mentions_sits_with_the_viewers_settings_not_beside_mute() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    log_in(&alice, &app, "marguerite").await;
    let notifications = |setting: &str| serde_json::json!({ "permission": { "name": "notifications" }, "setting": setting });
    driver
        .cdp(&alice, "Browser.setPermission", notifications("prompt"))
        .await;
    let bells_in = |selector: &str| {
        format!(
            "return [...document.querySelectorAll('{selector} svg.lucide-bell, {selector} svg.lucide-bell-ring')] \
               .filter(el => el.getClientRects().length > 0).length;"
        )
    };
    for (path, ready) in [("/rooms/lobby", "#composer-body"), ("/", "main.welcome")] {
        alice.goto(&app.url(path)).await.unwrap();
        shown(&alice, ready).await;
        let offer = shown(&alice, ".me #notify-toggle").await;
        assert_eq!(
            offer.attr("title").await.unwrap().as_deref(),
            Some("Notify me when someone mentions me"),
            "{path}"
        );
        assert_eq!(
            script(&alice, &bells_in("main")).await,
            serde_json::json!(if path == "/" { 0 } else { 1 }),
            "{path}: the room's mute is the only bell in the page's header"
        );
    }
    alice.goto(&app.url("/rooms/lobby")).await.unwrap();
    shown(&alice, ".me #notify-toggle").await;
    let name_cut = script(
        &alice,
        "var name = document.querySelector('.me-name'); return name.scrollWidth > name.clientWidth;",
    )
    .await;
    assert_eq!(
        name_cut,
        serde_json::json!(false),
        "the viewer's name is whole beside five buttons"
    );
    save_screenshot(&alice, "notify-offer").await;

    driver
        .cdp(&alice, "Browser.setPermission", notifications("granted"))
        .await;
    alice.refresh().await.unwrap();
    shown(&alice, "#composer-body").await;
    assert_eq!(
        script(&alice, &bells_in("body")).await,
        serde_json::json!(1),
        "answered: only the mute is left"
    );
    alice.close().await.unwrap();
}

#[tokio::test]
async fn the_collapsed_sidebar_names_each_room_and_marks_unread_ones() {
    // No "joined" or "left" lines: only bob's message makes a room unread.
    let app = spawn_app_with(|config| {
        config.quiet_after_start = 600.0;
        config.leave_debounce = 600.0;
    })
    .await;
    let bob = app.login("bob").await;
    bob.post_form("/rooms", &[("name", "Design review")]).await;
    bob.post_form("/rooms", &[("name", "Release plans")]).await;
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    log_in(&alice, &app, "alice").await;
    for room in ["design-review", "release-plans", "lobby"] {
        alice
            .goto(&app.url(&format!("/rooms/{room}")))
            .await
            .unwrap();
        shown(&alice, "#composer-body").await;
    }
    click_shown(&alice, "#sidebar-toggle").await;
    shown(&alice, "#app.sidebar-collapsed").await;
    bob.post_form(
        "/rooms/design-review/messages",
        &[("body", "news for alice")],
    )
    .await;
    let unread = "#room-list a[data-slug='design-review']";
    until(
        &alice,
        "the unread room's text to carry its count",
        &format!(
            "var a = document.querySelector(\"{unread}\"); return !!a && /^Design review\\d+$/.test(a.textContent.trim());"
        ),
    )
    .await;
    let links = script(
        &alice,
        "return [...document.querySelectorAll('#room-list a[data-slug]')] \
           .map(a => [a.getAttribute('title'), a.textContent.trim()]);",
    )
    .await;
    let links: Vec<(String, String)> = serde_json::from_value(links).unwrap();
    assert_eq!(links.len(), 3, "{links:?}");
    // Named by their text (the name, then any count), which the collapsed list keeps for
    // screen readers, and by a tooltip.
    for (title, label) in &links {
        assert!(
            !title.is_empty() && label.starts_with(title.as_str()),
            "{links:?}"
        );
    }
    let dot = script(
        &alice,
        &format!(
            "var b = document.querySelector(\"{unread} .badge\"); var r = b.getBoundingClientRect(); \
             var sidebar = document.getElementById('sidebar').getBoundingClientRect(); \
             return r.width > 4 && r.height > 4 && r.right <= sidebar.right;"
        ),
    )
    .await;
    assert_eq!(dot, true, "a dot on the unread room's icon");
    let read_dot = script(
        &alice,
        "var b = document.querySelector(\"#room-list a[data-slug='release-plans'] .badge\"); return b.getClientRects().length;",
    )
    .await;
    assert_eq!(read_dot, 0, "none on a read room");
    save_screenshot(&alice, "sidebar-collapsed").await;
    alice.close().await.unwrap();
}

#[tokio::test]
async fn a_refused_send_gives_its_text_back_and_one_typed_offline_shows_as_sending() {
    let app = spawn_app().await;
    let addr = app.addr;
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    log_in(&alice, &app, "alice").await;
    alice.goto(&app.url("/rooms/lobby")).await.unwrap();
    shown(&alice, "#composer-body").await;
    let too_long = "return document.getElementById('composer-body').value === 'x'.repeat(4001);";
    // A script can put in more than the box's maxlength; the server refuses it either way.
    let fill = "var box = document.getElementById('composer-body'); box.value = 'x'.repeat(4001); \
                box.dispatchEvent(new Event('input', { bubbles: true })); return true;";

    // Over the socket: refused, said so, and the text is back.
    say(&alice, "the socket is open").await;
    shown(&alice, ".msg[data-author='alice']").await;
    script(&alice, fill).await;
    script(
        &alice,
        "document.getElementById('composer').requestSubmit(); return true;",
    )
    .await;
    let error = shown(&alice, "#composer-error[data-error='too_long']").await;
    assert!(error.is_displayed().await.unwrap());
    until(&alice, "the text given back by the socket path", too_long).await;
    save_screenshot(&alice, "refused-send").await;

    // As a plain form post (what a page without JavaScript sends): the same.
    script(&alice, fill).await;
    script(
        &alice,
        "HTMLFormElement.prototype.submit.call(document.getElementById('composer')); return true;",
    )
    .await;
    shown(&alice, "#composer-error[data-error='too_long']").await;
    until(&alice, "the text given back by the form post", too_long).await;

    // Typed while the server is away: shown as sending until it is delivered, once.
    alice.goto(&app.url("/rooms/lobby")).await.unwrap();
    script(
        &alice,
        "var box = document.getElementById('composer-body'); box.value = ''; \
         box.dispatchEvent(new Event('input', { bubbles: true })); return true;",
    )
    .await;
    say(&alice, "back in the room").await;
    until(
        &alice,
        "the socket to open",
        "return [...document.querySelectorAll('.msg-body')].some(b => b.textContent === 'back in the room');",
    )
    .await;
    let data_dir = app.stop().await;
    shown(&alice, "#connection:not([hidden])").await;
    say(&alice, "typed while offline").await;
    let sending = shown(&alice, "#messages .msg.sending").await;
    let text = sending.text().await.unwrap();
    assert!(
        text.contains("typed while offline") && text.contains("Sending…"),
        "{text}"
    );
    save_screenshot(&alice, "sending-offline").await;
    let _app = spawn_app_in(data_dir, |config| config.addr = addr).await;
    until(
        &alice,
        "the message delivered, once, and no longer marked",
        "return !document.querySelector('.msg.sending') && [...document.querySelectorAll(\".msg[data-author='alice'] .msg-body\")] \
           .filter(b => b.textContent === 'typed while offline').length === 1;",
    )
    .await;
    alice.close().await.unwrap();
}

#[tokio::test]
async fn a_tall_image_is_shown_wide_enough_to_see() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    log_in(&alice, &app, "alice").await;
    alice.goto(&app.url("/rooms/lobby")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let receipt = dir.path().join("receipt.png");
    image::RgbImage::from_fn(300, 3000, |x, y| {
        if (y / 40) % 2 == 0 && x > 20 && x < 280 {
            image::Rgb([40, 40, 60])
        } else {
            image::Rgb([250, 248, 240])
        }
    })
    .save(&receipt)
    .unwrap();
    shown(&alice, "#attach-file")
        .await
        .send_keys(receipt.to_str().unwrap())
        .await
        .unwrap();
    let img = "#messages .msg[data-author='alice'] .attachment-image img";
    until(
        &alice,
        "the tall image, loaded",
        &format!("var img = document.querySelector(\"{img}\"); return !!img && img.complete && img.naturalWidth > 0;"),
    )
    .await;
    let size = script(
        &alice,
        &format!("var r = document.querySelector(\"{img}\").getBoundingClientRect(); return [r.width, r.height];"),
    )
    .await;
    let (width, height) = (size[0].as_f64().unwrap(), size[1].as_f64().unwrap());
    assert!(width >= 150.0, "shown {width} wide, a sliver");
    assert!(height <= 360.0, "shown {height} high");
    // Its thumbnail is the top it shows, sharp at that size.
    let natural = script(
        &alice,
        &format!(
            "var i = document.querySelector(\"{img}\"); return i.naturalWidth / i.naturalHeight;"
        ),
    )
    .await;
    assert!(
        (natural.as_f64().unwrap() - width / height).abs() < 0.02,
        "thumbnail proportions {natural}, shown {width} × {height}"
    );
    save_screenshot(&alice, "tall-image").await;
    alice.close().await.unwrap();
}

#[tokio::test]
async fn a_new_bot_token_can_be_copied_with_a_button() {
    let app: TestApp = spawn_app().await;
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    log_in(&alice, &app, "alice").await;
    alice.goto(&app.url("/settings/bots")).await.unwrap();
    shown(&alice, "#bot-name")
        .await
        .send_keys("helper")
        .await
        .unwrap();
    click_shown(&alice, "form.search-form button[type=submit]").await;
    let token = shown(&alice, "#fresh-token")
        .await
        .attr("value")
        .await
        .unwrap()
        .expect("the token");

    // With the Clipboard API (stood in for: a headless browser's clipboard is not readable).
    script(
        &alice,
        "window.copied = null; Object.defineProperty(navigator, 'clipboard', { configurable: true, \
           value: { writeText: function (text) { window.copied = text; return Promise.resolve(); } } }); return true;",
    )
    .await;
    click_shown(&alice, "button[data-copy='fresh-token']").await;
    until(
        &alice,
        "the token copied and said so",
        "return window.copied === document.getElementById('fresh-token').value \
           && document.getElementById('copy-status').textContent === 'Copied.';",
    )
    .await;
    assert_eq!(script(&alice, "return window.copied;").await, token);
    save_screenshot(&alice, "bot-token-copied").await;

    // Without it: the token is selected, ready to copy by hand.
    script(
        &alice,
        "Object.defineProperty(navigator, 'clipboard', { configurable: true, value: undefined }); \
         document.getElementById('copy-status').textContent = ''; return true;",
    )
    .await;
    click_shown(&alice, "button[data-copy='fresh-token']").await;
    until(
        &alice,
        "the token selected",
        "var f = document.getElementById('fresh-token'); return document.activeElement === f \
           && f.selectionStart === 0 && f.selectionEnd === f.value.length \
           && document.getElementById('copy-status').textContent !== '';",
    )
    .await;
    alice.close().await.unwrap();
}

/// A send refused because the database is away comes back to the composer; sent again
/// unchanged, it keeps its client_id, so a message the database stored after all (its
/// answer lost with the connection) would be stored once.
/// A TCP relay in front of the app whose connections can all go silent at once: they stay
/// open and carry nothing more, as a socket does when a laptop sleeps or a network starts
/// dropping packets, and neither end is told. Connections opened after that go through.
struct Relay {
    /// Connections numbered below this carry nothing.
    silent_below: Arc<AtomicU64>,
    opened: Arc<AtomicU64>,
}

impl Relay {
    fn start(listener: tokio::net::TcpListener, target: std::net::SocketAddr) -> Relay {
        let silent_below = Arc::new(AtomicU64::new(0));
        let opened = Arc::new(AtomicU64::new(0));
        let (silent, count) = (silent_below.clone(), opened.clone());
        tokio::spawn(async move {
            while let Ok((browser, _)) = listener.accept().await {
                let number = count.fetch_add(1, Ordering::SeqCst);
                let app = tokio::net::TcpStream::connect(target).await.unwrap();
                let (from_browser, to_browser) = browser.into_split();
                let (from_app, to_app) = app.into_split();
                tokio::spawn(Relay::pump(from_browser, to_app, number, silent.clone()));
                tokio::spawn(Relay::pump(from_app, to_browser, number, silent.clone()));
            }
        });
        Relay {
            silent_below,
            opened,
        }
    }

    async fn pump(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        number: u64,
        silent_below: Arc<AtomicU64>,
    ) {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = from.read(&mut buffer).await.unwrap_or(0);
            if number < silent_below.load(Ordering::SeqCst) {
                // Holds both ends open, forever silent.
                std::future::pending::<()>().await;
            }
            if read == 0 || to.write_all(&buffer[..read]).await.is_err() {
                let _ = to.shutdown().await;
                return;
            }
        }
    }

    fn silence_every_open_connection(&self) {
        self.silent_below
            .store(self.opened.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// A send into a socket that went silent (nothing says it is dead: no close, no error) shows
/// as sending within seconds, goes again on a fresh socket, and is stored once, where before
/// it vanished from the composer and was never stored.
#[tokio::test]
async fn a_message_sent_into_a_socket_that_went_silent_is_sent_again_on_a_fresh_one() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let app = spawn_app_with(|config| config.public_url = Some(origin.clone())).await;
    let relay = Relay::start(listener, app.addr);
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    log_in_at(&alice, &format!("{origin}/login"), "alice", "main.welcome").await;
    alice.goto(&format!("{origin}/rooms/lobby")).await.unwrap();
    say(&alice, "before the network went quiet").await;
    shown(&alice, ".msg[data-client-id]").await;

    // The sending sign is up only until the fresh socket answers, milliseconds here: watched.
    script(
        &alice,
        "window.sawSending = ''; \
         new MutationObserver(() => { \
           var sending = document.querySelector('.msg.sending'); \
           if (sending) window.sawSending = sending.textContent; \
         }).observe(document.getElementById('messages'), { childList: true }); \
         return true;",
    )
    .await;
    relay.silence_every_open_connection();
    let sent = std::time::Instant::now();
    say(&alice, "said into a silent socket").await;
    until(
        &alice,
        "the message stored and shown, its sending copy gone",
        "return [...document.querySelectorAll('.msg[data-client-id]')] \
           .some(m => m.textContent.includes('said into a silent socket')) \
           && !document.querySelector('.msg.sending') \
           && document.getElementById('connection').hidden;",
    )
    .await;
    let shown_as_sending = script(&alice, "return window.sawSending;").await;
    assert!(
        shown_as_sending
            .as_str()
            .unwrap()
            .contains("said into a silent socket"),
        "shown as sending meanwhile: {shown_as_sending}"
    );
    save_screenshot(&alice, "silent-socket-resent").await;
    println!(
        "sent into a silent socket: stored and shown after {} ms",
        sent.elapsed().as_millis()
    );
    // Bob comes in through the relay too (the app answers at its public URL), on connections
    // opened after the silence.
    let bob = Visitor::of(&origin, None);
    let response = bob.post_form("/login", &[("nickname", "bob")]).await;
    assert_eq!(response.status(), 303);
    let page = bob.get_text("/rooms/lobby").await;
    assert_eq!(
        page.matches("said into a silent socket").count(),
        1,
        "stored once"
    );
    // The fresh socket is live: what bob says arrives.
    let mut ws = bob.ws("lobby").await;
    ws.say("bob is still here").await;
    shown(&alice, ".msg[data-author='bob']").await;
    alice.close().await.unwrap();
}

#[tokio::test]
async fn a_text_refused_while_the_database_is_away_is_sent_again_under_its_client_id() {
    let (cluster, url) = tokio::task::spawn_blocking(OwnCluster::start)
        .await
        .unwrap();
    let cluster = std::sync::Arc::new(cluster);
    let app = spawn_app_in(AppData::on_database(url), |_| {}).await;
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    log_in(&alice, &app, "alice").await;
    alice.goto(&app.url("/rooms/lobby")).await.unwrap();
    say(&alice, "the socket is open").await;
    shown(&alice, ".msg[data-author='alice']").await;

    let stopping = cluster.clone();
    tokio::task::spawn_blocking(move || stopping.stop())
        .await
        .unwrap();
    say(&alice, "said while the database is away").await;
    let error = shown(&alice, "#composer-error[data-error='store_failed']").await;
    let refused_id = error
        .attr("data-client-id")
        .await
        .unwrap()
        .expect("the refusal names its send");
    until(
        &alice,
        "the refused text back in the composer",
        "return document.getElementById('composer-body').value === 'said while the database is away';",
    )
    .await;

    let starting = cluster.clone();
    tokio::task::spawn_blocking(move || starting.start_again())
        .await
        .unwrap();
    let visitor = app.visitor();
    eventually(
        || async { visitor.get("/readyz").await.status() },
        |status| *status == 200,
    )
    .await;
    script(
        &alice,
        "document.getElementById('composer').requestSubmit(); return true;",
    )
    .await;
    let stored = shown(&alice, &format!(".msg[data-client-id='{refused_id}']")).await;
    assert!(
        stored
            .text()
            .await
            .unwrap()
            .contains("said while the database is away")
    );
    alice.close().await.unwrap();
}
