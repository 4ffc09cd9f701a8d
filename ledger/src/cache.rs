//! The tail cache: the bytes most recently written to segments, kept in
//! memory in *slabs* that also serve as the source of the (direct) writes.
//!
//! Why by hand: this is the storage engine's core. Segments are written with
//! `O_DIRECT` (see `backend.rs`), so the page cache no longer holds the tail
//! and consumers that keep up must be served from here. One budget
//! (`managedLedgerCacheSizeMB`) bounds the memory of every segment's slabs;
//! the oldest slab anywhere is evicted first, and its memory is reused rather
//! than returned to the allocator: on a virtual machine a page the guest has
//! never touched costs several times a memcpy the first time it is written,
//! which is what made page-cache writes slow (see docs/benchmarks.md).
//!
//! Slabs are aligned to [`BLOCK`] and mirror a block-aligned file range, so a
//! write is issued straight from the slab that caches it.

use std::{
    alloc::Layout,
    collections::VecDeque,
    ptr::NonNull,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, Weak,
    },
};

use bytes::Bytes;

/// Alignment of direct I/O: offsets, lengths and memory (4 KiB covers every
/// logical block size Linux devices use).
pub(crate) const BLOCK: usize = 4096;

/// The two slab sizes: a segment's first slab is small, and once it has
/// filled one its slabs are large, so an idle partition holds little and a
/// busy one writes large slabs. Two sizes (not a range) so that memory
/// freed by one segment fits the next.
const MIN_SLAB: usize = 1 << 20;
const MAX_SLAB: usize = 8 << 20;

pub(crate) fn align_down(x: u64) -> u64 {
    x & !(BLOCK as u64 - 1)
}

pub(crate) fn align_up(x: u64) -> u64 {
    align_down(x + BLOCK as u64 - 1)
}

/// Memory aligned to [`BLOCK`].
pub(crate) struct AlignedMem {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: plain memory; who may write where is enforced by `Slab`.
unsafe impl Send for AlignedMem {}
unsafe impl Sync for AlignedMem {}

impl AlignedMem {
    /// `len` bytes (`len` a positive multiple of [`BLOCK`]). Not zeroed:
    /// each user writes before it reads.
    ///
    /// A slab-sized block ([`MIN_SLAB`] or more) is mapped for itself and
    /// unmapped when dropped, not taken from the allocator: slabs are
    /// megabytes, allocated and freed on different threads, and glibc kept
    /// freed chunks of that size in its per-thread arenas, so with a small
    /// cache budget the broker's memory grew with every byte written
    /// (about 7 MB per 10 MB produced, with no bound in the runs measured).
    /// Smaller blocks (a direct read's buffer) come from the allocator,
    /// where they are cheap.
    pub(crate) fn new(len: usize) -> Self {
        let len = len.max(BLOCK);
        if len < MIN_SLAB {
            let layout = Self::layout(len);
            // SAFETY: the layout has a non-zero size. The memory is only read
            // where it was written first: slab bytes below `filled`, the
            // padding the writer zeroes, what a pread filled.
            let ptr = unsafe { std::alloc::alloc(layout) };
            let Some(ptr) = NonNull::new(ptr) else { std::alloc::handle_alloc_error(layout) };
            return Self { ptr, len };
        }
        // SAFETY: an anonymous private mapping of a non-zero length, checked
        // before use; mappings are page-aligned, which covers BLOCK.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        match NonNull::new(ptr.cast::<u8>()).filter(|_| ptr != libc::MAP_FAILED) {
            Some(ptr) => Self { ptr, len },
            None => std::alloc::handle_alloc_error(Self::layout(len)),
        }
    }

    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len.max(BLOCK), BLOCK).expect("slab sizes are far below isize::MAX")
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The whole memory, for a caller that owns it exclusively.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `&mut self` proves nobody else sees this memory.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: only called where no writer can run (exclusive owners).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedMem {
    fn drop(&mut self) {
        if self.len < MIN_SLAB {
            // SAFETY: allocated in `new` with this layout.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.len)) }
        } else {
            // SAFETY: mapped in `new` with this length, and unmapped once.
            unsafe {
                libc::munmap(self.ptr.as_ptr().cast(), self.len);
            }
        }
    }
}

/// Memory mirroring the file range `[base, base + filled)`.
///
/// The segment's single writer appends past `filled` through a raw pointer
/// and then advances `filled`; readers only ever see bytes below `filled`,
/// which are never written again. That split is what makes sharing the
/// memory with readers sound.
pub(crate) struct Slab {
    mem: AlignedMem,
    base: u64,
    /// Where the bytes this process wrote begin: the prefix before it was
    /// read back (from another slab or the disk).
    written_from: u64,
    filled: AtomicUsize,
}

impl Slab {
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    pub(crate) fn end(&self) -> u64 {
        self.base + self.filled.load(Ordering::Acquire) as u64
    }

    pub(crate) fn capacity(&self) -> usize {
        self.mem.len
    }

    /// Copies `parts`, one after the other, from `at` and zeroes the rest up
    /// to `to`, all at or past `filled` (checked): readers never see those
    /// bytes.
    ///
    /// # Safety
    /// Only the segment's single writer calls this.
    pub(crate) unsafe fn write_tail(&self, at: usize, parts: &[&[u8]], to: usize) {
        let end = at + parts.iter().map(|p| p.len()).sum::<usize>();
        let filled = self.filled.load(Ordering::Acquire);
        assert!(
            at >= filled && end <= to && to <= self.mem.len,
            "slab write out of place: at {at}, filled {filled}, end {end}, to {to}, size {}, base {}",
            self.mem.len,
            self.base
        );
        // SAFETY: in bounds (asserted); no reader sees bytes past `filled`
        // and the caller is the only writer.
        unsafe {
            let dst = self.mem.ptr.as_ptr();
            let mut at = at;
            for part in parts {
                std::ptr::copy_nonoverlapping(part.as_ptr(), dst.add(at), part.len());
                at += part.len();
            }
            std::ptr::write_bytes(dst.add(end), 0, to - end);
        }
    }

    /// The bytes `[from, to)` for writing to disk; `to` may pass `filled`
    /// (the zero padding the writer just prepared).
    ///
    /// # Safety
    /// Only the writer calls this, between preparing the bytes and advancing
    /// `filled`, so nothing mutates them meanwhile.
    pub(crate) unsafe fn bytes(&self, from: usize, to: usize) -> &[u8] {
        assert!(from <= to && to <= self.mem.len);
        // SAFETY: in bounds; see above.
        unsafe { std::slice::from_raw_parts(self.mem.ptr.as_ptr().add(from), to - from) }
    }

    /// Publishes bytes up to `filled` (file position `base + filled`) to readers.
    pub(crate) fn advance(&self, filled: usize) {
        self.filled.store(filled, Ordering::Release);
    }

    /// `[pos, pos + len)` without copying, if this slab holds all of it.
    fn view(self: &Arc<Self>, pos: u64, len: usize) -> Option<Bytes> {
        let end = pos.checked_add(len as u64)?;
        if pos < self.base || end > self.end() {
            return None;
        }
        let start = (pos - self.base) as usize;
        Some(Bytes::from_owner(SlabView { slab: Arc::clone(self), start, end: start + len }))
    }
}

/// Keeps a slab alive while a `Bytes` of it exists.
struct SlabView {
    slab: Arc<Slab>,
    start: usize,
    end: usize,
}

impl AsRef<[u8]> for SlabView {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `end` was at or below `filled` when the view was made, and
        // bytes below `filled` are never written again.
        unsafe { std::slice::from_raw_parts(self.slab.mem.ptr.as_ptr().add(self.start), self.end - self.start) }
    }
}

/// The memory budget shared by every segment of a broker.
pub struct CachePool {
    budget: usize,
    inner: Mutex<PoolInner>,
    /// Bytes currently in slabs of segment caches (for tests and metrics).
    cached: AtomicUsize,
}

#[derive(Default)]
struct PoolInner {
    /// Memory the pool owns: cached slabs and free memory.
    allocated: usize,
    /// Free memory (`MIN_SLAB`, or multiples of `MAX_SLAB`), in no order.
    free: Vec<AlignedMem>,
    /// Every cached slab, oldest first.
    order: VecDeque<(Weak<SegmentCache>, u64)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl std::fmt::Debug for CachePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachePool").field("budget", &self.budget).field("cached", &self.cached_bytes()).finish()
    }
}

impl CachePool {
    /// A pool of at most `budget` bytes (0: nothing is cached; writes then
    /// go through one slab per segment at a time).
    pub fn new(budget: usize) -> Arc<Self> {
        Arc::new(Self { budget, inner: Mutex::new(PoolInner::default()), cached: AtomicUsize::new(0) })
    }

    /// The configured budget.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Bytes held in segment caches now.
    pub fn cached_bytes(&self) -> usize {
        self.cached.load(Ordering::Relaxed)
    }

    /// Memory for a slab of exactly `size` bytes: reused if some is free,
    /// new while under budget, else taken from the oldest cached slab.
    fn take(&self, size: usize) -> AlignedMem {
        loop {
            let mut p = lock(&self.inner);
            // The smallest free memory that is large enough.
            let fit = p.free.iter().enumerate().filter(|(_, m)| m.len() >= size).min_by_key(|(_, m)| m.len());
            if let Some(i) = fit.map(|(i, _)| i) {
                return p.free.swap_remove(i);
            }
            if p.allocated + size <= self.budget {
                p.allocated += size;
                drop(p);
                return AlignedMem::new(size);
            }
            // Over budget: give back free memory of other sizes first.
            if let Some(m) = p.free.pop() {
                p.allocated -= m.len();
                continue;
            }
            let Some((segment, base)) = p.order.pop_front() else {
                // Nothing cached to evict (one slab larger than the budget):
                // allocate outside the budget; it is freed when done.
                p.allocated += size;
                drop(p);
                return AlignedMem::new(size);
            };
            drop(p);
            if let Some(segment) = segment.upgrade() {
                if let Some(slab) = segment.remove(base) {
                    self.give_back(slab);
                }
            }
        }
    }

    /// Returns an evicted slab's memory to the free list, unless readers
    /// still hold it: then it is freed when they are done, outside the budget.
    fn give_back(&self, slab: Arc<Slab>) {
        let len = slab.capacity();
        self.cached.fetch_sub(len, Ordering::Relaxed);
        let mut p = lock(&self.inner);
        match Arc::try_unwrap(slab) {
            Ok(slab) => p.free.push(slab.mem),
            Err(_) => p.allocated -= len,
        }
    }
}

/// One segment's slabs, oldest first; the last is the one being written.
pub(crate) struct SegmentCache {
    pool: Arc<CachePool>,
    slabs: Mutex<VecDeque<Arc<Slab>>>,
    /// The segment has filled a slab: its next ones are `MAX_SLAB`.
    busy: AtomicBool,
}

impl SegmentCache {
    pub(crate) fn new(pool: &Arc<CachePool>) -> Arc<Self> {
        Arc::new(Self { pool: Arc::clone(pool), slabs: Mutex::new(VecDeque::new()), busy: AtomicBool::new(false) })
    }

    /// `[pos, pos + need)` and up to `want` bytes from `pos`, from the one
    /// slab holding the first `need`.
    /// With the bytes, whether this process wrote all of them (none is
    /// part of a prefix read back from the disk).
    pub(crate) fn read(&self, pos: u64, need: usize, want: usize) -> Option<(Bytes, bool)> {
        let slabs = lock(&self.slabs);
        let slab = slabs.iter().rev().find(|s| s.base() <= pos && pos + need as u64 <= s.end())?;
        let len = (slab.end() - pos).min(want as u64) as usize;
        slab.view(pos, len).map(|bytes| (bytes, pos >= slab.written_from))
    }

    /// The slab being written, if it ends exactly at `pos` and has room for
    /// `len` more bytes (plus the padding to the next block).
    pub(crate) fn current(&self, pos: u64, len: usize) -> Option<Arc<Slab>> {
        let slabs = lock(&self.slabs);
        let slab = slabs.back()?;
        let fits = slab.end() == pos && align_up(pos + len as u64) - slab.base() <= slab.capacity() as u64;
        fits.then(|| Arc::clone(slab))
    }

    /// A new slab starting at the block of `pos`, holding `prefix` (the bytes
    /// of that block before `pos`) and room for `len` more bytes; it becomes
    /// the one being written.
    /// `prefix_written_here`: the prefix is bytes this process wrote (copied
    /// from the previous slab), not read back from the disk.
    pub(crate) fn start(self: &Arc<Self>, pos: u64, prefix: &[u8], prefix_written_here: bool, len: usize) -> Arc<Slab> {
        let base = align_down(pos);
        debug_assert_eq!(prefix.len() as u64, pos - base);
        let need = align_up((pos - base) + len as u64) as usize;
        if lock(&self.slabs).back().is_some_and(|s| s.end() == pos) {
            // The previous slab filled up.
            self.busy.store(true, Ordering::Relaxed);
        }
        let size = if self.busy.load(Ordering::Relaxed) { MAX_SLAB } else { MIN_SLAB };
        let size = if need > size { need.next_multiple_of(MAX_SLAB) } else { size };
        let mut mem = self.pool.take(size);
        let size = mem.len();
        mem.as_mut_slice()[..prefix.len()].copy_from_slice(prefix);
        // Only the prefix and what the writer copies are read back: stale
        // bytes past them are overwritten or zeroed before any write.
        let written_from = if prefix_written_here { base } else { pos };
        let slab = Arc::new(Slab { mem, base, written_from, filled: AtomicUsize::new(prefix.len()) });
        self.pool.cached.fetch_add(size, Ordering::Relaxed);
        lock(&self.slabs).push_back(Arc::clone(&slab));
        let mut p = lock(&self.pool.inner);
        p.order.push_back((Arc::downgrade(self), base));
        // Entries of slabs that left without eviction (deleted segments,
        // truncation) are dropped now and then, so the list stays bounded.
        if p.order.len() > 64 + 2 * (p.allocated / MIN_SLAB) {
            p.order.retain(|(segment, _)| segment.strong_count() > 0);
        }
        drop(p);
        slab
    }

    /// Drops every slab at or past `pos`'s block (the writer goes back, e.g.
    /// after recovery cut a torn tail): their bytes may be rewritten.
    pub(crate) fn truncate(&self, pos: u64) {
        let removed: Vec<_> = {
            let mut slabs = lock(&self.slabs);
            let keep = slabs.iter().take_while(|s| s.end() <= align_down(pos)).count();
            slabs.drain(keep..).collect()
        };
        for slab in removed {
            self.pool.give_back(slab);
        }
    }

    /// Removes the slab starting at `base` (eviction).
    fn remove(&self, base: u64) -> Option<Arc<Slab>> {
        let mut slabs = lock(&self.slabs);
        let i = slabs.iter().position(|s| s.base() == base)?;
        slabs.remove(i)
    }
}

impl Drop for SegmentCache {
    fn drop(&mut self) {
        let slabs: Vec<_> = lock(&self.slabs).drain(..).collect();
        for slab in slabs {
            self.pool.give_back(slab);
        }
    }
}
