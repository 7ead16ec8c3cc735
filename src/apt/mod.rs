//! Debian packages without a daemon: what `apt-get install --no-install-recommends` does
//! to a Debian or Ubuntu image (the Dockerfile's `apt_packages` step), worked out on this
//! machine from the base's files and the mirror its sources name, as mmdebstrap,
//! rules_distroless and distroless lay down a package set without running a container.
//!
//! The pieces, each pure but [`fetch`]: [`deb822`] control paragraphs, [`version`]
//! (dpkg's ordering), [`relation`] (`Depends` fields), [`sources`] (the base's apt sources
//! and os-release), [`release`] (a suite's `InRelease` and its SHA256 list), [`resolve`]
//! (the package set apt would add), [`facts`] (what the decision reads: the packages
//! and what their scripts need), [`scripts`] (the maintainer-script rule: which
//! packages can be laid down without running their scripts), [`deb`] (a `.deb`'s control
//! files and data, and the dpkg database entries it gets), [`fetch`] (indexes and `.deb`s
//! over HTTP, bounded, checked against the hashes, cached on this machine by hash).
//!
//! Why our own parsers rather than the `debian-packaging` crate: that crate brings
//! async-std, rPGP, an older reqwest and S3 clients into the build for the few hundred
//! lines used here; the `.deb` container is read with `ar` and `xz2` (dpkg's own liblzma).
//!
//! Trust: every `InRelease` must verify with the keys the base trusts for its source
//! ([`signature`]: `signed-by`, else apt's default keyrings; a bad or missing signature is
//! an error naming the file, never a fallback), every `Packages` index is checked against
//! its signed SHA256 list and every `.deb` against its index's SHA256. Left:
//! `data.tar.zst` (Ubuntu's `.deb`s since 21.10) is not read — such a base falls back to
//! dockerd.

pub mod deb;
pub mod deb822;
pub mod facts;
pub mod fetch;
pub mod relation;
pub mod release;
pub mod resolve;
pub mod scripts;
pub mod signature;
pub mod sources;
pub mod version;
