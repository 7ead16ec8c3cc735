//! Every emulation of Python and flytekit behaviour, at the bottom of the module graph: the
//! tag is a hash of Python's `repr()` of the spec, the file set is chosen with `os.path` and
//! `fnmatch` on strings, and the Dockerfile holds `json.dumps` output, so each of these must
//! behave exactly as CPython 3.11 does, quirks included. Nothing here knows about images.

pub mod fnmatch;
pub mod format;
pub mod path;
pub mod repr;
pub mod text;
mod unprintable;
mod value;

pub use unprintable::UNICODE_VERSION;
pub use value::PyValue;
