"""addon/png_codec.py: PNGs that Pillow decodes bit-exactly, for every channel count, fast enough for 2048² RGBA."""

from __future__ import annotations

import hashlib
import io
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from importrules import imported_modules
from PIL import Image
from regia_package import addon_module

REPO = Path(__file__).resolve().parent.parent
MODULE = REPO / "addon" / "png_codec.py"


png_codec = addon_module("png_codec")
encode_png = png_codec.encode_png
MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()  # decodes fully and checks every chunk's CRC
    return image


def noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [(1, 1), (1, 7), (9, 1), (37, 53)])
def test_every_channel_count_decodes_bit_exactly(channels, size):
    pixels = noise((*size, channels), seed=channels)
    image = decode(encode_png(pixels))
    assert image.mode == MODES[channels] and image.size == (size[1], size[0])
    np.testing.assert_array_equal(np.asarray(image).reshape(pixels.shape), pixels)


def test_a_two_dimensional_array_is_gray():
    pixels = noise((20, 30))
    image = decode(encode_png(pixels))
    assert image.mode == "L"
    np.testing.assert_array_equal(np.asarray(image), pixels)


def test_strided_and_flipped_views_encode_what_they_show():
    base = noise((40, 50, 4))
    for view in (base[::-1], base[:, ::2], base[5:30, 7:41, :3], base[..., 3]):
        np.testing.assert_array_equal(np.asarray(decode(encode_png(view))).reshape(view.shape), view)


def test_floats_in_0_1_are_rounded_to_8_bits():
    values = np.array([0.0, 1.0, 0.5, 0.25, 1 / 255 * 0.49, 1 / 255 * 0.51, 0.999, 1e-9], dtype=np.float32)
    pixels = np.tile(values, (3, 1))
    expected = np.rint(pixels.astype(np.float64) * 255).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(decode(encode_png(pixels))), expected)
    assert expected[0].tolist() == [0, 255, 128, 64, 0, 1, 255, 0]


def test_floats_outside_0_1_are_clipped_and_nan_is_black():
    pixels = np.array([[-0.5, 1.5, np.nan, np.inf, -np.inf]], dtype=np.float64)
    assert np.asarray(decode(encode_png(pixels))).tolist() == [[0, 255, 0, 255, 0]]


def test_float_rgba_matches_its_uint8_encoding():
    pixels = noise((16, 24, 4), seed=5)
    assert encode_png(pixels.astype(np.float32) / 255) == encode_png(pixels)


def test_the_stream_uses_the_up_filter_and_decompresses():
    """One IDAT: every scanline starts with filter byte 2 ("up")."""
    data = encode_png(noise((6, 5, 3)))
    start = data.index(b"IDAT") + 4
    length = int.from_bytes(data[start - 8 : start - 4], "big")
    raw = zlib.decompress(data[start : start + length])
    assert len(raw) == 6 * (1 + 5 * 3)
    assert [raw[row * 16] for row in range(6)] == [2] * 6


@pytest.mark.parametrize(
    "array, words",
    [
        (np.zeros((4, 4), dtype=np.uint16), "uint16"),
        (np.zeros((4, 4), dtype=bool), "bool"),
        (np.zeros((4, 4, 5), dtype=np.uint8), "(4, 4, 5)"),
        (np.zeros((4,), dtype=np.uint8), "(4,)"),
        (np.zeros((0, 4, 3), dtype=np.uint8), "empty"),
    ],
)
def test_unsupported_arrays_are_refused_with_what_is_allowed(array, words):
    with pytest.raises(ValueError) as caught:
        encode_png(array)
    assert words in str(caught.value), str(caught.value)


def render_like(side: int = 2048) -> np.ndarray:
    """A smooth image with grain, like a render."""
    y, x = np.mgrid[0:side, 0:side]
    smooth = np.stack([x / 8, y / 8, (x + y) / 16, np.full_like(x, 255)], axis=-1) % 256
    return (smooth + noise((side, side, 4)) % 8).astype(np.uint8)


def test_a_2048_rgba_round_trips_from_bytes_and_floats():
    pixels = render_like()
    data = encode_png(pixels)
    np.testing.assert_array_equal(np.asarray(decode(data)), pixels)
    assert encode_png(pixels.astype(np.float32) / 255) == data  # what Blender's Image.pixels holds


@pytest.mark.perf
def test_a_2048_rgba_encodes_well_under_a_second():
    """The add-on encodes on Blender's main thread."""
    pixels = render_like()
    encode_png(pixels[:64])  # warm numpy and zlib
    started = time.perf_counter()
    encode_png(pixels)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.8, f"{elapsed:.2f}s"
    floats = pixels.astype(np.float32) / 255
    started = time.perf_counter()
    encode_png(floats)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"float input: {elapsed:.2f}s"


def test_sha256_hex_is_the_blob_name():
    data = encode_png(noise((3, 3)))
    digest = png_codec.sha256_hex(data)
    assert digest == hashlib.sha256(data).hexdigest() and len(digest) == 64 and digest == digest.lower()


def test_the_codec_imports_only_the_standard_library_and_numpy():
    names = imported_modules(MODULE)
    assert names <= set(sys.stdlib_module_names) | {"numpy"}, names
