//! `imagespec explain SPEC [--against IMAGE]`: why the spec's tag differs from an image
//! built earlier.

use super::args::ExplainArgs;
use imagespec::Error;
use imagespec::engine::Builder;
use imagespec::explain::{Explanation, Inputs};
use imagespec::plan::BuildPlan;

pub fn run(args: &ExplainArgs) -> Result<(), Error> {
    let file = super::load(&args.spec)?;
    let (_, spec) = file.select(args.spec.image.as_deref())?;
    let tag = imagespec::tag::compute(spec, &super::tag_options(&args.spec, spec)?)?;
    let dependency_image = match Builder::of(spec) {
        Builder::Default => {
            let plan = BuildPlan::new(spec, &tag, &super::render::options(&args.render)?)?;
            Some(plan.dependencies().image)
        }
        _ => None,
    };
    let now = Inputs::of(spec, &tag, dependency_image).map_err(|source| Error::Io {
        context: format!("reading the files of {}", tag.image),
        source,
    })?;
    let before = match &args.against {
        Some(image) => {
            let platform = spec.platforms().first();
            let config = spec.registry_config.as_deref().map(|p| spec.resolve(p));
            super::runtime()?.block_on(imagespec::explain::recorded(
                image,
                platform,
                config.as_deref(),
                args.timeouts.timeouts(),
            ))?
        }
        None => imagespec::explain::last_built_or_err(&tag.image.name().to_string())?,
    };
    let explanation = before.compare(&now);
    if args.json {
        println!("{}", explanation.to_json());
    } else {
        print_explanation(&explanation);
    }
    Ok(())
}

fn print_explanation(e: &Explanation) {
    println!("{} → {}", e.before, e.after);
    if e.fields.is_empty() {
        println!("fields: unchanged");
    } else {
        println!("fields:");
        for f in &e.fields {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unset)".into());
            println!("  {}: {} → {}", f.field, show(&f.before), show(&f.after));
        }
    }
    if e.files_unknown {
        println!("files: not recorded (too many files to list)");
    } else {
        let f = &e.files;
        let renamed_from: Vec<&str> = e.renamed.iter().map(|(a, _)| a.as_str()).collect();
        let renamed_to: Vec<&str> = e.renamed.iter().map(|(_, b)| b.as_str()).collect();
        println!(
            "files: {} added, {} removed, {} changed, {} renamed",
            f.added.len() - renamed_to.len(),
            f.removed.len() - renamed_from.len(),
            f.changed.len(),
            e.renamed.len()
        );
        for (from, to) in &e.renamed {
            println!("  > {from} → {to}");
        }
        for a in f.added.iter().filter(|a| !renamed_to.contains(&a.as_str())) {
            println!("  + {a}");
        }
        for r in f
            .removed
            .iter()
            .filter(|r| !renamed_from.contains(&r.as_str()))
        {
            println!("  - {r}");
        }
        for c in &f.changed {
            println!("  ~ {c}");
        }
    }
    println!(
        "dependencies: {}",
        if e.dependencies_changed {
            "changed (a new dependency image)"
        } else {
            "unchanged"
        }
    );
    // What is in the earlier image and how it was made: attached beside it when pushed.
    println!(
        "contents: `imagespec sbom {}` prints its SBOM, `--provenance` its provenance",
        e.before
    );
}
