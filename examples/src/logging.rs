//! Log lines that values from requests cannot forge, in both formats of
//! `serve` (and the text format of `mcp-stdio`).
//!
//! | format | a field's value | the message |
//! | --- | --- | --- |
//! | `text` | `name=value` when the value is a plain token (no white space, quote, `=`, backslash, brace or [unsafe character](chatkit_engine::validate::is_unsafe)); a value that is already a Rust string literal (`?value` of a `&str`) as it is; anything else quoted, `name="..."`, with `\\`, `\"`, `\n`, `\r`, `\t` and `\u{..}` escapes | as written, with unsafe characters escaped the same way |
//! | `json` | a JSON string or number: serde_json's escapes, and `\uXXXX` for the unsafe characters it leaves raw (DEL, C1 controls such as NEL, `U+2028`, `U+2029`, bidirectional controls), which some line readers (Python's `splitlines`) and terminals take for line breaks or controls | a JSON string, the same |
//!
//! Every event is therefore exactly one line, whatever a thread id, a
//! token's `sub`, an `x-request-id`, an error message or a tool name holds.
//! The escaping works on what a field formats to, so `%value` (Display),
//! `?value` (Debug) and plain values are all covered, in events and spans
//! alike; `serve` also refuses such values where it can (see
//! [`chatkit_engine::validate`]), this is the second line of defence.
//!
//! Why not tracing-subscriber's own text fields: they write `%value` raw
//! (only ANSI escape sequences are neutralised), so a newline starts a new
//! line; `EscapedFields` plugs into its `fmt_fields` instead.
//!
//! ```
//! use chatkit_engine_examples::logging::{LogFormat, subscriber};
//! use std::sync::{Arc, Mutex};
//!
//! #[derive(Clone, Default)]
//! struct Buffer(Arc<Mutex<Vec<u8>>>);
//! impl std::io::Write for Buffer {
//!     fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
//!         self.0.lock().unwrap().extend_from_slice(bytes);
//!         Ok(bytes.len())
//!     }
//!     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
//! }
//!
//! let buffer = Buffer::default();
//! let logs = buffer.clone();
//! let subscriber = subscriber(LogFormat::Text, "info", false, move || buffer.clone());
//! tracing::subscriber::with_default(subscriber, || {
//!     let thread_id = "thr_1\nERROR forged line";
//!     tracing::info!(thread_id = %thread_id, user = "bob", "request rejected");
//! });
//! let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
//! assert_eq!(text.lines().count(), 1);
//! assert!(text.ends_with(
//!     "request rejected thread_id=\"thr_1\\nERROR forged line\" user=bob\n"
//! ));
//! ```

use crate::otel::Otel;
use chatkit_engine::validate::is_unsafe;
use std::fmt;
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A subscriber writing `format` lines through `writer`, filtered by
/// `filter` (an `EnvFilter` directive such as `info` or
/// `info,chatkit_engine=debug`; an invalid one means `info`), with ANSI
/// colours only when `ansi` is set.
pub fn subscriber<W>(
    format: LogFormat,
    filter: &str,
    ansi: bool,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    subscriber_with(format, filter, ansi, writer, None)
}

/// [`subscriber`] that also exports its spans through `otel` (see
/// [`crate::otel`]) when given.
pub fn subscriber_with<W>(
    format: LogFormat,
    filter: &str,
    ansi: bool,
    writer: W,
    otel: Option<&Otel>,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(otel.map(Otel::layer));
    let layer = tracing_subscriber::fmt::layer().with_ansi(ansi);
    match format {
        LogFormat::Text => {
            Box::new(registry.with(layer.fmt_fields(EscapedFields).with_writer(writer)))
        }
        LogFormat::Json => Box::new(
            registry.with(
                layer
                    .json()
                    .flatten_event(true)
                    .with_writer(EscapeJson(writer)),
            ),
        ),
    }
}

/// Makes writers that escape what serde_json leaves raw in JSON lines (see
/// the module docs). Outside strings a JSON line is ASCII without DEL, so
/// every such character is inside a string and `\uXXXX` keeps its meaning.
#[derive(Clone, Copy, Debug, Default)]
pub struct EscapeJson<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for EscapeJson<M> {
    type Writer = EscapeJsonWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapeJsonWriter(self.0.make_writer())
    }
}

/// The writer of [`EscapeJson`]: the formatter hands it one whole line per
/// write.
#[derive(Debug)]
pub struct EscapeJsonWriter<W>(W);

impl<W: std::io::Write> std::io::Write for EscapeJsonWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(bytes) {
            Ok(line) if line.contains(|c: char| c != '\n' && is_unsafe(c)) => {
                let mut escaped = String::with_capacity(line.len() + 16);
                for c in line.chars() {
                    if c != '\n' && is_unsafe(c) {
                        let _ = fmt::Write::write_fmt(
                            &mut escaped,
                            format_args!("\\u{:04x}", u32::from(c)),
                        );
                    } else {
                        escaped.push(c);
                    }
                }
                self.0.write_all(escaped.as_bytes())?;
            }
            // Nothing to escape (or not text, which the formatter never
            // writes): as it is.
            _ => self.0.write_all(bytes)?,
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Installs [`subscriber`] on stderr as the global default: `RUST_LOG`
/// filters (else `default_filter`), colours when stderr is a terminal.
/// Does nothing when a global subscriber is already set.
pub fn init(format: LogFormat, default_filter: &str) {
    init_with(format, default_filter, None);
}

/// [`init`], also exporting spans through `otel` when given.
pub fn init_with(format: LogFormat, default_filter: &str, otel: Option<&Otel>) {
    use std::io::IsTerminal;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| EnvFilter::try_new(f).is_ok())
        .unwrap_or_else(|| default_filter.to_owned());
    let ansi = format == LogFormat::Text && std::io::stderr().is_terminal();
    // Also routes the events of crates that log through `log`.
    let _ = tracing_subscriber::util::SubscriberInitExt::try_init(subscriber_with(
        format,
        &filter,
        ansi,
        std::io::stderr,
        otel,
    ));
}

/// The text format's fields, escaped and quoted as the module docs say.
#[derive(Clone, Copy, Debug, Default)]
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    fn field(&mut self, field: &Field, value: &str, is_debug: bool) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        // `log` records' metadata fields, shown by the line's own target.
        if name.starts_with("log.") {
            return;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.result = (|| {
            if !self.first {
                self.writer.write_char(' ')?;
            }
            self.first = false;
            if name == "message" {
                write_escaped(&mut self.writer, value)
            } else {
                self.writer.write_str(name)?;
                self.writer.write_char('=')?;
                write_value(&mut self.writer, value, is_debug)
            }
        })();
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, value, false);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let rendered = format!("{value:?}");
        self.field(field, &rendered, true);
    }
}

/// Writes one field value: bare when it is a plain token, as it is when it
/// is already a string literal from a `Debug` rendering, quoted otherwise.
pub fn write_value(out: &mut impl fmt::Write, value: &str, is_debug: bool) -> fmt::Result {
    if is_plain_token(value) || (is_debug && is_string_literal(value)) {
        out.write_str(value)
    } else {
        out.write_char('"')?;
        for c in value.chars() {
            match c {
                '"' => out.write_str("\\\"")?,
                '\\' => out.write_str("\\\\")?,
                c => write_char_escaped(out, c)?,
            }
        }
        out.write_char('"')
    }
}

/// Writes `text` with unsafe characters escaped (no quotes).
pub fn write_escaped(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    text.chars().try_for_each(|c| write_char_escaped(out, c))
}

fn write_char_escaped(out: &mut impl fmt::Write, c: char) -> fmt::Result {
    match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        c if is_unsafe(c) => write!(out, "\\u{{{:x}}}", u32::from(c)),
        c => out.write_char(c),
    }
}

/// A value that can stand bare after `name=`: no white space, quote, `=`,
/// backslash, brace or unsafe character.
fn is_plain_token(value: &str) -> bool {
    !value.is_empty()
        && value.chars().all(|c| {
            !c.is_whitespace() && !is_unsafe(c) && !matches!(c, '"' | '=' | '\\' | '{' | '}')
        })
}

/// A double-quoted string whose inner quotes are all escaped and which holds
/// no unsafe character: what `Debug` makes of a `&str`.
fn is_string_literal(value: &str) -> bool {
    let Some(inner) = value
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return false;
    };
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            // The guard consumes the escaped character.
            '\\' if chars.next().is_none_or(is_unsafe) => return false,
            '\\' => {}
            '"' => return false,
            c if is_unsafe(c) => return false,
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(raw: &str, is_debug: bool) -> String {
        let mut out = String::new();
        write_value(&mut out, raw, is_debug).unwrap();
        out
    }

    /// Reads back a quoted value the way a logfmt reader would.
    fn unquote(written: &str) -> String {
        let inner = &written[1..written.len() - 1];
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next().unwrap() {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'u' => {
                    let hex: String = chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                }
                other => out.push(other),
            }
        }
        out
    }

    #[test]
    fn plain_tokens_stay_bare_and_everything_else_is_quoted_and_read_back_exactly() {
        assert_eq!(value("thr_01J9", false), "thr_01J9");
        assert_eq!(value("/chatkit", false), "/chatkit");
        assert_eq!(value("ٹاسک", false), "ٹاسک");
        for hostile in [
            "",
            "a b",
            "x\nINFO forged",
            "x\r\n",
            "tab\there",
            "nul\0",
            "esc\u{1b}[2J",
            "nel\u{85}",
            "ls\u{2028}",
            "rlo\u{202e}",
            "quote\" user_id=admin",
            "back\\slash",
            "brace}",
            "k=v",
        ] {
            let written = value(hostile, false);
            assert!(
                written.starts_with('"') && written.ends_with('"'),
                "{written}"
            );
            assert!(!written.contains(is_unsafe), "{written:?}");
            assert_eq!(unquote(&written), hostile);
        }
    }

    #[test]
    fn debug_string_literals_are_kept_and_forged_ones_are_quoted() {
        let literal = format!("{:?}", "a\nb \"c\"");
        assert_eq!(value(&literal, true), literal);
        // A Display value shaped like a literal but with a bare inner quote.
        let forged = "\"x\" admin=\"true\"";
        assert_ne!(value(forged, true), forged);
        let dangling = "\"a\\\"";
        assert_eq!(
            unquote(&value(dangling, true)),
            dangling,
            "a dangling escape"
        );
        assert_eq!(unquote(&value(forged, true)), forged);
    }

    #[test]
    fn json_lines_escape_what_serde_json_leaves_raw() {
        use std::io::Write;
        let mut out = EscapeJsonWriter(Vec::new());
        let line =
            serde_json::json!({"v": "a\u{7f}\u{85}\u{2028}\u{202e}\n\u{1}é"}).to_string() + "\n";
        out.write_all(line.as_bytes()).unwrap();
        let written = String::from_utf8(out.0).unwrap();
        assert_eq!(
            written,
            "{\"v\":\"a\\u007f\\u0085\\u2028\\u202e\\n\\u0001é\"}\n"
        );
        let back: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert_eq!(back["v"], "a\u{7f}\u{85}\u{2028}\u{202e}\n\u{1}é");
    }

    #[test]
    fn messages_are_escaped_without_quotes() {
        let mut out = String::new();
        write_escaped(&mut out, "turn failed\nERROR forged \u{1b}[31m").unwrap();
        assert_eq!(out, "turn failed\\nERROR forged \\u{1b}[31m");
    }
}
