//! Every emulation of Python and flytekit behaviour, at the bottom of the module graph: the
//! tag is a hash of Python's `repr()` of the spec, the file set is chosen with `os.path` and
//! `fnmatch` on strings, and the Dockerfile holds `json.dumps` output, so each of these must
//! behave exactly as CPython 3.11 does, quirks included. Nothing here knows about images.

// Not an API: reachable for tests/no_panic.rs, which feeds them arbitrary patterns and
// format specs (proptest), something the public functions above them cannot reach.
#[doc(hidden)]
pub mod fnmatch;
#[doc(hidden)]
pub mod format;
pub mod path;
pub(crate) mod repr;
pub(crate) mod text;
mod unprintable;
mod value;

pub use unprintable::UNICODE_VERSION;
pub use value::PyValue;
