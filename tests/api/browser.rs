//! What a person sees, in headless Chromium driven through chromedriver.

use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use tokio::process::{Child, Command};

use crate::helpers::{TestApp, spawn_app};

/// A chromedriver process for one test; killed when dropped.
pub struct Driver {
    _process: Child,
    url: String,
}

impl Driver {
    /// Starts chromedriver. Browser tests need Debian's `chromium` and `chromium-driver`:
    /// when they are missing this fails loudly rather than skipping.
    pub async fn start() -> Driver {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let process = Command::new("chromedriver")
            .arg(format!("--port={port}"))
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
                    _process: process,
                    url,
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start listening on {port}");
    }

    /// A fresh headless browser with its own profile (and so its own cookies).
    pub async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                    "--window-size=1200,800",
                ],
            }),
        );
        ClientBuilder::native()
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a chromium session")
    }
}

pub async fn log_in(browser: &Client, app: &TestApp, nickname: &str) {
    browser.goto(&app.url("/login")).await.unwrap();
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
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("main.welcome"))
        .await
        .expect("the welcome view after logging in");
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
    let alice = driver.browser().await;
    let bob = driver.browser().await;
    log_in(&alice, &app, "alice").await;
    log_in(&bob, &app, "bob").await;
    for browser in [&alice, &bob] {
        browser.goto(&app.url("/rooms/lobby")).await.unwrap();
    }

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
