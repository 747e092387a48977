//! Records the broker deleted before the monitor read them.
//!
//! When a partition's retention removes records the consumer group has not reached, the
//! broker answers the monitor's next fetch "offset out of range" and the consumer resumes
//! at the partition's start (`auto.offset.reset = earliest`): the records in between are
//! never applied, and their alerts never raised. librdkafka reports this only as a log
//! line, so the monitor reads that line, logs an error in its own words and counts it
//! (`jiancha_consumer_offset_resets_total`, and `jiancha_events_lost_total` with the
//! number of records when the line gives the offset resumed at).

use crate::telemetry as m;

/// One reset of a partition's position past records it had not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reset<'a> {
    pub topic: &'a str,
    pub partition: i32,
    /// The offset the consumer asked for.
    pub from: i64,
    /// The offset it resumed at, when librdkafka knew the start from its last fetch.
    pub to: Option<i64>,
}

/// Reads librdkafka's `OFFSET` log line for a reset after "offset out of range", e.g.
/// `[thrd:main]: jiancha.events [0]: offset reset (at offset 814704 (leader epoch 0), broker 1) to
/// cached BEGINNING offset offset 838652 (leader epoch -1): fetch failed due to requested
/// offset not available on the broker: Broker: Offset out of range`.
pub(crate) fn parse<'a>(fac: &str, line: &'a str) -> Option<Reset<'a>> {
    if fac != "OFFSET" || !line.contains("Offset out of range") {
        return None;
    }
    // After librdkafka's thread, `[thrd:main]: `.
    let line = match line.strip_prefix("[thrd:") {
        Some(rest) => rest.split_once("]: ")?.1,
        None => line,
    };
    let (topic, rest) = line.split_once(" [")?;
    let (partition, rest) = rest.split_once("]: offset reset (at offset ")?;
    let from = leading_number(rest)?;
    let to = rest.split_once(" to ").and_then(|(_, target)| {
        let (_, after) = target.split_once("offset offset ")?;
        leading_number(after)
    });
    Some(Reset { topic, partition: partition.parse().ok()?, from, to })
}

fn leading_number(text: &str) -> Option<i64> {
    let end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    text[..end].parse().ok()
}

impl Reset<'_> {
    /// Logs the loss and counts it.
    pub fn report(&self) {
        // Without labels, so that the series exists at zero from the start and a rule's
        // `increase()` sees the first reset; the log line names the partition.
        metrics::counter!(m::OFFSET_RESETS).increment(1);
        match self.to {
            Some(to) if to > self.from => {
                let lost = (to - self.from) as u64;
                metrics::counter!(m::EVENTS_LOST).increment(lost);
                tracing::error!(
                    topic = self.topic,
                    partition = self.partition,
                    from = self.from,
                    to,
                    lost,
                    "the broker deleted {lost} records of {}[{}] (offsets {}..{to}) before this monitor read them: they are not applied and raise no alert; republish the departments' events of that range (docs/operations.md)",
                    self.topic,
                    self.partition,
                    self.from,
                );
            }
            _ => tracing::error!(
                topic = self.topic,
                partition = self.partition,
                from = self.from,
                "the broker deleted records of {}[{}] from offset {} on before this monitor read them: they are not applied and raise no alert; republish the departments' events of that range (docs/operations.md)",
                self.topic,
                self.partition,
                self.from,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_librdkafka_s_reset_lines() {
        // As the embedded broker's consumer logged it in a load test.
        let cached = "[thrd:main]: jiancha.events [3]: offset reset (at offset 811328 (leader epoch 0), broker 1) to cached BEGINNING offset offset 835030 (leader epoch -1): fetch failed due to requested offset not available on the broker: Broker: Offset out of range";
        assert_eq!(parse("OFFSET", cached), Some(Reset { topic: "jiancha.events", partition: 3, from: 811328, to: Some(835030) }));
        let queried = "[thrd:GroupCoordinator]: dept.WJW.events [12]: offset reset (at offset 42, broker 2) to BEGINNING: fetch failed due to requested offset not available on the broker: Broker: Offset out of range";
        assert_eq!(parse("OFFSET", queried), Some(Reset { topic: "dept.WJW.events", partition: 12, from: 42, to: None }));
    }

    #[test]
    fn other_lines_are_not_resets() {
        let cached = "jiancha.events [3]: offset reset (at offset 811328 (leader epoch 0), broker 1) to cached BEGINNING offset offset 835030 (leader epoch -1): fetch failed due to requested offset not available on the broker: Broker: Offset out of range";
        assert_eq!(parse("FETCH", cached), None);
        for line in [
            "jiancha.events [0]: offset reset (at offset INVALID, broker 1) to BEGINNING: no previously committed offset available: Local: No offset stored",
            "jiancha.events [x]: offset reset (at offset 1, broker 1) to BEGINNING: Broker: Offset out of range",
            "Offset out of range",
            "",
        ] {
            assert_eq!(parse("OFFSET", line), None, "{line}");
        }
    }
}
