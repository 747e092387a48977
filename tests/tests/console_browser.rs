//! The inspector console in a real browser: `jiancha up` (embedded broker, monitor,
//! gateway, accountability service, console), a real OpenID Connect provider
//! (oidc-provider on Node), and Debian's chromium driven by playwright-core through
//! `tests/console/browser.mjs`. This file starts everything, puts items in through the
//! gateway and the broker, and runs the browser script, which asserts what the users see.
//! Screenshots of every page are kept in `target/console-screenshots/`.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use jiancha_platform::auth::Bearer;
use jiancha_proto::v1;
use jiancha_proto::v1::ingest_service_client::IngestServiceClient;
use jiancha_scenarios::kafka::{Scratch, free_port};
use jiancha_scenarios::process::{Running, lines_of, start_up, wait_line};
use jiancha_scenarios::repo_root;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

const BIN: &str = env!("CARGO_BIN_EXE_jiancha-it");

fn chromium() -> PathBuf {
    let path = PathBuf::from(std::env::var("JIANCHA_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    assert!(path.exists(), "{} is missing: apt-get install chromium fonts-noto-cjk (./scripts/test does)", path.display());
    path
}

fn event_line(id: &str, item: &str, dept: &str, service: &str, ty: &str, at: &str) -> String {
    let mut e = serde_json::json!({"event_id": id, "item_id": item, "department_code": dept, "type": ty, "occurred_at": at});
    if ty == "SUBMITTED" {
        e["service_code"] = service.into();
    } else {
        e["actor"] = "李四".into();
    }
    e.to_string()
}

fn ago(days: i64, minutes: i64) -> String {
    let t = chrono::Utc::now() - chrono::Duration::days(days) - chrono::Duration::minutes(minutes);
    t.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap()).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// An overdue item: submitted and accepted 40 days ago, nothing since (statutory limit of
/// 20 working days passed: a red card).
fn overdue_item(item: &str, dept: &str, service: &str) -> String {
    [
        event_line(&format!("{item}-01"), item, dept, service, "SUBMITTED", &ago(40, 120)),
        event_line(&format!("{item}-02"), item, dept, service, "ACCEPTED", &ago(40, 60)),
    ]
    .join("\n")
        + "\n"
}

fn login_link(state: &Path, role: &str, department: Option<&str>) -> String {
    let mut cmd = Command::new(BIN);
    cmd.args(["console", "login", "--role", role, "--state-dir"]).arg(state);
    if let Some(d) = department {
        cmd.args(["--department", d]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "console login: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn the_console_in_a_real_browser() {
    let root = repo_root();
    let node_dir = root.join("tests/console");
    assert!(
        node_dir.join("node_modules/playwright-core").exists() && node_dir.join("node_modules/oidc-provider").exists(),
        "the browser test's packages are missing: run `npm ci` in tests/console (./scripts/test does)"
    );
    let chromium = chromium();
    let dir = Scratch::new("console");
    let state = dir.0.join("state");
    let shots = root.join("target/console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    // The identity provider, redirecting back to the console's port.
    let console_port = free_port();
    let console_url = format!("http://127.0.0.1:{console_port}");
    let mut oidc = Running(
        Command::new("node")
            .arg(node_dir.join("oidc.mjs"))
            .arg(format!("{console_url}/auth/oidc/callback"))
            .current_dir(&node_dir)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.0.join("oidc.log")).unwrap())
            .spawn()
            .expect("node"),
    );
    let oidc_lines = lines_of(&mut oidc.0);
    let issuer = wait_line(&oidc_lines, "issuer: ", &mut Vec::new(), Duration::from_secs(30));

    let secret = dir.0.join("oidc-client.secret");
    std::fs::write(&secret, "console-test-secret-0123456789").unwrap();
    let config = dir.0.join("jiancha.toml");
    std::fs::write(
        &config,
        format!(
            r#"metrics_listen = "127.0.0.1:0"
[accountability]
listen = "127.0.0.1:0"
escalation_interval = "2s"
[console]
public_queries_per_minute = 30
[console.oidc]
issuer = "{issuer}"
client_id = "jiancha-console"
client_secret_file = "{}"
[console.oidc.roles]
"jjjc-inspectors" = "INSPECTOR"
"#,
            secret.display()
        ),
    )
    .unwrap();

    let console_listen = format!("127.0.0.1:{console_port}");
    let (up, up_lines) = start_up(
        BIN,
        &dir.0,
        &[
            "--no-simulator".as_ref(),
            "--grpc-listen".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--console-listen".as_ref(),
            console_listen.as_ref(),
            "--state-dir".as_ref(),
            state.as_os_str(),
            "--config".as_ref(),
            config.as_os_str(),
        ],
    );
    let mut seen = Vec::new();
    let limit = Duration::from_secs(120);
    let bootstrap = wait_line(&up_lines, "kafka bootstrap: ", &mut seen, limit);
    let grpc = wait_line(&up_lines, "grpc: ", &mut seen, limit);
    let console = wait_line(&up_lines, "console: ", &mut seen, limit);
    assert_eq!(console.trim_end_matches('/'), console_url);
    let inspector_link = wait_line(&up_lines, "console login INSPECTOR: ", &mut seen, limit);
    let department_link = wait_line(&up_lines, "console login DEPARTMENT SCJG: ", &mut seen, limit);

    // The applicant's item, submitted through the gateway as SCJG's system: the answer
    // carries the query code printed on the receipt.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ca = std::fs::read(state.join("tls/ca.pem")).unwrap();
    let channel = rt
        .block_on(
            Channel::from_shared(format!("https://{grpc}"))
                .unwrap()
                .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("localhost"))
                .unwrap()
                .connect(),
        )
        .unwrap();
    let token = std::fs::read_to_string(state.join("tokens/department-SCJG.jwt")).unwrap();
    let mut ingest = IngestServiceClient::with_interceptor(channel, Bearer(Some(token)));
    let public_item = "SCJG-CONSOLE-PUBLIC";
    let mut query_code = String::new();
    for (n, ty, at) in [(1, v1::EventType::Submitted, ago(2, 60)), (2, v1::EventType::Accepted, ago(2, 30))] {
        let event = v1::Event {
            event_id: format!("{public_item}-0{n}"),
            item_id: public_item.into(),
            service_code: (n == 1).then(|| "SCJG-001".to_owned()),
            department_code: "SCJG".into(),
            r#type: ty as i32,
            occurred_at: at,
            actor: (n == 2).then(|| "王芳".to_owned()),
            ..Default::default()
        };
        let answer = rt.block_on(ingest.submit(v1::SubmitRequest { event: Some(event) })).unwrap().into_inner();
        if n == 1 {
            query_code = answer.query_code;
        } else {
            assert!(answer.query_code.is_empty(), "only SUBMITTED answers carry the query code");
        }
    }
    assert_eq!(query_code.len(), jiancha_platform::progress::CODE_LEN, "SUBMITTED through the gateway returns the query code");

    // Another department's overdue item, produced to the broker before anyone looks.
    let other_item = "ZRZY-CONSOLE-OTHER";
    let other_file = dir.0.join("other.jsonl");
    std::fs::write(&other_file, overdue_item(other_item, "ZRZY", "ZRZY-001")).unwrap();
    let produced = Command::new(BIN).args(["produce", "--kafka-bootstrap", &bootstrap, "--file"]).arg(&other_file).output().unwrap();
    assert!(produced.status.success(), "produce: {}", String::from_utf8_lossy(&produced.stderr));

    // The item whose alert must appear on an open board: the browser script produces it.
    let live_item = "SCJG-CONSOLE-LIVE";
    let live_file = dir.0.join("live.jsonl");
    std::fs::write(&live_file, overdue_item(live_item, "SCJG", "SCJG-001")).unwrap();

    let settings = serde_json::json!({
        "console": console_url,
        "issuer": issuer,
        "chromium": chromium,
        "screenshots": shots,
        "links": {
            "inspector": inspector_link,
            "department": department_link,
            "department_other": login_link(&state, "DEPARTMENT", Some("ZRZY")),
            "auditor": login_link(&state, "AUDITOR", None),
            "operator": login_link(&state, "OPERATOR", None),
            "inspector2": login_link(&state, "INSPECTOR", None),
        },
        "produce": [BIN, "produce", "--kafka-bootstrap", bootstrap, "--file", live_file],
        "live_item": live_item,
        "other_item": other_item,
        "public_item": public_item,
        "query_code": query_code,
    });
    let browser = Command::new("node")
        .arg(node_dir.join("browser.mjs"))
        .current_dir(&node_dir)
        .env("JIANCHA_CONSOLE_TEST", settings.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node");
    let out = browser.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    if !out.status.success() {
        let log = std::fs::read_to_string(dir.0.join("up.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        panic!(
            "the browser test failed ({}):\n{stdout}\n{stderr}\n--- up.log (last lines) ---\n{}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    assert!(stdout.contains("all console checks passed"), "{stdout}");
    drop(up);
    drop(oidc);
}
