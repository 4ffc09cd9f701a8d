//! `kafkaListeners`, `kafkaAdvertisedListeners` and `kafkaProtocolMap`, as KoP
//! defines them: `NAME://host:port` lists, names mapped to security protocols.
//!
//! Every Kafka security protocol is served: the host terminates TLS on `SSL`
//! and `SASL_SSL` listeners ([`SecurityProtocol::is_tls`]), and connections
//! of `SASL_*` listeners authenticate before their first other request
//! ([`crate::sasl`]).

use std::collections::BTreeMap;

use polyport_handler_api::{Config, HandlerError};

/// One listener: where the host binds it and what Metadata advertises for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaListener {
    /// The listener name (`PLAINTEXT`, or a name from `kafkaProtocolMap`).
    pub name: String,
    /// `host:port` to bind.
    pub bind: String,
    /// Host clients are told to connect to.
    pub advertised_host: String,
    /// Port clients are told to connect to.
    pub advertised_port: i32,
    /// How clients connect and prove who they are.
    pub security: SecurityProtocol,
}

/// A listener's security protocol, as Kafka names them (`security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// Plain TCP, anonymous clients.
    Plaintext,
    /// TLS; the client certificate's role, when one is sent, is the session's.
    Ssl,
    /// Plain TCP, then SASL authentication.
    SaslPlaintext,
    /// TLS, then SASL authentication (the SASL role is the session's).
    SaslSsl,
}

impl SecurityProtocol {
    /// Every protocol, in Kafka's order.
    pub const ALL: [Self; 4] = [Self::Plaintext, Self::Ssl, Self::SaslPlaintext, Self::SaslSsl];

    /// Kafka's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    /// The protocol Kafka names `name` (upper case).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether the host terminates TLS on the listener.
    pub fn is_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// Whether clients authenticate with SASL before anything else.
    pub fn is_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

impl std::fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses `NAME://host:port` (host may be empty, a name, an IPv4 or `[IPv6]`).
fn parse_endpoint(key: &str, raw: &str, item: &str) -> Result<(String, String, u16), HandlerError> {
    let expected = "a comma-separated list of NAME://host:port, e.g. PLAINTEXT://0.0.0.0:9092";
    let err = || HandlerError::config(key, raw, expected);
    let (name, rest) = item.split_once("://").ok_or_else(err)?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(err)?;
    let port: u16 = port.parse().map_err(|_| err())?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(err());
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((name.to_ascii_uppercase(), host.to_owned(), port))
}

fn parse_list(config: &Config, key: &str) -> Result<Vec<(String, String, u16)>, HandlerError> {
    let Some(raw) = config.get(key) else {
        return Ok(Vec::new());
    };
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|item| parse_endpoint(key, raw, item)).collect()
}

fn is_wildcard(host: &str) -> bool {
    host.is_empty() || host == "0.0.0.0" || host == "::"
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Reads the listener keys. `advertised_address` replaces wildcard hosts in
/// advertised addresses, as in KoP.
pub fn from_config(config: &Config, advertised_address: &str) -> Result<Vec<KafkaListener>, HandlerError> {
    let mut protocol_map = BTreeMap::new();
    if let Some(raw) = config.get("kafkaProtocolMap") {
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, protocol) = item.split_once(':').ok_or_else(|| {
                HandlerError::config("kafkaProtocolMap", raw, "a list of NAME:PROTOCOL, e.g. INTERNAL:PLAINTEXT")
            })?;
            let Some(protocol) = SecurityProtocol::from_name(&protocol.trim().to_ascii_uppercase()) else {
                return Err(HandlerError::config(
                    "kafkaProtocolMap",
                    raw,
                    "protocols among PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
                ));
            };
            protocol_map.insert(name.trim().to_ascii_uppercase(), protocol);
        }
    }

    let mut endpoints = parse_list(config, "kafkaListeners")?;
    if endpoints.is_empty() {
        endpoints.push(("PLAINTEXT".into(), "0.0.0.0".into(), 9092));
    }
    let advertised = parse_list(config, "kafkaAdvertisedListeners")?;
    let raw_listeners = config.get("kafkaListeners").unwrap_or("PLAINTEXT://0.0.0.0:9092");

    let mut listeners = Vec::new();
    for (name, host, port) in endpoints {
        let security = match protocol_map.get(&name).copied().or_else(|| SecurityProtocol::from_name(&name)) {
            Some(p) => p,
            None => {
                return Err(HandlerError::config(
                    "kafkaListeners",
                    raw_listeners,
                    &format!("listener name {name} to be a security protocol or to be mapped in kafkaProtocolMap"),
                ))
            }
        };
        if listeners.iter().any(|l: &KafkaListener| l.name == name) {
            return Err(HandlerError::config("kafkaListeners", raw_listeners, "each listener name at most once"));
        }
        let (adv_host, adv_port) = match advertised.iter().find(|(n, _, _)| *n == name) {
            Some((_, h, p)) => (h.clone(), *p),
            None => (host.clone(), port),
        };
        let adv_host = if is_wildcard(&adv_host) { advertised_address.to_owned() } else { adv_host };
        let bind_host = if host.is_empty() { "0.0.0.0" } else { host.as_str() };
        listeners.push(KafkaListener {
            name,
            bind: join_host_port(bind_host, port),
            advertised_host: adv_host,
            advertised_port: i32::from(adv_port),
            security,
        });
    }
    if let Some((name, _, _)) = advertised.iter().find(|(n, _, _)| !listeners.iter().any(|l| &l.name == n)) {
        return Err(HandlerError::config(
            "kafkaAdvertisedListeners",
            config.get("kafkaAdvertisedListeners").unwrap_or_default(),
            &format!("only names that appear in kafkaListeners ({name} does not)"),
        ));
    }
    Ok(listeners)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::new(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    #[test]
    fn wildcard_is_advertised_as_the_broker_address() {
        let l = from_config(&config(&[("kafkaListeners", "PLAINTEXT://0.0.0.0:9092")]), "10.0.0.5").expect("valid");
        assert_eq!(l[0].bind, "0.0.0.0:9092");
        assert_eq!((l[0].advertised_host.as_str(), l[0].advertised_port), ("10.0.0.5", 9092));
    }

    #[test]
    fn named_listeners_use_the_protocol_map_and_advertised_listeners() {
        let l = from_config(
            &config(&[
                ("kafkaListeners", "INTERNAL://127.0.0.1:9092,EXTERNAL://0.0.0.0:19092"),
                ("kafkaProtocolMap", "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT"),
                ("kafkaAdvertisedListeners", "EXTERNAL://broker.example.com:29092"),
            ]),
            "127.0.0.1",
        )
        .expect("valid");
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].advertised_host, "broker.example.com");
        assert_eq!(l[1].advertised_port, 29092);
        assert!(l.iter().all(|l| l.security == SecurityProtocol::Plaintext));
    }

    #[test]
    fn every_security_protocol_is_accepted_by_name_or_map() {
        let l = from_config(
            &config(&[
                (
                    "kafkaListeners",
                    "SSL://0.0.0.0:9093,SASL_PLAINTEXT://0.0.0.0:9094,sasl_ssl://0.0.0.0:9095,\
                     INTERNAL://127.0.0.1:9096,EXTERNAL://0.0.0.0:9097",
                ),
                ("kafkaProtocolMap", "INTERNAL:sasl_plaintext,EXTERNAL:SASL_SSL"),
            ]),
            "127.0.0.1",
        )
        .expect("valid");
        let found: Vec<(&str, SecurityProtocol)> = l.iter().map(|l| (l.name.as_str(), l.security)).collect();
        assert_eq!(
            found,
            [
                ("SSL", SecurityProtocol::Ssl),
                ("SASL_PLAINTEXT", SecurityProtocol::SaslPlaintext),
                ("SASL_SSL", SecurityProtocol::SaslSsl),
                ("INTERNAL", SecurityProtocol::SaslPlaintext),
                ("EXTERNAL", SecurityProtocol::SaslSsl),
            ]
        );
        let tls: Vec<bool> = l.iter().map(|l| l.security.is_tls()).collect();
        assert_eq!(tls, [true, false, true, false, true]);
        let sasl: Vec<bool> = l.iter().map(|l| l.security.is_sasl()).collect();
        assert_eq!(sasl, [false, true, true, true, true]);
    }

    #[test]
    fn unknown_security_protocols_are_refused() {
        let err = from_config(
            &config(&[("kafkaListeners", "INTERNAL://h:1"), ("kafkaProtocolMap", "INTERNAL:KERBEROS")]),
            "127.0.0.1",
        )
        .expect_err("unknown protocol");
        assert!(err.message().contains("kafkaProtocolMap"), "{err}");
        let err = from_config(&config(&[("kafkaListeners", "SASL://h:1")]), "127.0.0.1").expect_err("unmapped name");
        assert!(err.message().contains("kafkaProtocolMap"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        for (key, value) in [
            ("kafkaListeners", "0.0.0.0:9092"),
            ("kafkaListeners", "PLAINTEXT://h:99999"),
            ("kafkaListeners", "FOO://h:1"),
        ] {
            let err = from_config(&config(&[(key, value)]), "127.0.0.1").expect_err(value);
            assert!(err.message().contains(key), "{err}");
        }
    }
}
