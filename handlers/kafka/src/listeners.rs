//! `kafkaListeners`, `kafkaAdvertisedListeners` and `kafkaProtocolMap`, as KoP
//! defines them: `NAME://host:port` lists, names mapped to security protocols.

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
}

/// Security protocols, as Kafka names them. Only PLAINTEXT is served today.
const PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

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
            let protocol = protocol.trim().to_ascii_uppercase();
            if !PROTOCOLS.contains(&protocol.as_str()) {
                return Err(HandlerError::config(
                    "kafkaProtocolMap",
                    raw,
                    "protocols among PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
                ));
            }
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
        let protocol = match protocol_map.get(&name) {
            Some(p) => p.clone(),
            None if PROTOCOLS.contains(&name.as_str()) => name.clone(),
            None => {
                return Err(HandlerError::config(
                    "kafkaListeners",
                    raw_listeners,
                    &format!("listener name {name} to be a security protocol or to be mapped in kafkaProtocolMap"),
                ))
            }
        };
        if protocol != "PLAINTEXT" {
            return Err(HandlerError::config(
                "kafkaListeners",
                raw_listeners,
                &format!("PLAINTEXT listeners only (listener {name} uses {protocol}, which is not supported yet)"),
            ));
        }
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
