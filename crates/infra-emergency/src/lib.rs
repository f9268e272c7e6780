//! A kill switch for trading bots: states persisted before they act, shared by the fleet,
//! fail-closed and audited.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]
#![allow(dead_code, reason = "step 1 of issue #13: the controller using the gate and keys lands next")]

mod error;
mod gate;
mod record;
mod state;
pub mod table;

pub use error::EmergencyError;
pub use gate::{STATE_UNAVAILABLE, Status};
pub use record::AuditRecord;
pub use state::{Action, EmergencyState, Scope, Source};
