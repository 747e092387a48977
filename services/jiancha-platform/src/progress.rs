//! The applicant's query code (办件查询码): printed on the receipt, it lets the applicant
//! look an item up on the public progress page without an account. It is an HMAC of the
//! department and item id under a deployment secret, so the gateway can hand it to the
//! department system on SUBMITTED and the console can check it, with nothing stored.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Characters of a code: no 0/O or 1/I, so that it can be read off paper.
const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Characters in a code (10 × 5 bits: 50 bits, guessing is hopeless under the page's
/// rate limit).
pub const CODE_LEN: usize = 10;

/// The code of `item_id` of `department`.
pub fn query_code(secret: &[u8], department: &str, item_id: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return String::new() };
    mac.update(department.as_bytes());
    mac.update(&[0]);
    mac.update(item_id.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut bits: u64 = 0;
    for b in &digest[..8] {
        bits = bits << 8 | u64::from(*b);
    }
    (0..CODE_LEN).map(|i| ALPHABET[((bits >> (59 - 5 * i)) & 31) as usize] as char).collect()
}

/// Whether `given` is the code of the item (case, spaces and dashes ignored; compared in
/// constant time).
pub fn check(secret: &[u8], department: &str, item_id: &str, given: &str) -> bool {
    let want = query_code(secret, department, item_id);
    let given: Vec<u8> = given.bytes().filter(|b| !matches!(b, b' ' | b'-')).map(|b| b.to_ascii_uppercase()).collect();
    !want.is_empty() && given.len() == want.len() && given.iter().zip(want.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Reads the secret file (at least 16 bytes after trimming).
pub fn load_secret(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("query code secret {}: {e}", path.display()))?;
    let secret = bytes.trim_ascii().to_vec();
    if secret.len() < 16 {
        return Err(format!("query code secret {}: at least 16 bytes are needed", path.display()));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_readable_and_bound_to_department_and_item() {
        let s = b"0123456789abcdef0123456789abcdef";
        let c = query_code(s, "SCJG", "SCJG-1");
        assert_eq!(c.len(), CODE_LEN);
        assert_eq!(c, query_code(s, "SCJG", "SCJG-1"));
        assert!(c.bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(c, query_code(s, "ZRZY", "SCJG-1"));
        assert_ne!(c, query_code(s, "SCJG", "SCJG-2"));
        assert_ne!(c, query_code(b"another secret of enough length", "SCJG", "SCJG-1"));
        assert!(check(s, "SCJG", "SCJG-1", &c.to_lowercase()));
        assert!(check(s, "SCJG", "SCJG-1", &format!("{}-{}", &c[..5], &c[5..])));
        assert!(!check(s, "SCJG", "SCJG-1", &c[..9]));
        assert!(!check(s, "SCJG", "SCJG-2", &c));
    }
}
