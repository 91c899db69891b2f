//! Graceful restart under load: SIGTERM the real server while clients send; they get 1012,
//! reconnect to the new process on the same port and data directory, send `resume_after`
//! with their newest id (and resend what was never acknowledged, with the same `client_id`),
//! and each ends up showing exactly the room's history.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::crash::harness::{
    Chatter, ChatterLog, ChatterPlan, ChildServer, Event, Msg, Progress, Visitor, WAIT, history,
    sequence_problems,
};
use crate::crash::server_bin;

const CLIENTS: usize = 4;
const PER_CLIENT: u64 = 60;

async fn wait_for(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_closes_with_1012_and_resumed_clients_show_exactly_the_history() {
    let started = Instant::now();
    let data_dir = tempfile::tempdir().unwrap();
    // 4 clients at 125 msg/s each: over the default per-login rate limit, which is tested
    // elsewhere.
    let flags = ["--shutdown-grace", "5", "--rate-limit", "0"];
    let mut server = ChildServer::start(
        server_bin(),
        data_dir.path(),
        None,
        &data_dir.path().join("first.log"),
        &flags,
    )
    .await
    .unwrap();
    let port = server.port;
    let base = server.base();

    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let visitor = Arc::new(Visitor::logged_in(&base, &format!("g{i}")).await.unwrap());
        let progress = Arc::new(Progress::default());
        let plan = ChatterPlan {
            room: "lobby".into(),
            tag: format!("g{i}"),
            total: Some(PER_CLIENT),
            window: 8,
            pace: Some(Duration::from_millis(8)),
            reconnect: true,
            resume_from: 0,
            deadline: Duration::from_secs(40),
        };
        let task = tokio::spawn(Chatter::run(visitor, plan, progress.clone()));
        clients.push((progress, task));
    }

    // Under load: every client has messages acknowledged and more to send.
    wait_for("the first acknowledgements", WAIT, || {
        clients
            .iter()
            .all(|(p, _)| p.acked.load(Ordering::SeqCst) >= 10)
    })
    .await;
    let acked_at_sigterm: u64 = clients
        .iter()
        .map(|(p, _)| p.acked.load(Ordering::SeqCst))
        .sum();
    let stopping = Instant::now();
    server.terminate().unwrap();
    let status = server.wait(Duration::from_secs(15)).await.unwrap();
    let stop_time = stopping.elapsed();
    assert!(
        status.success(),
        "graceful exit, got {status}:\n{}",
        server.log_tail()
    );
    assert!(
        stop_time < Duration::from_secs(6),
        "shutdown took {stop_time:?}, over its 5 s grace"
    );
    wait_for("every socket to notice", WAIT, || {
        clients
            .iter()
            .all(|(p, _)| !p.connected.load(Ordering::SeqCst))
    })
    .await;

    // The new process, same address and data directory; the clients come back by themselves.
    let mut server = ChildServer::start(
        server_bin(),
        data_dir.path(),
        Some(port),
        &data_dir.path().join("second.log"),
        &flags,
    )
    .await
    .unwrap();
    wait_for(
        "every client to send and see all its messages",
        Duration::from_secs(20),
        || clients.iter().all(|(p, _)| p.done.load(Ordering::SeqCst)),
    )
    .await;

    let checker = Visitor::logged_in(&base, "checker").await.unwrap();
    let history = history(&checker, "lobby").await.unwrap();
    let last = history.last().map_or(0, |m| m.id);
    for (progress, _) in &clients {
        progress.finish_at.store(last.max(1), Ordering::SeqCst);
    }
    let mut logs: Vec<ChatterLog> = Vec::new();
    for (_, task) in clients {
        logs.push(
            tokio::time::timeout(WAIT, task)
                .await
                .expect("the client finishes")
                .unwrap(),
        );
    }

    // The room: ids 1..=last, every message each client sent stored exactly once.
    assert_eq!(sequence_problems(&history), Vec::<String>::new());
    assert_eq!(
        history.iter().filter(|m| m.kind == "user").count() as u64,
        CLIENTS as u64 * PER_CLIENT
    );
    let mut stored_by_client_id: HashMap<&str, Vec<u64>> = HashMap::new();
    for m in &history {
        if let Some(client_id) = &m.client_id {
            stored_by_client_id.entry(client_id).or_default().push(m.id);
        }
    }
    assert!(
        acked_at_sigterm < CLIENTS as u64 * PER_CLIENT,
        "SIGTERM came mid-stream"
    );

    let expected: Vec<u64> = (1..=last).collect();
    let stored: HashMap<u64, &Msg> = history.iter().map(|m| (m.id, m)).collect();
    for log in &logs {
        let who = &log.tag;
        assert_eq!(log.failure, None, "{who}");
        assert_eq!(
            log.closes.first(),
            Some(&Some(1012)),
            "{who}: the first close is Service Restart (ended without a close frame: {:?})",
            log.ended_by
        );
        assert!(log.connections >= 2, "{who} reconnected");
        assert_eq!(log.errors, Vec::<String>::new(), "{who}: error fragments");
        assert_eq!(log.view_problems, Vec::<String>::new(), "{who}: view");
        assert_eq!(log.view, expected, "{who}: the view is the room's history");
        for m in &log.received {
            let kept = stored[&m.id];
            assert_eq!(
                (&m.author, &m.body),
                (&kept.author, &kept.body),
                "{who}: msg-{} as shown and as stored",
                m.id
            );
        }
        for (client_id, body) in &log.sent {
            let ids = stored_by_client_id.get(client_id.as_str());
            assert_eq!(
                ids.map(Vec::len),
                Some(1),
                "{who}: {body:?} stored exactly once"
            );
        }
    }
    let resends: u64 = logs.iter().map(|l| l.resends).sum();
    eprintln!(
        "graceful restart: {} messages, {acked_at_sigterm} acknowledged at SIGTERM, shutdown {stop_time:?}, {resends} resent after reconnecting, {:.1} s",
        history.len(),
        started.elapsed().as_secs_f64()
    );

    server.terminate().unwrap();
    let status = server.wait(Duration::from_secs(15)).await.unwrap();
    assert!(status.success(), "{status}:\n{}", server.log_tail());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_after_running_longer_than_the_grace_period_still_gets_the_whole_grace() {
    let data_dir = tempfile::tempdir().unwrap();
    let grace = Duration::from_secs(1);
    let mut server = ChildServer::start(
        server_bin(),
        data_dir.path(),
        None,
        &data_dir.path().join("server.log"),
        &["--shutdown-grace", "1"],
    )
    .await
    .unwrap();
    let alice = Visitor::logged_in(&server.base(), "alice").await.unwrap();
    let mut socket = alice.socket("lobby").await.unwrap();
    // A page reads all along, so it answers the close at once.
    let closed = tokio::spawn(async move {
        loop {
            match socket.next_within(WAIT * 2).await {
                Some(Event::Text(_)) => continue,
                Some(Event::Closed(code)) => return (code, socket.ended_by),
                None => return (None, Some("no close".into())),
            }
        }
    });
    // Up for longer than the grace period and the committer's extra second.
    tokio::time::sleep(grace * 3).await;

    server.terminate().unwrap();
    let status = server.wait(WAIT).await.unwrap();
    assert!(status.success(), "graceful exit, got {status}");
    let (code, ended_by) = closed.await.unwrap();
    assert_eq!(code, Some(1012), "Service Restart ({ended_by:?})");
    let log = std::fs::read_to_string(&server.log).unwrap();
    for late in ["did not close in time", "did not finish in time"] {
        assert!(!log.contains(late), "shutdown cut short: {late}\n{log}");
    }
}
