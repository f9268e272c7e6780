//! The snapshot: everything the page shows, read now (the fleet, the audit log and the health
//! from the store and the bus; prices and executions from memory). A part that cannot be read
//! is listed in `errors`, never left out silently.

use std::{future::Future, time::Duration};

use infra_facade::emergency::{AuditRecord, EmergencyError, FleetMember, Scope};
use serde_json::{Value, json};

use crate::live::{Shared, banner_scope, emergency_json, now_ms};

/// How long one read of the store may take before the part is reported as failed.
pub(crate) const IO_LIMIT: Duration = Duration::from_secs(3);
/// Audit records in a snapshot.
const SNAPSHOT_AUDIT: usize = 100;
/// Bots whose scopes the whole audit log reads at most.
const AUDIT_BOTS: usize = 50;

/// An error and its sources, `: `-separated, with URL secrets redacted.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    infra_facade::config::redact_urls_in(&text)
}

/// `future`, or an error after [`IO_LIMIT`].
pub(crate) async fn bounded<T>(
    what: &str,
    future: impl Future<Output = Result<T, EmergencyError>>,
) -> Result<T, String> {
    match tokio::time::timeout(IO_LIMIT, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{what}: {}", chain(&error))),
        Err(_) => Err(format!("{what}: no answer within {IO_LIMIT:?}")),
    }
}

/// One bot of the fleet as the page shows it.
fn member_json(member: &FleetMember, stale_after: Duration) -> Value {
    let heartbeat = &member.heartbeat;
    let mut limits = serde_json::Map::new();
    for (name, ratio) in &heartbeat.limits {
        limits.insert(name.clone(), json!({"used": null, "limit": null, "ratio": ratio}));
    }
    for (name, used) in &heartbeat.limit_use {
        let ratio = heartbeat.limits.get(name).copied().unwrap_or(if used.limit == 0.0 {
            0.0
        } else {
            (used.used / used.limit).max(0.0)
        });
        limits.insert(name.clone(), json!({"used": used.used, "limit": used.limit, "ratio": ratio}));
    }
    let age_ms = u64::try_from(member.age.as_millis()).unwrap_or(u64::MAX);
    json!({
        "bot": heartbeat.bot,
        "state": heartbeat.state,
        "heartbeat_age_ms": age_ms,
        "heartbeat_ms": heartbeat.at_ms,
        "stale": member.age > stale_after,
        "uptime_ms": (heartbeat.started_ms > 0).then(|| heartbeat.at_ms.saturating_sub(heartbeat.started_ms)),
        "version": heartbeat.version,
        "host": heartbeat.host,
        "applied_latest_global": member.applied_latest_global,
        "store_unavailable": heartbeat.store_unavailable,
        "limits": limits,
    })
}

/// The fleet, without the dashboard's own controller and hidden operator tools.
pub(crate) async fn fleet(shared: &Shared) -> Result<Vec<Value>, String> {
    let emergency = shared.infra.emergency();
    let members = bounded("fleet", emergency.fleet()).await?;
    let hide = shared.options.hide_version_prefix.as_deref();
    let mut out = Vec::with_capacity(members.len());
    for member in &members {
        let heartbeat = &member.heartbeat;
        if heartbeat.bot == emergency.bot_id() || hide.is_some_and(|prefix| heartbeat.version.starts_with(prefix)) {
            continue;
        }
        shared.remember_bot(&heartbeat.bot);
        out.push(member_json(member, shared.options.stale_after));
    }
    Ok(out)
}

/// Redis (or memory) reachability and latency, breakers, and the dashboard's subscriptions.
pub(crate) async fn health(shared: &Shared) -> Value {
    let report = shared.infra.health().await;
    let own = shared.infra.emergency().bot_id().to_owned();
    let mut breakers: Vec<Value> = report
        .breakers
        .iter()
        .map(|breaker| json!({"bot": own, "name": breaker.name, "state": breaker.state}))
        .collect();
    breakers.extend(shared.breakers_json().into_iter().filter(|b| b["bot"] != own.as_str()));
    let backend = |b: &infra_facade::BackendHealth| json!({"backend": b.backend, "reachable": b.reachable, "latency_ms": b.latency_ms, "error": b.error});
    json!({
        "redis": backend(&report.state),
        "bus": backend(&report.events),
        "breakers": breakers,
        "events": shared.subscription_stats(),
        "healthy": report.healthy,
    })
}

/// Which audit records to read.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditFilter {
    /// Only this bot's scope (and not the others').
    pub(crate) bot: Option<String>,
    /// `None`: global and bot scopes.
    pub(crate) global_only: bool,
    pub(crate) bots_only: bool,
    pub(crate) limit: usize,
}

/// The audit records `filter` selects, newest first.
pub(crate) async fn audit(shared: &Shared, filter: &AuditFilter) -> Result<Vec<AuditRecord>, String> {
    let emergency = shared.infra.emergency();
    let mut scopes = Vec::new();
    if !filter.bots_only {
        scopes.push(Scope::Global);
    }
    if !filter.global_only {
        match &filter.bot {
            Some(bot) => scopes.push(Scope::bot(bot.clone()).map_err(|e| e.to_string())?),
            None => scopes.extend(shared.known_bots().into_iter().take(AUDIT_BOTS).filter_map(|b| Scope::bot(b).ok())),
        }
    }
    let mut records = Vec::new();
    for scope in &scopes {
        records.extend(bounded("audit log", emergency.history(scope, filter.limit)).await?);
    }
    records.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then(b.seq.cmp(&a.seq)));
    records.truncate(filter.limit);
    Ok(records)
}

/// The whole snapshot (see the crate documentation for its shape).
pub(crate) async fn snapshot(shared: &Shared) -> Value {
    let mut errors = Vec::new();
    let fleet = fleet(shared).await.unwrap_or_else(|error| {
        errors.push(error);
        Vec::new()
    });
    let filter = AuditFilter { limit: SNAPSHOT_AUDIT, ..AuditFilter::default() };
    let audit = audit(shared, &filter).await.unwrap_or_else(|error| {
        errors.push(error);
        Vec::new()
    });
    let emergency = shared.infra.emergency();
    let scope = banner_scope(&emergency.status());
    let latest = match bounded("emergency state", emergency.history(&scope, 1)).await {
        Ok(mut records) => records.pop(),
        Err(error) => {
            errors.push(error);
            None
        }
    };
    let health = health(shared).await;
    if let Some(error) = health["redis"]["error"].as_str() {
        errors.push(format!("state store unreachable: {error}"));
    }
    let now = now_ms();
    let mut emergency_view = emergency_json(&shared.infra, latest.as_ref());
    if emergency_view["store_unavailable"] == true {
        errors.push("the emergency state store has not answered since the dashboard started".to_owned());
    }
    if errors.iter().any(|e| e.starts_with("fleet") || e.starts_with("emergency state")) {
        emergency_view["store_error"] = Value::Bool(true);
    }
    json!({
        "now_ms": now,
        "emergency": emergency_view,
        "fleet": fleet,
        "prices": shared.prices_json(now),
        "executions": shared.executions_json(),
        "health": health,
        "audit": audit,
        "actions_enabled": shared.options.token.is_some(),
        "bot_id": emergency.bot_id(),
        "errors": errors,
    })
}
