//! DescribeUserScramCredentials (key 50, KIP-554).
//!
//! Versions: 0 (flexible). Each user's SCRAM mechanisms (1 SCRAM-SHA-256,
//! 2 SCRAM-SHA-512) and iterations, from the host's credential store
//! ([`Host::scram_users`](polyport_handler_api::Host::scram_users)); never
//! a salt or a key. No users (null or empty) describes every user with a
//! credential.
//! Per user, as Kafka answers: RESOURCE_NOT_FOUND (91) for a user without
//! credentials ("Attempt to describe a user credential that does not
//! exist: …") or an empty name, DUPLICATE_RESOURCE (92) for a user named
//! twice (one result for it, and the host is not asked). Results come in
//! the order the users were first named.
//! Authorization: the host's, a super-user's right when authorization is
//! on (Kafka's DESCRIBE on CLUSTER). A role that may not gets
//! CLUSTER_AUTHORIZATION_FAILED (31) as Kafka sends it: in the top-level
//! error and in a result for each user named.
//! Gaps: a request whose every user is named twice or empty is answered
//! without asking the host, so without an authorization check (it reveals
//! nothing).

use std::collections::HashMap;

use kafka_protocol::{
    messages::{
        describe_user_scram_credentials_response::{CredentialInfo, DescribeUserScramCredentialsResult},
        DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
    },
    protocol::{StrBytes, VersionRange},
};
use polyport_handler_api::{ErrorKind, HandlerError, ScramUser};

use super::RequestContext;
use crate::{admin, errors};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

fn result(user: &str) -> DescribeUserScramCredentialsResult {
    DescribeUserScramCredentialsResult::default().with_user(StrBytes::from_string(user.to_owned()))
}

fn failed(user: &str, code: i16, message: String) -> DescribeUserScramCredentialsResult {
    result(user).with_error_code(code).with_error_message(Some(StrBytes::from_string(message)))
}

/// A user's credentials as Kafka lists them, by mechanism code (mechanisms
/// Kafka has no code for are left out).
fn described(user: &ScramUser) -> DescribeUserScramCredentialsResult {
    let mut infos: Vec<CredentialInfo> = user
        .credentials
        .iter()
        .filter_map(|c| {
            let mechanism = admin::scram_mechanism_code(c.0.as_str());
            (mechanism != 0).then(|| {
                CredentialInfo::default()
                    .with_mechanism(mechanism)
                    .with_iterations(i32::try_from(c.1).unwrap_or(i32::MAX))
            })
        })
        .collect();
    infos.sort_by_key(|i| i.mechanism);
    result(user.user.as_str()).with_credential_infos(infos)
}

fn host_failure(user: &str, e: &HandlerError) -> DescribeUserScramCredentialsResult {
    if e.kind() == ErrorKind::NOT_FOUND {
        return failed(
            user,
            errors::RESOURCE_NOT_FOUND,
            format!("Attempt to describe a user credential that does not exist: {user}"),
        );
    }
    let (code, message) = admin::host_error(e);
    failed(user, code, message)
}

/// Describes the users' SCRAM credentials.
pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let named: Vec<String> =
        request.users.unwrap_or_default().into_iter().map(|u| u.name.as_str().to_owned()).collect();
    let mut times: HashMap<&str, usize> = HashMap::new();
    let mut distinct: Vec<&str> = Vec::new();
    for user in &named {
        let count = times.entry(user.as_str()).or_default();
        if *count == 0 {
            distinct.push(user.as_str());
        }
        *count += 1;
    }
    let asked: Vec<String> =
        distinct.iter().filter(|u| !u.is_empty() && times[*u] == 1).map(|u| (*u).to_owned()).collect();
    let fail_all = |(code, message): (i16, String)| {
        let results = distinct.iter().map(|u| failed(u, code, message.clone())).collect();
        DescribeUserScramCredentialsResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message)))
            .with_results(results)
    };
    let Some(admin) = ctx.security_admin() else { return fail_all(admin::no_host()) };
    let everyone = named.is_empty();
    let answers = if everyone || !asked.is_empty() {
        match admin.scram_users(ctx.role(), asked.clone()).await {
            Ok(answers) => answers,
            Err(e) => {
                if e.kind() == ErrorKind::NOT_AUTHORIZED {
                    tracing::info!(role = ctx.role().unwrap_or("anonymous"), reason = %e,
                        "not authorized to describe SCRAM credentials");
                }
                return fail_all(admin::host_error(&e));
            }
        }
    } else {
        Vec::new()
    };
    if everyone {
        let mut results = Vec::new();
        for answer in answers {
            match answer {
                Ok(user) => results.push(described(&user)),
                // A user whose credentials went away since it was listed.
                Err(e) if e.kind() == ErrorKind::NOT_FOUND => {}
                Err(e) => return fail_all(admin::host_error(&e)),
            }
        }
        results.sort_by(|a, b| a.user.cmp(&b.user));
        return DescribeUserScramCredentialsResponse::default().with_results(results);
    }
    let mut answers: HashMap<&str, Result<ScramUser, HandlerError>> =
        asked.iter().map(String::as_str).zip(answers).collect();
    let results = distinct
        .iter()
        .map(|user| {
            if user.is_empty() {
                failed(user, errors::RESOURCE_NOT_FOUND, "Username must not be empty".to_owned())
            } else if times[user] > 1 {
                failed(
                    user,
                    errors::DUPLICATE_RESOURCE,
                    format!("Cannot describe SCRAM credentials for the same user twice in a single request: {user}"),
                )
            } else {
                match answers.remove(user) {
                    Some(Ok(found)) => described(&found).with_user(StrBytes::from_string((*user).to_owned())),
                    Some(Err(e)) => host_failure(user, &e),
                    None => failed(user, errors::UNKNOWN_SERVER_ERROR, "the host gave no answer for this user".into()),
                }
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
