//! `deploy/` against the binary: every command, flag and `JIANCHA_*` variable the compose
//! file, the Kubernetes manifests, the systemd units and the Dockerfile name is one the
//! binary has; every configuration they carry loads; and every metric the Prometheus
//! rules and the Grafana dashboard query is exported by a running `jiancha up`.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use jiancha_platform::Config;
use jiancha_scenarios::kafka::{Scratch, free_port};
use jiancha_scenarios::process::{start_up, wait_line};
use jiancha_scenarios::repo_root;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_jiancha-it");

/// Every text file under `deploy/` but the demo data.
fn deploy_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                if !path.ends_with("demo") && !path.ends_with("secrets") {
                    walk(&path, out);
                }
            } else {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo_root().join("deploy"), &mut files);
    files.sort();
    files
}

fn words(line: &str) -> Vec<String> {
    line.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .map(|w| w.trim_matches(|c| c == '"' || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The jiancha command lines in a file: exec forms (`command:`, `args:`, `ExecStart=`,
/// health checks) and, in comments and prose, `jiancha …` followed by flags.
fn command_lines(text: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start().trim_start_matches('#').trim_start();
        let w = words(trimmed);
        if let Some(first) = w.first()
            && (first == "command:" || first == "args:")
            && w.len() > 1
            && !w[1].starts_with("--config.file")
        {
            found.push(w[1..].to_vec());
            continue;
        }
        for (i, word) in w.iter().enumerate() {
            // The binary, not the value of a flag (`pg_isready -U jiancha`).
            let after_flag = i > 0 && w[i - 1].starts_with('-');
            let is_binary = !after_flag && (word == "jiancha" || word.ends_with("bin/jiancha"));
            let rest = &w[i + 1..];
            let structured = trimmed.starts_with("ExecStart=") || trimmed.starts_with("HEALTHCHECK") || trimmed.starts_with("test:");
            if is_binary && (structured || rest.iter().any(|r| r.starts_with("--"))) {
                found.push(rest.to_vec());
                break;
            }
        }
    }
    found
}

fn help(path: &[String]) -> Option<String> {
    let out = Command::new(BIN).args(path).arg("--help").output().unwrap();
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn deploy_files_name_only_real_commands_flags_and_settings() {
    let files = deploy_files();
    let mut commands = 0;
    let mut variables = BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let shown = file.strip_prefix(repo_root()).unwrap().display().to_string();

        for var in text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("JIANCHA_") && w.len() > "JIANCHA_".len())
        {
            variables.insert((var.to_owned(), shown.clone()));
        }

        for line in command_lines(&text) {
            let mut args = line.into_iter().peekable();
            let mut path: Vec<String> = Vec::new();
            let mut flags = Vec::new();
            while let Some(arg) = args.next() {
                if arg == "--log-format" {
                    args.next();
                } else if let Some(flag) = arg.strip_prefix("--") {
                    flags.push(flag.split('=').next().unwrap().to_owned());
                } else if flags.is_empty() && arg.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
                    let mut candidate = path.clone();
                    candidate.push(arg.clone());
                    if help(&candidate).is_some() && (path.is_empty() || help(&path).unwrap().contains(&format!("  {arg} "))) {
                        path = candidate;
                    } else if path.is_empty() {
                        panic!("{shown}: `jiancha {arg}` is no subcommand (in `{}`)", path.join(" "));
                    }
                }
            }
            if path.is_empty() {
                continue;
            }
            let help = help(&path).unwrap();
            for flag in flags {
                assert!(help.contains(&format!("--{flag}")), "{shown}: `jiancha {}` has no flag --{flag}", path.join(" "));
            }
            commands += 1;
        }
    }
    assert!(commands >= 12, "only {commands} jiancha command lines found under deploy/");

    let unknown = Config::unknown_environment(variables.iter().map(|(v, _)| (v.clone(), String::new())));
    let unknown: Vec<&(String, String)> = variables.iter().filter(|(v, _)| unknown.contains(v)).collect();
    assert!(unknown.is_empty(), "variables that set nothing: {unknown:?}");
    assert!(variables.iter().any(|(v, _)| v == "JIANCHA_GROUP_INSTANCE_ID"));
}

/// The TOML of the Kubernetes ConfigMap.
fn configmap_toml() -> String {
    let text = std::fs::read_to_string(repo_root().join("deploy/k8s/config.yaml")).unwrap();
    let start = text.find("jiancha.toml: |").unwrap();
    text[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.get(4..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_configurations_in_deploy_load_and_their_ports_match_the_manifests() {
    let compose = Config::parse(&std::fs::read_to_string(repo_root().join("deploy/compose/jiancha.toml")).unwrap()).unwrap();
    compose.validate().unwrap();
    assert!(compose.grpc.auth.audience.is_some() && compose.console.signing_kid.as_deref() == Some("console"));
    let k8s = Config::parse(&configmap_toml()).unwrap();
    k8s.validate().unwrap();

    let port = |addr: &str| addr.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let listens: BTreeSet<u16> =
        [&k8s.metrics_listen, &k8s.grpc.listen, &k8s.accountability.listen, &k8s.console.listen].iter().map(|a| port(a)).collect();
    for file in ["monitor.yaml", "gateway.yaml", "accountability.yaml", "console.yaml"] {
        let text = std::fs::read_to_string(repo_root().join("deploy/k8s").join(file)).unwrap();
        for w in words(&text).windows(2) {
            if w[0] == "containerPort:" {
                let p: u16 = w[1].trim_end_matches('}').parse().unwrap();
                assert!(listens.contains(&p), "{file}: containerPort {p} is none of the configured listen ports {listens:?}");
            }
        }
        assert!(text.contains(&format!("prometheus.io/port: \"{}\"", port(&k8s.metrics_listen))), "{file}: the scrape port");
    }
    let prometheus = std::fs::read_to_string(repo_root().join("deploy/prometheus/prometheus.yml")).unwrap();
    assert!(prometheus.contains(&format!(":{}\"", port(&compose.metrics_listen))));
}

/// Metric names the rules and the dashboard query.
fn metrics_in_deploy() -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for file in ["deploy/prometheus/alerts.yml", "deploy/grafana/dashboards/jiancha.json"] {
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if (word.starts_with("jiancha_") || word.starts_with("process_")) && word.len() > 8 {
                names.entry(word.to_owned()).or_insert_with(|| file.to_owned());
            }
        }
    }
    names
}

fn get(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        match reqwest::get(url).await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    })
}

#[test]
fn every_metric_in_deploy_is_exported_by_a_running_up() {
    let wanted = metrics_in_deploy();
    assert!(wanted.len() >= 20, "{wanted:?}");
    let dir = Scratch::new("deploy-metrics");
    let state = dir.0.join("state");
    let metrics_port = free_port();
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let (_up, lines) = start_up(
        BIN,
        &dir.0,
        &[
            "--grpc-listen".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--console-listen".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--metrics-listen".as_ref(),
            metrics_listen.as_ref(),
            "--state-dir".as_ref(),
            state.as_os_str(),
        ],
    );
    let mut seen = Vec::new();
    let bootstrap = wait_line(&lines, "kafka bootstrap: ", &mut seen, Duration::from_secs(120));
    let base = format!("http://127.0.0.1:{metrics_port}");
    let console = wait_line(&lines, "console: ", &mut seen, Duration::from_secs(120));

    // Ready: every role of the process says so, and /readyz lists them.
    let deadline = Instant::now() + Duration::from_secs(120);
    let ready = loop {
        let (status, body) = get(&format!("{base}/readyz"));
        if status == 200 || Instant::now() > deadline {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(ready.0, 200, "/readyz: {}", ready.1);
    for role in ["monitor: ready", "gateway: ready", "accountability: ready", "console: ready"] {
        assert!(ready.1.contains(role), "/readyz lacks `{role}`: {}", ready.1);
    }
    assert_eq!(get(&format!("{base}/healthz")).0, 200);

    // Work that every metric needs: an invalid record (dead letter), an item long overdue
    // (timers fire late), console pages and the gRPC calls behind them.
    let events = dir.0.join("events.jsonl");
    std::fs::write(
        &events,
        "{\"event_id\":\"D-1\",\"item_id\":\"D-1\",\"department_code\":\"SCJG\",\"service_code\":\"SCJG-001\",\"type\":\"SUBMITTED\",\"occurred_at\":\"2026-01-05T09:00:00+08:00\"}\nnot json\n",
    )
    .unwrap();
    let produced = Command::new(BIN).args(["produce", "--kafka-bootstrap", &bootstrap, "--file"]).arg(&events).output().unwrap();
    assert!(produced.status.success(), "{}", String::from_utf8_lossy(&produced.stderr));
    let link = Command::new(BIN).args(["console", "login", "--role", "INSPECTOR", "--state-dir"]).arg(&state).output().unwrap();
    assert!(link.status.success());
    let link = String::from_utf8(link.stdout).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let browser = reqwest::Client::builder().cookie_store(true).build().unwrap();
        browser.get(link.trim()).send().await.unwrap();
        for page in ["/items", "/cases", "/items/SCJG/D-1"] {
            browser.get(format!("{}{page}", console.trim_end_matches('/'))).send().await.unwrap();
        }
    });

    // Then every metric is there within a minute (the simulator keeps events coming).
    let deadline = Instant::now() + Duration::from_secs(90);
    let missing = loop {
        let (_, text) = get(&format!("{base}/metrics"));
        let exported: BTreeSet<&str> = text.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split(['{', ' ']).next()).collect();
        let missing: Vec<(&String, &String)> = wanted.iter().filter(|(name, _)| !exported.contains(name.as_str())).collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing.into_iter().map(|(n, f)| format!("{n} ({f})")).collect::<Vec<_>>();
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    assert!(missing.is_empty(), "named in deploy/ but not exported: {missing:?}");

    let (_, text) = get(&format!("{base}/metrics"));
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap();
        assert!(text.contains(&format!("# HELP {name} ")), "{name} has no HELP text");
    }
    assert!(text.contains("jiancha_build_info{version=\""), "build_info");
    assert!(text.contains("jiancha_event_processing_seconds_bucket{le=\"0.00001\"}"), "microsecond buckets for event processing");
}
