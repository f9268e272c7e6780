//! `infractl emergency status [--bot ID | --all]`.
//!
//! A bot's effective state is the stricter of the latest records of the global scope and of its
//! own scope in the store (the global one wins a tie), as every controller applies it.

use infra_facade::{
    Infrastructure,
    emergency::{AuditRecord, EmergencyState, Scope},
};
use serde_json::{Value, json};

use crate::{commands::Context, error::CliError, setup::CONTROLLER_VERSION_PREFIX};

/// The status of `bot`, read from the store.
pub(super) async fn one(context: &Context, infra: &Infrastructure, bot: &Scope) -> Result<(), CliError> {
    let global = latest(infra, &Scope::Global).await?;
    let own = latest(infra, bot).await?;
    let record = status(bot, global.as_ref(), own.as_ref());
    context.printer.emit(&record, || text(&record))
}

/// One status per bot with a live heartbeat, with the fleet view's figures.
pub(super) async fn fleet(context: &Context, infra: &Infrastructure) -> Result<(), CliError> {
    let members = infra
        .emergency()
        .fleet()
        .await
        .map_err(|e| CliError::runtime("emergency status --all: reading the fleet", &e))?;
    let global = latest(infra, &Scope::Global).await?;
    let bots = members.iter().filter(|m| !m.heartbeat.version.starts_with(CONTROLLER_VERSION_PREFIX));
    let mut any = false;
    for member in bots {
        any = true;
        let scope = Scope::Bot(member.heartbeat.bot.clone());
        let own = latest(infra, &scope).await?;
        let mut record = status(&scope, global.as_ref(), own.as_ref());
        if let Value::Object(map) = &mut record {
            let heartbeat = &member.heartbeat;
            map.insert("applied_state".to_owned(), json!(heartbeat.state));
            map.insert("heartbeat_age_ms".to_owned(), json!(u64::try_from(member.age.as_millis()).unwrap_or(u64::MAX)));
            map.insert("applied_latest_global".to_owned(), json!(member.applied_latest_global));
            map.insert("store_unavailable".to_owned(), json!(heartbeat.store_unavailable));
            map.insert("host".to_owned(), json!(heartbeat.host));
            map.insert("pid".to_owned(), json!(heartbeat.pid));
            map.insert("version".to_owned(), json!(heartbeat.version));
        }
        context.printer.emit(&record, || {
            format!(
                "{}  heartbeat {} ms ago, applies {}{}",
                text(&record),
                record["heartbeat_age_ms"],
                record["applied_state"].as_str().unwrap_or("?"),
                if member.applied_latest_global { "" } else { ", has NOT applied the latest global transition" }
            )
        })?;
    }
    if !any {
        eprintln!("infractl: no bot has a live heartbeat");
    }
    Ok(())
}

/// The latest record of `scope`, if it ever moved.
async fn latest(infra: &Infrastructure, scope: &Scope) -> Result<Option<AuditRecord>, CliError> {
    let mut history = infra
        .emergency()
        .history(scope, 1)
        .await
        .map_err(|e| CliError::runtime(format!("emergency status: reading the {scope} scope"), &e))?;
    Ok(history.pop())
}

/// The record a status prints: the bot, its effective state, and the scope, reason, actor and
/// time of the transition that imposes it (of the bot's last transition when nothing restricts
/// it; `null` when neither scope ever moved).
fn status(bot: &Scope, global: Option<&AuditRecord>, own: Option<&AuditRecord>) -> Value {
    let state_of = |record: Option<&AuditRecord>| record.map_or(EmergencyState::Normal, |r| r.to);
    let (global_state, bot_state) = (state_of(global), state_of(own));
    let state = global_state.max(bot_state);
    let imposing = if state > EmergencyState::Normal && global_state == state { global } else { own.or(global) };
    let id = match bot {
        Scope::Bot(id) => id.clone(),
        Scope::Global => "global".to_owned(),
    };
    json!({
        "bot": id,
        "state": state,
        "can_trade": state.can_trade(),
        "scope": imposing.map_or_else(|| bot.to_string(), |r| r.scope.to_string()),
        "reason": imposing.map_or("", |r| r.reason.as_str()),
        "actor": imposing.map(|r| r.actor.clone()),
        "since_ms": imposing.map(|r| r.at_ms),
        "since": imposing.map(|r| since(r.at_ms)),
        "global_state": global_state,
        "bot_state": bot_state,
    })
}

fn text(record: &Value) -> String {
    let mut line =
        format!("{}  {}", record["bot"].as_str().unwrap_or_default(), record["state"].as_str().unwrap_or_default());
    if let Some(actor) = record["actor"].as_str() {
        line.push_str(&format!(
            " ({} scope, by {actor}, {}): {}",
            record["scope"].as_str().unwrap_or_default(),
            record["since"].as_str().unwrap_or_default(),
            record["reason"].as_str().unwrap_or_default()
        ));
    }
    line
}

/// `at_ms` (milliseconds since the Unix epoch) as UTC, e.g. `2026-12-01T15:04:05.123Z`.
pub(super) fn since(at_ms: u64) -> String {
    let (days, ms_of_day) = (at_ms / 86_400_000, at_ms % 86_400_000);
    let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(i64::MAX));
    let (h, m, s, ms) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60, ms_of_day / 1000 % 60, ms_of_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

/// Howard Hinnant's `civil_from_days`: the proleptic Gregorian date of a day count since
/// 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(scope: Scope, to: EmergencyState, actor: &str) -> AuditRecord {
        let json = json!({
            "seq": 1, "scope": scope.to_string(), "from": "NORMAL", "to": to, "action": "halt", "source": "manual",
            "actor": actor, "reason": "drill", "at_ms": 0, "by_bot": "b", "host": "h",
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_stricter_scope_imposes_and_global_wins_a_tie() {
        let bot = Scope::bot("b1").unwrap();
        let none = status(&bot, None, None);
        assert_eq!((none["state"].as_str(), none["actor"].clone()), (Some("NORMAL"), Value::Null));
        let global = record(Scope::Global, EmergencyState::Halt, "alice");
        let own = record(bot.clone(), EmergencyState::Halt, "bob");
        let tie = status(&bot, Some(&global), Some(&own));
        assert_eq!(
            (tie["state"].as_str(), tie["actor"].as_str(), tie["scope"].as_str()),
            (Some("HALT"), Some("alice"), Some("global"))
        );
        let shutdown = record(bot.clone(), EmergencyState::Shutdown, "bob");
        let stricter = status(&bot, Some(&global), Some(&shutdown));
        assert_eq!((stricter["state"].as_str(), stricter["actor"].as_str()), (Some("SHUTDOWN"), Some("bob")));
        assert_eq!(stricter["since"], "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(since(951_827_696_789), "2000-02-29T12:34:56.789Z");
        assert_eq!(since(1_796_137_200_000), "2026-12-01T15:00:00.000Z");
    }
}
