//! Driving the engine on a virtual clock (DOMAIN §8): the timer queue, and the replay
//! loop that `jiancha replay`, the golden tests and the property tests share.

use super::{Applied, Effect, Engine, ItemRef};
use crate::alert::Alert;
use crate::event::{Event, InvalidEvent, parse_json_event};
use crate::time::Timestamp;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Pending timers in deadline order, for an engine that keeps each item's timer
/// ([`Engine::timer_of`]).
///
/// The queue holds at most one live entry an item, at or before the item's timer: a
/// timer that moves later leaves its entry where it is, and when that entry comes due
/// the queue looks up the item's timer and moves the entry to it. Only a timer that
/// moves earlier adds an entry, and the one it replaces is skipped when popped. An item
/// whose deadlines move with each of its events thus costs one entry, not one an event
/// (a heap of stale entries was 6 % of a replay's CPU, most of it cache misses).
#[derive(Debug, Default)]
pub struct TimerQueue {
    heap: BinaryHeap<Reverse<(i64, u32)>>,
    /// The instant of each item's live entry ([`NO_ENTRY`]: none), by [`ItemRef`].
    queued: Vec<i64>,
}

/// No entry in the queue for the item.
const NO_ENTRY: i64 = i64::MAX;

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
            self.heap.push(Reverse((at, item.0)));
        }
    }

    /// The earliest timer of `engine` due at or before `now`, removed from the queue.
    pub fn pop_due(&mut self, now: Timestamp, engine: &Engine) -> Option<(ItemRef, Timestamp)> {
        while let Some(&Reverse((at, item))) = self.heap.peek() {
            if at > now.0 {
                return None;
            }
            self.heap.pop();
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

    /// The instant of the earliest entry: at or before the earliest pending timer.
    pub fn next(&self) -> Option<Timestamp> {
        self.heap.peek().map(|Reverse((at, _))| Timestamp(*at))
    }

    /// Drops replaced entries once they outnumber live ones (a large heap only);
    /// otherwise does nothing.
    pub fn compact(&mut self, engine: &Engine) {
        if self.heap.len() <= 4096 || self.heap.len() <= 2 * engine.len() {
            return;
        }
        let queued = &self.queued;
        self.heap.retain(|Reverse((at, item))| queued.get(*item as usize) == Some(at));
    }

    /// Entries in the queue, replaced ones included.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether the queue holds no entry.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
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
        self.clock = self.clock.max(to);
        while let Some((item, at)) = self.timers.pop_due(self.clock, &self.engine) {
            self.engine.fire(item, at, &mut self.effects);
            self.dispatch(sink);
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
