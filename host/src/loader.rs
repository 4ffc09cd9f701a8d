//! Discovers handler libraries in `protocolHandlerDirectory`, loads them with
//! abi_stable's layout and version checks, and selects the requested protocols.
//!
//! Failures are collected per library and summarised in a line or two: the
//! full abi_stable layout report runs to hundreds of lines and goes to the
//! debug log only.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use abi_stable::library::{lib_header_from_path, LibraryError, RootModule};
use polyport_handler_api::{
    ffi::{FfiHandlerBox, HandlerModuleRef},
    HandlerError,
};

/// Why one library could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// dlopen refused the file.
    #[error("not a loadable library: {0}")]
    NotALibrary(String),
    /// A shared library, but it exports no Polyport root module.
    #[error("not a Polyport protocol handler (no root module symbol): {0}")]
    NotAHandler(String),
    /// Built against an incompatible version of handler-api.
    #[error("incompatible handler-api: the broker expects {expected}, the library was built with {found}")]
    IncompatibleVersion {
        /// The version the host was built with.
        expected: String,
        /// The version the library was built with.
        found: String,
    },
    /// Same version, different type layouts (e.g. a modified handler-api).
    #[error("incompatible ABI (type layouts differ from the broker's handler-api {expected}): {summary}")]
    AbiMismatch {
        /// The host's handler-api version.
        expected: String,
        /// The first lines of abi_stable's report.
        summary: String,
    },
    /// Any other abi_stable error.
    #[error("{0}")]
    Other(String),
    /// The library's handler constructor failed.
    #[error("handler constructor failed: {0}")]
    Constructor(HandlerError),
}

/// A library whose handler was created.
pub struct LoadedLibrary {
    /// The library file.
    pub path: PathBuf,
    /// The protocol name the handler reports.
    pub protocol: String,
    /// The handler.
    pub handler: FfiHandlerBox,
}

impl fmt::Debug for LoadedLibrary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.protocol, file_name(&self.path))
    }
}

/// A library that failed to load.
#[derive(Debug)]
pub struct FailedLibrary {
    /// The library file.
    pub path: PathBuf,
    /// Why.
    pub error: LoadError,
}

impl fmt::Display for FailedLibrary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

/// Why start-up cannot select the requested protocols.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// `protocolHandlerDirectory` cannot be listed.
    #[error("cannot list protocolHandlerDirectory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// One or more requested protocols cannot be served.
    #[error("{}", .0.join("\n"))]
    Requested(Vec<String>),
}

/// The outcome of discovery: the handlers to run and the libraries that failed.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Every library that loaded.
    pub loaded: Vec<LoadedLibrary>,
    /// Every library that failed.
    pub failed: Vec<FailedLibrary>,
}

pub(crate) fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

fn is_library(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("so" | "dylib" | "dll"))
}

/// Loads every library in `dir`. Non-library files (a README) are skipped.
pub fn discover(dir: &Path) -> Result<Discovery, SelectError> {
    let entries = std::fs::read_dir(dir).map_err(|source| SelectError::Directory { path: dir.to_owned(), source })?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_library(p)).collect();
    paths.sort();
    let mut discovery = Discovery::default();
    for path in paths {
        match load(&path) {
            Ok(lib) => {
                tracing::debug!(library = %path.display(), protocol = %lib.protocol, "loaded protocol handler library");
                discovery.loaded.push(lib);
            }
            Err(error) => discovery.failed.push(FailedLibrary { path, error }),
        }
    }
    Ok(discovery)
}

/// Loads one library: one `lib_header_from_path` + `init_root_module` per file
/// (abi_stable's `load_from_file` caches one module per type and would return
/// the first library for every path).
pub fn load(path: &Path) -> Result<LoadedLibrary, LoadError> {
    let header = lib_header_from_path(path).map_err(classify)?;
    // abi_stable would report a version mismatch as a layout error on every
    // type ("incompatible package versions"); naming both versions is clearer.
    let expected = HandlerModuleRef::VERSION_STRINGS;
    let found = header.version_strings();
    if let (Ok(e), Ok(f)) = (expected.parsed(), found.parsed()) {
        if !e.is_compatible(f) {
            return Err(LoadError::IncompatibleVersion { expected: e.to_string(), found: f.to_string() });
        }
    }
    let module = header.init_root_module::<HandlerModuleRef>().map_err(classify)?;
    let handler = (module.new_handler())().into_result().map_err(LoadError::Constructor)?;
    let protocol = handler.protocol_name().into_result().map_err(LoadError::Constructor)?.into_string();
    Ok(LoadedLibrary { path: path.to_owned(), protocol, handler })
}

fn host_api_version() -> String {
    HandlerModuleRef::VERSION_STRINGS.version.to_string()
}

fn classify(error: LibraryError) -> LoadError {
    match error {
        LibraryError::OpenError { err, .. } => LoadError::NotALibrary(err.to_string()),
        LibraryError::GetSymbolError { err, .. } => LoadError::NotAHandler(err.to_string()),
        LibraryError::IncompatibleVersionNumber { expected_version, actual_version, .. } => {
            LoadError::IncompatibleVersion { expected: expected_version.to_string(), found: actual_version.to_string() }
        }
        LibraryError::AbiInstability(report) => {
            let full = report.to_string();
            tracing::debug!(report = %full, "abi_stable layout report");
            LoadError::AbiMismatch { expected: host_api_version(), summary: summarise(&full) }
        }
        LibraryError::Many(errors) => {
            let first = errors.into_iter().next();
            first.map_or_else(|| LoadError::Other("unknown abi_stable error".into()), classify)
        }
        other => {
            let full = other.to_string();
            tracing::debug!(report = %full, "abi_stable error");
            LoadError::Other(summarise(&full))
        }
    }
}

/// The distinct "Error:" lines of an abi_stable report (at most three), or its first line.
fn summarise(report: &str) -> String {
    let mut errors: Vec<&str> = Vec::new();
    for line in report.lines().map(str::trim).filter(|l| l.starts_with("Error:")) {
        if !errors.contains(&line) && errors.len() < 3 {
            errors.push(line);
        }
    }
    if errors.is_empty() {
        report.lines().next().unwrap_or_default().trim().to_owned()
    } else {
        errors.join("; ")
    }
}

impl Discovery {
    /// Picks one handler per requested protocol. Errors name each protocol
    /// that is missing (listing what was found and what failed to load) or
    /// provided twice. Failures not needed by a requested protocol are left in
    /// `failed` for the caller to warn about.
    pub fn select(mut self, requested: &[String]) -> Result<(Vec<LoadedLibrary>, Vec<FailedLibrary>), SelectError> {
        let mut problems = Vec::new();
        let mut chosen_idx = Vec::new();
        for protocol in requested {
            let matches: Vec<usize> = self
                .loaded
                .iter()
                .enumerate()
                .filter(|(_, lib)| lib.handler.accept(protocol.as_str().into()).into_result().unwrap_or(false))
                .map(|(i, _)| i)
                .collect();
            match matches.as_slice() {
                [] => problems.push(self.not_found(protocol)),
                [one] => {
                    if !chosen_idx.contains(one) {
                        chosen_idx.push(*one);
                    }
                }
                many => {
                    let libs: Vec<String> = many.iter().map(|&i| file_name(&self.loaded[i].path)).collect();
                    problems.push(format!(
                        "protocol {protocol:?} is provided by more than one library: {}; remove all but one from protocolHandlerDirectory",
                        libs.join(", ")
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(SelectError::Requested(problems));
        }
        chosen_idx.sort_unstable();
        let mut chosen = Vec::new();
        for (i, lib) in std::mem::take(&mut self.loaded).into_iter().enumerate() {
            if chosen_idx.contains(&i) {
                chosen.push(lib);
            }
        }
        Ok((chosen, self.failed))
    }

    fn not_found(&self, protocol: &str) -> String {
        let found: Vec<String> =
            self.loaded.iter().map(|l| format!("{} ({})", l.protocol, file_name(&l.path))).collect();
        let mut message = format!(
            "requested protocol {protocol:?} (messagingProtocols) was not found; protocols found: {}",
            if found.is_empty() { "none".to_owned() } else { found.join(", ") }
        );
        for failure in &self.failed {
            message.push_str(&format!("\n  library {} failed to load: {}", file_name(&failure.path), failure.error));
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_file_is_not_a_library() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("libjunk.so"), b"this is not an ELF file").expect("write");
        std::fs::write(dir.path().join("README.md"), b"ignored").expect("write");
        let discovery = discover(dir.path()).expect("listable");
        assert!(discovery.loaded.is_empty());
        assert_eq!(discovery.failed.len(), 1);
        assert!(matches!(discovery.failed[0].error, LoadError::NotALibrary(_)));
        let err = discovery.select(&["kafka".to_owned()]).expect_err("missing").to_string();
        assert!(err.contains("\"kafka\""), "{err}");
        assert!(err.contains("protocols found: none"), "{err}");
        assert!(err.contains("libjunk.so failed to load: not a loadable library"), "{err}");
    }

    #[test]
    fn summary_keeps_error_lines() {
        let report = "header\n  Error: field a differs\n noise\n  Error: size differs\n  Error: size differs\n";
        assert_eq!(summarise(report), "Error: field a differs; Error: size differs");
    }
}
