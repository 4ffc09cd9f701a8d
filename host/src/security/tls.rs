//! TLS for every listener, terminated by the host with rustls: Pulsar's
//! keys (`tlsCertificateFilePath`, `tlsKeyFilePath`,
//! `tlsTrustCertsFilePath`, `tlsRequireTrustedClientCertOnConnect`,
//! `tlsProtocols`, `tlsCiphers`), PEM files. Handlers get the decrypted
//! stream and the role of a verified client certificate (its subject's
//! CN, Pulsar's `AuthenticationProviderTls` rule).
//!
//! Gaps: the files are read at start-up only (no reload on change); OCSP
//! and CRLs are not checked; rustls speaks only TLS 1.2 and 1.3, with its
//! own cipher suites (`tlsCiphers` picks among them by IANA or rustls
//! name).

use std::{sync::Arc, time::Duration};

use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{
    rustls::{self, server::WebPkiClientVerifier, RootCertStore, ServerConfig},
    server::TlsStream,
    TlsAcceptor,
};

/// A client gets this long to finish its handshake; a client that sends
/// nothing holds its connection slot no longer.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS keys, as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// `tlsCertificateFilePath`: the broker's certificate chain (PEM).
    pub certificate: String,
    /// `tlsKeyFilePath`: its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// `tlsTrustCertsFilePath`: CAs that sign client certificates.
    pub trust_certs: Option<String>,
    /// `tlsRequireTrustedClientCertOnConnect`.
    pub require_client_cert: bool,
    /// `tlsProtocols`: `TLSv1.3`, `TLSv1.2`; empty for both.
    pub protocols: Vec<String>,
    /// `tlsCiphers`: cipher suite names; empty for rustls's defaults.
    pub ciphers: Vec<String>,
}

/// Why TLS cannot be set up (start-up stops, naming the key).
#[derive(Debug, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct TlsError {
    /// The configuration key at fault.
    pub key: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn err(key: &'static str, reason: impl Into<String>) -> TlsError {
    TlsError { key, reason: reason.into() }
}

/// The names rustls's suites go by: its own (`TLS13_AES_128_GCM_SHA256`)
/// and IANA's (`TLS_AES_128_GCM_SHA256`, what Java and Pulsar write).
fn suite_names(suite: &rustls::SupportedCipherSuite) -> [String; 2] {
    let own = format!("{:?}", suite.suite());
    let iana = own.replacen("TLS13_", "TLS_", 1);
    [own, iana]
}

/// The acceptor every TLS listener shares.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    /// Whether a client certificate proves a role (the TLS provider is
    /// among `authenticationProviders`).
    cert_roles: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// Reads the files and builds the server configuration; with
    /// `cert_roles`, a verified client certificate's CN is its role.
    pub fn new(config: &TlsConfig, cert_roles: bool) -> Result<Self, TlsError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.certificate)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|e| {
                err("tlsCertificateFilePath", format!("cannot read PEM certificates from {}: {e}", config.certificate))
            })?;
        if certs.is_empty() {
            return Err(err("tlsCertificateFilePath", format!("{} holds no certificate", config.certificate)));
        }
        let key = PrivateKeyDer::from_pem_file(&config.key)
            .map_err(|e| err("tlsKeyFilePath", format!("cannot read a PEM private key from {}: {e}", config.key)))?;

        let mut provider = rustls::crypto::ring::default_provider();
        if !config.ciphers.is_empty() {
            let known: Vec<String> = provider.cipher_suites.iter().flat_map(suite_names).collect();
            if let Some(unknown) = config.ciphers.iter().find(|c| !known.iter().any(|k| k.eq_ignore_ascii_case(c))) {
                return Err(err(
                    "tlsCiphers",
                    format!("{unknown} is not a cipher suite rustls serves (it serves {})", known.join(", ")),
                ));
            }
            provider
                .cipher_suites
                .retain(|s| suite_names(s).iter().any(|n| config.ciphers.iter().any(|c| c.eq_ignore_ascii_case(n))));
        }
        let mut versions = Vec::new();
        for protocol in &config.protocols {
            match protocol.to_ascii_lowercase().as_str() {
                "tlsv1.3" => versions.push(&rustls::version::TLS13),
                "tlsv1.2" => versions.push(&rustls::version::TLS12),
                _ => {
                    return Err(err(
                        "tlsProtocols",
                        format!("{protocol} is not served: rustls speaks TLSv1.3 and TLSv1.2 only"),
                    ))
                }
            }
        }
        if versions.is_empty() {
            versions = vec![&rustls::version::TLS13, &rustls::version::TLS12];
        }
        let provider = Arc::new(provider);
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&versions)
            .map_err(|e| err("tlsCiphers", format!("no cipher suite left for {:?}: {e}", config.protocols)))?;
        let builder = match &config.trust_certs {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                let trusted = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        err("tlsTrustCertsFilePath", format!("cannot read PEM certificates from {path}: {e}"))
                    })?;
                let (added, _) = roots.add_parsable_certificates(trusted);
                if added == 0 {
                    return Err(err("tlsTrustCertsFilePath", format!("{path} holds no usable CA certificate")));
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
                let verifier = if config.require_client_cert { verifier } else { verifier.allow_unauthenticated() };
                let verifier = verifier.build().map_err(|e| err("tlsTrustCertsFilePath", e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None if config.require_client_cert => {
                return Err(err(
                    "tlsRequireTrustedClientCertOnConnect",
                    "client certificates can be required only with tlsTrustCertsFilePath",
                ))
            }
            None => builder.with_no_client_auth(),
        };
        let server = builder.with_single_cert(certs, key).map_err(|e| {
            err("tlsKeyFilePath", format!("the key does not match the certificate or is unusable: {e}"))
        })?;
        Ok(Self { acceptor: TlsAcceptor::from(Arc::new(server)), cert_roles })
    }

    /// Runs the server side of the handshake on `stream`.
    pub async fn accept<S>(&self, stream: S) -> Result<Accepted<S>, String>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(handshake_failure(&e)),
            Err(_) => return Err(format!("no TLS handshake within {} s", HANDSHAKE_TIMEOUT.as_secs())),
        };
        let certificate = stream.get_ref().1.peer_certificates().and_then(|chain| chain.first());
        let role = if self.cert_roles { certificate.and_then(common_name) } else { None };
        Ok(Accepted { stream, role })
    }
}

/// A connection after its handshake.
pub struct Accepted<S> {
    /// The decrypted stream.
    pub stream: TlsStream<S>,
    /// The verified client certificate's CN, if it sent one.
    pub role: Option<String>,
}

/// A handshake failure as an operator reads it: a plaintext client on a
/// TLS port is named as such.
fn handshake_failure(e: &std::io::Error) -> String {
    let text = e.to_string();
    if text.contains("InvalidContentType") || text.contains("corrupt message") || text.contains("invalid content type")
    {
        format!("not a TLS client (a plaintext client on a TLS port?): {text}")
    } else {
        format!("TLS handshake failed: {text}")
    }
}

/// The subject's common name of a DER certificate.
fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?.as_str().ok()?.to_owned();
    Some(cn)
}
