//! Reconnect storm (issue 5): 100 clients each drop their socket and reconnect 10 times, 1,000
//! forced disconnect/reconnect cycles in all, while a few senders post numbered messages. Each
//! client keeps the view a browser would build from the frames it receives (appends, and
//! resets that replace the list) and, on every new socket, first sends `resume_after` with the
//! newest id in that view, as the page's script does. At the end every view must be the room's
//! history from its first id on: no gaps, no duplicates, in order, up to the newest message.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::helpers::{Received, TestApp, Visitor, WAIT, Ws, message_ids, spawn_app_with};

/// Clients that get disconnected over and over.
const CLIENTS: usize = 100;
/// Forced disconnect/reconnect cycles per client: 1,000 in all.
const CYCLES: usize = 10;
/// Clients that post numbered messages the whole time (and are never disconnected).
const SENDERS: usize = 4;
/// Messages a sender may have in flight before it waits for its own copy to come back.
const SEND_WINDOW: usize = 4;
/// Pause between a sender's messages: about 4 × 1 / 8 ms = 500 messages a second at most.
const SEND_PACE: Duration = Duration::from_millis(8);
/// Every `AWAY_EVERY`-th client stays away once until it has missed more than a catch-up
/// replays, so that the storm also goes through the reset fragment.
const AWAY_EVERY: usize = 25;
const AWAY_CYCLE: usize = 4;
/// Messages posted while such a client is away: over the server's reset threshold (500).
const AWAY_MISSED: u64 = 520;
/// How long the whole storm (every client's cycles) may take.
const STORM_LIMIT: Duration = Duration::from_secs(45);

const APPEND: &str = r#"<div id="messages" hx-swap-oob="beforeend">"#;
const RESET: &str = r#"<div id="messages" hx-swap-oob="innerHTML">"#;
const ARTICLE: &str = r#"<article class="msg" "#;

/// One message as a client shows it, or as the room's history holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    id: u64,
    author: String,
    body: String,
}

/// The messages of an HTML text (a frame, a page, a history fragment), in document order.
fn parse_messages(html: &str) -> Vec<Shown> {
    let shown: Vec<Shown> = html
        .split(ARTICLE)
        .skip(1)
        .map(|article| {
            let id = message_ids(article);
            assert_eq!(id.len(), 1, "one id per message: {article}");
            let author = between(article, r#"data-author=""#, "\"");
            let body = between(article, r#"<div class="msg-body">"#, "</div></article>");
            Shown {
                id: id[0],
                author: author.to_owned(),
                body: body.to_owned(),
            }
        })
        .collect();
    assert_eq!(
        shown.iter().map(|m| m.id).collect::<Vec<_>>(),
        message_ids(html),
        "every message id belongs to one message"
    );
    shown
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {text}"))
        + start.len();
    let len = text[from..]
        .find(end)
        .unwrap_or_else(|| panic!("no {end} in {text}"));
    &text[from..from + len]
}

/// What one client shows: the `#messages` list as htmx would swap it, and what went wrong.
#[derive(Default)]
struct View {
    messages: Vec<Shown>,
    /// Gaps, repeats and disorder, noted as they arrive (a later reset would hide them).
    problems: Vec<String>,
    resets: usize,
    /// Sockets the server closed on us (e.g. 1013 for falling behind) rather than we dropped.
    closed_by_server: usize,
}

impl View {
    fn newest(&self) -> u64 {
        self.messages.last().map_or(0, |m| m.id)
    }

    /// Applies one received frame; presence, typing, sidebar and topic frames don't touch the
    /// list.
    fn apply(&mut self, frame: &str) {
        if frame.starts_with(APPEND) {
            for message in parse_messages(frame) {
                let expected = self.newest() + 1;
                if message.id != expected {
                    self.problems.push(format!(
                        "appended msg-{} after msg-{} (expected msg-{expected})",
                        message.id,
                        self.newest()
                    ));
                }
                self.messages.push(message);
            }
        } else if frame.starts_with(RESET) {
            let messages = parse_messages(frame);
            let ids: Vec<u64> = messages.iter().map(|m| m.id).collect();
            if ids.windows(2).any(|pair| pair[1] != pair[0] + 1) {
                self.problems
                    .push(format!("a reset that isn't contiguous: {ids:?}"));
            }
            if ids.last().copied().unwrap_or(0) < self.newest() {
                self.problems.push(format!(
                    "a reset ending at {:?} took the view back from msg-{}",
                    ids.last(),
                    self.newest()
                ));
            }
            self.messages = messages;
            self.resets += 1;
        } else if !message_ids(frame).is_empty() {
            self.problems.push(format!(
                "a message frame that is neither an append nor a reset: {}",
                &frame[..frame.len().min(200)]
            ));
        }
    }

    /// Reads frames into the view for `dwell`; false if the server closed the socket.
    async fn read_for(&mut self, ws: &mut Ws, dwell: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + dwell;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match ws.next_within(left).await {
                None => return true,
                Some(Received::Text(frame)) => self.apply(&frame),
                Some(Received::Closed(_)) => {
                    self.closed_by_server += 1;
                    return false;
                }
            }
        }
    }
}

/// A small deterministic generator, so a failing run can be replayed.
struct SplitMix(u64);

impl SplitMix {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// What the test's parts share.
struct Shared {
    /// Sender messages acknowledged so far.
    posted: AtomicU64,
    /// Clients done with their cycles and connected for the last time.
    finished_cycles: AtomicUsize,
    stop_sending: AtomicBool,
}

/// One storm client: `CYCLES` forced disconnects, then a last socket that catches up to
/// `target` (the room's newest id, known once the senders have stopped).
async fn storm_client(
    visitor: Visitor,
    index: usize,
    shared: Arc<Shared>,
    mut target: watch::Receiver<u64>,
) -> View {
    let mut rng = SplitMix(index as u64);
    let mut view = View::default();
    for cycle in 0..CYCLES {
        let mut ws = visitor.ws("lobby").await;
        ws.resume(view.newest()).await;
        let open = match rng.below(5) {
            // Gone before the catch-up could even arrive.
            0 => true,
            // Gone mid-stream, after a short or a longer look.
            1 | 2 => view.read_for(&mut ws, ms(5 + rng.below(40))).await,
            _ => view.read_for(&mut ws, ms(40 + rng.below(260))).await,
        };
        if open && rng.below(4) == 0 {
            // A close frame, then gone without waiting for the answer (a tab closing).
            let _ = ws.stream.close(None).await;
        }
        // Otherwise the TCP connection just goes away (a network drop).
        drop(ws);
        if index.is_multiple_of(AWAY_EVERY) && cycle == AWAY_CYCLE {
            // Away long enough to miss more than a catch-up replays.
            let until = shared.posted.load(Ordering::SeqCst) + AWAY_MISSED;
            let deadline = Instant::now() + STORM_LIMIT / 2;
            while shared.posted.load(Ordering::SeqCst) < until && Instant::now() < deadline {
                tokio::time::sleep(ms(20)).await;
            }
        } else {
            tokio::time::sleep(ms(rng.below(30))).await;
        }
    }

    // The last reconnect: stay until the view reaches the room's newest message.
    let mut ws = visitor.ws("lobby").await;
    ws.resume(view.newest()).await;
    shared.finished_cycles.fetch_add(1, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + STORM_LIMIT;
    loop {
        let wanted = *target.borrow_and_update();
        if wanted > 0 && view.newest() >= wanted {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            view.problems.push(format!(
                "stuck at msg-{} waiting for msg-{wanted}",
                view.newest()
            ));
            return view;
        }
        tokio::select! {
            _ = target.changed() => {}
            frame = ws.next_within(ms(200)) => match frame {
                None => {}
                Some(Received::Text(frame)) => view.apply(&frame),
                Some(Received::Closed(code)) => {
                    view.problems.push(format!("the last socket closed with {code:?}"));
                    return view;
                }
            },
        }
    }
    // Nothing more may come: a late repeat would show up here.
    view.read_for(&mut ws, ms(300)).await;
    view
}

/// What a sender posted: `(client_id, body)`, acknowledged by its own copy.
type Posted = Vec<(String, String)>;

/// Posts numbered messages over its socket, a few in flight, until told to stop; then waits
/// for the last acknowledgements. Returns the socket too, still open, so that nobody leaves
/// "Here now" while the clients catch up.
async fn sender(visitor: Visitor, index: usize, shared: Arc<Shared>) -> (Posted, Ws) {
    let mut ws = visitor.ws("lobby").await;
    ws.resume(0).await;
    let mut in_flight: std::collections::VecDeque<(String, String)> = Default::default();
    let mut posted = Vec::new();
    let mut n = 0u64;
    let deadline = Instant::now() + STORM_LIMIT + WAIT;
    loop {
        let stopping = shared.stop_sending.load(Ordering::SeqCst);
        if stopping && in_flight.is_empty() {
            return (posted, ws);
        }
        assert!(Instant::now() < deadline, "sender {index} ran too long");
        if !stopping && in_flight.len() < SEND_WINDOW {
            n += 1;
            let client_id = format!("s{index}-{n}");
            let body = format!("sender {index} message {n}");
            ws.send_json(serde_json::json!({
                "body": body,
                "client_id": client_id,
                "HEADERS": {"HX-Request": "true", "HX-Trigger": "composer"},
            }))
            .await;
            in_flight.push_back((client_id, body));
            tokio::time::sleep(SEND_PACE).await;
        }
        // Read what has come in; our own copies are the acknowledgements, in order.
        let wait = if in_flight.len() < SEND_WINDOW && !stopping {
            ms(1)
        } else {
            WAIT
        };
        match ws.next_within(wait).await {
            None if wait == WAIT => panic!("sender {index}: no acknowledgement in {WAIT:?}"),
            None => {}
            Some(Received::Closed(code)) => panic!("sender {index}: socket closed with {code:?}"),
            Some(Received::Text(frame)) => {
                assert!(!frame.contains("data-error="), "sender {index}: {frame}");
                for client_id in frame_client_ids(&frame) {
                    if in_flight.front().is_some_and(|(c, _)| *c == client_id) {
                        posted.push(in_flight.pop_front().unwrap());
                        shared.posted.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }
    }
}

/// The `data-client-id`s in a frame, in order.
fn frame_client_ids(frame: &str) -> Vec<String> {
    frame
        .split(r#"data-client-id=""#)
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
        .collect()
}

/// The room's whole history: the page's newest 50, then "load older" fragments 50 at a time.
async fn room_history(app: &TestApp, visitor: &Visitor) -> Vec<Shown> {
    let mut history = parse_messages(&visitor.get_text("/rooms/lobby").await);
    while let Some(first) = history.first().map(|m| m.id).filter(|id| *id > 1) {
        let response = visitor
            .http
            .get(app.url(&format!("/rooms/lobby/messages?before={first}")))
            .header("HX-Request", "true")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "older than {first}");
        let mut older = parse_messages(&response.text().await.unwrap());
        assert!(!older.is_empty(), "nothing older than msg-{first}");
        older.append(&mut history);
        history = older;
    }
    history
}

/// A rendered body's text, without its markup.
fn text_of(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.trim().to_owned()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_forced_reconnects_across_100_clients_leave_every_view_equal_to_the_history() {
    let started = Instant::now();
    // Senders post faster than the default per-login limit, which is tested elsewhere.
    let server = spawn_app_with(|config| config.rate_limit = 0.0).await;
    let app = &server;
    let shared = Arc::new(Shared {
        posted: AtomicU64::new(0),
        finished_cycles: AtomicUsize::new(0),
        stop_sending: AtomicBool::new(false),
    });

    let senders = futures_util::future::join_all(
        (0..SENDERS).map(|i| async move { app.login(&format!("sender{i}")).await }),
    )
    .await;
    let clients = futures_util::future::join_all(
        (0..CLIENTS).map(|i| async move { app.login(&format!("storm{i}")).await }),
    )
    .await;
    let checker = app.login("checker").await;

    let senders: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, visitor)| tokio::spawn(sender(visitor, i, shared.clone())))
        .collect();
    let (set_target, target) = watch::channel(0u64);
    let clients: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, visitor)| tokio::spawn(storm_client(visitor, i, shared.clone(), target.clone())))
        .collect();

    // The storm: every client through its cycles while the senders keep posting.
    let deadline = Instant::now() + STORM_LIMIT;
    while shared.finished_cycles.load(Ordering::SeqCst) < CLIENTS {
        assert!(
            Instant::now() < deadline,
            "only {} of {CLIENTS} clients got through {CYCLES} cycles in {STORM_LIMIT:?}",
            shared.finished_cycles.load(Ordering::SeqCst)
        );
        tokio::time::sleep(ms(20)).await;
    }
    let storm_time = started.elapsed();

    // Stop sending, then tell every client how far the room goes.
    shared.stop_sending.store(true, Ordering::SeqCst);
    let mut posted: Vec<Posted> = Vec::new();
    let mut sender_sockets = Vec::new();
    for task in senders {
        let (sent, ws) = tokio::time::timeout(WAIT, task)
            .await
            .expect("senders stop")
            .unwrap();
        posted.push(sent);
        sender_sockets.push(ws);
    }
    let history = room_history(app, &checker).await;
    let newest = history.last().expect("messages were posted").id;
    set_target.send(newest).unwrap();
    let mut views = Vec::new();
    for task in clients {
        views.push(
            tokio::time::timeout(STORM_LIMIT + WAIT, task)
                .await
                .expect("every client catches up")
                .unwrap(),
        );
    }

    // The room: ids 1..=newest, every acknowledged message stored exactly once, as sent.
    let again = room_history(app, &checker).await;
    assert_eq!(
        again, history,
        "the room stayed quiet while clients caught up"
    );
    assert_eq!(
        history.iter().map(|m| m.id).collect::<Vec<_>>(),
        (1..=newest).collect::<Vec<_>>(),
        "the history is contiguous"
    );
    for (i, sent) in posted.iter().enumerate() {
        let stored: Vec<String> = history
            .iter()
            .filter(|m| m.author == format!("sender{i}"))
            .map(|m| text_of(&m.body))
            .collect();
        let expected: Vec<String> = sent.iter().map(|(_, body)| body.clone()).collect();
        assert_eq!(stored, expected, "sender{i}'s messages, each stored once");
    }

    // Every client: from its first id on, exactly the history.
    for (i, view) in views.iter().enumerate() {
        assert_eq!(view.problems, Vec::<String>::new(), "storm{i} as it went");
        let first = view.messages.first().map_or(newest + 1, |m| m.id);
        let ids: Vec<u64> = view.messages.iter().map(|m| m.id).collect();
        assert_eq!(
            ids,
            (first..=newest).collect::<Vec<_>>(),
            "storm{i}: no gaps, no duplicates, in order, up to the newest"
        );
        assert!(
            first <= newest.saturating_sub(49).max(1),
            "storm{i} shows at least the newest page"
        );
        for shown in &view.messages {
            assert_eq!(
                shown,
                &history[shown.id as usize - 1],
                "storm{i}: msg-{} as shown and as stored",
                shown.id
            );
        }
    }
    let resets: usize = views.iter().map(|v| v.resets).sum();
    assert!(
        resets >= CLIENTS / AWAY_EVERY,
        "the clients that stayed away got a reset ({resets} resets)"
    );

    let sent: usize = posted.iter().map(Vec::len).sum();
    let closed: usize = views.iter().map(|v| v.closed_by_server).sum();
    eprintln!(
        "reconnect storm: {} forced reconnects, {sent} messages sent ({newest} in the room), \
         {resets} resets, {closed} sockets closed by the server; storm {:.1} s, total {:.1} s",
        CLIENTS * CYCLES,
        storm_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    // Stopped here, so the database closes before its directory goes.
    drop(sender_sockets);
    server.stop().await;
}
