//! Docs that stay true: every configuration key the code reads is documented
//! in conf/broker.conf and docs/configuration.md.

use std::fs;

use polyport_tests::workspace_root;

fn keys() -> Vec<&'static str> {
    polyport_host::config::HOST_KEYS
        .iter()
        .map(|k| k.name)
        .chain(kafka::CONFIG_KEYS.iter().copied())
        .chain(kafka::coordinator::CoordinatorConfig::KEYS.iter().copied())
        .collect()
}

#[test]
fn every_key_is_in_broker_conf_with_its_default() {
    let conf = fs::read_to_string(workspace_root().join("conf/broker.conf")).expect("conf/broker.conf");
    for key in keys() {
        assert!(conf.lines().any(|l| l.starts_with(&format!("{key}="))), "conf/broker.conf does not set {key}");
    }
    for spec in polyport_host::config::HOST_KEYS {
        let default = if spec.default.is_empty() { "empty" } else { spec.default };
        let documented =
            conf.split(&format!("\n{}=", spec.name)).next().and_then(|before| before.rsplit("\n\n").next());
        let comment = documented.unwrap_or_default();
        assert!(
            comment.contains(&format!("Default: {default}")),
            "conf/broker.conf: {} should say `Default: {default}`",
            spec.name
        );
    }
}

#[test]
fn every_key_is_in_the_configuration_reference() {
    let doc = fs::read_to_string(workspace_root().join("docs/configuration.md")).expect("docs/configuration.md");
    for key in keys() {
        assert!(doc.contains(&format!("`{key}`")), "docs/configuration.md does not document `{key}`");
    }
}

/// The shipped configuration sets no key that nothing reads (the broker
/// would log "configuration keys not used" at every start).
#[test]
fn the_shipped_configuration_uses_every_key_it_sets() {
    let conf = fs::read_to_string(workspace_root().join("conf/broker.conf")).expect("conf/broker.conf");
    let known = keys();
    let unused: Vec<&str> = conf
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
        .filter(|k| !k.is_empty() && !known.contains(k))
        .collect();
    assert!(unused.is_empty(), "conf/broker.conf sets keys nothing reads: {unused:?}");
}
