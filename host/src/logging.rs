//! The one log stream: the host's `tracing` subscriber, which also carries
//! handler records (through the `log` host service) and panic messages.

use polyport_handler_api::LogLevel;
use tracing_subscriber::{filter::LevelFilter, EnvFilter};

/// Installs the subscriber for `filter` (already validated) and a panic hook
/// that logs instead of printing, so panics show up in the same stream.
/// Returns the most verbose level kept, which handlers use to filter early.
pub fn init(filter: &str) -> LogLevel {
    let filter = EnvFilter::builder().parse_lossy(filter);
    let max = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        // async-ffi re-raises a handler panic with this fixed text; the handler's
        // own hook already logged the real message and server.rs logs the outcome.
        if payload == "FFI future panicked" {
            return;
        }
        tracing::error!(target: "panic", %location, "{payload}");
    }));
    match max {
        LevelFilter::OFF | LevelFilter::ERROR => LogLevel::Error,
        LevelFilter::WARN => LogLevel::Warn,
        LevelFilter::INFO => LogLevel::Info,
        LevelFilter::DEBUG => LogLevel::Debug,
        _ => LogLevel::Trace,
    }
}
