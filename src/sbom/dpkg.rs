//! Debian packages as dpkg records them: `var/lib/dpkg/status` (one stanza per package, as
//! `dpkg-query -W` reads it) and distroless's `var/lib/dpkg/status.d/<name>` (the same
//! stanzas, one file per package). Only installed packages count: a stanza whose `Status`
//! is not `… installed` (removed, config-files, half-installed) is what `dpkg-query -W`
//! lists with an empty version, and not a package in the image.

use super::{Ecosystem, Package};

/// The packages of one status file, in the file's order.
pub fn parse_status(text: &str) -> Vec<Package> {
    text.split("\n\n")
        .filter_map(|stanza| package(&fields(stanza)))
        .collect()
}

/// A stanza's fields (`Name: value`), continuation lines left out (only one-line fields are
/// read).
fn fields(stanza: &str) -> Vec<(&str, &str)> {
    stanza
        .lines()
        .filter(|l| !l.starts_with([' ', '\t']))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

fn package(fields: &[(&str, &str)]) -> Option<Package> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .filter(|v| !v.is_empty())
    };
    // distroless's status.d stanzas have no Status: they are installed by construction.
    if let Some(status) = get("Status")
        && !status.ends_with(" installed")
    {
        return None;
    }
    Some(Package {
        ecosystem: Ecosystem::Deb,
        name: get("Package")?.to_string(),
        version: get("Version")?.to_string(),
        architecture: get("Architecture").map(str::to_string),
        license: None,
        license_comment: None,
        qualifiers: Vec::new(),
        sha256: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries
 Contains the standard libraries.
 Version: not a field

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1
";

    #[test]
    fn installed_packages_with_name_version_and_architecture() {
        let packages = parse_status(STATUS);
        let got: Vec<_> = packages
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.version.as_str(),
                    p.architecture.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("libc6", "2.36-9+deb12u4", Some("amd64")),
                ("tzdata", "2024a-0+deb12u1", Some("all")),
            ]
        );
    }

    #[test]
    fn distroless_stanzas_without_status_count_and_broken_ones_do_not() {
        let packages = parse_status("Package: base-files\nVersion: 12.4\nArchitecture: amd64\n");
        assert_eq!(packages.len(), 1);
        assert!(parse_status("Package: no-version\nStatus: install ok installed\n").is_empty());
        assert!(parse_status("").is_empty());
        assert!(parse_status("\n\n\n").is_empty());
    }
}
