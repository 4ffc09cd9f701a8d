//! The converters of entry formats: the host's own (Pulsar) and those that
//! handlers register for the formats they write. A reader of another
//! protocol's entries gets them as protocol-neutral messages from here.

use std::{collections::HashMap, sync::RwLock};

use abi_stable::std_types::RVec;
use polyport_handler_api::{
    convert::{FfiConverterBox, FfiMessage, Message},
    ErrorKind, HandlerError,
};

use crate::pulsar::{convert, FORMAT_PULSAR};

/// Format tag to converter.
#[derive(Default)]
pub struct Converters {
    registered: RwLock<HashMap<u16, FfiConverterBox>>,
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
