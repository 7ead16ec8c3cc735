//! The first platform's versions handed to the other platforms' installs: with several
//! platforms, the first platform's `uv pip install` resolves, and each later platform
//! installs with its versions as constraints (one set of versions for every platform, as
//! one lock would give). The platforms are built at once ([`super::DependencyBuild`]); only
//! a later platform's install waits, for those versions, which the first platform's dry
//! run tells as soon as it has them ([`super::venv::Install::resolved`]), while the first's
//! install still downloads.

use super::DaemonlessError;
use super::venv::Packages;
use crate::oci::Platform;
use tokio::sync::watch;

/// Whether a later platform's install waits for the first platform's versions: a
/// requirements install takes them as constraints; a `uv.lock` pins them already.
pub(super) fn waits_for_first(packages: &Packages<'_>) -> bool {
    matches!(packages, Packages::Requirements { .. })
}

/// How a platform's install gets the first platform's versions.
pub(super) enum Pins {
    /// The first platform (or one that needs no versions): it tells its versions to the
    /// platforms that wait for them, if any do.
    First(Option<watch::Sender<Option<String>>>),
    /// A later platform: it installs with the versions `first`'s install tells.
    After {
        first: Platform,
        heard: watch::Receiver<Option<String>>,
    },
}

impl Pins {
    /// Each platform's way, in the order of `platforms`, for `packages`: the first tells,
    /// the others wait (or, when they need no versions, neither).
    pub(super) fn each<'p>(
        platforms: impl IntoIterator<Item = &'p Platform>,
        packages: &Packages<'_>,
    ) -> Vec<Pins> {
        let (tell, heard) = watch::channel(None);
        let mut tell = Some(tell);
        let mut first = None;
        let wait = waits_for_first(packages);
        platforms
            .into_iter()
            .map(|platform| match &first {
                None => {
                    first = Some(platform.clone());
                    Pins::First(tell.take())
                }
                Some(first) if wait => Pins::After {
                    first: first.clone(),
                    heard: heard.clone(),
                },
                Some(_) => Pins::First(None),
            })
            .collect()
    }

    /// The constraints to install with: none for the first platform; a later platform's,
    /// once the first's install has told its versions.
    pub(super) async fn constraints(&mut self) -> Result<Option<String>, DaemonlessError> {
        let Pins::After { first, heard } = self else {
            return Ok(None);
        };
        match heard.wait_for(Option::is_some).await {
            Ok(pins) => Ok(pins.clone()),
            // The first platform's build ended without installing (its error is the one
            // reported: the builds are joined, the first error ends them all).
            Err(_) => Err(DaemonlessError::FirstPlatform(first.clone())),
        }
    }

    /// The first platform's versions, told to the platforms waiting for them.
    pub(super) fn tell(&self, pins: &str) {
        if let Pins::First(Some(tell)) = self {
            tell.send_replace(Some(pins.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUIREMENTS: Packages<'static> = Packages::Requirements {
        args: "",
        requirements: "requests\n",
    };
    const LOCK: Packages<'static> = Packages::Lock {
        args: "",
        lock: "",
        pyproject: "",
    };

    fn platforms(names: &[&str]) -> Vec<Platform> {
        names
            .iter()
            .map(|n| Platform::parse(n).expect("platform"))
            .collect()
    }

    #[test]
    fn requirements_wait_for_the_first_platform_and_a_lock_does_not() {
        assert!(waits_for_first(&REQUIREMENTS));
        assert!(!waits_for_first(&LOCK));
    }

    #[test]
    fn the_first_platform_tells_and_every_later_one_waits_for_it() {
        let all = platforms(&["linux/amd64", "linux/arm64", "linux/s390x"]);
        let each = Pins::each(&all, &REQUIREMENTS);
        assert!(matches!(each[0], Pins::First(Some(_))));
        for later in &each[1..] {
            assert!(matches!(later, Pins::After { first, .. } if first == &all[0]));
        }
        let each = Pins::each(&all, &LOCK);
        assert!(each.iter().all(|p| matches!(p, Pins::First(_))));
        assert!(each[1..].iter().all(|p| matches!(p, Pins::First(None))));
    }

    #[tokio::test]
    async fn a_later_platform_installs_with_the_first_platforms_versions() {
        let all = platforms(&["linux/amd64", "linux/arm64"]);
        let mut each = Pins::each(&all, &REQUIREMENTS);
        let mut later = each.pop().expect("arm64");
        let mut first = each.pop().expect("amd64");
        assert_eq!(first.constraints().await.expect("none"), None);
        let waiting = tokio::spawn(async move { later.constraints().await });
        tokio::task::yield_now().await;
        first.tell("requests==2.32.3\n");
        let heard = waiting.await.expect("joined").expect("told");
        assert_eq!(heard.as_deref(), Some("requests==2.32.3\n"));
    }

    #[tokio::test]
    async fn a_first_platform_that_ends_without_versions_ends_the_wait() {
        let all = platforms(&["linux/amd64", "linux/arm64"]);
        let mut each = Pins::each(&all, &REQUIREMENTS);
        let mut later = each.pop().expect("arm64");
        drop(each);
        let Err(DaemonlessError::FirstPlatform(first)) = later.constraints().await else {
            panic!("the wait did not end with the first platform's failure");
        };
        assert_eq!(first, all[0]);
    }
}
