//! Platforms, `os/arch[/variant]`: parsed once, where a spec, a `--platform` flag or an
//! image config names them, and carried typed from there on.
//!
//! ```
//! use imagespec::oci::Platforms;
//! let p = Platforms::parse("linux/amd64, linux/arm/v7").unwrap();
//! assert_eq!(p.to_string(), "linux/amd64,linux/arm/v7");
//! let arm = p.iter().nth(1).unwrap();
//! assert_eq!((arm.os(), arm.architecture(), arm.variant()), ("linux", "arm", Some("v7")));
//! assert!(Platforms::parse("linux").is_err());
//! ```

use std::fmt;

/// The platforms a spec builds, split once: flytekit's `platform` is one comma-separated
/// string (`"linux/amd64,linux/arm64"`, hashed as written, which the spec keeps); this is
/// its parsed form, never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platforms(Vec<Platform>);

impl Platforms {
    /// The platforms of a `platform` string or `--platform LIST`: split on commas, trimmed,
    /// empty entries dropped, each checked to be `os/arch[/variant]`; at least one.
    pub fn parse(list: &str) -> Result<Platforms, PlatformError> {
        let platforms = list
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(Platform::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if platforms.is_empty() {
            return Err(PlatformError::Empty(list.to_string()));
        }
        Ok(Platforms(platforms))
    }

    /// How many platforms.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a `Platforms` holds at least one (kept for clippy's `len` rule).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// More than one platform: an index is built.
    pub fn several(&self) -> bool {
        self.0.len() > 1
    }

    /// The first platform written.
    pub fn first(&self) -> &Platform {
        &self.0[0]
    }

    /// The platforms in the order written.
    pub fn iter(&self) -> impl Iterator<Item = &Platform> {
        self.0.iter()
    }

    /// The first `n` platforms (at least one).
    pub fn take(&self, n: usize) -> Platforms {
        Platforms(self.0.iter().take(n.max(1)).cloned().collect())
    }
}

impl From<Platform> for Platforms {
    fn from(platform: Platform) -> Platforms {
        Platforms(vec![platform])
    }
}

/// `linux/amd64,linux/arm64`: the form BuildKit's `platform` option and `--platform` take.
impl fmt::Display for Platforms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(p.as_str())?;
        }
        Ok(())
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

/// One platform, `os/arch[/variant]` (`linux/arm64`, `linux/arm/v7`), checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform(String);

impl Platform {
    /// Checks `os/arch[/variant]`; each part non-empty, of lower-case letters, digits, `_`
    /// and `.` (what OCI platform fields and Docker's `--platform` hold).
    pub fn parse(platform: &str) -> Result<Platform, PlatformError> {
        let parts: Vec<&str> = platform.split('/').collect();
        let valid = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.".contains(&b))
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| valid(p)) {
            return Err(PlatformError::Malformed(platform.to_string()));
        }
        Ok(Platform(platform.to_string()))
    }

    /// `os/arch[/variant]`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The OS (`linux`).
    pub fn os(&self) -> &str {
        self.parts().0
    }

    /// The architecture (`arm64`).
    pub fn architecture(&self) -> &str {
        self.parts().1
    }

    /// The variant (`v7`), if any.
    pub fn variant(&self) -> Option<&str> {
        self.parts().2
    }

    fn parts(&self) -> (&str, &str, Option<&str>) {
        let mut parts = self.0.splitn(3, '/');
        let os = parts.next().unwrap_or_default();
        let architecture = parts.next().unwrap_or_default();
        (os, architecture, parts.next())
    }

    /// A tag-safe name for the platform: `linux-arm64`, `linux-arm-v7` (the suffix of the
    /// tags each platform's image is pushed under before the index joins them).
    pub fn tag_suffix(&self) -> String {
        self.0.replace('/', "-").replace('.', "_")
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_split_on_commas_and_trim() {
        let p = Platforms::parse("linux/amd64, linux/arm64,").unwrap();
        let names: Vec<&str> = p.iter().map(Platform::as_str).collect();
        assert_eq!(names, ["linux/amd64", "linux/arm64"]);
        assert!(p.several());
        assert_eq!(p.to_string(), "linux/amd64,linux/arm64");
        assert_eq!(p.first().as_str(), "linux/amd64");
        assert_eq!(p.take(1).to_string(), "linux/amd64");
        assert_eq!(p.take(0).to_string(), "linux/amd64");
        assert!(!Platforms::parse("linux/amd64").unwrap().several());
        let one = Platforms::from(Platform::parse("linux/arm64").unwrap());
        assert_eq!(one.to_string(), "linux/arm64");
    }

    #[test]
    fn platform_lists_are_checked_part_by_part() {
        for bad in [
            "",
            " , ",
            "linux",
            "linux/",
            "linux/amd64/v1/x",
            "Linux/AMD64",
            "linux/$(x)",
            "linux/amd64,linux",
        ] {
            assert!(Platforms::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Platforms::parse(" , "),
            Err(PlatformError::Empty(" , ".into()))
        );
        assert_eq!(
            Platforms::parse("linux/amd64,linux"),
            Err(PlatformError::Malformed("linux".into()))
        );
        let arm = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(
            (arm.os(), arm.architecture(), arm.variant()),
            ("linux", "arm", Some("v7"))
        );
        assert_eq!(arm.tag_suffix(), "linux-arm-v7");
        let arm64 = Platform::parse("linux/arm64").unwrap();
        assert_eq!((arm64.architecture(), arm64.variant()), ("arm64", None));
        assert_eq!(arm64.tag_suffix(), "linux-arm64");
        assert_eq!(
            Platform::parse("linux/ppc64.le").unwrap().tag_suffix(),
            "linux-ppc64_le"
        );
    }
}
