//! The HTTP routes: the page and its assets, the snapshot, the audit log and the actions.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use infra_facade::emergency::{Action, EmergencyError, Outcome, Request, Scope, Source};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::{
    guard,
    live::{Shared, emergency_json},
    snapshot::{self, AuditFilter, chain},
};

const PAGE: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");
/// Most audit records one request returns.
const MAX_AUDIT: usize = 1_000;

/// What every handler gets.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) shared: Arc<Shared>,
    /// Ends the live streams when the dashboard closes.
    pub(crate) cancel: CancellationToken,
}

pub(crate) fn router(app: App) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/assets/app.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/assets/app.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
        .route("/api/snapshot", get(snapshot_route))
        .route("/api/stream", get(crate::stream::stream))
        .route("/api/audit", get(audit))
        .route("/api/emergency/{action}", post(act))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page") })
        .with_state(app)
}

/// Headers every response gets: nothing cached, nothing framed, nothing sniffed.
fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
    );
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    harden(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// `{"error": message}` with `status`.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    harden((status, Json(json!({"error": message.into()}))).into_response())
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The page, with the snapshot of now embedded (so it shows something at once) and, when a
/// part could not be read, an error banner rendered on the server.
async fn page(State(app): State<App>) -> Response {
    let snapshot = snapshot::snapshot(&app.shared).await;
    let state = snapshot["emergency"]["state"].as_str().unwrap_or("UNKNOWN").to_owned();
    let errors: Vec<String> = snapshot["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(Value::as_str).map(escape_html).collect())
        .unwrap_or_default();
    let banner = if errors.is_empty() {
        String::new()
    } else {
        format!("<strong>Problem:</strong> <ul><li>{}</li></ul>", errors.join("</li><li>"))
    };
    // `<` only occurs inside JSON strings, where `\u003c` means the same: no `</script>` escape.
    let embedded = snapshot.to_string().replace('<', "\\u003c");
    let html = PAGE
        .replace("{{STATE}}", &escape_html(&state))
        .replace("{{ERRORS_HIDDEN}}", if errors.is_empty() { "hidden" } else { "" })
        .replace("{{ERRORS}}", &banner)
        .replace("{{SNAPSHOT}}", &embedded);
    harden(Html(html).into_response())
}

async fn snapshot_route(State(app): State<App>) -> Response {
    harden(Json(snapshot::snapshot(&app.shared).await).into_response())
}

/// `GET /api/audit` parameters.
#[derive(Debug, Deserialize)]
pub(crate) struct AuditQuery {
    bot: Option<String>,
    scope: Option<String>,
    limit: Option<usize>,
}

async fn audit(State(app): State<App>, Query(query): Query<AuditQuery>) -> Response {
    let bot = query.bot.filter(|bot| !bot.trim().is_empty()).map(|bot| bot.trim().to_owned());
    if let Some(bot) = &bot {
        if let Err(problem) = Scope::bot(bot.clone()) {
            return error(StatusCode::BAD_REQUEST, problem.to_string());
        }
    }
    let (global_only, bots_only) = match query.scope.as_deref().unwrap_or("all") {
        "all" | "" => (false, false),
        "global" => (true, false),
        "bot" => (false, true),
        other => {
            return error(StatusCode::BAD_REQUEST, format!("invalid scope `{other}`: expected all, global or bot"));
        }
    };
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_AUDIT);
    let filter = AuditFilter { bot, global_only, bots_only, limit };
    match snapshot::audit(&app.shared, &filter).await {
        Ok(records) => harden(Json(records).into_response()),
        Err(problem) => error(StatusCode::SERVICE_UNAVAILABLE, problem),
    }
}

/// `POST /api/emergency/{action}` body.
#[derive(Debug, Deserialize)]
struct ActionBody {
    scope: String,
    reason: String,
    operator: String,
}

fn parse_action(action: &str) -> Option<Action> {
    Some(match action {
        "halt" => Action::Halt,
        "resume" => Action::Resume,
        "shutdown" => Action::Shutdown,
        "rearm" => Action::Rearm,
        _ => return None,
    })
}

async fn act(State(app): State<App>, Path(action): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let shared = &app.shared;
    if let Err((status, message)) = guard::same_origin(&headers) {
        return error(status, message);
    }
    if let Err((status, message)) = guard::authorized(&headers, shared.options.token.as_ref()) {
        return error(status, message);
    }
    let Some(action) = parse_action(&action) else {
        return error(StatusCode::NOT_FOUND, format!("unknown action `{action}`: halt, resume, shutdown or rearm"));
    };
    let body: ActionBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(problem) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body must be JSON {{\"scope\", \"reason\", \"operator\"}}: {problem}"),
            );
        }
    };
    let scope: Scope = match body.scope.trim().parse() {
        Ok(scope) => scope,
        Err(problem) => return error(StatusCode::BAD_REQUEST, chain(&problem)),
    };
    let (reason, operator) = (body.reason.trim(), body.operator.trim());
    if reason.is_empty() {
        return error(StatusCode::BAD_REQUEST, "a reason is required");
    }
    if operator.is_empty() {
        return error(StatusCode::BAD_REQUEST, "an operator name is required");
    }
    let emergency = shared.infra.emergency();
    let request = Request::new(scope.clone(), action, Source::Manual, operator, reason);
    match emergency.request(request).await {
        Ok(Outcome::Applied(record)) => {
            tracing::info!(target: "infra_dashboard", %action, %scope, operator, reason, seq = record.seq, "emergency action applied");
            let mut data = serde_json::to_value(&record).unwrap_or_default();
            data["applied"] = Value::Bool(true);
            if let Scope::Bot(bot) = &scope {
                shared.remember_bot(bot);
            }
            // The controller announces its own scopes; another bot's transition is ours to tell.
            if !scope.is_global() && scope != *emergency.bot_scope() {
                let mut event = data.clone();
                event["emergency"] = emergency_json(&shared.infra, Some(&record));
                shared.publish("emergency", &event);
            }
            harden(Json(data).into_response())
        }
        Ok(Outcome::Unchanged { scope, state, why }) => harden(
            Json(json!({"applied": false, "scope": scope.to_string(), "state": state, "why": why})).into_response(),
        ),
        Ok(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "unexpected outcome"),
        Err(problem) => {
            let (status, message) = refusal(action, &scope, &problem);
            tracing::warn!(target: "infra_dashboard", %action, %scope, operator, status = status.as_u16(), error = message, "emergency action refused");
            error(status, message)
        }
    }
}

/// The status and message of a failed transition.
fn refusal(action: Action, scope: &Scope, problem: &EmergencyError) -> (StatusCode, String) {
    let text = chain(problem);
    match problem {
        EmergencyError::InvalidArgument { .. }
        | EmergencyError::InvalidScope { .. }
        | EmergencyError::InvalidBotId { .. } => (StatusCode::BAD_REQUEST, text),
        EmergencyError::TransitionRefused { .. }
        | EmergencyError::SourceNotAllowed { .. }
        | EmergencyError::CooldownActive { .. }
        | EmergencyError::Contended { .. } => (StatusCode::CONFLICT, text),
        EmergencyError::Store { .. } | EmergencyError::Backend { .. } | EmergencyError::Closed => {
            let retried = if matches!(action, Action::Halt | Action::Shutdown) {
                " (this dashboard keeps retrying it until the store answers; check the fleet)"
            } else {
                ""
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the emergency state store is unreachable: the {action} of the {scope} scope is NOT in force for the fleet{retried}: {text}"
                ),
            )
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, text),
    }
}
