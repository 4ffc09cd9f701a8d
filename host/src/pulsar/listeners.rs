//! Named listeners (`advertisedListeners`, `internalListenerName`): the URL a
//! lookup answers depends on the listener the client names, as in Pulsar
//! (PIP-61). A client inside the network asks for `internal`, one outside
//! for `external`, and each gets an address it can reach.

/// One named listener: its plain and TLS URLs (either may be absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The name clients give (`listenerName` in the client's configuration).
    pub name: String,
    /// `pulsar://host:port`.
    pub url: Option<String>,
    /// `pulsar+ssl://host:port`.
    pub url_tls: Option<String>,
}

/// The listeners of this broker and the one that answers unnamed lookups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listeners {
    /// Declared listeners, in configuration order.
    pub named: Vec<Listener>,
    /// The listener of lookups that name none (`internalListenerName`, or
    /// the first declared); `None` when no listener is declared.
    pub internal: Option<String>,
}

/// What a lookup for a listener answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    /// `brokerServiceUrl`.
    pub url: Option<String>,
    /// `brokerServiceUrlTls`.
    pub url_tls: Option<String>,
}

impl Listeners {
    /// Parses `advertisedListeners` (`name:pulsar://host:port,name:pulsar+ssl://host:port,...`)
    /// and `internalListenerName`; the error says what is wrong.
    pub fn parse(advertised: &str, internal: &str) -> Result<Self, String> {
        let mut named: Vec<Listener> = Vec::new();
        for item in advertised.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, url) = item.split_once(':').ok_or_else(|| format!("{item:?} is not name:pulsar://host:port"))?;
            let name = name.trim();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.') {
                return Err(format!("{item:?}: a listener name is letters, digits, '-', '_' or '.'"));
            }
            let tls = if url.starts_with("pulsar+ssl://") {
                true
            } else if url.starts_with("pulsar://") {
                false
            } else {
                return Err(format!("{item:?}: the URL must start with pulsar:// or pulsar+ssl://"));
            };
            let rest = url.split_once("://").map_or("", |(_, r)| r);
            let port = rest.rsplit_once(':').and_then(|(host, port)| (!host.is_empty()).then_some(port));
            if port.and_then(|p| p.parse::<u16>().ok()).is_none() {
                return Err(format!("{item:?}: the URL needs a host and a port"));
            }
            let index = match named.iter().position(|l| l.name == name) {
                Some(i) => i,
                None => {
                    named.push(Listener { name: name.to_owned(), url: None, url_tls: None });
                    named.len() - 1
                }
            };
            let slot = if tls { &mut named[index].url_tls } else { &mut named[index].url };
            if slot.is_some() {
                return Err(format!(
                    "listener {name} has two {} URLs",
                    if tls { "pulsar+ssl://" } else { "pulsar://" }
                ));
            }
            *slot = Some(url.to_owned());
        }
        let internal = internal.trim();
        let internal = if internal.is_empty() {
            named.first().map(|l| l.name.clone())
        } else if named.iter().any(|l| l.name == internal) {
            Some(internal.to_owned())
        } else {
            return Err(format!("internalListenerName {internal} is not one of the advertisedListeners"));
        };
        Ok(Self { named, internal })
    }

    /// The URLs for a lookup naming `listener` (empty: none named), with
    /// `default` (`pulsar://advertisedAddress:brokerServicePort`) when no
    /// listener is declared. An unknown name is an error naming it.
    pub fn urls(&self, listener: Option<&str>, default: &str, default_tls: Option<&str>) -> Result<Urls, String> {
        let wanted = listener.filter(|l| !l.is_empty());
        let name = match (wanted, &self.internal) {
            (None, None) => return Ok(Urls { url: Some(default.to_owned()), url_tls: default_tls.map(str::to_owned) }),
            (None, Some(internal)) => internal.as_str(),
            (Some(name), _) => name,
        };
        let known: Vec<&str> = self.named.iter().map(|l| l.name.as_str()).collect();
        let listener = self.named.iter().find(|l| l.name == name).ok_or_else(|| {
            if known.is_empty() {
                format!("listener {name} is not configured: this broker declares no advertisedListeners")
            } else {
                format!("listener {name} is not configured on this broker (advertisedListeners: {})", known.join(", "))
            }
        })?;
        Ok(Urls { url: listener.url.clone(), url_tls: listener.url_tls.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_answer_the_listener_named() {
        let l = Listeners::parse(
            "internal:pulsar://10.0.0.1:6650, external:pulsar://broker.example.com:16650,external:pulsar+ssl://broker.example.com:16651",
            "",
        )
        .expect("valid");
        assert_eq!(l.internal.as_deref(), Some("internal"), "the first is the internal one by default");
        let d = "pulsar://127.0.0.1:6650";
        assert_eq!(l.urls(None, d, None).expect("internal").url.as_deref(), Some("pulsar://10.0.0.1:6650"));
        let ext = l.urls(Some("external"), d, None).expect("external");
        assert_eq!(ext.url.as_deref(), Some("pulsar://broker.example.com:16650"));
        assert_eq!(ext.url_tls.as_deref(), Some("pulsar+ssl://broker.example.com:16651"));
        let unknown = l.urls(Some("dmz"), d, None).expect_err("unknown");
        assert!(unknown.contains("dmz") && unknown.contains("internal, external"), "{unknown}");
        let none = Listeners::parse("", "").expect("empty");
        assert_eq!(none.urls(None, d, None).expect("default").url.as_deref(), Some(d));
        assert!(none.urls(Some("external"), d, None).is_err(), "a name where none is declared");
        assert_eq!(
            Listeners::parse("a:pulsar://h:1,b:pulsar://h:2", "b").expect("valid").internal.as_deref(),
            Some("b")
        );
    }

    #[test]
    fn bad_listeners_are_named() {
        for (value, internal, says) in [
            ("internal", "", "name:pulsar://"),
            ("internal:http://h:1", "", "pulsar://"),
            ("internal:pulsar://h", "", "port"),
            ("in ternal:pulsar://h:1", "", "listener name"),
            ("a:pulsar://h:1,a:pulsar://h:2", "", "two"),
            ("a:pulsar://h:1", "b", "internalListenerName b"),
        ] {
            let e = Listeners::parse(value, internal).expect_err(value);
            assert!(e.contains(says), "{value}: {e}");
        }
    }
}
