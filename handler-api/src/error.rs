//! Errors that cross the handler boundary as values.

use std::fmt;

use abi_stable::{std_types::RString, StableAbi};

/// What kind of failure a [`HandlerError`] reports.
///
/// A newtype over `u16` rather than an enum so that a newer host or handler can
/// add kinds without making an older peer read an invalid discriminant: an
/// unknown kind is still a valid value and displays as `other(N)`.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorKind(pub u16);

impl ErrorKind {
    /// A failure that fits no other kind.
    pub const OTHER: Self = Self(0);
    /// A configuration key has a value the handler cannot use.
    pub const CONFIG: Self = Self(1);
    /// An I/O operation failed.
    pub const IO: Self = Self(2);
    /// Code inside the handler panicked; the panic was caught at the boundary.
    pub const PANICKED: Self = Self(3);
    /// A task was aborted before it completed.
    pub const CANCELLED: Self = Self(4);
    /// The operation is not supported by this host or handler.
    pub const UNSUPPORTED: Self = Self(5);
    /// The call was made in the wrong lifecycle state (e.g. before `start`).
    pub const STATE: Self = Self(6);
    /// A peer sent bytes that violate its protocol.
    pub const PROTOCOL: Self = Self(7);
    /// No such topic, namespace, cursor or entry.
    pub const NOT_FOUND: Self = Self(8);
    /// The topic (or other object) exists already.
    pub const ALREADY_EXISTS: Self = Self(9);
    /// An argument is not valid (a topic name, a partition, a size).
    pub const INVALID_ARGUMENT: Self = Self(10);
    /// An offset outside the stored range; the message names the valid range.
    pub const OUT_OF_RANGE: Self = Self(11);
    /// Storage failed (I/O error); nothing acknowledged is lost.
    pub const STORAGE: Self = Self(12);
    /// The disk is full: the append was not stored; reads go on.
    pub const DISK_FULL: Self = Self(13);
    /// Stored data fails its checksum or structure.
    pub const CORRUPT: Self = Self(14);
    /// This broker does not own the topic (in a cluster, another broker
    /// does): look it up again and go to its owner.
    pub const NOT_OWNER: Self = Self(15);
    /// The role may not do this (authorization).
    pub const NOT_AUTHORIZED: Self = Self(16);
    /// The credentials prove no role: a wrong password, an expired or
    /// foreign token, an unknown user (all answered alike), or a SASL
    /// exchange out of order.
    pub const AUTHENTICATION: Self = Self(17);

    /// A short lowercase name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::OTHER => "other",
            Self::CONFIG => "config",
            Self::IO => "io",
            Self::PANICKED => "panicked",
            Self::CANCELLED => "cancelled",
            Self::UNSUPPORTED => "unsupported",
            Self::STATE => "state",
            Self::PROTOCOL => "protocol",
            Self::NOT_FOUND => "not_found",
            Self::ALREADY_EXISTS => "already_exists",
            Self::INVALID_ARGUMENT => "invalid_argument",
            Self::OUT_OF_RANGE => "out_of_range",
            Self::STORAGE => "storage",
            Self::DISK_FULL => "disk_full",
            Self::CORRUPT => "corrupt",
            Self::NOT_OWNER => "not_owner",
            Self::NOT_AUTHORIZED => "not_authorized",
            Self::AUTHENTICATION => "authentication",
            _ => "unknown",
        }
    }
}

impl fmt::Debug for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            "unknown" => write!(f, "other({})", self.0),
            name => f.write_str(name),
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// An error returned by a handler to the host or by the host to a handler.
///
/// It carries a [`ErrorKind`] and a human-readable message that names the
/// cause (for configuration errors: the key, the value and what was expected).
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq, Eq)]
pub struct HandlerError {
    kind: ErrorKind,
    message: RString,
}

impl HandlerError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: RString::from(message.into()) }
    }

    /// A configuration error naming `key`, the `value` found and what was `expected`.
    pub fn config(key: &str, value: &str, expected: &str) -> Self {
        Self::new(ErrorKind::CONFIG, format!("invalid value for {key}: {value:?} (expected {expected})"))
    }

    /// An error of kind [`ErrorKind::OTHER`].
    pub fn other(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::OTHER, message)
    }

    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        self.message.as_str()
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HandlerError({:?}: {})", self.kind, self.message)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HandlerError {}

impl From<std::io::Error> for HandlerError {
    fn from(e: std::io::Error) -> Self {
        Self::new(ErrorKind::IO, e.to_string())
    }
}
