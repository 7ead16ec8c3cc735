//! A format-neutral value tree with source positions.
//!
//! TOML, YAML and JSON are each parsed into [`Node`]s first, so that decoding the spec (and
//! every error it reports) works the same for all three, with the `line:column` of the value
//! at fault. Scalars keep the type the file gave them, the way Python's parsers would
//! (`python_version = 3.10` is the float `3.1`), because that type is part of flytekit's hash.

/// A 1-based line and column in a spec file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

impl Pos {
    /// The position of byte `offset` in `text` (one lookup; build a [`LineIndex`] for many).
    pub fn at_offset(text: &str, offset: usize) -> Pos {
        LineIndex::new(text).pos(offset)
    }
}

/// How deep values may nest in a spec file (tables in lists in tables...). Realistic specs
/// stay far below; the limit keeps a hostile file from exhausting the stack of the parsers,
/// of the conversions below and of `Drop` (30,000 nested YAML lists used to abort).
pub const MAX_DEPTH: usize = 64;

/// One step of the way to a value: a table key or a list index.
#[derive(Debug, Clone, Copy)]
pub enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// `builder_options.a[0][1]`: the way to a value, shortened when long, for a message.
pub fn field_path(segments: &[Segment<'_>]) -> String {
    const SHOWN: usize = 8;
    let mut path = String::new();
    for segment in segments.iter().take(SHOWN) {
        match segment {
            Segment::Key(k) if path.is_empty() => path.push_str(k),
            Segment::Key(k) => {
                path.push('.');
                path.push_str(k);
            }
            Segment::Index(i) => path.push_str(&format!("[{i}]")),
        }
    }
    if segments.len() > SHOWN {
        path.push_str("...");
    }
    path
}

/// The message for a value nested deeper than [`MAX_DEPTH`], under `path`.
pub fn too_deep(path: &[Segment<'_>]) -> String {
    format!(
        "`{}`: values nest more than {MAX_DEPTH} levels deep; a spec never needs that many",
        field_path(path)
    )
}

/// Positions of byte offsets in one text, each found in O(log n) after one O(n) pass.
///
/// The TOML and JSON parsers give byte offsets; converting each of them by rescanning the
/// text from its start made a spec with 100,000 values take a minute.
#[derive(Debug)]
pub struct LineIndex<'t> {
    text: &'t [u8],
    /// The offset of each line's first byte.
    line_starts: Vec<usize>,
    /// The number of characters before each [`Self::BLOCK`]-byte block: a column is then a
    /// difference of two character counts, cheap even on a 10 MB single-line JSON file.
    chars_before_block: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    const BLOCK: usize = 64;

    /// Indexes `text`.
    pub fn new(text: &'t str) -> LineIndex<'t> {
        let bytes = text.as_bytes();
        let mut line_starts = vec![0];
        line_starts.extend(line_break_ends(bytes));
        let mut chars_before_block = Vec::with_capacity(bytes.len() / Self::BLOCK + 1);
        let mut chars = 0;
        for block in bytes.chunks(Self::BLOCK) {
            chars_before_block.push(chars);
            chars += count_chars(block);
        }
        chars_before_block.push(chars);
        LineIndex {
            text: bytes,
            line_starts,
            chars_before_block,
        }
    }

    /// The 1-based line and column (in characters) of byte `offset`.
    pub fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.text.len());
        // The number of lines starting at or before `offset` (at least 1: line 1 starts at 0).
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line - 1];
        Pos {
            line,
            col: self.chars_before(offset) - self.chars_before(start) + 1,
        }
    }

    fn chars_before(&self, offset: usize) -> usize {
        let block = offset / Self::BLOCK;
        self.chars_before_block[block] + count_chars(&self.text[block * Self::BLOCK..offset])
    }
}

/// The offsets just past each `\n`.
fn line_break_ends(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i + 1)
}

/// UTF-8 characters in `bytes`: every byte but continuation bytes starts one.
fn count_chars(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b & 0xC0 != 0x80).count()
}

/// A parsed value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

/// A mapping key and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

/// The values a spec file can hold, typed as Python's `tomllib`, `yaml.safe_load` and
/// `json.load` would type them.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    List(Vec<Node>),
    Map(Vec<(Key, Node)>),
    /// A date or time (TOML datetimes, YAML timestamps): Python makes a `datetime` object.
    Date(DateValue),
}

/// A TOML datetime or YAML timestamp, as the Python object `tomllib`/PyYAML would make.
#[derive(Debug, Clone, PartialEq)]
pub struct DateValue {
    /// As written, for messages.
    pub text: String,
    pub date: Option<(i64, u32, u32)>,
    /// Hour, minute, second, microsecond.
    pub time: Option<(u32, u32, u32, u32)>,
    /// UTC offset in seconds; `Some(0)` is `datetime.timezone.utc`.
    pub offset: Option<i64>,
}

impl DateValue {
    /// The object's Python `repr()`: `datetime.date(1979, 5, 27)`,
    /// `datetime.datetime(1979, 5, 27, 7, 32, tzinfo=datetime.timezone.utc)`, ...
    pub fn python_repr(&self) -> String {
        let tz = self.offset.map(|s| format!("tzinfo={}", timezone_repr(s)));
        let time_fields = |(h, m, sec, us): (u32, u32, u32, u32)| {
            let mut f = vec![h.to_string(), m.to_string()];
            if sec != 0 || us != 0 {
                f.push(sec.to_string());
            }
            if us != 0 {
                f.push(us.to_string());
            }
            f
        };
        match (self.date, self.time) {
            (Some((y, m, d)), None) => format!("datetime.date({y}, {m}, {d})"),
            (None, Some(t)) => {
                let mut f = time_fields(t);
                f.extend(tz);
                format!("datetime.time({})", f.join(", "))
            }
            (Some((y, m, d)), Some(t)) => {
                let mut f = vec![y.to_string(), m.to_string(), d.to_string()];
                f.extend(time_fields(t));
                f.extend(tz);
                format!("datetime.datetime({})", f.join(", "))
            }
            (None, None) => "None".into(),
        }
    }
}

/// `repr(datetime.timezone(timedelta(seconds=s)))`.
fn timezone_repr(seconds: i64) -> String {
    if seconds == 0 {
        return "datetime.timezone.utc".into();
    }
    // timedelta normalises to days (may be negative) + seconds in [0, 86400).
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let mut parts = Vec::new();
    if days != 0 {
        parts.push(format!("days={days}"));
    }
    if secs != 0 {
        parts.push(format!("seconds={secs}"));
    }
    format!(
        "datetime.timezone(datetime.timedelta({}))",
        parts.join(", ")
    )
}

impl Value {
    /// What this value is, in words for an error message.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::List(_) => "a list",
            Value::Map(_) => "a table",
            Value::Date(_) => "a date/time",
        }
    }
}

/// `depth` empty lists inside one another, `[[...]]`: a value nested that deep, in any format.
#[cfg(test)]
pub(super) fn nested_lists(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Each format takes values nested as deep as [`MAX_DEPTH`] allows.
    #[test]
    fn each_format_takes_the_deepest_nesting_allowed() {
        let lists = nested_lists(MAX_DEPTH - 1);
        assert!(crate::spec::json::parse(&format!("{{\"a\": {lists}}}")).is_ok());
        assert!(crate::spec::toml::parse(&format!("a = {lists}\n")).is_ok());
        assert!(crate::spec::yaml::parse(&format!("a: {lists}\n")).is_ok());
    }

    /// The position by rescanning, as it was computed before the index.
    fn naive(text: &str, offset: usize) -> Pos {
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Pos {
            line: before.matches('\n').count() + 1,
            col: before[line_start..].chars().count() + 1,
        }
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "a = 1\nnäme = \"x\"\n\nz";
        let index = LineIndex::new(text);
        assert_eq!(index.pos(0), Pos { line: 1, col: 1 });
        assert_eq!(index.pos(6), Pos { line: 2, col: 1 });
        // `=` after `näme ` is the 6th character but the 7th byte of line 2.
        assert_eq!(index.pos(6 + 6), Pos { line: 2, col: 6 });
        assert_eq!(index.pos(text.len()), Pos { line: 4, col: 2 });
        assert_eq!(index.pos(text.len() + 10), Pos { line: 4, col: 2 });
    }

    proptest! {
        #[test]
        fn the_index_agrees_with_a_rescan(text in "[a-zé€\\n ]{0,300}", at in 0usize..400) {
            let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
            let offset = boundaries[at % boundaries.len()];
            prop_assert_eq!(LineIndex::new(&text).pos(offset), naive(&text, offset));
        }
    }
}
