# Generated from imagespec's field table (src/spec/fields.rs) by
# `IMAGESPEC_UPDATE_FIELDS=1 cargo test --lib spec::fields`: do not edit.
"""flytekit's ``ImageSpec`` fields as imagespec reads them."""

#: Every field, in flytekit's declaration order.
FIELDS = (
    "name",
    "python_version",
    "builder",
    "source_root",
    "env",
    "registry",
    "packages",
    "conda_packages",
    "conda_channels",
    "requirements",
    "apt_packages",
    "cuda",
    "cudnn",
    "base_image",
    "platform",
    "pip_index",
    "pip_extra_index_url",
    "pip_secret_mounts",
    "pip_extra_args",
    "registry_config",
    "entrypoint",
    "commands",
    "tag_format",
    "source_copy_mode",
    "copy",
    "python_exec",
    "runtime_packages",
    "builder_options",
    "builder_config",
)

#: The fields flytekit leaves out of the id (and the tag).
NOT_HASHED = frozenset({
    "builder",
    "pip_secret_mounts",
    "runtime_packages",
})
