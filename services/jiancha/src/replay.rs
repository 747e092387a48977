//! `jiancha replay` (DOMAIN §8): the same engine as the live monitor, over a file, on a
//! virtual clock.

use anyhow::{Context, Result};
use clap::Args;
use jiancha_core::{Alert, Engine, Merge, Place, Shard, Timestamp};
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
    /// Threads that apply events, each to its share of the items (0: one a CPU, at most
    /// 256). The output is the same whatever the number.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
    threads: u16,
}

/// Lines handed from the reading thread to the engine at a time.
const BATCH: usize = 1024;

/// Bytes of alert lines the writing thread gathers before it writes them out: a buffer
/// well inside a core's L2 cache, which the engine's thread shares (see [`Lines`]).
const OUT_BUFFER: usize = 128 * 1024;

/// What a line holds, with the shard its item belongs to ([`Shard::shard_of`]) when it is
/// valid: found once by the reading thread rather than by every shard for every event.
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
    let shards = match args.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(256)),
        n => usize::from(n),
    };

    // A reading thread parses the lines and hands each batch to every shard; each shard's
    // thread replays the whole stream's clock and its own items' events (`Shard`); a
    // writing thread merges the shards' alerts of each batch into the sequential
    // replay's order (`Merge`) and writes them. Batches keep the hand-overs cheap; the
    // bounded channels keep memory flat however large the file.
    let mut to_shards = Vec::with_capacity(shards);
    let mut from_shards = Vec::with_capacity(shards);
    let mut shard_threads = Vec::with_capacity(shards);
    // Batches go back to the reading thread, which reads the next lines into their
    // events (their texts' buffers serve again) or drops them there, where their texts
    // were allocated: freeing them on an engine's thread cost it 5 % (a block freed by
    // another thread goes through the allocator's shared list).
    let (applied_tx, applied_rx) = std::sync::mpsc::sync_channel::<Batch>(8 * shards);
    // Alerts go back the same way, once written, to the shard that built them.
    let mut written_txs = Vec::with_capacity(shards);
    for k in 0..shards {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(8);
        let (alerts_tx, alerts_rx) = std::sync::mpsc::sync_channel::<Vec<(Place, Alert)>>(8);
        let (written_tx, written_rx) = std::sync::mpsc::sync_channel::<Vec<(Place, Alert)>>(8);
        written_txs.push(written_tx);
        let mut shard = Shard::new(Engine::new(catalog.clone(), calendars.clone()), k, shards);
        let applied_tx = applied_tx.clone();
        let until = args.until;
        shard_threads.push(std::thread::spawn(move || -> ShardEnd {
            let mut duplicates = 0;
            let mut mine = Vec::with_capacity(BATCH);
            for batch in rx {
                // The lists of alerts the writer is done with: dropped here, where their
                // texts were allocated; the last one's room is used again.
                let mut raised = Vec::new();
                while let Ok(written) = written_rx.try_recv() {
                    raised = written;
                    raised.clear();
                }
                let mut sink = |place, alert| raised.push((place, alert));
                // This shard's events, whose items the engine is asked for a few events
                // ahead while it applies one (`Engine::prefetch_batch`).
                mine.clear();
                mine.extend(batch.iter().enumerate().filter(|(_, (owner, p))| p.is_ok() && *owner == k).map(|(i, _)| i));
                let item_id = |at: usize| mine.get(at).and_then(|&i| batch[i].1.as_ref().ok()).map(|j| j.event.item_id.as_str());
                let mut next = 0;
                for (i, (_, parsed)) in batch.iter().enumerate() {
                    let Ok(j) = parsed else { continue };
                    let arrival = j.received_at.unwrap_or(j.event.occurred_at);
                    if mine.get(next) == Some(&i) {
                        shard.engine().prefetch_batch(next, item_id);
                        next += 1;
                        if shard.arrive(&j.event, arrival, &mut sink) == jiancha_core::Applied::Duplicate {
                            duplicates += 1;
                        }
                    } else {
                        shard.pass(arrival, &mut sink);
                    }
                }
                // Full (or the reader done): dropped here.
                let _ = applied_tx.try_send(batch);
                if alerts_tx.send(raised).is_err() {
                    break; // the writer failed; its error is reported
                }
            }
            let mut raised = Vec::new();
            shard.finish(until, &mut |place, alert| raised.push((place, alert)));
            let _ = alerts_tx.send(raised);
            ShardEnd { duplicates, items: shard.engine().len(), clock: shard.clock() }
        }));
        to_shards.push(tx);
        from_shards.push(alerts_rx);
    }
    drop(applied_tx);

    // Alert lines in the sequential replay's order, counted by kind and status.
    let writer = std::thread::spawn(move || -> std::io::Result<BTreeMap<(&'static str, &'static str), usize>> {
        let mut counts = BTreeMap::new();
        let stdout = std::io::stdout();
        let mut stdout = stdout.lock();
        let mut out = Vec::with_capacity(OUT_BUFFER + 64 * 1024);
        let mut merge = Merge::default();
        let mut failed = None;
        'batches: loop {
            let mut raised = Vec::with_capacity(from_shards.len());
            for rx in &from_shards {
                match rx.recv() {
                    Ok(r) => raised.push(r),
                    Err(_) => break 'batches,
                }
            }
            merge.merge(&raised, &mut |alert| {
                *counts.entry((alert.kind.as_str(), alert.status.as_str())).or_default() += 1;
                alert.write_json(&mut out);
                out.push(b'\n');
                if out.len() >= OUT_BUFFER && failed.is_none() {
                    failed = stdout.write_all(&out).err();
                    out.clear();
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
            // Full (or the shard done): dropped here.
            for (written, tx) in raised.into_iter().zip(&written_txs) {
                let _ = tx.try_send(written);
            }
        }
        stdout.write_all(&out)?;
        stdout.flush()?;
        Ok(counts)
    });

    // This thread reads and parses; an invalid line is reported here, in line order.
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    let (mut events, mut invalid) = (0usize, 0usize);
    let next_batch = || {
        // A batch every shard has handed back is reused, its lines read into the events
        // it holds (`parse_json_event_into`: their texts' buffers serve again); one a
        // shard still holds is let go (that shard's hand-back frees it).
        while let Ok(old) = applied_rx.try_recv() {
            if let Ok(old) = std::sync::Arc::try_unwrap(old) {
                return old;
            }
        }
        Vec::with_capacity(BATCH)
    };
    let mut batch = next_batch();
    // Lines of this batch so far; the entries after them are the old batch's.
    let mut filled = 0;
    let mut lines = Lines::new(file);
    let mut n = 0;
    let send = |mut batch: Vec<Parsed>, filled: usize| {
        batch.truncate(filled);
        let batch = std::sync::Arc::new(batch);
        // A shard that stopped has seen its writer fail: the writer's error is reported.
        to_shards.iter().all(|tx| tx.send(batch.clone()).is_ok())
    };
    while let Some(line) = lines.next_line().with_context(|| format!("reading {}", args.events.display()))? {
        n += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if filled == batch.len() {
            batch.push((0, Ok(jiancha_core::event::JsonEvent::blank())));
        }
        let (owner, parsed) = &mut batch[filled];
        match parsed {
            Ok(event) => {
                if let Err(bad) = jiancha_core::parse_json_event_into(line, event) {
                    *parsed = Err(bad);
                }
            }
            Err(_) => *parsed = jiancha_core::parse_json_event(line),
        }
        if let Ok(event) = parsed {
            *owner = Shard::shard_of(&event.event.item_id, shards);
        }
        filled += 1;
        match &*parsed {
            Ok(_) => events += 1,
            Err(bad) => {
                invalid += 1;
                let report = serde_json::json!({
                    "line": n,
                    "event_id": bad.event_id,
                    "reason": bad.reason.as_str(),
                    "field": bad.field,
                    "message": bad.message,
                });
                writeln!(err, "{report}")?;
            }
        }
        if filled == BATCH {
            filled = 0;
            if !send(std::mem::replace(&mut batch, next_batch()), BATCH) {
                break;
            }
        }
    }
    send(batch, filled);
    drop(to_shards);
    let ends: Vec<ShardEnd> =
        shard_threads.into_iter().map(|t| t.join().map_err(|_| anyhow::anyhow!("a replay thread panicked"))).collect::<Result<_>>()?;
    let counts = writer.join().map_err(|_| anyhow::anyhow!("the writing thread panicked"))?.context("writing alerts to stdout")?;
    if args.summary {
        let duplicates: usize = ends.iter().map(|e| e.duplicates).sum();
        let items: usize = ends.iter().map(|e| e.items).sum();
        let clock = ends.first().map_or(Timestamp(i64::MIN), |e| e.clock);
        writeln!(err, "replayed {events} events ({duplicates} duplicates, {invalid} invalid) over {items} items; clock at {clock}")?;
        for ((kind, status), n) in &counts {
            writeln!(err, "  {kind:<24} {status:<9} {n}")?;
        }
    }
    Ok(())
}

/// A batch of parsed lines, shared by the shards.
type Batch = std::sync::Arc<Vec<Parsed>>;

/// What a shard's thread reports at the end.
struct ShardEnd {
    duplicates: usize,
    items: usize,
    clock: Timestamp,
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
