//! Driving the engine on a virtual clock (DOMAIN §8): the timer queue, and the replay
//! loop that `jiancha replay`, the golden tests and the property tests share.

use super::{Applied, Effect, Engine, ItemRef};
use crate::alert::Alert;
use crate::event::{Event, InvalidEvent, parse_json_event};
use crate::time::Timestamp;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Pending timers in deadline order. A timer replaced by a later `SetTimer` stays in the
/// heap until popped; [`Engine::fire`] ignores it then.
#[derive(Debug, Default)]
pub struct TimerQueue {
    heap: BinaryHeap<Reverse<(i64, u32)>>,
}

impl TimerQueue {
    /// Records a timer effect (other effects are ignored).
    pub fn record(&mut self, effect: &Effect) {
        if let Effect::SetTimer { item, at } = effect {
            self.heap.push(Reverse((at.0, item.0)));
        }
    }

    /// The earliest timer due at or before `now`, removed from the queue.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<(ItemRef, Timestamp)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now.0 => self.heap.pop().map(|Reverse((at, item))| (ItemRef(item), Timestamp(at))),
            _ => None,
        }
    }

    /// The instant of the earliest pending timer.
    pub fn next(&self) -> Option<Timestamp> {
        self.heap.peek().map(|Reverse((at, _))| Timestamp(*at))
    }

    /// Drops timers the engine no longer holds, once the heap is large and stale entries
    /// clearly outnumber live ones (more than four per item); otherwise does nothing.
    pub fn compact(&mut self, engine: &Engine) {
        if self.heap.len() <= 4096 || self.heap.len() <= 4 * engine.len() {
            return;
        }
        let heap = std::mem::take(&mut self.heap);
        self.heap = heap.into_iter().filter(|Reverse((at, item))| engine.timer_of(ItemRef(*item)) == Some(Timestamp(*at))).collect();
    }

    /// Entries in the heap, stale ones included.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no timer is pending.
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
        while let Some((item, at)) = self.timers.pop_due(self.clock) {
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
