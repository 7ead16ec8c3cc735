//! OCI images as values: what a config says once the Dockerfile's instructions are applied
//! ([`config`]), without running them. The daemonless dependency builder
//! ([`crate::builders::daemonless`]) assembles its images from these.

pub mod config;
pub mod digest;
pub mod manifest;
pub mod platform;

pub use digest::Digest;
pub use platform::{Platform, Platforms};
