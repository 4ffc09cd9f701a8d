//! The converters of entry formats: the host's own (Pulsar) and those that
//! handlers register for the formats they write. A reader of another
//! protocol's entries gets them as protocol-neutral messages from here.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use abi_stable::std_types::{RResult, RSlice, RVec};
use async_ffi::FfiFuture;
use polyport_handler_api::{
    convert::{FfiConversion, FfiConverterBox, FfiMessage, FfiReadFenceBox, Message},
    storage::FfiBytes,
    ErrorKind, HandlerError,
};

use crate::pulsar::{convert, FORMAT_PULSAR};

/// An entry that decodes to at most this many bytes is converted on the
/// caller's worker; a larger one (up to 256 MiB), or one whose decoded size
/// is unknown, on a blocking thread. Converting 64 KiB takes microseconds,
/// less than the trip to a blocking thread and back.
pub const INLINE_DECODE_BYTES: usize = 64 << 10;

/// Format tag to converter, and the handlers' read fences.
#[derive(Default)]
pub struct Converters {
    registered: RwLock<HashMap<u16, FfiConverterBox>>,
    /// What readers may see of each partition ([`polyport_handler_api::convert::ReadFence`]).
    fences: RwLock<Vec<FfiReadFenceBox>>,
}

impl std::fmt::Debug for Converters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let formats: Vec<u16> = self.read().keys().copied().collect();
        f.debug_struct("Converters").field("formats", &formats).finish()
    }
}

impl Converters {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u16, FfiConverterBox>> {
        self.registered.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn fences(&self) -> std::sync::RwLockReadGuard<'_, Vec<FfiReadFenceBox>> {
        self.fences.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a handler's read fence.
    pub fn register_fence(&self, fence: FfiReadFenceBox) {
        self.fences.write().unwrap_or_else(std::sync::PoisonError::into_inner).push(fence);
    }

    /// Where readers of `ledger` (whose entries end at `end`) stop: the
    /// lowest of the fences' answers.
    pub fn stable_end(&self, ledger: &str, end: u64) -> u64 {
        self.fences().iter().fold(end, |e, f| f.stable_end(ledger.into(), end).min(e))
    }

    /// Whether a fence hides the entry at `offset` from every reader.
    pub fn hidden(&self, ledger: &str, format: u16, offset: u64, payload: &[u8]) -> bool {
        self.fences().iter().any(|f| f.hidden(ledger.into(), format, offset, payload.into()))
    }

    /// Registers the converter of `format` (a later registration replaces it).
    pub fn register(&self, format: u16, converter: FfiConverterBox) {
        if format == FORMAT_PULSAR {
            tracing::warn!(format, "a handler tried to register a converter for the host's Pulsar format; ignored");
            return;
        }
        self.registered.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(format, converter);
    }

    /// The messages of an entry written in `format`.
    pub fn decode(&self, format: u16, payload: &[u8]) -> Result<Vec<Message>, HandlerError> {
        if format == FORMAT_PULSAR {
            return convert::to_messages(payload);
        }
        Ok(self.decode_registered(format, payload)?.into_iter().map(Message::from).collect())
    }

    /// [`Self::decode`] in the form that crosses the boundary: a handler's
    /// converter's answer is passed on as it came.
    pub fn decode_ffi(&self, format: u16, payload: &[u8]) -> Result<RVec<FfiMessage>, HandlerError> {
        if format == FORMAT_PULSAR {
            return Ok(convert::to_messages(payload)?.into_iter().map(FfiMessage::from).collect());
        }
        self.decode_registered(format, payload)
    }

    /// Whether an entry of `format` (a handler's format) is small enough,
    /// decoded, to convert on the calling worker rather than on a blocking
    /// thread: its converter's bound is at most [`INLINE_DECODE_BYTES`].
    pub fn converts_inline(&self, format: u16, payload: &[u8]) -> bool {
        let registered = self.read();
        registered
            .get(&format)
            .and_then(|c| c.decoded_bytes_bound(payload.into()).into_option())
            .is_some_and(|bound| bound <= INLINE_DECODE_BYTES as u64)
    }

    fn decode_registered(&self, format: u16, payload: &[u8]) -> Result<RVec<FfiMessage>, HandlerError> {
        // The lock is held while a handler converts: conversions only read it,
        // and registration happens at start-up.
        let registered = self.read();
        let converter = registered.get(&format).ok_or_else(|| {
            HandlerError::new(ErrorKind::NOT_FOUND, format!("no converter is registered for entry format {format}"))
        })?;
        converter.to_messages(payload.into()).into_result()
    }
}

/// The conversion service ([`FfiConversion`]): the host side of
/// [`Host::decode_entry`](polyport_handler_api::Host::decode_entry) and its kin.
#[derive(Clone)]
pub struct ConversionService {
    runtime: tokio::runtime::Handle,
    converters: Arc<Converters>,
}

impl ConversionService {
    /// The service over `converters`, converting large entries on `runtime`'s blocking threads.
    pub fn new(runtime: tokio::runtime::Handle, converters: Arc<Converters>) -> Self {
        Self { runtime, converters }
    }
}

impl FfiConversion for ConversionService {
    fn register_converter(&self, format: u16, converter: FfiConverterBox) {
        self.converters.register(format, converter);
    }

    fn decode_entry(&self, format: u16, payload: RSlice<'_, u8>) -> RResult<RVec<FfiMessage>, HandlerError> {
        self.converters.decode_ffi(format, payload.as_slice()).into()
    }

    fn decode_entry_async(&self, format: u16, payload: FfiBytes) -> FfiFuture<RResult<RVec<FfiMessage>, HandlerError>> {
        let converters = Arc::clone(&self.converters);
        crate::services::on_runtime(&self.runtime, move || async move {
            if converters.converts_inline(format, payload.as_ref()) {
                return converters.decode_ffi(format, payload.as_ref());
            }
            tokio::task::spawn_blocking(move || converters.decode_ffi(format, payload.as_ref()))
                .await
                .map_err(|e| HandlerError::new(ErrorKind::PANICKED, e.to_string()))?
        })
    }

    fn register_read_fence(&self, fence: FfiReadFenceBox) -> RResult<(), HandlerError> {
        self.converters.register_fence(fence);
        RResult::ROk(())
    }

    fn encode_entry(&self, format: u16, messages: RVec<FfiMessage>, sequence: u64) -> RResult<RVec<u8>, HandlerError> {
        if format != FORMAT_PULSAR {
            let message = format!("the host encodes only its own entry format (Pulsar, {FORMAT_PULSAR}), not {format}");
            return RResult::RErr(HandlerError::new(ErrorKind::INVALID_ARGUMENT, message));
        }
        let messages: Vec<Message> = messages.into_iter().map(Into::into).collect();
        RResult::ROk(convert::from_messages(&messages, sequence).into())
    }
}
