use crate::helpers::{
    Backend, files_under, message_ids, on_both_backends, sidebar_badge, sidebar_link, spawn_app,
    spawn_app_on,
};

#[tokio::test]
async fn the_lobby_exists_and_renders_sidebar_history_and_composer() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let page = alice.get_text("/rooms/lobby").await;
    assert!(page.contains(r#"ws-connect="/rooms/lobby/ws""#), "{page}");
    assert!(page.contains(r#"action="/rooms/lobby/messages""#));
    assert!(page.contains(r#"name="body""#));
    let lobby_link = sidebar_link(&page, "lobby").expect("the lobby in the sidebar");
    assert!(
        lobby_link.contains(r#"aria-current="page""#),
        "{lobby_link}"
    );
    assert!(page.contains("Today"), "sidebar groups rooms by recency");
}

#[tokio::test]
async fn creating_a_room_redirects_to_it_and_the_same_slug_joins_it() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let response = alice
        .post_form("/rooms", &[("name", "Release Planning!")])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/rooms/release-planning");
    let page = alice.get_text("/rooms/release-planning").await;
    assert!(page.contains("Release Planning!"));

    let bob = app.login("bob").await;
    let response = bob
        .post_form("/rooms", &[("name", "release   planning")])
        .await;
    assert_eq!(response.headers()["location"], "/rooms/release-planning");
    assert!(bob.get_text("/").await.contains("/rooms/release-planning"));
}

#[tokio::test]
async fn a_room_name_without_letters_is_refused() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let response = alice.post_form("/rooms", &[("name", "!!!")]).await;
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("at least one letter")
    );
}

#[tokio::test]
async fn an_unknown_room_gets_a_friendly_404_page() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let response = alice.get("/rooms/nowhere").await;
    assert_eq!(response.status(), 404);
    let page = response.text().await.unwrap();
    assert!(page.contains("Nothing here"), "{page}");
    assert!(page.contains("<html"));
}

#[tokio::test]
async fn posting_without_javascript_persists_broadcasts_and_redirects_back() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let mut bob_ws = bob.ws("lobby").await;
    bob_ws.resume(0).await;

    let response = alice
        .post_form("/rooms/lobby/messages", &[("body", "hello without js")])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/rooms/lobby");

    let frame = bob_ws.next_text().await;
    assert!(frame.contains("hello without js"), "{frame}");
    assert!(frame.contains(r#"data-author="alice""#));
    let page = alice.get_text("/rooms/lobby").await;
    assert!(page.contains("hello without js"));
}

#[tokio::test]
async fn an_invalid_no_js_post_gets_422_with_the_error_and_the_text_kept() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let long = "y".repeat(4001);
    let response = alice
        .post_form("/rooms/lobby/messages", &[("body", long.as_str())])
        .await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(page.contains(r#"data-error="too_long""#), "{page}");
    assert!(page.contains(&long), "the text is kept");
    assert!(message_ids(&page).is_empty(), "nothing stored");
}

#[tokio::test]
async fn a_form_over_64_kib_gets_413_but_4000_cjk_characters_fit() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let cjk = "漢".repeat(4000);
    let response = alice
        .post_form("/rooms/lobby/messages", &[("body", cjk.as_str())])
        .await;
    assert_eq!(response.status(), 303);
    let huge = "x".repeat(70 * 1024);
    let response = alice
        .post_form("/rooms/lobby/messages", &[("body", huge.as_str())])
        .await;
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn older_messages_come_fifty_at_a_time_before_an_id() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    for n in 1..=120 {
        let body = format!("message {n}");
        let response = alice
            .post_form("/rooms/lobby/messages", &[("body", body.as_str())])
            .await;
        assert_eq!(response.status(), 303);
    }
    let page = alice.get_text("/rooms/lobby").await;
    assert_eq!(message_ids(&page), (71..=120).collect::<Vec<_>>());
    assert!(page.contains("/rooms/lobby/messages?before=71"));

    let fragment = alice
        .http
        .get(app.url("/rooms/lobby/messages?before=71"))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(message_ids(&fragment), (21..=70).collect::<Vec<_>>());
    assert!(!fragment.contains("<html"), "a fragment, not a page");
    assert!(fragment.contains("before=21"));

    let without_js = alice.get_text("/rooms/lobby/messages?before=21").await;
    assert_eq!(message_ids(&without_js), (1..=20).collect::<Vec<_>>());
    assert!(without_js.contains("<html"), "a whole page without JS");
}

#[tokio::test]
async fn health_and_static_assets_are_served_with_cache_headers() {
    let app = spawn_app().await;
    let visitor = app.visitor();
    assert_eq!(visitor.get_text("/healthz").await, "ok");
    let page = app.login("alice").await.get_text("/").await;
    let css = page
        .split('"')
        .find(|s| s.starts_with("/static/app.css?v="))
        .expect("a versioned stylesheet link");
    let response = visitor.get(css).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let etag = response.headers()["etag"].clone();
    let revalidated = visitor
        .http
        .get(app.url("/static/app.css"))
        .header("If-None-Match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
    for vendored in ["htmx-2.0.11.min.js", "htmx-ext-ws-2.0.4.min.js"] {
        assert!(page.contains(vendored), "{vendored} is linked");
    }
}

/// The page script is a set of ES modules that import each other. Every URL a page or a
/// module names is versioned (one digest for the whole folder) and cached for good, every
/// module is reached, and no other URL serves a second copy of one. A page preloads exactly
/// what its entry imports before it runs. A page that is only a form loads none, and search,
/// which has no socket, loads neither htmx nor the room's modules.
#[tokio::test]
async fn every_script_module_a_page_or_a_module_names_is_versioned_and_immutable() {
    let app = spawn_app().await;
    let visitor = app.visitor();
    let login_page = visitor.get_text("/login").await;
    assert!(!login_page.contains("<script"), "{login_page}");
    let alice = app.login("alice").await;
    let mut pages = Vec::new();
    let mut folders = std::collections::BTreeSet::new();
    for (path, entry_name) in [
        ("/", "main.js"),
        ("/rooms/lobby", "main.js"),
        ("/search?q=plan", "search.js"),
    ] {
        let page = alice.get_text(path).await;
        let modules: Vec<String> = page
            .split("<script ")
            .skip(1)
            .filter(|tag| tag.starts_with(r#"type="module""#))
            .map(|tag| quoted_after(tag, "src=").expect("a module script has a src"))
            .collect();
        assert_eq!(
            modules.len(),
            1,
            "{path} loads one entry module: {modules:?}"
        );
        let folder = modules[0]
            .strip_suffix(entry_name)
            .unwrap_or_else(|| panic!("{path}'s entry is {entry_name}: {modules:?}"));
        folders.insert(folder.to_owned());
        let preloads: std::collections::BTreeSet<String> = page
            .split("<link ")
            .skip(1)
            .filter(|tag| tag.starts_with(r#"rel="modulepreload""#))
            .map(|tag| {
                let href = quoted_after(tag, "href=").expect("a preload has an href");
                href.strip_prefix(folder)
                    .unwrap_or_else(|| panic!("{href} is outside {folder}"))
                    .to_owned()
            })
            .collect();
        let uses_htmx = page.contains("/static/vendor/htmx");
        pages.push((path, entry_name, preloads, uses_htmx));
    }
    assert_eq!(folders.len(), 1, "one folder for all: {folders:?}");
    let folder = folders.pop_first().unwrap();
    let digest = folder
        .strip_prefix("/static/js/")
        .and_then(|rest| rest.strip_suffix('/'))
        .expect("modules sit in a versioned folder");
    assert!(
        digest.len() == 16 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "{digest}"
    );

    // Every module the entries reach, each with what it imports before it runs.
    let mut queue: Vec<String> = pages.iter().map(|page| page.1.to_owned()).collect();
    let mut imports = std::collections::BTreeMap::new();
    while let Some(name) = queue.pop() {
        if imports.contains_key(&name) {
            continue;
        }
        let url = format!("{folder}{name}");
        let response = visitor.get(&url).await;
        assert_eq!(response.status(), 200, "{url}");
        let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
        assert_eq!(
            header("cache-control"),
            "public, max-age=31536000, immutable",
            "{url}"
        );
        assert!(header("content-type").contains("javascript"), "{url}");
        let etag = response.headers()["etag"].clone();
        let source = response.text().await.unwrap();
        let mut before_running = Vec::new();
        for (specifier, dynamic) in imported_modules(&source) {
            let resolved = resolve_module(&name, &specifier)
                .unwrap_or_else(|| panic!("{name} imports {specifier}, outside the folder"));
            if !dynamic {
                before_running.push(resolved.clone());
            }
            queue.push(resolved);
        }
        imports.insert(name, before_running);
        let revalidated = visitor
            .http
            .get(app.url(&url))
            .header("If-None-Match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(revalidated.status(), 304, "{url}");
    }
    assert_eq!(
        imports
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        files_under("static/js"),
        "every module is reached from an entry"
    );

    for (path, entry, preloads, uses_htmx) in pages {
        let mut needed = std::collections::BTreeSet::new();
        let mut queue = imports[entry].clone();
        while let Some(name) = queue.pop() {
            if needed.insert(name.clone()) {
                queue.extend(imports[&name].iter().cloned());
            }
        }
        assert_eq!(
            preloads, needed,
            "{path} preloads what {entry} needs to run"
        );
        assert_eq!(
            uses_htmx,
            entry == "main.js",
            "{path}: htmx only with a socket"
        );
    }
    assert!(
        !imports["search.js"].iter().any(|m| m == "socket.js"),
        "search has no socket"
    );

    // One URL per module: no unversioned, stale or decorated second copy.
    for other in [
        "/static/js/main.js".to_owned(),
        "/static/js/socket.js".to_owned(),
        "/static/js/0000000000000000/main.js".to_owned(),
        format!("{folder}main.js?v={digest}"),
    ] {
        assert_eq!(visitor.get(&other).await.status(), 404, "{other}");
    }
}

/// The specifiers a module imports (`import … from "x"`, `import "x"`, `export … from "x"`
/// and `import("x")`), each with whether it is dynamic (loaded later, not before the module
/// runs).
fn imported_modules(source: &str) -> Vec<(String, bool)> {
    let mut specifiers = Vec::new();
    for line in source.lines().map(str::trim) {
        let names_module =
            line.starts_with("import ") || (line.starts_with("export ") && line.contains(" from "));
        if names_module {
            specifiers.push((
                line.rsplit('"')
                    .nth(1)
                    .expect("a quoted specifier")
                    .to_owned(),
                false,
            ));
        }
        for dynamic in line.split("import(\"").skip(1) {
            specifiers.push((dynamic.split('"').next().unwrap().to_owned(), true));
        }
    }
    specifiers
}

/// `specifier` (relative, `./` or `../`) from the module at `from`, both inside the modules'
/// folder; `None` if it leads outside.
fn resolve_module(from: &str, specifier: &str) -> Option<String> {
    let mut path: Vec<&str> = from.split('/').collect();
    path.pop();
    let rest = specifier
        .strip_prefix("./")
        .or_else(|| specifier.starts_with("../").then_some(specifier))?;
    for part in rest.split('/') {
        match part {
            ".." => {
                path.pop()?;
            }
            "." | "" => return None,
            part => path.push(part),
        }
    }
    Some(path.join("/"))
}

/// The value of the first `attribute="..."` in `tag`.
fn quoted_after(tag: &str, attribute: &str) -> Option<String> {
    let rest = &tag[tag.find(attribute)? + attribute.len()..];
    Some(rest.strip_prefix('"')?.split('"').next()?.to_owned())
}

#[tokio::test]
async fn pages_carry_a_content_security_policy_without_inline_scripts() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let response = alice.get("/rooms/lobby").await;
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap()
        .to_owned();
    let page = response.text().await.unwrap();
    assert!(page.contains(&format!(r#"<style nonce="{nonce}">"#)));
    assert!(page.contains(r#"data-author="alice""#), "own-message rule");
    assert!(!page.contains("<script>"), "no inline script");
}

#[tokio::test]
async fn anyone_in_a_room_can_change_its_topic_live_with_a_system_line() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let mut b = bob.ws("lobby").await;
    b.resume(0).await;
    let response = alice
        .post_form("/rooms/lobby/topic", &[("topic", "Release <v2>")])
        .await;
    assert_eq!(response.status(), 303);
    let topic = b.next_containing(r#"id="room-topic""#).await;
    assert_eq!(
        topic,
        r#"<p id="room-topic" class="topic">Release &#60;v2&#62;</p>"#
    );
    let line = b.next_containing("set the topic").await;
    assert!(line.contains(r#"data-kind="system""#), "{line}");
    assert!(
        line.contains("alice set the topic to “Release &lt;v2&gt;”"),
        "{line}"
    );
    let page = bob.get_text("/rooms/lobby").await;
    assert!(page.contains(r#"<p id="room-topic" class="topic">Release &#60;v2&#62;</p>"#));
    let long = "t".repeat(201);
    let response = alice
        .post_form("/rooms/lobby/topic", &[("topic", long.as_str())])
        .await;
    assert_eq!(response.status(), 422);
}

#[tokio::test]
async fn a_muted_room_is_marked_for_its_viewer_only() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    alice.get_text("/rooms/lobby").await;
    let response = alice.post_form("/rooms/lobby/mute", &[]).await;
    assert_eq!(response.status(), 303);
    let muted = |page: &str| sidebar_link(page, "lobby").unwrap().contains("data-muted");
    assert!(muted(&alice.get_text("/").await));
    assert!(!muted(&bob.get_text("/").await));
    // What arrives in a muted room is not counted on its badge.
    bob.post_form("/rooms/lobby/messages", &[("body", "psst")])
        .await;
    let home = alice.get_text("/").await;
    assert_eq!(sidebar_badge(&home, "lobby"), None, "no count while muted");
    alice.post_form("/rooms/lobby/mute", &[]).await;
    let page = alice.get_text("/").await;
    assert!(!muted(&page));
    assert_eq!(
        sidebar_badge(&page, "lobby"),
        Some(1),
        "counted again once unmuted"
    );
}

on_both_backends!(unread_counts_and_the_new_since_divider_follow_what_the_viewer_has_seen);

async fn unread_counts_and_the_new_since_divider_follow_what_the_viewer_has_seen(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    bob.post_form("/rooms/lobby/messages", &[("body", "seen")])
        .await;
    alice.get_text("/rooms/lobby").await;
    for body in ["new one", "new two"] {
        bob.post_form("/rooms/lobby/messages", &[("body", body)])
            .await;
    }
    let home = alice.get_text("/").await;
    assert_eq!(sidebar_badge(&home, "lobby"), Some(2), "{home}");
    let page = alice.get_text("/rooms/lobby").await;
    let divider = page.find("New since your last visit").expect("a divider");
    assert!(page.find("seen").unwrap() < divider);
    assert!(divider < page.find("new one").unwrap());
    // Opened now: nothing is unread any more.
    let home = alice.get_text("/").await;
    assert!(!home.contains(r#"aria-label="unread messages">2<"#));

    // Her own words and someone coming in are no news to her: no divider before them.
    alice
        .post_form("/rooms/lobby/messages", &[("body", "mine")])
        .await;
    app.login("carol").await.get_text("/rooms/lobby").await;
    let page = alice.get_text("/rooms/lobby").await;
    assert!(!page.contains("New since your last visit"), "{page}");
    bob.post_form("/rooms/lobby/messages", &[("body", "news")])
        .await;
    let page = alice.get_text("/rooms/lobby").await;
    let divider = page.find("New since your last visit").expect("a divider");
    assert!(divider < page.find("news").unwrap());
}

#[tokio::test]
async fn the_sidebar_lists_the_newest_rooms_and_counts_the_rest() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    for n in 0..60 {
        let name = format!("room {n:02}");
        let made = alice.post_form("/rooms", &[("name", name.as_str())]).await;
        assert_eq!(made.status(), 303);
        // The ten oldest get a word from bob before the newer rooms push them out of view.
        if n < 10 {
            let path = format!("/rooms/room-{n:02}/messages");
            bob.post_form(&path, &[("body", "unread")]).await;
        }
    }
    let page = alice.get_text("/").await;
    let list = &page[page.find(r#"<nav id="room-list""#).unwrap()..];
    let list = &list[..list.find("</nav>").unwrap()];
    assert_eq!(list.matches("data-slug=").count(), 50, "the newest 50");
    assert!(
        list.contains(r#"data-slug="room-59""#),
        "the newest is listed"
    );
    assert!(
        !list.contains(r#"data-slug="room-00""#),
        "an old one is not"
    );
    assert!(list.contains("11 more rooms"), "and the rest are counted");
    // Unread messages of the hidden rooms (bob's ten; the lobby, never opened, counts none),
    // counted by the server.
    assert!(list.contains(r#"data-hidden-unread="10""#), "{list}");

    // Every room is on /rooms, and an old one is listed while it is open.
    let all = alice.get_text("/rooms").await;
    assert!(all.contains(r#"href="/rooms/room-00""#) && all.contains(r#"href="/rooms/lobby""#));
    let open = alice.get_text("/rooms/room-00").await;
    let list = &open[open.find(r#"<nav id="room-list""#).unwrap()..];
    assert!(list[..list.find("</nav>").unwrap()].contains(r#"data-slug="room-00""#));
}

#[tokio::test]
async fn every_page_names_its_icon_and_the_icon_is_served() {
    let app = spawn_app().await;
    let visitor = app.visitor();
    for page in [
        visitor.get_text("/login").await,
        app.login("alice").await.get_text("/").await,
    ] {
        let needle = r#"<link rel="icon" type="image/svg+xml" href=""#;
        let at = page.find(needle).unwrap() + needle.len();
        let href = &page[at..at + page[at..].find('"').unwrap()];
        let icon = visitor.get(href).await;
        assert_eq!(icon.status(), 200, "{href}");
        assert_eq!(icon.headers()["content-type"], "image/svg+xml");
    }
}
