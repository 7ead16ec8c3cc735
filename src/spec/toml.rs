//! TOML spec files → [`Node`] tree, typed as Python's `tomllib` types them.
//!
//! The `toml` crate bounds nesting itself (80 levels); [`MAX_DEPTH`] is checked here too, so
//! all three formats give the same limit.

use super::node::{DateValue, Key, LineIndex, MAX_DEPTH, Node, Pos, Segment, Value, too_deep};
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
    let index = LineIndex::new(text);
    let table = DeTable::parse(text).map_err(|e| SyntaxError {
        pos: index.pos(e.span().map_or(0, |s| s.start)),
        message: e.message().trim().to_string(),
    })?;
    let pos = Pos { line: 1, col: 1 };
    Ok(Node {
        value: convert_table(&index, table.get_ref(), pos, &mut Vec::new())?,
        pos,
    })
}

/// `path` is the way to the value converted (its length the depth), for the depth error.
fn convert_table<'t>(
    index: &LineIndex<'_>,
    table: &'t DeTable<'_>,
    pos: Pos,
    path: &mut Vec<Segment<'t>>,
) -> Result<Value, SyntaxError> {
    if path.len() >= MAX_DEPTH {
        return Err(SyntaxError {
            pos,
            message: too_deep(path),
        });
    }
    let mut entries = Vec::with_capacity(table.len());
    for (k, v) in table.iter() {
        let key = Key {
            name: k.get_ref().to_string(),
            pos: index.pos(k.span().start),
        };
        path.push(Segment::Key(k.get_ref()));
        let node = convert(index, v, path)?;
        path.pop();
        entries.push((key, node));
    }
    Ok(Value::Map(entries))
}

fn convert<'t>(
    index: &LineIndex<'_>,
    spanned: &'t Spanned<DeValue<'_>>,
    path: &mut Vec<Segment<'t>>,
) -> Result<Node, SyntaxError> {
    let pos = index.pos(spanned.span().start);
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
        DeValue::Array(items) => {
            if path.len() >= MAX_DEPTH {
                return Err(SyntaxError {
                    pos,
                    message: too_deep(path),
                });
            }
            let mut list = Vec::with_capacity(items.len());
            for (i, v) in items.iter().enumerate() {
                path.push(Segment::Index(i));
                list.push(convert(index, v, path)?);
                path.pop();
            }
            Value::List(list)
        }
        DeValue::Table(t) => convert_table(index, t, pos, path)?,
    };
    Ok(Node { value, pos })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::node::nested_lists;

    #[test]
    fn nesting_is_bounded_with_the_way_to_it() {
        let deep = format!("[t]\na = [1, {}]\n", nested_lists(70));
        let err = parse(&deep).unwrap_err();
        assert!(err.message.starts_with("`t.a[1][0][0]"), "{err:?}");
        // Past the parser's own limit, its error, still located.
        let deeper = format!("a = {}\n", nested_lists(30_000));
        assert_eq!(parse(&deeper).unwrap_err().pos.line, 1);
    }
}
