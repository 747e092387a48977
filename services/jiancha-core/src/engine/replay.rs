//! Driving the engine on a virtual clock (DOMAIN §8): the timer queue, and the replay
//! loop that `jiancha replay`, the golden tests and the property tests share.

use super::{Applied, Effect, Engine, ItemRef};
use crate::alert::{Alert, AlertKind};
use crate::event::{Event, InvalidEvent, parse_json_event};
use crate::time::Timestamp;
use rustc_hash::FxHasher;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::Hasher;

/// Pending timers in deadline order, for an engine that keeps each item's timer
/// ([`Engine::timer_of`]).
///
/// The queue holds at most one live entry an item, at or before the item's timer: a
/// timer that moves later leaves its entry where it is, and when that entry comes due
/// the queue looks up the item's timer and moves the entry to it. Only a timer that
/// moves earlier adds an entry, and the one it replaces is skipped when popped. An item
/// whose deadlines move with each of its events thus costs one entry, not one an event
/// (a heap of stale entries was 6 % of a replay's CPU, most of it cache misses).
///
/// Entries are kept as a radix heap, since they are taken in order of a clock that never
/// goes back: those due by the instant of the last one taken (`last`) in a small binary
/// heap, the others in buckets by the highest bit in which their instant differs from
/// `last`. Taking from an empty small heap moves the lowest bucket's earliest entries
/// into it and spreads the rest over lower buckets; an entry moves a few times in all,
/// a bucket at a time, where a binary heap of every entry (a replay's top cost once the
/// item lookups were prefetched) sifted through a few megabytes for each one taken.
/// Entries come out in (instant, item) order either way.
#[derive(Debug)]
pub struct TimerQueue {
    /// Entries due at or before `last`.
    current: BinaryHeap<Reverse<(i64, u32)>>,
    /// Entries due after `last`, bucket `b` those whose instant first differs from
    /// `last` at bit `b` ([`order`]).
    buckets: [Vec<(i64, u32)>; 64],
    /// Bit `b` set when bucket `b` holds entries: the lowest is found in one instruction
    /// (a shard of a replay looks for due timers at every event of the stream).
    filled: u64,
    /// The instant, in [`order`], up to which entries are in `current`.
    last: u64,
    /// Entries in `current` and the buckets.
    len: usize,
    /// The instant of each item's live entry ([`NO_ENTRY`]: none), by [`ItemRef`].
    queued: Vec<i64>,
}

/// No entry in the queue for the item.
const NO_ENTRY: i64 = i64::MAX;

/// An instant as an unsigned number of the same order.
fn order(at: i64) -> u64 {
    (at as u64) ^ (1 << 63)
}

impl Default for TimerQueue {
    fn default() -> TimerQueue {
        TimerQueue {
            current: BinaryHeap::new(),
            buckets: std::array::from_fn(|_| Vec::new()),
            filled: 0,
            last: 0,
            len: 0,
            queued: Vec::new(),
        }
    }
}

impl TimerQueue {
    /// Records a timer effect (other effects are ignored).
    pub fn record(&mut self, effect: &Effect) {
        if let Effect::SetTimer { item, at } = effect {
            self.schedule(*item, at.0);
        }
    }

    fn schedule(&mut self, item: ItemRef, at: i64) {
        let slot = item.0 as usize;
        if slot >= self.queued.len() {
            self.queued.resize(slot + 1, NO_ENTRY);
        }
        // An entry at or before `at` is pending: it moves to `at` when it comes due.
        if at < self.queued[slot] {
            self.queued[slot] = at;
            self.push(at, item.0);
        }
    }

    fn push(&mut self, at: i64, item: u32) {
        self.len += 1;
        let key = order(at);
        if key <= self.last {
            self.current.push(Reverse((at, item)));
        } else {
            let b = 63 - (key ^ self.last).leading_zeros() as usize;
            self.buckets[b].push((at, item));
            self.filled |= 1 << b;
        }
    }

    /// The earliest entry if it is due by `now`, else `None`. When `current` is empty,
    /// the lowest bucket, if it can hold an entry due by then, is spread: `last` moves to
    /// its earliest entry or to `now`, whichever comes first, so that `current` only ever
    /// holds entries due (a later `last` would send every timer set before it, due or
    /// not, to the binary heap).
    fn peek_due(&mut self, now: i64) -> Option<(i64, u32)> {
        if self.current.is_empty() {
            if self.filled == 0 {
                return None;
            }
            let b = self.filled.trailing_zeros() as usize;
            // The earliest instant bucket `b` can hold: `last`'s bits above `b`, bit `b` set.
            let floor = ((self.last >> b) | 1) << b;
            let now = order(now);
            if now < floor {
                return None;
            }
            let mut bucket = std::mem::take(&mut self.buckets[b]);
            self.filled &= !(1 << b);
            let earliest = bucket.iter().map(|&(at, _)| order(at)).min().expect("a bucket with entries");
            // Every entry goes to `current` or to a bucket below `b`: like the new `last`
            // (at least `floor`, at most the bucket's entries) it has `last`'s bits above
            // `b` and bit `b` set.
            self.last = earliest.min(now);
            self.len -= bucket.len();
            for (at, item) in bucket.drain(..) {
                self.push(at, item);
            }
            self.buckets[b] = bucket;
        }
        self.current.peek().map(|&Reverse(e)| e).filter(|&(at, _)| at <= now)
    }

    /// The earliest timer of `engine` due at or before `now`, removed from the queue.
    pub fn pop_due(&mut self, now: Timestamp, engine: &Engine) -> Option<(ItemRef, Timestamp)> {
        while let Some((at, item)) = self.peek_due(now.0) {
            self.current.pop();
            self.len -= 1;
            let slot = item as usize;
            if self.queued.get(slot) != Some(&at) {
                continue; // replaced by an earlier entry
            }
            self.queued[slot] = NO_ENTRY;
            match engine.timer_of(ItemRef(item)) {
                Some(due) if due.0 == at => return Some((ItemRef(item), Timestamp(at))),
                Some(due) => self.schedule(ItemRef(item), due.0),
                None => {}
            }
        }
        None
    }

    /// Drops replaced entries once they outnumber live ones (a large queue only);
    /// otherwise does nothing.
    pub fn compact(&mut self, engine: &Engine) {
        let len = self.len();
        if len <= 4096 || len <= 2 * engine.len() {
            return;
        }
        let queued = &self.queued;
        let live = |at: i64, item: u32| queued.get(item as usize) == Some(&at);
        self.current.retain(|&Reverse((at, item))| live(at, item));
        self.filled = 0;
        for (b, bucket) in self.buckets.iter_mut().enumerate() {
            bucket.retain(|&(at, item)| live(at, item));
            if !bucket.is_empty() {
                self.filled |= 1 << b;
            }
        }
        self.len = self.current.len() + self.buckets.iter().map(Vec::len).sum::<usize>();
    }

    /// Entries in the queue, replaced ones included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the queue holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The engine on a virtual clock that never goes back.
#[derive(Debug)]
pub struct Replay {
    engine: Engine,
    timers: TimerQueue,
    clock: Timestamp,
    effects: Vec<Effect>,
}

impl Replay {
    /// A replay starting with the clock at the beginning of time.
    pub fn new(engine: Engine) -> Replay {
        Replay { engine, timers: TimerQueue::default(), clock: Timestamp(i64::MIN), effects: Vec::new() }
    }

    /// Continues from a restored engine: the clock at `clock`, timers from the
    /// effects [`Engine::import`] returned.
    pub fn resume(engine: Engine, clock: Timestamp, effects: &[Effect]) -> Replay {
        let mut replay = Replay::new(engine);
        replay.clock = clock;
        for e in effects {
            replay.timers.record(e);
        }
        replay
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, to replace its catalog or calendars between arrivals. Effects of
    /// such a change are the caller's to carry out.
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// The virtual clock.
    pub fn clock(&self) -> Timestamp {
        self.clock
    }

    /// An event arrives: the clock moves to the later of itself and `arrival`, every
    /// timer due by then fires in deadline order, then the event is applied.
    pub fn arrive(&mut self, event: &Event, arrival: Timestamp, sink: &mut impl FnMut(Alert)) -> Applied {
        self.advance(arrival, sink);
        let applied = self.engine.apply(event, arrival, self.clock, &mut self.effects);
        self.dispatch(sink);
        applied
    }

    /// One line of an events file (DOMAIN §8): it arrives at its `received_at`, or else
    /// at its `occurred_at`. An invalid line changes nothing and is returned as the error.
    pub fn arrive_json(&mut self, line: &[u8], sink: &mut impl FnMut(Alert)) -> Result<Applied, InvalidEvent> {
        let parsed = parse_json_event(line)?;
        let arrival = parsed.received_at.unwrap_or(parsed.event.occurred_at);
        Ok(self.arrive(&parsed.event, arrival, sink))
    }

    /// The end of a replay: the clock moves to `until` when that is later than the last
    /// arrival (an earlier `until` changes nothing), and every timer due by then fires.
    pub fn finish(&mut self, until: Option<Timestamp>, sink: &mut impl FnMut(Alert)) {
        self.advance(until.unwrap_or(self.clock), sink);
    }

    /// Moves the clock to `to` (if later) and fires every timer due by then.
    pub fn advance(&mut self, to: Timestamp, sink: &mut impl FnMut(Alert)) {
        self.advance_with(to, &mut |_, alert| sink(alert));
    }

    /// [`Replay::advance`], each alert given with the timer that raised it.
    fn advance_with(&mut self, to: Timestamp, sink: &mut impl FnMut((ItemRef, Timestamp), Alert)) {
        self.clock = self.clock.max(to);
        while let Some((item, at)) = self.timers.pop_due(self.clock, &self.engine) {
            self.engine.fire(item, at, &mut self.effects);
            self.dispatch(&mut |alert| sink((item, at), alert));
        }
        self.timers.compact(&self.engine);
    }

    fn dispatch(&mut self, sink: &mut impl FnMut(Alert)) {
        for effect in self.effects.drain(..) {
            match effect {
                Effect::Alert(alert) => sink(*alert),
                other => self.timers.record(&other),
            }
        }
    }
}

/// Where an alert falls in a sequential replay's output ([`Shard`]).
///
/// At each arrival a sequential replay first fires the timers due, earliest first and,
/// at the same instant, the item created first first (its queue's (instant, slot)
/// order), then applies the event. Each shard raises its alerts in that order among its
/// own items, so taking, of every shard's next alert, the one with the earliest place
/// ([`Merge`]) gives the sequential replay's order — also where a timer that fires sets
/// one due earlier still, which both then fire next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    /// Events that had arrived before (the stream's length for [`Shard::finish`]).
    arrival: u64,
    /// 0: a timer due at this arrival; 1: the event itself.
    phase: u8,
    /// The timer's instant (0 for the event).
    at: i64,
    /// The arrival that created the timer's item (0 for the event).
    item: u64,
}

/// One of several replays over the same stream that together give the alerts of one
/// sequential [`Replay`], each holding the items whose id [`Shard::shard_of`] gives it
/// (an id's items of every department together, for [`Effect::ItemIdShared`]).
///
/// Every shard is given every event, in the stream's order: its clock is the stream's,
/// so its timers fall due at the arrivals they would in one replay; it applies only its
/// own. Items never meet across shards: an item's alerts depend on its events, the
/// clock, the catalog and the calendars alone. The one thing shared is that a missing
/// calendar year is reported once ([`Merge`] drops the later shards' reports). Each
/// alert comes with its [`Place`]; [`Merge`] puts the shards' alerts back in order.
#[derive(Debug)]
pub struct Shard {
    replay: Replay,
    shard: usize,
    shards: usize,
    /// The arrival that created each item, by slot (items are never retired: slots are
    /// given in order of creation).
    created: Vec<u64>,
    arrivals: u64,
}

impl Shard {
    /// Shard `shard` (from 0) of `shards`, over a new engine without a retention window.
    pub fn new(engine: Engine, shard: usize, shards: usize) -> Shard {
        assert!(shard < shards, "shard {shard} of {shards}");
        assert!(engine.is_empty() && engine.retention_ms.is_none(), "a shard starts empty and keeps every item");
        Shard { replay: Replay::new(engine), shard, shards, created: Vec::new(), arrivals: 0 }
    }

    /// The shard of `shards` that holds the items with this id.
    pub fn shard_of(item_id: &str, shards: usize) -> usize {
        // Not the engine's index hash: a shard's ids would otherwise share bits of it.
        let mut h = FxHasher::default();
        h.write_u8(0x5a);
        h.write(item_id.as_bytes());
        (((h.finish() >> 32) * shards as u64) >> 32) as usize
    }

    /// Whether this shard holds the items with this id.
    pub fn owns(&self, item_id: &str) -> bool {
        self.shards == 1 || Shard::shard_of(item_id, self.shards) == self.shard
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        self.replay.engine()
    }

    /// The stream's clock.
    pub fn clock(&self) -> Timestamp {
        self.replay.clock()
    }

    /// The stream's next event, this shard's ([`Shard::owns`]): the clock moves, the
    /// timers due fire, the event is applied.
    pub fn arrive(&mut self, event: &Event, arrival: Timestamp, sink: &mut impl FnMut(Place, Alert)) -> Applied {
        debug_assert!(self.owns(&event.item_id));
        self.timers_due(arrival, sink);
        let place = Place { arrival: self.arrivals, phase: 1, at: 0, item: 0 };
        let applied = self.replay.engine.apply(event, arrival, self.replay.clock, &mut self.replay.effects);
        let created = self.replay.engine.items.len();
        self.created.resize(created, self.arrivals);
        self.replay.dispatch(&mut |alert| sink(place, alert));
        self.arrivals += 1;
        applied
    }

    /// The stream's next event, another shard's: the clock moves, the timers due fire.
    pub fn pass(&mut self, arrival: Timestamp, sink: &mut impl FnMut(Place, Alert)) {
        self.timers_due(arrival, sink);
        self.arrivals += 1;
    }

    /// The end of the stream ([`Replay::finish`]).
    pub fn finish(&mut self, until: Option<Timestamp>, sink: &mut impl FnMut(Place, Alert)) {
        let clock = self.replay.clock;
        self.timers_due(until.unwrap_or(clock), sink);
    }

    fn timers_due(&mut self, to: Timestamp, sink: &mut impl FnMut(Place, Alert)) {
        let (arrival, created) = (self.arrivals, &self.created);
        self.replay.advance_with(to, &mut |(item, at), alert| {
            sink(Place { arrival, phase: 0, at: at.0, item: created[item.0 as usize] }, alert);
        });
    }
}

/// Puts the alerts of [`Shard`]s back in the order of one sequential replay.
#[derive(Debug, Default)]
pub struct Merge {
    /// Ids of the missing-calendar alerts given out.
    calendars_missing: rustc_hash::FxHashSet<String>,
}

impl Merge {
    /// The alerts every shard raised over the same arrivals, each shard's in the order
    /// raised, handed to `out` in the sequential order; arrivals handed in earlier calls
    /// come before. A shard's report of a missing calendar year already given is dropped.
    ///
    /// The alerts are lent, not given: a replay hands each shard's list back to the
    /// thread that built it, to be dropped there (see `jiancha replay`).
    pub fn merge<'s>(&mut self, shards: &'s [Vec<(Place, Alert)>], out: &mut impl FnMut(&'s Alert)) {
        let mut heads = vec![0usize; shards.len()];
        loop {
            // The earliest head; no two shards raise alerts at the same place.
            let mut next: Option<(usize, Place)> = None;
            for (i, s) in shards.iter().enumerate() {
                if let Some(&(place, _)) = s.get(heads[i])
                    && next.is_none_or(|(_, p)| place < p)
                {
                    next = Some((i, place));
                }
            }
            let Some((i, _)) = next else { return };
            let alert = &shards[i][heads[i]].1;
            heads[i] += 1;
            if alert.kind == AlertKind::CalendarMissing && !self.calendars_missing.insert(alert.alert_id.clone()) {
                continue;
            }
            out(alert);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::item::{Item, NO_TIMER};
    use crate::{Calendars, Catalog};
    use std::sync::Arc;

    /// An engine of `n` items without events, whose timers the test sets by hand.
    fn engine(n: usize) -> Engine {
        let calendars = Calendars::builtin();
        let catalog = Catalog::from_toml("[[service]]\ncode = \"S\"\nname = \"事项\"\ndepartment = \"D\"\n", &calendars).expect("catalog");
        let mut engine = Engine::new(Arc::new(catalog), calendars);
        engine.items.extend((0..n).map(|_| Item::vacant()));
        engine
    }

    fn set(engine: &mut Engine, timers: &mut TimerQueue, item: u32, at: Option<i64>) {
        engine.items[item as usize].next_due = at.unwrap_or(NO_TIMER);
        if let Some(at) = at {
            timers.record(&Effect::SetTimer { item: ItemRef(item), at: Timestamp(at) });
        }
    }

    fn drain(timers: &mut TimerQueue, engine: &Engine, now: i64) -> Vec<(u32, i64)> {
        std::iter::from_fn(|| timers.pop_due(Timestamp(now), engine)).map(|(i, at)| (i.0, at.0)).collect()
    }

    proptest::proptest! {
        /// Timers set, moved and cancelled at random instants (before the clock too),
        /// the clock moving forward in random steps: the queue fires what a sorted set of
        /// every item's timer says is due, in (instant, item) order, each once.
        #[test]
        fn fires_what_is_due_in_deadline_then_item_order(
            steps in proptest::collection::vec((0u32..40, proptest::option::of(-50i64..1_000_000), 0i64..40_000), 1..300)
        ) {
            let (mut e, mut t) = (engine(40), TimerQueue::default());
            let mut now = 0;
            for (item, at, step) in steps {
                set(&mut e, &mut t, item, at);
                now += step;
                let mut due: Vec<(i64, u32)> =
                    (0..40).filter_map(|i| e.timer_of(ItemRef(i)).map(|at| (at.0, i))).filter(|&(at, _)| at <= now).collect();
                due.sort_unstable();
                let fired = drain(&mut t, &e, now);
                proptest::prop_assert_eq!(fired, due.iter().map(|&(at, i)| (i, at)).collect::<Vec<_>>());
                // A fired timer is done with, as the engine's firing would leave it.
                for (_, i) in due {
                    e.items[i as usize].next_due = NO_TIMER;
                }
                t.compact(&e);
            }
        }
    }

    #[test]
    fn a_timer_that_moves_later_keeps_one_entry_and_fires_once_at_its_instant() {
        let (mut e, mut t) = (engine(1), TimerQueue::default());
        for at in [10, 20, 30] {
            set(&mut e, &mut t, 0, Some(at));
        }
        assert_eq!(t.len(), 1, "one entry, at the first instant");
        assert_eq!(drain(&mut t, &e, 25), vec![], "the entry at 10 moved to 30");
        assert_eq!(t.len(), 1);
        assert_eq!(drain(&mut t, &e, 30), vec![(0, 30)]);
        assert_eq!(drain(&mut t, &e, 1000), vec![], "fired once");
    }

    #[test]
    fn timers_moved_earlier_or_cancelled_fire_in_deadline_then_item_order() {
        let (mut e, mut t) = (engine(4), TimerQueue::default());
        set(&mut e, &mut t, 0, Some(50));
        set(&mut e, &mut t, 0, Some(20)); // earlier: a second entry, the first skipped
        set(&mut e, &mut t, 1, Some(40));
        set(&mut e, &mut t, 1, None); // cancelled
        set(&mut e, &mut t, 2, Some(20));
        set(&mut e, &mut t, 3, Some(5));
        set(&mut e, &mut t, 3, Some(45)); // later, due in the same drain
        assert_eq!(drain(&mut t, &e, 100), vec![(0, 20), (2, 20), (3, 45)]);
        assert!(t.is_empty());
    }
}
