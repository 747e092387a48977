//! A reading of the common event line without serde's per-field calls.
//!
//! Department systems write a flat JSON object: known keys, strings without escapes,
//! small integers, a list of strings. [`scan`] reads that shape in one pass over the
//! bytes, borrowing every text, and gives up (`None`) on anything else — an escape, an
//! unknown or repeated key, a float, a nested value, trailing bytes — which then takes
//! serde_json's way, whose reading and errors are the contract. On every line it reads,
//! it gives what `serde_json::from_str::<RawEvent>` gives; a property test holds the two
//! equal over valid and malformed lines.

use super::RawEvent;
use std::borrow::Cow;

/// Reads `text` (already known to be UTF-8) as a flat event object into `raw`, which
/// holds no field yet, or gives up (`false`, `raw` then holds what was read before).
/// Filled where it lies: a `RawEvent` is some 500 bytes, and handing it back by value
/// copied it on every return.
pub(super) fn scan<'a>(text: &'a str, raw: &mut RawEvent<'a>) -> bool {
    read(text, raw).is_some()
}

fn read<'a>(text: &'a str, raw: &mut RawEvent<'a>) -> Option<()> {
    let mut r = Reader { text, b: text.as_bytes(), at: 0 };
    let mut seen = 0u32;
    r.ws();
    r.expect(b'{')?;
    r.sequence(b'}', |r| {
        r.expect(b'"')?;
        let key = r.string_body()?;
        r.ws();
        r.expect(b':')?;
        r.ws();
        let (bit, field) = field(raw, key)?;
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        match field {
            Field::Text(f) => *f = r.text()?,
            Field::Integer(f) => *f = r.integer()?,
            Field::Texts(f) => *f = r.texts()?,
        }
        Some(())
    })?;
    r.ws();
    (r.at == r.b.len()).then_some(())
}

/// Where a key's value goes.
enum Field<'r, 'a> {
    Text(&'r mut Option<Cow<'a, str>>),
    Integer(&'r mut Option<i128>),
    Texts(&'r mut Option<Vec<Cow<'a, str>>>),
}

/// The field a key names, with its bit in the set of fields read (for refusing a
/// repeated key); `None` for a key `RawEvent` does not have.
fn field<'r, 'a>(raw: &'r mut RawEvent<'a>, key: &str) -> Option<(u32, Field<'r, 'a>)> {
    use Field::*;
    let (n, field) = match key {
        "event_id" => (0, Text(&mut raw.event_id)),
        "item_id" => (1, Text(&mut raw.item_id)),
        "service_code" => (2, Text(&mut raw.service_code)),
        "department_code" => (3, Text(&mut raw.department_code)),
        "type" => (4, Text(&mut raw.type_name)),
        "occurred_at" => (5, Text(&mut raw.occurred_at)),
        "actor" => (6, Text(&mut raw.actor)),
        "seq" => (7, Integer(&mut raw.seq)),
        "materials" => (8, Texts(&mut raw.materials)),
        "reason" => (9, Text(&mut raw.reason)),
        "step" => (10, Text(&mut raw.step)),
        "suspension_kind" => (11, Text(&mut raw.suspension_kind)),
        "expected_days" => (12, Integer(&mut raw.expected_days)),
        "days" => (13, Integer(&mut raw.days)),
        "approver" => (14, Text(&mut raw.approver)),
        "amount_fen" => (15, Integer(&mut raw.amount_fen)),
        "outcome" => (16, Text(&mut raw.outcome)),
        "received_at" => (17, Text(&mut raw.received_at)),
        _ => return None,
    };
    Some((1 << n, field))
}

struct Reader<'a> {
    text: &'a str,
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.at += 1)
    }

    /// After the opening quote: the text up to the closing one, which it passes; `None`
    /// at a control character (serde_json refuses it) or a backslash (an escape, which
    /// is serde_json's to read).
    // Inlined where it is called: as a call, saving and restoring registers around it
    // cost as much as finding the end of the short strings of a line.
    #[inline(always)]
    fn string_body(&mut self) -> Option<&'a str> {
        let start = self.at;
        let end = start + crate::json::special(&self.b[start..])?;
        if self.b[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        self.text.get(start..end)
    }

    /// Whether the next value is `null`, which it passes.
    fn null(&mut self) -> bool {
        let is = self.b[self.at..].starts_with(b"null");
        if is {
            self.at += 4;
        }
        is
    }

    fn text(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.null() {
            return Some(None);
        }
        self.expect(b'"')?;
        Some(Some(Cow::Borrowed(self.string_body()?)))
    }

    fn texts(&mut self) -> Option<Option<Vec<Cow<'a, str>>>> {
        if self.null() {
            return Some(None);
        }
        self.expect(b'[')?;
        let mut list = Vec::new();
        self.sequence(b']', |r| {
            r.expect(b'"')?;
            list.push(Cow::Borrowed(r.string_body()?));
            Some(())
        })?;
        Some(Some(list))
    }

    /// After `{` or `[`: items read by `item`, separated by commas, up to `close`, which
    /// it passes; whitespace anywhere between.
    fn sequence(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.ws();
        if self.peek()? == close {
            self.at += 1;
            return Some(());
        }
        loop {
            item(self)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    self.ws();
                }
                c if c == close => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `-?(0|[1-9][0-9]{0,17})` not followed by a digit, `.`, `e` or `E`; larger and
    /// other numbers are serde_json's to read or refuse.
    fn integer(&mut self) -> Option<Option<i128>> {
        if self.null() {
            return Some(None);
        }
        let negative = self.peek()? == b'-';
        if negative {
            self.at += 1;
        }
        let start = self.at;
        let mut n: i128 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            // Given up on before the sum can overflow, however long the digits run.
            if self.at - start == 18 {
                return None;
            }
            n = n * 10 + i128::from(c - b'0');
            self.at += 1;
        }
        let digits = self.at - start;
        if digits == 0 || (digits > 1 && self.b[start] == b'0') || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(Some(if negative { -n } else { n }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What [`scan`] reads into an empty event, if it reads the line.
    fn scanned(text: &str) -> Option<RawEvent<'_>> {
        let mut raw = RawEvent::default();
        scan(text, &mut raw).then_some(raw)
    }

    #[test]
    fn reads_the_common_line_and_borrows_every_text() {
        let line = r#"{"department_code":"WJW","event_id":"WJW-1-01","item_id":"WJW-1","occurred_at":"2025-03-03T09:00:30.480+08:00","received_at":"2025-03-03T09:00:48.132+08:00","seq":1,"service_code":"WJW-002","type":"CORRECTION_REQUESTED","materials":["身份证","营业执照"],"actor":"张三","amount_fen":-0}"#;
        let raw = scanned(line).expect("the common shape is read");
        assert_eq!(Some(&raw), serde_json::from_str::<RawEvent<'_>>(line).ok().as_ref());
        assert!(matches!(raw.item_id, Some(Cow::Borrowed("WJW-1"))));
        assert!(matches!(raw.materials.as_deref(), Some([Cow::Borrowed("身份证"), Cow::Borrowed("营业执照")])));
        assert_eq!(raw.seq, Some(1));
    }

    #[test]
    fn gives_up_on_what_serde_json_reads_differently() {
        for line in [
            r#"{"item_id":"a\"b"}"#,
            r#"{"item_id":"a","item_id":"b"}"#,
            r#"{"extra":1,"item_id":"a"}"#,
            r#"{"seq":1.0}"#,
            r#"{"seq":01}"#,
            r#"{"seq":1e3}"#,
            r#"{"seq":1234567890123456789}"#,
            &format!(r#"{{"seq":{}}}"#, "4".repeat(60)),
            r#"{"item_id":"a",}"#,
            r#"{"item_id":"a"} x"#,
            r#"{"item_id":"a"}{}"#,
            r#"{"materials":["a",1]}"#,
            r#"{"materials":[,]}"#,
            r#"{"item_id":nul}"#,
            "{\"item_id\":\"a\tb\"}",
            "[]",
            "",
        ] {
            assert_eq!(scanned(line), None, "{line}");
        }
    }

    /// A line built from pieces that are each valid or broken in the ways a sender gets
    /// them wrong.
    fn line() -> impl Strategy<Value = String> {
        let text = prop_oneof![
            4 => "[a-zA-Z0-9:+. -]{0,12}",
            2 => "[\\u{80}-\\u{10FFFF}]{0,3}",
            1 => prop::sample::select(vec!["a\\\"b", "\\u4e2d", "a\\nb", "\t", "\u{1}"]).prop_map(str::to_owned),
        ];
        let string = text.clone().prop_map(|t| format!("\"{t}\""));
        let integer = prop_oneof![4 => "-?[1-9][0-9]{0,4}", 1 => "-?[0-9]{1,22}", 1 => Just("0".to_owned())];
        let list = prop::collection::vec(text, 0..3)
            .prop_map(|l| format!("[{}]", l.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(",")));
        let odd = prop::sample::select(vec![
            "null",
            "nul",
            "true",
            "1.5",
            "-0",
            "1e2",
            "01",
            "-",
            "{}",
            "[]",
            "\"\"",
            "[\"a\" , \"b\"]",
            "[\"a\",]",
            "[1]",
            "[null]",
        ])
        .prop_map(str::to_owned);
        let texts = prop::sample::select(vec![
            "event_id",
            "item_id",
            "service_code",
            "department_code",
            "type",
            "occurred_at",
            "actor",
            "reason",
            "step",
            "suspension_kind",
            "approver",
            "outcome",
            "received_at",
        ]);
        let integers = prop::sample::select(vec!["seq", "expected_days", "days", "amount_fen"]);
        let any_key = prop::sample::select(vec!["seq", "materials", "type", "extra", "item\\u005fid", "Seq", "", "type "]);
        let any_value = prop_oneof![string.clone(), integer.clone(), list.clone(), odd];
        // Mostly a key with a value of its type, sometimes any pairing.
        let pair = prop_oneof![
            4 => (texts, string).prop_map(|(k, v)| (k, v)),
            2 => (integers, integer).prop_map(|(k, v)| (k, v)),
            1 => list.prop_map(|v| ("materials", v)),
            2 => (any_key, any_value).prop_map(|(k, v)| (k, v)),
        ];
        let space = prop::sample::select(vec!["", "", " ", "\n", "\t", "\r\n", "\u{a0}"]);
        let member = (pair, space.clone(), space.clone()).prop_map(|((k, v), s, t)| format!("\"{k}\"{s}:{t}{v}{s}"));
        let tail = prop::sample::select(vec!["", "", "", "", "", "", "", " ", ",", "x", "}", " \n"]);
        (
            space.clone(),
            prop::collection::vec(member, 0..8),
            prop::sample::select(vec![",", ",", ",", ",", ",", ",", " , ", ";"]),
            tail,
            space,
        )
            .prop_map(|(lead, members, comma, tail, trail)| format!("{lead}{{{}}}{tail}{trail}", members.join(comma)))
    }

    /// A flat line as department systems write it: known keys, each once, in any order,
    /// with values of their types — strings without escapes (empty, ASCII, Chinese),
    /// small integers, lists of strings — and spaces, or none, around the punctuation.
    fn flat_line() -> impl Strategy<Value = String> {
        let text = prop_oneof!["[a-zA-Z0-9:+. -]{0,12}", "[\\u{80}-\\u{10FFFF}]{0,3}", Just(String::new())];
        let string = text.clone().prop_map(|t| format!("\"{t}\""));
        let list = prop::collection::vec(text, 0..3)
            .prop_map(|l| format!("[{}]", l.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(",")));
        let integer = "-?[1-9][0-9]{0,5}|0";
        let texts = ["event_id", "item_id", "service_code", "department_code", "type", "occurred_at", "actor", "reason", "step"];
        let integers = ["seq", "expected_days", "days", "amount_fen"];
        let members = (
            prop::collection::vec(string, texts.len()),
            prop::collection::vec(integer, integers.len()),
            list,
            prop::sample::subsequence((0..texts.len() + integers.len() + 1).collect::<Vec<_>>(), 0..=14).prop_shuffle(),
            prop::sample::select(vec!["", " "]),
        );
        members.prop_map(move |(strings, numbers, list, chosen, space)| {
            let member = |k: usize| match k {
                k if k < texts.len() => format!("\"{}\"{space}:{space}{}", texts[k], strings[k]),
                k if k < texts.len() + integers.len() => format!("\"{}\":{}", integers[k - texts.len()], numbers[k - texts.len()]),
                _ => format!("\"materials\":{space}{list}"),
            };
            format!("{{{}}}", chosen.into_iter().map(member).collect::<Vec<_>>().join(&format!(",{space}")))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

        /// The scanner reads every flat line (it does not give up on what it is for), to
        /// what serde_json reads.
        #[test]
        fn it_reads_every_flat_line(line in flat_line()) {
            let raw = scanned(&line);
            prop_assert!(raw.is_some(), "gave up on {}", line);
            prop_assert_eq!(raw, serde_json::from_str::<RawEvent<'_>>(&line).ok(), "{}", line);
        }

        /// Every line the scanner reads, serde_json reads to the same event.
        #[test]
        fn what_it_reads_serde_json_reads_alike(line in line()) {
            if let Some(raw) = scanned(&line) {
                prop_assert_eq!(Some(raw), serde_json::from_str::<RawEvent<'_>>(&line).ok(), "{}", line);
            }
        }
    }
}
