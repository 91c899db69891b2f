//! The room page: `GET /rooms/{slug}` over keep-alive connections, as fast as it answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::net::{HttpConn, Sources};
use crate::procs::{self, Server};

#[derive(Debug, Clone)]
pub struct PagePlan {
    pub room: String,
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
}

#[derive(Debug, Clone)]
pub struct PageOutcome {
    pub requests: u64,
    pub errors: u64,
    pub bytes_per_response: u64,
    pub requests_per_s: f64,
    pub latency: Histogram<u64>,
    pub server_cpu_secs: f64,
    pub loadgen_cpu_secs: f64,
}

impl PageOutcome {
    pub fn p(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// Writes `count` messages into the chat's room through the no-JavaScript form, so the page
/// has history. Returns the newest id afterwards.
pub async fn seed_history(
    server: SocketAddr,
    room: &str,
    cookie: &str,
    count: usize,
) -> anyhow::Result<()> {
    let mut conn = HttpConn::open([127, 0, 0, 1].into(), server).await?;
    let mut body = Vec::new();
    for i in 1..=count {
        let form =
            format!("body=history+message+{i}%3A+the+quick+brown+fox+jumps+over+the+lazy+dog+%3C3");
        let head = conn
            .post_form(
                &format!("/rooms/{room}/messages"),
                Some(cookie),
                &form,
                &mut body,
            )
            .await?;
        if head.status != 303 {
            anyhow::bail!("posting history answered {}", head.status);
        }
    }
    Ok(())
}

/// Fetches the page once, as the bytes the reference will serve.
pub async fn fetch_page(server: SocketAddr, room: &str, cookie: &str) -> anyhow::Result<Vec<u8>> {
    let mut conn = HttpConn::open([127, 0, 0, 1].into(), server).await?;
    let mut body = Vec::new();
    let head = conn
        .get(&format!("/rooms/{room}"), Some(cookie), &mut body)
        .await?;
    if head.status != 200 {
        anyhow::bail!("GET /rooms/{room} answered {}", head.status);
    }
    Ok(body)
}

pub async fn run(
    plan: &PagePlan,
    server: &Server,
    sources: &Arc<Sources>,
    cookie: &str,
) -> anyhow::Result<PageOutcome> {
    let path = format!("/rooms/{}", plan.room);
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let requests = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let servers = server.addrs();
    for connection in 0..plan.connections.max(1) {
        let path = path.clone();
        let cookie = cookie.to_owned();
        let (requests, errors, bytes) = (requests.clone(), errors.clone(), bytes.clone());
        let server_addr = servers[connection % servers.len()];
        let source = sources.pick();
        tasks.push(tokio::spawn(async move {
            let mut hist = new_histogram();
            let mut body = Vec::with_capacity(256 * 1024);
            let mut conn: Option<HttpConn> = None;
            while Instant::now() < end {
                if conn.is_none() {
                    conn = HttpConn::open(source, server_addr).await.ok();
                    if conn.is_none() {
                        errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                }
                let Some(c) = conn.as_mut() else { continue };
                let sent_at = Instant::now();
                let answer = tokio::time::timeout(
                    Duration::from_secs(10),
                    c.get(&path, Some(&cookie), &mut body),
                )
                .await;
                let done = Instant::now();
                let counted = sent_at >= measure_from && done <= end;
                match answer {
                    Ok(Ok(head)) if head.status == 200 => {
                        if counted {
                            requests.fetch_add(1, Ordering::Relaxed);
                            bytes.store(body.len() as u64, Ordering::Relaxed);
                            hist.saturating_record((done - sent_at).as_micros().max(1) as u64);
                        }
                    }
                    Ok(Ok(_)) => {
                        if counted {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
            }
            hist
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_server_0 = server.cpu_seconds();
    let cpu_self_0 = procs::cpu_seconds(std::process::id());
    tokio::time::sleep_until(end.into()).await;
    let server_cpu_secs = server.cpu_seconds() - cpu_server_0;
    let loadgen_cpu_secs = procs::cpu_seconds(std::process::id()) - cpu_self_0;
    let mut latency = new_histogram();
    for task in tasks {
        if let Ok(Ok(hist)) = tokio::time::timeout(Duration::from_secs(15), task).await {
            latency.add(&hist).expect("same bounds");
        }
    }
    let requests = requests.load(Ordering::Relaxed);
    Ok(PageOutcome {
        requests,
        errors: errors.load(Ordering::Relaxed),
        bytes_per_response: bytes.load(Ordering::Relaxed),
        requests_per_s: requests as f64 / plan.duration.as_secs_f64(),
        latency,
        server_cpu_secs,
        loadgen_cpu_secs,
    })
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds")
}
