//! Who a connection's requests come from: the principal its listener's
//! security proved, fixed for the connection's life (no re-authentication).
//!
//! On `SASL_*` listeners it is the SASL exchange's ([`crate::sasl`]), on
//! `SSL` listeners the verified client certificate's, if one was sent; on
//! `PLAINTEXT` listeners, and `SSL` ones without a client certificate, the
//! client is anonymous. Each request's dispatch reaches it through
//! [`RequestContext::session`](crate::apis::RequestContext::session), where
//! authorization will read it.

/// A connection's principal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// The role proven (a token's subject, a SCRAM user, a certificate's
    /// common name); `None` for an anonymous client.
    pub role: Option<String>,
    /// The user name a SASL client gave (PLAIN's `authcid`, SCRAM's `n=`):
    /// under KoP's conventions the tenant or namespace the role acts in.
    /// `None` without SASL.
    pub username: Option<String>,
}

impl Session {
    /// An anonymous client (a `PLAINTEXT` listener).
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// A client of an `SSL` listener: the role of its verified certificate,
    /// if it sent one.
    pub fn from_tls(role: Option<String>) -> Self {
        Self { role, username: None }
    }

    /// A client that completed a SASL exchange.
    pub fn from_sasl(role: String, username: String) -> Self {
        Self { role: Some(role), username: Some(username) }
    }

    /// Whether no role was proven.
    pub fn is_anonymous(&self) -> bool {
        self.role.is_none()
    }
}
