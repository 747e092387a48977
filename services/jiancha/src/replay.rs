//! `jiancha replay` (DOMAIN §8): the same engine as the live monitor, over a file, on a
//! virtual clock.

use anyhow::{Context, Result};
use clap::Args;
use jiancha_core::{Engine, Replay, Timestamp};
use jiancha_platform::rules::load_rules;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  jiancha replay --catalog deploy/demo/catalog.toml --events deploy/demo/events.jsonl
  jiancha replay --catalog c.toml --events e.jsonl --until 2025-12-31T00:00:00+08:00 --summary

Alerts go to stdout as JSON lines; each invalid event goes to stderr as one JSON line
({\"line\",\"event_id\",\"reason\",\"field\",\"message\"}) and the replay goes on. Exit 0.")]
pub struct ReplayArgs {
    /// The service catalog (TOML).
    #[arg(long)]
    catalog: PathBuf,
    /// Events, one JSON object a line; `received_at` (optional) is the arrival instant.
    #[arg(long)]
    events: PathBuf,
    /// Move the final clock to this instant (RFC 3339); default: the last arrival.
    #[arg(long, value_parser = parse_instant)]
    until: Option<Timestamp>,
    /// An extra calendar file (repeatable); replaces a built-in one of the same name.
    #[arg(long = "calendar")]
    calendars: Vec<PathBuf>,
    /// Print a human-readable summary on stderr at the end.
    #[arg(long)]
    summary: bool,
}

/// Lines handed from the reading thread to the engine at a time.
const BATCH: usize = 1024;

/// Bytes of alert lines the writing thread gathers before it writes them out: a buffer
/// well inside a core's L2 cache, which the engine's thread shares (see [`Lines`]).
const OUT_BUFFER: usize = 128 * 1024;

/// A line's number and what it holds.
type Parsed = (usize, Result<jiancha_core::event::JsonEvent, jiancha_core::InvalidEvent>);

/// The lines of a file, each borrowed from one buffer in turn (a line is parsed where it
/// lies, not copied into a buffer of its own), without its `\n`. The buffer is 64 KiB: the
/// three threads share two cores, and a 1 MiB buffer filled a core's L2 cache (1 MiB on
/// the development VM), so that the engine's item lookups after it ran at half speed.
struct Lines<R> {
    source: R,
    buf: Vec<u8>,
    /// The unread part of `buf`.
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> Lines<R> {
    fn new(source: R) -> Lines<R> {
        Lines::with_capacity(64 << 10, source)
    }

    fn with_capacity(capacity: usize, source: R) -> Lines<R> {
        Lines { source, buf: vec![0; capacity.max(1)], start: 0, end: 0, eof: false }
    }

    fn next_line(&mut self) -> std::io::Result<Option<&[u8]>> {
        loop {
            if let Some(len) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                let line = self.start..self.start + len;
                self.start += len + 1;
                return Ok(Some(&self.buf[line]));
            }
            if self.eof {
                // The last line, if the file does not end with a newline.
                let line = self.start..self.end;
                self.start = self.end;
                return Ok((!line.is_empty()).then(|| &self.buf[line]));
            }
            // Keep the partial line, at the front; grow for a line longer than the buffer.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
            let read = match self.source.read(&mut self.buf[self.end..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                read => read?,
            };
            self.eof = read == 0;
            self.end += read;
        }
    }
}

fn parse_instant(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(text).map_err(|e| format!("`{text}` is not an RFC 3339 instant with an offset: {e}"))
}

pub fn run(args: ReplayArgs) -> Result<()> {
    let (catalog, calendars) = load_rules(Some(&args.catalog), &args.calendars)?;
    let file = std::fs::File::open(&args.events).with_context(|| format!("opening events {}", args.events.display()))?;
    let mut replay = Replay::new(Engine::new(catalog, calendars));

    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    let mut counts: BTreeMap<(&'static str, &'static str), usize> = BTreeMap::new();
    let (mut events, mut invalid, mut duplicates) = (0usize, 0usize, 0usize);

    // The alert lines are written by a thread of their own, in the order the engine
    // raised them: the engine's thread only counts and hands them over in batches.
    let (alerts_tx, alerts_rx) = std::sync::mpsc::sync_channel::<Vec<jiancha_core::Alert>>(8);
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let stdout = std::io::stdout();
        let mut stdout = stdout.lock();
        let mut out = Vec::with_capacity(OUT_BUFFER + 64 * 1024);
        for alerts in alerts_rx {
            for alert in &alerts {
                alert.write_json(&mut out);
                out.push(b'\n');
                if out.len() >= OUT_BUFFER {
                    stdout.write_all(&out)?;
                    out.clear();
                }
            }
        }
        stdout.write_all(&out)?;
        stdout.flush()
    });
    let mut raised: Vec<jiancha_core::Alert> = Vec::with_capacity(BATCH);
    let mut sink = |alert: jiancha_core::Alert| {
        *counts.entry((alert.kind.as_str(), alert.status.as_str())).or_default() += 1;
        raised.push(alert);
        // A writer that failed has hung up; its error is reported at the end.
        if raised.len() == BATCH {
            let _ = alerts_tx.send(std::mem::replace(&mut raised, Vec::with_capacity(BATCH)));
        }
    };

    // Three stages on three threads: this one reads and parses the lines (about half of
    // the work), the caller's applies them in file order, the writer writes the alerts
    // in the order raised, so the output is exactly the sequential replay's. Batches
    // keep the hand-overs cheap; the bounded channels keep memory flat however large
    // the file.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Parsed>>(8);
    // Applied batches go back to this thread to be dropped where their texts were
    // allocated: freeing them on the engine's thread, the busier one, cost it 5 % (a
    // block freed by another thread goes through the allocator's shared list).
    let (applied_tx, applied_rx) = std::sync::mpsc::sync_channel::<Vec<Parsed>>(8);
    let path = args.events.clone();
    let reader = std::thread::spawn(move || -> Result<()> {
        let next_batch = || match applied_rx.try_recv() {
            Ok(mut old) => {
                old.clear();
                old
            }
            Err(_) => Vec::with_capacity(BATCH),
        };
        let mut batch = next_batch();
        let mut lines = Lines::new(file);
        let mut n = 0;
        while let Some(line) = lines.next_line().with_context(|| format!("reading {}", path.display()))? {
            n += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            batch.push((n, jiancha_core::parse_json_event(line)));
            if batch.len() == BATCH && tx.send(std::mem::replace(&mut batch, next_batch())).is_err() {
                return Ok(());
            }
        }
        let _ = tx.send(batch);
        Ok(())
    });
    // Each batch is read where it lies and handed back whole: moving its elements (two
    // hundred bytes each) out one by one was 2 % of the replay.
    // The engine is asked for the items of the next few events while it applies one
    // (`Engine::prefetch_batch`): their lookups no longer wait on memory.
    for batch in rx {
        let item_id = |i: usize| batch.get(i).and_then(|(_, p)| p.as_ref().ok()).map(|j| j.event.item_id.as_str());
        for (at, (line, parsed)) in batch.iter().enumerate() {
            replay.engine().prefetch_batch(at, item_id);
            match parsed {
                Ok(j) => {
                    events += 1;
                    let arrival = j.received_at.unwrap_or(j.event.occurred_at);
                    if replay.arrive(&j.event, arrival, &mut sink) == jiancha_core::Applied::Duplicate {
                        duplicates += 1;
                    }
                }
                Err(bad) => {
                    invalid += 1;
                    let report = serde_json::json!({
                        "line": line,
                        "event_id": bad.event_id,
                        "reason": bad.reason.as_str(),
                        "field": bad.field,
                        "message": bad.message,
                    });
                    writeln!(err, "{report}")?;
                }
            }
        }
        // Full (or the reader done): dropped here.
        let _ = applied_tx.try_send(batch);
    }
    reader.join().map_err(|_| anyhow::anyhow!("the reading thread panicked"))??;
    replay.finish(args.until, &mut sink);
    let _ = alerts_tx.send(raised);
    drop(alerts_tx);
    writer.join().map_err(|_| anyhow::anyhow!("the writing thread panicked"))?.context("writing alerts to stdout")?;
    if args.summary {
        writeln!(
            err,
            "replayed {events} events ({duplicates} duplicates, {invalid} invalid) over {} items; clock at {}",
            replay.engine().len(),
            replay.clock()
        )?;
        for ((kind, status), n) in &counts {
            writeln!(err, "  {kind:<24} {status:<9} {n}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Lines;
    use std::io::Read;

    /// A source that hands out at most `step` bytes a read.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    #[test]
    fn lines_are_those_of_the_file_whatever_the_buffer_and_reads() {
        let long = "x".repeat(300);
        for text in ["", "\n", "a\nbb\n\nccc", "a\r\nb\r\n", &format!("{long}\n{long}\nend"), "only"] {
            let expected: Vec<&[u8]> =
                if text.is_empty() { vec![] } else { text.strip_suffix('\n').unwrap_or(text).split('\n').map(str::as_bytes).collect() };
            for (capacity, step) in [(1, 1), (4, 3), (7, 100), (64 << 10, 5), (64 << 10, 1 << 20)] {
                let mut lines = Lines::with_capacity(capacity, Trickle { bytes: text.as_bytes(), step });
                let mut got = Vec::new();
                while let Some(line) = lines.next_line().unwrap() {
                    got.push(line.to_vec());
                }
                assert_eq!(got, expected, "{text:?} with {capacity} bytes, reads of {step}");
            }
        }
    }
}
