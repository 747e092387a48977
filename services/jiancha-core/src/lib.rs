//! The jiancha domain core: approval events, working calendars, statutory clocks, the
//! service catalog, the alert rules and the engine that applies them.
//!
//! Nothing here does I/O or reads the system clock. Every instant is an input, and the
//! engine's step returns its effects as values, so the live monitor, `jiancha replay`
//! and the tests all run this same code. See `shared/spec/DOMAIN.md` for the contract.

pub mod alert;
pub mod calendar;
pub mod catalog;
pub mod clock;
pub mod engine;
pub mod event;
pub mod intern;
pub mod json;
pub mod time;

pub use alert::{Alert, AlertKind, AlertStatus, Level};
pub use calendar::{Calendar, Calendars};
pub use catalog::Catalog;
pub use engine::{Applied, Effect, Engine, ItemRef, Merge, Place, Prefetch, Replay, Shard, TimerQueue};
pub use event::{Event, EventBody, EventType, InvalidEvent, RawEvent, parse_json_event, parse_json_event_into};
pub use time::Timestamp;
