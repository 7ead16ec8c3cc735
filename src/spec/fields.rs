//! The one table of flytekit 1.16's `ImageSpec` fields (the dataclass in
//! `flytekit/image_spec/image_spec.py`), in its declaration order, which is the order of its
//! hash. Everything that names the fields is generated from the table:
//!
//! - the [`Spec`] struct and [`FIELDS`] (whose order `asdict()` keeps);
//! - [`FIELD_TABLE`]: each field with whether flytekit hashes it into the id and tag;
//! - the decoder's dispatch (each field's `decode` column names a [`FieldDecoder`] method);
//! - [`NormalizedSpec::fields`]: every set field as a typed [`FieldValue`], from which
//!   flytekit's hashed dict (`tag`), `inspect --json` and the inputs record (`explain`) are
//!   built, each by the value's type, never by a field's name;
//! - the flytekit plugin's copy, `plugins/flytekit/python/flytekitplugins/imagespec/_fields.py`
//!   (a test here fails when it differs, and writes it with `IMAGESPEC_UPDATE_FIELDS=1`).
//!
//! ```
//! use imagespec::spec::{FIELD_TABLE, FIELDS};
//! assert_eq!(FIELDS.len(), 29);
//! let unhashed: Vec<&str> = FIELD_TABLE.iter().filter(|f| !f.hashed).map(|f| f.name).collect();
//! assert_eq!(unhashed, ["builder", "pip_secret_mounts", "runtime_packages"]);
//! ```

use super::decode::FieldDecoder;
use super::error::SpecError;
use super::model::{BaseImage, CopyMode, Scalar, SecretMount};
use super::node::Node;
use super::normalize::{NormalizedBase, NormalizedSpec};
use super::origin::Origin;
use crate::py::PyValue;
use indexmap::IndexMap;

/// One field of flytekit's `ImageSpec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The field's name, as a spec file and flytekit write it.
    pub name: &'static str,
    /// Whether flytekit hashes it into `ImageSpec.id` and the tag (all but `builder`,
    /// `pip_secret_mounts` and `runtime_packages`).
    pub hashed: bool,
}

/// A set field's value, by its type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue<'a> {
    Str(&'a str),
    Strings(&'a [String]),
    /// A string or number flytekit passes through untyped (`python_version`, `cuda`).
    Scalar(&'a Scalar),
    Env(&'a IndexMap<String, Scalar>),
    /// `base_image`, normalised.
    Base(&'a NormalizedBase),
    SecretMounts(&'a [SecretMount]),
    CopyMode(CopyMode),
    /// `builder_options`, `builder_config`: any Python values.
    Dict(&'a [(String, PyValue)]),
}

/// How a field's value shows as a [`FieldValue`].
trait View {
    fn view(&self) -> FieldValue<'_>;
}

/// How a field of a normalised spec shows: most as they are written ([`View`]).
trait ViewIn: Sized {
    fn view_in<'a>(value: &'a Option<Self>, spec: &'a NormalizedSpec) -> Option<FieldValue<'a>>;
}

impl<T: View> ViewIn for T {
    fn view_in<'a>(value: &'a Option<Self>, _: &'a NormalizedSpec) -> Option<FieldValue<'a>> {
        value.as_ref().map(View::view)
    }
}

/// Normalisation moves the base out of the spec (normalising a base spec too): the value is
/// the normalised one, [`NormalizedSpec::base`].
impl ViewIn for BaseImage {
    fn view_in<'a>(_: &'a Option<Self>, spec: &'a NormalizedSpec) -> Option<FieldValue<'a>> {
        spec.base().map(FieldValue::Base)
    }
}

/// `impl View for T`: `FieldValue::Variant(self)`, for each `T => Variant`.
macro_rules! view_as {
    ($($ty:ty => $variant:ident,)*) => {
        $(impl View for $ty {
            fn view(&self) -> FieldValue<'_> {
                FieldValue::$variant(self)
            }
        })*
    };
}

view_as! {
    String => Str,
    Vec<String> => Strings,
    Scalar => Scalar,
    IndexMap<String, Scalar> => Env,
    Vec<SecretMount> => SecretMounts,
    Vec<(String, PyValue)> => Dict,
}

impl View for CopyMode {
    fn view(&self) -> FieldValue<'_> {
        FieldValue::CopyMode(*self)
    }
}

/// `hashed` or `unhashed`, as a bool (any other word does not compile).
macro_rules! hashed {
    (hashed) => {
        true
    };
    (unhashed) => {
        false
    };
}

/// Generates [`Spec`], [`FIELDS`], [`FIELD_TABLE`], `Spec::decode_field` and
/// [`NormalizedSpec::fields`] from one row per field: `name: Type, hashed|unhashed, decoder;`.
macro_rules! spec_fields {
    ($($field:ident: $ty:ty, $hashed:ident, $decode:ident;)*) => {
        /// One ImageSpec as written, field for field (`None` = not set).
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct Spec {
            $(pub $field: Option<$ty>,)*
            /// Where the spec and its fields were written (not part of any hash).
            pub origin: Origin,
        }

        /// The field names of flytekit's `ImageSpec`, in declaration order (the order of its
        /// hash).
        pub const FIELDS: &[&str] = &[$(stringify!($field)),*];

        /// Every field of flytekit's `ImageSpec`, in declaration order.
        pub const FIELD_TABLE: &[Field] = &[$(Field {
            name: stringify!($field),
            hashed: hashed!($hashed),
        }),*];

        impl Spec {
            /// Decodes `value` into the field named `name` (`field` is its full path, for
            /// errors); `Ok(false)` when no field has that name.
            pub(super) fn decode_field(
                &mut self,
                name: &str,
                value: &Node,
                field: &str,
                decoder: &mut FieldDecoder<'_, '_>,
            ) -> Result<bool, SpecError> {
                match name {
                    $(stringify!($field) => self.$field = Some(decoder.$decode(value, field)?),)*
                    _ => return Ok(false),
                }
                Ok(true)
            }
        }

        impl NormalizedSpec {
            /// Every set field with its value, in flytekit's declaration order.
            pub fn fields(&self) -> impl Iterator<Item = (&'static Field, FieldValue<'_>)> {
                let values = [$(<$ty as ViewIn>::view_in(&self.$field, self)),*];
                FIELD_TABLE
                    .iter()
                    .zip(values)
                    .filter_map(|(field, value)| Some((field, value?)))
            }
        }
    };
}

spec_fields! {
    // field             Rust type                    hashed?   decoded by (FieldDecoder::...)
    name:                String,                      hashed,   string;
    python_version:      Scalar,                      hashed,   scalar;
    builder:             String,                      unhashed, string;
    source_root:         String,                      hashed,   string;
    env:                 IndexMap<String, Scalar>,    hashed,   env;
    registry:            String,                      hashed,   registry;
    packages:            Vec<String>,                 hashed,   strings;
    conda_packages:      Vec<String>,                 hashed,   strings;
    conda_channels:      Vec<String>,                 hashed,   strings;
    requirements:        String,                      hashed,   string;
    apt_packages:        Vec<String>,                 hashed,   strings;
    cuda:                Scalar,                      hashed,   scalar;
    cudnn:               Scalar,                      hashed,   scalar;
    base_image:          BaseImage,                   hashed,   base_image;
    platform:            String,                      hashed,   string;
    pip_index:           String,                      hashed,   string;
    pip_extra_index_url: Vec<String>,                 hashed,   strings;
    pip_secret_mounts:   Vec<SecretMount>,            unhashed, secret_mounts;
    pip_extra_args:      String,                      hashed,   string;
    registry_config:     String,                      hashed,   string;
    entrypoint:          Vec<String>,                 hashed,   strings;
    commands:            Vec<String>,                 hashed,   strings;
    tag_format:          String,                      hashed,   string;
    source_copy_mode:    CopyMode,                    hashed,   copy_mode;
    copy:                Vec<String>,                 hashed,   strings;
    python_exec:         String,                      hashed,   string;
    runtime_packages:    Vec<String>,                 unhashed, strings;
    builder_options:     Vec<(String, PyValue)>,      hashed,   dict;
    builder_config:      Vec<(String, PyValue)>,      hashed,   dict;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::SpecFile;
    use std::path::Path;

    /// Where the flytekit plugin keeps its copy of the table.
    const PLUGIN_FIELDS_FILE: &str = "plugins/flytekit/python/flytekitplugins/imagespec/_fields.py";

    /// The plugin's copy of the table, as the Python module [`PLUGIN_FIELDS_FILE`].
    fn plugin_fields_module() -> String {
        let mut out = String::from(
            "# Generated from imagespec's field table (src/spec/fields.rs) by\n\
             # `IMAGESPEC_UPDATE_FIELDS=1 cargo test --lib spec::fields`: do not edit.\n\
             \"\"\"flytekit's ``ImageSpec`` fields as imagespec reads them.\"\"\"\n\n\
             #: Every field, in flytekit's declaration order.\n\
             FIELDS = (\n",
        );
        for field in FIELD_TABLE {
            out.push_str(&format!("    {:?},\n", field.name));
        }
        out.push_str(
            ")\n\n\
             #: The fields flytekit leaves out of the id (and the tag).\n\
             NOT_HASHED = frozenset({\n",
        );
        for field in FIELD_TABLE.iter().filter(|f| !f.hashed) {
            out.push_str(&format!("    {:?},\n", field.name));
        }
        out.push_str("})\n");
        out
    }

    #[test]
    fn the_table_lists_each_field_once_in_flytekits_order() {
        assert_eq!(FIELDS.len(), 29);
        assert_eq!(FIELDS.first(), Some(&"name"));
        assert_eq!(FIELDS.last(), Some(&"builder_config"));
        let names: Vec<&str> = FIELD_TABLE.iter().map(|f| f.name).collect();
        assert_eq!(names, FIELDS);
        let unique: std::collections::HashSet<&&str> = FIELDS.iter().collect();
        assert_eq!(unique.len(), FIELDS.len());
    }

    #[test]
    fn fields_yields_the_set_fields_in_order_with_the_normalised_base() {
        let text = "name = \"App\"\npackages = [\"a\"]\nbuilder = \"x\"\n\
                    base_image = { name = \"b\" }\nsource_copy_mode = \"all\"\n";
        let file = SpecFile::parse(Path::new("s.toml"), text).unwrap();
        let (_, spec) = file.select(None).unwrap();
        let set: Vec<&str> = spec.fields().map(|(f, _)| f.name).collect();
        // `platform` is filled in by normalisation.
        assert_eq!(
            set,
            [
                "name",
                "builder",
                "packages",
                "base_image",
                "platform",
                "source_copy_mode"
            ]
        );
        let values: Vec<FieldValue<'_>> = spec.fields().map(|(_, v)| v).collect();
        assert_eq!(values[0], FieldValue::Str("app"));
        assert!(matches!(
            values[3],
            FieldValue::Base(NormalizedBase::Spec(inner)) if inner.name() == "b"
        ));
        assert_eq!(values[5], FieldValue::CopyMode(CopyMode::All));
    }

    #[test]
    fn every_field_decodes_and_shows() {
        // One value of each field's type: every row of the table is reachable from a file.
        let text = r#"
            name = "n"
            python_version = 3.10
            builder = "b"
            source_root = "."
            env = { A = 1 }
            registry = "localhost:5000"
            packages = ["p"]
            conda_packages = ["c"]
            conda_channels = ["cc"]
            requirements = "r.txt"
            apt_packages = ["a"]
            cuda = "12"
            cudnn = 9
            base_image = "python:3.12"
            platform = "linux/arm64"
            pip_index = "https://i"
            pip_extra_index_url = ["https://e"]
            pip_secret_mounts = [["s", "/t"]]
            pip_extra_args = "--x"
            registry_config = "c.json"
            entrypoint = ["e"]
            commands = ["c"]
            tag_format = "{spec_hash}"
            source_copy_mode = "none"
            copy = ["f"]
            python_exec = "/p"
            runtime_packages = ["rp"]
            builder_options = { k = [1] }
            builder_config = { k = "v" }
        "#;
        let file = SpecFile::parse(Path::new("s.toml"), text).unwrap();
        let (_, spec) = file.select(None).unwrap();
        let set: Vec<&str> = spec.fields().map(|(f, _)| f.name).collect();
        assert_eq!(set, FIELDS);
    }

    #[test]
    fn the_plugins_copy_is_the_table() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(PLUGIN_FIELDS_FILE);
        let want = plugin_fields_module();
        if std::env::var_os("IMAGESPEC_UPDATE_FIELDS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} differs from the field table: run `IMAGESPEC_UPDATE_FIELDS=1 cargo test --lib \
             spec::fields` and commit it",
            path.display()
        );
    }
}
