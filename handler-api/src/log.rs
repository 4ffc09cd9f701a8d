//! Forwards a handler's `tracing` events and panic messages to the host.
//!
//! A handler library carries its own copy of `tracing` and of the panic hook,
//! separate from the host's: without this bridge its logs would vanish and its
//! panics would print to stderr outside the host's log format.

use std::{
    fmt::Write as _,
    sync::{Once, OnceLock},
};

use tracing::{
    field::{Field, Visit},
    level_filters::LevelFilter,
    span, Event, Level, Subscriber,
};
use tracing_subscriber::{layer::Context, prelude::*, registry::LookupSpan, Layer};

use crate::{ffi::LogLevel, handler::panic_message, Host};

static HOST: OnceLock<Host> = OnceLock::new();
static INSTALL: Once = Once::new();

/// Installs the bridge once per library: the first host given wins.
pub(crate) fn install(host: &Host) {
    INSTALL.call_once(|| {
        let _ = HOST.set(host.clone());
        let max = match host.max_log_level() {
            LogLevel::Trace => LevelFilter::TRACE,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Error => LevelFilter::ERROR,
        };
        let subscriber = tracing_subscriber::registry().with(HostLayer.with_filter(max));
        // Fails only if the handler installed its own subscriber: respect it.
        let _ = tracing::subscriber::set_global_default(subscriber);
        std::panic::set_hook(Box::new(|info| {
            let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            let message = format!("handler panicked{location}: {}", panic_message(info.payload()));
            match HOST.get() {
                Some(host) => host.log(LogLevel::Error, "panic", &message),
                None => eprintln!("{message}"),
            }
        }));
    });
}

fn level(level: &Level) -> LogLevel {
    match *level {
        Level::TRACE => LogLevel::Trace,
        Level::DEBUG => LogLevel::Debug,
        Level::INFO => LogLevel::Info,
        Level::WARN => LogLevel::Warn,
        _ => LogLevel::Error,
    }
}

/// Formats fields as `message k=v k=v`.
#[derive(Default)]
struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            self.0.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }
}

struct HostLayer;

impl<S> Layer<S> for HostLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(host) = HOST.get() else { return };
        let mut line = String::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                line.push_str(span.name());
                if let Some(fields) = span.extensions().get::<Fields>() {
                    if !fields.0.is_empty() {
                        let _ = write!(line, "{{{}}}", fields.0);
                    }
                }
                line.push_str(": ");
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        line.push_str(&fields.0);
        host.log(level(event.metadata().level()), event.metadata().target(), &line);
    }
}
