//! Platforms, `os/arch[/variant]`: parsed once and carried typed.

/// The platforms a spec builds, split once: flytekit's `platform` is one comma-separated
/// string (`"linux/amd64,linux/arm64"`), hashed as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platforms(Vec<String>);

impl Platforms {
    /// The platforms of a `platform` string, trimmed, empty entries dropped.
    pub fn parse(platform: &str) -> Platforms {
        Platforms(
            platform
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    /// How many platforms.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No platform at all (an empty `platform` string).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// More than one platform: an index is built.
    pub fn several(&self) -> bool {
        self.0.len() > 1
    }

    /// The platforms in the order written.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// The platforms of `--platform LIST`, each checked to be `os/arch[/variant]` (the
    /// spec's own `platform` is hashed as written and checked when it is built).
    pub fn parse_list(list: &str) -> Result<Platforms, PlatformError> {
        let platforms = Platforms::parse(list);
        if platforms.is_empty() {
            return Err(PlatformError::Empty(list.to_string()));
        }
        for p in platforms.iter() {
            Platform::parse(p)?;
        }
        Ok(platforms)
    }
}

/// A platform (or list of them) that is not `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    #[error("`{0}`: no platform; expected e.g. linux/amd64,linux/arm64")]
    Empty(String),
    #[error("`{0}`: expected os/arch[/variant], e.g. linux/amd64 or linux/arm/v7")]
    Malformed(String),
}

/// One platform, `os/arch[/variant]` (`linux/arm64`, `linux/arm/v7`), split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform<'a> {
    pub os: &'a str,
    pub architecture: &'a str,
    pub variant: Option<&'a str>,
}

impl<'a> Platform<'a> {
    /// Splits `os/arch[/variant]`; each part non-empty, of lower-case letters, digits, `_`
    /// and `.` (what OCI platform fields and Docker's `--platform` hold).
    pub fn parse(platform: &'a str) -> Result<Platform<'a>, PlatformError> {
        let parts: Vec<&str> = platform.split('/').collect();
        let valid = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.".contains(&b))
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| valid(p)) {
            return Err(PlatformError::Malformed(platform.to_string()));
        }
        Ok(Platform {
            os: parts[0],
            architecture: parts[1],
            variant: parts.get(2).copied(),
        })
    }

    /// A tag-safe name for the platform: `linux-arm64`, `linux-arm-v7` (the suffix of the
    /// tags each platform's image is pushed under before the index joins them).
    pub fn tag_suffix(&self) -> String {
        let mut name = format!("{}-{}", self.os, self.architecture);
        if let Some(v) = self.variant {
            name.push('-');
            name.push_str(v);
        }
        name.replace('.', "_")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_split_on_commas_and_trim() {
        let p = Platforms::parse("linux/amd64, linux/arm64,");
        assert_eq!(p.iter().collect::<Vec<_>>(), ["linux/amd64", "linux/arm64"]);
        assert!(p.several());
        assert!(!Platforms::parse("linux/amd64").several());
        assert!(Platforms::parse("").is_empty());
    }

    #[test]
    fn platform_lists_are_checked_part_by_part() {
        let p = Platforms::parse_list("linux/amd64, linux/arm/v7").unwrap();
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            ["linux/amd64", "linux/arm/v7"]
        );
        for bad in [
            "",
            " , ",
            "linux",
            "linux/",
            "linux/amd64/v1/x",
            "Linux/AMD64",
            "linux/$(x)",
        ] {
            assert!(Platforms::parse_list(bad).is_err(), "{bad:?}");
        }
        let arm = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(
            (arm.os, arm.architecture, arm.variant),
            ("linux", "arm", Some("v7"))
        );
        assert_eq!(arm.tag_suffix(), "linux-arm-v7");
        assert_eq!(
            Platform::parse("linux/arm64").unwrap().tag_suffix(),
            "linux-arm64"
        );
    }
}
