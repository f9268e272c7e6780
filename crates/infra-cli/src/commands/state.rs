//! `infractl state ...`: the state store, through the facade's resilient store.

use infra_facade::state::{Number, StateStore, StateStoreExt, StateValue};
use serde_json::{Value, json};

use crate::{cli::StateCommand, commands::Context, error::CliError, output::compact, setup::Connect};

/// Runs one `state` command.
pub(crate) async fn run(context: &Context, command: StateCommand) -> Result<(), CliError> {
    // A value that is not JSON is the caller's mistake: say so before connecting anywhere.
    if let StateCommand::Set { json, .. } = &command {
        parse_json(json)?;
    }
    let printer = &context.printer;
    context
        .with_infrastructure(Connect::Now, async move |infra| {
            let store = infra.state();
            match command {
                StateCommand::Get { key } => {
                    let found =
                        store.get(&key).await.map_err(|e| CliError::runtime(format!("state get `{key}`"), &e))?;
                    let value = match found {
                        Some(value) => serde_json::from_str(value.as_str()).unwrap_or(Value::String(value.to_string())),
                        None => Value::Null,
                    };
                    printer.emit(&json!({"key": key, "value": value}), || compact(&value))
                }
                StateCommand::Set { key, json, ttl, nx } => {
                    let value = parse_json(&json)?;
                    let what = || format!("state set `{key}`");
                    let set = if nx {
                        store.set_if_not_exists(&key, value, ttl).await.map_err(|e| CliError::runtime(what(), &e))?
                    } else {
                        store.set(&key, value, ttl).await.map_err(|e| CliError::runtime(what(), &e))?;
                        true
                    };
                    let ttl_ms = ttl.map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
                    printer.emit(&json!({"key": key, "set": set, "ttl_ms": ttl_ms}), || {
                        if set { "OK".to_owned() } else { format!("not set: `{key}` exists (--nx)") }
                    })
                }
                StateCommand::Incr { key, by } => {
                    let by = match by.as_i64() {
                        Some(by) => Number::Int(by),
                        None => Number::Float(by.as_f64().unwrap_or(0.0)),
                    };
                    let value = store
                        .increment(&key, by)
                        .await
                        .map_err(|e| CliError::runtime(format!("state incr `{key}`"), &e))?;
                    let value = match value {
                        Number::Int(n) => json!(n),
                        Number::Float(x) => json!(x),
                    };
                    printer.emit(&json!({"key": key, "value": value}), || compact(&value))
                }
                StateCommand::Del { key } => {
                    let deleted =
                        store.delete(&key).await.map_err(|e| CliError::runtime(format!("state del `{key}`"), &e))?;
                    printer.emit(&json!({"key": key, "deleted": deleted}), || {
                        if deleted { "deleted".to_owned() } else { format!("`{key}` did not exist") }
                    })
                }
                StateCommand::Keys { prefix } => {
                    let keys = store
                        .keys(&prefix)
                        .await
                        .map_err(|e| CliError::runtime(format!("state keys `{prefix}`"), &e))?;
                    // infractl's own controller heartbeats while the command runs (and removes
                    // it on close): that key is not the operator's data.
                    let own_heartbeat = format!("emergency:heartbeat:{}", infra.emergency().bot_id());
                    for key in keys.into_iter().filter(|key| *key != own_heartbeat) {
                        printer.emit(&json!({"key": key}), || key.clone())?;
                    }
                    Ok(())
                }
            }
        })
        .await
}

/// Reads a JSON argument; anything else is a usage error with a hint for strings.
pub(crate) fn parse_json(text: &str) -> Result<StateValue, CliError> {
    StateValue::parse(text).map_err(|error| not_json(text, &error))
}

/// The usage error of an argument that is not JSON.
pub(crate) fn not_json(text: &str, error: &serde_json::Error) -> CliError {
    CliError::Usage(format!(
        "`{text}` is not JSON ({error}); quote a string as JSON, e.g. '\"{}\"'",
        text.replace('"', "\\\"")
    ))
}
