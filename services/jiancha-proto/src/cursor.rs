//! The resume cursor of `MonitorService.WatchAlerts`: per partition of the alert topic,
//! the offset after the last update delivered (`0:15,1:0,2:7`). It comes back from the
//! network, so parsing refuses anything that does not name a real partition.

/// `0:15,1:0` → offsets by partition. Every partition must exist (`partitions` of the
/// alert topic): a cursor is data from the network, and a huge partition number must
/// be refused, not allocated.
pub fn parse_cursor(text: &str, partitions: usize) -> Result<Vec<i64>, String> {
    let mut offsets = vec![0; partitions];
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (p, o) = part.split_once(':').ok_or_else(|| format!("`{part}` is not PARTITION:OFFSET"))?;
        let p: usize = p.parse().map_err(|_| format!("partition `{p}` is not a number"))?;
        let o: i64 = o.parse().map_err(|_| format!("offset `{o}` is not a number from 0 to {}", i64::MAX))?;
        if o < 0 {
            return Err(format!("offset {o} is negative"));
        }
        if p >= partitions {
            return Err(format!("partition {p} does not exist: the alert topic has partitions 0 to {}", partitions.saturating_sub(1)));
        }
        offsets[p] = o;
    }
    Ok(offsets)
}

/// Offsets by partition → `0:15,1:0`.
pub fn format_cursor(offsets: &[i64]) -> String {
    offsets.iter().enumerate().map(|(p, o)| format!("{p}:{o}")).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_named() {
        let c = parse_cursor("0:15,1:0,2:7", 3).unwrap();
        assert_eq!(c, [15, 0, 7]);
        assert_eq!(format_cursor(&c), "0:15,1:0,2:7");
        assert_eq!(parse_cursor("", 2).unwrap(), [0, 0]);
        assert!(parse_cursor("0-15", 2).unwrap_err().contains("PARTITION:OFFSET"));
        assert!(parse_cursor("0:-1", 2).unwrap_err().contains("negative"));
        // Hostile cursors are refused, never allocated or wrapped.
        assert!(parse_cursor("1000000000000:0", 2).unwrap_err().contains("does not exist"));
        assert!(parse_cursor("18446744073709551615:0", 2).unwrap_err().contains("does not exist"));
        assert!(parse_cursor("99999999999999999999999:0", 2).unwrap_err().contains("not a number"));
        assert!(parse_cursor("0:18446744073709551615", 2).unwrap_err().contains("not a number"));
        assert!(parse_cursor("2:0", 2).is_err());
    }
}
