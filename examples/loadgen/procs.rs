//! The servers under test, each its own child process, and what `/proc` says about them.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::net::HttpConn;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Reference,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Chat => "chat",
            Kind::Reference => "reference",
        })
    }
}

/// How to start the servers.
#[derive(Debug, Clone)]
pub struct Launch {
    pub chat_bin: PathBuf,
    pub chat_log: String,
    pub chat_args: Vec<String>,
    pub chat_env: Vec<(String, String)>,
    /// Where temporary data dirs go (on disk, so fsync is real).
    pub work_dir: PathBuf,
    pub reference_args: Vec<String>,
    pub stop_grace: Duration,
    /// Chat processes to start on one database (`CHAT_DATABASE_URL` in `chat_env`); clients
    /// take turns among them.
    pub chat_instances: usize,
}

pub struct Server {
    pub kind: Kind,
    stop_grace: Duration,
    pub addr: SocketAddr,
    pub pid: u32,
    child: Child,
    /// The chat's data directory, removed when the server is dropped.
    _dir: tempfile::TempDir,
    pub log: PathBuf,
    /// The chat's other instances on the same database.
    others: Vec<Server>,
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl Server {
    /// Starts a server (for the chat, `launch.chat_instances` of them) and waits for
    /// `/healthz`. `page_file` is for the reference's room page.
    pub async fn start(
        launch: &Launch,
        kind: Kind,
        page_file: Option<&Path>,
    ) -> anyhow::Result<Server> {
        let mut server = Server::start_one(launch, kind, page_file).await?;
        if kind == Kind::Chat {
            for _ in 1..launch.chat_instances {
                let other = Server::start_one(launch, kind, page_file).await?;
                server.others.push(other);
            }
        }
        Ok(server)
    }

    async fn start_one(
        launch: &Launch,
        kind: Kind,
        page_file: Option<&Path>,
    ) -> anyhow::Result<Server> {
        std::fs::create_dir_all(&launch.work_dir)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("bench-{kind}-"))
            .tempdir_in(&launch.work_dir)?;
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = dir.path().join("server.log");
        let log_file = std::fs::File::create(&log)?;
        let mut command = match kind {
            Kind::Chat => {
                let mut c = Command::new(&launch.chat_bin);
                c.arg("--addr")
                    .arg(addr.to_string())
                    .arg("--data-dir")
                    .arg(dir.path().join("data"))
                    .arg("--log")
                    .arg(&launch.chat_log)
                    .args(&launch.chat_args)
                    // Benchmarks run with the per-session rate limit off, once there is one.
                    .env("CHAT_RATE_LIMIT", "0")
                    .envs(launch.chat_env.iter().cloned());
                c
            }
            Kind::Reference => {
                let mut c = Command::new(std::env::current_exe()?);
                c.arg("serve-reference")
                    .arg("--addr")
                    .arg(addr.to_string())
                    .args(&launch.reference_args);
                if let Some(page) = page_file {
                    c.arg("--page-file").arg(page);
                }
                c
            }
        };
        command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting the {kind} server"))?;
        let pid = child.id().context("child has no pid")?;
        let mut server = Server {
            kind,
            stop_grace: launch.stop_grace,
            addr,
            pid,
            child,
            _dir: dir,
            log,
            others: Vec::new(),
        };
        server.wait_healthy(Duration::from_secs(60)).await?;
        Ok(server)
    }

    async fn wait_healthy(&mut self, limit: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the {} server exited with {status}; log: {}\n{}",
                    self.kind,
                    self.log.display(),
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            let probe = async {
                let mut conn = HttpConn::open([127, 0, 0, 1].into(), self.addr).await?;
                let mut body = Vec::new();
                conn.get("/healthz", None, &mut body).await
            };
            if let Ok(Ok(head)) = tokio::time::timeout(Duration::from_secs(1), probe).await
                && head.status == 200
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "the {} server did not answer /healthz in {limit:?}",
            self.kind
        )
    }

    /// Every instance's address; client `n` uses the one at `n` modulo their number.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        std::iter::once(self.addr)
            .chain(self.others.iter().map(|other| other.addr))
            .collect()
    }

    /// Of every instance together.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.pid) + self.others.iter().map(Server::cpu_seconds).sum::<f64>()
    }

    /// Of every instance together.
    pub fn memory(&self) -> Memory {
        self.others.iter().fold(memory(self.pid), |sum, other| {
            let other = other.memory();
            Memory {
                rss_kib: sum.rss_kib + other.rss_kib,
                hwm_kib: sum.hwm_kib + other.hwm_kib,
            }
        })
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None)) && self.others.iter_mut().all(Server::alive)
    }

    /// SIGTERM, a short grace, then SIGKILL; every instance.
    pub async fn stop(mut self) {
        for other in std::mem::take(&mut self.others) {
            Box::pin(other.stop()).await;
        }
        // SAFETY: plain syscall on our own child's pid.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGTERM);
        }
        if tokio::time::timeout(self.stop_grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// User + system CPU seconds a process has used.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the `(comm)`, which may hold spaces.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after `state`.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks / hz
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

pub fn memory(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    }
}

/// The soft open-files limit, raised to the hard limit first (children inherit it).
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit on a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}
