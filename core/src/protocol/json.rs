//! JSON output exactly as the Python SDK writes it.
//!
//! Compact separators and raw UTF-8 come from `serde_json`'s defaults; key
//! order comes from field declaration order (and `preserve_order` for free-form
//! objects). The one difference left is floats: Python writes `1e+16` and
//! `100.0`, so [`PythonFloatFormatter`] reproduces its `repr`.

use serde::Serialize;
use serde_json::ser::Formatter;
use std::io;

/// A compact `serde_json` formatter that writes floats like Python's `repr`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PythonFloatFormatter;

impl Formatter for PythonFloatFormatter {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        writer.write_all(python_float_repr(value).as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(writer, f64::from(value))
    }
}

/// Serializes `value` to compact JSON bytes with Python-style floats.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    write(&mut out, value)?;
    Ok(out)
}

/// Serializes `value` into `out` (appending) with Python-style floats.
pub fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> serde_json::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(out, PythonFloatFormatter);
    value.serialize(&mut serializer)
}

/// Serializes `value` to a compact JSON string with Python-style floats.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let bytes = to_vec(value)?;
    // serde_json only ever writes valid UTF-8.
    String::from_utf8(bytes).map_err(|err| serde::ser::Error::custom(err.to_string()))
}

/// Python's `repr(float)`: shortest round-trip digits, `.0` on integral
/// values, exponent form below 1e-4 and from 1e16 up, `+` on positive
/// exponents. Non-finite values (not valid JSON) become `null`, as in
/// `serde_json`.
pub fn python_float_repr(value: f64) -> String {
    if !value.is_finite() {
        return "null".to_owned();
    }
    // `{:e}` yields the shortest round-trip digits, e.g. `-1.25e2`.
    let scientific = format!("{value:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return scientific;
    };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    if !(-4..16).contains(&exponent) {
        let exp_sign = if exponent >= 0 { "+" } else { "-" };
        return format!("{sign}{mantissa}e{exp_sign}{}", exponent.abs());
    }
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if exponent >= 0 {
        let int_len = exponent as usize + 1;
        if digits.len() <= int_len {
            format!("{sign}{digits}{}.0", "0".repeat(int_len - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
        }
    } else {
        let zeros = "0".repeat((-exponent - 1) as usize);
        format!("{sign}0.{zeros}{digits}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_match_python_repr() {
        let cases = [
            (100.0, "100.0"),
            (1.5, "1.5"),
            (0.5, "0.5"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (1e-5, "1e-5"),
            (1e-7, "1e-7"),
            (-2.5e-7, "-2.5e-7"),
            (123.456, "123.456"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::NAN, "null"),
        ];
        for (value, expected) in cases {
            assert_eq!(python_float_repr(value), expected, "for {value:?}");
        }
    }

    #[test]
    fn free_form_json_keeps_key_order_nulls_and_integers() {
        let value: serde_json::Value =
            serde_json::from_str(r#"{"z":1,"a":null,"m":1e2,"n":1.50,"s":"é</"}"#).unwrap();
        assert_eq!(
            to_string(&value).unwrap(),
            r#"{"z":1,"a":null,"m":100.0,"n":1.5,"s":"é</"}"#
        );
    }
}
