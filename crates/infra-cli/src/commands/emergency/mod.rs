//! `infractl emergency ...`: the kill switch, through the facade's emergency controller.
//!
//! infractl's controller serves a bot ID of its own (see [`crate::setup::build`]); it makes
//! transitions on any scope, reads the audit log and the fleet view. `watch` listens to the
//! transition channel on the bus directly, so it sees every bot's transitions.

mod status;

use infra_facade::{
    Infrastructure,
    emergency::{AuditRecord, ControllerOptions, EmergencyController, EmergencyError, Outcome, Scope},
    events::{EventBus, Topic},
};
use serde_json::{Value, json};

use crate::{
    cli::{EmergencyCommand, ScopeArgs, TransitionArgs},
    commands::{Context, events::listen},
    error::CliError,
    setup::Connect,
};

/// Runs one `emergency` command.
pub(crate) async fn run(context: &Context, command: EmergencyCommand) -> Result<(), CliError> {
    // Scopes and bot IDs are checked before connecting: a typo is a usage error.
    let configured_bot = &context.loaded.config.emergency.bot_id;
    match command {
        EmergencyCommand::Status { bot, all } => {
            let bot = bot_scope(bot.as_deref().unwrap_or(configured_bot))?;
            context
                .with_infrastructure(Connect::Now, async move |infra| {
                    if all { status::fleet(context, infra).await } else { status::one(context, infra, &bot).await }
                })
                .await
        }
        EmergencyCommand::Halt(args) => transition(context, "halt", args).await,
        EmergencyCommand::Resume(args) => transition(context, "resume", args).await,
        EmergencyCommand::Shutdown(args) => transition(context, "shutdown", args).await,
        EmergencyCommand::Rearm(args) => transition(context, "rearm", args).await,
        EmergencyCommand::Watch { bot, count, timeout } => {
            let bot = bot.map(|id| bot_scope(&id)).transpose()?;
            context
                .with_infrastructure(Connect::Now, async move |infra| {
                    let channel = ControllerOptions::default().channel;
                    let stream = infra
                        .events()
                        .stream(Topic::Channel(channel.clone()), Default::default())
                        .await
                        .map_err(|e| CliError::runtime(format!("emergency watch on `{channel}`"), &e))?;
                    eprintln!("infractl: watching emergency transitions on `{channel}`");
                    listen(stream, count, timeout, "transitions", |event| {
                        // Anything else on the channel is not a transition: not counted, not shown.
                        let Ok(record) = event.decode::<AuditRecord>() else { return Ok(false) };
                        if bot.as_ref().is_some_and(|bot| record.scope != *bot && !record.scope.is_global()) {
                            return Ok(false);
                        }
                        emit_record(context, &record)?;
                        Ok(true)
                    })
                    .await
                })
                .await
        }
        EmergencyCommand::History { bot, global, limit } => {
            let scopes = match (bot, global) {
                (Some(bot), _) => vec![bot_scope(&bot)?],
                (None, true) => vec![Scope::Global],
                (None, false) => vec![Scope::Global, bot_scope(configured_bot)?],
            };
            context
                .with_infrastructure(Connect::Now, async move |infra| {
                    let mut records = Vec::new();
                    for scope in &scopes {
                        let history = infra
                            .emergency()
                            .history(scope, limit)
                            .await
                            .map_err(|e| CliError::runtime(format!("emergency history of {scope}"), &e))?;
                        records.extend(history);
                    }
                    records.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then_with(|| b.seq.cmp(&a.seq)));
                    records.truncate(limit);
                    for record in &records {
                        emit_record(context, record)?;
                    }
                    Ok(())
                })
                .await
        }
    }
}

/// Moves a scope by hand and prints what happened.
async fn transition(context: &Context, action: &'static str, args: TransitionArgs) -> Result<(), CliError> {
    let scope = scope(&args.scope)?;
    let operator = args.operator.clone().unwrap_or_else(default_operator);
    context
        .with_infrastructure(Connect::Now, async move |infra: &Infrastructure| {
            let emergency: &EmergencyController = infra.emergency();
            let (reason, actor) = (args.reason.clone(), operator.clone());
            let outcome = match action {
                "halt" => emergency.halt(scope.clone(), actor, reason).await,
                "resume" => emergency.resume(scope.clone(), actor, reason).await,
                "shutdown" => emergency.shutdown(scope.clone(), actor, reason).await,
                _ => emergency.rearm(scope.clone(), actor, reason).await,
            };
            let outcome = outcome.map_err(|error| emergency_error(format!("emergency {action} of {scope}"), &error))?;
            match &outcome {
                Outcome::Applied(record) => emit_record(context, record),
                _ => {
                    let why = match &outcome {
                        Outcome::Unchanged { why, .. } => *why,
                        _ => "",
                    };
                    let state = outcome.state();
                    let record = json!({"scope": scope.to_string(), "applied": false, "state": state, "why": why});
                    context.printer.emit(&record, || format!("unchanged: {scope} stays {state} ({why})"))
                }
            }
        })
        .await
}

/// Prints one audit record: the record as stored (JSON), or a line (text).
fn emit_record(context: &Context, record: &AuditRecord) -> Result<(), CliError> {
    let mut value = serde_json::to_value(record).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("applied".to_owned(), Value::Bool(true));
    }
    context.printer.emit(&value, || {
        format!(
            "#{} {} {} -> {} ({} by {}, {}): {}",
            record.seq,
            record.scope,
            record.from,
            record.to,
            record.action,
            record.actor,
            status::since(record.at_ms),
            record.reason
        )
    })
}

/// `--bot ID` or `--global`.
fn scope(args: &ScopeArgs) -> Result<Scope, CliError> {
    match &args.bot {
        Some(bot) => bot_scope(bot),
        None => Ok(Scope::Global),
    }
}

/// The scope of bot `id`; an invalid ID is a usage error.
fn bot_scope(id: &str) -> Result<Scope, CliError> {
    Scope::bot(id).map_err(|error| CliError::Usage(error.to_string()))
}

/// Who asks, when `--operator` does not say: the login name.
fn default_operator() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|value| !value.trim().is_empty()))
        .unwrap_or_else(|| "infractl".to_owned())
}

/// An argument the controller refuses is a usage error; anything else a runtime failure.
fn emergency_error(what: String, error: &EmergencyError) -> CliError {
    match error {
        EmergencyError::InvalidArgument { .. }
        | EmergencyError::InvalidBotId { .. }
        | EmergencyError::InvalidScope { .. } => CliError::Usage(format!("{what}: {error}")),
        _ => CliError::runtime(what, error),
    }
}
