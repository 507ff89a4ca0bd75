//! In-memory lock-free rings between threads.
//!
//! [`pair`] returns two connected [`MemIo`] ends. Each direction is a
//! single-producer single-consumer ring of preallocated frame slots: the
//! producer writes a frame straight into the next free slot and publishes it
//! with a release store of the head; the consumer reads it in place after an
//! acquire load and frees it with a release store of the tail. Nothing is
//! allocated per frame. The `unsafe` slot access is confined to the private `Ring` type.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{IoStats, PacketIo, PktError, Wait};

#[repr(align(64))]
struct Padded(AtomicUsize);

/// One direction: `slots` frames of `max_frame` bytes.
struct Ring {
    /// Next slot the producer will publish (monotonic counter).
    head: Padded,
    /// Next slot the consumer will read (monotonic counter).
    tail: Padded,
    slots: usize,
    max_frame: usize,
    data: Box<[UnsafeCell<u8>]>,
    lens: Box<[UnsafeCell<usize>]>,
}

// SAFETY: slot `i` is written only by the single producer while
// `head - tail < slots` says it is free, and read only by the single consumer
// after the producer's release store of `head` made it visible; the
// head/tail protocol below guarantees the two never touch the same slot at the
// same time. Each `MemIo` is either the producer or the consumer of a ring,
// never both, and `&mut self` on `MemIo` excludes concurrent use of one end.
unsafe impl Sync for Ring {}
// SAFETY: see above; the ring owns plain bytes.
unsafe impl Send for Ring {}

impl Ring {
    fn new(slots: usize, max_frame: usize) -> Ring {
        Ring {
            head: Padded(AtomicUsize::new(0)),
            tail: Padded(AtomicUsize::new(0)),
            slots,
            max_frame,
            data: (0..slots * max_frame).map(|_| UnsafeCell::new(0)).collect(),
            lens: (0..slots).map(|_| UnsafeCell::new(0)).collect(),
        }
    }

    /// Producer: writes one frame with `fill`; false when the ring is full.
    /// Returns `Some(len)` when published (0 = skipped, not published).
    fn push(&self, fill: impl FnOnce(&mut [u8]) -> usize) -> Option<usize> {
        let head = self.head.0.load(Ordering::Relaxed);
        let tail = self.tail.0.load(Ordering::Acquire);
        if head - tail >= self.slots {
            return None;
        }
        let i = head % self.slots;
        // SAFETY: slot `i` is free (head - tail < slots, and the acquire load
        // of `tail` orders the consumer's last read of it before us); only the
        // single producer writes it; the range is in bounds of `data`.
        let buf = unsafe { std::slice::from_raw_parts_mut(self.data[i * self.max_frame].get(), self.max_frame) };
        let len = fill(buf).min(self.max_frame);
        if len == 0 {
            return Some(0);
        }
        // SAFETY: same slot ownership argument as above.
        unsafe { *self.lens[i].get() = len };
        self.head.0.store(head + 1, Ordering::Release);
        Some(len)
    }

    /// Consumer: lends the oldest frame to `f`; false when empty.
    fn pop(&self, f: &mut dyn FnMut(&[u8])) -> Option<usize> {
        let tail = self.tail.0.load(Ordering::Relaxed);
        let head = self.head.0.load(Ordering::Acquire);
        if tail == head {
            return None;
        }
        let i = tail % self.slots;
        // SAFETY: slot `i` was published by the producer's release store of
        // `head`, which our acquire load observed; the producer will not touch
        // it until we advance `tail`. In bounds of `data`/`lens`.
        let len = unsafe { *self.lens[i].get() };
        // SAFETY: as above.
        let buf = unsafe { std::slice::from_raw_parts(self.data[i * self.max_frame].get() as *const u8, len) };
        f(buf);
        self.tail.0.store(tail + 1, Ordering::Release);
        Some(len)
    }
}

/// One end of an in-memory link made by [`pair`].
pub struct MemIo {
    tx: Arc<Ring>,
    rx: Arc<Ring>,
    stats: IoStats,
}

impl std::fmt::Debug for MemIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemIo").field("slots", &self.tx.slots).field("max_frame", &self.tx.max_frame).finish()
    }
}

/// Two connected in-memory ends: what one sends the other receives, in
/// order. `slots` frames of `max_frame` bytes are preallocated per direction
/// (both at least 1).
pub fn pair(slots: usize, max_frame: usize) -> (MemIo, MemIo) {
    let slots = slots.max(1);
    let max_frame = max_frame.max(1);
    let a = Arc::new(Ring::new(slots, max_frame));
    let b = Arc::new(Ring::new(slots, max_frame));
    (
        MemIo { tx: a.clone(), rx: b.clone(), stats: IoStats::default() },
        MemIo { tx: b, rx: a, stats: IoStats::default() },
    )
}

impl MemIo {
    fn peer_gone(&self) -> bool {
        Arc::strong_count(&self.rx) == 1
    }
}

impl PacketIo for MemIo {
    fn name(&self) -> &'static str {
        "mem"
    }

    fn max_frame(&self) -> usize {
        self.tx.max_frame
    }

    fn recv_batch(&mut self, max: usize, wait: Wait, on_frame: &mut dyn FnMut(&[u8])) -> Result<usize, PktError> {
        let deadline = match wait {
            Wait::Poll => None,
            Wait::Block(d) => Some(Instant::now() + d),
        };
        let mut spins = 0u32;
        loop {
            let mut n = 0;
            while n < max {
                match self.rx.pop(on_frame) {
                    Some(len) => {
                        n += 1;
                        self.stats.rx_frames += 1;
                        self.stats.rx_bytes += len as u64;
                    }
                    None => break,
                }
            }
            if n > 0 || max == 0 {
                return Ok(n);
            }
            if self.peer_gone() {
                return Err(PktError::Closed);
            }
            match deadline {
                None => return Ok(0),
                Some(d) if Instant::now() >= d => return Ok(0),
                Some(_) => {
                    spins += 1;
                    if spins < 200 {
                        std::hint::spin_loop();
                    } else if spins < 400 {
                        std::thread::yield_now();
                    } else {
                        std::thread::sleep(Duration::from_micros(20));
                    }
                }
            }
        }
    }

    fn send_batch(&mut self, count: usize, fill: &mut dyn FnMut(usize, &mut [u8]) -> usize) -> Result<usize, PktError> {
        if Arc::strong_count(&self.tx) == 1 {
            return Err(PktError::Closed);
        }
        let mut sent = 0;
        for i in 0..count {
            match self.tx.push(|buf| fill(i, buf)) {
                Some(0) => {}
                Some(len) => {
                    sent += 1;
                    self.stats.tx_frames += 1;
                    self.stats.tx_bytes += len as u64;
                }
                None => {
                    self.stats.tx_dropped += (count - i) as u64;
                    break;
                }
            }
        }
        Ok(sent)
    }

    fn stats(&self) -> IoStats {
        self.stats
    }

    fn detail(&self) -> serde_json::Value {
        serde_json::json!({ "slots": self.tx.slots, "max_frame": self.tx.max_frame })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_of_every_size_arrive_in_order_across_threads() {
        let (mut a, mut b) = pair(64, 1514);
        let t = std::thread::spawn(move || {
            let mut next = 1usize;
            while next <= 1514 {
                let n = a
                    .send_batch(8, &mut |i, buf| {
                        let len = next + i;
                        if len > 1514 {
                            return 0;
                        }
                        for (k, x) in buf[..len].iter_mut().enumerate() {
                            *x = (len + k) as u8;
                        }
                        len
                    })
                    .unwrap();
                next += n;
            }
            a
        });
        let mut expect = 1usize;
        while expect <= 1514 {
            b.recv_batch(64, Wait::Block(Duration::from_millis(100)), &mut |f| {
                assert_eq!(f.len(), expect);
                assert!(f.iter().enumerate().all(|(k, &x)| x == (expect + k) as u8));
                expect += 1;
            })
            .unwrap();
        }
        let a = t.join().unwrap();
        assert_eq!(a.stats().tx_frames, 1514);
        assert_eq!(b.stats().rx_frames, 1514);
    }

    #[test]
    fn full_ring_drops_and_closed_peer_is_reported() {
        let (mut a, mut b) = pair(4, 64);
        let n = a.send_batch(10, &mut |_, buf| {
            buf[0] = 1;
            1
        });
        assert_eq!(n.unwrap(), 4);
        assert_eq!(a.stats().tx_dropped, 6);
        assert_eq!(b.recv_batch(64, Wait::Poll, &mut |_| {}).unwrap(), 4);
        drop(a);
        assert!(matches!(b.recv_batch(1, Wait::Poll, &mut |_| {}), Err(PktError::Closed)));
        assert!(matches!(b.send_batch(1, &mut |_, _| 1), Err(PktError::Closed)));
    }
}
