//! When a limit bites: `ivt_limit_rejections_total{limit}` counts every refusal, and a warning is
//! logged at most once a second per limit (with how many were not logged since), so that a flood
//! of refusals cannot flood the log or cost more than the work it refuses.

use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// A limit that can refuse work; its name is the metric's `limit` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `--max-connections`: a connection beyond the cap was closed at once.
    Connections,
    /// Accepting failed for want of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM).
    Descriptors,
    /// A connection sent nothing (or not the start of a request) within `--handshake-timeout-s`,
    /// or was silent for `--idle-timeout-s`.
    Idle,
    /// A request message (gRPC) or body (HTTP) over its method's size limit.
    MessageSize,
    /// `--max-queue`: a lane was full.
    Queue,
    /// `--max-decode-pixels`: the decode budget was spent by other calls.
    DecodePixels,
}

const LIMITS: [Limit; 6] = [
    Limit::Connections,
    Limit::Descriptors,
    Limit::Idle,
    Limit::MessageSize,
    Limit::Queue,
    Limit::DecodePixels,
];

impl Limit {
    /// The metric label.
    pub fn name(self) -> &'static str {
        match self {
            Self::Connections => "connections",
            Self::Descriptors => "descriptors",
            Self::Idle => "idle",
            Self::MessageSize => "message_size",
            Self::Queue => "queue",
            Self::DecodePixels => "decode_pixels",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// When each limit last logged (ms since the first refusal; `NEVER` before), and how many
/// refusals went unlogged since.
struct Slot {
    last_ms: AtomicU64,
    unlogged: AtomicU64,
}

const NEVER: u64 = u64::MAX;
const LOG_EVERY_MS: u64 = 1000;

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    last_ms: AtomicU64::new(NEVER),
    unlogged: AtomicU64::new(0),
};
static SLOTS: [Slot; LIMITS.len()] = [EMPTY; LIMITS.len()];

/// Records that `limit` refused something: counted always, logged (as a warning with `detail`)
/// at most once a second per limit.
pub fn refused(limit: Limit, detail: impl Display) {
    super::metrics::limit_rejection(limit.name());
    let slot = &SLOTS[limit.index()];
    if !slot.due(now_ms()) {
        slot.unlogged.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let unlogged = slot.unlogged.swap(0, Ordering::Relaxed);
    tracing::warn!(limit = limit.name(), unlogged, "limit reached: {detail}");
}

impl Slot {
    /// Whether a refusal at `now` may log; claims the slot when it may.
    fn due(&self, now: u64) -> bool {
        let last = self.last_ms.load(Ordering::Relaxed);
        if last != NEVER && now < last.saturating_add(LOG_EVERY_MS) {
            return false;
        }
        // Of concurrent refusals, one logs.
        self.last_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_at_most_once_a_second() {
        let slot = EMPTY;
        assert!(slot.due(0));
        assert!(!slot.due(1));
        assert!(!slot.due(999));
        assert!(slot.due(1000));
        assert!(!slot.due(1500));
        assert!(slot.due(5000));
    }

    #[test]
    fn every_limit_has_its_own_slot_and_label() {
        let names: std::collections::HashSet<_> = LIMITS.iter().map(|l| l.name()).collect();
        assert_eq!(names.len(), LIMITS.len());
        for (i, l) in LIMITS.iter().enumerate() {
            assert_eq!(l.index(), i);
        }
    }
}
