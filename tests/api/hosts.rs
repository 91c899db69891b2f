//! Which `Host` the server answers to: its loopback names and the address it listens on,
//! and with `--public-url` that URL's host. Any other name may be a site that pointed its
//! own name at this machine (DNS rebinding), so it gets 421.

use chat::{Application, Config};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

async fn get_with_host(app: &TestApp, path: &str, host: &str) -> reqwest::Response {
    app.visitor()
        .http
        .get(app.url(path))
        .header("Host", host)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn another_sites_name_for_this_machine_is_refused_and_loopback_names_are_served() {
    let app = spawn_app().await;
    let port = app.addr.port();
    for host in [
        format!("evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
        format!("localhost:{}", port + 1),
        "evil.example".to_owned(),
    ] {
        for path in ["/healthz", "/login", "/rooms/lobby"] {
            let response = get_with_host(&app, path, &host).await;
            assert_eq!(response.status(), 421, "{host} {path}");
            if path == "/login" {
                let page = response.text().await.unwrap();
                assert!(page.contains("does not answer to that host name"), "{page}");
            }
        }
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("LocalHost:{port}"),
    ] {
        assert_eq!(get_with_host(&app, "/healthz", &host).await.status(), 200);
    }
}

#[tokio::test]
async fn a_rebound_name_cannot_log_in_nor_read_rooms() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    alice
        .post_form("/rooms/lobby/messages", &[("body", "for members only")])
        .await;
    // What a page at http://evil.example:PORT/ sends once its name resolves to 127.0.0.1:
    // its own Host and Origin, so the same-origin check alone would let it through.
    let evil = format!("evil.example:{}", app.addr.port());
    let visitor = app.visitor();
    let login = visitor
        .http
        .post(app.url("/login"))
        .header("Host", &evil)
        .header("Origin", format!("http://{evil}"))
        .form(&[("nickname", "mallory")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 421);
    assert!(visitor.cookie().is_none(), "no session");
    let room = visitor
        .http
        .get(app.url("/rooms/lobby"))
        .header("Host", &evil)
        .header("Cookie", alice.cookie().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(room.status(), 421, "not even with a member's cookie");
    assert!(!room.text().await.unwrap().contains("for members only"));
}

#[tokio::test]
async fn with_a_public_url_its_host_is_served_and_the_setup_link_uses_it() {
    let app =
        spawn_app_with(|config| config.public_url = Some("https://chat.example.com".into())).await;
    assert!(
        app.admin_setup_link
            .as_deref()
            .is_some_and(|link| link.starts_with("https://chat.example.com/admin?token=")),
        "{:?}",
        app.admin_setup_link
    );
    for host in ["chat.example.com", "chat.example.com:443"] {
        assert_eq!(get_with_host(&app, "/healthz", host).await.status(), 200);
    }
    let port = app.addr.port();
    // The address it listens on still answers, for health checks and `chat backup --server`.
    assert_eq!(
        get_with_host(&app, "/healthz", &format!("127.0.0.1:{port}"))
            .await
            .status(),
        200
    );
    for host in [
        "evil.example",
        "chat.example.com:8443",
        "chat.example.com.evil.example",
    ] {
        assert_eq!(
            get_with_host(&app, "/healthz", host).await.status(),
            421,
            "{host}"
        );
    }
}

#[tokio::test]
async fn a_listener_other_machines_reach_needs_a_public_url() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path());
    config.addr = "0.0.0.0:0".parse().unwrap();
    let refused = Application::build(config.clone())
        .await
        .err()
        .expect("no public URL: no start");
    assert!(refused.to_string().contains("--public-url"), "{refused:#}");
    assert!(
        !dir.path().join("chat.db").exists(),
        "refused before opening anything"
    );

    config.public_url = Some("http://chat.example.com:3000".into());
    let app = Application::build(config)
        .await
        .expect("with one, it starts");
    assert!(app.address().ip().is_unspecified());
    drop(app);

    let other = tempfile::tempdir().unwrap();
    let mut bad = Config::for_tests(other.path());
    bad.public_url = Some("https://chat.example.com/chat".into());
    let refused = Application::build(bad).await.err().expect("not an origin");
    assert!(refused.to_string().contains("--public-url"), "{refused:#}");
}
