"""Images are checked before they are decoded: bombs by their header, cut files by their chunks; input files are
regular files of bounded size; JSON keys appear once. Pure unit tests (no server, no torch work)."""

from __future__ import annotations

import io
import os
import resource
import threading
from pathlib import Path

import numpy as np
import pngkit
import pytest
from PIL import Image

from engine.errors import SpecError, SpecErrors
from engine.images import CLI_LIMITS, ImageLimits, decode_image, image_size, png_bytes
from engine.input_files import read_input_file
from engine.png_check import PngProblem, check_complete, read_header
from engine.refs import FolderSource
from engine.spec import decode_json, load_spec_file
from engine.strict_json import DuplicateKey, loads_strict


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- the header, before any pixel ------------------------------------------------------------


def test_a_bomb_is_refused_by_its_header_without_decoding():
    bomb = pngkit.header_only_bomb()
    assert len(bomb) < 200
    assert image_size(bomb, "f", "x") == (11585, 11585)
    before = peak_rss_mb()
    with pytest.raises(SpecError) as info:
        decode_image(bomb, "regions[0].guides[0].image", "style.png", ImageLimits(8192, 25_000_000, "--max-side"))
    error = info.value
    assert error.field == "regions[0].guides[0].image"
    assert error.value == "11585x11585" and "134.2 megapixels" in error.detail
    assert error.allowed == "at most 8192 pixels a side and 25 megapixels (--max-side)"
    assert peak_rss_mb() - before < 50  # 134 million pixels were never allocated


def test_a_complete_bomb_is_refused_by_its_pixel_count_too():
    bomb = pngkit.complete_bomb()
    assert len(bomb) < 40_000
    with pytest.raises(SpecError, match="over the size this engine decodes"):
        decode_image(bomb, "init.image", "init.png", CLI_LIMITS)
    wide = pngkit.complete_bomb(16000, 8)  # few pixels, one side over the limit
    with pytest.raises(SpecError, match="16000x8"):
        decode_image(wide, "init.image", "init.png", ImageLimits(8192, 25_000_000))
    ok = decode_image(pngkit.complete_bomb(300, 200), "init.image", "init.png", ImageLimits(8192, 25_000_000))
    assert ok.size == (300, 200)


def test_pillow_itself_would_open_the_bomb():
    """Why the header check is needed: Pillow only warns between 1x and 2x its own limit."""
    with pytest.warns(Image.DecompressionBombWarning):
        Image.MAX_IMAGE_PIXELS, saved = 8192 * 8192, Image.MAX_IMAGE_PIXELS
        try:
            image = Image.open(io.BytesIO(pngkit.header_only_bomb()))
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    assert image.size == (11585, 11585)


# ---- complete files only ---------------------------------------------------------------------


def test_a_png_whose_data_ends_early_is_refused():
    short = pngkit.rgb_png(32, 32, rows=16)  # a valid zlib stream that holds half the rows
    image = Image.open(io.BytesIO(short))
    image.load()  # Pillow fills the missing rows with zeros
    assert np.asarray(image)[20:].max() == 0
    with pytest.raises(PngProblem, match="ends early"):
        check_complete(short)
    with pytest.raises(SpecError, match="rows are missing"):
        decode_image(short, "init.image", "init.png")


def test_a_png_without_its_end_chunk_is_refused():
    endless = pngkit.rgb_png(32, 32, with_end=False)
    Image.open(io.BytesIO(endless)).load()  # Pillow reads it
    with pytest.raises(SpecError, match="no end chunk"):
        decode_image(endless, "regions[0].mask", "mask.png")


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda d: d[:-2], "ends inside its IEND"),
        (lambda d: d[:-6], "ends inside a chunk header"),
        (lambda d: d + b"junk", "damaged chunk|ends inside a chunk"),
        (lambda d: d[:40] + bytes([d[40] ^ 1]) + d[41:], "CRC mismatch"),
        (lambda d: d[:20] + bytes([d[20] ^ 1]) + d[21:], "checksum"),
        (lambda d: d[:8] + pngkit.chunk(b"tEXt", b"a\0b") + d[8:], "first chunk"),
        (lambda d: d[:20], "ends inside its header"),
    ],
)
def test_damaged_pngs_name_what_is_wrong(damage, reason):
    good = pngkit.rgb_png(16, 16)
    assert check_complete(good).raw_size() == 16 * (1 + 48)
    with pytest.raises(PngProblem, match=reason):
        check_complete(damage(good))


def test_interlaced_and_palette_pngs_are_counted_right():
    for width, height in ((37, 29), (5, 3), (1, 1), (9, 2)):
        data = pngkit.interlaced_gray(width, height)
        assert read_header(data).interlaced
        check_complete(data)  # passes only when the Adam7 byte count is exact: too many or too few both fail
        expected = [[pngkit.gray_value(x, y) for x in range(width)] for y in range(height)]
        assert np.asarray(decode_image(data, "f", "x")).tolist() == expected  # Pillow agrees on the layout
    rng = np.random.default_rng(3)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (21, 13, 3)).astype(np.uint8)).convert("P").save(buffer, format="PNG")
    check_complete(buffer.getvalue())
    check_complete(png_bytes(rng.integers(0, 255, (9, 7, 4)).astype(np.uint8)))


# ---- files a user names ----------------------------------------------------------------------


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path):
    fifo = tmp_path / "spec.json"
    os.mkfifo(fifo)
    result: list[BaseException] = []

    def read() -> None:
        try:
            load_spec_file(fifo)
        except SpecErrors as exc:
            result.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert "FIFO" in str(result[0]) and "only regular files" in str(result[0])


def test_devices_folders_and_huge_files_are_refused(tmp_path):
    with pytest.raises(SpecError, match="character device"):
        read_input_file(Path("/dev/zero"), "spec", 1 << 20)
    with pytest.raises(SpecError, match="is a folder"):
        read_input_file(tmp_path, "spec", 1 << 20)
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2000)
    with pytest.raises(SpecError) as info:
        read_input_file(big, "spec", 1000)
    assert info.value.allowed == "at most 1000 bytes"
    with pytest.raises(SpecError, match="character device"):
        FolderSource(tmp_path).open("/dev/zero", "init.image")


# ---- JSON keys appear once -------------------------------------------------------------------


def test_duplicate_keys_are_refused_naming_the_key(tmp_path):
    with pytest.raises(DuplicateKey) as info:
        loads_strict('{"width": 64, "regions": [{"name": "a", "mode": "keep", "mode": "edit"}]}')
    assert info.value.key == "mode"
    with pytest.raises(SpecErrors) as errors:
        decode_json('{"width": 64, "width": 128}', "job.json")
    assert errors.value.errors[0].field == "job.json" and errors.value.errors[0].value == "width"
    assert loads_strict('{"a": {"b": 1}, "b": {"a": 2}}') == {"a": {"b": 1}, "b": {"a": 2}}
