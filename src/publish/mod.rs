//! Where a built image goes: an OCI layout, an oci-archive or a docker-archive on disk.

pub mod layout;
