//! Python's `repr()`, byte for byte, for the values an ImageSpec holds.
//!
//! flytekit hashes `str(asdict(spec))`, so every quote, escape and float digit must come out
//! as CPython prints it: strings pick `'` unless they hold `'` and no `"`, non-printable
//! characters (Unicode categories C*, Z* but the space) become `\xNN`/`\uNNNN`/`\UNNNNNNNN`,
//! floats use the shortest round-trip digits with CPython's switch to exponent notation.
//! Printability is CPython 3.11's (Unicode 14.0, table generated from it by
//! `scripts/gen_unprintable.py`): flytekit running on another Python may escape characters
//! assigned in a later Unicode version differently.

use super::PyValue;
use super::unprintable::UNPRINTABLE;

/// `repr(value)`.
pub fn repr(value: &PyValue) -> String {
    let mut out = String::new();
    write_repr(&mut out, value);
    out
}

fn write_repr(out: &mut String, value: &PyValue) {
    match value {
        PyValue::None => out.push_str("None"),
        PyValue::Bool(true) => out.push_str("True"),
        PyValue::Bool(false) => out.push_str("False"),
        PyValue::Int(i) => out.push_str(&i.to_string()),
        PyValue::Float(x) => out.push_str(&float_repr(*x)),
        PyValue::Str(s) => out.push_str(&str_repr(s)),
        PyValue::Repr(r) => out.push_str(r),
        PyValue::List(items) => {
            out.push('[');
            write_items(out, items);
            out.push(']');
        }
        PyValue::Tuple(items) => {
            out.push('(');
            write_items(out, items);
            if items.len() == 1 {
                out.push(',');
            }
            out.push(')');
        }
        PyValue::Dict(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&str_repr(k));
                out.push_str(": ");
                write_repr(out, v);
            }
            out.push('}');
        }
    }
}

fn write_items(out: &mut String, items: &[PyValue]) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_repr(out, item);
    }
}

/// `repr(s)` for a `str`.
pub fn str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if (c as u32) < 0x7f => out.push(c),
            c if is_printable(c) => out.push(c),
            c if (c as u32) <= 0xff => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push(quote);
    out
}

/// CPython's `str.isprintable()` for one character.
fn is_printable(c: char) -> bool {
    let cp = c as u32;
    UNPRINTABLE
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_err()
}

/// `repr(x)` for a `float`: shortest round-trip digits; exponent notation when the decimal
/// exponent is below -4 or at least 16 (CPython's `float_repr_style = 'short'`).
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // `{:e}` gives the shortest round-trip digits as `d.ddde±x`.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if x.is_sign_negative() { "-" } else { "" };
    let decpt = exp + 1; // value = 0.DIGITS × 10^decpt
    let body = if !(-4 < decpt && decpt <= 16) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        format!(
            "{first}{frac}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    } else if decpt <= 0 {
        format!("0.{}{digits}", "0".repeat((-decpt) as usize))
    } else if decpt as usize >= digits.len() {
        format!("{digits}{}.0", "0".repeat(decpt as usize - digits.len()))
    } else {
        let (int, frac) = digits.split_at(decpt as usize);
        format!("{int}.{frac}")
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_cpython() {
        let cases = [
            (3.1, "3.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.5e16, "1.5e+16"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (2.0, "2.0"),
            (-2.5e-7, "-2.5e-07"),
            (1e100, "1e+100"),
            (f64::INFINITY, "inf"),
        ];
        for (x, want) in cases {
            assert_eq!(float_repr(x), want, "{x:?}");
        }
    }

    #[test]
    fn strings_quote_and_escape_as_cpython() {
        assert_eq!(str_repr("it's"), r#""it's""#);
        assert_eq!(str_repr(r#"it's "x""#), r#"'it\'s "x"'"#);
        assert_eq!(str_repr("a\\b\n\t\r\x00\x7f"), r"'a\\b\n\t\r\x00\x7f'");
        assert_eq!(str_repr("é中😀"), "'é中😀'");
        assert_eq!(
            str_repr("\u{a0}\u{200b}\u{2028}\u{e000}\u{10ffff}"),
            r"'\xa0\u200b\u2028\ue000\U0010ffff'"
        );
    }

    #[test]
    fn containers_print_as_cpython() {
        let v = PyValue::Dict(vec![
            (
                "a".into(),
                PyValue::List(vec![PyValue::Int(1), PyValue::None]),
            ),
            ("b".into(), PyValue::Tuple(vec![PyValue::Bool(true)])),
            ("c".into(), PyValue::Dict(vec![])),
        ]);
        assert_eq!(repr(&v), "{'a': [1, None], 'b': (True,), 'c': {}}");
    }
}
