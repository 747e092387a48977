//! Durations in the configuration, written as people write them: `"200ms"`, `"30s"`,
//! `"5m"`, `"12h"`, `"7d"` or a combination (`"1h30m"`).

use jiancha_core::time::{DAY_MS, HOUR_MS, parse_duration_ms};
use std::borrow::Cow;
use std::time::Duration;

/// A duration setting: checked when the file is read, so that `"1x"` is an error at its
/// line and column, never a silent default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeSpan(Duration);

impl TimeSpan {
    /// `n` milliseconds.
    pub const fn millis(n: u64) -> Self {
        TimeSpan(Duration::from_millis(n))
    }

    /// `n` seconds.
    pub const fn secs(n: u64) -> Self {
        TimeSpan(Duration::from_secs(n))
    }

    /// `n` minutes.
    pub const fn mins(n: u64) -> Self {
        TimeSpan(Duration::from_secs(n * 60))
    }

    /// `n` hours.
    pub const fn hours(n: u64) -> Self {
        TimeSpan(Duration::from_secs(n * 3600))
    }

    /// `n` days.
    pub const fn days(n: u64) -> Self {
        TimeSpan(Duration::from_secs(n * 86_400))
    }

    /// As a standard duration.
    pub const fn get(self) -> Duration {
        self.0
    }

    /// Whether it is zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<TimeSpan> for Duration {
    fn from(span: TimeSpan) -> Duration {
        span.0
    }
}

/// The rule a duration's text breaks.
pub const DURATION_RULE: &str = "a duration such as \"200ms\", \"30s\", \"5m\", \"12h\", \"7d\" or \"1h30m\"";

impl std::str::FromStr for TimeSpan {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match parse_duration_ms(text) {
            Some(ms) if ms >= 0 => Ok(TimeSpan::millis(ms as u64)),
            _ => Err(format!("`{text}` is not {DURATION_RULE}")),
        }
    }
}

impl std::fmt::Display for TimeSpan {
    /// The shortest exact form: `"7d"`, `"90s"`, `"1500ms"`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        let (n, unit) = match ms {
            0 => (0, "s"),
            ms if ms % DAY_MS as u128 == 0 => (ms / DAY_MS as u128, "d"),
            ms if ms % HOUR_MS as u128 == 0 => (ms / HOUR_MS as u128, "h"),
            ms if ms % 60_000 == 0 => (ms / 60_000, "m"),
            ms if ms % 1000 == 0 => (ms / 1000, "s"),
            ms => (ms, "ms"),
        };
        write!(f, "{n}{unit}")
    }
}

impl<'de> serde::Deserialize<'de> for TimeSpan {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for TimeSpan {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl schemars::JsonSchema for TimeSpan {
    fn schema_name() -> Cow<'static, str> {
        "TimeSpan".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "duration" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_print_back() {
        for (text, ms) in [("200ms", 200), ("30s", 30_000), ("5m", 300_000), ("1h30m", 5_400_000), ("7d", 604_800_000), ("0s", 0)] {
            let span: TimeSpan = text.parse().unwrap();
            assert_eq!(span.get().as_millis(), ms, "{text}");
            assert_eq!(span.to_string().parse::<TimeSpan>().unwrap(), span, "{text} prints as {span}");
        }
        assert_eq!(TimeSpan::secs(90).to_string(), "90s");
        assert_eq!(TimeSpan::millis(1500).to_string(), "1500ms");
        for bad in ["1x", "", "s", "-5s", "5 s s"] {
            assert!(bad.parse::<TimeSpan>().unwrap_err().contains("is not a duration"), "{bad}");
        }
    }
}
