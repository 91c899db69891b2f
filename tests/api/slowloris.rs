//! Slow clients (slowloris): headers sent a byte at a time get the connection closed after
//! `--header-timeout`, a request body that trickles in gets 408 after `--request-timeout`,
//! and neither limit touches a WebSocket once it is upgraded.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::helpers::{Received, spawn_app_with};

/// Long enough for a login, a page and a message while the slow clients are still connected.
const HEADER_TIMEOUT: f64 = 2.0;
const REQUEST_TIMEOUT: f64 = 1.0;
/// Between two bytes of a slow client: well inside either timeout, so only the total counts.
const TRICKLE: Duration = Duration::from_millis(100);
/// Scheduling slack on a busy machine, on top of a timeout.
const SLACK: Duration = Duration::from_secs(3);

/// How a trickling connection ended.
#[derive(Debug)]
struct Ended {
    after: Duration,
    /// Everything the server sent before it closed.
    received: String,
}

/// Connects, sends `head`, then `trickle` one byte per [`TRICKLE`] (cycling) until the server
/// closes the connection or `give_up` passes. `None` if the server never closed it.
async fn trickle(
    addr: SocketAddr,
    head: String,
    trickle: &'static [u8],
    give_up: Instant,
) -> Option<Ended> {
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    for &byte in trickle.iter().cycle() {
        let next_byte = Instant::now() + TRICKLE;
        // Read whatever the server says until it is time for the next byte.
        loop {
            match timeout_at(next_byte.min(give_up), tcp.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    return Some(Ended {
                        after: started.elapsed(),
                        received: String::from_utf8_lossy(&received).into_owned(),
                    });
                }
                Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        if Instant::now() >= give_up {
            return None;
        }
        // A write into a connection the server closed fails; the read above reports it next.
        let _ = tcp.write_all(&[byte]).await;
    }
    unreachable!("the trickle cycles forever")
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off_while_others_are_served() {
    let app = spawn_app_with(|config| config.header_timeout = HEADER_TIMEOUT).await;
    let give_up = Instant::now() + Duration::from_secs_f64(HEADER_TIMEOUT) + SLACK;
    let head = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\nX-Slow: ", app.addr);
    let slow: Vec<_> = (0..20)
        .map(|_| tokio::spawn(trickle(app.addr, head.clone(), b"loris", give_up)))
        .collect();

    // Meanwhile a person logs in, opens a room and talks.
    let alice = app.login("alice").await;
    let page = alice.get("/rooms/lobby").await;
    assert_eq!(page.status(), 200);
    let mut ws = alice.ws("lobby").await;
    ws.say("served while the lorises trickle").await;
    assert!(
        ws.next_text()
            .await
            .contains("served while the lorises trickle")
    );
    assert!(
        slow.iter().all(|task| !task.is_finished()),
        "the slow clients were still connected while alice was served"
    );

    for task in slow {
        let ended = task
            .await
            .unwrap()
            .expect("the server closes a connection whose headers never end");
        assert_eq!(ended.received, "", "no response to an unfinished request");
        assert!(
            ended.after >= Duration::from_secs_f64(HEADER_TIMEOUT),
            "closed by the header timeout, not before it: {ended:?}"
        );
    }
}

#[tokio::test]
async fn a_post_whose_body_trickles_gets_408_within_the_request_timeout() {
    let app = spawn_app_with(|config| config.request_timeout = REQUEST_TIMEOUT).await;
    let give_up = Instant::now() + Duration::from_secs_f64(REQUEST_TIMEOUT) + SLACK;
    let head = format!(
        "POST /login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\nnickname=",
        app.addr
    );
    let ended = trickle(app.addr, head, b"slowpoke", give_up)
        .await
        .expect("the server answers and closes within the request timeout");
    assert!(
        ended.received.starts_with("HTTP/1.1 408 "),
        "408 Request Timeout, got {ended:?}"
    );
    // The nickname the trickle was spelling out is still free.
    app.login("slowpoke").await;
}

#[tokio::test]
async fn a_websocket_stays_open_well_past_the_header_and_request_timeouts() {
    let app = spawn_app_with(|config| {
        config.header_timeout = HEADER_TIMEOUT;
        config.request_timeout = REQUEST_TIMEOUT;
    })
    .await;
    let alice = app.login("alice").await;
    let mut ws = alice.ws("lobby").await;

    // Idle, as a page nobody types in: well past either timeout.
    let quiet_until = Instant::now() + Duration::from_secs_f64(2.0 * HEADER_TIMEOUT);
    while let Some(frame) = ws
        .next_within(quiet_until.saturating_duration_since(Instant::now()))
        .await
    {
        assert!(
            !matches!(frame, Received::Closed(_)),
            "the socket was closed: {frame:?}"
        );
    }
    ws.say("still here").await;
    assert!(ws.next_text().await.contains("still here"));
}
