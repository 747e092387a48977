//! JSON strings scanned and written eight bytes at a time.
//!
//! serde_json looks at a string one byte at a time, reading and writing alike; on a
//! replay's event lines and on its alert lines (a kilobyte each, most of it Chinese
//! derivation text) that loop was the largest single cost of the thread that ran it.
//! These functions find the bytes that matter a word at a time and copy the runs
//! between them whole; the text they write is serde_json's, byte for byte (a property
//! test holds the two equal).

/// A one in every byte of a word, and every byte's high bit: the words of the byte
/// checks here and of the event's text checks (`event.rs`).
pub(crate) const ONES: u64 = 0x0101_0101_0101_0101;
pub(crate) const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The position of the first byte a JSON string cannot hold as it is: `"`, `\` or a
/// control character (below 0x20).
pub(crate) fn special(b: &[u8]) -> Option<usize> {
    let mut chunks = b.chunks_exact(8);
    let mut at = 0;
    for chunk in chunks.by_ref() {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        // The high bit of each byte that is zero after an XOR (a quote, a backslash) or
        // below 0x20; the lowest one found is exact (a borrow only marks bytes above a
        // match, and a byte of 0x80 or more never matches: `!x` clears its high bit).
        let zero = |v: u64| v.wrapping_sub(ONES) & !v;
        let found = (zero(quote) | zero(backslash) | (x.wrapping_sub(ONES * 0x20) & !x)) & HIGHS;
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    chunks.remainder().iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20).map(|p| at + p)
}

/// [`special`] for long texts (an alert's derivation is most of a kilobyte): 32 bytes
/// at a time, each block tested without an early exit so that the compiler tests it in
/// vector registers, and a block that holds one searched by [`special`].
fn special_in_text(b: &[u8]) -> Option<usize> {
    const BLOCK: usize = 32;
    let mut blocks = b.chunks_exact(BLOCK);
    let mut at = 0;
    for block in blocks.by_ref() {
        let any = block.iter().fold(false, |any, &c| any | (c == b'"') | (c == b'\\') | (c < 0x20));
        if any {
            return special(block).map(|p| at + p);
        }
        at += BLOCK;
    }
    special(blocks.remainder()).map(|p| at + p)
}

/// Appends `s` as the inside of a JSON string, escaped as serde_json escapes it: `\"`,
/// `\\`, `\b \f \n \r \t`, any other control character as `\u00XX` (lower-case hex).
pub fn escape_into(out: &mut Vec<u8>, s: &str) {
    let mut rest = s.as_bytes();
    while let Some(i) = special_in_text(rest) {
        out.extend_from_slice(&rest[..i]);
        let c = rest[i];
        let short = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x0c => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            _ => 0,
        };
        if short != 0 {
            out.extend_from_slice(&[b'\\', short]);
        } else {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(c >> 4)], HEX[usize::from(c & 0xf)]]);
        }
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

/// Appends `s` as a JSON string, quoted and escaped ([`escape_into`]).
pub fn string_into(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape_into(out, s);
    out.push(b'"');
}

/// Appends `s` as a JSON string, or `null`.
pub fn optional_into(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string_into(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_the_first_quote_backslash_or_control_character() {
        let slow = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        let mut text = [b'a'; 80];
        assert_eq!(special(&text), None);
        assert_eq!(special_in_text(&text), None);
        for at in 0..text.len() {
            for stop in [b'"', b'\\', 0, 0x1f, b'\n'] {
                for after in [b'a', b'"', b'\\', 0x80, 0xff, 0x20, 0x21, 0x5b, 0x5d] {
                    text = [0x7f; 80];
                    text[at] = stop;
                    text[(at + 1).min(79)..].fill(after);
                    assert_eq!(special(&text), slow(&text), "{text:?}");
                    assert_eq!(special(&text[..at]), slow(&text[..at]));
                    assert_eq!(special_in_text(&text), slow(&text), "{text:?}");
                    assert_eq!(special_in_text(&text[..at]), slow(&text[..at]));
                }
            }
        }
    }

    fn written(s: &str) -> String {
        let mut out = Vec::new();
        string_into(&mut out, s);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn escapes_as_serde_json_does() {
        for s in ["", "a", "\"", "\\", "依据事件「A-1」\n", "\u{0}\u{1f}\u{7f}\u{8}\u{c}\r\t", "a\"b\\c/d", "\u{2028}\u{2029}"] {
            assert_eq!(written(s), serde_json::to_string(s).expect("json"), "{s:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// Any text, with the characters that need escaping made common.
        #[test]
        fn any_text_is_written_as_serde_json_writes_it(
            s in proptest::collection::vec(prop_oneof![
                Just('"'), Just('\\'), (0u8..0x20).prop_map(char::from), Just('审'), Just('a'), any::<char>(),
            ], 0..40).prop_map(|cs| cs.into_iter().collect::<String>())
        ) {
            prop_assert_eq!(written(&s), serde_json::to_string(&s).expect("json"));
        }
    }
}
