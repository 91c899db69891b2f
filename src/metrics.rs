//! What `/metrics` reports, in the Prometheus text format.
//!
//! Each application has its own recorder, not the process-wide one, so that servers started
//! side by side (the tests) keep separate counts. Every metric is registered once here and
//! kept as a handle: recording is an atomic add (or a lock-free push for histograms), with no
//! name lookup, lock or allocation on the message path. Histograms are fed once per commit
//! batch, not per message or per socket.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

const SOCKETS: &str = "chat_sockets";
const ROOMS: &str = "chat_rooms";
const PERSISTED: &str = "chat_messages_persisted_total";
const DELIVERED: &str = "chat_messages_delivered_total";
const SLOW_CONSUMERS: &str = "chat_slow_consumers_dropped_total";
const FANOUT_SECONDS: &str = "chat_fanout_latency_seconds";
const COMMIT_SECONDS: &str = "chat_store_commit_seconds";
const COMMIT_BATCH: &str = "chat_store_commit_batch_size";

/// Seconds: from a commit's fsync (milliseconds) to a queue that waited behind a pause.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Messages per commit; the committer folds at most 512.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// How often histogram samples are folded into their buckets when nobody scrapes, so that
/// they can't pile up.
const UPKEEP: Duration = Duration::from_secs(5);

pub struct Metrics {
    handle: PrometheusHandle,
    /// Set from the hub just before each render: counted where they live, not on every
    /// connect.
    pub sockets: Gauge,
    pub rooms: Gauge,
    pub persisted: Counter,
    pub delivered: Counter,
    pub slow_consumers: Counter,
    pub fanout_seconds: Histogram,
    pub commit_seconds: Histogram,
    pub commit_batch: Histogram,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(COMMIT_BATCH.into()), BATCH_BUCKETS)
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let gauge = |name: &'static str, help: &'static str| {
            recorder.describe_gauge(KeyName::from_const_str(name), None, help.into());
            recorder.register_gauge(&Key::from_static_name(name), &METADATA)
        };
        let counter = |name: &'static str, help: &'static str| {
            recorder.describe_counter(KeyName::from_const_str(name), None, help.into());
            recorder.register_counter(&Key::from_static_name(name), &METADATA)
        };
        let histogram = |name: &'static str, unit: Option<Unit>, help: &'static str| {
            recorder.describe_histogram(KeyName::from_const_str(name), unit, help.into());
            recorder.register_histogram(&Key::from_static_name(name), &METADATA)
        };
        Arc::new(Metrics {
            sockets: gauge(SOCKETS, "Open WebSockets (room and sidebar sockets)."),
            rooms: gauge(ROOMS, "Rooms, direct conversations included."),
            persisted: counter(
                PERSISTED,
                "Messages stored (people's messages and system lines), counted per commit.",
            ),
            delivered: counter(
                DELIVERED,
                "Message fragments handed to subscribed sockets' live feeds at fan-out: one per \
                 message per socket subscribed to its room. Catch-up replays are not counted.",
            ),
            slow_consumers: counter(
                SLOW_CONSUMERS,
                "Sockets closed with 1013 because they stopped reading.",
            ),
            fanout_seconds: histogram(
                FANOUT_SECONDS,
                Some(Unit::Seconds),
                "Per commit batch: seconds from the oldest message of the batch being submitted \
                 to every message of the batch handed to its room's sockets (queue wait, render, \
                 synced commit and broadcast).",
            ),
            commit_seconds: histogram(
                COMMIT_SECONDS,
                Some(Unit::Seconds),
                "Seconds one synced commit of a message batch took.",
            ),
            commit_batch: histogram(COMMIT_BATCH, None, "Messages per synced commit."),
            handle: recorder.handle(),
        })
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Folds histogram samples into buckets every few seconds until `stop`.
    pub fn spawn_upkeep(self: &Arc<Self>, stop: CancellationToken) {
        let handle = self.handle.clone();
        tokio::spawn(async move {
            crate::periodic::every(UPKEEP, &stop, || async { handle.run_upkeep() }).await;
        });
    }
}

static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);
