//! What a run starts: the broker (embedded, Tansu, or none for an external one) and the
//! monitor processes; and how their memory and CPU are read.

use anyhow::{Context, Result, bail};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The broker of a run.
pub enum Broker {
    /// librdkafka's mock cluster in this process (serves no CreateTopics: topics are made here).
    Embedded(rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>),
    /// A Tansu broker started for the run (SQLite storage in the output folder).
    Tansu { child: Child, bootstrap: String },
    /// A broker someone else runs.
    External(String),
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe().as_str())
    }
}

/// A free loopback port.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The Tansu binary: `--tansu`, else `JIANCHA_TANSU`, else where `./scripts/test` installs it.
pub fn tansu_binary(given: Option<&Path>) -> PathBuf {
    if let Some(p) = given {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("JIANCHA_TANSU").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    home.join(".cache/jiancha/tansu/bin/tansu")
}

impl Broker {
    /// The embedded broker.
    pub fn embedded() -> Result<Broker> {
        Ok(Broker::Embedded(rdkafka::mocking::MockCluster::new(1).context("starting the embedded broker")?))
    }

    /// A Tansu broker on a free port, its SQLite file and log in `dir`.
    pub fn tansu(binary: &Path, dir: &Path) -> Result<Broker> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("broker.log"))?;
        let child = Command::new(binary)
            // A relative SQLite path: Tansu resolves it under its working folder.
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", "sqlite://broker.db"])
            .current_dir(dir)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting Tansu ({}); `./scripts/test` installs it, or pass --tansu", binary.display()))?;
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("Tansu did not listen on 127.0.0.1:{port} within 30 s (see {}/broker.log)", dir.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Broker::Tansu { child, bootstrap: format!("127.0.0.1:{port}") })
    }

    /// The broker's process when the run started it as one of its own (Tansu).
    pub fn pid(&self) -> Option<u32> {
        match self {
            Broker::Tansu { child, .. } => Some(child.id()),
            _ => None,
        }
    }

    /// Clients' bootstrap address.
    pub fn bootstrap(&self) -> String {
        match self {
            Broker::Embedded(c) => c.bootstrap_servers(),
            Broker::Tansu { bootstrap, .. } => bootstrap.clone(),
            Broker::External(b) => b.clone(),
        }
    }

    /// Its name in the report.
    pub fn describe(&self) -> String {
        match self {
            Broker::Embedded(_) => "embedded (librdkafka mock cluster, in the load-test process)".into(),
            Broker::Tansu { .. } => "Tansu 0.6 (SQLite storage, started by the load test)".into(),
            Broker::External(b) => format!("external Kafka at {b}"),
        }
    }

    /// Short name (result.json's `driver`).
    pub fn kind(&self) -> &'static str {
        match self {
            Broker::Embedded(_) => "embedded",
            Broker::Tansu { .. } => "tansu",
            Broker::External(_) => "kafka",
        }
    }

    /// Makes `topics` on the embedded broker (the others get them from the monitors or
    /// `ensure_topics`).
    pub fn create_topics(&self, topics: &[String], partitions: i32) -> Result<()> {
        if let Broker::Embedded(c) = self {
            for t in topics {
                c.create_topic(t, partitions, 1).with_context(|| format!("creating topic {t} on the embedded broker"))?;
            }
        }
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Broker::Tansu { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A monitor process started by the run.
#[derive(Debug)]
pub struct MonitorProcess {
    /// The child.
    pub child: Child,
    /// Its number (0…).
    pub index: usize,
}

impl MonitorProcess {
    /// Starts `exe monitor --config config` with its log in `log`.
    pub fn start(exe: &Path, config: &Path, log: &Path, index: usize) -> Result<MonitorProcess> {
        let out = std::fs::File::create(log)?;
        let child = Command::new(exe)
            .args(["monitor", "--config"])
            .arg(config)
            .env("JIANCHA_LOG", "info,rdkafka=warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting monitor {index} ({} monitor)", exe.display()))?;
        Ok(MonitorProcess { child, index })
    }

    /// Whether it has exited, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends it a signal (`-TERM`, `-STOP`, `-CONT`).
    pub fn signal(&self, signal: &str) -> Result<()> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().context("running kill")?;
        if !status.success() {
            bail!("kill {signal} {pid} failed ({status})");
        }
        Ok(())
    }

    /// SIGTERM (a clean stop: flush, commit, leave the group), then wait up to `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if self.exited().is_some() {
            return;
        }
        let _ = self.signal("-TERM");
        let started = Instant::now();
        while started.elapsed() < grace {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for MonitorProcess {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Resident memory and CPU time of a process, from /proc (Linux).
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSample {
    /// Resident set, bytes.
    pub rss: u64,
    /// User + system CPU time, seconds.
    pub cpu_s: f64,
}

/// Clock ticks a second (`getconf CLK_TCK`; 100 when it cannot be asked).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

/// The CPU seconds the processes `pids` have used so far, summed (those gone count 0).
pub fn cpu_of(pids: &[u32], ticks: f64) -> f64 {
    pids.iter().filter_map(|&p| sample(p, ticks)).map(|s| s.cpu_s).sum()
}

/// Reads a process's sample; None when it is gone or /proc is not there.
pub fn sample(pid: u32, ticks: f64) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())? * 1024;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces, inside parentheses).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some(ProcSample { rss, cpu_s: (utime + stime) / ticks })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample(std::process::id(), clock_ticks()).expect("/proc/self");
        assert!(s.rss > 1 << 20);
        assert!(s.cpu_s >= 0.0);
    }
}
