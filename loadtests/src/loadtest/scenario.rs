//! The scenario file: what is sent, how fast, over what shape of day.

use jiancha_core::time::parse_duration_ms;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A load-test scenario (TOML). Every key has a default, so an empty file (or none) is
/// the default scenario: the demo catalog at 2 000 events/s for 30 s.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// Seed of the stream: the same seed, rate and duration give the same stream.
    pub seed: u64,
    /// The catalog whose departments and services the stream uses (relative to the
    /// scenario file); the demo catalog when absent.
    pub catalog: Option<PathBuf>,
    /// Extra calendar files for that catalog.
    pub calendars: Vec<PathBuf>,
    /// How fast events are sent, over time.
    pub arrival: Arrival,
    /// What the items do.
    pub items: Items,
    /// Items whose deadline falls inside the run, to measure timer lateness.
    pub timers: Timers,
}

impl Default for Scenario {
    fn default() -> Scenario {
        Scenario {
            seed: 1,
            catalog: None,
            calendars: Vec::new(),
            arrival: Arrival::default(),
            items: Items::default(),
            timers: Timers::default(),
        }
    }
}

/// The shape of the send rate over the run.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// `rate` all the time.
    Constant,
    /// From `from_rate` to `rate`, linearly.
    Ramp,
    /// Each of `steps` (events/s) for an equal share of the run.
    Steps,
    /// A working day compressed into the run: quiet early and late, a morning peak at a
    /// quarter of the run and an afternoon peak at seven tenths, each reaching `rate`.
    Workday,
}

/// How fast events are sent.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Arrival {
    /// The profile.
    pub profile: Profile,
    /// Events a second (the peak of `workday`, the end of `ramp`).
    pub rate: f64,
    /// The start of a `ramp` (default: a tenth of `rate`).
    pub from_rate: Option<f64>,
    /// The rates of `steps`.
    pub steps: Vec<f64>,
    /// How long to send ("30s", "5m"); with `events` the run ends at whichever comes first.
    pub duration: Option<String>,
    /// How many events to send.
    pub events: Option<u64>,
}

impl Default for Arrival {
    fn default() -> Arrival {
        Arrival { profile: Profile::Constant, rate: 2000.0, from_rate: None, steps: Vec::new(), duration: None, events: None }
    }
}

/// What the items do.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Items {
    /// Working days of submissions the stream's items come from: with the handling
    /// times of the catalog's services, this sets how many items are open at once.
    pub spread_days: u32,
    /// Share of items handled irregularly (the simulator's irregular cases).
    pub irregular_share: f64,
    /// Share of items whose first event reaches the system late.
    pub late_share: f64,
    /// How late those arrive ("2h"); above the catalog's `late_report_limit` they raise LATE_REPORT.
    pub late_by: String,
    /// Share of records that are invalid (extra records: bad JSON, an unknown type, a
    /// missing field); the monitor must dead-letter each.
    pub invalid_share: f64,
}

impl Default for Items {
    fn default() -> Items {
        Items { spread_days: 20, irregular_share: 0.03, late_share: 0.01, late_by: "2h".into(), invalid_share: 0.001 }
    }
}

/// Items made to fall due during the run.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timers {
    /// How many items' acceptance windows end together inside the run (a midnight
    /// burst); 0 for none. Only when the load test starts the monitors (it adds the
    /// probe service to their catalog).
    pub probes: usize,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers { probes: 1000 }
    }
}

/// A scenario that cannot be used, with the key and the rule.
#[derive(Debug, thiserror::Error)]
#[error("scenario {file}: {message}")]
pub struct ScenarioError {
    /// The file.
    pub file: String,
    /// What is wrong.
    pub message: String,
}

impl Scenario {
    /// Reads a scenario file; paths in it are taken relative to it.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let err = |message: String| ScenarioError { file: path.display().to_string(), message };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut s: Scenario = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        s.catalog = s.catalog.map(|c| base.join(c));
        s.calendars = s.calendars.iter().map(|c| base.join(c)).collect();
        s.check().map_err(err)?;
        Ok(s)
    }

    /// Checks every value, naming the key.
    pub fn check(&self) -> Result<(), String> {
        let a = &self.arrival;
        if !(a.rate.is_finite() && a.rate > 0.0) {
            return Err(format!("arrival.rate must be a positive number of events a second, not {}", a.rate));
        }
        if a.profile == Profile::Steps && a.steps.iter().any(|r| !(r.is_finite() && *r >= 0.0)) {
            return Err("arrival.steps must be events a second, each 0 or more".into());
        }
        if a.profile == Profile::Steps && a.steps.is_empty() {
            return Err("arrival.profile = \"steps\" needs arrival.steps = [rate, rate, …]".into());
        }
        if a.events == Some(0) {
            return Err("arrival.events must be at least 1".into());
        }
        if let Some(d) = &a.duration
            && parse_duration_ms(d).is_none_or(|ms| ms <= 0)
        {
            return Err(format!("arrival.duration `{d}` is not a duration such as \"30s\""));
        }
        for (key, v) in [
            ("items.irregular_share", self.items.irregular_share),
            ("items.late_share", self.items.late_share),
            ("items.invalid_share", self.items.invalid_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{key} must be between 0 and 1, not {v}"));
            }
        }
        if parse_duration_ms(&self.items.late_by).is_none_or(|ms| ms <= 0) {
            return Err(format!("items.late_by `{}` is not a duration such as \"2h\"", self.items.late_by));
        }
        Ok(())
    }

    /// The send rate at `x`, the share of the run gone (0..1).
    pub fn rate_at(&self, x: f64) -> f64 {
        let a = &self.arrival;
        match a.profile {
            Profile::Constant => a.rate,
            Profile::Ramp => {
                let from = a.from_rate.unwrap_or(a.rate / 10.0);
                from + (a.rate - from) * x.clamp(0.0, 1.0)
            }
            Profile::Steps => {
                let n = a.steps.len().max(1);
                let i = ((x * n as f64) as usize).min(n - 1);
                a.steps.get(i).copied().unwrap_or(a.rate)
            }
            Profile::Workday => {
                let peak = |mu: f64| (-((x - mu) / 0.09).powi(2) / 2.0).exp();
                a.rate * (0.15 + 0.85 * peak(0.25).max(peak(0.72)))
            }
        }
    }

    /// The mean rate over the run.
    pub fn mean_rate(&self) -> f64 {
        let n = 10_000;
        (0..n).map(|i| self.rate_at((i as f64 + 0.5) / n as f64)).sum::<f64>() / n as f64
    }

    /// How long the run sends, in milliseconds: the duration, or the time `events` take
    /// at the profile's mean rate.
    pub fn duration_ms(&self) -> i64 {
        let a = &self.arrival;
        match (&a.duration, a.events) {
            (Some(d), _) => parse_duration_ms(d).unwrap_or(30_000),
            (None, Some(n)) => ((n as f64 / self.mean_rate()) * 1000.0).ceil() as i64,
            (None, None) => 30_000,
        }
    }

    /// The send instants of the run, in microseconds from its start: open-loop, so
    /// they depend on nothing the system under test does.
    pub fn schedule(&self) -> Vec<u64> {
        let duration_ms = self.duration_ms();
        let limit = self.arrival.events.map_or(u64::MAX, |n| n);
        let mut out = Vec::new();
        let mut owed = 0.0f64;
        for ms in 0..duration_ms {
            owed += self.rate_at((ms as f64 + 0.5) / duration_ms as f64) / 1000.0;
            // (A little slack: a rate's thousandths do not add up exactly in binary.)
            let n = (owed + 1e-9).floor();
            owed -= n;
            let n = n as u64;
            for j in 0..n {
                if out.len() as u64 >= limit {
                    return out;
                }
                out.push(ms as u64 * 1000 + j * 1000 / n);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_schedule_has_rate_times_duration_events_evenly_spaced() {
        let mut s = Scenario::default();
        s.arrival.rate = 1500.0;
        s.arrival.duration = Some("2s".into());
        let t = s.schedule();
        assert_eq!(t.len(), 3000);
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
        // Each second holds its share.
        assert_eq!(t.iter().filter(|&&us| us < 1_000_000).count(), 1500);
    }

    #[test]
    fn an_event_count_ends_the_run_and_sets_its_length() {
        let mut s = Scenario::default();
        s.arrival.rate = 100.0;
        s.arrival.events = Some(250);
        assert_eq!(s.duration_ms(), 2500);
        assert_eq!(s.schedule().len(), 250);
    }

    #[test]
    fn a_workday_peaks_morning_and_afternoon_and_is_quiet_between() {
        let mut s = Scenario::default();
        s.arrival.profile = Profile::Workday;
        s.arrival.rate = 1000.0;
        assert!((s.rate_at(0.25) - 1000.0).abs() < 1.0);
        assert!((s.rate_at(0.72) - 1000.0).abs() < 1.0);
        assert!(s.rate_at(0.48) < 400.0);
        assert!(s.rate_at(0.0) < 200.0);
    }

    #[test]
    fn steps_and_ramps_follow_their_settings() {
        let mut s = Scenario::default();
        s.arrival.profile = Profile::Steps;
        s.arrival.steps = vec![100.0, 300.0];
        assert_eq!(s.rate_at(0.1), 100.0);
        assert_eq!(s.rate_at(0.9), 300.0);
        s.arrival.profile = Profile::Ramp;
        s.arrival.from_rate = Some(0.0);
        s.arrival.rate = 200.0;
        assert_eq!(s.rate_at(0.5), 100.0);
    }

    #[test]
    fn the_example_scenarios_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("loadtests/scenarios") {
            let path = entry.expect("entry").path();
            let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!s.schedule().is_empty(), "{}", path.display());
            n += 1;
        }
        assert!(n >= 4);
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let mut s = Scenario::default();
        s.items.late_share = 2.0;
        assert!(s.check().unwrap_err().contains("items.late_share"));
        let mut s = Scenario::default();
        s.arrival.events = Some(0);
        assert!(s.check().unwrap_err().contains("arrival.events"));
        let e = toml::from_str::<Scenario>("[arrival]\nrat = 5").unwrap_err().to_string();
        assert!(e.contains("rat"), "{e}");
    }
}
