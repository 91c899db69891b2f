//! What a person sees, in headless Chromium driven through chromedriver.

use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, MutexGuard};

use crate::helpers::{TestApp, WAIT, files_under, spawn_app, spawn_app_in, spawn_app_with};

/// Browser tests run one at a time: two shared cores make parallel browsers flaky.
static ONE_BROWSER_TEST_AT_A_TIME: Mutex<()> = Mutex::const_new(());

const SEEN_WITHIN: Duration = Duration::from_secs(10);

/// A chromedriver process for one test; killed when dropped.
pub struct Driver {
    process: Child,
    url: String,
    _turn: MutexGuard<'static, ()>,
}

impl Drop for Driver {
    /// Ends chromedriver and every browser it started, even when a test failed before
    /// closing its sessions.
    fn drop(&mut self) {
        if let Some(pid) = self.process.id() {
            // SAFETY: killpg only sends a signal to the group chromedriver leads.
            unsafe {
                libc::killpg(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

impl Driver {
    /// Starts chromedriver. Browser tests need Debian's `chromium` and `chromium-driver`:
    /// when they are missing this fails loudly rather than skipping.
    pub async fn start() -> Driver {
        let turn = ONE_BROWSER_TEST_AT_A_TIME.lock().await;
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let process = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            // Its own process group, so the browsers it starts go with it (see Drop).
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver runs (apt-get install chromium chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Driver {
                    process,
                    url,
                    _turn: turn,
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start listening on {port}");
    }

    /// A fresh headless browser with its own profile (and so its own cookies).
    pub async fn browser(&self) -> Client {
        self.browser_with(&["--window-size=1200,800"]).await
    }

    /// A 375 px wide phone screen.
    pub async fn phone(&self, extra: &[&str]) -> Client {
        let options = serde_json::json!({
            "deviceMetrics": { "width": 375, "height": 812, "pixelRatio": 1.0, "mobile": true, "touch": true }
        });
        self.launch(extra, Some(options)).await
    }

    /// A browser with extra Chromium flags (window size, dark mode, scripts off).
    pub async fn browser_with(&self, extra: &[&str]) -> Client {
        self.launch(extra, None).await
    }

    async fn launch(&self, extra: &[&str], mobile: Option<serde_json::Value>) -> Client {
        let mut args = vec![
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
        ];
        args.extend_from_slice(extra);
        let mut caps = serde_json::Map::new();
        let mut options = serde_json::json!({ "binary": "/usr/bin/chromium", "args": args });
        if let Some(mobile) = mobile {
            options["mobileEmulation"] = mobile;
        }
        caps.insert("goog:chromeOptions".into(), options);
        // Kept for `console_errors`.
        caps.insert(
            "goog:loggingPrefs".into(),
            serde_json::json!({ "browser": "ALL" }),
        );
        ClientBuilder::native()
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a chromium session")
    }
    /// Sends a DevTools command to the browser's page (e.g. `Emulation.setLocaleOverride`:
    /// headless Chromium ignores `--lang`), through chromedriver's endpoint for it.
    pub async fn cdp(&self, browser: &Client, cmd: &str, params: serde_json::Value) {
        let session = browser.session_id().await.unwrap().expect("a session");
        let response = reqwest::Client::new()
            .post(format!("{}/session/{session}/goog/cdp/execute", self.url))
            .json(&serde_json::json!({ "cmd": cmd, "params": params }))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{cmd}: {}",
            response.status()
        );
    }

    /// What the browser's console said at level SEVERE (script errors, failed loads) since
    /// the last call, read through chromedriver's log endpoint (fantoccini has no call for it).
    pub async fn console_errors(&self, browser: &Client) -> Vec<String> {
        let session = browser.session_id().await.unwrap().expect("a session");
        let log: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/session/{session}/se/log", self.url))
            .json(&serde_json::json!({ "type": "browser" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        log["value"]
            .as_array()
            .expect("a list of log entries")
            .iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

pub async fn log_in(browser: &Client, app: &TestApp, nickname: &str) {
    log_in_from(browser, app, "/login", nickname).await;
}

/// Logs in from the login form at `login_path` (which may carry a `next`), and waits for the
/// welcome view it leads to.
pub async fn log_in_from(browser: &Client, app: &TestApp, login_path: &str, nickname: &str) {
    log_in_at(browser, &app.url(login_path), nickname, "main.welcome").await;
}

/// Logs in from the login form at `login_url`, and waits for the page it leads to, which
/// holds `landing`.
pub async fn log_in_at(browser: &Client, login_url: &str, nickname: &str, landing: &str) {
    browser.goto(login_url).await.unwrap();
    let field = browser.find(Locator::Css("#nickname")).await.unwrap();
    field.send_keys(nickname).await.unwrap();
    browser
        .find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(landing))
        .await
        .unwrap_or_else(|_| panic!("{landing} after logging in at {login_url}"));
}

async fn background_of(browser: &Client, selector: &str) -> String {
    browser
        .execute(
            "return getComputedStyle(document.querySelector(arguments[0])).backgroundColor;",
            vec![serde_json::json!(selector)],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_message_typed_in_one_browser_appears_live_in_another() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let (alice, bob) = alice_and_bob_in_the_lobby(&driver, &app).await;

    let composer = alice.find(Locator::Css("#composer-body")).await.unwrap();
    composer
        .send_keys("Hello from a real browser <b>!</b>")
        .await
        .unwrap();
    composer.send_keys("\u{E007}").await.unwrap(); // Enter

    let seen = bob
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(
            "#messages .msg[data-author='alice'] .msg-body",
        ))
        .await
        .expect("bob sees alice's message without reloading");
    assert_eq!(
        seen.text().await.unwrap(),
        "Hello from a real browser <b>!</b>",
        "shown as typed, not as markup"
    );

    // Alice's composer is empty again, and her own copy arrived too.
    let own = alice
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#messages .msg[data-author='alice']"))
        .await
        .unwrap();
    assert!(
        own.text()
            .await
            .unwrap()
            .contains("Hello from a real browser")
    );
    let left = alice
        .execute(
            "return document.getElementById('composer-body').value;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(left, serde_json::json!(""));

    // Own messages look different from other people's.
    let own_bg = background_of(&alice, ".msg[data-author='alice']").await;
    let others_bg = background_of(&bob, ".msg[data-author='alice']").await;
    assert_ne!(own_bg, others_bg, "own message styled apart");

    std::fs::create_dir_all("target/screenshots").unwrap();
    let png = alice.screenshot().await.unwrap();
    std::fs::write("target/screenshots/room.png", png).unwrap();

    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

/// The page script is native ES modules: pages load each one once, from one versioned
/// folder, and the console stays clean.
#[tokio::test]
async fn pages_load_each_script_module_once_with_no_console_errors() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    log_in(&alice, &app, "alice").await;
    alice.goto(&app.url("/rooms/lobby")).await.unwrap();
    let errors = driver.console_errors(&alice).await;
    assert!(errors.is_empty(), "console errors on load: {errors:#?}");
    // The modules ran: the socket opened, the composer sent, the arrival was handled.
    say(&alice, "loaded as modules").await;
    shown(&alice, ".msg[data-author='alice'] time[data-local]").await;
    let errors = driver.console_errors(&alice).await;
    assert!(
        errors.is_empty(),
        "console errors after a send: {errors:#?}"
    );
    // Those only needed once someone acts come after the first paint. The search page's
    // entry is the one module the room doesn't use.
    let mut room_modules = files_under("static/js");
    assert!(room_modules.remove("search.js"));
    until(
        &alice,
        "the modules loaded after the first paint",
        &format!(
            "return performance.getEntriesByType('resource')
                 .filter(e => new URL(e.name).pathname.startsWith('/static/js/')).length >= {};",
            room_modules.len()
        ),
    )
    .await;
    assert_eq!(
        fetched_modules(&alice, "main.js").await,
        room_modules,
        "every module"
    );

    // Search has no socket: its own entry, the few modules it imports, and no htmx.
    search_until_found(&alice, &app, "loaded", 1).await;
    shown(&alice, ".search-hit time[data-local]").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fetched_modules(&alice, "search.js").await,
        ["page.js", "search.js", "sidebar.js", "times.js"]
            .map(String::from)
            .into(),
    );
    let htmx = script(
        &alice,
        "return performance.getEntriesByType('resource')
             .some(e => new URL(e.name).pathname.includes('htmx'));",
    )
    .await;
    assert_eq!(htmx, serde_json::json!(false), "search loads no htmx");
    let errors = driver.console_errors(&alice).await;
    assert!(errors.is_empty(), "console errors on search: {errors:#?}");
    alice.close().await.unwrap();
}

/// Opens `path` and waits until `ready` shows.
pub(crate) async fn open(browser: &Client, app: &TestApp, path: &str, ready: &str) {
    browser.goto(&app.url(path)).await.unwrap();
    shown(browser, ready).await;
}

/// The search page for `words` once at least `hits` results show: the index trails the store
/// by a few milliseconds.
pub async fn search_until_found(browser: &Client, app: &TestApp, words: &str, hits: u64) {
    for _ in 0..50 {
        open(browser, app, &format!("/search?q={words}"), "main").await;
        let shown = script(
            browser,
            "return document.querySelectorAll('.search-hit').length;",
        )
        .await;
        if shown.as_u64().is_some_and(|shown| shown >= hits) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no search results for {words}");
}

/// The script modules this page fetched, by name inside their versioned folder (found from
/// `entry`), each fetched once.
async fn fetched_modules(browser: &Client, entry: &str) -> std::collections::BTreeSet<String> {
    let fetched = script(
        browser,
        "return performance.getEntriesByType('resource')
             .map(e => new URL(e.name)).filter(u => u.pathname.startsWith('/static/js/'))
             .map(u => u.pathname + u.search);",
    )
    .await;
    let fetched: Vec<String> = serde_json::from_value(fetched).unwrap();
    let folder = fetched
        .iter()
        .find(|url| url.ends_with(&format!("/{entry}")))
        .and_then(|url| url.strip_suffix(entry))
        .unwrap_or_else(|| panic!("the entry {entry} was fetched: {fetched:?}"))
        .to_owned();
    let names: std::collections::BTreeSet<String> = fetched
        .iter()
        .map(|url| {
            url.strip_prefix(folder.as_str())
                .unwrap_or_else(|| panic!("{url} is outside {folder}"))
                .to_owned()
        })
        .collect();
    assert_eq!(names.len(), fetched.len(), "each module once: {fetched:?}");
    names
}

/// Two browsers logged in through the form, both showing the lobby.
async fn alice_and_bob_in_the_lobby(driver: &Driver, app: &TestApp) -> (Client, Client) {
    let alice = driver.browser().await;
    let bob = driver.browser().await;
    log_in(&alice, app, "alice").await;
    log_in(&bob, app, "bob").await;
    alice.goto(&app.url("/rooms/lobby")).await.unwrap();
    bob.goto(&app.url("/rooms/lobby")).await.unwrap();
    (alice, bob)
}

pub(crate) async fn shown(browser: &Client, selector: &str) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(SEEN_WITHIN)
        .for_element(Locator::Css(selector))
        .await
        .unwrap_or_else(|e| panic!("{selector} should appear: {e}"))
}

/// Clicks what `selector` finds, finding it again if a live update replaced it meanwhile
/// (the sidebar lists are swapped whole).
pub(crate) async fn click_shown(browser: &Client, selector: &str) {
    let deadline = tokio::time::Instant::now() + SEEN_WITHIN;
    loop {
        match shown(browser, selector).await.click().await {
            Ok(_) => return,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, selector, "click missed, finding it again");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{selector} could not be clicked: {e}"),
        }
    }
}

pub(crate) async fn script(browser: &Client, code: &str) -> serde_json::Value {
    browser.execute(code, vec![]).await.unwrap()
}

/// Polls a script until it returns true.
pub(crate) async fn until(browser: &Client, what: &str, code: &str) {
    let deadline = tokio::time::Instant::now() + SEEN_WITHIN;
    loop {
        if script(browser, code).await == serde_json::json!(true) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn say(browser: &Client, text: &str) {
    let composer = browser.find(Locator::Css("#composer-body")).await.unwrap();
    composer.send_keys(text).await.unwrap();
    composer.send_keys("\u{E007}").await.unwrap();
}

pub(crate) async fn save_screenshot(browser: &Client, name: &str) {
    std::fs::create_dir_all("target/screenshots").unwrap();
    let png = browser.screenshot().await.unwrap();
    std::fs::write(format!("target/screenshots/{name}.png"), png).unwrap();
}

#[tokio::test]
async fn the_sidebar_regroups_live_and_counts_unread_messages() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    log_in(&alice, &app, "alice").await;
    alice.goto(&app.url("/rooms/lobby")).await.unwrap();

    // Bob opens a new room, alice looks in and goes back to the lobby; bob talks in it, and
    // alice sees it move on top, with a count.
    let bob = app.login("bob").await;
    bob.post_form("/rooms", &[("name", "news")]).await;
    alice.goto(&app.url("/rooms/news")).await.unwrap();
    shown(&alice, ".msg[data-kind='system']").await;
    alice.goto(&app.url("/rooms/lobby")).await.unwrap();
    shown(&alice, "#room-list a[data-slug=news]").await;
    for text in ["first", "second"] {
        bob.post_form("/rooms/news/messages", &[("body", text)])
            .await;
    }
    until(
        &alice,
        "news on top of Today with an unread count",
        r#"const first = document.querySelector('#room-list .room-group');
           const link = first && first.querySelector('a');
           return !!link && first.querySelector('h2').textContent === 'Today'
               && link.dataset.slug === 'news'
               && link.querySelector('.badge').textContent === '2'
               && link.classList.contains('unread');"#,
    )
    .await;
    let current = script(
        &alice,
        "return document.querySelector('#room-list a[aria-current=page]').dataset.slug;",
    )
    .await;
    assert_eq!(
        current,
        serde_json::json!("lobby"),
        "the open room stays marked"
    );
    until(
        &alice,
        "the count in the title",
        "return /^\\(\\d+\\) /.test(document.title);",
    )
    .await;

    // Opening the room clears its count.
    alice.goto(&app.url("/rooms/news")).await.unwrap();
    shown(&alice, ".msg[data-author='bob']").await;
    let badge = script(
        &alice,
        "return document.querySelector('#room-list a[data-slug=news] .badge').textContent;",
    )
    .await;
    assert_eq!(badge, serde_json::json!(""));
    alice.close().await.unwrap();
}

#[tokio::test]
async fn presence_counts_a_person_once_across_tabs_and_goes_with_the_last_silently() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let (alice, bob) = alice_and_bob_in_the_lobby(&driver, &app).await;
    let first_tab = bob.window().await.unwrap();
    let second = bob.new_window(true).await.unwrap();
    bob.switch_to_window(second.handle).await.unwrap();
    bob.goto(&app.url("/rooms/lobby")).await.unwrap();

    shown(&alice, "#presence li[data-author='bob']").await;
    shown(&alice, ".msg[data-kind='system']").await;
    let joins = script(
        &alice,
        "return [...document.querySelectorAll('.msg[data-kind=system]')].filter(m => m.textContent.includes('bob joined')).length;",
    )
    .await;
    assert_eq!(joins, serde_json::json!(1), "two tabs are one join");

    // Closing one tab keeps bob here; closing the last one makes him leave.
    bob.close_window().await.unwrap();
    bob.switch_to_window(first_tab.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let here = script(
        &alice,
        "return !!document.querySelector('#presence li[data-author=bob]');",
    )
    .await;
    assert_eq!(
        here,
        serde_json::json!(true),
        "still here with one tab open"
    );

    bob.goto("about:blank").await.unwrap();
    until(
        &alice,
        "bob leaving",
        "return !document.querySelector('#presence li[data-author=bob]');",
    )
    .await;
    // Closing tabs is not leaving the room: nothing is said.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let left = script(
        &alice,
        "return [...document.querySelectorAll('.msg[data-kind=system]')].some(m => m.textContent.includes('bob left'));",
    )
    .await;
    assert_eq!(left, serde_json::json!(false));
    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

#[tokio::test]
async fn the_typing_indicator_appears_for_others_and_expires() {
    let app = spawn_app_with(|config| config.typing_expiry = 1.0).await;
    let driver = Driver::start().await;
    let (alice, bob) = alice_and_bob_in_the_lobby(&driver, &app).await;
    shown(&alice, "#presence li[data-author='bob']").await;

    let composer = bob.find(Locator::Css("#composer-body")).await.unwrap();
    composer.send_keys("hel").await.unwrap();
    let typing = shown(&alice, "#typing span[data-author='bob']").await;
    assert_eq!(typing.text().await.unwrap(), "bob is typing…");
    let own = script(
        &bob,
        "const el = document.querySelector('#typing span[data-author=bob]'); return !el || el.offsetParent === null;",
    )
    .await;
    assert_eq!(
        own,
        serde_json::json!(true),
        "nobody sees themselves typing"
    );
    until(
        &alice,
        "the indicator to expire",
        "return !document.querySelector('#typing span[data-author=bob]');",
    )
    .await;
    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

#[tokio::test]
async fn scrolled_up_readers_get_a_new_messages_pill_and_load_older_keeps_their_place() {
    let app = spawn_app().await;
    let bob = app.login("bob").await;
    for n in 1..=120 {
        let body = format!("history {n}");
        bob.post_form("/rooms/lobby/messages", &[("body", body.as_str())])
            .await;
    }
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    log_in(&alice, &app, "alice").await;
    alice.goto(&app.url("/rooms/lobby")).await.unwrap();
    shown(&alice, "#msg-120").await;
    until(
        &alice,
        "the view to open at the newest message",
        "const l = document.getElementById('messages'); return l.scrollHeight - l.scrollTop - l.clientHeight < 5;",
    )
    .await;

    // Scrolled up a little, a new message shows the pill instead of moving the view.
    script(&alice, "const l = document.getElementById('messages'); l.scrollTop = l.scrollHeight - l.clientHeight - 400; return true;").await;
    bob.post_form("/rooms/lobby/messages", &[("body", "fresh news")])
        .await;
    shown(&alice, "#new-messages:not([hidden])").await;
    alice
        .find(Locator::Css("#new-messages"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &alice,
        "the pill to take the reader down",
        "const l = document.getElementById('messages'); return document.getElementById('new-messages').hidden && l.scrollHeight - l.scrollTop - l.clientHeight < 5;",
    )
    .await;

    // Scrolling to the top loads older messages and keeps the reader's place.
    script(
        &alice,
        "document.getElementById('messages').scrollTop = 0; return true;",
    )
    .await;
    shown(&alice, "#msg-30").await;
    until(
        &alice,
        "the first message of the old page to stay in view",
        "const l = document.getElementById('messages'); const m = document.getElementById('msg-71');
         const top = m.getBoundingClientRect().top - l.getBoundingClientRect().top;
         return l.scrollTop > 0 && top > -200 && top < l.clientHeight;",
    )
    .await;
    alice.close().await.unwrap();
}

#[tokio::test]
async fn a_dropped_connection_shows_a_banner_then_catches_up() {
    let app = spawn_app().await;
    let addr = app.addr;
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    log_in(&alice, &app, "alice").await;
    alice.goto(&app.url("/rooms/lobby")).await.unwrap();
    say(&alice, "before the restart").await;
    shown(&alice, ".msg[data-author='alice']").await;

    let data_dir = app.stop().await;
    shown(&alice, "#connection:not([hidden])").await;
    let app = spawn_app_in(data_dir, |config| config.addr = addr).await;
    let bob = app.login("bob").await;
    bob.post_form("/rooms/lobby/messages", &[("body", "while you were away")])
        .await;
    shown(&alice, ".msg[data-author='bob']").await;
    until(
        &alice,
        "the banner to go",
        "return document.getElementById('connection').hidden;",
    )
    .await;
    let copies = script(
        &alice,
        "return document.querySelectorAll('.msg[data-author=bob]').length;",
    )
    .await;
    assert_eq!(copies, serde_json::json!(1), "no duplicates after catch-up");
    alice.close().await.unwrap();
}

#[tokio::test]
async fn the_welcome_screen_starts_a_room_from_a_first_message() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    log_in(&alice, &app, "alice").await;
    save_screenshot(&alice, "welcome").await;
    let first = alice.find(Locator::Css("#start-message")).await.unwrap();
    first.send_keys("Offsite planning").await.unwrap();
    // Shift+Enter is a new line (WebDriver keeps Shift down until the NULL key).
    first
        .send_keys("\u{E008}\u{E007}\u{E000}Where shall we go?")
        .await
        .unwrap();
    // Enter starts the chat, as the button does.
    first.send_keys("\u{E007}").await.unwrap();
    shown(&alice, "main.room[data-room='offsite-planning']").await;
    let message = shown(&alice, ".msg[data-author='alice'] .msg-body").await;
    assert_eq!(
        message.text().await.unwrap(),
        "Offsite planning\nWhere shall we go?"
    );
    shown(
        &alice,
        "#room-list a[data-slug='offsite-planning'][aria-current='page']",
    )
    .await;

    // With nothing typed, each new chat gets its own room ("Chat by …").
    for _ in 0..2 {
        alice.goto(&app.url("/")).await.unwrap();
        alice
            .find(Locator::Css(".start-room button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        shown(&alice, "main.room").await;
    }
    let chats = script(
        &alice,
        "return [...document.querySelectorAll('#room-list a')].filter(a => a.textContent.startsWith('Chat ')).length;",
    )
    .await;
    assert_eq!(chats, serde_json::json!(2));
    alice.close().await.unwrap();
}

#[tokio::test]
async fn without_javascript_people_can_log_in_read_and_post() {
    let app = spawn_app().await;
    let bob = app.login("bob").await;
    bob.post_form(
        "/rooms/lobby/messages",
        &[("body", "hello, no-script friend")],
    )
    .await;
    let driver = Driver::start().await;
    let alice = driver
        .browser_with(&[
            "--window-size=1200,800",
            "--blink-settings=scriptEnabled=false",
        ])
        .await;
    log_in(&alice, &app, "alice").await;
    alice.goto(&app.url("/rooms/lobby")).await.unwrap();
    let read = shown(&alice, ".msg[data-author='bob'] .msg-body").await;
    assert_eq!(read.text().await.unwrap(), "hello, no-script friend");
    let time = shown(&alice, ".msg[data-author='bob'] time").await;
    assert!(
        time.text().await.unwrap().ends_with("UTC"),
        "UTC without the script"
    );

    let composer = alice.find(Locator::Css("#composer-body")).await.unwrap();
    composer
        .send_keys("posted with a plain form")
        .await
        .unwrap();
    alice
        .find(Locator::Css("#composer button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let posted = shown(&alice, ".msg[data-author='alice'] .msg-body").await;
    assert_eq!(posted.text().await.unwrap(), "posted with a plain form");

    // Files too: the paperclip picks them, and "Upload" sends them.
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("agenda.txt");
    std::fs::write(&notes, "1. attachments\n").unwrap();
    let paperclip = alice.find(Locator::Css("#attach-file")).await.unwrap();
    paperclip.send_keys(notes.to_str().unwrap()).await.unwrap();
    alice
        .find(Locator::Css("button[form=attach-form]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let card = shown(
        &alice,
        ".msg[data-author='alice'] .attachment-file .file-name",
    )
    .await;
    assert_eq!(card.text().await.unwrap(), "agenda.txt");
    alice.close().await.unwrap();
}

/// Wide and narrow, light and dark: saved under target/screenshots/ to be looked at.
#[tokio::test]
async fn the_room_page_holds_its_layout_wide_and_narrow_light_and_dark() {
    let app = spawn_app().await;
    let bob = app.login("bob").await;
    bob.post_form("/rooms", &[("name", "Design review")]).await;
    for text in [
        "Morning! The new sidebar groups rooms by recency.",
        "Links work too: https://example.com/spec",
        "Multi-line\nmessages keep\ntheir lines.",
    ] {
        bob.post_form("/rooms/design-review/messages", &[("body", text)])
            .await;
    }
    let driver = Driver::start().await;
    for (name, nickname, phone, flags) in [
        (
            "room-wide-light",
            "alice",
            false,
            vec!["--window-size=1440,900"],
        ),
        (
            "room-wide-dark",
            "amy",
            false,
            vec!["--window-size=1440,900", "--force-dark-mode"],
        ),
        ("room-narrow-light", "ann", true, vec![]),
        ("room-narrow-dark", "ava", true, vec!["--force-dark-mode"]),
    ] {
        let alice = if phone {
            driver.phone(&flags).await
        } else {
            driver.browser_with(&flags).await
        };
        log_in(&alice, &app, nickname).await;
        alice.goto(&app.url("/rooms/design-review")).await.unwrap();
        say(&alice, "Looks good to me. Shipping it today.").await;
        shown(&alice, &format!(".msg[data-author='{nickname}']")).await;
        let overflow = script(
            &alice,
            "return document.documentElement.scrollWidth > window.innerWidth;",
        )
        .await;
        assert_eq!(
            overflow,
            serde_json::json!(false),
            "{name}: no sideways scrolling"
        );
        let composer_visible = script(
            &alice,
            "const r = document.getElementById('composer-body').getBoundingClientRect(); return r.bottom <= window.innerHeight && r.width > 200;",
        )
        .await;
        assert_eq!(
            composer_visible,
            serde_json::json!(true),
            "{name}: composer in view"
        );
        save_screenshot(&alice, name).await;
        if phone {
            // The sidebar is a drawer there: closed, then opened by its button.
            let width = script(&alice, "return window.innerWidth;").await;
            assert_eq!(width, serde_json::json!(375));
            alice
                .find(Locator::Css("#drawer-toggle"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            until(
                &alice,
                "the drawer to open",
                "const r = document.getElementById('sidebar').getBoundingClientRect(); return r.left >= 0 && r.right > 200;",
            )
            .await;
            save_screenshot(&alice, &format!("{name}-drawer")).await;
        }
        alice.close().await.unwrap();
    }
}

/// Shows the message toolbar for `selector`'s message, as hovering or tabbing to it does.
pub(crate) async fn open_toolbar(browser: &Client, message: &str) {
    browser
        .execute(
            "document.querySelector(arguments[0] + ' .msg-link').focus();",
            vec![serde_json::json!(message)],
        )
        .await
        .unwrap();
    shown(browser, "#msg-toolbar:not([hidden])").await;
}

#[tokio::test]
async fn people_edit_react_reply_and_delete_live_across_two_browsers() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let (alice, bob) = alice_and_bob_in_the_lobby(&driver, &app).await;

    say(&alice, "teh first draft").await;
    shown(&bob, ".msg[data-author='alice']").await;
    let mine = ".msg[data-author='alice']";

    // Alice edits her message in place; bob sees the new text marked as edited.
    open_toolbar(&alice, mine).await;
    alice
        .find(Locator::Css("#msg-toolbar [data-action='edit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let editor = shown(&alice, ".msg.editing textarea").await;
    editor.clear().await.unwrap();
    editor.send_keys("the final text").await.unwrap();
    editor.send_keys("\u{E007}").await.unwrap();
    until(
        &bob,
        "bob to see the edit",
        "var m = document.querySelector(\".msg[data-author='alice']\"); \
         return !!m && m.textContent.includes('the final text') && !!m.querySelector('.msg-edited');",
    )
    .await;

    // Bob can react and reply, but has no edit or delete for alice's message.
    open_toolbar(&bob, mine).await;
    let edit_shown = script(
        &bob,
        "return getComputedStyle(document.querySelector(\"#msg-toolbar [data-action='edit']\")).display !== 'none';",
    )
    .await;
    assert_eq!(
        edit_shown,
        serde_json::json!(false),
        "no edit button on others' messages"
    );
    bob.find(Locator::Css("#msg-toolbar .react-menu summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    bob.find(Locator::Css("#msg-toolbar [data-react='👍']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let reaction = shown(&alice, ".msg[data-author='alice'] .reaction[data-by='bob']").await;
    assert_eq!(
        reaction.attr("title").await.unwrap().as_deref(),
        Some("bob")
    );
    let count = reaction.find(Locator::Css(".count")).await.unwrap();
    assert_eq!(count.text().await.unwrap(), "1");

    open_toolbar(&bob, mine).await;
    bob.find(Locator::Css("#msg-toolbar [data-action='reply']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    shown(&bob, "#reply-bar:not([hidden])").await;
    say(&bob, "agreed").await;
    let quote = shown(&alice, ".msg[data-author='bob'] .msg-reply").await;
    assert!(quote.text().await.unwrap().contains("the final text"));
    shown(&bob, "#reply-bar[hidden]").await;

    open_toolbar(&alice, mine).await;
    save_screenshot(&alice, "message-actions").await;

    // Alice deletes her message: a marker stays in its place for both.
    alice
        .find(Locator::Css("#msg-toolbar [data-action='delete']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    alice.accept_alert().await.unwrap();
    until(
        &bob,
        "bob to see the deletion",
        "var m = document.querySelector(\".msg[data-author='alice']\"); \
         return !!m && m.classList.contains('deleted') && !m.textContent.includes('the final text');",
    )
    .await;
    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

#[tokio::test]
async fn typing_at_suggests_people_and_the_mentioned_person_sees_it_highlighted() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let (alice, bob) = alice_and_bob_in_the_lobby(&driver, &app).await;
    say(&bob, "morning all").await;
    shown(&alice, ".msg[data-author='bob']").await;

    let composer = alice.find(Locator::Css("#composer-body")).await.unwrap();
    composer.send_keys("@b").await.unwrap();
    let option = shown(
        &alice,
        "#mention-suggestions:not([hidden]) li[data-nickname='bob']",
    )
    .await;
    assert_eq!(option.text().await.unwrap(), "@bob");
    composer.send_keys("\u{E004}").await.unwrap(); // Tab takes the suggestion
    until(
        &alice,
        "the mention to be completed",
        "return document.getElementById('composer-body').value === '@bob ';",
    )
    .await;
    composer.send_keys("and @b").await.unwrap();
    shown(
        &alice,
        "#mention-suggestions:not([hidden]) li[data-nickname='bob']",
    )
    .await;
    composer.send_keys("\u{E007}").await.unwrap(); // Enter takes it too, and sends nothing
    until(
        &alice,
        "the second mention to be completed, not sent",
        "return document.getElementById('composer-body').value === '@bob and @bob ';",
    )
    .await;
    composer.send_keys("lunch?").await.unwrap();
    composer.send_keys("\u{E007}").await.unwrap();

    // The message names bob's login, which his page carries.
    let bobs_login = script(
        &bob,
        "return document.body.getAttribute('data-viewer-login');",
    )
    .await;
    let bobs_login = bobs_login.as_str().unwrap();
    let mention = format!(".msg[data-author='alice'][data-mentions~='{bobs_login}']");
    let mention = mention.as_str();
    shown(&bob, &format!("{mention} .mention[data-mention='bob']")).await;
    let highlighted = background_of(&bob, mention).await;
    let plain = background_of(&bob, ".msg[data-author='bob']").await;
    let for_alice = background_of(&alice, mention).await;
    assert_ne!(highlighted, plain, "a mention of the viewer stands out");
    assert_ne!(highlighted, for_alice, "only for the person mentioned");
    save_screenshot(&bob, "mention").await;
    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

#[tokio::test]
async fn a_name_in_the_room_opens_a_direct_conversation_listed_apart() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let (alice, bob) = alice_and_bob_in_the_lobby(&driver, &app).await;

    shown(&alice, "#presence a[href='/dm/bob']")
        .await
        .click()
        .await
        .unwrap();
    // The conversation starts with the first message, from the page /dm/bob shows.
    shown(&alice, "textarea#start-message")
        .await
        .send_keys("a word in private")
        .await
        .unwrap();
    save_screenshot(&alice, "direct-new").await;
    click_shown(&alice, "form.start-room button[type=submit]").await;
    shown(&alice, "main.room[data-room^='dm~']").await;
    shown(&alice, ".msg[data-author='alice']").await;

    bob.goto(&app.url("/")).await.unwrap();
    let entry = "#dm-list a[data-slug^='dm~']";
    shown(&bob, entry).await;
    let name = script(
        &bob,
        &format!("return document.querySelector(\"{entry} .room-name\").textContent"),
    )
    .await;
    assert_eq!(name, "alice", "named after the other person");
    click_shown(&bob, entry).await;
    let seen = shown(&bob, ".msg[data-author='alice'] .msg-body").await;
    assert_eq!(seen.text().await.unwrap(), "a word in private");
    save_screenshot(&bob, "direct").await;
    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

#[tokio::test]
async fn a_file_attached_with_the_paperclip_shows_inline_for_another_browser() {
    let app = spawn_app_with(|config| config.max_upload = 2 * 1024 * 1024).await;
    let driver = Driver::start().await;
    let (alice, bob) = alice_and_bob_in_the_lobby(&driver, &app).await;
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("sunset.png");
    let sky = image::RgbImage::from_fn(800, 500, |x, y| {
        let t = y as f32 / 500.0;
        let sun = ((x as f32 - 560.0).powi(2) + (y as f32 - 330.0).powi(2)).sqrt() < 70.0;
        if sun {
            image::Rgb([255, 214, 120])
        } else {
            image::Rgb([
                (250.0 - 120.0 * t) as u8,
                (140.0 - 90.0 * t) as u8,
                (90.0 + 80.0 * t) as u8,
            ])
        }
    });
    sky.save(&photo).unwrap();
    let notes = dir.path().join("meeting notes.pdf");
    std::fs::write(
        &notes,
        b"%PDF-1.4\n% not really a PDF, only its first bytes\n".repeat(600),
    )
    .unwrap();
    let huge = dir.path().join("huge.bin");
    std::fs::write(&huge, vec![0u8; 3 * 1024 * 1024]).unwrap();

    // The typed text goes with the file as its caption.
    let composer = alice.find(Locator::Css("#composer-body")).await.unwrap();
    composer
        .send_keys("the view from the office")
        .await
        .unwrap();
    let paperclip = alice.find(Locator::Css("#attach-file")).await.unwrap();
    paperclip.send_keys(photo.to_str().unwrap()).await.unwrap();

    let inline = "#messages .msg[data-author='alice'] .attachment-image img";
    until(
        &bob,
        "alice's image, loaded inline",
        &format!(
            "var img = document.querySelector(\"{inline}\"); \
             return !!img && img.complete && img.naturalWidth === 800 && img.naturalHeight === 500;"
        ),
    )
    .await;
    let img = bob.find(Locator::Css(inline)).await.unwrap();
    assert_eq!(img.attr("width").await.unwrap().as_deref(), Some("480"));
    assert_eq!(img.attr("height").await.unwrap().as_deref(), Some("300"));
    let shown_size = script(
        &bob,
        &format!("var r = document.querySelector(\"{inline}\").getBoundingClientRect(); return [r.width, r.height];"),
    )
    .await;
    assert_eq!(
        shown_size,
        serde_json::json!([480, 300]),
        "shown at its size"
    );
    let caption = bob
        .find(Locator::Css(
            "#messages .msg[data-author='alice'] .msg-body",
        ))
        .await
        .unwrap();
    assert_eq!(caption.text().await.unwrap(), "the view from the office");
    until(
        &alice,
        "the composer emptied",
        "return document.getElementById('composer-body').value === '';",
    )
    .await;

    // Anything else is a card with its name and size.
    let paperclip = alice.find(Locator::Css("#attach-file")).await.unwrap();
    paperclip.send_keys(notes.to_str().unwrap()).await.unwrap();
    let card = "#messages .msg[data-author='alice'] .attachment-file";
    until(
        &bob,
        "the file card",
        &format!("return !!document.querySelector(\"{card}\");"),
    )
    .await;
    let card = bob.find(Locator::Css(card)).await.unwrap();
    let card = card.text().await.unwrap();
    assert!(
        card.contains("meeting notes.pdf") && card.contains("29 KB"),
        "{card}"
    );

    // Dropped on the room, or pasted into the composer, files go the same way.
    for (event, name) in [("drop", "dropped.txt"), ("paste", "pasted.txt")] {
        script(
            &alice,
            &format!(
                "var files = new DataTransfer(); \
                 files.items.add(new File(['some text'], '{name}', {{ type: 'text/plain' }})); \
                 var event = '{event}' === 'drop' \
                   ? new DragEvent('drop', {{ dataTransfer: files, bubbles: true, cancelable: true }}) \
                   : new ClipboardEvent('paste', {{ clipboardData: files, bubbles: true, cancelable: true }}); \
                 var target = '{event}' === 'drop' ? document.getElementById('messages') \
                   : document.getElementById('composer-body'); \
                 target.dispatchEvent(event); return true;"
            ),
        )
        .await;
        until(
            &bob,
            &format!("the {event} file"),
            &format!(
                "return [...document.querySelectorAll('.attachment-file .file-name')] \
                 .some(function (n) {{ return n.textContent === '{name}'; }});"
            ),
        )
        .await;
    }

    // Too large: refused in the page, before anything is sent.
    let paperclip = alice.find(Locator::Css("#attach-file")).await.unwrap();
    paperclip.send_keys(huge.to_str().unwrap()).await.unwrap();
    let error = shown(&alice, "#composer-error[data-error='too_large']").await;
    assert!(error.text().await.unwrap().contains("at most 2 MB"));

    save_screenshot(&bob, "attachments").await;
    save_screenshot(&alice, "attachments-own").await;

    // On a phone, in dark mode, the picture fits the screen at its proportions.
    let carol = driver.phone(&["--force-dark-mode"]).await;
    log_in(&carol, &app, "carol").await;
    carol.goto(&app.url("/rooms/lobby")).await.unwrap();
    until(
        &carol,
        "the picture within the screen",
        &format!(
            "var img = document.querySelector(\"{inline}\"); if (!img || !img.complete) return false; \
             var r = img.getBoundingClientRect(); \
             return r.right <= window.innerWidth && Math.abs(r.width / r.height - 1.6) < 0.02;"
        ),
    )
    .await;
    save_screenshot(&carol, "attachments-phone-dark").await;
    alice.close().await.unwrap();
    bob.close().await.unwrap();
    carol.close().await.unwrap();
}

/// A link to the login form whose `next` hides `//evil.example` behind a tab: a browser
/// drops the tab, so it used to follow the redirect off-site once logged in.
#[tokio::test]
async fn after_logging_in_from_a_crafted_link_the_browser_stays_on_this_site() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    // Off-site, the page would be the browser's own error page, never the welcome view.
    log_in_from(
        &browser,
        &app,
        "/login?next=/%09/evil.example/rooms/lobby",
        "alice",
    )
    .await;
    let url = browser.current_url().await.unwrap();
    assert_eq!(url.as_str(), format!("{}/", app.origin()));
    browser.close().await.unwrap();
}

#[tokio::test]
async fn a_nickname_protected_in_the_browser_logs_in_again_with_its_password() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let bob = driver.browser().await;
    log_in(&bob, &app, "bob").await;
    click_shown(&bob, ".me a[href='/settings/nickname']").await;
    for field in ["#new-password", "#confirm-password"] {
        shown(&bob, field)
            .await
            .send_keys("correct horse")
            .await
            .unwrap();
    }
    click_shown(&bob, ".password-form button[type=submit]").await;
    shown(&bob, "#nickname-state[data-protected]").await;
    save_screenshot(&bob, "nickname").await;
    click_shown(&bob, "form[action='/logout'] button").await;
    shown(&bob, "#nickname").await;

    // The login form asks for the password, and it brings bob back.
    let nickname = shown(&bob, "#nickname").await;
    nickname.send_keys("bob").await.unwrap();
    click_shown(&bob, "form button[type=submit]").await;
    shown(&bob, "#password")
        .await
        .send_keys("correct horse")
        .await
        .unwrap();
    save_screenshot(&bob, "login-password").await;
    click_shown(&bob, "form button[type=submit]").await;
    shown(&bob, "main.welcome").await;
    bob.close().await.unwrap();
}

#[tokio::test]
async fn an_unread_count_is_shown_whole_beside_a_long_room_name() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    log_in(&alice, &app, "alice").await;
    let bob = app.login("bob").await;
    let name = "a room with a name far too long for the sidebar";
    bob.post_form("/rooms", &[("name", name)]).await;
    let slug = "a-room-with-a-name-far-too-long-for-the-sidebar";
    // A member of it, so what is said there counts for her.
    alice
        .goto(&app.url(&format!("/rooms/{slug}")))
        .await
        .unwrap();
    shown(&alice, "main.room").await;
    for n in 0..12 {
        let body = format!("news {n}");
        bob.post_form(
            &format!("/rooms/{slug}/messages"),
            &[("body", body.as_str())],
        )
        .await;
    }
    alice.goto(&app.url("/")).await.unwrap();
    let badge = format!(".room-list a[data-slug='{slug}'] .badge");
    shown(&alice, &badge).await;
    let whole = script(
        &alice,
        &format!(
            "const b = document.querySelector(\"{badge}\"); \
             return [b.textContent, b.scrollWidth <= b.clientWidth];"
        ),
    )
    .await;
    assert_eq!(whole, serde_json::json!(["12", true]), "the count, not cut");
    save_screenshot(&alice, "long-name-badge").await;
    alice.close().await.unwrap();
}

#[tokio::test]
async fn escape_closes_the_topic_editor_and_saving_a_topic_closes_it_too() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    log_in(&alice, &app, "alice").await;
    alice.goto(&app.url("/rooms/lobby")).await.unwrap();
    let open = "return document.querySelector('details.topic-edit').open;";

    click_shown(&alice, "details.topic-edit summary").await;
    let input = shown(&alice, "#topic-input").await;
    input.click().await.unwrap();
    input.send_keys("\u{E00C}").await.unwrap(); // Escape
    assert_eq!(script(&alice, open).await, serde_json::json!(false));
    let focused = "return document.activeElement.matches('details.topic-edit summary');";
    assert_eq!(script(&alice, focused).await, serde_json::json!(true));

    click_shown(&alice, "details.topic-edit summary").await;
    let input = shown(&alice, "#topic-input").await;
    input.send_keys("Plans for spring\u{E007}").await.unwrap(); // and Enter
    until(
        &alice,
        "the topic to be saved",
        "return document.getElementById('room-topic').textContent === 'Plans for spring';",
    )
    .await;
    until(
        &alice,
        "the editor to close",
        "return !document.querySelector('details.topic-edit').open;",
    )
    .await;
    alice.close().await.unwrap();
}

#[tokio::test]
async fn the_time_on_ones_own_message_is_readable_against_its_background() {
    let app = spawn_app().await;
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    log_in(&alice, &app, "alice").await;
    alice.goto(&app.url("/rooms/lobby")).await.unwrap();
    say(&alice, "my own words").await;
    let own = ".msg[data-author='alice']";
    shown(&alice, own).await;
    // WCAG's contrast ratio of the time's colour on the message's own background.
    let ratio = script(
        &alice,
        &format!(
            "const msg = document.querySelector(\"{own}\");
             const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
             const lum = ([r, g, b]) => [r, g, b].map((v) => {{
               v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
             }}).reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
             const fg = lum(rgb(getComputedStyle(msg.querySelector('time')).color));
             const bg = lum(rgb(getComputedStyle(msg).backgroundColor));
             return (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);"
        ),
    )
    .await;
    let ratio = ratio.as_f64().unwrap();
    assert!(ratio >= 4.5, "contrast {ratio:.2} is under WCAG AA's 4.5");
    alice.close().await.unwrap();
}
