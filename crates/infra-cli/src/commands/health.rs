//! `infractl health`: the facade's health report; exit code 1 when unhealthy.

use crate::{commands::Context, error::CliError, setup::Connect};

/// Prints the report (JSON: the facade's `HealthReport`; text: a line per part).
pub(crate) async fn run(context: &Context) -> Result<(), CliError> {
    context
        .with_infrastructure(Connect::Lazily, async move |infra| {
            let report = infra.health().await;
            let record = serde_json::to_value(&report)
                .map_err(|error| CliError::Runtime(format!("cannot render the health report: {error}")))?;
            context.printer.emit(&record, || text(&report))?;
            if report.healthy {
                Ok(())
            } else {
                Err(CliError::Reported(format!("unhealthy: {}", problems(&report).join("; "))))
            }
        })
        .await
}

fn backend(name: &str, part: &infra_facade::BackendHealth) -> String {
    match (&part.latency_ms, &part.error) {
        (Some(latency), _) => {
            format!("{name:<9} ok        {} (namespace {}), {latency:.2} ms", part.backend, part.namespace)
        }
        (None, error) => format!(
            "{name:<9} FAILING   {} (namespace {}): {}",
            part.backend,
            part.namespace,
            error.as_deref().unwrap_or("unreachable")
        ),
    }
}

fn text(report: &infra_facade::HealthReport) -> String {
    let mut lines = vec![
        format!("{} ({})", if report.healthy { "healthy" } else { "UNHEALTHY" }, report.environment),
        backend("state", &report.state),
        backend("events", &report.events),
    ];
    for breaker in &report.breakers {
        lines.push(format!("breaker   {:<9} {}", breaker.state, breaker.name));
    }
    // infractl's controller serves a bot of its own, so its state is the global scope's.
    let emergency = &report.emergency;
    lines.push(format!(
        "emergency {:<9} global scope, as infractl's controller applies it{}",
        emergency.state.as_str(),
        if emergency.reason.is_empty() { String::new() } else { format!(": {}", emergency.reason) }
    ));
    lines.join("\n")
}

/// What makes the report unhealthy, in words.
fn problems(report: &infra_facade::HealthReport) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, part) in [("state store", &report.state), ("event bus", &report.events)] {
        if !part.reachable {
            problems.push(format!("the {name} is unreachable ({})", part.error.as_deref().unwrap_or("no answer")));
        }
    }
    problems
        .extend(report.breakers.iter().filter(|b| b.is_open()).map(|b| format!("breaker `{}` is {}", b.name, b.state)));
    if report.emergency.store_unavailable {
        problems.push("the emergency controller cannot read its store".to_owned());
    }
    if problems.is_empty() {
        problems.push("see the report".to_owned());
    }
    problems
}
