//! Machine-readable views of a spec and its tag, for `imagespec inspect --json`.

use crate::spec::defaults::{self, Overrides};
use crate::spec::{FieldValue, NormalizedBase, NormalizedSpec, PyValue};
use crate::tag::ImageTag;
use serde_json::{Map, Value, json};

/// The normalised spec as JSON: every set field, the hashed ones first in flytekit's field
/// order, then the three it leaves out of its hash (the order this output has always had).
pub fn spec_json(spec: &NormalizedSpec) -> Value {
    let (hashed, unhashed): (Vec<_>, Vec<_>) = spec.fields().partition(|(f, _)| f.hashed);
    let out: Map<String, Value> = hashed
        .into_iter()
        .chain(unhashed)
        .map(|(field, value)| (field.name.to_string(), value_json(value)))
        .collect();
    Value::Object(out)
}

/// A field's value as JSON: a base spec as an object, `source_copy_mode` by name, secret
/// mounts as `[source, target]` pairs, the rest as Python holds it.
fn value_json(value: FieldValue<'_>) -> Value {
    match value {
        FieldValue::Str(s) => json!(s),
        FieldValue::Strings(items) => json!(items),
        FieldValue::Scalar(s) => py_json(&PyValue::from(s)),
        FieldValue::Env(env) => Value::Object(
            env.iter()
                .map(|(k, v)| (k.clone(), py_json(&PyValue::from(v))))
                .collect(),
        ),
        FieldValue::Base(NormalizedBase::Ref(r)) => json!(r.to_string()),
        FieldValue::Base(NormalizedBase::Empty) => json!(""),
        FieldValue::Base(NormalizedBase::Spec(inner)) => spec_json(inner),
        FieldValue::SecretMounts(mounts) => json!(
            mounts
                .iter()
                .map(|m| [&m.source, &m.target])
                .collect::<Vec<_>>()
        ),
        FieldValue::CopyMode(mode) => json!(mode),
        FieldValue::Dict(entries) => py_dict_json(entries),
    }
}

fn py_json(v: &PyValue) -> Value {
    match v {
        PyValue::None => Value::Null,
        PyValue::Bool(b) => json!(b),
        PyValue::Int(i) => i64::try_from(*i).map_or_else(|_| json!(i.to_string()), |i| json!(i)),
        PyValue::Float(x) => serde_json::Number::from_f64(*x)
            .map_or_else(|| json!(crate::py::repr::float_repr(*x)), Value::Number),
        PyValue::Str(s) | PyValue::Repr(s) => json!(s),
        PyValue::List(items) | PyValue::Tuple(items) => {
            Value::Array(items.iter().map(py_json).collect())
        }
        PyValue::Dict(entries) => py_dict_json(entries),
    }
}

fn py_dict_json(entries: &[(String, PyValue)]) -> Value {
    Value::Object(
        entries
            .iter()
            .map(|(k, v)| (k.clone(), py_json(v)))
            .collect(),
    )
}

/// The defaults files `spec` was read with and what became of each of their settings
/// (`overrides`: the flags and variables set): `{"files": [...], "settings": [{"key",
/// "value", "from", "applied", "changes_name", "overridden_by"?}]}`.
pub fn defaults_json(spec: &NormalizedSpec, overrides: &Overrides) -> Value {
    json!({
        "files": spec.defaults().files,
        "settings": defaults::uses(spec, overrides),
    })
}

/// `inspect --json` for one image. URLs are shown without their user information
/// (`pip_index = "https://***@host/simple"`): the output lands in CI logs.
pub fn image_json(
    key: &str,
    spec: &NormalizedSpec,
    tag: &ImageTag,
    overrides: &Overrides,
) -> Value {
    let mut out = json!({
        "key": key,
        "id": tag.id,
        "tag": tag.tag,
        "image": tag.image.to_string(),
        "spec": spec_json(spec),
        "defaults": defaults_json(spec, overrides),
    });
    if let Some(source) = &tag.source {
        out["source"] = json!({
            "digest": source.digest,
            "files": source.files.iter().map(|f| &f.rel).collect::<Vec<_>>(),
            "excluded": source.excluded,
        });
    }
    if let (Some(base), Some(NormalizedBase::Spec(inner))) = (&tag.base, spec.base()) {
        out["base"] = image_json("", inner, base, overrides);
    }
    crate::redact::json_strings(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::SpecFile;
    use std::path::Path;

    #[test]
    fn the_spec_shows_hashed_fields_first_then_the_unhashed_ones() {
        let text = "runtime_packages = [\"r\"]\npip_secret_mounts = [[\"s\", \"/t\"]]\n\
                    builder = \"b\"\nname = \"a\"\nbase_image = { name = \"x\" }\n\
                    source_copy_mode = \"all\"\nsource_root = \"src\"\n";
        let file = SpecFile::parse(Path::new("/nowhere/s.toml"), text).unwrap();
        let json = spec_json(file.select(None).unwrap().1);
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "name",
                "source_root",
                "base_image",
                "platform",
                "source_copy_mode",
                "builder",
                "pip_secret_mounts",
                "runtime_packages"
            ]
        );
        assert_eq!(json["base_image"]["name"], "x");
        assert_eq!(json["source_copy_mode"], "all");
        assert_eq!(json["pip_secret_mounts"], json!([["s", "/t"]]));
    }
}
