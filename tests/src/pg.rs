//! A real PostgreSQL for a test: a fresh cluster (`initdb`, `pg_ctl`) in a temporary
//! directory on a free port, trust authentication on the loopback, stopped on drop.
//! Run as root, it runs the server as the `postgres` user (PostgreSQL refuses root).
//! `JIANCHA_TEST_PG_URL` points the tests at an existing server instead.

use crate::kafka::{Scratch, free_port, wait_for};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// A running PostgreSQL.
#[derive(Debug)]
pub struct Postgres {
    /// `postgres://…/postgres`.
    pub url: String,
    dir: Option<Scratch>,
    bin: PathBuf,
    as_postgres: bool,
}

fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path().join("bin"))).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .unwrap_or_else(|| panic!("PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb): run ./scripts/test, which installs it"))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Postgres {
    /// Starts a cluster (or uses `JIANCHA_TEST_PG_URL`).
    pub fn start(name: &str) -> Postgres {
        if let Ok(url) = std::env::var("JIANCHA_TEST_PG_URL") {
            return Postgres { url, dir: None, bin: PathBuf::new(), as_postgres: false };
        }
        let bin = bin_dir();
        let dir = Scratch::new(&format!("pg-{name}"));
        let data = dir.0.join("data");
        let as_postgres = is_root();
        let run = |program: &str, args: &[&str]| {
            let exe = bin.join(program);
            let out = if as_postgres {
                Command::new("runuser").arg("-u").arg("postgres").arg("--").arg(&exe).args(args).output()
            } else {
                Command::new(&exe).args(args).output()
            };
            match out {
                Ok(o) if o.status.success() => {}
                Ok(o) => panic!("{program} {args:?} failed:\n{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
                Err(e) => panic!("{program}: {e}"),
            }
        };
        if as_postgres {
            let _ = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir.0).status();
            let _ = Command::new("chmod").args(["755"]).arg(&dir.0).status();
        }
        let data_s = data.to_string_lossy().to_string();
        run("initdb", &["-D", &data_s, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "-N"]);
        let port = free_port();
        let opts = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off", dir.0.display());
        let log = dir.0.join("pg.log").to_string_lossy().to_string();
        run("pg_ctl", &["-D", &data_s, "-o", &opts, "-l", &log, "-w", "-t", "60", "start"]);
        wait_for("PostgreSQL to accept connections", Duration::from_secs(30), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        Postgres { url: format!("postgres://postgres@127.0.0.1:{port}/postgres"), dir: Some(dir), bin, as_postgres }
    }
}

impl Postgres {
    /// A new, empty database on this server; its URL.
    pub async fn database(&self, name: &str) -> String {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url).await.expect("connect to PostgreSQL");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&mut conn).await.expect("drop database");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
        let base = self.url.rsplit_once('/').map_or(self.url.as_str(), |(b, _)| b);
        format!("{base}/{name}")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let data = dir.0.join("data").to_string_lossy().to_string();
            let exe = self.bin.join("pg_ctl");
            let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
            let _ = if self.as_postgres {
                Command::new("runuser").arg("-u").arg("postgres").arg("--").arg(&exe).args(args).output()
            } else {
                Command::new(&exe).args(args).output()
            };
        }
    }
}
