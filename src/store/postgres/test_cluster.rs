//! A throwaway PostgreSQL for tests: one cluster per test process, started on first use from
//! Debian's `postgresql` binaries, and a fresh database for each caller. Shared by the store's
//! unit tests and the API tests (which include this file by path).
//!
//! The cluster listens on a Unix socket in its own temporary directory only, so parallel test
//! processes never race for a port. `cargo test` has no global teardown: a watchdog process
//! stops the cluster and removes its directory once the test process is gone.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where Debian installs each major version's server binaries.
const DEBIAN_BINARIES: &str = "/usr/lib/postgresql";
/// The socket's port number: part of its file name only, since nothing listens on TCP.
const PORT: u16 = 5432;

struct Cluster {
    socket_dir: PathBuf,
    data: PathBuf,
    bin: PathBuf,
    as_root: bool,
}

/// A cluster of the caller's own, for a test that stops and starts PostgreSQL under a
/// running server (the shared one serves every other test of the process).
#[allow(
    dead_code,
    reason = "used by the API tests, which include this file by path"
)]
pub struct OwnCluster(Cluster);

#[allow(
    dead_code,
    reason = "used by the API tests, which include this file by path"
)]
impl OwnCluster {
    /// Starts one, with one database; returns it and that database's URL.
    pub fn start() -> (OwnCluster, String) {
        let cluster = Cluster::start();
        let url = cluster.create_database("chat");
        (OwnCluster(cluster), url)
    }

    /// Stops PostgreSQL the way an operator would (`pg_ctl stop -m fast`: sessions are
    /// disconnected, nothing acknowledged is lost).
    pub fn stop(&self) {
        run(self.0.pg_ctl().args(["-w", "-m", "fast", "stop"]));
    }

    /// Starts it again, with the options it had.
    pub fn start_again(&self) {
        let log = self.0.socket_dir.join("server.log");
        run(self
            .0
            .pg_ctl()
            .arg("-l")
            .arg(log)
            .args(["-w", "-o", &self.0.options(), "start"]));
    }
}

impl Drop for OwnCluster {
    /// Gone with its test, not with the process (the watchdog still removes its directory).
    fn drop(&mut self) {
        let _ = self
            .0
            .pg_ctl()
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A new, empty database in this process's cluster; returns its URL.
pub fn fresh_database() -> String {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    static DATABASES: AtomicU32 = AtomicU32::new(0);
    let cluster = CLUSTER.get_or_init(Cluster::start);
    cluster.create_database(&format!(
        "test_{}",
        DATABASES.fetch_add(1, Ordering::Relaxed)
    ))
}

impl Cluster {
    fn start() -> Cluster {
        let bin = server_binaries();
        let root = tempfile::Builder::new()
            .prefix("chat-test-pg-")
            .tempdir()
            .expect("a temporary directory for PostgreSQL")
            .keep();
        let as_root = is_root();
        if as_root {
            // initdb and postgres refuse to run as root: they run as the package's user.
            run(Command::new("chown").arg("postgres:").arg(&root));
        }
        let cluster = Cluster {
            data: root.join("data"),
            socket_dir: root,
            bin,
            as_root,
        };
        run(cluster
            .server("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .arg("-D")
            .arg(&cluster.data));
        run(cluster
            .pg_ctl()
            .arg("-l")
            .arg(cluster.socket_dir.join("server.log"))
            .args(["-w", "-o", &cluster.options(), "start"]));
        watch_over(
            &cluster.server("pg_ctl"),
            &cluster.data,
            &cluster.socket_dir,
        );
        cluster
    }

    /// One of the server's programs, as the user that may run it.
    fn server(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    /// `pg_ctl` on this cluster's data directory.
    fn pg_ctl(&self) -> Command {
        let mut command = self.server("pg_ctl");
        command.arg("-D").arg(&self.data);
        command
    }

    /// The server's options: its socket only, and no durability (throwaway data).
    fn options(&self) -> String {
        format!(
            "-p {PORT} -k {} -c listen_addresses='' -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=400",
            self.socket_dir.display()
        )
    }

    /// A new, empty database; returns its URL.
    fn create_database(&self, name: &str) -> String {
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .expect("connecting to the test cluster");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("creating a test database");
        self.url(name)
    }

    fn url(&self, database: &str) -> String {
        // The socket directory as the URL's host, percent-encoded as libpq reads it.
        let host = self.socket_dir.display().to_string().replace('/', "%2F");
        format!("postgres://postgres@{host}:{PORT}/{database}")
    }
}

/// The newest installed version's `bin` directory. Missing binaries fail the test: tests
/// that need PostgreSQL never pass without it.
fn server_binaries() -> PathBuf {
    let newest = std::fs::read_dir(DEBIAN_BINARIES)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: f64 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match newest {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL's server binaries are not in {DEBIAN_BINARIES}/*/bin: install Debian's \
             `postgresql` package (apt-get install postgresql) to run these tests"
        ),
    }
}

fn is_root() -> bool {
    let output = Command::new("id")
        .arg("-u")
        .output()
        .expect("running id -u");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

fn run(command: &mut Command) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts a process that outlives this one by a moment: once this process is gone, it stops
/// the cluster at once and deletes its directory.
fn watch_over(pg_ctl: &Command, data: &Path, root: &Path) {
    let stop = std::iter::once(pg_ctl.get_program())
        .chain(pg_ctl.get_args())
        .map(|part| shell_quote(&part.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
         {stop} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {root}",
        pid = std::process::id(),
        data = shell_quote(&data.display().to_string()),
        root = shell_quote(&root.display().to_string()),
    );
    // Forked into a session of its own (`setsid` itself returns at once), so a Ctrl-C to
    // the tests' process group doesn't end it before the cluster.
    run(Command::new("setsid")
        .args(["--fork", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null()));
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
