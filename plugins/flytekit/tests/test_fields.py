"""The binary's field table (its generated copy, ``_fields.py``) is flytekit's ``ImageSpec``."""
from dataclasses import fields

from flytekit.image_spec.image_spec import ImageSpec

from flytekitplugins.imagespec._fields import FIELDS, NOT_HASHED


def test_the_field_table_is_flytekits_imagespec():
    assert tuple(f.name for f in fields(ImageSpec)) == FIELDS
    assert NOT_HASHED <= set(FIELDS)
