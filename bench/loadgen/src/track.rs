//! Exactly-once, in-order accounting of what one client received.
//!
//! Every published event carries the publisher's own number `n` (0-based per
//! account) next to the server's `seq`. Loss and duplication are judged on
//! `n`, which the server cannot influence: a server that assigned one seq to
//! two events, or skipped one, is still caught. Order is judged on `seq`,
//! because the contract orders by seq, and the publisher may have several
//! publishes of one account in flight whose seqs the server assigns in any
//! order it likes.

/// A fixed-size set of event numbers.
#[derive(Clone, Debug, Default)]
pub struct Bitset {
    words: Vec<u64>,
    len: u64,
}

impl Bitset {
    pub fn new(len: u64) -> Self {
        Bitset {
            words: vec![0; len.div_ceil(64) as usize],
            len,
        }
    }

    /// Sets bit `i`; returns false if it was already set or is out of range.
    pub fn insert(&mut self, i: u64) -> bool {
        if i >= self.len {
            return false;
        }
        let (w, b) = ((i / 64) as usize, 1u64 << (i % 64));
        let fresh = self.words[w] & b == 0;
        self.words[w] |= b;
        fresh
    }

    #[cfg(test)]
    pub fn contains(&self, i: u64) -> bool {
        i < self.len && self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Members of `self` missing from `other`.
    pub fn missing_from(&self, other: &Bitset) -> u64 {
        self.words
            .iter()
            .enumerate()
            .map(|(i, w)| u64::from((w & !other.words.get(i).copied().unwrap_or(0)).count_ones()))
            .sum()
    }
}

/// What became of one delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// First time this event arrived, in order.
    Fresh,
    /// First time, but its seq is not above the last one seen.
    OutOfOrder,
    /// This event number arrived before.
    Duplicate,
    /// Not one of ours (no number, or beyond the published range).
    Foreign,
}

/// One client's deliveries.
#[derive(Clone, Debug)]
pub struct Tracker {
    seen: Bitset,
    /// Highest seq seen (the snapshot's seq to begin with).
    last_seq: u64,
    pub unique: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub foreign: u64,
}

impl Tracker {
    /// Tracks numbers `0..events` starting after the snapshot at `start_seq`.
    pub fn new(events: u64, start_seq: u64) -> Self {
        Tracker {
            seen: Bitset::new(events),
            last_seq: start_seq,
            unique: 0,
            duplicates: 0,
            out_of_order: 0,
            foreign: 0,
        }
    }

    pub fn record(&mut self, n: Option<u64>, seq: u64) -> Verdict {
        let Some(n) = n.filter(|&n| n < self.seen.len) else {
            self.foreign += 1;
            return Verdict::Foreign;
        };
        if !self.seen.insert(n) {
            self.duplicates += 1;
            return Verdict::Duplicate;
        }
        self.unique += 1;
        let in_order = seq > self.last_seq;
        self.last_seq = self.last_seq.max(seq);
        if in_order {
            Verdict::Fresh
        } else {
            self.out_of_order += 1;
            Verdict::OutOfOrder
        }
    }

    /// Acknowledged events this client never received.
    pub fn lost(&self, acked: &Bitset) -> u64 {
        acked.missing_from(&self.seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(len: u64) -> Bitset {
        let mut b = Bitset::new(len);
        for i in 0..len {
            b.insert(i);
        }
        b
    }

    #[test]
    fn bitset_basics() {
        let mut b = Bitset::new(130);
        assert!(b.insert(0) && b.insert(64) && b.insert(129));
        assert!(!b.insert(64), "second insert is not fresh");
        assert!(!b.insert(130), "out of range");
        assert!(b.contains(129) && !b.contains(1) && !b.contains(500));
        assert_eq!(b.count(), 3);
        assert_eq!(all(130).missing_from(&b), 127);
    }

    #[test]
    fn clean_run_has_nothing_to_report() {
        let mut t = Tracker::new(5, 10);
        for (n, seq) in (0..5).zip(11..) {
            assert_eq!(t.record(Some(n), seq), Verdict::Fresh);
        }
        assert_eq!(
            (t.unique, t.duplicates, t.out_of_order, t.foreign),
            (5, 0, 0, 0)
        );
        assert_eq!(t.lost(&all(5)), 0);
    }

    #[test]
    fn counts_loss_duplicates_and_disorder() {
        let mut t = Tracker::new(6, 0);
        assert_eq!(t.record(Some(0), 1), Verdict::Fresh);
        assert_eq!(t.record(Some(2), 3), Verdict::Fresh);
        // seq 2 after seq 3: arrived, but out of order.
        assert_eq!(t.record(Some(1), 2), Verdict::OutOfOrder);
        assert_eq!(t.record(Some(2), 3), Verdict::Duplicate);
        assert_eq!(
            t.record(Some(0), 7),
            Verdict::Duplicate,
            "a re-sequenced copy is still a duplicate"
        );
        assert_eq!(t.record(None, 8), Verdict::Foreign);
        assert_eq!(t.record(Some(99), 9), Verdict::Foreign);
        assert_eq!(t.record(Some(5), 6), Verdict::Fresh);
        assert_eq!(
            (t.unique, t.duplicates, t.out_of_order, t.foreign),
            (4, 2, 1, 2)
        );
        // 3 and 4 never arrived.
        assert_eq!(t.lost(&all(6)), 2);
    }

    #[test]
    fn loss_counts_only_acknowledged_events() {
        let mut t = Tracker::new(4, 0);
        t.record(Some(0), 1);
        t.record(Some(3), 2);
        // Event 2's publish failed: its absence is not a loss.
        let mut acked = Bitset::new(4);
        for n in [0, 1, 3] {
            acked.insert(n);
        }
        assert_eq!(t.lost(&acked), 1);
    }

    #[test]
    fn order_starts_after_the_snapshot() {
        let mut t = Tracker::new(2, 50);
        assert_eq!(
            t.record(Some(0), 50),
            Verdict::OutOfOrder,
            "seq already in the snapshot"
        );
        assert_eq!(t.record(Some(1), 51), Verdict::Fresh);
    }
}
