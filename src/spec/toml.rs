//! TOML spec files → [`Node`] tree, typed as Python's `tomllib` types them.

use super::node::{DateValue, Key, Node, Pos, Value};
use ::toml::Spanned;
use ::toml::de::{DeTable, DeValue};

/// A syntax error in a spec file: where and what.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses a TOML document.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let table = DeTable::parse(text).map_err(|e| SyntaxError {
        pos: Pos::at_offset(text, e.span().map_or(0, |s| s.start)),
        message: e.message().trim().to_string(),
    })?;
    let pos = Pos { line: 1, col: 1 };
    Ok(Node {
        value: convert_table(text, table.get_ref()),
        pos,
    })
}

fn convert_table(text: &str, table: &DeTable<'_>) -> Value {
    Value::Map(
        table
            .iter()
            .map(|(k, v)| {
                let key = Key {
                    name: k.get_ref().to_string(),
                    pos: Pos::at_offset(text, k.span().start),
                };
                (key, convert(text, v))
            })
            .collect(),
    )
}

fn convert(text: &str, spanned: &Spanned<DeValue<'_>>) -> Node {
    let pos = Pos::at_offset(text, spanned.span().start);
    let value = match spanned.get_ref() {
        DeValue::String(s) => Value::Str(s.to_string()),
        // The parser has validated both: digits in the given radix, and a float literal.
        DeValue::Integer(i) => {
            i128::from_str_radix(i.as_str(), i.radix()).map_or(Value::Null, Value::Int)
        }
        DeValue::Float(f) => Value::Float(f.as_str().parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::Date(DateValue {
            text: d.to_string(),
            date: d
                .date
                .map(|x| (i64::from(x.year), u32::from(x.month), u32::from(x.day))),
            time: d.time.map(|t| {
                (
                    u32::from(t.hour),
                    u32::from(t.minute),
                    u32::from(t.second.unwrap_or(0)),
                    t.nanosecond.unwrap_or(0) / 1000,
                )
            }),
            offset: d.offset.map(|o| match o {
                ::toml::value::Offset::Z => 0,
                ::toml::value::Offset::Custom { minutes } => i64::from(minutes) * 60,
            }),
        }),
        DeValue::Array(items) => Value::List(items.iter().map(|v| convert(text, v)).collect()),
        DeValue::Table(t) => convert_table(text, t),
    };
    Node { value, pos }
}
