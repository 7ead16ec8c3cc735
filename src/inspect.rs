//! Machine-readable views of a spec and its tag, for `imagespec inspect --json`.

use crate::spec::defaults::{self, Overrides};
use crate::spec::{NormalizedBase, NormalizedSpec, PyValue};
use crate::tag::{ImageTag, spec_dict};
use serde_json::{Map, Value, json};

/// The normalised spec as JSON: every set field, in flytekit's field order.
pub fn spec_json(spec: &NormalizedSpec) -> Value {
    let mut out = Map::new();
    for (k, v) in spec_dict(spec) {
        let value = match (k.as_str(), spec.base()) {
            ("base_image", Some(NormalizedBase::Spec(inner))) => spec_json(inner),
            ("source_copy_mode", _) => json!(spec.source_copy_mode),
            _ => py_json(&v),
        };
        out.insert(k, value);
    }
    if let Some(b) = &spec.builder {
        out.insert("builder".into(), json!(b));
    }
    if let Some(m) = &spec.pip_secret_mounts {
        out.insert(
            "pip_secret_mounts".into(),
            json!(m.iter().map(|m| [&m.source, &m.target]).collect::<Vec<_>>()),
        );
    }
    if let Some(r) = &spec.runtime_packages {
        out.insert("runtime_packages".into(), json!(r));
    }
    Value::Object(out)
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
        PyValue::Dict(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), py_json(v)))
                .collect(),
        ),
    }
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
        "image": tag.image,
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
