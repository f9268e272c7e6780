//! The bunyan JSON record of an event.
//!
//! tracing-bunyan-formatter's own layer prefixes the message of an event inside a span with the
//! span's name (`[EXECUTION - EVENT] order placed`) and writes a record for every span start
//! and end. This layer writes events only, with `msg` exactly as the call site wrote it and the
//! span's name in a `span` field; span fields still come from tracing-bunyan-formatter's
//! `JsonStorageLayer`, which must sit below it.

use std::io::Write;

use serde::Serialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use tracing::{Event, Level, Subscriber};
use tracing_bunyan_formatter::JsonStorage;
use tracing_subscriber::{
    Layer,
    fmt::MakeWriter,
    layer::Context,
    registry::{LookupSpan, SpanRef},
};

/// Fields every bunyan record has; a field of an event or span with one of these names is
/// dropped rather than written twice.
const CORE_FIELDS: [&str; 7] = ["v", "name", "msg", "level", "hostname", "pid", "time"];

/// The field naming the innermost span of an event (infra-log's own context spans aside).
pub(crate) const SPAN_FIELD: &str = "span";

/// The target of infra-log's context spans, whose fields say all that their names would.
const CONTEXT_TARGET: &str = "infra_log";

/// Writes one bunyan JSON line per event through `make_writer`, in one `write_all`.
pub(crate) struct BunyanLayer<W> {
    make_writer: W,
    name: String,
    hostname: String,
    pid: u32,
}

impl<W> BunyanLayer<W> {
    /// Records carry `name` as their bunyan `name`.
    pub(crate) fn new(name: String, make_writer: W) -> Self {
        Self { make_writer, name, hostname: hostname(), pid: std::process::id() }
    }

    fn format<S>(&self, event: &Event<'_>, fields: &JsonStorage<'_>, span: Option<&SpanRef<'_, S>>) -> Option<Vec<u8>>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let metadata = event.metadata();
        let message = match fields.values().get("message") {
            Some(Value::String(message)) => message.as_str(),
            // An event without a message, as tracing-bunyan-formatter does.
            _ => metadata.target(),
        };
        let extensions = span.map(SpanRef::extensions);
        let span_fields = extensions.as_ref().and_then(|e| e.get::<JsonStorage<'_>>()).map(JsonStorage::values);
        let has_span_field =
            fields.values().contains_key(SPAN_FIELD) || span_fields.is_some_and(|f| f.contains_key(SPAN_FIELD));

        let mut record = Record { buffer: Vec::with_capacity(384), empty: true };
        record.buffer.push(b'{');
        record.entry("v", &0)?;
        record.entry("name", &self.name)?;
        record.entry("msg", message)?;
        record.entry("level", &bunyan_level(*metadata.level()))?;
        record.entry("hostname", &self.hostname)?;
        record.entry("pid", &self.pid)?;
        if let Ok(time) = time::OffsetDateTime::now_utc().format(&Rfc3339) {
            record.entry("time", &time)?;
        }
        // A field of the program's own named `target`, `line` or `file` (in the event or its
        // span) wins over the record's: one key, never two.
        let own = |key: &str| fields.values().contains_key(key) || span_fields.is_some_and(|f| f.contains_key(key));
        if !own("target") {
            record.entry("target", metadata.target())?;
        }
        if !own("line") {
            record.entry("line", &metadata.line())?;
        }
        if !own("file") {
            record.entry("file", &metadata.file())?;
        }
        // A field of the program's own named `span` wins over ours.
        if let Some(name) = span.and_then(user_span_name).filter(|_| !has_span_field) {
            record.entry(SPAN_FIELD, name)?;
        }
        for (key, value) in fields.values().iter().filter(|(key, _)| **key != "message" && !CORE_FIELDS.contains(*key))
        {
            record.entry(key, value)?;
        }
        // The event's own field wins over a span's of the same name: one key, never two.
        for (key, value) in span_fields.into_iter().flatten() {
            if !CORE_FIELDS.contains(key) && !fields.values().contains_key(key) {
                record.entry(key, value)?;
            }
        }
        record.buffer.extend_from_slice(b"}\n");
        Some(record.buffer)
    }
}

/// A JSON object being written, one entry at a time.
struct Record {
    buffer: Vec<u8>,
    empty: bool,
}

impl Record {
    fn entry<V: Serialize + ?Sized>(&mut self, key: &str, value: &V) -> Option<()> {
        if !std::mem::take(&mut self.empty) {
            self.buffer.push(b',');
        }
        serde_json::to_writer(&mut self.buffer, key).ok()?;
        self.buffer.push(b':');
        serde_json::to_writer(&mut self.buffer, value).ok()
    }
}

impl<S, W> Layer<S> for BunyanLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = JsonStorage::default();
        event.record(&mut fields);
        // `event_span` honours an explicit `parent:` as well as the current span.
        let span = ctx.event_span(event);
        if let Some(line) = self.format(event, &fields, span.as_ref()) {
            let _ = self.make_writer.make_writer_for(event.metadata()).write_all(&line);
        }
    }
}

/// The name of the innermost span around an event that is not one of infra-log's context spans.
fn user_span_name<S>(span: &SpanRef<'_, S>) -> Option<&'static str>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    span.scope().map(|span| span.metadata()).find(|m| m.target() != CONTEXT_TARGET).map(|m| m.name())
}

/// Bunyan's numeric levels.
fn bunyan_level(level: Level) -> u8 {
    match level {
        Level::ERROR => 50,
        Level::WARN => 40,
        Level::INFO => 30,
        Level::DEBUG => 20,
        Level::TRACE => 10,
    }
}

#[cfg(unix)]
fn hostname() -> String {
    nix::unistd::gethostname().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
}

#[cfg(not(unix))]
fn hostname() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_default()
}
