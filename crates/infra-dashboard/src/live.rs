//! What the dashboard keeps in memory between requests: the last price per channel, the last
//! executions, breaker states learned from the bus, and the hub that fans updates out to the
//! live streams. Everything is bounded.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    sync::{Arc, Mutex, PoisonError, Weak},
    time::{SystemTime, UNIX_EPOCH},
};

use infra_facade::{
    Infrastructure,
    emergency::{AuditRecord, Scope, Status},
    events::{Envelope, Payload, Subscription},
};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::DashboardOptions;

/// Executions kept (newest first).
pub(crate) const MAX_EXECUTIONS: usize = 200;
/// Price channels kept; past it the stalest is forgotten.
const MAX_PRICES: usize = 1_000;
/// Breakers and bots remembered from the bus.
const MAX_REMEMBERED: usize = 1_000;
/// Updates a live stream may fall behind by before it is sent a fresh snapshot instead.
pub(crate) const HUB_CAPACITY: usize = 256;
/// Longest text kept from a bus message (reasons, IDs).
const MAX_TEXT: usize = 512;

/// One update for the live streams: an SSE event name and its JSON data.
#[derive(Debug, Clone)]
pub(crate) struct Update {
    pub(crate) event: &'static str,
    pub(crate) data: Arc<str>,
}

#[derive(Debug, Clone)]
struct Price {
    channel: String,
    symbol: String,
    price: f64,
    received_ms: u64,
}

impl Price {
    fn to_json(&self, now: u64) -> Value {
        json!({
            "channel": self.channel,
            "symbol": self.symbol,
            "price": self.price,
            "received_ms": self.received_ms,
            "age_ms": now.saturating_sub(self.received_ms),
        })
    }
}

/// The dashboard's shared state.
pub(crate) struct Shared {
    pub(crate) infra: Arc<Infrastructure>,
    pub(crate) options: DashboardOptions,
    pub(crate) hub: broadcast::Sender<Update>,
    prices: Mutex<BTreeMap<String, Price>>,
    executions: Mutex<VecDeque<Value>>,
    /// `(bot, breaker)` → state, from the breakers channel.
    breakers: Mutex<BTreeMap<(String, String), String>>,
    /// Bots seen in executions, the fleet or actions, for the audit log.
    bots: Mutex<BTreeSet<String>>,
    pub(crate) subscriptions: Mutex<Vec<Subscription>>,
    /// Subscriptions that could not be made, in words.
    pub(crate) problems: Mutex<Vec<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

fn text(value: Option<&Value>) -> Option<String> {
    let value = value?;
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Null => return None,
        other => other.to_string(),
    };
    Some(text.chars().take(MAX_TEXT).collect())
}

/// What follows the literal start of `pattern` in `channel` (`trading_bot.prices.*` and
/// `trading_bot.prices.bot-1` give `bot-1`), or the whole channel.
pub(crate) fn channel_suffix(pattern: &str, channel: &str) -> String {
    let literal = pattern.find(['*', '?', '[', '\\']).map_or(pattern, |end| &pattern[..end]);
    match channel.strip_prefix(literal) {
        Some(rest) if !rest.is_empty() => rest.to_owned(),
        _ => channel.to_owned(),
    }
}

impl Shared {
    pub(crate) fn new(infra: Arc<Infrastructure>, options: DashboardOptions) -> Self {
        Self {
            infra,
            options,
            hub: broadcast::channel(HUB_CAPACITY).0,
            prices: Mutex::default(),
            executions: Mutex::default(),
            breakers: Mutex::default(),
            bots: Mutex::default(),
            subscriptions: Mutex::default(),
            problems: Mutex::default(),
        }
    }

    /// Sends `data` as event `event` to every live stream (none listening: nothing to do).
    pub(crate) fn publish(&self, event: &'static str, data: &Value) {
        if self.hub.receiver_count() > 0 {
            let _ = self.hub.send(Update { event, data: Arc::from(data.to_string()) });
        }
    }

    pub(crate) fn remember_bot(&self, bot: &str) {
        let mut bots = lock(&self.bots);
        if bots.len() < MAX_REMEMBERED || bots.contains(bot) {
            bots.insert(bot.to_owned());
        }
    }

    pub(crate) fn known_bots(&self) -> BTreeSet<String> {
        lock(&self.bots).clone()
    }

    pub(crate) fn on_price(&self, event: Envelope) {
        let Payload::Json(payload) = &event.payload else { return };
        let Some(price) = payload.get("price").and_then(Value::as_f64).filter(|p| p.is_finite()) else { return };
        let symbol = text(payload.get("symbol"))
            .unwrap_or_else(|| channel_suffix(&self.options.prices_pattern, &event.channel))
            .chars()
            .take(MAX_TEXT)
            .collect();
        let row =
            Price { channel: event.channel.chars().take(MAX_TEXT).collect(), symbol, price, received_ms: now_ms() };
        let data = row.to_json(row.received_ms);
        {
            let mut prices = lock(&self.prices);
            if prices.len() >= MAX_PRICES && !prices.contains_key(&row.channel) {
                let stalest = prices.iter().min_by_key(|(_, p)| p.received_ms).map(|(k, _)| k.clone());
                if let Some(stalest) = stalest {
                    prices.remove(&stalest);
                }
            }
            prices.insert(row.channel.clone(), row);
        }
        self.publish("price", &data);
    }

    pub(crate) fn on_execution(&self, event: Envelope) {
        let Payload::Json(payload) = &event.payload else { return };
        let field = |name| text(payload.get(name));
        let number = |name| payload.get(name).and_then(Value::as_f64).filter(|v| v.is_finite());
        // A tick without a signal sent nothing: not an execution an operator watches for.
        if field("outcome").as_deref() == Some("skipped") {
            return;
        }
        let bot = field("bot").unwrap_or_else(|| channel_suffix(&self.options.executions_pattern, &event.channel));
        let execution = json!({
            "bot": bot,
            "execution_id": field("execution_id").unwrap_or_else(|| event.id.to_string()),
            "at_ms": payload.get("at_ms").and_then(Value::as_u64).unwrap_or(event.timestamp_ms),
            "outcome": field("outcome").unwrap_or_else(|| "unknown".to_owned()),
            "reason": field("reason").unwrap_or_default(),
            "side": field("side"),
            "qty": number("qty"),
            "price": number("price"),
            "channel": event.channel,
        });
        self.remember_bot(&bot);
        {
            let mut executions = lock(&self.executions);
            executions.push_front(execution.clone());
            executions.truncate(MAX_EXECUTIONS);
        }
        self.publish("execution", &execution);
    }

    pub(crate) fn on_breaker(&self, event: Envelope) {
        let Payload::Json(payload) = &event.payload else { return };
        let (Some(name), Some(state)) = (text(payload.get("breaker")), text(payload.get("to"))) else { return };
        let bot = text(payload.get("bot_id")).unwrap_or_else(|| event.source.clone());
        let change = json!({"bot": bot, "name": name, "state": state, "from": text(payload.get("from"))});
        {
            let mut breakers = lock(&self.breakers);
            let key = (bot, name);
            if breakers.len() < MAX_REMEMBERED || breakers.contains_key(&key) {
                breakers.insert(key, state);
            }
        }
        self.publish("breaker", &change);
    }

    /// Breaker states learned from the bus, as `{"bot","name","state"}`.
    pub(crate) fn breakers_json(&self) -> Vec<Value> {
        lock(&self.breakers)
            .iter()
            .map(|((bot, name), state)| json!({"bot": bot, "name": name, "state": state}))
            .collect()
    }

    pub(crate) fn prices_json(&self, now: u64) -> Vec<Value> {
        lock(&self.prices).values().map(|price| price.to_json(now)).collect()
    }

    pub(crate) fn executions_json(&self) -> Vec<Value> {
        lock(&self.executions).iter().cloned().collect()
    }

    /// Dropped events and gaps of the dashboard's own subscriptions.
    pub(crate) fn subscription_stats(&self) -> Value {
        let subscriptions = lock(&self.subscriptions);
        let (mut received, mut dropped, mut gaps) = (0, 0, 0);
        for subscription in subscriptions.iter() {
            let stats = subscription.stats();
            received += stats.received();
            dropped += stats.dropped();
            gaps += stats.gaps();
        }
        json!({
            "received": received,
            "dropped": dropped,
            "gaps": gaps,
            "problems": lock(&self.problems).clone(),
        })
    }
}

/// A bus handler calling `on` with the shared state while the dashboard lives.
pub(crate) fn handler(
    shared: &Arc<Shared>,
    on: fn(&Shared, Envelope),
) -> impl Fn(Envelope) -> std::future::Ready<()> + Send + Sync + 'static {
    let weak: Weak<Shared> = Arc::downgrade(shared);
    move |event| {
        if let Some(shared) = weak.upgrade() {
            on(&shared, event);
        }
        std::future::ready(())
    }
}

/// The scope the banner names: the global scope, unless the dashboard's own bot scope is
/// stricter (the dashboard's controller is not a bot: its own scope is normally idle, and the
/// fleet's individual bot halts show in the fleet table).
pub(crate) fn banner_scope(status: &Status) -> Scope {
    if status.bot > status.global { status.scope.clone() } else { Scope::Global }
}

/// The banner's data: the effective state, the scope imposing it and, from `record` when it
/// is that scope's latest transition, who moved it and when.
pub(crate) fn emergency_json(infra: &Infrastructure, record: Option<&AuditRecord>) -> Value {
    let status = infra.emergency().status();
    let scope = banner_scope(&status);
    let record = record.filter(|record| record.scope == scope);
    let reason = if scope == status.scope { status.reason.clone() } else { String::new() };
    json!({
        "state": status.state,
        "scope": scope.to_string(),
        "actor": record.map(|r| r.actor.clone()).unwrap_or_default(),
        "reason": record.map_or(reason, |r| r.reason.clone()),
        "since_ms": record.map(|r| r.at_ms),
        "global_state": status.global,
        "store_unavailable": status.store_unavailable,
    })
}
