"""Segment into Regions, the engine's side (engine/segment.py, `python -m engine segment`, POST /segment): parts that
follow the image, each one connected piece, painted in key colours the add-on's colour-key regions read back one
part each; bad options name the field."""

from __future__ import annotations

import json

import jobkit
import numpy as np
import pytest
from regia.addon.region_maps import DEFAULT_KEY_TOLERANCE, color_key_mask
from scipy import ndimage
from skimage import data

from engine.cli import main
from engine.segment import MAX_PARTS, key_colors, segment


def blocks(height: int = 90, width: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """Three flat colour blocks with a little noise, and which block each pixel is in."""
    truth = np.zeros((height, width), dtype=int)
    truth[:, width // 3 :] = 1
    truth[height // 2 :, width // 3 :] = 2
    colors = np.array([[200, 40, 40], [40, 180, 60], [30, 60, 200]])
    noise = np.random.default_rng(0).integers(-6, 7, (height, width, 3))
    return np.clip(colors[truth] + noise, 0, 255).astype(np.uint8), truth


@pytest.mark.parametrize("method", ["slic", "felzenszwalb"])
def test_parts_follow_the_images_own_edges(method):
    pixels, truth = blocks()
    found = segment(pixels, method, parts=3)
    assert len(found.parts) == 3
    for part in found.parts:  # every part is (almost all) one block, and every block one part
        inside = found.labels == part.index - 1
        share = np.bincount(truth[inside], minlength=3).max() / inside.sum()
        assert share > 0.97, (method, part, share)
    assert sorted(p.pixels for p in found.parts) == pytest.approx(sorted(np.bincount(truth.ravel())), rel=0.05)


@pytest.mark.parametrize("method", ["slic", "felzenszwalb"])
@pytest.mark.parametrize("parts", [2, 12, 40])
def test_parts_are_whole_bounded_and_about_as_many_as_asked(method, parts):
    pixels = data.astronaut()[::2, ::2]
    found = segment(pixels, method, parts)
    assert 2 <= len(found.parts) <= parts and len(found.parts) >= parts // 2
    assert [p.index for p in found.parts] == list(range(1, len(found.parts) + 1))
    assert [p.pixels for p in found.parts] == sorted((p.pixels for p in found.parts), reverse=True)
    assert sum(p.pixels for p in found.parts) == pixels.shape[0] * pixels.shape[1]
    for part in found.parts:
        inside = found.labels == part.index - 1
        assert ndimage.label(inside)[1] == 1, part  # one connected piece
        rows, cols = np.nonzero(inside)
        assert part.box == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)


def test_a_large_image_is_segmented_small_and_labelled_at_its_own_size():
    pixels = np.repeat(np.repeat(data.coffee(), 3, axis=0), 3, axis=1)  # 1800 x 1200
    found = segment(pixels, "slic", 8)
    assert found.labels.shape == pixels.shape[:2]
    assert all(ndimage.label(found.labels == p.index - 1)[1] == 1 for p in found.parts)


def test_the_add_on_reads_each_part_back_alone_from_the_region_map():
    colors = np.array(key_colors(124)) / 255.0
    distance = np.linalg.norm(colors[:, None] - colors[None], axis=-1)
    np.fill_diagonal(distance, np.inf)
    assert distance.min() > 2 * DEFAULT_KEY_TOLERANCE  # no pixel is within tolerance of two keys
    found = segment(data.chelsea()[::2, ::2], "felzenszwalb", MAX_PARTS)
    region_map = np.concatenate([found.region_map() / 255.0, np.ones((*found.labels.shape, 1))], axis=-1)
    for part in found.parts:
        mask = color_key_mask(region_map.astype(np.float32), tuple(c / 255.0 for c in part.color))
        assert np.array_equal(mask.astype(bool), found.labels == part.index - 1), part


def test_the_command_line_writes_the_map_and_names_bad_options(tmp_path, capsys):
    jobkit.save(tmp_path / "coffee.png", data.coffee())
    assert main(["segment", str(tmp_path / "coffee.png"), "--out", str(tmp_path / "map.png"), "--parts", "6"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["width"], answer["height"], answer["method"]) == (600, 400, "slic")
    region_map = jobkit.read_rgb(tmp_path / "map.png")
    found = {"#{:02x}{:02x}{:02x}".format(*c) for c in np.unique(region_map.reshape(-1, 3), axis=0)}
    assert found == {part["color"] for part in answer["parts"]}
    assert main(["segment", str(tmp_path / "coffee.png"), "--out", str(tmp_path / "x.png"), "--method", "kmeans",
                 "--parts", "99"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "method" in err and "felzenszwalb" in err and "parts" in err and "64" in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()
    assert main(["segment", str(tmp_path / "missing.png"), "--out", str(tmp_path / "x.png")]) == 2
    assert "missing.png" in capsys.readouterr().err


@pytest.mark.slow
def test_the_server_segments_an_uploaded_image_as_the_command_line_does(tmp_path, capsys):
    import serverkit

    jobkit.save(tmp_path / "cat.png", data.chelsea())
    assert main(["segment", str(tmp_path / "cat.png"), "--out", str(tmp_path / "map.png"), "--method",
                 "felzenszwalb", "--parts", "10"]) == 0  # fmt: skip
    local = json.loads(capsys.readouterr().out)
    with serverkit.serving(tmp_path / "data") as server:
        client = server.client()
        ref = serverkit.upload(client, (tmp_path / "cat.png").read_bytes())
        answer = client.post("/segment", json={"image": ref, "method": "felzenszwalb", "parts": 10})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["parts"] == local["parts"] and (body["width"], body["height"]) == (451, 300)
        region_map = client.get(f"/blobs/{body['map'].removeprefix('blob:')}")
        assert region_map.status_code == 200 and region_map.headers["content-type"] == "image/png"
        assert region_map.content == (tmp_path / "map.png").read_bytes()
        serverkit.check_errors(client.post("/segment", json={"image": ref, "parts": 1}), 422, "parts")
        serverkit.check_errors(client.post("/segment", json={"image": ref, "method": "grid"}), 422, "method")
        serverkit.check_errors(client.post("/segment", json={"image": "blob:" + "0" * 64}), 422, "image")
        serverkit.check_errors(client.post("/segment", json={"image": "/etc/passwd"}), 422, "image")
        serverkit.check_errors(client.post("/segment", content=b"{}", headers={"content-type": "text/plain"}), 415)
        serverkit.check_errors(client.get("/blobs/" + "0" * 64), 404, "sha256")
        assert client.get("/health").status_code == 200  # still up
