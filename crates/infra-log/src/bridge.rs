//! The `log` → tracing bridge: records of libraries that log through the `log` crate (fred
//! reports reconnections and protocol errors that way) become tracing events, filtered,
//! redacted and written like any other line.

use std::{
    borrow::Cow,
    sync::atomic::{AtomicBool, Ordering},
};

use serde_json::Value;
use tracing::Metadata;
use tracing_log::{AsLog, LogTracer};
use tracing_subscriber::filter::LevelFilter;

use crate::LogError;

/// The field tracing-log puts the record's own target in.
const LOG_TARGET: &str = "log.target";

/// Set once this crate installed the bridge, to tell a second `init` from a foreign logger.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the bridge as the process's `log` logger. `max_level` (the most verbose level the
/// filter enables) becomes `log`'s own maximum, so disabled records cost one comparison.
pub(crate) fn install(max_level: LevelFilter) -> Result<(), LogError> {
    match LogTracer::builder().with_max_level(max_level.as_log()).init() {
        Ok(()) => {
            INSTALLED.store(true, Ordering::Release);
            Ok(())
        }
        Err(_) if INSTALLED.load(Ordering::Acquire) => Err(LogError::AlreadyInitialized),
        Err(_) => Err(LogError::LoggerAlreadySet),
    }
}

/// Whether an event comes from the bridge: tracing-log gives every record the target `log`
/// and the record's own target in a `log.target` field.
pub(crate) fn is_bridged(metadata: &Metadata<'_>) -> bool {
    metadata.target() == "log" && metadata.fields().field(LOG_TARGET).is_some()
}

/// Rewrites a bunyan line of a bridged record so it reads like a tracing event: `target`,
/// `file` and `line` are the record's own (tracing-log has them in `log.*` fields, with
/// `target` set to `log` for all records); the `log.*` fields go.
pub(crate) fn normalize_json_line(line: &[u8]) -> Cow<'_, [u8]> {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(line) else {
        return Cow::Borrowed(line);
    };
    for (from, to) in [(LOG_TARGET, "target"), ("log.file", "file"), ("log.line", "line")] {
        if let Some(value) = map.remove(from) {
            map.insert(to.to_owned(), value);
        }
    }
    map.remove("log.module_path");
    let mut out = serde_json::to_vec(&map).unwrap_or_else(|_| line.to_vec());
    if line.ends_with(b"\n") {
        out.push(b'\n');
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridged_lines_take_the_record_s_target_file_and_line() {
        let line = br#"{"msg":"reconnecting","level":40,"target":"log","line":null,"file":null,"log.target":"fred::router","log.module_path":"fred::router","log.file":"src/router.rs","log.line":42}
"#;
        let out = normalize_json_line(line);
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["target"], "fred::router");
        assert_eq!(value["file"], "src/router.rs");
        assert_eq!(value["line"], 42);
        assert_eq!(value["msg"], "reconnecting");
        assert!(value.as_object().unwrap().keys().all(|key| !key.starts_with("log.")), "{value}");
        assert!(out.ends_with(b"}\n"));
        // Not JSON: left as it is rather than lost.
        assert_eq!(&*normalize_json_line(b"not json\n"), b"not json\n");
    }
}
