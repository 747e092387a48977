//! The output folder: `result.json` (an OpenMessaging Benchmark result with jiancha's
//! own fields), `report.md`, and SVG plots.

use super::measure::{Check, CpuSplit, Second};
use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::Path;

/// Everything a run found.
#[derive(Debug)]
pub struct Outcome {
    /// What was run, for the report's head.
    pub setup: Value,
    /// The broker's kind (`driver`).
    pub driver: String,
    /// Per second.
    pub seconds: Vec<Second>,
    /// Records the run sent (warm-up excluded) and how many the broker acknowledged.
    pub sent: u64,
    /// Acknowledged.
    pub acked: u64,
    /// Refused by the broker (or the gateway).
    pub failed: u64,
    /// The first refusal.
    pub first_error: Option<String>,
    /// Seconds from the first scheduled send to the last acknowledgement.
    pub produce_s: f64,
    /// Seconds from the first scheduled send (with `backlog`, from the monitors'
    /// resumption) until the monitors had committed everything.
    pub consume_s: f64,
    /// `--backlog`: the stream was written while the monitors were paused, and
    /// `consume_s` is their drain time; the records they had not committed when resumed
    /// (-1 when the broker did not say).
    pub backlog: Option<i64>,
    /// `--backlog`: the CPU the monitors, this process and a broker it started used
    /// during the drain.
    pub drain_cpu: Option<CpuSplit>,
    /// Whether the monitors caught up before the drain timeout.
    pub drained: bool,
    /// The worst delay of a send behind its schedule, ms.
    pub producer_behind_ms: f64,
    /// Mean size of a record, bytes.
    pub message_size: usize,
    /// Event → alert latency, µs.
    pub latency: Histogram<u64>,
    /// Timer lateness, µs.
    pub lateness: Histogram<u64>,
    /// Timer alerts measured.
    pub timer_alerts: u64,
    /// Alerts with a latency sample.
    pub event_alerts: u64,
    /// The plain consumer's rate over the same topic, records/s.
    pub raw_rate: f64,
    /// Records it read.
    pub raw_records: usize,
    /// The replay check (None when not done, with the reason in `check_skipped`).
    pub check: Option<Check>,
    /// Why the check was not done.
    pub check_skipped: Option<String>,
    /// `--find-max`: each step's rate and verdict.
    pub steps: Vec<Value>,
    /// `--find-max`: the highest rate that passed.
    pub max_sustainable: Option<f64>,
    /// Monitors started (0: running ones measured).
    pub monitors: usize,
    /// Partitions of the event topic.
    pub partitions: i32,
    /// The stream's shape.
    pub stream: Value,
}

/// A drain's CPU a record, each side, µs; and the cores all of them kept busy.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct DrainCpu {
    /// The monitors.
    pub monitors_us: f64,
    /// The load test's process (the embedded broker when there is one, the alert reader).
    pub load_test_us: f64,
    /// A broker the run started as a process of its own.
    pub broker_us: Option<f64>,
    /// Cores busy on average over the drain, all of them together.
    pub cores_busy: f64,
}

fn q_ms(h: &Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0)
}

fn max_ms(h: &Histogram<u64>) -> Option<f64> {
    (!h.is_empty()).then(|| h.max() as f64 / 1000.0)
}

fn percentiles(h: &Histogram<u64>) -> Value {
    json!({
        "count": h.len(),
        "p50_ms": q_ms(h, 0.5), "p90_ms": q_ms(h, 0.9), "p99_ms": q_ms(h, 0.99), "p999_ms": q_ms(h, 0.999),
        "max_ms": max_ms(h), "mean_ms": (!h.is_empty()).then(|| h.mean() / 1000.0),
    })
}

impl Outcome {
    /// The monitors' consume rate over the run (records committed / seconds to commit them).
    pub fn consume_rate(&self) -> f64 {
        if self.consume_s > 0.0 { self.acked as f64 / self.consume_s } else { 0.0 }
    }

    /// The best consume rate over five consecutive seconds (a single second swings
    /// with the monitors' commits).
    pub fn peak_consume(&self) -> i64 {
        let c: Vec<i64> = self.seconds.iter().map(|s| s.consumed).collect();
        if c.len() < 5 {
            return c.iter().copied().max().unwrap_or(0);
        }
        c.windows(5).map(|w| w.iter().sum::<i64>() / 5).max().unwrap_or(0)
    }

    /// The monitors' rate as a share of the plain consumer's: from `--find-max`'s
    /// sustainable rate when there is one, else from the best five seconds.
    pub fn share_of_raw(&self) -> Option<f64> {
        let monitor = match self.max_sustainable {
            Some(rate) => rate,
            None if self.backlog.is_some() => self.consume_rate(),
            None => self.peak_consume() as f64,
        };
        (self.raw_rate > 0.0).then(|| monitor / self.raw_rate)
    }

    /// The drain's CPU a record, µs, each side: the monitors, this process, a broker it
    /// started; with the cores busy on average. None unless a `--backlog` run drained.
    pub fn drain_cpu_per_record(&self) -> Option<DrainCpu> {
        let cpu = self.drain_cpu?;
        let records = self.backlog.filter(|n| *n > 0)? as f64;
        (self.consume_s > 0.0).then(|| DrainCpu {
            monitors_us: cpu.monitors_s / records * 1e6,
            load_test_us: cpu.load_test_s / records * 1e6,
            broker_us: cpu.broker_s.map(|b| b / records * 1e6),
            cores_busy: (cpu.monitors_s + cpu.load_test_s + cpu.broker_s.unwrap_or(0.0)) / self.consume_s,
        })
    }

    /// Whether the live alerts equal the replay's.
    pub fn correct(&self) -> Option<bool> {
        self.check.as_ref().map(|c| c.missing == 0 && c.extra == 0 && c.differing == 0)
    }

    fn result_json(&self) -> Value {
        let s = &self.seconds;
        let e2e = |f: fn(&Second) -> Option<f64>| s.iter().map(f).map(|v| v.unwrap_or(0.0)).collect::<Vec<_>>();
        let h = &self.latency;
        let quantiles: serde_json::Map<String, Value> =
            [0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0].iter().map(|q| (q.to_string(), json!(q_ms(h, *q)))).collect();
        let rss_max = s.iter().map(|x| x.monitor_rss).max().unwrap_or(0);
        let cpu_mean = if s.is_empty() { 0.0 } else { s.iter().map(|x| x.monitor_cpu).sum::<f64>() / s.len() as f64 };
        let jiancha = json!({
                "setup": self.setup,
                "stream": self.stream,
                "sent": self.sent,
                "acknowledged": self.acked,
                "failed": self.failed,
                "first_error": self.first_error,
                "produce_seconds": self.produce_s,
                "produce_rate": if self.produce_s > 0.0 { self.acked as f64 / self.produce_s } else { 0.0 },
                "consume_seconds": self.consume_s,
                "consume_rate": self.consume_rate(),
                "backlog_when_resumed": self.backlog,
                "drain_cpu_per_record": self.drain_cpu_per_record(),
                "peak_consume_rate": self.peak_consume(),
                "drained": self.drained,
                "producer_behind_schedule_max_ms": self.producer_behind_ms,
                "raw_consume_rate": self.raw_rate,
                "raw_records": self.raw_records,
                "monitor_share_of_raw": self.share_of_raw(),
                "event_to_alert_latency": percentiles(&self.latency),
                "event_alerts_timed": self.event_alerts,
                "timer_lateness": percentiles(&self.lateness),
                "timer_alerts_timed": self.timer_alerts,
                "monitor_rss_max_bytes": rss_max,
                "monitor_cpu_mean_cores": cpu_mean,
                "correct": self.correct(),
                "check": self.check,
                "check_skipped": self.check_skipped,
                "find_max": { "steps": self.steps, "max_sustainable_rate": self.max_sustainable },
                "seconds": self.seconds,
        });
        json!({
            // The OpenMessaging Benchmark result fields (TestResult): rates per sample
            // window (1 s), latencies in milliseconds. End-to-end is event sent → alert read.
            "workload": self.setup.get("scenario").cloned().unwrap_or(Value::Null),
            "driver": self.driver,
            "messageSize": self.message_size,
            "topics": 1,
            "partitions": self.partitions,
            "producersPerTopic": 1,
            "consumersPerTopic": self.monitors,
            "sampleRateMillis": 1000,
            "publishRate": s.iter().map(|x| x.produced as f64).collect::<Vec<_>>(),
            "publishErrorRate": s.iter().map(|_| 0.0).collect::<Vec<_>>(),
            "consumeRate": s.iter().map(|x| x.consumed as f64).collect::<Vec<_>>(),
            "backlog": s.iter().map(|x| x.lag).collect::<Vec<_>>(),
            "endToEndLatency50pct": e2e(|x| x.p50_ms),
            "endToEndLatency99pct": e2e(|x| x.p99_ms),
            "endToEndLatencyMax": e2e(|x| x.max_ms),
            "aggregatedEndToEndLatencyAvg": (!h.is_empty()).then(|| h.mean() / 1000.0),
            "aggregatedEndToEndLatency50pct": q_ms(h, 0.5),
            "aggregatedEndToEndLatency75pct": q_ms(h, 0.75),
            "aggregatedEndToEndLatency95pct": q_ms(h, 0.95),
            "aggregatedEndToEndLatency99pct": q_ms(h, 0.99),
            "aggregatedEndToEndLatency999pct": q_ms(h, 0.999),
            "aggregatedEndToEndLatency9999pct": q_ms(h, 0.9999),
            "aggregatedEndToEndLatencyMax": max_ms(h),
            "aggregatedEndToEndLatencyQuantiles": quantiles,
            "jiancha": jiancha,
        })
    }

    fn report_md(&self) -> String {
        let mut r = String::new();
        let f = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.1}"));
        let _ = writeln!(r, "# jiancha load test\n");
        let _ = writeln!(r, "```json\n{}\n```\n", serde_json::to_string_pretty(&self.setup).unwrap_or_default());
        let verdict = match (self.correct(), &self.check_skipped) {
            (Some(true), _) => {
                "**correct**: the live alerts equal `replay` of the same records (0 missing, 0 extra, 0 differing)".to_owned()
            }
            (Some(false), _) => "**NOT correct**: the live alerts differ from `replay` of the same records (see below)".to_owned(),
            (None, Some(why)) => format!("correctness **not checked**: {why}"),
            (None, None) => "correctness not checked".to_owned(),
        };
        let _ = writeln!(r, "{verdict}.\n");
        let _ = writeln!(r, "| Measure | Value |\n|---|---|");
        let rows: Vec<(&str, String)> = vec![
            ("records sent / acknowledged / failed", format!("{} / {} / {}", self.sent, self.acked, self.failed)),
            (
                "records in the stream: items / invalid / late reports",
                format!(
                    "{} / {} / {}{}",
                    self.stream["items"],
                    self.stream["invalid"],
                    self.stream["late_reports"],
                    self.stream
                        .get("refused_invalid_by_gateway")
                        .map_or(String::new(), |n| format!(" (the gateway refused {n} invalid with INVALID_ARGUMENT)"))
                ),
            ),
            (
                "produce rate",
                format!(
                    "{:.0} records/s over {:.1} s",
                    if self.produce_s > 0.0 { self.acked as f64 / self.produce_s } else { 0.0 },
                    self.produce_s
                ),
            ),
            ("producer behind schedule (worst)", format!("{:.1} ms", self.producer_behind_ms)),
            (
                if self.backlog.is_some() {
                    "monitor drain rate (the stream written while they were paused; all committed)"
                } else {
                    "monitor consume rate (all records committed)"
                },
                format!(
                    "{:.0} records/s over {:.1} s{}",
                    self.consume_rate(),
                    self.consume_s,
                    if self.drained { "" } else { " — NOT drained" }
                ),
            ),
            ("monitor best 5 seconds", format!("{} records/s", self.peak_consume())),
            (
                "backlog when the monitors were resumed",
                self.backlog.map_or("— (not a --backlog run)".into(), |n| format!("{n} records not yet committed")),
            ),
            (
                "CPU a record during the drain",
                self.drain_cpu_per_record().map_or("— (not a --backlog run)".into(), |c| {
                    format!(
                        "monitors {:.2} µs, this load test ({}) {:.2} µs{}; {:.2} cores busy on average, of the machine's {}",
                        c.monitors_us,
                        if self.driver == "embedded" { "its embedded broker, the alert reader" } else { "the alert reader" },
                        c.load_test_us,
                        c.broker_us.map_or(String::new(), |b| format!(", the broker's process {b:.2} µs")),
                        c.cores_busy,
                        self.setup["machine"]["cpus"]
                    )
                }),
            ),
            ("plain consumer (raw) rate, same broker", {
                // Warm-up records are on the topic too, so fewer than acknowledged means
                // the broker dropped the oldest.
                let dropped = (self.acked as usize).saturating_sub(self.raw_records);
                let note = if dropped > 0 {
                    format!(
                        "; {dropped} acknowledged records were no longer on the broker (the embedded one keeps about 5 MB a \
                         partition), so it read only the newest: a rate read that way is unreliable, not the broker's"
                    )
                } else {
                    String::new()
                };
                format!("{:.0} records/s ({} records{note})", self.raw_rate, self.raw_records)
            }),
            (
                "monitor as share of raw",
                self.share_of_raw().map_or("—".into(), |s| {
                    format!(
                        "{:.1} %{}",
                        s * 100.0,
                        if self.max_sustainable.is_some() {
                            " (highest sustainable rate)"
                        } else if self.backlog.is_some() {
                            " (drain rate over the same backlog the plain consumer read)"
                        } else {
                            " (best 5 seconds; the monitors' capacity only if they were behind then — see --find-max)"
                        }
                    )
                }),
            ),
            (
                "lag at the end / max",
                format!("{} / {}", self.seconds.last().map_or(0, |s| s.lag), self.seconds.iter().map(|s| s.lag).max().unwrap_or(0)),
            ),
            (
                "event → alert latency p50 / p90 / p99 / p99.9 / max",
                format!(
                    "{} / {} / {} / {} / {} ms ({} alerts){}",
                    f(q_ms(&self.latency, 0.5)),
                    f(q_ms(&self.latency, 0.9)),
                    f(q_ms(&self.latency, 0.99)),
                    f(q_ms(&self.latency, 0.999)),
                    f(max_ms(&self.latency)),
                    self.event_alerts,
                    if self.backlog.is_some() { " — with the time the monitors were paused: not a live latency" } else { "" }
                ),
            ),
            (
                "timer lateness p50 / p99 / max",
                format!(
                    "{} / {} / {} ms ({} timer alerts due inside the run, {} of them probes)",
                    f(q_ms(&self.lateness, 0.5)),
                    f(q_ms(&self.lateness, 0.99)),
                    f(max_ms(&self.lateness)),
                    self.timer_alerts,
                    self.stream.get("probe_alerts").and_then(Value::as_u64).unwrap_or(0)
                ),
            ),
            (
                "monitor RSS (max, all monitors)",
                format!("{:.1} MiB", self.seconds.iter().map(|s| s.monitor_rss).max().unwrap_or(0) as f64 / 1048576.0),
            ),
            (
                "monitor CPU (mean / max)",
                format!(
                    "{:.2} / {:.2} cores",
                    if self.seconds.is_empty() {
                        0.0
                    } else {
                        self.seconds.iter().map(|s| s.monitor_cpu).sum::<f64>() / self.seconds.len() as f64
                    },
                    self.seconds.iter().map(|s| s.monitor_cpu).fold(0.0, f64::max)
                ),
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(r, "| {k} | {v} |");
        }
        if let Some(c) = &self.check {
            let _ = writeln!(
                r,
                "| alerts standing: replay / live | {} / {} |\n| missing / extra / differing | {} / {} / {} |\n| invalid (replay) / dead-lettered (live) | {} / {} |\n| replayed | {} |",
                c.expected, c.live, c.missing, c.extra, c.differing, c.invalid_in_replay, c.dead_lettered, c.replayed_from
            );
            if !c.examples.is_empty() {
                let _ = writeln!(r, "\nExamples: {}", c.examples.join(", "));
            }
        }
        if !self.steps.is_empty() {
            let _ = writeln!(r, "\n## --find-max\n\n| Rate (events/s) | Lag growth | p99 (ms) | Verdict |\n|---|---|---|---|");
            for s in &self.steps {
                let _ = writeln!(
                    r,
                    "| {} | {} | {} | {} |",
                    s["rate"],
                    s["lag_growth"],
                    s["p99_ms"].as_f64().map_or("—".into(), |v| format!("{v:.1}")),
                    s["verdict"].as_str().unwrap_or("")
                );
            }
            let _ = writeln!(
                r,
                "\nHighest sustainable rate: {}",
                self.max_sustainable.map_or("none of the steps".into(), |v| format!("**{v:.0} events/s**"))
            );
        }
        let _ = writeln!(
            r,
            "\nPlots: `rates.svg` (produce and consume rate, lag), `latency.svg` (p50/p99/max each second), `latency-cdf.svg`."
        );
        let _ = writeln!(r, "Every second's figures are in `result.json` (`jiancha.seconds`).");
        r
    }

    /// Writes `result.json`, `report.md` and the plots into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::write(dir.join("result.json"), serde_json::to_vec_pretty(&self.result_json())?).context("writing result.json")?;
        std::fs::write(dir.join("report.md"), self.report_md()).context("writing report.md")?;
        plot_rates(&dir.join("rates.svg"), &self.seconds).map_err(|e| anyhow::anyhow!("rates.svg: {e}"))?;
        plot_latency(&dir.join("latency.svg"), &self.seconds).map_err(|e| anyhow::anyhow!("latency.svg: {e}"))?;
        plot_cdf(&dir.join("latency-cdf.svg"), &self.latency).map_err(|e| anyhow::anyhow!("latency-cdf.svg: {e}"))?;
        Ok(())
    }
}

type PlotResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn plot_rates(path: &Path, s: &[Second]) -> PlotResult {
    let root = SVGBackend::new(path, (1000, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(330);
    let t_max = s.last().map_or(1.0, |x| x.t).max(1.0);
    let r_max = s.iter().map(|x| x.produced.max(x.consumed.max(0) as u64)).max().unwrap_or(1).max(1) as f64 * 1.1;
    let mut c = ChartBuilder::on(&top)
        .caption("records/s: produced (acknowledged) and consumed (committed by the monitors)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..r_max)?;
    c.configure_mesh().x_desc("s").draw()?;
    c.draw_series(LineSeries::new(s.iter().map(|x| (x.t, x.produced as f64)), &BLUE))?
        .label("produced")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    c.draw_series(LineSeries::new(s.iter().map(|x| (x.t, x.consumed as f64)), &RED))?
        .label("consumed")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    c.configure_series_labels().border_style(BLACK).background_style(WHITE).draw()?;
    let lag_max = s.iter().map(|x| x.lag).max().unwrap_or(1).max(1) as f64 * 1.1;
    let mut l = ChartBuilder::on(&bottom)
        .caption("consumer lag (records)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..lag_max)?;
    l.configure_mesh().x_desc("s").draw()?;
    l.draw_series(LineSeries::new(s.iter().filter(|x| x.lag >= 0).map(|x| (x.t, x.lag as f64)), &MAGENTA))?;
    root.present()?;
    Ok(())
}

fn plot_latency(path: &Path, s: &[Second]) -> PlotResult {
    let root = SVGBackend::new(path, (1000, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let t_max = s.last().map_or(1.0, |x| x.t).max(1.0);
    let y_max = s.iter().filter_map(|x| x.max_ms).fold(1.0, f64::max) * 1.1;
    let mut c = ChartBuilder::on(&root)
        .caption("event → alert latency each second (ms)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)?;
    c.configure_mesh().x_desc("s").y_desc("ms").draw()?;
    for (name, color, f) in [
        ("p50", BLUE, (|x: &Second| x.p50_ms) as fn(&Second) -> Option<f64>),
        ("p99", RED, |x: &Second| x.p99_ms),
        ("max", BLACK, |x: &Second| x.max_ms),
    ] {
        c.draw_series(LineSeries::new(s.iter().filter_map(|x| f(x).map(|v| (x.t, v))), color))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    c.configure_series_labels().border_style(BLACK).background_style(WHITE).draw()?;
    root.present()?;
    Ok(())
}

fn plot_cdf(path: &Path, h: &Histogram<u64>) -> PlotResult {
    let root = SVGBackend::new(path, (1000, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = max_ms(h).unwrap_or(1.0).max(0.01);
    let mut c = ChartBuilder::on(&root)
        .caption("event → alert latency, cumulative share of alerts", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d((0.01..max * 1.2).log_scale(), 0.0..1.0)?;
    c.configure_mesh().x_desc("ms (log)").y_desc("share").draw()?;
    let points: Vec<(f64, f64)> = if h.is_empty() {
        Vec::new()
    } else {
        (0..=200).map(|i| 1.0 - 0.5f64.powf(i as f64 / 12.0)).map(|q| ((h.value_at_quantile(q) as f64 / 1000.0).max(0.01), q)).collect()
    };
    c.draw_series(LineSeries::new(points, &BLUE))?;
    root.present()?;
    Ok(())
}
