//! `imagespec inspect SPEC [--json]`.

use super::args::InspectArgs;
use imagespec::inspect::image_json;
use imagespec::spec::defaults::{self, Overrides};
use imagespec::{Error, ImageTag, NormalizedSpec};

pub fn run(args: &InspectArgs) -> Result<(), Error> {
    let file = super::load(&args.spec)?;
    let chosen: Vec<(&str, &NormalizedSpec)> = match (&args.spec.image, file.is_multi()) {
        (None, true) => file.images()?,
        (key, _) => vec![file.select(key.as_deref())?],
    };
    let mut results = Vec::new();
    for (key, spec) in chosen {
        let tag = imagespec::tag::compute(spec, &super::tag_options(&args.spec, spec)?)?;
        warn_excluded(spec, &tag);
        results.push((key, spec, tag));
    }
    let overrides = Overrides::from_env();
    if args.json {
        let value = if results.len() == 1 && (args.spec.image.is_some() || !file.is_multi()) {
            let (key, spec, tag) = &results[0];
            image_json(key, spec, tag, &overrides)
        } else {
            serde_json::Value::Object(
                results
                    .iter()
                    .map(|(k, s, t)| (k.to_string(), image_json(k, s, t, &overrides)))
                    .collect(),
            )
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        for (key, spec, tag) in &results {
            print_human(key, spec, tag);
            print_defaults(spec, &overrides, "default   ");
        }
    }
    Ok(())
}

/// Warns when the tag hashed source files the image will not get (ignored, or excluded).
pub fn warn_excluded(spec: &NormalizedSpec, tag: &ImageTag) {
    let root = spec.source_root.as_deref().unwrap_or_default();
    if let Some(w) = tag
        .source
        .as_ref()
        .and_then(|s| s.exclusion_warning(spec.name(), root))
    {
        eprintln!("warning: {w}");
    }
}

fn print_human(key: &str, spec: &NormalizedSpec, tag: &ImageTag) {
    if !key.is_empty() {
        println!("[{key}]");
    }
    println!("image     {}", tag.image);
    println!("id        {}", tag.id);
    println!("tag       {}", tag.tag);
    println!("platform  {}", spec.platform());
    if let Some(base) = &tag.base {
        println!("base      {} (built from its spec)", base.image);
    } else if let Some(r) = spec.base_ref() {
        println!("base      {r}");
    }
    if let Some(source) = &tag.source {
        let n = source.files.len();
        println!(
            "source    {n} file{}, digest {}",
            if n == 1 { "" } else { "s" },
            source.digest
        );
        if !source.excluded.is_empty() {
            println!(
                "excluded  {} (hashed into the tag, not copied)",
                source.excluded.join(", ")
            );
        }
    }
}

/// One line per setting of the defaults files: what it is, where it was written, and
/// whether it applies (and changed the name) or what took precedence.
pub fn print_defaults(spec: &NormalizedSpec, overrides: &Overrides, prefix: &str) {
    for u in defaults::uses(spec, overrides) {
        let what = match (&u.overridden_by, u.changes_name) {
            (Some(by), _) => format!("not applied: {by}"),
            (None, true) => "applied; changes the image name".to_string(),
            (None, false) => "applied".to_string(),
        };
        println!("{prefix}{} = {} ({}; {what})", u.key, u.value, u.from);
    }
}
