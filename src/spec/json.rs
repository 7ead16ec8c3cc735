//! JSON spec files → [`Node`] tree, typed as Python's `json.load` types them (integers stay
//! integers, `1.0` is a float, `NaN`/`Infinity` are accepted).

use super::node::{Key, Node, Pos, Value};
use super::toml::SyntaxError;
use jsonc_parser::ast;
use jsonc_parser::{CollectOptions, ParseOptions};

/// Parses a JSON document strictly (no comments, trailing commas or JSON5 extensions).
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let strict = ParseOptions {
        allow_comments: false,
        allow_loose_object_property_names: false,
        allow_trailing_commas: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: true,
        allow_extended_string_escapes: false,
    };
    let parsed =
        jsonc_parser::parse_to_ast(text, &CollectOptions::default(), &strict).map_err(|e| {
            SyntaxError {
                pos: Pos::at_offset(text, e.range().start),
                message: e.kind().to_string(),
            }
        })?;
    match parsed.value {
        Some(v) => convert(text, &v),
        None => Ok(Node {
            value: Value::Map(Vec::new()),
            pos: Pos { line: 1, col: 1 },
        }),
    }
}

fn convert(text: &str, value: &ast::Value<'_>) -> Result<Node, SyntaxError> {
    use jsonc_parser::common::Ranged;
    let pos = Pos::at_offset(text, value.range().start);
    let value = match value {
        ast::Value::StringLit(s) => Value::Str(s.value.to_string()),
        ast::Value::NumberLit(n) => number(n.value).ok_or_else(|| SyntaxError {
            pos,
            message: format!("number `{}` is out of range", n.value),
        })?,
        ast::Value::BooleanLit(b) => Value::Bool(b.value),
        ast::Value::NullKeyword(_) => Value::Null,
        ast::Value::Array(a) => Value::List(
            a.elements
                .iter()
                .map(|v| convert(text, v))
                .collect::<Result<_, _>>()?,
        ),
        ast::Value::Object(o) => {
            let mut entries: Vec<(Key, Node)> = Vec::new();
            for prop in &o.properties {
                let name = prop.name.clone().into_string();
                let key = Key {
                    name,
                    pos: Pos::at_offset(text, prop.range.start),
                };
                let node = convert(text, &prop.value)?;
                // json.load keeps the last value of a repeated key, at the first key's place.
                match entries.iter_mut().find(|(k, _)| k.name == key.name) {
                    Some(slot) => slot.1 = node,
                    None => entries.push((key, node)),
                }
            }
            Value::Map(entries)
        }
    };
    Ok(Node { value, pos })
}

/// A JSON number as Python's json module reads it: without `.`, `e` or `E` it is an int.
fn number(literal: &str) -> Option<Value> {
    match literal {
        "NaN" => return Some(Value::Float(f64::NAN)),
        "Infinity" => return Some(Value::Float(f64::INFINITY)),
        "-Infinity" => return Some(Value::Float(f64::NEG_INFINITY)),
        _ => {}
    }
    if literal.contains(['.', 'e', 'E']) {
        literal.parse::<f64>().ok().map(Value::Float)
    } else {
        literal.parse::<i128>().ok().map(Value::Int)
    }
}
