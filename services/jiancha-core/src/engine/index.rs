//! The engine's index of items: an item id's hash → the item's slot, in one open-addressed
//! table whose entries can be brought into cache ahead of their lookup.
//!
//! A replay or a partition's batch looks up a random item for almost every event, and
//! with hundreds of thousands of items each lookup missed the cache (a fifth of the
//! engine's time). Knowing where an entry lies before it is needed lets the engine ask
//! for it several events ahead ([`Index::prefetch`]), which a general hash table does
//! not allow. Each entry is eight bytes, the hash's low half beside the slot, so one
//! cache line holds eight and a probe rarely leaves it; linear probing, at most three
//! quarters full (10.7 to 21 bytes an item); removal shifts the entries after it back
//! instead of leaving tombstones.

/// No entry.
const EMPTY: u64 = u64::MAX;

#[derive(Debug, Default)]
pub(crate) struct Index {
    /// `tag << 32 | slot`, or [`EMPTY`]; a power of two long, or empty.
    entries: Vec<u64>,
    len: usize,
}

/// The part of an item id's hash the index keeps (rustc-hash's best-mixed bits).
fn tag(hash: u64) -> u32 {
    hash as u32
}

impl Index {
    /// Entries the table can hold without growing.
    pub fn capacity(&self) -> usize {
        self.entries.len() / 4 * 3
    }

    /// Bytes of the table.
    pub fn bytes(&self) -> usize {
        self.entries.len() * std::mem::size_of::<u64>()
    }

    /// Where `tag`'s probe starts (Fibonacci hashing: every bit of the tag counts).
    fn home(&self, tag: u32) -> usize {
        let bits = self.entries.len().trailing_zeros();
        ((u64::from(tag).wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> (64 - bits)) as usize
    }

    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    /// The slots whose hash is `hash`'s, as far as the index can tell (the caller
    /// compares the items themselves).
    pub fn candidates(&self, hash: u64) -> impl Iterator<Item = u32> + '_ {
        let tag = tag(hash);
        let mut at = if self.entries.is_empty() { 0 } else { self.home(tag) };
        let mut done = self.entries.is_empty();
        std::iter::from_fn(move || {
            while !done {
                let e = self.entries[at];
                if e == EMPTY {
                    done = true;
                    return None;
                }
                at = (at + 1) & self.mask();
                if (e >> 32) as u32 == tag {
                    return Some(e as u32);
                }
            }
            None
        })
    }

    /// The first candidate for which `eq` holds.
    pub fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        self.candidates(hash).find(|&slot| eq(slot))
    }

    /// Adds `slot` under `hash` (the caller knows it is not there yet).
    pub fn insert(&mut self, hash: u64, slot: u32) {
        debug_assert!(slot != u32::MAX);
        self.reserve(1);
        let tag = tag(hash);
        let mut at = self.home(tag);
        while self.entries[at] != EMPTY {
            at = (at + 1) & self.mask();
        }
        self.entries[at] = u64::from(tag) << 32 | u64::from(slot);
        self.len += 1;
    }

    /// Removes `slot`, filed under `hash`; false when it is not there.
    pub fn remove(&mut self, hash: u64, slot: u32) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        let entry = u64::from(tag(hash)) << 32 | u64::from(slot);
        let mask = self.mask();
        let mut hole = self.home(tag(hash));
        loop {
            match self.entries[hole] {
                EMPTY => return false,
                e if e == entry => break,
                _ => hole = (hole + 1) & mask,
            }
        }
        // Each later entry of the run moves into the hole unless its probe starts
        // after the hole (cyclically), where a lookup would no longer reach it.
        let mut next = (hole + 1) & mask;
        while self.entries[next] != EMPTY {
            let home = self.home((self.entries[next] >> 32) as u32);
            if (next.wrapping_sub(home) & mask) >= (next.wrapping_sub(hole) & mask) {
                self.entries[hole] = self.entries[next];
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.entries[hole] = EMPTY;
        self.len -= 1;
        true
    }

    /// Makes room for `additional` more entries without growing again.
    pub fn reserve(&mut self, additional: usize) {
        let needed = self.len + additional;
        if needed <= self.capacity() {
            return;
        }
        let size = (needed * 4).div_ceil(3).next_power_of_two().max(16);
        let old = std::mem::replace(&mut self.entries, vec![EMPTY; size]);
        let mask = self.mask();
        for e in old.into_iter().filter(|&e| e != EMPTY) {
            let mut at = self.home((e >> 32) as u32);
            while self.entries[at] != EMPTY {
                at = (at + 1) & mask;
            }
            self.entries[at] = e;
        }
    }

    /// Asks for the cache line where `hash`'s probe starts.
    pub fn prefetch(&self, hash: u64) {
        if !self.entries.is_empty() {
            prefetch(&self.entries[self.home(tag(hash))]);
        }
    }
}

/// Asks the processor to bring `value`'s cache line in, without waiting for it.
#[inline]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it reads nothing the program sees and cannot fault,
    // and the pointer comes from a reference.
    #[allow(unsafe_code)]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((value as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Any run of inserts and removes, with hashes crowded into few tags so that
        /// probes collide and wrap, leaves the index finding what a map holds.
        #[test]
        fn finds_what_a_map_holds(ops in proptest::collection::vec((any::<bool>(), 0u32..300, 0u64..40), 0..600)) {
            let mut index = Index::default();
            let mut model: HashMap<u32, u64> = HashMap::new();
            for (add, slot, h) in ops {
                // Tags of few distinct values, spread over the high bits too.
                let hash = h * 0x0000_0001_0000_0001 % 7 + (h % 3) * 0x9E37;
                if add && !model.contains_key(&slot) {
                    index.insert(hash, slot);
                    model.insert(slot, hash);
                } else if !add {
                    let held = model.remove(&slot);
                    prop_assert_eq!(index.remove(held.unwrap_or(hash), slot), held.is_some());
                }
                prop_assert_eq!(index.len, model.len());
            }
            for (&slot, &hash) in &model {
                prop_assert_eq!(index.find(hash, |s| s == slot), Some(slot));
                let mut all: Vec<u32> = index.candidates(hash).filter(|s| model[s] == hash).collect();
                all.sort_unstable();
                let mut expected: Vec<u32> = model.iter().filter(|&(_, &h)| h == hash).map(|(&s, _)| s).collect();
                expected.sort_unstable();
                prop_assert_eq!(all, expected);
            }
        }
    }

    #[test]
    fn grows_and_stays_at_most_three_quarters_full() {
        let mut index = Index::default();
        assert_eq!(index.find(7, |_| true), None);
        assert!(!index.remove(7, 1));
        for slot in 0..10_000u32 {
            index.insert(u64::from(slot).wrapping_mul(0x2545_F491_4F6C_DD1D), slot);
            assert!(index.len <= index.capacity());
        }
        assert_eq!(index.entries.len(), 16_384);
        for slot in 0..10_000u32 {
            assert_eq!(index.find(u64::from(slot).wrapping_mul(0x2545_F491_4F6C_DD1D), |s| s == slot), Some(slot));
        }
    }
}
