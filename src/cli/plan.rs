//! `imagespec plan SPEC`: what `build` would do with each image and why, doing nothing.

use super::args::PlanArgs;
use imagespec::Error;
use imagespec::engine::{DecideOptions, ImagePlan};
use imagespec::spec::defaults::Overrides;

/// Prints the plan of every chosen image (bases first); `Ok(false)` when some image has no
/// strategy (its refusal's exit code is returned through `exit_code`).
pub fn run(args: &PlanArgs) -> Result<i32, Error> {
    // A bad SOURCE_DATE_EPOCH is bad input, refused before anything is asked or built.
    imagespec::oci::epoch::SourceDateEpoch::from_env()?;
    let file = super::load(&args.spec)?;
    let chosen = super::chosen(&file, args.spec.image.as_deref())?;
    let runtime = super::runtime()?;
    let env = imagespec::engine::run::BuildOptions::from_env_with(
        Default::default(),
        Default::default(),
        file.defaults(),
    );
    let overrides = overrides(args);
    let options = DecideOptions {
        push: env.push && !args.decision.no_push,
        force: env.force || args.decision.force,
        fast_path: env.fast_path && !args.decision.no_fast_path,
        output: args.output.is_some(),
        assume_exists: args.decision.assume_exists,
        daemonless: env.daemonless && !args.decision.no_daemonless,
        output_one_platform: matches!(
            args.output,
            Some(Some(
                imagespec::publish::layout::OutputTarget::DockerArchive(_)
            ))
        ),
        remote_builder: false,
    };
    let mut render = super::render::options(&args.render)?;
    render.platform = args.decision.platform.clone();
    let mut worst = 0;
    for (_, spec) in chosen {
        let remote = args.decision.remote.options(spec.defaults())?;
        let builder = remote.as_ref().map(|r| {
            let from = args.decision.remote.source(spec.defaults());
            (r.names(), from.unwrap_or_default())
        });
        let tag = imagespec::tag::compute(spec, &super::tag_options(&args.spec, spec)?)?;
        let plans = runtime.block_on(imagespec::engine::plan(
            spec,
            &tag,
            &render,
            &DecideOptions {
                remote_builder: remote.is_some(),
                ..options
            },
            !args.decision.bases_built,
            args.timeouts.timeouts(),
        ))?;
        for (i, plan) in plans.iter().enumerate() {
            // The defaults shown are the requested image's (the last plan; bases come first).
            let requested = i + 1 == plans.len();
            if args.json {
                let mut line = plan.to_json();
                if let Some(object) = line.as_object_mut() {
                    if requested {
                        let defaults = imagespec::inspect::defaults_json(spec, &overrides);
                        object.insert("defaults".into(), defaults);
                    }
                    let host = builder.as_ref().map(|(host, _)| host.clone());
                    object.insert("builder_host".into(), serde_json::json!(host));
                }
                println!("{line}");
            } else {
                print_plan(plan, builder.as_ref().map(|(host, _)| host.as_str()));
                if let Some((host, from)) = &builder {
                    println!("  builder:    BuildKit at {host} ({from}), pushes the image itself");
                }
                if requested {
                    super::inspect::print_defaults(spec, &overrides, "  default:    ");
                }
            }
            if let Err(refusal) = &plan.decision {
                worst = worst.max(refusal.exit_code());
            }
        }
    }
    Ok(worst)
}

/// The flags and variables that take precedence over the defaults files' run-time settings.
fn overrides(args: &PlanArgs) -> Overrides {
    let env = Overrides::from_env();
    let flag = |set: bool, name: &str, env: Option<String>| {
        if set { Some(name.to_string()) } else { env }
    };
    Overrides {
        ca_bundle: args
            .render
            .ca_bundle
            .as_ref()
            .map(|_| "--ca-bundle (or IMAGESPEC_CA_BUNDLE)".to_string()),
        fast_path: flag(args.decision.no_fast_path, "--no-fast-path", env.fast_path),
        daemonless: flag(
            args.decision.no_daemonless,
            "--no-daemonless",
            env.daemonless,
        ),
        buildkit_host: flag(
            !args.decision.remote.builder_host.is_empty(),
            "--builder-host",
            env.buildkit_host,
        ),
    }
}

/// `plan` without `--json`: the lines, URL credentials cut out (a reason may quote an
/// install step).
fn print_plan(plan: &ImagePlan, remote: Option<&str>) {
    let mut text = String::new();
    write_plan(&mut text, plan, remote).expect("writing to a String");
    let text = imagespec::redact::url_credentials(&text);
    println!("{}", text.trim_end_matches('\n'));
}

/// `remote`: the remote builder's address, which builds what dockerd would.
fn write_plan(out: &mut String, plan: &ImagePlan, remote: Option<&str>) -> std::fmt::Result {
    use imagespec::engine::{Dependency, DependencyBuilder, Existence};
    use std::fmt::Write as _;
    writeln!(out, "{}", plan.image)?;
    let exists = match &plan.existence {
        Some(Existence::Yes) => format!("yes (asked {})", plan.asked),
        Some(Existence::No) => format!("no (asked {})", plan.asked),
        Some(Existence::Unknown(why)) => format!("cannot tell (asked {}: {why})", plan.asked),
        None => "not asked".into(),
    };
    writeln!(out, "  exists:     {exists}")?;
    match &plan.decision {
        Ok(d) => writeln!(out, "  strategy:   {} — {}", d.strategy.as_str(), d.reason),
        Err(r) => writeln!(out, "  strategy:   none — {r}"),
    }?;
    if let Some(deps) = &plan.dependency_image {
        let state = match &plan.dependency {
            Dependency::Found(_) => "found".to_string(),
            Dependency::Missing => "missing".to_string(),
            Dependency::Unknown(why) => format!("cannot tell: {why}"),
            Dependency::NotAsked => "not asked".to_string(),
        };
        writeln!(out, "  dependency: {deps} ({state})")?;
        match (&plan.dependency_builder, remote) {
            (Some(DependencyBuilder::Docker(why)), Some(host)) => {
                writeln!(out, "  built by:   BuildKit at {host} ({why})")?
            }
            (Some(builder), _) => writeln!(out, "  built by:   {builder}")?,
            (None, _) => {}
        }
    }
    writeln!(out, "  files:      {}", plan.files)?;
    writeln!(out, "  platforms:  {}", plan.platforms.join(", "))?;
    if let Some(e) = &plan.plan_error {
        writeln!(out, "  error:      {e}")?;
    }
    Ok(())
}
