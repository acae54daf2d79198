"""addon/error_words.py: engine errors name regions and guides as the artist set them up, never a field path or a
blob reference."""

from __future__ import annotations

from regia_package import addon_module

words = addon_module("error_words")
BLOB = "blob:" + "ab" * 32
SPEC = {
    "init": {"image": BLOB},
    "guides": [{"kind": "palette", "colors": ["#112233"]}],
    "regions": [
        {"name": "Sky", "mask": BLOB, "guides": [{"kind": "text"}, {"kind": "style", "image": BLOB}]},
        {"name": "Helmet", "mask": BLOB},
    ],
}


def test_fields_are_named_as_the_artist_set_them_up():
    label = words.field_label
    assert label("regions[0].guides[1].image", SPEC) == "Region 'Sky', Style guide 2"
    assert label("regions[1].mask", SPEC) == "Region 'Helmet' mask"
    assert label("regions[1].mode", SPEC) == "Region 'Helmet'"
    assert label("guides[0].weight", SPEC) == "Palette guide 1 for all regions"
    assert label("init.image", SPEC) == "Target image"
    assert label("width", SPEC) == "Size" and label("models.clip.weights", SPEC) == "CLIP Model"
    assert label("(server)", SPEC) is None and label("Content-Type", SPEC) is None
    assert label("regions[7].mask", SPEC) == "Region '8' mask"  # past the spec: still readable


def test_a_failed_job_and_a_refused_spec_read_without_paths_or_blobs():
    failed = f"regions[0].guides[1].image: {BLOB} is 11585x11585 (134.2 megapixels), over the size this engine decodes"
    assert words.in_artist_words(failed, SPEC) == (
        "Region 'Sky', Style guide 2: the image is 11585x11585 (134.2 megapixels), over the size this engine decodes"
    )
    full = {
        "field": "(server)",
        "message": "no space left on device: the engine's disk is full",
        "value": None,
        "allowed": "free space on the engine's disk",
    }
    assert words.describe_error(full, SPEC) == (
        "No space left on device: the engine's disk is full (allowed: free space on the engine's disk)"
    )
    refused = {"field": "regions[1].mask", "message": "no blob with this sha256", "value": repr(BLOB), "allowed": None}
    assert words.describe_error(refused, SPEC) == "Region 'Helmet' mask: no blob with this sha256"
    assert words.in_artist_words("out of memory at 64x64 on cpu", SPEC) == "out of memory at 64x64 on cpu"
