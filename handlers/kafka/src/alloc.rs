//! The handler's allocator: the system's, except that a block of 1 GiB or
//! more is an anonymous mapping of its own, reserved without swap
//! accounting (`MAP_NORESERVE`), whose pages cost memory only once touched.
//!
//! Why: `kafka-protocol` sizes every array it decodes by the count the
//! client sent (`Vec::with_capacity(n)`) before it has read one element. A
//! 14-byte Metadata request claiming 2^31-1 topics asked for 154 GB; malloc
//! refused it (more than the machine's memory and swap), and Rust aborts the
//! process on a failed allocation: one unauthenticated request stopped the
//! broker. Reserved this way, the same request costs address space for the
//! few microseconds until the decode fails at the first missing element and
//! frees it, and the connection is closed as malformed. A legitimate block
//! this large (none on any path today: requests are bounded by
//! `kafkaMaxRequestBytes`, decompression by 256 MiB) behaves as any large
//! malloc does, which glibc also maps.
//!
//! Decodes run on the runtime's few worker threads and free such a block
//! before they return, so at most a handful are reserved at once, far from
//! the 128 TiB of address space.

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks at least this large are reserved lazily.
const LARGE: usize = 1 << 30;
/// The alignment an anonymous mapping has.
const PAGE: usize = 4096;

/// See the module documentation.
#[derive(Debug)]
pub struct Allocator;

fn large(layout: Layout) -> bool {
    layout.size() >= LARGE && layout.align() <= PAGE
}

/// A fresh mapping of `size` bytes (zeroed), or null.
fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping at an address the kernel picks;
    // no file, no existing memory is involved.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

// SAFETY: every block is either the system allocator's (small, or too
// strictly aligned) or a mapping of exactly `layout.size()` bytes, told apart
// by the layout, which Rust passes back unchanged to `dealloc` and `realloc`.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if large(layout) {
            map(layout.size())
        } else {
            // SAFETY: forwarded as received.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if large(layout) {
            map(layout.size()) // anonymous pages read as zero
        } else {
            // SAFETY: forwarded as received.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if large(layout) {
            // SAFETY: `ptr` is a mapping of `layout.size()` bytes made by `map`.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            // SAFETY: forwarded as received.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size`, rounded up to the
        // alignment, does not overflow (GlobalAlloc::realloc's contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !large(layout) && !large(new_layout) {
            // SAFETY: forwarded as received.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: a new block, the old one's bytes copied, the old one freed.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_reservation_costs_nothing_until_touched_and_small_blocks_are_the_systems() {
        // More than this machine's memory and swap: malloc would refuse it.
        let huge: Vec<u64> = Vec::with_capacity(20_000_000_000);
        assert!(huge.capacity() >= 20_000_000_000);
        drop(huge);
        let mut grown: Vec<u8> = Vec::with_capacity(16);
        grown.extend_from_slice(b"small");
        grown.reserve(LARGE); // crosses into a mapping, keeps the bytes
        assert_eq!(&grown[..], b"small");
        grown.shrink_to_fit(); // and back
        assert_eq!(&grown[..], b"small");
    }
}
