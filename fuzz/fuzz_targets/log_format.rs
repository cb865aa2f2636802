//! Fuzzes the log lines of `serve` and `mcp-stdio`
//! (`chatkit_engine_examples::logging`): the input, cut at 0xFF bytes into
//! four strings, goes into an event's message, a Display (`%`) field, a
//! Debug (`?`) field, a plain `&str` field and a span field, in the text and
//! the JSON format.
//!
//! Oracles, besides "no panic":
//! - every event is exactly one line, and no line holds an unsafe character
//!   (`chatkit_engine::validate::is_unsafe`: controls, line separators,
//!   bidirectional controls);
//! - a text line starts with its timestamp and level;
//! - a JSON line parses and gives every value back exactly.

#![no_main]

use chatkit_engine::validate::is_unsafe;
use chatkit_engine_examples::logging::{LogFormat, subscriber};
use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use tracing::Dispatch;

/// Where one format's lines go; emptied before every input.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn take(&self) -> String {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        String::from_utf8(bytes).expect("log lines are UTF-8")
    }
}

/// One subscriber per format, built once (interest caching stays warm).
fn subscribers() -> &'static [(LogFormat, Dispatch, Buffer); 2] {
    static SUBSCRIBERS: OnceLock<[(LogFormat, Dispatch, Buffer); 2]> = OnceLock::new();
    SUBSCRIBERS.get_or_init(|| {
        [LogFormat::Text, LogFormat::Json].map(|format| {
            let buffer = Buffer::default();
            let writer = buffer.clone();
            let dispatch = Dispatch::new(subscriber(format, "trace", false, move || {
                writer.clone()
            }));
            (format, dispatch, buffer)
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0xff).map(String::from_utf8_lossy);
    let mut next = || parts.next().unwrap_or_default().into_owned();
    let (span_value, shown, inspected, plain) = (next(), next(), next(), next());
    for (format, dispatch, buffer) in subscribers() {
        buffer.take();
        tracing::dispatcher::with_default(dispatch, || {
            let span = tracing::info_span!("http", request_id = %span_value);
            let _entered = span.enter();
            tracing::info!(
                display = %shown,
                debug = ?inspected,
                plain = plain.as_str(),
                "request {}",
                span_value
            );
        });
        let out = buffer.take();
        let line = out
            .strip_suffix('\n')
            .unwrap_or_else(|| panic!("{format:?}: not one line: {out:?}"));
        assert!(!line.contains(is_unsafe), "{format:?}: an unsafe character: {line:?}");
        match format {
            LogFormat::Text => {
                let mut words = line.split(' ').filter(|w| !w.is_empty());
                let time = words.next().unwrap_or_default();
                assert!(time.ends_with('Z'), "no timestamp first: {line:?}");
                assert_eq!(words.next(), Some("INFO"), "{line:?}");
            }
            LogFormat::Json => {
                let event: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
                assert_eq!(event["message"], format!("request {span_value}"));
                assert_eq!(event["display"], shown.as_str());
                assert_eq!(event["debug"], format!("{inspected:?}"));
                assert_eq!(event["plain"], plain.as_str());
                assert_eq!(event["span"]["request_id"], span_value.as_str());
            }
        }
    }
});
