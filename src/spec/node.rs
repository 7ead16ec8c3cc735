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
    /// The position of byte `offset` in `text`.
    pub fn at_offset(text: &str, offset: usize) -> Pos {
        let offset = offset.min(text.len());
        let before = &text.as_bytes()[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let col = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        Pos { line, col }
    }
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
