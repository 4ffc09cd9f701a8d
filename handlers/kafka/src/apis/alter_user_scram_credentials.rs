//! AlterUserScramCredentials (key 51, KIP-554).
//!
//! Versions: 0 (flexible). Sets (upsertions: mechanism, iterations, salt,
//! salted password; the client salts and hashes, the password never
//! travels) and deletes (deletions) SCRAM credentials in the host's
//! credential store ([`Host::alter_scram`](polyport_handler_api::Host::alter_scram)),
//! which SASL SCRAM exchanges on every protocol then check.
//! One result per user, in the order users are first named (deletions,
//! then upsertions), as Kafka answers. A user's changes are checked
//! together first, as Kafka (ZooKeeper mode) checks them, and none of them
//! is applied when one fails:
//! - an empty user name: UNACCEPTABLE_CREDENTIAL (93) "Username must not be empty";
//! - a mechanism other than 1 (SCRAM-SHA-256) or 2 (SCRAM-SHA-512):
//!   UNSUPPORTED_SASL_MECHANISM (33) "Unknown SCRAM mechanism";
//! - iterations below 4096 or above 16384: UNACCEPTABLE_CREDENTIAL "Too
//!   few iterations" / "Too many iterations"; an empty salt or salted
//!   password: UNACCEPTABLE_CREDENTIAL;
//! - the same user and mechanism twice: DUPLICATE_RESOURCE (92) "A user
//!   credential cannot be altered twice in the same request" (two
//!   mechanisms of one user in one request are fine, as in ZooKeeper mode;
//!   KRaft refuses them).
//!
//! The host's answers per change: NOT_FOUND (deleting a credential that
//! does not exist) is RESOURCE_NOT_FOUND (91), INVALID_ARGUMENT
//! UNACCEPTABLE_CREDENTIAL, UNSUPPORTED UNSUPPORTED_SASL_MECHANISM,
//! ALREADY_EXISTS DUPLICATE_RESOURCE.
//! Authorization: the host's, a super-user's right when authorization is
//! on (Kafka's ALTER on CLUSTER); it is asked even when every change was
//! refused above, so that a role that may not gets
//! CLUSTER_AUTHORIZATION_FAILED (31) for every user, as from Kafka.
//! Changes are logged at info with the user, the mechanism and the
//! iterations; never a salt or a salted password.
//! Gaps: a user's changes that pass the checks above are applied one by
//! one: when the host refuses one (deleting what does not exist), the
//! user's others are applied all the same, and the user's result is the
//! refusal.

use std::collections::HashMap;

use kafka_protocol::{
    messages::{
        alter_user_scram_credentials_response::AlterUserScramCredentialsResult, AlterUserScramCredentialsRequest,
        AlterUserScramCredentialsResponse,
    },
    protocol::{StrBytes, VersionRange},
};
use polyport_handler_api::{ErrorKind, HandlerError, ScramChange, ScramUpsert};

use super::RequestContext;
use crate::{admin, errors};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

/// Kafka's bounds of SCRAM iterations (`ScramMechanism.minIterations`, and
/// the brokers' maximum).
pub const MIN_ITERATIONS: i32 = 4096;
/// See [`MIN_ITERATIONS`].
pub const MAX_ITERATIONS: i32 = 16384;

/// One change as the request has it.
struct Change {
    user: String,
    mechanism: i8,
    /// (iterations, salt, salted password); `None` deletes.
    upsert: Option<(i32, bytes::Bytes, bytes::Bytes)>,
}

/// Why Kafka refuses `change` before looking at the stored credentials,
/// in Kafka's order: the user name, the mechanism, the iterations.
fn refused(change: &Change) -> Option<(i16, &'static str)> {
    if change.user.is_empty() {
        return Some((errors::UNACCEPTABLE_CREDENTIAL, "Username must not be empty"));
    }
    if admin::scram_mechanism_name(change.mechanism).is_none() {
        return Some((errors::UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"));
    }
    match &change.upsert {
        Some((iterations, ..)) if *iterations < MIN_ITERATIONS => {
            Some((errors::UNACCEPTABLE_CREDENTIAL, "Too few iterations"))
        }
        Some((iterations, ..)) if *iterations > MAX_ITERATIONS => {
            Some((errors::UNACCEPTABLE_CREDENTIAL, "Too many iterations"))
        }
        Some((_, salt, salted)) if salt.is_empty() || salted.is_empty() => {
            Some((errors::UNACCEPTABLE_CREDENTIAL, "An empty salt or salted password is not a credential"))
        }
        _ => None,
    }
}

/// The Kafka error for the host's refusal of one change.
fn change_error(e: &HandlerError) -> (i16, String) {
    let code = match e.kind() {
        ErrorKind::NOT_FOUND => errors::RESOURCE_NOT_FOUND,
        ErrorKind::INVALID_ARGUMENT => errors::UNACCEPTABLE_CREDENTIAL,
        ErrorKind::UNSUPPORTED => errors::UNSUPPORTED_SASL_MECHANISM,
        _ => return admin::host_error(e),
    };
    (code, e.message().to_owned())
}

fn result(user: &str, error: Option<(i16, String)>) -> AlterUserScramCredentialsResult {
    let out = AlterUserScramCredentialsResult::default().with_user(StrBytes::from_string(user.to_owned()));
    match error {
        Some((code, message)) => out.with_error_code(code).with_error_message(Some(StrBytes::from_string(message))),
        None => out,
    }
}

/// Applies the changes.
pub async fn handle(
    ctx: &RequestContext<'_>,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let deletions = request.deletions.into_iter().map(|d| Change {
        user: d.name.as_str().to_owned(),
        mechanism: d.mechanism,
        upsert: None,
    });
    let upsertions = request.upsertions.into_iter().map(|u| Change {
        user: u.name.as_str().to_owned(),
        mechanism: u.mechanism,
        upsert: Some((u.iterations, u.salt, u.salted_password)),
    });
    let changes: Vec<Change> = deletions.chain(upsertions).collect();

    // Users in the order first named, and the first refusal of each.
    let mut users: Vec<&str> = Vec::new();
    let mut errors_of: HashMap<&str, (i16, String)> = HashMap::new();
    let mut pairs: HashMap<(&str, i8), usize> = HashMap::new();
    for change in &changes {
        let user = change.user.as_str();
        if !users.contains(&user) {
            users.push(user);
        }
        if let Some((code, message)) = refused(change) {
            errors_of.entry(user).or_insert((code, message.to_owned()));
        }
        *pairs.entry((user, change.mechanism)).or_default() += 1;
    }
    for (&(user, _), &count) in &pairs {
        if count > 1 && !errors_of.contains_key(user) {
            let message = "A user credential cannot be altered twice in the same request".to_owned();
            errors_of.insert(user, (errors::DUPLICATE_RESOURCE, message));
        }
    }

    let fail_all = |(code, message): (i16, String)| {
        let mut sorted = users.clone();
        sorted.sort_unstable();
        let results = sorted.into_iter().map(|u| result(u, Some((code, message.clone())))).collect();
        AlterUserScramCredentialsResponse::default().with_results(results)
    };
    let Some(admin) = ctx.security_admin() else { return fail_all(admin::no_host()) };

    let mut sent: Vec<&Change> = Vec::new();
    let mut asked: Vec<ScramChange> = Vec::new();
    for change in changes.iter().filter(|c| !errors_of.contains_key(c.user.as_str())) {
        let Some(mechanism) = admin::scram_mechanism_name(change.mechanism) else { continue };
        let upsert = change.upsert.as_ref().map(|(iterations, salt, salted)| ScramUpsert {
            iterations: u32::try_from(*iterations).unwrap_or_default(),
            salt: salt.to_vec().into(),
            salted_password: salted.to_vec().into(),
        });
        asked.push(ScramChange {
            user: change.user.as_str().into(),
            mechanism: mechanism.into(),
            upsert: upsert.into(),
        });
        sent.push(change);
    }
    // Asked even with no change left: the host checks the role first.
    let answers = match admin.alter_scram(ctx.role(), asked).await {
        Ok(answers) => answers,
        Err(e) => {
            if e.kind() == ErrorKind::NOT_AUTHORIZED {
                tracing::info!(role = ctx.role().unwrap_or("anonymous"), reason = %e,
                    "not authorized to alter SCRAM credentials");
            }
            return fail_all(admin::host_error(&e));
        }
    };
    let mut answers = answers.into_iter();
    for change in sent {
        let mechanism = admin::scram_mechanism_name(change.mechanism).unwrap_or_default();
        let answer = answers
            .next()
            .unwrap_or_else(|| Err(HandlerError::new(ErrorKind::OTHER, "the host gave no answer for this change")));
        match (answer, &change.upsert) {
            (Ok(()), Some((iterations, ..))) => {
                tracing::info!(user = %change.user, mechanism, iterations, "SCRAM credential set");
            }
            (Ok(()), None) => tracing::info!(user = %change.user, mechanism, "SCRAM credential deleted"),
            (Err(e), _) => {
                tracing::info!(user = %change.user, mechanism, reason = %e, "SCRAM credential change refused");
                errors_of.entry(change.user.as_str()).or_insert_with(|| change_error(&e));
            }
        }
    }
    let results = users.iter().map(|u| result(u, errors_of.get(u).cloned())).collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}
