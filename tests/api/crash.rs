//! Crash test: the real server binary as a child process, SIGKILLed mid-stream and restarted
//! on the same data directory. The 20-cycle version is `cargo run --example crashloop`; both
//! run the same code, in `examples/crashloop/harness.rs`.

use std::path::Path;
use std::time::Instant;

#[path = "../../examples/crashloop/harness.rs"]
pub mod harness;

use harness::{CrashPlan, crash_loop};

/// The server binary cargo built for these tests.
pub fn server_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chat"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_acknowledged_message_and_ids_continue() {
    let data_dir = tempfile::tempdir().unwrap();
    let plan = CrashPlan {
        cycles: 3,
        clients: 3,
        kill_after_ms: (50, 400),
        window: 16,
    };
    let started = Instant::now();
    let report = crash_loop(server_bin(), data_dir.path(), &plan, |line| {
        eprintln!("{line}")
    })
    .await;
    eprintln!(
        "{} cycles in {:.1} s: sent {}, acknowledged {}, found {}, stored {}",
        report.cycles_run,
        started.elapsed().as_secs_f64(),
        report.sent,
        report.acknowledged,
        report.found,
        report.stored
    );
    assert!(
        report.failures.is_empty(),
        "crash cycles failed:\n{}",
        report.failures.join("\n")
    );
    assert_eq!(report.cycles_passed, plan.cycles, "{:#?}", report.lines);
    assert!(
        report.acknowledged >= u64::from(plan.cycles) * plan.clients as u64,
        "every client of every cycle was acknowledged at least once"
    );
    assert_eq!(report.found, report.acknowledged);
}
