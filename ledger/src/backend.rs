//! Where segment bytes live. The ledger talks to files only through
//! [`Backend`] and [`SegmentFile`], so that crash tests can run it on
//! [`MemBackend`], which can simulate a crash that loses or tears every write
//! since the last sync — the way redb tests its storage.

use std::{
    collections::HashMap,
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::{FileExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
};

use bytes::Bytes;
use memmap2::{Mmap, MmapOptions};

use crate::cache::{align_down, align_up, AlignedMem, CachePool, SegmentCache, BLOCK};

/// A segment file: fixed capacity, written at the tail, read anywhere.
pub trait SegmentFile: Send + Sync {
    /// Writes `data` at `pos` (within capacity).
    fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()>;
    /// Writes `parts` one after the other from `pos`, as one write of their
    /// concatenation (a backend may save the copy that makes it).
    fn write_parts_at(&self, pos: u64, parts: &[&[u8]]) -> io::Result<()> {
        self.write_at(pos, &parts.concat())
    }
    /// Makes every write so far durable (fdatasync).
    fn sync(&self) -> io::Result<()>;
    /// `len` bytes at `pos`, without copying where the backend allows (mmap).
    fn read(&self, pos: u64, len: usize) -> io::Result<Bytes>;
    /// At least `need` and at most `want` bytes at `pos`: a backend may
    /// return fewer than `want` when that saves a copy (the end of a cached
    /// slab).
    fn read_some(&self, pos: u64, need: usize, want: usize) -> io::Result<Bytes> {
        self.read(pos, want.max(need))
    }
    /// [`read_some`](Self::read_some), and whether the bytes are ones this
    /// process wrote and still holds in memory (the tail cache): they never
    /// went through the disk, so readers need not check their payload CRCs.
    fn read_window(&self, pos: u64, need: usize, want: usize) -> io::Result<(Bytes, bool)> {
        Ok((self.read_some(pos, need, want)?, false))
    }
    /// [`read_window`](Self::read_window) if the bytes are in memory this
    /// process holds (the tail cache): no I/O, no page fault. `None` when
    /// reading them could block.
    fn read_cached(&self, _pos: u64, _need: usize, _want: usize) -> Option<(Bytes, bool)> {
        None
    }
    /// The file's size, fixed at creation.
    fn capacity(&self) -> u64;
    /// Discards everything from `from` on (it reads as zeros afterwards).
    fn zero_tail(&self, from: u64) -> io::Result<()>;
}

/// Files and directories.
pub trait Backend: Send + Sync + 'static {
    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The files directly in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// Creates a new segment file of `capacity` bytes, all zero, durably.
    fn create(&self, path: &Path, capacity: u64) -> io::Result<Arc<dyn SegmentFile>>;
    /// Opens an existing segment file.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn SegmentFile>>;
    /// Replaces `path` with `data` atomically and durably (temp file, fsync, rename).
    fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    /// Reads a whole small file.
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
}

/// The real thing: files on disk, written with `O_DIRECT` from the tail
/// cache's slabs, read from the cache or through a shared memory map.
///
/// Why direct writes: a buffered write copies into page-cache pages the
/// kernel has to find, and on a fresh virtual machine those pages cost the
/// guest a first touch each (several times a memcpy); writeback and dirty
/// page throttling then run on the broker's CPU. Direct writes go from
/// memory the cache reuses, and the fsync that follows has little left to
/// do. Filesystems without `O_DIRECT` (tmpfs) get buffered writes instead,
/// through the same slabs.
#[derive(Debug, Clone)]
pub struct FsBackend {
    pool: Arc<CachePool>,
    direct_io: bool,
}

impl Default for FsBackend {
    /// Direct I/O and a 256 MiB tail cache.
    fn default() -> Self {
        Self::new(CachePool::new(256 << 20), true)
    }
}

impl FsBackend {
    /// A backend whose segments share `pool`; `direct_io` false writes
    /// through the page cache.
    pub fn new(pool: Arc<CachePool>, direct_io: bool) -> Self {
        Self { pool, direct_io }
    }

    /// Opens a segment file, with `O_DIRECT` when asked and the filesystem
    /// and the file's size allow it.
    /// `create` is the capacity of a new file.
    fn open_segment(&self, path: &Path, create: Option<u64>) -> io::Result<FsSegment> {
        let open = |direct: bool| {
            let mut options = OpenOptions::new();
            options.read(true).write(true).create_new(create.is_some());
            if direct {
                options.custom_flags(libc::O_DIRECT);
            }
            if let Some(capacity) = create {
                let file = options.open(path)?;
                // A sparse file: disk blocks are taken as data is written, so a full
                // disk surfaces as a write error on the append that needs the space.
                file.set_len(capacity)?;
                file.sync_all()?;
                return Ok(file);
            }
            options.open(path)
        };
        if self.direct_io {
            match open(true) {
                Ok(file) => {
                    // A file whose size is not a whole number of blocks
                    // (written by an older build) cannot take a direct
                    // write of its last block without growing.
                    if file.metadata()?.len() % BLOCK as u64 == 0 {
                        return FsSegment::map(file, true, &self.pool, create.is_some());
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    static WARNED: std::sync::Once = std::sync::Once::new();
                    WARNED.call_once(|| {
                        tracing::warn!(path = %path.display(), "the filesystem refuses O_DIRECT: segments are written through the page cache");
                    });
                    if create.is_some() {
                        // The failed open may have created the file.
                        let _ = fs::remove_file(path);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        FsSegment::map(open(false)?, false, &self.pool, create.is_some())
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Backend for FsBackend {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                out.push(entry.path());
            }
        }
        Ok(out)
    }

    fn create(&self, path: &Path, capacity: u64) -> io::Result<Arc<dyn SegmentFile>> {
        // Whole blocks, so that direct writes never grow it.
        let segment = self.open_segment(path, Some(align_up(capacity)))?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(Arc::new(segment))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn SegmentFile>> {
        Ok(Arc::new(self.open_segment(path, None)?))
    }

    fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let tmp = path.with_extension("tmp");
        {
            let file = File::create(&tmp)?;
            file.write_all_at(data, 0)?;
            file.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        match path.parent() {
            Some(dir) => sync_dir(dir),
            None => Ok(()),
        }
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)?;
        // Make the removal durable, so a deleted segment cannot come back.
        match path.parent() {
            Some(dir) => sync_dir(dir),
            None => Ok(()),
        }
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir_all(dir)
    }
}

/// A segment on disk. Appends are copied into the tail cache's current slab
/// and written from it (whole blocks: the last partial block is written
/// again by the next append). Reads come from the cache when it holds them,
/// else from one read-only shared mapping of the whole capacity — but only
/// for bytes before the tail's block, which are never written again: a
/// direct write into a block the page cache holds would have the kernel
/// invalidate it under the readers. Bytes in the tail's block that the cache
/// no longer holds are read with a direct `pread`.
///
/// Pages a mapped read touched stay mapped, and count in the process's
/// resident memory, until released: every [`RELEASE_EVERY`] bytes read, the
/// mapping's pages are dropped from the page tables (`MADV_DONTNEED`). For a
/// shared file mapping that frees no data: a later access maps the page
/// again from the page cache. Resident memory so stays bounded whatever is read.
struct FsSegment {
    file: File,
    direct: bool,
    map: Arc<Mmap>,
    capacity: u64,
    read_since_release: AtomicU64,
    cache: Arc<SegmentCache>,
    /// Where the last write ended (unknown after an open or a failed write).
    tail: Mutex<Option<u64>>,
    /// Bytes before this position are never written again (mapped reads
    /// are safe below it). Unknown after an open until the first write.
    stable: AtomicU64,
}

/// Bytes read from one segment between two releases of its mapped pages.
const RELEASE_EVERY: u64 = 64 << 20;

impl FsSegment {
    fn map(file: File, direct: bool, pool: &Arc<CachePool>, created: bool) -> io::Result<Self> {
        let capacity = file.metadata()?.len();
        // SAFETY: the mapping is read-only and only read below `stable`,
        // which nothing writes again. `zero_tail` shrinks the file for an
        // instant, during recovery, before any reader exists, and only past
        // the data; it restores the length at once.
        let map = unsafe { MmapOptions::new().len(usize::try_from(capacity).unwrap_or(usize::MAX)).map(&file)? };
        Ok(Self {
            file,
            direct,
            map: Arc::new(map),
            capacity,
            read_since_release: AtomicU64::new(0),
            cache: SegmentCache::new(pool),
            tail: Mutex::new(created.then_some(0)),
            stable: AtomicU64::new(if created { 0 } else { u64::MAX }),
        })
    }

    fn account(&self, len: usize) {
        let total = self.read_since_release.fetch_add(len as u64, Ordering::Relaxed) + len as u64;
        if total >= RELEASE_EVERY && self.read_since_release.swap(0, Ordering::Relaxed) >= RELEASE_EVERY {
            // SAFETY: DONTNEED on a shared, file-backed mapping only drops page
            // table entries; readers still holding slices fault the same
            // bytes back in from the page cache.
            let _ = unsafe { self.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, 0, self.map.len()) };
        }
    }

    /// `[pos, pos + len)` read from the file into new block-aligned memory
    /// (what a direct read needs).
    fn pread(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        let (from, to) = (align_down(pos), align_up(pos + len as u64).min(self.capacity));
        let mut mem = AlignedMem::new((to - from) as usize);
        let buf = &mut mem.as_mut_slice()[..(to - from) as usize];
        self.file.read_exact_at(buf, from)?;
        let start = (pos - from) as usize;
        Ok(Bytes::from_owner(MemSlice { mem, start, end: start + len }))
    }
}

/// Keeps a mapping alive for as long as any `Bytes` slice of it exists.
struct MapSlice {
    map: Arc<Mmap>,
    start: usize,
    end: usize,
}

impl AsRef<[u8]> for MapSlice {
    fn as_ref(&self) -> &[u8] {
        &self.map[self.start..self.end]
    }
}

/// Owns memory a direct read filled.
struct MemSlice {
    mem: AlignedMem,
    start: usize,
    end: usize,
}

impl AsRef<[u8]> for MemSlice {
    fn as_ref(&self) -> &[u8] {
        &self.mem.as_slice()[self.start..self.end]
    }
}

fn out_of_bounds(pos: u64, len: usize, capacity: u64) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("range {pos}+{len} is past the segment's capacity {capacity}"))
}

impl SegmentFile for FsSegment {
    fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()> {
        self.write_parts_at(pos, &[data])
    }

    fn write_parts_at(&self, pos: u64, parts: &[&[u8]]) -> io::Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let end = pos + len as u64;
        if end > self.capacity {
            return Err(out_of_bounds(pos, len, self.capacity));
        }
        let mut tail = self.tail.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let at_tail = *tail == Some(pos);
        // From here on the block of `pos` may change on disk.
        self.stable.fetch_min(align_down(pos), Ordering::AcqRel);
        let slab = match self.cache.current(pos, len).filter(|_| at_tail) {
            Some(slab) => slab,
            None => {
                if !at_tail {
                    // Not where the last write ended (the first write after
                    // an open, or a rewrite): cached bytes from the block of
                    // `pos` on may change.
                    self.cache.truncate(pos);
                }
                // What precedes `pos` in its block: from the cache, else
                // from the disk, which holds exactly those bytes (the write
                // that put them there succeeded).
                let (block, before) = (align_down(pos), (pos - align_down(pos)) as usize);
                let (prefix, written_here) = match self.cache.read(block, before, before) {
                    Some(window) => window,
                    None if before == 0 => (Bytes::new(), true),
                    None => (self.pread(block, before)?, false),
                };
                self.cache.start(pos, &prefix, written_here, len)
            }
        };
        let off = (pos - slab.base()) as usize;
        let filled = off + len;
        let written = if self.direct {
            // Whole blocks, from the start of the block of `pos`; the
            // padding is zeros, as the file is past the tail.
            let padded = (align_up(end) - slab.base()) as usize;
            // SAFETY: this is the segment's only writer (the tail lock is
            // held) and `off` is where the slab's readable bytes end.
            unsafe { slab.write_tail(off, parts, padded) };
            let from = (align_down(pos) - slab.base()) as usize;
            // SAFETY: as above; nothing changes these bytes until `advance`.
            let bytes = unsafe { slab.bytes(from, padded) };
            self.file.write_all_at(bytes, slab.base() + from as u64)
        } else {
            // SAFETY: as above.
            unsafe { slab.write_tail(off, parts, filled) };
            // The page cache takes any alignment: only the new bytes.
            // SAFETY: as above.
            self.file.write_all_at(unsafe { slab.bytes(off, filled) }, pos)
        };
        if let Err(e) = written {
            // What the disk holds of the tail's block is unknown now.
            *tail = None;
            return Err(e);
        }
        slab.advance(filled);
        *tail = Some(end);
        self.stable.store(align_down(end), Ordering::Release);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn read(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        self.read_some(pos, len, len)
    }

    fn read_some(&self, pos: u64, need: usize, want: usize) -> io::Result<Bytes> {
        self.read_window(pos, need, want).map(|(bytes, _)| bytes)
    }

    fn read_window(&self, pos: u64, need: usize, want: usize) -> io::Result<(Bytes, bool)> {
        let want = want.max(need);
        let end = pos.checked_add(want as u64).filter(|end| *end <= self.capacity);
        let (Some(end), Ok(start)) = (end, usize::try_from(pos)) else {
            return Err(out_of_bounds(pos, want, self.capacity));
        };
        if let Some(window) = self.cache.read(pos, need, want) {
            return Ok(window);
        }
        // Tests make disk reads slow here (FAILPOINTS="ledger::disk_read=sleep(1500)").
        #[cfg(feature = "failpoints")]
        fail::fail_point!("ledger::disk_read");
        let mut end = end;
        let stable = self.stable.load(Ordering::Acquire);
        if self.direct && end > stable {
            if pos + need as u64 > stable {
                return Ok((self.pread(pos, want)?, false));
            }
            // The mapped part is enough: a shorter window, not a copy.
            end = stable;
        }
        let end = usize::try_from(end).map_err(|_| out_of_bounds(pos, want, self.capacity))?;
        self.account(end - start);
        Ok((Bytes::from_owner(MapSlice { map: Arc::clone(&self.map), start, end }), false))
    }

    fn read_cached(&self, pos: u64, need: usize, want: usize) -> Option<(Bytes, bool)> {
        let want = want.max(need);
        pos.checked_add(want as u64).filter(|end| *end <= self.capacity)?;
        self.cache.read(pos, need, want)
    }

    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn zero_tail(&self, from: u64) -> io::Result<()> {
        let mut tail = self.tail.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.stable.fetch_min(align_down(from), Ordering::AcqRel);
        self.cache.truncate(from);
        *tail = None;
        self.file.set_len(from)?;
        self.file.set_len(self.capacity)?;
        self.file.sync_all()
    }
}

/// An in-memory backend for crash tests. Each file keeps its durable image
/// (as of the last sync) and the writes since; [`MemBackend::crash`] returns
/// what a disk could hold after a power cut: the durable image plus some of
/// the later writes, the last of them possibly torn.
#[derive(Default, Clone)]
pub struct MemBackend {
    files: Arc<Mutex<HashMap<PathBuf, Arc<MemFile>>>>,
    full: Arc<AtomicBool>,
}

#[derive(Default)]
struct MemState {
    durable: Vec<u8>,
    current: Vec<u8>,
    pending: Vec<(u64, Vec<u8>)>,
}

struct MemFile {
    state: Mutex<MemState>,
    /// When set, writes fail as a full disk would (shared by the backend's files).
    full: Arc<AtomicBool>,
}

impl MemFile {
    fn new(image: Vec<u8>, full: &Arc<AtomicBool>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(MemState { durable: image.clone(), current: image, pending: Vec::new() }),
            full: Arc::clone(full),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later write to every file fail with "no space left on device" (or stop failing).
    pub fn set_disk_full(&self, full: bool) {
        self.full.store(full, Ordering::SeqCst);
    }

    /// The files after a simulated crash. For each file, `keep(file_index,
    /// pending_writes)` says how many of the writes since the last sync
    /// survive and how many bytes of the last survivor were written.
    pub fn crash(&self, mut keep: impl FnMut(usize, &[(u64, Vec<u8>)]) -> (usize, Option<usize>)) -> MemBackend {
        let files = lock(&self.files);
        let mut paths: Vec<&PathBuf> = files.keys().collect();
        paths.sort();
        let mut out = HashMap::new();
        for (i, path) in paths.into_iter().enumerate() {
            let state = lock(&files[path].state);
            let mut image = state.durable.clone();
            let image_len = image.len();
            let (n, torn) = keep(i, &state.pending);
            for (k, (pos, data)) in state.pending.iter().take(n).enumerate() {
                let len = if k + 1 == n { torn.unwrap_or(data.len()).min(data.len()) } else { data.len() };
                let pos = *pos as usize;
                if pos + len <= image_len {
                    image[pos..pos + len].copy_from_slice(&data[..len]);
                }
            }
            out.insert(path.clone(), image);
        }
        let full = Arc::new(AtomicBool::new(false));
        let files = out.into_iter().map(|(path, image)| (path, MemFile::new(image, &full))).collect();
        MemBackend { files: Arc::new(Mutex::new(files)), full }
    }

    /// Flips one byte of a file (durably), to simulate corruption.
    pub fn corrupt(&self, path: &Path, pos: u64) {
        if let Some(file) = lock(&self.files).get(path) {
            let mut state = lock(&file.state);
            let pos = pos as usize;
            state.durable[pos] ^= 0xff;
            state.current[pos] ^= 0xff;
        }
    }

    fn file(&self, path: &Path) -> io::Result<Arc<MemFile>> {
        lock(&self.files)
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, path.display().to_string()))
    }
}

impl SegmentFile for MemFile {
    fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        let mut state = lock(&self.state);
        let start = pos as usize;
        let end = start + data.len();
        if end > state.current.len() {
            return Err(out_of_bounds(pos, data.len(), state.current.len() as u64));
        }
        state.current[start..end].copy_from_slice(data);
        state.pending.push((pos, data.to_vec()));
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut state = lock(&self.state);
        state.durable = state.current.clone();
        state.pending.clear();
        Ok(())
    }

    fn read(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        let state = lock(&self.state);
        let start = pos as usize;
        match state.current.get(start..start + len) {
            Some(slice) => Ok(Bytes::copy_from_slice(slice)),
            None => Err(out_of_bounds(pos, len, state.current.len() as u64)),
        }
    }

    fn capacity(&self) -> u64 {
        lock(&self.state).current.len() as u64
    }

    fn zero_tail(&self, from: u64) -> io::Result<()> {
        let mut state = lock(&self.state);
        let from = from as usize;
        state.current[from..].fill(0);
        state.durable = state.current.clone();
        state.pending.clear();
        Ok(())
    }
}

impl Backend for MemBackend {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        Ok(lock(&self.files).keys().filter(|p| p.parent() == Some(dir)).cloned().collect())
    }

    fn create(&self, path: &Path, capacity: u64) -> io::Result<Arc<dyn SegmentFile>> {
        let mut files = lock(&self.files);
        if files.contains_key(path) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, path.display().to_string()));
        }
        if self.full.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(28));
        }
        let file = MemFile::new(vec![0; capacity as usize], &self.full);
        files.insert(path.to_owned(), Arc::clone(&file));
        Ok(file)
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn SegmentFile>> {
        Ok(self.file(path)?)
    }

    fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(28));
        }
        let file = MemFile::new(data.to_vec(), &self.full);
        lock(&self.files).insert(path.to_owned(), file);
        Ok(())
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        Ok(lock(&self.file(path)?.state).current.clone())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        lock(&self.files)
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, path.display().to_string()))
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        lock(&self.files).retain(|p, _| !p.starts_with(dir));
        Ok(())
    }
}
