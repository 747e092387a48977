//! `jiancha demo`: the embedded demo (a municipal service centre's catalog and a few
//! hundred items) replayed through the engine, shown the way an inspector reads it.

use anyhow::Result;
use clap::Args;
use jiancha_core::{Alert, AlertStatus, Calendars, Catalog, Engine, Replay};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

const CATALOG: &str = include_str!("../../../deploy/demo/catalog.toml");
const EVENTS: &str = include_str!("../../../deploy/demo/events.jsonl");

#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  jiancha demo            # readable alerts, one example derivation per kind
  jiancha demo --json     # the same alerts as JSON lines (the replay format)")]
pub struct DemoArgs {
    /// Print alerts as JSON lines, exactly as `jiancha replay` does.
    #[arg(long)]
    json: bool,
}

pub fn run(args: DemoArgs) -> Result<()> {
    let calendars = Calendars::builtin();
    let catalog = Catalog::from_toml(CATALOG, &calendars)?;
    let names: BTreeMap<String, String> = catalog.services().iter().map(|s| (s.code.to_string(), s.name.to_string())).collect();
    let mut replay = Replay::new(Engine::new(Arc::new(catalog), calendars));
    let mut alerts: Vec<Alert> = Vec::new();
    let (mut events, mut invalid) = (0, Vec::new());
    for (n, line) in EVENTS.lines().enumerate() {
        match replay.arrive_json(line.as_bytes(), &mut |a| alerts.push(a)) {
            Ok(_) => events += 1,
            Err(bad) => invalid.push((n + 1, bad)),
        }
    }
    replay.finish(None, &mut |a| alerts.push(a));

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        for a in &alerts {
            writeln!(out, "{}", a.to_json())?;
        }
        return Ok(());
    }
    writeln!(out, "jiancha demo: {events} events of {} items from deploy/demo (replayed on a virtual clock)\n", replay.engine().len())?;
    let mut examples: BTreeMap<&str, &Alert> = BTreeMap::new();
    for a in &alerts {
        let mark = if a.status == AlertStatus::Retracted { "撤销" } else { a.level.as_str() };
        let service = a.service_code.as_deref().map_or(String::new(), |c| names.get(c).map_or(c.to_owned(), |n| format!("{c} {n}")));
        writeln!(
            out,
            "[{mark:^7}] {}  {:<10} {:<22} {}\n          {}",
            a.triggered_at.short_in(a.zone),
            a.kind.zh(),
            a.item_id.as_deref().unwrap_or("-"),
            service,
            a.message.zh
        )?;
        if a.status == AlertStatus::Fired {
            examples.entry(a.kind.as_str()).or_insert(a);
        }
    }
    writeln!(out, "\n— 推算依据示例（每类一例）/ one derivation per kind —")?;
    for (kind, a) in &examples {
        writeln!(out, "\n{kind} {} ({})\n  {}\n  {}", a.item_id.as_deref().unwrap_or("-"), a.alert_id, a.derivation.zh, a.derivation.en)?;
    }
    writeln!(out, "\n— 无效事件（进入死信，不影响其他办件）/ invalid events —")?;
    for (line, bad) in &invalid {
        writeln!(out, "  line {line}: {} {}", bad.reason.as_str(), bad.message)?;
    }
    let fired = alerts.iter().filter(|a| a.status == AlertStatus::Fired).count();
    writeln!(
        out,
        "\n{} alert updates: {fired} fired, {} retracted by late data; {} kinds.",
        alerts.len(),
        alerts.len() - fired,
        examples.len()
    )?;
    Ok(())
}
