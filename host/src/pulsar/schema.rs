//! GET_SCHEMA and GET_OR_CREATE_SCHEMA: this broker keeps no schema
//! registry, so both are refused, each in its own response type, which the
//! client matches to its request (a generic ERROR leaves the C++ client
//! waiting for its operation timeout). Schemas given with PRODUCER and
//! SUBSCRIBE are accepted and not checked (docs/pulsar.md).

use crate::pulsar::proto::{
    base_command::Type, BaseCommand, CommandGetOrCreateSchema, CommandGetOrCreateSchemaResponse, CommandGetSchema,
    CommandGetSchemaResponse, ServerError,
};

use super::frame::cmd;

/// The answer to GET_SCHEMA: Pulsar's for a topic without a schema (TopicNotFound).
pub fn get_schema(g: &CommandGetSchema) -> BaseCommand {
    let response = CommandGetSchemaResponse {
        request_id: g.request_id,
        error_code: Some(ServerError::TopicNotFound as i32),
        error_message: Some(format!("{}: no schema: this broker keeps no schema registry", g.topic)),
        ..Default::default()
    };
    cmd(Type::GetSchemaResponse, |c| c.get_schema_response = Some(response))
}

/// The answer to GET_OR_CREATE_SCHEMA: NotAllowedError.
pub fn get_or_create_schema(g: &CommandGetOrCreateSchema) -> BaseCommand {
    let response = CommandGetOrCreateSchemaResponse {
        request_id: g.request_id,
        error_code: Some(ServerError::NotAllowedError as i32),
        error_message: Some(format!("{}: this broker keeps no schema registry", g.topic)),
        ..Default::default()
    };
    cmd(Type::GetOrCreateSchemaResponse, |c| c.get_or_create_schema_response = Some(response))
}
