//! The commands behind each operation, shared by the inherent methods and the trait.

use std::{collections::BTreeMap, time::Duration};

use infra_redis::{
    Failure, FailureKind,
    fred::{
        prelude::{
            ClientLike, Error as FredError, Expiration, KeysInterface, LuaInterface, SetOptions, TransactionInterface,
            Value,
        },
        types::Key,
    },
};

use super::{
    RedisStore,
    scripts::{COMPARE_AND_DELETE, COMPARE_AND_SWAP, INCREMENT_FLOAT},
};
use crate::{
    CasOutcome, Expected, Number, Result, StateError, StateValue, Version, Versioned,
    store::{check_entry, check_key, ttl_millis},
};

impl RedisStore {
    /// fred's error as ours: a timeout, a connection problem, or a failure of the command (the
    /// source is redacted and carries no fred type).
    pub(super) fn error(&self, operation: &'static str, key: &str, error: FredError) -> StateError {
        let failure = Failure::from(error);
        match failure.kind() {
            FailureKind::Timeout => {
                StateError::Timeout { operation, key: key.to_owned(), timeout: self.shared.operation_timeout }
            }
            FailureKind::Connection | FailureKind::Backpressure => StateError::Connection {
                backend: "redis",
                url: self.shared.connection.url().to_owned(),
                source: Box::new(failure),
            },
            _ => StateError::Backend { backend: "redis", operation, key: key.to_owned(), source: Box::new(failure) },
        }
    }

    /// A reply to `GET` or one element of `MGET`. `MGET` answers nil for a key holding another
    /// type than a string, so a lone `GET`'s `WRONGTYPE` is read the same way (see the module
    /// docs): one answer on every path.
    pub(super) fn to_state_value(key: &str, value: Value) -> Result<Option<StateValue>> {
        match value {
            Value::Null => Ok(None),
            Value::String(text) => Ok(Some(StateValue::from_json_text(&*text))),
            Value::Bytes(bytes) => String::from_utf8(bytes.to_vec())
                .map(|text| Some(StateValue::from_json_text(text)))
                .map_err(|_| StateError::NotText { key: key.to_owned() }),
            // RESP3 or odd replies: integers and doubles are still JSON.
            Value::Integer(n) => Ok(Some(StateValue::from_json_text(n.to_string()))),
            other => other
                .into_string()
                .map(|text| Some(StateValue::from_json_text(text)))
                .ok_or_else(|| StateError::NotText { key: key.to_owned() }),
        }
    }

    pub(super) async fn get_one(&self, key: &str) -> Result<Option<StateValue>> {
        check_key(key)?;
        let client = self.client().await?;
        match client.get::<Value, _>(self.full_key(key)).await {
            Ok(value) => Self::to_state_value(key, value),
            Err(error) if is_wrong_type(&error) => Ok(None),
            Err(error) => Err(self.error("get", key, error)),
        }
    }

    pub(super) async fn set_one(&self, key: &str, value: StateValue, ttl: Option<Duration>, nx: bool) -> Result<bool> {
        check_entry(key, &value)?;
        let expiration = expiration(key, ttl)?;
        let operation = if nx { "set_if_not_exists" } else { "set" };
        let client = self.client().await?;
        let reply: Value = client
            .set(self.full_key(key), value.as_str(), expiration, nx.then_some(SetOptions::NX), false)
            .await
            .map_err(|e| self.error(operation, key, e))?;
        Ok(!reply.is_null())
    }

    pub(super) async fn increment_one(&self, key: &str, by: Number) -> Result<Number> {
        check_key(key)?;
        let client = self.client().await?;
        let full_key = self.full_key(key);
        match by {
            Number::Int(by) => {
                client.incr_by::<i64, _>(full_key, by).await.map(Number::Int).map_err(|e| match e.details() {
                    d if d.contains("overflow") => StateError::Overflow { key: key.to_owned(), by: by.to_string() },
                    d if d.contains("not an integer") => StateError::NotAnInteger { key: key.to_owned(), by },
                    _ => self.error("increment", key, e),
                })
            }
            Number::Float(by) => {
                let reply: Result<String, FredError> =
                    client.eval(INCREMENT_FLOAT, vec![full_key], vec![by.to_string()]).await;
                match reply {
                    Ok(text) => {
                        text.parse().map(Number::Float).map_err(|_| StateError::NotANumber { key: key.to_owned(), by })
                    }
                    Err(e) if e.details().contains("NOTNUMBER") => {
                        Err(StateError::NotANumber { key: key.to_owned(), by })
                    }
                    Err(e) if e.details().contains("OVERFLOW") => {
                        Err(StateError::Overflow { key: key.to_owned(), by: by.to_string() })
                    }
                    Err(e) => Err(self.error("increment", key, e)),
                }
            }
        }
    }

    pub(super) async fn get_many_values(&self, keys: &[&str]) -> Result<Vec<Option<StateValue>>> {
        for key in keys {
            check_key(key)?;
        }
        let Some(first) = keys.first() else { return Ok(Vec::new()) };
        let client = self.client().await?;
        let values: Vec<Value> = if self.shared.clustered {
            // Keys of one batch may live on different nodes: one pipelined GET each.
            let pipeline = client.pipeline();
            for key in keys {
                let () = pipeline.get(self.full_key(key)).await.map_err(|e| self.error("get_many", key, e))?;
            }
            let replies = pipeline.try_all::<Value>().await;
            let mut values = Vec::with_capacity(replies.len());
            for (key, reply) in keys.iter().zip(replies) {
                values.push(match reply {
                    Ok(value) => value,
                    Err(error) if is_wrong_type(&error) => Value::Null,
                    Err(error) => return Err(self.error("get_many", key, error)),
                });
            }
            values
        } else {
            let full: Vec<Key> = keys.iter().map(|k| self.full_key(k)).collect();
            client.mget(full).await.map_err(|e| self.error("get_many", first, e))?
        };
        keys.iter().zip(values).map(|(key, value)| Self::to_state_value(key, value)).collect()
    }

    /// One `MULTI`/`EXEC` per hash slot (one in all on a standalone server), so no reader sees
    /// part of a slot's batch.
    pub(super) async fn set_many_values(&self, entries: &[(&str, StateValue)], ttl: Option<Duration>) -> Result<()> {
        let mut expiry = None;
        for (key, value) in entries {
            check_entry(key, value)?;
            expiry = expiration(key, ttl)?;
        }
        if entries.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        let mut batches: BTreeMap<u16, Vec<(Key, &str, &str)>> = BTreeMap::new();
        for (key, value) in entries {
            let full = self.full_key(key);
            batches.entry(self.slot(&full)).or_default().push((full, key, value.as_str()));
        }
        let transactions = batches.into_values().map(|batch| {
            let expiry = expiry.clone();
            async move {
                let transaction = client.multi();
                let Some(&(_, first, _)) = batch.first() else { return Ok(()) };
                for (full, key, value) in batch {
                    let () = transaction
                        .set(full, value, expiry.clone(), None, false)
                        .await
                        .map_err(|e| self.error("set_many", key, e))?;
                }
                transaction.exec::<Value>(true).await.map(drop).map_err(|e| self.error("set_many", first, e))
            }
        });
        futures::future::try_join_all(transactions).await.map(drop)
    }

    pub(super) async fn compare_and_swap_one(
        &self,
        key: &str,
        expected: Expected,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome> {
        check_entry(key, &value)?;
        let ttl = ttl.map(|ttl| ttl_millis(key, ttl)).transpose()?.map(clamp_ms);
        let (mode, expected) = match expected {
            Expected::Absent => ("absent", String::new()),
            Expected::Value(v) => ("value", v.as_str().to_owned()),
            Expected::Version(v) => ("version", v.0),
        };
        let client = self.client().await?;
        let args = vec![
            mode.to_owned(),
            expected,
            value.as_str().to_owned(),
            ttl.map(|ms| ms.to_string()).unwrap_or_default(),
        ];
        let reply: Vec<Value> = client
            .eval(COMPARE_AND_SWAP, vec![self.full_key(key)], args)
            .await
            .map_err(|e| self.error("compare_and_swap", key, e))?;
        let mut reply = reply.into_iter();
        let swapped = reply.next().and_then(|v| v.as_i64()) == Some(1);
        let text = |v: Option<Value>| v.and_then(Value::into_string);
        if swapped {
            let version = text(reply.next()).unwrap_or_default();
            return Ok(CasOutcome::Swapped(Version(version)));
        }
        match (text(reply.next()), text(reply.next())) {
            (Some(current), Some(version)) => Ok(CasOutcome::Conflict(Some(Versioned {
                value: StateValue::from_json_text(current),
                version: Version(version),
            }))),
            _ => Ok(CasOutcome::Conflict(None)),
        }
    }
}

impl RedisStore {
    pub(super) async fn compare_and_delete_one(&self, key: &str, expected: Expected) -> Result<bool> {
        check_key(key)?;
        let (mode, expected) = match expected {
            Expected::Absent => return Ok(false),
            Expected::Value(v) => ("value", v.as_str().to_owned()),
            Expected::Version(v) => ("version", v.0),
        };
        let client = self.client().await?;
        let deleted: i64 = client
            .eval(COMPARE_AND_DELETE, vec![self.full_key(key)], vec![mode.to_owned(), expected])
            .await
            .map_err(|e| self.error("compare_and_delete", key, e))?;
        Ok(deleted == 1)
    }

    pub(super) async fn ping_once(&self) -> Result<Duration> {
        let client = self.client().await?;
        let started = std::time::Instant::now();
        let _: Value = client.ping(None).await.map_err(|e| self.error("ping", "", e))?;
        Ok(started.elapsed())
    }
}

/// Redis's `WRONGTYPE` reply: the key holds a hash, list, set… rather than a string.
fn is_wrong_type(error: &FredError) -> bool {
    error.details().starts_with("WRONGTYPE")
}

fn expiration(key: &str, ttl: Option<Duration>) -> Result<Option<Expiration>> {
    Ok(ttl.map(|ttl| ttl_millis(key, ttl)).transpose()?.map(|ms| Expiration::PX(clamp_ms(ms))))
}

pub(super) fn clamp_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}
