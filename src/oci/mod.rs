//! OCI images as values: digests ([`Digest`]), platforms ([`platform`]), manifests as read
//! and checked (`manifest`), images and indexes with one `append` ([`image`], as
//! go-containerregistry's `mutate`), and what a config's environment becomes under `ENV`
//! (`config`). Nothing here talks to a registry or writes a file: publishers
//! ([`crate::publish`]) do.

pub(crate) mod config;
pub(crate) mod digest;
pub mod epoch;
pub mod image;
pub(crate) mod manifest;
pub mod platform;
pub mod reference;

pub use digest::Digest;
pub use image::{Image, Index};
pub use platform::{Platform, Platforms};
pub use reference::ImageRef;
