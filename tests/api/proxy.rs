//! Two instances on one PostgreSQL database behind a real nginx that runs the committed
//! `deploy/nginx.conf`, filled in with the test's ports: what a person relies on works through
//! it, and when one instance stops, its people carry on on the other.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::Client;
use tempfile::TempDir;

use crate::browser::{Driver, log_in_at, save_screenshot, say, shown};
use crate::crash::harness::ChildServer;
use crate::helpers::{
    ADMIN_TOKEN, AppData, Backend, Received, TestApp, Visitor, WAIT, Ws, eventually, message_ids,
    sample, scrape, scrape_at, spawn_app_in,
};
use crate::instances::child_instance_on;
use chat::Config;
use chat::config::WRONG_GUESSES;
use chat::domain::Slug;

const NGINX: &str = "/usr/sbin/nginx";

/// nginx serving `deploy/nginx.conf` from a directory of its own, as whoever runs the tests;
/// stopped when dropped.
struct Nginx {
    process: Child,
    dir: TempDir,
    port: u16,
}

impl Nginx {
    /// A free port for nginx: the instances need its origin (`--public-url`) before it starts.
    fn reserve_port() -> u16 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    }

    /// Starts nginx on `port` in front of `instances`, and waits until it listens.
    async fn start(port: u16, instances: &[SocketAddr]) -> Nginx {
        assert!(
            Path::new(NGINX).exists(),
            "the proxy tests need nginx at {NGINX}: apt-get install nginx"
        );
        let dir = tempfile::tempdir().unwrap();
        // Run as root, nginx's workers are `nobody`, and must reach their temporary folders.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let at = dir.path().display();
        std::fs::write(dir.path().join("chat.conf"), site(port, instances)).unwrap();
        // What Debian's /etc/nginx/nginx.conf provides around a file in conf.d, with every
        // path in this directory (the packaged ones under /var need root).
        let main = format!(
            "worker_processes 2;
pid {at}/nginx.pid;
error_log {at}/error.log;
events {{}}
http {{
    log_format upstream '$upstream_addr $status \"$request\"';
    access_log {at}/access.log upstream;
    client_body_temp_path {at}/body;
    proxy_temp_path {at}/proxy;
    fastcgi_temp_path {at}/fastcgi;
    uwsgi_temp_path {at}/uwsgi;
    scgi_temp_path {at}/scgi;
    include {at}/chat.conf;
}}
"
        );
        let main_path = dir.path().join("nginx.conf");
        std::fs::write(&main_path, main).unwrap();
        let process = Command::new(NGINX)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&main_path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{NGINX} does not start: {e}"));
        let mut nginx = Nginx { process, dir, port };
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Some(status) = nginx.process.try_wait().unwrap() {
                panic!("nginx exited ({status}):\n{}", nginx.error_log());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nginx does not listen on {port}:\n{}",
                nginx.error_log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        nginx
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    fn origin(&self) -> String {
        nginx_origin(self.port)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    fn visitor(&self) -> Visitor {
        Visitor::of(&self.origin(), None)
    }

    /// A visitor whose connections to nginx come from `source` (any of 127.0.0.0/8).
    fn visitor_from(&self, source: [u8; 4]) -> Visitor {
        Visitor::of(&self.origin(), Some(IpAddr::from(source)))
    }

    async fn login(&self, nickname: &str) -> Visitor {
        let visitor = self.visitor();
        let response = visitor.post_form("/login", &[("nickname", nickname)]).await;
        assert_eq!(response.status(), 303, "login as {nickname} through nginx");
        visitor
    }

    /// The instance (`host:port`) each request so far went to, with its status and request
    /// line, from nginx's access log.
    fn served(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SAFETY: kill only sends a signal, to the nginx master this test started; on SIGTERM
        // it stops its workers and exits.
        unsafe {
            libc::kill(self.process.id() as libc::pid_t, libc::SIGTERM);
        }
        for _ in 0..100 {
            if self.process.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The committed `deploy/nginx.conf`, listening on `port` instead of 80, with `instances` as
/// its upstream servers instead of the example's (each keeping its parameters).
fn site(port: u16, instances: &[SocketAddr]) -> String {
    let committed = include_str!("../../deploy/nginx.conf");
    let (mut listens, mut servers) = (0, instances.iter());
    let mut site = String::new();
    for line in committed.lines() {
        let code = line.trim_start();
        let indent = &line[..line.len() - code.len()];
        if code == "listen 80;" {
            listens += 1;
            site.push_str(&format!("{indent}listen 127.0.0.1:{port};\n"));
        } else if let Some(example) = code.strip_prefix("server 127.0.0.1:") {
            let instance = servers
                .next()
                .expect("as many upstream servers in deploy/nginx.conf as instances");
            let parameters = example.split_once(' ').map_or(";", |(_, rest)| rest);
            site.push_str(&format!("{indent}server {instance} {parameters}\n"));
        } else {
            site.push_str(line);
            site.push('\n');
        }
    }
    assert_eq!(listens, 1, "one `listen 80;` in deploy/nginx.conf");
    assert!(
        servers.next().is_none(),
        "as many upstream servers in deploy/nginx.conf as instances"
    );
    site
}

/// Where nginx connects to the instances from.
const NGINX_ADDRESS: [u8; 4] = [127, 0, 0, 1];

/// nginx's origin when it listens on `port`: the instances' `--public-url`.
fn nginx_origin(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// An instance as the README says to run one behind a proxy listening on `port`
/// (`--public-url` of the proxy, `--trusted-proxy` its address), with the tests' admin token.
fn run_behind_nginx(config: &mut Config, port: u16) {
    config.public_url = Some(nginx_origin(port));
    config.trusted_proxy = vec![IpAddr::from(NGINX_ADDRESS)];
    config.admin_token = Some(ADMIN_TOKEN.into());
}

/// Two instances on one PostgreSQL database, each run as the README says to behind a proxy
/// (`--public-url` of the proxy, `--trusted-proxy` its address), and nginx in front of them.
async fn behind_nginx(configure: impl Fn(&mut Config)) -> (Nginx, TestApp, TestApp) {
    let port = Nginx::reserve_port();
    let behind = |config: &mut Config| {
        run_behind_nginx(config, port);
        configure(config);
    };
    let a = spawn_app_in(AppData::new(Backend::Postgres), &behind).await;
    let b = spawn_app_in(a.data.another_instance(), &behind).await;
    let nginx = Nginx::start(port, &[a.addr, b.addr]).await;
    (nginx, a, b)
}

/// The WebSockets open on `app`, from its own `/metrics` (asked directly, not through nginx).
async fn sockets_on(app: &TestApp) -> u32 {
    sample(&scrape(app).await, "chat_sockets") as u32
}

/// The sockets open on each instance, once `total` are open in all.
async fn sockets_when(apps: [&TestApp; 2], total: u32) -> [u32; 2] {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let counts = [sockets_on(apps[0]).await, sockets_on(apps[1]).await];
        if counts[0] + counts[1] == total {
            return counts;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{counts:?} sockets open, not {total}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Someone with a lobby socket through nginx, and every message it was shown.
struct Chatter {
    visitor: Visitor,
    ws: Ws,
    /// Messages appended to the page (system lines too), in the order they came: each id with
    /// its `<article>`.
    shown: Vec<(u64, String)>,
}

impl Chatter {
    async fn join(visitor: Visitor) -> Chatter {
        let mut ws = visitor.ws("lobby").await;
        ws.resume(0).await;
        Chatter {
            visitor,
            ws,
            shown: Vec::new(),
        }
    }

    /// Sends `body` as the page does, with `body` as its `client_id` too (a resend repeats it).
    async fn say(&mut self, body: &str) {
        self.ws
            .send_json(serde_json::json!({
                "body": body,
                "client_id": body,
                "HEADERS": {"HX-Request": "true", "HX-Trigger": "composer"},
            }))
            .await;
    }

    /// How many of the messages shown hold `body`.
    fn times_shown(&self, body: &str) -> usize {
        let text = format!(">{body}<");
        self.shown
            .iter()
            .filter(|(_, article)| article.contains(&text))
            .count()
    }

    fn has_shown_all(&self, bodies: &[String]) -> bool {
        bodies.iter().all(|body| self.times_shown(body) > 0)
    }

    /// Reads frames until every one of `bodies` was shown; or until the socket closes, with
    /// its close code.
    async fn read_until_shown(&mut self, bodies: &[String]) -> Option<Received> {
        while !self.has_shown_all(bodies) {
            match self.ws.next().await {
                Received::Text(frame) => {
                    if frame.starts_with(r#"<div id="messages" hx-swap-oob="beforeend">"#) {
                        for article in frame.split("<article ").skip(1) {
                            let article = format!("<article {article}");
                            let id = message_ids(&article)[0];
                            self.shown.push((id, article));
                        }
                    }
                }
                closed => return Some(closed),
            }
        }
        None
    }

    /// Opens a new socket as the page does after a close: through nginx, resuming after the
    /// newest message shown.
    async fn reconnect(&mut self) {
        self.ws = self.visitor.ws("lobby").await;
        let newest = self.shown.last().map_or(0, |(id, _)| *id);
        self.ws.resume(newest).await;
    }

    /// Every message was shown once, in id order, with none missing from the first.
    fn assert_shown_in_order_without_gaps(&self, who: &str) {
        let ids: Vec<u64> = self.shown.iter().map(|(id, _)| *id).collect();
        let expected: Vec<u64> = (1..=ids.len() as u64).collect();
        assert_eq!(ids, expected, "{who} was shown each message once, in order");
    }
}

fn bodies(who: &str, numbers: std::ops::Range<usize>) -> Vec<String> {
    numbers.map(|n| format!("{who}-{n:02}")).collect()
}

/// Alice's and bob's lobby sockets through nginx, on different instances; returns them with
/// the index of alice's instance. nginx takes turns, though not always strictly (a loaded CI
/// machine once saw both on one instance), so bob's page reconnects, as it would after any
/// close, until nginx puts it on the other one.
async fn on_different_instances(nginx: &Nginx, apps: [&TestApp; 2]) -> (Chatter, Chatter, usize) {
    let (alice, bob) = (nginx.login("alice").await, nginx.login("bob").await);
    let alice = Chatter::join(alice).await;
    let alice_on = usize::from(sockets_when(apps, 1).await[1] == 1);
    let mut bob = Chatter::join(bob).await;
    for attempt in 1.. {
        if sockets_when(apps, 2).await == [1, 1] {
            break;
        }
        assert!(
            attempt < 5,
            "nginx put bob's socket on alice's instance {attempt} times in a row:\n{}\n{}",
            nginx.served().join("\n"),
            nginx.error_log()
        );
        bob.ws.stream.close(None).await.unwrap();
        sockets_when(apps, 1).await;
        bob.reconnect().await;
    }
    (alice, bob, alice_on)
}

#[tokio::test]
async fn people_log_in_and_open_a_room_through_nginx_whichever_instance_answers() {
    let (nginx, a, b) = behind_nginx(|_| {}).await;
    let alice = nginx.visitor();
    assert_eq!(alice.get("/rooms/lobby").await.status(), 303, "logged out");
    assert!(
        alice
            .get_text("/login")
            .await
            .contains(r#"name="nickname""#)
    );
    let logged_in = alice.post_form("/login", &[("nickname", "alice")]).await;
    assert_eq!(logged_in.status(), 303);
    assert_eq!(logged_in.headers()["location"], "/");

    for _ in 0..4 {
        let page = alice.get_text("/rooms/lobby").await;
        assert!(page.contains(r#"ws-connect="/rooms/lobby/ws""#), "{page}");
    }
    let served = nginx.served();
    for instance in [a.addr, b.addr] {
        assert!(
            served
                .iter()
                .any(|line| line.starts_with(&format!("{instance} 200 \"GET /rooms/lobby "))),
            "both instances served alice's room page, logged in: {served:#?}"
        );
    }

    // The chat still refuses other names and other sites' pages behind nginx.
    let other_host = alice
        .http
        .get(nginx.url("/login"))
        .header("Host", "chat.evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(other_host.status(), 421);
    assert_eq!(
        alice
            .try_ws("lobby", Some("http://evil.example"))
            .await
            .err(),
        Some(403)
    );
}

#[tokio::test]
async fn sockets_nginx_put_on_different_instances_are_shown_each_others_messages_once_in_order() {
    let (nginx, a, b) = behind_nginx(|_| {}).await;
    let (mut alice, mut bob, _) = on_different_instances(&nginx, [&a, &b]).await;

    let (from_alice, from_bob) = (bodies("alice", 0..10), bodies("bob", 0..10));
    for (mine, theirs) in from_alice.iter().zip(&from_bob) {
        alice.say(mine).await;
        bob.say(theirs).await;
    }
    let all = [from_alice.clone(), from_bob.clone()].concat();
    for (who, chatter) in [("alice", &mut alice), ("bob", &mut bob)] {
        assert_eq!(chatter.read_until_shown(&all).await, None, "{who}");
        chatter.assert_shown_in_order_without_gaps(who);
        for body in &all {
            assert_eq!(chatter.times_shown(body), 1, "{who}: {body}");
        }
    }
    let ids = |chatter: &Chatter| chatter.shown.iter().map(|(id, _)| *id).collect::<Vec<_>>();
    assert_eq!(ids(&alice), ids(&bob), "one order on both instances");
    let position = |chatter: &Chatter, body: &str| {
        chatter
            .shown
            .iter()
            .position(|(_, article)| article.contains(&format!(">{body}<")))
    };
    for chatter in [&alice, &bob] {
        for sent in [&from_alice, &from_bob] {
            let positions: Vec<_> = sent.iter().map(|body| position(chatter, body)).collect();
            assert!(
                positions.is_sorted(),
                "each sender's messages in the order sent"
            );
        }
    }
}

#[tokio::test]
async fn the_chat_counts_wrong_guesses_per_client_address_behind_nginx() {
    let (nginx, _a, _b) =
        behind_nginx(|config| config.join_code = Some("open-sesame".into())).await;
    let guesser = nginx.visitor_from([127, 0, 0, 2]);
    // Each instance keeps its own budget, and nginx takes turns: three budgets' worth spends
    // the guesser's on both.
    for attempt in 0..3 * WRONG_GUESSES {
        let response = guesser
            .post_form("/login", &[("nickname", "eve"), ("code", "guess")])
            .await;
        assert!(
            matches!(response.status().as_u16(), 422 | 429),
            "attempt {attempt}: {}",
            response.status()
        );
    }
    for instance in 0..2 {
        let right = guesser
            .post_form("/login", &[("nickname", "eve"), ("code", "open-sesame")])
            .await;
        assert_eq!(right.status(), 429, "out of guesses on instance {instance}");
    }
    // nginx appends the address it was reached from; what the client wrote before it is not
    // believed.
    let disguised = guesser
        .http
        .post(nginx.url("/login"))
        .header("Origin", nginx.origin())
        .header("X-Forwarded-For", "203.0.113.9")
        .form(&[("nickname", "eve"), ("code", "open-sesame")])
        .send()
        .await
        .unwrap();
    assert_eq!(disguised.status(), 429);

    // Everyone else comes through the same nginx, and still has a budget of their own.
    for (n, source) in [[127, 0, 0, 3], [127, 0, 0, 4]].into_iter().enumerate() {
        let neighbour = nginx.visitor_from(source);
        let nickname = format!("frank{n}");
        let response = neighbour
            .post_form(
                "/login",
                &[("nickname", &nickname), ("code", "open-sesame")],
            )
            .await;
        assert_eq!(response.status(), 303, "from {source:?}");
    }
}

#[tokio::test]
async fn when_an_instance_stops_its_people_carry_on_through_nginx_on_the_other_and_nothing_is_lost()
{
    let (nginx, a, b) = behind_nginx(|_| {}).await;
    let (mut alice, mut bob, alice_on) = on_different_instances(&nginx, [&a, &b]).await;
    let (stopping, staying) = if alice_on == 0 { (a, b) } else { (b, a) };

    let mut expected = [bodies("alice", 0..5), bodies("bob", 0..5)].concat();
    for (mine, theirs) in bodies("alice", 0..5).iter().zip(&bodies("bob", 0..5)) {
        alice.say(mine).await;
        bob.say(theirs).await;
    }
    for chatter in [&mut alice, &mut bob] {
        assert_eq!(chatter.read_until_shown(&expected).await, None);
    }

    // Alice sends a burst, and her instance stops under it, once the first is acknowledged:
    // her socket closes with 1012 (Service Restart).
    let burst = bodies("alice", 5..10);
    for body in &burst {
        alice.say(body).await;
    }
    expected.extend(burst.iter().cloned());
    assert_eq!(alice.read_until_shown(&burst[..1]).await, None);
    let never = ["never sent".to_owned()];
    let (_, closed) = tokio::join!(stopping.stop(), alice.read_until_shown(&never));
    assert_eq!(closed, Some(Received::Closed(Some(1012))));

    // New requests find the instance left: logging in, pages, a post without JavaScript.
    let carol = nginx.login("carol").await;
    for _ in 0..3 {
        assert_eq!(carol.get("/rooms/lobby").await.status(), 200);
    }
    let posted = carol
        .post_form("/rooms/lobby/messages", &[("body", "carol-00")])
        .await;
    assert_eq!(posted.status(), 303);
    for body in bodies("bob", 5..8) {
        bob.say(&body).await;
        expected.push(body);
    }
    expected.push("carol-00".into());

    // Alice's page reconnects through nginx, to the instance left, and sends again what it was
    // shown no copy of, under the same client ids. (The stopped instance stores what it had
    // received while it shuts down, after closing her socket: those resends are acknowledged,
    // not stored again.)
    alice.reconnect().await;
    assert_eq!(
        eventually(|| sockets_on(&staying), |n| *n == 2).await,
        2,
        "alice's and bob's sockets on the instance left"
    );
    for body in &burst {
        if alice.times_shown(body) == 0 {
            alice.say(body).await;
        }
    }
    // Everything acknowledged before the stop, and everything sent after it, shown to both
    // once, in one order, and stored once.
    for (who, chatter) in [("alice", &mut alice), ("bob", &mut bob)] {
        assert_eq!(chatter.read_until_shown(&expected).await, None, "{who}");
        chatter.assert_shown_in_order_without_gaps(who);
        for body in &expected {
            assert_eq!(chatter.times_shown(body), 1, "{who}: {body}");
        }
    }

    let stored = staying
        .data
        .with_storage(|s| s.messages(&Slug::lobby(), 1, u64::MAX).unwrap())
        .await;
    for body in &expected {
        let copies = stored.iter().filter(|m| m.body == *body).count();
        assert_eq!(copies, 1, "{body} stored once");
    }
}

/// Logs `browser` in as `nickname` through nginx, into the lobby.
async fn log_in_through(nginx: &Nginx, browser: &Client, nickname: &str) {
    let login = nginx.url("/login?next=/rooms/lobby");
    log_in_at(browser, &login, nickname, "main.room").await;
}

/// Reloads `browser`'s room page until `landed` says nginx put its socket where the test
/// wants it. A page load is several requests, so where its socket lands depends on their
/// number: every other time, one more request goes through nginx in between.
async fn reload_until<Landed: Future<Output = bool>>(
    browser: &Client,
    nginx: &Nginx,
    mut landed: impl FnMut() -> Landed,
) {
    let mut attempt = 0;
    while !landed().await {
        attempt += 1;
        assert!(attempt < 8, "nginx keeps the socket on the same instance");
        if attempt % 2 == 0 {
            nginx.visitor().get("/healthz").await;
        }
        browser.refresh().await.unwrap();
        shown(browser, "main.room").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn sees(browser: &Client, author: &str, text: &str) {
    let selector = format!("#messages .msg[data-author='{author}'] .msg-body");
    let seen = shown(browser, &selector).await;
    assert_eq!(seen.text().await.unwrap(), text);
}

#[tokio::test]
async fn in_the_browser_two_people_on_different_instances_behind_nginx_chat_live() {
    let (nginx, a, b) = behind_nginx(|_| {}).await;
    let driver = Driver::start().await;
    let alice = driver.browser().await;
    let bob = driver.browser().await;
    log_in_through(&nginx, &alice, "alice").await;
    let alice_on = sockets_when([&a, &b], 1).await;
    log_in_through(&nginx, &bob, "bob").await;
    // Until nginx puts bob's socket on the other instance.
    reload_until(&bob, &nginx, || async {
        sockets_when([&a, &b], 2).await != [alice_on[0] * 2, alice_on[1] * 2]
    })
    .await;
    let on = eventually(|| sockets_when([&a, &b], 2), |counts| *counts == [1, 1]).await;
    assert_eq!(on, [1, 1], "alice and bob on different instances");

    say(&alice, "Hello from instance A, through nginx").await;
    sees(&bob, "alice", "Hello from instance A, through nginx").await;
    say(&bob, "And back from the other one").await;
    sees(&alice, "bob", "And back from the other one").await;

    save_screenshot(&bob, "proxy-room").await;
    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

/// The sockets open on a child instance, from its own `/metrics`.
async fn sockets_on_child(instance: &ChildServer) -> u32 {
    sample(&scrape_at(&instance.url("/metrics")).await, "chat_sockets") as u32
}

/// Whether `browser`'s page shows a message whose text is `text`.
async fn shows_text(browser: &Client, text: &str) -> bool {
    browser
        .execute(
            "return [...document.querySelectorAll('#messages .msg-body')]\
                .some(body => body.textContent === arguments[0]);",
            vec![serde_json::json!(text)],
        )
        .await
        .unwrap()
        .as_bool()
        .unwrap()
}

/// A page whose instance is killed with -9 is back through nginx, on the instance left, and
/// shows what was said meanwhile, within seconds: the page's first retry (htmx-ext-ws waits
/// 0–1 s), nginx's failover (at once: the dead instance refuses the connection), the
/// handshake and the catch-up. The time it took is printed, for the README's figure.
#[tokio::test]
async fn in_the_browser_a_page_whose_instance_is_killed_is_back_through_nginx_within_seconds() {
    let port = Nginx::reserve_port();
    let origin = nginx_origin(port);
    let a = spawn_app_in(AppData::new(Backend::Postgres), |config| {
        run_behind_nginx(config, port)
    })
    .await;
    // The same settings, as flags.
    let proxy = IpAddr::from(NGINX_ADDRESS).to_string();
    let flags = [
        "--public-url",
        &origin,
        "--trusted-proxy",
        &proxy,
        "--admin-token",
        ADMIN_TOKEN,
    ];
    let (mut dying, _dir) = child_instance_on(&a.data, &flags).await;
    let dying_addr = SocketAddr::from((NGINX_ADDRESS, dying.port));
    let nginx = Nginx::start(port, &[a.addr, dying_addr]).await;

    let driver = Driver::start().await;
    let alice = driver.browser().await;
    log_in_through(&nginx, &alice, "alice").await;
    // Reload until nginx puts her socket on the instance to be killed.
    reload_until(&alice, &nginx, || async {
        let on = eventually(
            || async { [sockets_on(&a).await, sockets_on_child(&dying).await] },
            |counts| counts[0] + counts[1] == 1,
        )
        .await;
        on == [0, 1]
    })
    .await;

    let bob = nginx.login("bob").await;
    let say = |text: &'static str| {
        let bob = &bob;
        async move {
            let posted = bob
                .post_form("/rooms/lobby/messages", &[("body", text)])
                .await;
            assert_eq!(posted.status(), 303, "{text}");
        }
    };
    say("Before the kill").await;
    sees(&alice, "bob", "Before the kill").await;

    dying.kill().await.unwrap();
    let killed = Instant::now();
    say("While alice's instance was down").await;
    while !shows_text(&alice, "While alice's instance was down").await {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "alice's page was not back within 5 s of her instance's death"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "alice's page showed what was said meanwhile {} ms after her instance was killed",
        killed.elapsed().as_millis()
    );
    assert_eq!(
        sockets_on(&a).await,
        1,
        "her page's socket, on the instance left"
    );
    alice.close().await.unwrap();
}
