//! The one crate a Polyport protocol handler depends on.
//!
//! A handler is a `cdylib` that implements [`ProtocolHandler`] and exports it
//! with [`export_handler!`]. The broker loads it from `protocolHandlerDirectory`
//! at start-up, checks its ABI with `abi_stable` (type layouts and this crate's
//! version), and calls it through the [`ffi`] types.
//!
//! The host owns the runtime, the sockets and the timers: a handler serves a
//! [`Connection`] (tokio `AsyncRead`/`AsyncWrite`) and reaches everything else
//! through [`Host`]. Depend on tokio with only the `sync`, `io-util` and
//! `macros` features, so that `tokio::spawn` or `tokio::time`, which cannot
//! work inside a plugin, fail to compile; use [`Host::spawn`] and
//! [`Host::sleep`] instead.
//!
//! ```no_run
//! use polyport_handler_api::{export_handler, Config, Connection, ConnectionFuture,
//!     HandlerError, Host, Listener, ProtocolHandler};
//!
//! #[derive(Default)]
//! struct Echo { address: String }
//!
//! impl ProtocolHandler for Echo {
//!     fn protocol_name(&self) -> &str { "echo" }
//!     fn initialize(&mut self, config: &Config) -> Result<(), HandlerError> {
//!         self.address = config.get("echoListener").unwrap_or("127.0.0.1:7000").to_owned();
//!         Ok(())
//!     }
//!     fn start(&mut self, _host: Host) -> Result<(), HandlerError> { Ok(()) }
//!     fn listeners(&self) -> Vec<Listener> {
//!         vec![Listener { name: "echo".into(), address: self.address.clone() }]
//!     }
//!     fn new_connection(&self, _listener: &str, conn: Connection) -> ConnectionFuture {
//!         Box::pin(async move {
//!             let (mut r, mut w) = tokio::io::split(conn);
//!             tokio::io::copy(&mut r, &mut w).await?;
//!             Ok(())
//!         })
//!     }
//! }
//!
//! export_handler!(Echo::default());
//! ```

#![warn(missing_docs)]

mod connection;
pub mod convert;
mod error;
pub mod ffi;
mod handler;
mod host;
mod log;
pub mod metrics;
mod partition;
pub mod security;
pub mod storage;
#[cfg(feature = "testing")]
pub mod testing;

/// The `bytes` crate this API's signatures use (`Bytes` payloads), so that
/// a handler names the same version without depending on it itself.
pub use bytes;
pub use connection::{raw_connection, tls_raw_connection, Connection};
pub use error::{ErrorKind, HandlerError};
pub use ffi::LogLevel;
pub use handler::{Config, ConnectionFuture, Listener, ProtocolHandler};
pub use host::{Host, JoinHandle};
pub use metrics::{Metric, MetricKind, MetricSpec, Sample, Series};
pub use partition::{wait_any, Partition};
pub use security::{AuthenticationInfo, Grant, SaslServer, SaslStep, ScramChange, ScramUpsert, ScramUser};

/// Re-exported so that [`export_handler!`] works in crates that depend on
/// this crate alone.
#[doc(hidden)]
pub mod __private {
    pub use abi_stable::{
        library::{__call_root_module_loader, CheckTypeLayout, LibHeader, RootModule, RootModuleResult},
        std_types::RResult,
    };

    use crate::ffi::{HandlerModule, HandlerModuleRef};
    pub use crate::handler::new_handler;

    /// The root module of a library whose handler is built by `new_handler`.
    pub fn root_module(
        new_handler: extern "C" fn() -> RResult<crate::ffi::FfiHandlerBox, crate::HandlerError>,
    ) -> HandlerModuleRef {
        use abi_stable::prefix_type::PrefixTypeTrait;
        HandlerModule { new_handler }.leak_into_prefix()
    }
}

/// Exports a [`ProtocolHandler`] as this library's root module.
///
/// `$constructor` is an expression that builds the handler; it runs once,
/// when the host loads the library, and a panic in it is reported as a load
/// error. Use it once per `cdylib`.
#[macro_export]
macro_rules! export_handler {
    ($constructor:expr) => {
        const _: () = {
            extern "C" fn __polyport_new_handler(
            ) -> $crate::__private::RResult<$crate::ffi::FfiHandlerBox, $crate::HandlerError> {
                $crate::__private::new_handler(|| $constructor)
            }

            fn __polyport_root_module() -> $crate::ffi::HandlerModuleRef {
                $crate::__private::root_module(__polyport_new_handler)
            }

            // The symbol abi_stable's loader looks up (its
            // `ROOT_MODULE_LOADER_NAME`, checked by a test in handler-api).
            // Written out here so that handlers need no direct abi_stable dependency.
            #[no_mangle]
            #[allow(non_upper_case_globals)]
            pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::__private::LibHeader = {
                extern "C" fn erased() -> $crate::__private::RootModuleResult {
                    $crate::__private::__call_root_module_loader(__polyport_root_module)
                }
                // SAFETY: `erased` returns the root module of type `HandlerModuleRef`,
                // the type named here; this is what `#[export_root_module]` expands to.
                unsafe {
                    $crate::__private::LibHeader::from_constructor::<$crate::ffi::HandlerModuleRef>(
                        erased,
                        $crate::__private::CheckTypeLayout::Yes,
                    )
                }
            };
        };
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn export_symbol_matches_abi_stable() {
        assert_eq!(abi_stable::library::ROOT_MODULE_LOADER_NAME, "_1as_0lib_1header_0root_bmodule_bloader");
    }
}
