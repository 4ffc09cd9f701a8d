//! broker.conf: reading (the `config` crate, environment overrides) and the
//! typed, validated host keys. Keys the host does not know are kept and handed
//! to protocol handlers, which validate their own.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use config::{File, FileFormat};

/// Prefix of environment variables that override broker.conf keys:
/// `POLYPORT_brokerServicePort=6651` (or `POLYPORT_BROKERSERVICEPORT=6651`).
pub const ENV_PREFIX: &str = "POLYPORT_";

/// Why the configuration cannot be used. Start-up stops with exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: config::ConfigError,
    },
    /// The file has a construct broker.conf does not use (an INI section).
    #[error("configuration file {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// One or more keys have values that are not valid.
    #[error("invalid configuration:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<InvalidValue>),
}

/// A key whose value is not what the host expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}={value:?}: expected {expected}")]
pub struct InvalidValue {
    /// The key.
    pub key: String,
    /// The value found.
    pub value: String,
    /// What was expected.
    pub expected: String,
}

/// A host key and its default. The single source for defaults, unknown-key
/// warnings, and the docs test that keeps conf/broker.conf and
/// docs/configuration.md complete.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// The key as written in broker.conf.
    pub name: &'static str,
    /// The default, as written in broker.conf.
    pub default: &'static str,
}

/// Kafka's `num.partitions`, accepted as an alias of `defaultNumPartitions`.
pub const PARTITIONS_ALIAS: &str = "num.partitions";

/// Every key the host reads.
pub const HOST_KEYS: &[KeySpec] = &[
    KeySpec { name: "messagingProtocols", default: "" },
    KeySpec { name: "protocolHandlerDirectory", default: "./protocols" },
    KeySpec { name: "bindAddress", default: "0.0.0.0" },
    KeySpec { name: "advertisedAddress", default: "" },
    KeySpec { name: "brokerServicePort", default: "6650" },
    KeySpec { name: "webServicePort", default: "8080" },
    KeySpec { name: "dataDirectory", default: "./data" },
    KeySpec { name: "logLevel", default: "info" },
    KeySpec { name: "brokerShutdownTimeoutMs", default: "5000" },
    KeySpec { name: "clusterName", default: "standalone" },
    KeySpec { name: "managedLedgerSyncPolicy", default: "group" },
    KeySpec { name: "managedLedgerGroupCommitMaxDelayMs", default: "0" },
    KeySpec { name: "managedLedgerGroupCommitMaxBytes", default: "1048576" },
    KeySpec { name: "managedLedgerMaxSizePerLedgerMbytes", default: "128" },
    KeySpec { name: "managedLedgerMaxLedgerRolloverTimeMinutes", default: "240" },
    KeySpec { name: "managedLedgerIndexIntervalBytes", default: "4096" },
    KeySpec { name: "managedLedgerCursorFlushIntervalMs", default: "1000" },
    KeySpec { name: "managedLedgerCacheSizeMB", default: "" },
    KeySpec { name: "managedLedgerDirectIo", default: "true" },
    KeySpec { name: "maxMessageSize", default: "5242880" },
    KeySpec { name: "allowAutoTopicCreation", default: "true" },
    KeySpec { name: "allowAutoTopicCreationType", default: "non-partitioned" },
    KeySpec { name: "defaultNumPartitions", default: "1" },
    KeySpec { name: "defaultRetentionTimeInMinutes", default: "10080" },
    KeySpec { name: "defaultRetentionSizeInMB", default: "-1" },
    KeySpec { name: "ttlDurationDefaultInSeconds", default: "0" },
    KeySpec { name: "retentionCheckIntervalInSeconds", default: "120" },
    KeySpec { name: "brokerMaxConnections", default: "10000" },
    KeySpec { name: "brokerMaxConnectionsPerIp", default: "0" },
    KeySpec { name: "maxProducersPerConnection", default: "10000" },
    KeySpec { name: "maxConsumersPerConnection", default: "10000" },
    KeySpec { name: "maxPendingBytesPerConnection", default: "67108864" },
    KeySpec { name: "advertisedListeners", default: "" },
    KeySpec { name: "internalListenerName", default: "" },
    KeySpec { name: "delayedDeliveryEnabled", default: "true" },
    KeySpec { name: "delayedDeliveryTickTimeMillis", default: "1000" },
    KeySpec { name: "metadataStoreUrl", default: "" },
    KeySpec { name: "metadataStoreSessionTimeoutMillis", default: "5000" },
    KeySpec { name: "managedLedgerOffloadDriver", default: "" },
    KeySpec { name: "s3ManagedLedgerOffloadBucket", default: "" },
    KeySpec { name: "s3ManagedLedgerOffloadServiceEndpoint", default: "" },
    KeySpec { name: "s3ManagedLedgerOffloadRegion", default: "" },
    KeySpec { name: "managedLedgerOffloadIntervalSeconds", default: "10" },
    KeySpec { name: "managedLedgerOffloadDeletionLagMs", default: "14400000" },
    KeySpec { name: "brokerServicePortTls", default: "" },
    KeySpec { name: "webServicePortTls", default: "" },
    KeySpec { name: "tlsCertificateFilePath", default: "" },
    KeySpec { name: "tlsKeyFilePath", default: "" },
    KeySpec { name: "tlsTrustCertsFilePath", default: "" },
    KeySpec { name: "tlsRequireTrustedClientCertOnConnect", default: "false" },
    KeySpec { name: "tlsProtocols", default: "" },
    KeySpec { name: "tlsCiphers", default: "" },
    KeySpec { name: "authenticationEnabled", default: "false" },
    KeySpec { name: "authenticationProviders", default: "" },
    KeySpec { name: "superUserRoles", default: "" },
    KeySpec { name: "authorizationEnabled", default: "false" },
    KeySpec { name: "anonymousUserRole", default: "" },
    KeySpec { name: "tokenSecretKey", default: "" },
    KeySpec { name: "tokenPublicKey", default: "" },
    KeySpec { name: "tokenPublicAlg", default: "RS256" },
    KeySpec { name: "tokenAuthClaim", default: "sub" },
    KeySpec { name: "tokenAudienceClaim", default: "aud" },
    KeySpec { name: "tokenAudience", default: "" },
    KeySpec { name: "exposeTopicLevelMetricsInPrometheus", default: "false" },
    KeySpec { name: "statsUpdateFrequencyInSecs", default: "60" },
];

/// The validated host configuration, plus every raw entry for handlers.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Protocols to load from `protocol_handler_directory` (`messagingProtocols`).
    pub messaging_protocols: Vec<String>,
    /// Where handler libraries are found (`protocolHandlerDirectory`).
    pub protocol_handler_directory: PathBuf,
    /// Address the host's own services bind (`bindAddress`).
    pub bind_address: IpAddr,
    /// Address advertised to clients (`advertisedAddress`); never a wildcard.
    pub advertised_address: String,
    /// Pulsar binary protocol port (`brokerServicePort`); `None` (an empty
    /// value) turns the Pulsar protocol off.
    pub broker_service_port: Option<u16>,
    /// HTTP admin port (`webServicePort`).
    pub web_service_port: u16,
    /// Root of the broker's storage (`dataDirectory`).
    pub data_directory: PathBuf,
    /// Log filter (`logLevel`): a level or `tracing` filter directives.
    pub log_level: String,
    /// How long shutdown waits for connections to finish (`brokerShutdownTimeoutMs`).
    pub shutdown_timeout: Duration,
    /// Cluster name (`clusterName`), reported to clients.
    pub cluster_name: String,
    /// Where metadata lives (`metadataStoreUrl`): `None` for the embedded
    /// store in the data directory, else an etcd URL (`etcd:http://host:port,...`).
    pub metadata_store_url: Option<String>,
    /// The broker's session with the metadata store
    /// (`metadataStoreSessionTimeoutMillis`): its registration outlives it
    /// by at most this long.
    pub metadata_session_timeout: Duration,
    /// Storage: ledgers, auto-creation, retention.
    pub storage: crate::topics::StorageConfig,
    /// Tiered storage (`managedLedgerOffloadDriver` and its keys); `None`: off.
    pub offload: Option<crate::tiering::OffloadConfig>,
    /// Connections and what each may hold.
    pub limits: crate::limits::LimitsConfig,
    /// The Pulsar protocol's own keys.
    pub pulsar: crate::pulsar::PulsarConfig,
    /// TLS and authentication.
    pub security: SecurityConfig,
    /// `/metrics`.
    pub metrics: crate::metrics::MetricsConfig,
    /// Every entry as read, with overrides applied; `advertisedAddress` resolved.
    pub entries: BTreeMap<String, String>,
}

impl BrokerConfig {
    /// Reads `path` and applies `POLYPORT_*` overrides from `env`.
    pub fn load(path: &Path, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut entries = read_file(path)?;
        apply_env(&mut entries, env);
        Self::from_entries(entries)
    }

    /// Validates raw entries.
    pub fn from_entries(mut entries: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut errors = Vec::new();
        // Kafka's name for it, which Kafka operators look for first.
        if let Some(alias) = entries.get(PARTITIONS_ALIAS).map(|v| v.trim().to_owned()) {
            match entries.get("defaultNumPartitions").map(|v| v.trim().to_owned()) {
                None => {
                    entries.insert("defaultNumPartitions".into(), alias);
                }
                Some(own) if own == alias => {}
                Some(own) => errors.push(InvalidValue {
                    key: PARTITIONS_ALIAS.into(),
                    value: alias,
                    expected: format!("the value of defaultNumPartitions ({own}), of which it is an alias, or nothing"),
                }),
            }
        }
        let get = |key: &str| -> String {
            let default = HOST_KEYS.iter().find(|k| k.name == key).map_or("", |k| k.default);
            entries.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()).unwrap_or(default).to_owned()
        };
        let mut check = |key: &str, expected: &str, ok: bool| {
            if !ok {
                errors.push(InvalidValue { key: key.into(), value: get(key), expected: expected.into() });
            }
        };

        let protocols = get("messagingProtocols");
        let messaging_protocols: Vec<String> =
            protocols.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect();
        check(
            "messagingProtocols",
            "a comma-separated list of protocol names (letters, digits, '-', '_')",
            messaging_protocols.iter().all(|p| p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')),
        );

        let bind = get("bindAddress").parse::<IpAddr>();
        check("bindAddress", "an IP address such as 0.0.0.0 or 127.0.0.1", bind.is_ok());
        let bind_address = bind.unwrap_or(IpAddr::from([0, 0, 0, 0]));

        let advertised = get("advertisedAddress");
        check(
            "advertisedAddress",
            "a host name or IP address clients can reach (not a wildcard address)",
            advertised.is_empty() || valid_host(&advertised),
        );
        // Pulsar defaults to the host name; on a single broker the loopback address
        // is what works out of the box without DNS.
        let advertised_address = if !advertised.is_empty() {
            advertised
        } else if bind_address.is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            bind_address.to_string()
        };

        let mut port = |key: &str| -> u16 {
            let parsed = get(key).parse::<u16>();
            check(key, "a TCP port number, 0 to 65535", parsed.is_ok());
            parsed.unwrap_or(0)
        };
        // Set but empty turns the Pulsar protocol off (unset means the default port).
        let pulsar_off = entries.get("brokerServicePort").is_some_and(|v| v.trim().is_empty());
        let broker_service_port = if pulsar_off { None } else { Some(port("brokerServicePort")) };
        let web_service_port = port("webServicePort");

        let log_level = get("logLevel");
        check(
            "logLevel",
            "error, warn, info, debug, trace, or tracing filter directives such as info,polyport=debug",
            tracing_subscriber::EnvFilter::builder().parse(&log_level).is_ok(),
        );

        let timeout = get("brokerShutdownTimeoutMs").parse::<u64>();
        check("brokerShutdownTimeoutMs", "a number of milliseconds", timeout.is_ok());

        let metadata_store_url = Some(get("metadataStoreUrl")).filter(|url| !url.is_empty());
        check(
            "metadataStoreUrl",
            "empty (the embedded store) or etcd:http://host:port, with more endpoints after commas",
            metadata_store_url.as_deref().is_none_or(|url| crate::metadata::etcd_endpoints(url).is_ok()),
        );

        let session = get("metadataStoreSessionTimeoutMillis").parse::<u64>();
        check(
            "metadataStoreSessionTimeoutMillis",
            "a number of milliseconds, at least 1000 (etcd leases count whole seconds)",
            session.as_ref().is_ok_and(|ms| *ms >= 1000),
        );

        let storage = storage_config(&get, &mut check);
        let offload = offload_config(&get, &mut check);
        let security = security_config(&get, &mut check);
        let limits = limits_config(&get, &mut check);
        let mut listener_error = None;
        let pulsar = pulsar_config(&get, &mut check, &mut listener_error);
        let topic_level = get("exposeTopicLevelMetricsInPrometheus");
        check("exposeTopicLevelMetricsInPrometheus", "true or false", matches!(topic_level.as_str(), "true" | "false"));
        let stats_interval = get("statsUpdateFrequencyInSecs").parse::<u64>().ok().filter(|s| (1..=3600).contains(s));
        check("statsUpdateFrequencyInSecs", "a number of seconds, 1 to 3600", stats_interval.is_some());
        let metrics = crate::metrics::MetricsConfig {
            topic_level: topic_level == "true",
            stats_interval: Duration::from_secs(stats_interval.unwrap_or(60)),
        };
        errors.extend(listener_error);

        let dir = |key: &str| PathBuf::from(get(key));
        let config = Self {
            messaging_protocols,
            protocol_handler_directory: dir("protocolHandlerDirectory"),
            bind_address,
            advertised_address: advertised_address.clone(),
            broker_service_port,
            web_service_port,
            data_directory: dir("dataDirectory"),
            log_level,
            shutdown_timeout: Duration::from_millis(timeout.unwrap_or(5000)),
            cluster_name: get("clusterName"),
            metadata_store_url,
            metadata_session_timeout: Duration::from_millis(session.unwrap_or(5000)),
            storage,
            offload,
            limits,
            pulsar,
            security,
            metrics,
            entries: BTreeMap::new(),
        };
        if !errors.is_empty() {
            return Err(ConfigError::Invalid(errors));
        }
        // Handlers see the resolved address, as in Pulsar.
        entries.insert("advertisedAddress".into(), advertised_address);
        Ok(Self { entries, ..config })
    }

    /// Keys set in the configuration that neither the host nor `handler_keys` declare.
    pub fn unknown_keys<'a>(&'a self, handler_keys: &'a [String]) -> impl Iterator<Item = &'a str> + 'a {
        self.entries.keys().map(String::as_str).filter(move |key| {
            *key != PARTITIONS_ALIAS
                && !HOST_KEYS.iter().any(|k| k.name == *key)
                && !handler_keys.iter().any(|k| k == key)
        })
    }
}

/// The Pulsar protocol's keys.
fn pulsar_config(
    get: &dyn Fn(&str) -> String,
    check: &mut dyn FnMut(&str, &str, bool),
    listener_error: &mut Option<InvalidValue>,
) -> crate::pulsar::PulsarConfig {
    let max_message = get("maxMessageSize").parse::<usize>().unwrap_or(5 << 20);
    let listeners =
        match crate::pulsar::listeners::Listeners::parse(&get("advertisedListeners"), &get("internalListenerName")) {
            Ok(l) => l,
            Err(e) => {
                *listener_error = Some(InvalidValue {
                    key: "advertisedListeners".into(),
                    value: get("advertisedListeners"),
                    expected: format!("name:pulsar://host:port,... ({e})"),
                });
                crate::pulsar::listeners::Listeners::default()
            }
        };
    let delayed = get("delayedDeliveryEnabled");
    check("delayedDeliveryEnabled", "true or false", matches!(delayed.as_str(), "true" | "false"));
    let tick = get("delayedDeliveryTickTimeMillis").parse::<u64>().ok().filter(|t| (1..=3_600_000).contains(t));
    check("delayedDeliveryTickTimeMillis", "a number of milliseconds, 1 to 3600000", tick.is_some());
    crate::pulsar::PulsarConfig {
        max_message_size: max_message,
        listeners,
        delayed_delivery: delayed != "false",
        delayed_delivery_tick: Duration::from_millis(tick.unwrap_or(1000)),
    }
}

/// TLS and authentication, as configured.
#[derive(Debug, Clone, Default)]
pub struct SecurityConfig {
    /// The TLS keys; `None` when no certificate is configured.
    pub tls: Option<crate::security::tls::TlsConfig>,
    /// `brokerServicePortTls`: the Pulsar protocol over TLS (`pulsar+ssl://`).
    pub broker_service_port_tls: Option<u16>,
    /// `webServicePortTls`: the admin REST API over TLS (`https://`).
    pub web_service_port_tls: Option<u16>,
    /// The authentication keys.
    pub auth: crate::security::AuthConfig,
    /// The authorization keys.
    pub authz: crate::security::authz::AuthzConfig,
}

fn list(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Pulsar's TLS and authentication keys. Keys and certificates are read
/// at start-up (`Broker::start`), which names the file at fault.
fn security_config(get: &dyn Fn(&str) -> String, check: &mut dyn FnMut(&str, &str, bool)) -> SecurityConfig {
    let boolean = |check: &mut dyn FnMut(&str, &str, bool), key: &str| {
        let value = get(key);
        check(key, "true or false", matches!(value.as_str(), "true" | "false"));
        value == "true"
    };
    let require_client_cert = boolean(check, "tlsRequireTrustedClientCertOnConnect");
    let (certificate, key) = (get("tlsCertificateFilePath"), get("tlsKeyFilePath"));
    check(
        "tlsKeyFilePath",
        "a PEM private key file, set with tlsCertificateFilePath",
        certificate.is_empty() == key.is_empty(),
    );
    let trust = get("tlsTrustCertsFilePath");
    let tls = (!certificate.is_empty() && !key.is_empty()).then(|| crate::security::tls::TlsConfig {
        certificate,
        key,
        trust_certs: Some(trust).filter(|t| !t.is_empty()),
        require_client_cert,
        protocols: list(&get("tlsProtocols")),
        ciphers: list(&get("tlsCiphers")),
    });
    let mut tls_port = |key: &str| {
        let value = get(key);
        if value.is_empty() {
            return None;
        }
        let port = value.parse::<u16>();
        check(key, "empty (off) or a TCP port number", port.is_ok());
        check(key, "a port only with tlsCertificateFilePath and tlsKeyFilePath set", port.is_err() || tls.is_some());
        port.ok()
    };
    let broker_service_port_tls = tls_port("brokerServicePortTls");
    let web_service_port_tls = tls_port("webServicePortTls");

    let enabled = boolean(check, "authenticationEnabled");
    let providers = get("authenticationProviders");
    let (token_provider, tls_provider) = match crate::security::AuthConfig::providers(&providers) {
        Ok(found) => found,
        Err(unknown) => {
            check(
                "authenticationProviders",
                &format!(
                    "providers among org.apache.pulsar.broker.authentication.AuthenticationProviderToken (token) and \
                     org.apache.pulsar.broker.authentication.AuthenticationProviderTls (tls); {unknown} is not served"
                ),
                false,
            );
            (false, false)
        }
    };
    check(
        "authenticationProviders",
        "at least one provider when authenticationEnabled=true (AuthenticationProviderToken, AuthenticationProviderTls)",
        !enabled || token_provider || tls_provider,
    );
    let optional = |key: &str| Some(get(key)).filter(|v| !v.is_empty());
    let auth = crate::security::AuthConfig {
        enabled,
        token_provider,
        tls_provider,
        token: crate::security::token::TokenConfig {
            secret_key: optional("tokenSecretKey"),
            public_key: optional("tokenPublicKey"),
            public_alg: get("tokenPublicAlg"),
            role_claim: get("tokenAuthClaim"),
            audience_claim: get("tokenAudienceClaim"),
            audience: optional("tokenAudience"),
        },
        super_users: list(&get("superUserRoles")),
    };
    let authz = crate::security::authz::AuthzConfig {
        enabled: boolean(check, "authorizationEnabled"),
        super_users: list(&get("superUserRoles")),
        anonymous_role: optional("anonymousUserRole"),
    };
    SecurityConfig { tls, broker_service_port_tls, web_service_port_tls, auth, authz }
}

/// The limits on connections and what each may hold.
fn limits_config(get: &dyn Fn(&str) -> String, check: &mut dyn FnMut(&str, &str, bool)) -> crate::limits::LimitsConfig {
    let mut number = |key: &str, min: usize, expected: &str| -> usize {
        let parsed = get(key).parse::<usize>().ok().filter(|v| *v >= min);
        check(key, expected, parsed.is_some());
        parsed.unwrap_or(min)
    };
    crate::limits::LimitsConfig {
        max_connections: number("brokerMaxConnections", 0, "a number of connections, or 0 for no limit"),
        max_connections_per_ip: number("brokerMaxConnectionsPerIp", 0, "a number of connections, or 0 for no limit"),
        max_producers_per_connection: number("maxProducersPerConnection", 1, "a number of producers, 1 or more"),
        max_consumers_per_connection: number("maxConsumersPerConnection", 1, "a number of consumers, 1 or more"),
        max_pending_bytes_per_connection: number(
            "maxPendingBytesPerConnection",
            1 << 20,
            "a number of bytes, 1048576 or more",
        ),
    }
}

/// The tiered-storage keys: Pulsar's names for its S3 offloader, plus how
/// often what is appended to an active segment goes up.
fn offload_config(
    get: &dyn Fn(&str) -> String,
    check: &mut dyn FnMut(&str, &str, bool),
) -> Option<crate::tiering::OffloadConfig> {
    let driver = get("managedLedgerOffloadDriver");
    let s3 = matches!(driver.to_ascii_lowercase().as_str(), "aws-s3" | "s3");
    check("managedLedgerOffloadDriver", "empty (no tiering), aws-s3 or S3", driver.is_empty() || s3);
    let interval = get("managedLedgerOffloadIntervalSeconds").parse::<u64>().ok().filter(|s| *s >= 1);
    check("managedLedgerOffloadIntervalSeconds", "a number of seconds, 1 or more", interval.is_some());
    let lag = get("managedLedgerOffloadDeletionLagMs").parse::<u64>().ok();
    check("managedLedgerOffloadDeletionLagMs", "a number of milliseconds, 0 or more", lag.is_some());
    if !s3 {
        return None;
    }
    let bucket = get("s3ManagedLedgerOffloadBucket");
    check(
        "s3ManagedLedgerOffloadBucket",
        "a bucket name (managedLedgerOffloadDriver=aws-s3 needs one)",
        !bucket.is_empty() && !bucket.contains('/'),
    );
    let endpoint = get("s3ManagedLedgerOffloadServiceEndpoint");
    check(
        "s3ManagedLedgerOffloadServiceEndpoint",
        "empty (AWS) or an http:// or https:// URL",
        endpoint.is_empty() || endpoint.starts_with("http://") || endpoint.starts_with("https://"),
    );
    let region = get("s3ManagedLedgerOffloadRegion");
    Some(crate::tiering::OffloadConfig {
        bucket,
        endpoint: Some(endpoint).filter(|e| !e.is_empty()),
        region: Some(region).filter(|r| !r.is_empty()),
        interval: Duration::from_secs(interval.unwrap_or(10)),
        deletion_lag: Duration::from_millis(lag.unwrap_or(14_400_000)),
    })
}

/// The storage keys.
fn storage_config(
    get: &dyn Fn(&str) -> String,
    check: &mut dyn FnMut(&str, &str, bool),
) -> crate::topics::StorageConfig {
    use polyport_ledger::{LedgerConfig, SyncPolicy};
    let mut number = |key: &str, min: i64, expected: &str| -> i64 {
        let parsed = get(key).parse::<i64>().ok().filter(|v| *v >= min);
        check(key, expected, parsed.is_some());
        parsed.unwrap_or(min.max(0))
    };
    let max_delay = number("managedLedgerGroupCommitMaxDelayMs", 0, "a number of milliseconds, 0 or more");
    let max_bytes = number("managedLedgerGroupCommitMaxBytes", 1, "a number of bytes, 1 or more");
    let segment_mb = number("managedLedgerMaxSizePerLedgerMbytes", 1, "a number of MB, 1 or more");
    let roll_minutes = number("managedLedgerMaxLedgerRolloverTimeMinutes", 1, "a number of minutes, 1 or more");
    let index_interval = number("managedLedgerIndexIntervalBytes", 64, "a number of bytes, 64 or more");
    let cursor_flush = number("managedLedgerCursorFlushIntervalMs", 1, "a number of milliseconds, 1 or more");
    let max_message = number("maxMessageSize", 1024, "a number of bytes, 1024 or more");
    let partitions = number("defaultNumPartitions", 1, "a number of partitions, 1 to 100000");
    let retention_minutes = number("defaultRetentionTimeInMinutes", -1, "a number of minutes, or -1 for no limit");
    let retention_mb = number("defaultRetentionSizeInMB", -1, "a number of MB, or -1 for no limit");
    let ttl = number("ttlDurationDefaultInSeconds", 0, "a number of seconds, 0 for none");
    let retention_check = number("retentionCheckIntervalInSeconds", 1, "a number of seconds, 1 or more");
    // Empty: a sixteenth of the machine's memory (what Pulsar's default, a
    // fifth of the JVM's direct memory, comes to on a typical deployment).
    let cache_mb = match get("managedLedgerCacheSizeMB").as_str() {
        "" => (physical_memory_bytes() / 16) >> 20,
        _ => number("managedLedgerCacheSizeMB", 0, "a number of MB, 0 or more, or empty for a sixteenth of the memory")
            as u64,
    };
    let sync = match get("managedLedgerSyncPolicy").as_str() {
        "always" => SyncPolicy::Always,
        "os" => SyncPolicy::Os,
        other => {
            check("managedLedgerSyncPolicy", "always, group or os", other == "group");
            SyncPolicy::Group { max_delay: Duration::from_millis(max_delay as u64), max_bytes: max_bytes as u64 }
        }
    };
    check("defaultNumPartitions", "a number of partitions, 1 to 100000", partitions <= 100_000);
    let direct = get("managedLedgerDirectIo");
    check("managedLedgerDirectIo", "true or false", matches!(direct.as_str(), "true" | "false"));
    let auto = get("allowAutoTopicCreation");
    check("allowAutoTopicCreation", "true or false", matches!(auto.as_str(), "true" | "false"));
    let auto_type = get("allowAutoTopicCreationType");
    check(
        "allowAutoTopicCreationType",
        "partitioned or non-partitioned",
        matches!(auto_type.as_str(), "partitioned" | "non-partitioned"),
    );
    crate::topics::StorageConfig {
        ledger: LedgerConfig {
            segment_bytes: (segment_mb as u64) << 20,
            segment_max_age: Duration::from_secs(roll_minutes as u64 * 60),
            index_interval_bytes: index_interval as u64,
            // A Pulsar frame may carry maxMessageSize plus its padding
            // (chunks are sized before their metadata is added).
            max_entry_bytes: max_message as u64 + crate::pulsar::frame::FRAME_PADDING as u64,
            sync,
            cursor_flush_interval: Duration::from_millis(cursor_flush as u64),
        },
        auto_create: auto != "false",
        auto_create_partitioned: auto_type == "partitioned",
        default_partitions: u32::try_from(partitions).unwrap_or(1),
        retention: crate::topics::RetentionPolicy::from_config(retention_minutes, retention_mb, ttl),
        retention_check_interval: Duration::from_secs(retention_check as u64),
        cache_bytes: cache_mb << 20,
        direct_io: direct != "false",
    }
}

/// The machine's physical memory (1 GiB if it cannot be read).
fn physical_memory_bytes() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let (pages, page) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    if pages > 0 && page > 0 {
        pages as u64 * page as u64
    } else {
        1 << 30
    }
}

fn valid_host(host: &str) -> bool {
    match host.parse::<IpAddr>() {
        Ok(ip) => !ip.is_unspecified(),
        Err(_) => {
            host.len() <= 253
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !label.starts_with('-')
                })
        }
    }
}

/// Reads `key=value` lines with `#` comments through the `config` crate.
fn read_file(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let source = File::from(path).format(FileFormat::Ini).required(true);
    let parsed = config::Config::builder()
        .add_source(source)
        .build()
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    let table = parsed
        .try_deserialize::<std::collections::HashMap<String, config::Value>>()
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    let mut entries = BTreeMap::new();
    for (key, value) in table {
        let value = value.into_string().map_err(|_| ConfigError::Syntax {
            path: path.to_owned(),
            message: format!("[{key}] sections are not supported: broker.conf is flat key=value lines"),
        })?;
        entries.insert(key, value);
    }
    Ok(entries)
}

/// Applies `POLYPORT_<key>` overrides. The key after the prefix matches
/// exactly, or else case-insensitively against host keys and keys already in
/// the file (environment variables are often upper-cased).
fn apply_env(entries: &mut BTreeMap<String, String>, env: impl IntoIterator<Item = (String, String)>) {
    for (name, value) in env {
        let Some(key) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if key.is_empty() {
            continue;
        }
        let canonical = HOST_KEYS
            .iter()
            .map(|k| k.name.to_owned())
            .chain(entries.keys().cloned())
            .find(|known| known == key)
            .or_else(|| {
                HOST_KEYS
                    .iter()
                    .map(|k| k.name.to_owned())
                    .chain(entries.keys().cloned())
                    .find(|known| known.eq_ignore_ascii_case(key))
            })
            .unwrap_or_else(|| key.to_owned());
        entries.insert(canonical, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".conf").tempfile().expect("tempfile");
        std::io::Write::write_all(&mut f, text.as_bytes()).expect("write");
        f
    }

    #[test]
    fn reads_key_values_comments_and_urls() {
        let f = write("# comment\nmessagingProtocols=kafka\nkafkaListeners=PLAINTEXT://0.0.0.0:9092\nempty=\n");
        let c = BrokerConfig::load(f.path(), []).expect("valid");
        assert_eq!(c.messaging_protocols, vec!["kafka"]);
        assert_eq!(c.entries["kafkaListeners"], "PLAINTEXT://0.0.0.0:9092");
        assert_eq!(c.broker_service_port, Some(6650));
        assert_eq!(c.advertised_address, "127.0.0.1");
    }

    #[test]
    fn env_overrides_match_case_insensitively() {
        let f = write("brokerServicePort=6650\nkafkaListeners=PLAINTEXT://0.0.0.0:9092\n");
        let env = [
            ("POLYPORT_BROKERSERVICEPORT".to_owned(), "7000".to_owned()),
            ("POLYPORT_kafkaListeners".to_owned(), "PLAINTEXT://127.0.0.1:19092".to_owned()),
            ("OTHER".to_owned(), "x".to_owned()),
        ];
        let c = BrokerConfig::load(f.path(), env).expect("valid");
        assert_eq!(c.broker_service_port, Some(7000));
        let off = BrokerConfig::from_entries([("brokerServicePort".to_owned(), String::new())].into()).expect("valid");
        assert_eq!(off.broker_service_port, None, "an empty port turns the Pulsar protocol off");
        assert_eq!(c.entries["kafkaListeners"], "PLAINTEXT://127.0.0.1:19092");
    }

    #[test]
    fn num_partitions_is_an_alias_of_default_num_partitions() {
        let entries = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let c = BrokerConfig::from_entries(entries(&[("num.partitions", "6")])).expect("valid");
        assert_eq!(c.storage.default_partitions, 6);
        assert_eq!(c.unknown_keys(&[]).count(), 0, "not an unknown key");
        let same = BrokerConfig::from_entries(entries(&[("num.partitions", "6"), ("defaultNumPartitions", "6")]));
        assert_eq!(same.expect("the same value").storage.default_partitions, 6);
        let ConfigError::Invalid(e) =
            BrokerConfig::from_entries(entries(&[("num.partitions", "6"), ("defaultNumPartitions", "4")]))
                .expect_err("two values")
        else {
            panic!("not a validation error")
        };
        assert_eq!(e[0].key, "num.partitions");
        assert!(e[0].expected.contains("defaultNumPartitions (4)"), "{}", e[0]);
    }

    #[test]
    fn tiering_keys_are_pulsar_s_and_checked_together() {
        let entries = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let c = BrokerConfig::from_entries(entries(&[])).expect("valid");
        assert_eq!(c.offload, None, "off by default");
        let c = BrokerConfig::from_entries(entries(&[
            ("managedLedgerOffloadDriver", "aws-s3"),
            ("s3ManagedLedgerOffloadBucket", "b"),
            ("s3ManagedLedgerOffloadServiceEndpoint", "http://127.0.0.1:8333"),
        ]))
        .expect("valid");
        let offload = c.offload.expect("on");
        assert_eq!((offload.bucket.as_str(), offload.interval), ("b", Duration::from_secs(10)));
        let err = BrokerConfig::from_entries(entries(&[("managedLedgerOffloadDriver", "S3")]))
            .expect_err("no bucket")
            .to_string();
        assert!(err.contains("s3ManagedLedgerOffloadBucket=\"\": expected a bucket name"), "{err}");
        let err = BrokerConfig::from_entries(entries(&[
            ("managedLedgerOffloadDriver", "google-cloud-storage"),
            ("managedLedgerOffloadIntervalSeconds", "0"),
        ]))
        .expect_err("unsupported")
        .to_string();
        assert!(err.contains("managedLedgerOffloadDriver=\"google-cloud-storage\": expected empty"), "{err}");
        assert!(err.contains("managedLedgerOffloadIntervalSeconds=\"0\""), "{err}");
    }

    #[test]
    fn bad_values_name_key_value_and_expectation() {
        let f = write("brokerServicePort=70000\nbindAddress=nowhere\nlogLevel=loud=x=y\n");
        let err = BrokerConfig::load(f.path(), []).expect_err("invalid").to_string();
        assert!(err.contains("brokerServicePort=\"70000\": expected a TCP port number"), "{err}");
        assert!(err.contains("bindAddress=\"nowhere\": expected an IP address"), "{err}");
        assert!(err.contains("logLevel="), "{err}");
    }

    #[test]
    fn unknown_keys_exclude_host_and_handler_keys() {
        let f = write("kafkaListeners=x\nkafkaListners=y\nbrokerServicePort=1\n");
        let c = BrokerConfig::load(f.path(), []).expect("valid");
        let handler_keys = vec!["kafkaListeners".to_owned()];
        let unknown: Vec<_> = c.unknown_keys(&handler_keys).collect();
        assert_eq!(unknown, vec!["kafkaListners"]);
    }
}
