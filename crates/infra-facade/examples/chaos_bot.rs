//! One member of the fleet that `cargo xtask chaos` runs against a Redis it kills, pauses and
//! freezes (see docs/reliability.md, "Chaos suite").
//!
//! ```sh
//! cargo run -p infra-facade --features redis --example chaos_bot -- \
//!   --url redis://127.0.0.1:7001 --namespace chaos --bot bot-0 --fleet bot-0,bot-1
//! ```
//!
//! With `--replica-acks N` (the cluster phase passes 1) every state write and durable publish
//! waits until N replicas acknowledged it (`replica_acks`), so a master's death loses none.
//!
//! The bot assembles the whole stack with the facade, then, once the key `<ns>:ctl:go` exists,
//! works until `<ns>:ctl:stop` exists:
//!
//! - **state**: increments the shared counter `<ns>:counter` (100 a second, only while the
//!   emergency controller lets it trade), counting each increment that returned `Ok`, each
//!   error that may have been applied and each that certainly was not;
//! - **ephemeral events**: publishes a sequence number on `chaos.eph.<bot>` every 20 ms through
//!   the facade's bus, and receives every bot's on the pattern `chaos.eph.*`, noting each hole in
//!   a sequence and whether the subscription's counters (gaps, dropped) had reported a loss;
//! - **durable events**: publishes a sequence number on `chaos.durable` every 50 ms on a durable
//!   bus and handles the stream in the consumer group `chaos` with the other bots;
//! - **emergency**: its controller heartbeats; the bot notes when it applied a global halt and
//!   the resume that lifted it.
//!
//! Every 50 ms it prints a progress line (`{"progress":{...}}`) so the driver can time
//! recoveries. After the stop it publishes a final marker on its ephemeral channel, waits for
//! every peer's marker and for `<ns>:ctl:exit` (the driver sets it once the durable group is
//! drained), unsubscribes, closes, and prints its report (`{"report":{...}}`) as the last line.
//! Exit codes: 0 done, 1 runtime failure, 2 bad arguments (or built without `redis`).

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "progress and the report are the example's output")]

#[cfg(feature = "redis")]
#[path = "chaos_bot/run.rs"]
mod run;
#[cfg(feature = "redis")]
#[path = "chaos_bot/tally.rs"]
mod tally;

#[cfg(feature = "redis")]
fn main() -> std::process::ExitCode {
    run::main()
}

#[cfg(not(feature = "redis"))]
fn main() -> std::process::ExitCode {
    eprintln!("chaos_bot needs Redis: cargo run -p infra-facade --features redis --example chaos_bot");
    std::process::ExitCode::from(2)
}
