//! `imagespec prune`: arguments → [`imagespec::prune::run`] → a grouped listing (or one
//! JSON object) and the exit code.

use super::args::PruneArgs;
use imagespec::Error;
use imagespec::oci::reference::Repository;
use imagespec::prune::{Item, Place, Places, PruneOptions, Report, RepositoryTarget};
use imagespec::spec::NormalizedBase;

pub fn run(args: &PruneArgs) -> Result<u8, Error> {
    let options = options(args)?;
    let report = super::runtime()?.block_on(imagespec::prune::run(&options))?;
    let code = report.exit_code() as u8;
    if args.json {
        let mut value = serde_json::to_value(&report).expect("a report serialises");
        value["exit_code"] = code.into();
        println!("{value}");
    } else {
        print_report(&report);
    }
    Ok(code)
}

/// The repositories of a spec's images and their nested base specs: `(repository,
/// registry_config, in a registry)`.
fn repositories_of(
    spec: &imagespec::NormalizedSpec,
    out: &mut Vec<(Repository, Option<std::path::PathBuf>, bool)>,
) {
    let repository = spec.repository();
    let config = spec.registry_config.as_deref().map(|p| spec.resolve(p));
    let entry = (repository.clone(), config, repository.registry().is_some());
    if !out.contains(&entry) {
        out.push(entry);
    }
    if let Some(NormalizedBase::Spec(inner)) = spec.base() {
        repositories_of(inner, out);
    }
}

fn options(args: &PruneArgs) -> Result<PruneOptions, Error> {
    let mut found = Vec::new();
    if let Some(path) = &args.spec {
        let file = imagespec::load(path)?;
        let chosen = match (&args.image, file.is_multi()) {
            (None, true) => file.images()?,
            (key, _) => vec![file.select(key.as_deref())?],
        };
        for (_, spec) in chosen {
            repositories_of(spec, &mut found);
        }
    }
    let mut repositories: Vec<RepositoryTarget> = found
        .iter()
        .filter(|(_, _, in_registry)| *in_registry)
        .map(|(repository, config, _)| RepositoryTarget {
            repository: repository.clone(),
            registry_config: config.clone(),
        })
        .collect();
    for repository in &args.repositories {
        if !repositories.iter().any(|r| &r.repository == repository) {
            repositories.push(RepositoryTarget {
                repository: repository.clone(),
                registry_config: args.registry_config.clone(),
            });
        }
    }
    let only = args.registry || args.daemon || args.cache;
    let places = if only {
        Places {
            registry: args.registry,
            daemon: args.daemon,
            // `--registry --uv-cache` asks for the uv cache too.
            cache: args.cache || args.uv_cache,
        }
    } else {
        Places::all()
    };
    if args.registry && repositories.is_empty() {
        use clap::CommandFactory;
        super::args::Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "--registry needs a repository in a registry: a SPEC whose images have a \
                 `registry`, or --repository REGISTRY/NAME",
            )
            .exit();
    }
    let local_repositories = found
        .iter()
        .filter(|(_, _, in_registry)| !in_registry)
        .map(|(repository, _, _)| repository.clone())
        .collect();
    Ok(PruneOptions {
        repositories,
        local_repositories,
        places,
        dry_run: args.dry_run,
        keep: args.keep,
        uv_cache: args.uv_cache,
        timeouts: args.timeouts.timeouts(),
    })
}

fn size(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

fn print_report(report: &Report) {
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut groups: Vec<(Place, &str)> = Vec::new();
    for item in &report.items {
        if !groups.contains(&(item.place, item.group.as_str())) {
            groups.push((item.place, &item.group));
        }
    }
    for (place, group) in groups {
        let items: Vec<&Item> = report
            .items
            .iter()
            .filter(|i| i.place == place && i.group == group)
            .collect();
        println!("{} {group}", place.name());
        // Removed first, then kept.
        for item in items
            .iter()
            .filter(|i| i.remove)
            .chain(items.iter().filter(|i| !i.remove))
        {
            println!("  {}", line(item, verb));
        }
    }
    for note in &report.notes {
        let group = if note.group.is_empty() {
            String::new()
        } else {
            format!(" {}", note.group)
        };
        eprintln!("note: {}{group}: {}", note.place.name(), note.message);
    }
    println!("{}", summary(report, verb));
}

fn line(item: &Item, verb: &str) -> String {
    let action = match (&item.error, item.remove, item.done) {
        (Some(_), _, _) => "FAILED to remove",
        (None, false, _) => "keep",
        (None, true, true) => "removed",
        (None, true, false) if verb == "removed" => "not removed",
        (None, true, false) => "would remove",
    };
    let mut text = format!("{action} {}", item.what);
    if item.place != Place::Cache && item.tags.len() > 1 {
        text.push_str(&format!(" (+{} tag(s))", item.tags.len() - 1));
    }
    if item.place == Place::Cache {
        text.push_str(&format!(" ({})", item.kind));
    }
    if let Some(created) = &item.created {
        text.push_str(&format!(", created {created}"));
    }
    if let Some(bytes) = item.size.filter(|_| item.remove) {
        text.push_str(&format!(", {}", size(bytes)));
        if let Some(freed) = item.freed {
            text.push_str(&format!(" (frees up to {})", size(freed)));
        }
    }
    text.push_str(&format!(": {}", item.reason));
    if let Some(e) = &item.error {
        text.push_str(&format!(": {e}"));
    }
    text
}

fn summary(report: &Report, verb: &str) -> String {
    let removed = |place: Place| -> (usize, u64) {
        let items: Vec<&Item> = report
            .items
            .iter()
            .filter(|i| i.place == place && i.remove && i.error.is_none())
            .collect();
        let bytes = items.iter().map(|i| i.freed.or(i.size).unwrap_or(0)).sum();
        (items.len(), bytes)
    };
    let mut parts = Vec::new();
    let (n, bytes) = removed(Place::Registry);
    if n > 0 {
        parts.push(format!(
            "{n} dependency image(s) in registries (up to {} freed by their garbage \
             collection)",
            size(bytes)
        ));
    }
    let (n, bytes) = removed(Place::Daemon);
    if n > 0 {
        parts.push(format!("{n} image(s) in dockerd ({})", size(bytes)));
    }
    let (n, bytes) = removed(Place::Cache);
    if n > 0 {
        parts.push(format!("{n} cache entries ({})", size(bytes)));
    }
    let kept = report.items.iter().filter(|i| !i.remove).count();
    let failed = report.items.iter().filter(|i| i.error.is_some()).count();
    let failed = if failed > 0 {
        format!("; FAILED to remove {failed} (see above)")
    } else {
        String::new()
    };
    if parts.is_empty() {
        return format!("nothing {verb}; kept {kept}{failed}");
    }
    let mut text = format!("{verb}: {}; kept {kept}{failed}", parts.join(", "));
    if report.dry_run {
        text.push_str(". Run without --dry-run to remove them.");
    }
    text
}
