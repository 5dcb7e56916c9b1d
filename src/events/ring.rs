//! The BPF ring buffer read in place, giving space back to the kernel once
//! per batch of records instead of once per record.
//!
//! aya's reader publishes the consumer position after every record. The
//! kernel's producer reads that position at every reserve, so under a flood
//! its cache line crossed between the producer's CPU and ours twice per
//! event. The layout read here is the kernel's ABI (kernel/bpf/ringbuf.c):
//! page 0 holds the consumer position (ours to write), page 1 the producer
//! position, and the data pages follow, mapped twice in a row so that a
//! record that wraps reads as one slice. Each record starts with an 8-byte
//! header: its length, with a busy bit (not committed yet) and a discard bit.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering, fence};

use aya::maps::MapData;

use crate::{Error, Result};

const BUSY: u32 = 1 << 31;
const DISCARD: u32 = 1 << 30;
const HDR: usize = 8;

/// Bytes consumed before the position is published mid-drain: the
/// producer gets space back while a long drain goes on.
const PUBLISH_EVERY: usize = 64 << 10;

struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize, prot: libc::c_int, offset: usize) -> std::io::Result<Mapping> {
        // SAFETY: a fresh shared mapping of the map's fd; the kernel checks
        // the length, protection and offset against the ring's layout.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd.as_raw_fd(), offset as libc::off_t)
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped, once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

pub struct Ring {
    map: MapData,
    consumer: Mapping,
    producer: Mapping,
    page: usize,
    mask: usize,
    /// Our position: records before it are read.
    pos: usize,
    /// The position the kernel was last told.
    published: usize,
}

// SAFETY: the mappings are owned by the Ring and only read or written
// through &mut self (the consumer position) or atomically.
unsafe impl Send for Ring {}

impl Ring {
    pub fn new(map: MapData) -> Result<Ring> {
        let info = map.info().map_err(|e| Error::bpf("ring buffer", e))?;
        if !matches!(info.map_type(), Ok(aya::maps::MapType::RingBuf)) {
            return Err(Error::InvalidInput(format!(
                "map {} is not a ring buffer",
                info.name_as_str().unwrap_or("(unnamed)")
            )));
        }
        let size = info.max_entries() as usize;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        if !size.is_power_of_two() || size < page {
            return Err(Error::InvalidInput(format!("ring buffer of {size} bytes: not a ring buffer's size")));
        }
        let fd = map.fd().as_fd();
        let mmap_err = |e| Error::io("mmap", "ring buffer", e);
        let consumer = Mapping::new(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0).map_err(mmap_err)?;
        let producer = Mapping::new(fd, page + 2 * size, libc::PROT_READ, page).map_err(mmap_err)?;
        // SAFETY: the consumer page starts with the kernel's consumer position.
        let pos = unsafe { &*(consumer.ptr as *const AtomicUsize) }.load(Ordering::Acquire);
        Ok(Ring { map, consumer, producer, page, mask: size - 1, pos, published: pos })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.map.fd().as_fd()
    }

    fn producer_pos(&self) -> usize {
        // SAFETY: the producer page starts with the kernel's producer position,
        // written with release after the records before it.
        unsafe { &*(self.producer.ptr as *const AtomicUsize) }.load(Ordering::Acquire)
    }

    fn header(&self) -> u32 {
        let off = self.page + (self.pos & self.mask);
        // SAFETY: off is inside the first copy of the data pages; the header
        // is 8-byte aligned (records are).
        unsafe { &*((self.producer.ptr as *const u8).add(off) as *const AtomicU32) }.load(Ordering::Acquire)
    }

    fn publish(&mut self) {
        if self.published != self.pos {
            // SAFETY: the consumer page is ours to write; release: the kernel
            // may reuse the space once it reads this.
            unsafe { &*(self.consumer.ptr as *const AtomicUsize) }.store(self.pos, Ordering::Release);
            self.published = self.pos;
        }
    }

    /// Hands up to `max` committed records to `f`; returns how many.
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        let mut end = self.producer_pos();
        while n < max {
            if self.pos == end {
                // Caught up: tell the kernel, then look again. The fence makes
                // sure that either we see a record committed meanwhile or its
                // producer sees our position and wakes us.
                self.publish();
                fence(Ordering::SeqCst);
                end = self.producer_pos();
                if self.pos == end {
                    break;
                }
            }
            let mut h = self.header();
            if h & BUSY != 0 {
                self.publish();
                fence(Ordering::SeqCst);
                h = self.header();
                if h & BUSY != 0 {
                    // Its commit wakes us: our position is this record's.
                    break;
                }
            }
            let len = (h & !(BUSY | DISCARD)) as usize;
            if len > self.mask + 1 - HDR {
                // Not a record the kernel could have written: stop rather than read past.
                break;
            }
            if h & DISCARD == 0 {
                let off = self.page + (self.pos & self.mask) + HDR;
                // SAFETY: the data pages are mapped twice in a row, so
                // off..off+len (len below the ring's size) is mapped; the
                // committed record is not written again before we publish.
                let rec = unsafe { std::slice::from_raw_parts((self.producer.ptr as *const u8).add(off), len) };
                f(rec);
                n += 1;
            }
            self.pos += (HDR + len).next_multiple_of(8);
            if self.pos - self.published >= PUBLISH_EVERY {
                self.publish();
            }
        }
        self.publish();
        n
    }
}
