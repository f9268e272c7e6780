//! The simulated world of `trading_bot`: a seeded random walk, a flaky exchange and a
//! strategy. Every random draw is a function of the seed, a stream and the tick (counter-based
//! splitmix64), so a run's prices, signals and faults do not depend on timing.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use infra_facade::{ResilientBus, prelude::*};
use serde::{Deserialize, Serialize};

/// The first price of every run.
pub(crate) const START_PRICE: f64 = 100.0;
/// Volatility of one tick's log return.
const SIGMA: f64 = 0.002;
/// The half-spread the exchange charges: a buy pays `mid * (1 + SPREAD)`.
const SPREAD: f64 = 0.0002;
/// Fee per fill, as a fraction of the notional.
const FEE: f64 = 0.001;

/// Independent streams of random numbers.
#[derive(Clone, Copy)]
enum Stream {
    Price = 1,
    Fault = 2,
    Latency = 3,
    Maintenance = 4,
    MaintenanceLength = 5,
}

/// splitmix64's finalizer over (seed, stream, index): a counter-based generator.
fn mix(seed: u64, stream: Stream, index: u64) -> u64 {
    let mut z = seed
        .wrapping_add((stream as u64).wrapping_mul(0xD1B5_4A32_D192_ED03))
        .wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform draw in `[0, 1)`.
fn unit(seed: u64, stream: Stream, index: u64) -> f64 {
    (mix(seed, stream, index) >> 11) as f64 / (1u64 << 53) as f64
}

/// One tick of the price feed, as published on the bus.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct PriceTick {
    pub(crate) seq: u64,
    pub(crate) price: f64,
    /// The feed's last tick.
    pub(crate) last: bool,
}

/// The price after `seq` steps of the walk from `price`.
fn step(seed: u64, seq: u64, price: f64) -> f64 {
    // Irwin-Hall: the sum of 12 uniforms minus 6 is close to a standard normal.
    let z: f64 = (0..12).map(|i| unit(seed, Stream::Price, seq * 12 + i)).sum::<f64>() - 6.0;
    price * (SIGMA * z).exp()
}

/// Publishes `ticks` prices of the seeded walk on `channel`, one per `every`.
pub(crate) async fn price_feed(bus: Arc<ResilientBus>, channel: String, seed: u64, ticks: u64, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut price = START_PRICE;
    for seq in 0..ticks {
        interval.tick().await;
        if seq > 0 {
            price = step(seed, seq, price);
        }
        let tick = PriceTick { seq, price, last: seq + 1 == ticks };
        if let Err(error) = bus.publish_json(&channel, &tick).await {
            tracing::warn!(%error, seq, "cannot publish a price");
        }
    }
}

/// A buy or a sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Side {
    Buy,
    Sell,
}

/// A market order.
#[derive(Debug, Clone)]
pub(crate) struct Order {
    /// The bot's ID for it, which the exchange's status query answers by.
    pub(crate) client_id: String,
    pub(crate) side: Side,
    pub(crate) qty: f64,
}

/// An executed order: `qty` is signed (negative for a sell).
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Fill {
    pub(crate) price: f64,
    pub(crate) qty: f64,
    pub(crate) fee: f64,
}

/// What the simulated exchange (or the bot's own gate) fails an order with.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ExchangeError {
    /// 503 from the gateway during maintenance: refused before order entry.
    Unavailable,
    /// 429: refused before order entry.
    RateLimited,
    /// The connection broke after the order was written: it may have been executed.
    Disconnected,
    /// Refused by the matching engine; trying again would fail the same way.
    Rejected(&'static str),
    /// Not sent: the emergency controller does not allow trading.
    Halted,
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable => f.write_str("503 service unavailable (maintenance)"),
            Self::RateLimited => f.write_str("429 too many requests"),
            Self::Disconnected => f.write_str("connection reset after the order was sent"),
            Self::Rejected(why) => write!(f, "order rejected: {why}"),
            Self::Halted => f.write_str("not sent: trading is halted"),
        }
    }
}

impl std::error::Error for ExchangeError {}

/// Says what was certainly not applied, so a non-idempotent order is retried only then.
impl RetryClass for ExchangeError {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable | Self::RateLimited | Self::Disconnected)
    }

    fn may_have_been_applied(&self) -> bool {
        matches!(self, Self::Disconnected)
    }
}

/// A flaky exchange: latency, rate limits, maintenance windows, dropped connections after
/// execution, hung calls (also after execution) and rejections, drawn from the seed.
#[derive(Debug)]
pub(crate) struct Exchange {
    seed: u64,
    tick: AtomicU64,
    /// The mid price, as `f64` bits.
    mid: AtomicU64,
    /// Executed orders by client order ID.
    book: Mutex<HashMap<String, Fill>>,
}

impl Exchange {
    pub(crate) fn new(seed: u64) -> Self {
        Self { seed, tick: AtomicU64::new(0), mid: AtomicU64::new(START_PRICE.to_bits()), book: Mutex::default() }
    }

    /// Moves the exchange to the feed's tick `seq`, at mid price `price`.
    pub(crate) fn advance(&self, seq: u64, price: f64) {
        self.tick.store(seq, Ordering::Relaxed);
        self.mid.store(price.to_bits(), Ordering::Relaxed);
    }

    /// Whether a maintenance window (1 in 150 ticks starts one, of 10 to 29 ticks) covers `tick`.
    fn in_maintenance(&self, tick: u64) -> bool {
        (tick.saturating_sub(29)..=tick).any(|start| {
            unit(self.seed, Stream::Maintenance, start) < 1.0 / 150.0
                && tick - start < 10 + mix(self.seed, Stream::MaintenanceLength, start) % 20
        })
    }

    async fn latency(&self, key: u64) {
        tokio::time::sleep(Duration::from_millis(2 + mix(self.seed, Stream::Latency, key) % 8)).await;
    }

    /// Places `order` (attempt `attempt` of it, from 0).
    pub(crate) async fn place(&self, order: &Order, attempt: u32) -> Result<Fill, ExchangeError> {
        let tick = self.tick.load(Ordering::Relaxed);
        let key = tick * 16 + u64::from(attempt);
        self.latency(key).await;
        if self.in_maintenance(tick) {
            return Err(ExchangeError::Unavailable);
        }
        let draw = unit(self.seed, Stream::Fault, key);
        if draw < 0.08 {
            return Err(ExchangeError::RateLimited);
        }
        if draw < 0.11 {
            return Err(ExchangeError::Rejected("insufficient liquidity"));
        }
        let mid = f64::from_bits(self.mid.load(Ordering::Relaxed));
        let (price, qty) = match order.side {
            Side::Buy => (mid * (1.0 + SPREAD), order.qty),
            Side::Sell => (mid * (1.0 - SPREAD), -order.qty),
        };
        let fill = Fill { price, qty, fee: price * order.qty * FEE };
        self.book.lock().unwrap_or_else(PoisonError::into_inner).insert(order.client_id.clone(), fill);
        if draw < 0.14 {
            return Err(ExchangeError::Disconnected);
        }
        if draw < 0.16 {
            // Executed, but the answer never comes.
            std::future::pending::<()>().await;
        }
        Ok(fill)
    }

    /// The fill of the order `client_id`, if it was executed (safe to ask again).
    pub(crate) async fn order_status(&self, client_id: String) -> Result<Option<Fill>, ExchangeError> {
        let tick = self.tick.load(Ordering::Relaxed);
        self.latency(tick * 16 + 15).await;
        if self.in_maintenance(tick) {
            return Err(ExchangeError::Unavailable);
        }
        Ok(self.book.lock().unwrap_or_else(PoisonError::into_inner).get(&client_id).copied())
    }
}

/// Mean reversion around an exponential moving average, at most `MAX_POSITION` units long or
/// short.
#[derive(Debug, Default)]
pub(crate) struct Strategy {
    ema: Option<f64>,
}

impl Strategy {
    const ALPHA: f64 = 0.2;
    const BAND: f64 = 0.0015;
    const MAX_POSITION: f64 = 3.0;

    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The order to send at `price` holding `position`, if any.
    pub(crate) fn signal(&mut self, price: f64, position: f64) -> Option<Side> {
        let ema = self.ema.get_or_insert(price);
        let deviation = (price - *ema) / *ema;
        *ema += Self::ALPHA * (price - *ema);
        if deviation < -Self::BAND && position < Self::MAX_POSITION {
            Some(Side::Buy)
        } else if deviation > Self::BAND && position > -Self::MAX_POSITION {
            Some(Side::Sell)
        } else {
            None
        }
    }
}
