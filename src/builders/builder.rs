//! One trait for every builder (ko's `build.Interface`: `Build(ctx, ref) (Result, error)`):
//! it makes an image from a plan, for some platforms, and says what it made. None knows how
//! its result is published: an image left in dockerd is pushed (or kept) by the engine, and
//! a builder that pushes itself (uv without a daemon) says where.
//!
//! Implementations: [`Docker`] (BuildKit through dockerd, one solve per platform), `Envd`
//! (the envd CLI, into dockerd) and [`Uv`] (dependency images made with uv, no daemon). A
//! remote BuildKit builder would be one more: a `Builder<Plan = BuildPlan>` returning
//! [`Built::Pushed`].
//!
//! ```
//! use imagespec::builders::builder::platform_tag;
//! use imagespec::oci::{ImageRef, Platform};
//! let image: ImageRef = "r/app:T".parse()?;
//! let tagged = platform_tag(&image, &Platform::parse("linux/arm/v7")?)?;
//! assert_eq!(tagged.to_string(), "r/app:T-linux-arm-v7");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::BackendError;
use super::docker::DockerDaemon;
use super::envd::Envd;
use crate::oci::reference::ReferenceError;
use crate::oci::{Digest, Image, ImageRef, Platform};
use crate::plan::{BuildPlan, EnvdPlan};
use crate::progress::Progress;
use crate::registry::client::RegistryClient;

/// One platform's image, built into the local daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalImage {
    /// The platform it was built for.
    pub platform: Platform,
    /// The daemon's name for it: the plan's image, or with several platforms its
    /// [`platform_tag`].
    pub image: ImageRef,
}

/// What a builder made.
#[derive(Debug, Clone)]
pub enum Built {
    /// Images in the local daemon, one per platform in the order asked: to push or keep.
    Local(Vec<LocalImage>),
    /// Pushed by the builder itself, with the manifest (or index) digest it reported, and
    /// each platform's image as pushed (in the order asked) when the builder made them
    /// itself: what comes next is appended to those, not read back from the registry.
    Pushed {
        image: ImageRef,
        digest: Digest,
        images: Option<Vec<Image>>,
    },
}

/// A builder: `plan` made for the platforms it names.
// The engine awaits each build on its own task: nothing needs the futures to be `Send`.
#[allow(async_fn_in_trait)]
pub trait Builder {
    /// What it builds from.
    type Plan;
    /// Builds `plan` for each of its platforms.
    async fn build(&self, plan: &Self::Plan, progress: &Progress) -> Result<Built, BackendError>;
}

/// The tag one platform's image is built and pushed under before an index joins several.
pub fn platform_tag(image: &ImageRef, platform: &Platform) -> Result<ImageRef, ReferenceError> {
    image.with_tag_suffix(&format!("-{}", platform.tag_suffix()))
}

/// BuildKit through dockerd: one solve per platform (dockerd 20.10 keeps one platform per
/// tag), so several platforms are built under [`platform_tag`]s.
pub struct Docker<'a> {
    pub daemon: &'a DockerDaemon,
}

impl Builder for Docker<'_> {
    type Plan = BuildPlan;

    async fn build(&self, plan: &BuildPlan, progress: &Progress) -> Result<Built, BackendError> {
        let platforms = &plan.platform;
        if !platforms.several() {
            self.daemon.build(plan, progress).await?;
            return Ok(Built::Local(vec![LocalImage {
                platform: platforms.first().clone(),
                image: plan.image.clone(),
            }]));
        }
        let mut built = Vec::new();
        for platform in platforms.iter() {
            let _scope = progress.platform_scope(platform.as_str());
            let mut one = plan.clone();
            one.platform = platform.clone().into();
            one.image = platform_tag(&plan.image, platform)?;
            self.daemon.build(&one, progress).await?;
            built.push(LocalImage {
                platform: platform.clone(),
                image: one.image,
            });
        }
        Ok(Built::Local(built))
    }
}

impl Builder for Envd {
    type Plan = EnvdPlan;

    /// One platform only (the engine refuses several for envd).
    async fn build(&self, plan: &EnvdPlan, progress: &Progress) -> Result<Built, BackendError> {
        let platforms = &plan.platform;
        if platforms.several() {
            return Err(BackendError::MultiPlatform {
                platform: platforms.clone(),
            });
        }
        Envd::build(self, plan, progress).await?;
        Ok(Built::Local(vec![LocalImage {
            platform: plan.platform.first().clone(),
            image: plan.image.clone(),
        }]))
    }
}

/// The daemonless builder: a dependency image made with uv on this machine and pushed to
/// `client`'s registry (one index for several platforms). What only the build finds out (no
/// wheel, no Python in the base) is `BackendError::Daemonless(DaemonlessError::Fallback)`.
pub struct Uv<'a> {
    pub client: &'a RegistryClient,
    /// What the decision saw of each platform's base and apt step (built on as it is).
    pub preflight: &'a super::daemonless::Preflight,
}

impl Builder for Uv<'_> {
    type Plan = BuildPlan;

    async fn build(&self, plan: &BuildPlan, progress: &Progress) -> Result<Built, BackendError> {
        use super::daemonless::push::{UvError, build_and_push};
        let (digest, images) =
            match build_and_push(self.client, plan, self.preflight, progress).await {
                Ok(pushed) => pushed,
                Err(UvError::Build(e)) => return Err(e.into()),
                Err(UvError::Publish(e)) => return Err(e.into()),
            };
        let image = plan.image.clone();
        let images = Some(images);
        Ok(Built::Pushed {
            image,
            digest,
            images,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(platform: &str) -> Platform {
        Platform::parse(platform).unwrap()
    }

    #[test]
    fn each_platform_has_a_tag_of_its_own() {
        let tag = |image: &str, platform: &str| {
            let image: ImageRef = image.parse().unwrap();
            platform_tag(&image, &p(platform)).unwrap().to_string()
        };
        assert_eq!(
            tag("localhost:5000/app:deps-0123", "linux/arm64"),
            "localhost:5000/app:deps-0123-linux-arm64"
        );
        assert_eq!(tag("r/a:T", "linux/arm/v7"), "r/a:T-linux-arm-v7");
        let long: ImageRef = format!("r/a:{}", "t".repeat(120)).parse().unwrap();
        assert!(platform_tag(&long, &p("linux/arm64")).is_err());
    }
}
