//! JSON spec files → [`Node`] tree, typed as Python's `json.load` types them (integers stay
//! integers, `1.0` is a float, `NaN`/`Infinity` are accepted).

use super::node::{Key, LineIndex, MAX_DEPTH, Node, Pos, Segment, Value, too_deep};
use super::toml::SyntaxError;
use jsonc_parser::ast;
use jsonc_parser::{CollectOptions, ParseOptions};

/// Parses a JSON document strictly (no comments, trailing commas or JSON5 extensions).
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let index = LineIndex::new(text);
    check_depth(text, &index)?;
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
                pos: index.pos(e.range().start),
                message: e.kind().to_string(),
            }
        })?;
    match parsed.value {
        Some(v) => convert(&index, &v),
        None => Ok(Node {
            value: Value::Map(Vec::new()),
            pos: Pos { line: 1, col: 1 },
        }),
    }
}

/// Refuses values nested deeper than [`MAX_DEPTH`] before parsing, naming where: the parser
/// bounds its recursion only at 512 levels, and then says just "Maximum nesting depth
/// exceeded". A scan of brackets outside strings, so it also runs on text that does not
/// parse (the parser then reports that).
fn check_depth(text: &str, index: &LineIndex<'_>) -> Result<(), SyntaxError> {
    enum Frame<'t> {
        Object { key: Option<&'t str> },
        Array { index: usize },
    }
    let bytes = text.as_bytes();
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut last_string = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                last_string = text.get(start..i.min(bytes.len()));
            }
            b':' => {
                if let Some(Frame::Object { key }) = stack.last_mut() {
                    *key = last_string;
                }
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { key }) => *key = None,
                None => {}
            },
            open @ (b'[' | b'{') => {
                if stack.len() >= MAX_DEPTH {
                    let path: Vec<Segment<'_>> = stack
                        .iter()
                        .filter_map(|frame| match frame {
                            Frame::Object { key } => key.map(Segment::Key),
                            Frame::Array { index } => Some(Segment::Index(*index)),
                        })
                        .collect();
                    return Err(SyntaxError {
                        pos: index.pos(i),
                        message: too_deep(&path),
                    });
                }
                stack.push(if open == b'[' {
                    Frame::Array { index: 0 }
                } else {
                    Frame::Object { key: None }
                });
            }
            b']' | b'}' => {
                stack.pop();
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Converts a value [`check_depth`] has bounded.
fn convert(index: &LineIndex<'_>, value: &ast::Value<'_>) -> Result<Node, SyntaxError> {
    use jsonc_parser::common::Ranged;
    let pos = index.pos(value.range().start);
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
                .map(|v| convert(index, v))
                .collect::<Result<_, _>>()?,
        ),
        ast::Value::Object(o) => {
            let mut entries: Vec<(Key, Node)> = Vec::new();
            for prop in &o.properties {
                let name = prop.name.clone().into_string();
                let key = Key {
                    name,
                    pos: index.pos(prop.range.start),
                };
                let node = convert(index, &prop.value)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_refused_before_parsing_with_the_way_to_it() {
        // Brackets inside strings, and escaped quotes, do not count.
        let strings = format!("{{\"a\": \"{}\\\"{}\"}}", "[".repeat(100), "{".repeat(100));
        assert!(parse(&strings).is_ok());
        let deep = format!("{{\"x\": 1, \"a\": [0, {}]}}", "{\"b\": [".repeat(50));
        let err = parse(&deep).unwrap_err();
        assert!(err.message.starts_with("`a[1].b[0].b[0].b"), "{err:?}");
    }
}
