//! Where segment bytes live. The ledger talks to files only through
//! [`Backend`] and [`SegmentFile`], so that crash tests can run it on
//! [`MemBackend`], which can simulate a crash that loses or tears every write
//! since the last sync — the way redb tests its storage.

use std::{
    collections::HashMap,
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
};

use bytes::Bytes;
use memmap2::{Mmap, MmapOptions};

/// A segment file: fixed capacity, written at the tail, read anywhere.
pub trait SegmentFile: Send + Sync {
    /// Writes `data` at `pos` (within capacity).
    fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()>;
    /// Makes every write so far durable (fdatasync).
    fn sync(&self) -> io::Result<()>;
    /// `len` bytes at `pos`, without copying where the backend allows (mmap).
    fn read(&self, pos: u64, len: usize) -> io::Result<Bytes>;
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

/// The real thing: files on disk, read through a shared memory map.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsBackend;

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
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
        // A sparse file: disk blocks are taken as data is written, so a full
        // disk surfaces as a write error on the append that needs the space.
        file.set_len(capacity)?;
        file.sync_all()?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(Arc::new(FsSegment::map(file)?))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn SegmentFile>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Arc::new(FsSegment::map(file)?))
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

/// A segment on disk. Writes go through `pwrite`; reads slice one read-only
/// shared mapping of the whole capacity, which the page cache keeps coherent
/// with the writes (Linux), so a read hands out bytes without copying them.
///
/// Pages a read touched stay mapped, and count in the process's resident
/// memory, until released: every [`RELEASE_EVERY`] bytes read, the mapping's
/// pages are dropped from the page tables (`MADV_DONTNEED`). For a shared
/// file mapping that frees no data: a later access maps the page again from
/// the page cache. Resident memory so stays bounded whatever is read.
struct FsSegment {
    file: File,
    map: Arc<Mmap>,
    capacity: u64,
    read_since_release: std::sync::atomic::AtomicU64,
}

/// Bytes read from one segment between two releases of its mapped pages.
const RELEASE_EVERY: u64 = 64 << 20;

impl FsSegment {
    fn map(file: File) -> io::Result<Self> {
        let capacity = file.metadata()?.len();
        // SAFETY: the mapping is read-only and the file is only ever written at
        // positions past what readers are allowed to see (the ledger publishes
        // an entry's bytes only after they are written). `zero_tail` shrinks
        // the file for an instant, during recovery, before any reader exists,
        // and only past the data; it restores the length at once.
        let map = unsafe { MmapOptions::new().len(usize::try_from(capacity).unwrap_or(usize::MAX)).map(&file)? };
        Ok(Self { file, map: Arc::new(map), capacity, read_since_release: std::sync::atomic::AtomicU64::new(0) })
    }

    fn account(&self, len: usize) {
        use std::sync::atomic::Ordering;
        let total = self.read_since_release.fetch_add(len as u64, Ordering::Relaxed) + len as u64;
        if total >= RELEASE_EVERY && self.read_since_release.swap(0, Ordering::Relaxed) >= RELEASE_EVERY {
            // SAFETY: DONTNEED on a shared, file-backed mapping only drops page
            // table entries; readers still holding slices fault the same
            // bytes back in from the page cache.
            let _ = unsafe { self.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, 0, self.map.len()) };
        }
    }
}

/// Keeps the mapping alive for as long as any `Bytes` slice of it exists.
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

fn out_of_bounds(pos: u64, len: usize, capacity: u64) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("range {pos}+{len} is past the segment's capacity {capacity}"))
}

impl SegmentFile for FsSegment {
    fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()> {
        if pos + data.len() as u64 > self.capacity {
            return Err(out_of_bounds(pos, data.len(), self.capacity));
        }
        self.file.write_all_at(data, pos)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn read(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        let end = pos.checked_add(len as u64).filter(|end| *end <= self.capacity);
        let (Some(end), Ok(start)) = (end, usize::try_from(pos)) else {
            return Err(out_of_bounds(pos, len, self.capacity));
        };
        let end = usize::try_from(end).map_err(|_| out_of_bounds(pos, len, self.capacity))?;
        self.account(len);
        Ok(Bytes::from_owner(MapSlice { map: Arc::clone(&self.map), start, end }))
    }

    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn zero_tail(&self, from: u64) -> io::Result<()> {
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
