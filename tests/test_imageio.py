"""Reading images and arrays for comparison: every supported kind, and every bad file named."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import png
import pytest
from PIL import Image

from accuracy.errors import InputError
from accuracy.imageio import (
    encode_png,
    read_array,
    read_comparable,
    read_image,
    read_npz,
    resize_to,
    to_pixels,
    write_png,
)
from tests.image_data import landscape, save


@pytest.mark.parametrize("channels, mode", [(1, "L"), (3, "RGB")])
def test_8_bit_png_round_trips(tmp_path, channels, mode):
    image = landscape(40, channels=channels)
    loaded = read_image(save(tmp_path / "a.png", image))
    assert loaded.mode == mode and loaded.data_range == 255
    np.testing.assert_array_equal(loaded.array, image)


@pytest.mark.parametrize("channels, mode", [(1, "L;16"), (3, "RGB;16"), (4, "RGB;16")])
def test_16_bit_png_keeps_16_bits(tmp_path, channels, mode):
    image = landscape(40, bits=16, channels=channels)
    image[0, 0, ...] = 12345  # not a multiple of 257: an 8-bit round trip would lose it
    if channels == 4:
        image[0, 0, 3] = 65535
    loaded = read_image(write_png(tmp_path / "a.png", image))
    assert loaded.mode == mode and loaded.array.dtype == np.uint16 and loaded.data_range == 65535
    np.testing.assert_array_equal(loaded.array, image[..., :3] if channels == 4 else image)


def _filtered_png(image: np.ndarray, filters: list[int]) -> bytes:
    """A 16-bit PNG whose rows use the given filter types (written by the PNG spec, not by us)."""
    height, width, channels = image.shape
    raw_rows = image.astype(">u2").reshape(height, -1).view(np.uint8).astype(np.int64)
    bpp = 2 * channels
    out = bytearray()
    previous = np.zeros(raw_rows.shape[1], dtype=np.int64)
    for y, row in enumerate(raw_rows):
        kind = filters[y % len(filters)]
        left = np.concatenate([np.zeros(bpp, np.int64), row[:-bpp]])
        upper_left = np.concatenate([np.zeros(bpp, np.int64), previous[:-bpp]])
        if kind == 0:
            predictor = np.zeros_like(row)
        elif kind == 1:
            predictor = left
        elif kind == 2:
            predictor = previous
        elif kind == 3:
            predictor = (left + previous) // 2
        else:
            p = left + previous - upper_left
            pa, pb, pc = abs(p - left), abs(p - previous), abs(p - upper_left)
            predictor = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, previous, upper_left))
        out.append(kind)
        out += ((row - predictor) % 256).astype(np.uint8).tobytes()
        previous = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b"")


def test_16_bit_png_with_every_filter_type(tmp_path):
    image = landscape(24, bits=16)
    path = tmp_path / "filtered.png"
    path.write_bytes(_filtered_png(image, [0, 1, 2, 3, 4]))
    np.testing.assert_array_equal(read_image(path).array, image)


@pytest.mark.parametrize("channels, mode", [(1, "L;16"), (2, "L;16"), (3, "RGB;16"), (4, "RGB;16")])
def test_interlaced_16_bit_png(tmp_path, channels, mode):
    image = landscape(24, bits=16, channels=3 if channels == 2 else channels)[:23, :19]  # uneven Adam7 passes
    if channels == 2:
        image = np.stack([image[..., 0], np.full(image.shape[:2], 65535, np.uint16)], axis=-1)
    image[0, 0, ...] = 12345
    image[..., -1] = 65535 if channels in (2, 4) else image[..., -1]
    writer = png.Writer(19, 23, greyscale=channels <= 2, alpha=channels in (2, 4), bitdepth=16, interlace=True)
    path = tmp_path / "interlaced.png"
    with path.open("wb") as out:
        writer.write(out, image.reshape(23, -1).tolist())
    loaded = read_image(path)
    assert loaded.mode == mode and loaded.array.dtype == np.uint16
    np.testing.assert_array_equal(loaded.array, image[..., :-1].squeeze(-1) if channels == 2 else
                                  image[..., :3] if channels == 4 else image)


def _with_idat(good: bytes, idat: bytes) -> bytes:
    """``good`` (one IDAT chunk, as ``encode_png`` writes it) with that chunk's data replaced."""
    start = good.index(b"IDAT") - 4
    length = struct.unpack(">I", good[start:start + 4])[0]
    chunk = struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
    return good[:start] + chunk + good[start + 12 + length:]


@pytest.mark.parametrize("damage", ["truncate", "no-iend", "crc", "short-rows", "long-rows", "filter", "zlib"])
def test_damaged_16_bit_colour_pngs_are_input_errors(tmp_path, damage):
    image = landscape(16, bits=16)
    good = encode_png(image)
    raw = zlib.decompress(good[good.index(b"IDAT") + 4:good.index(b"IEND") - 8])
    row = 1 + 16 * 3 * 2
    data = {
        "truncate": good[: len(good) // 2],
        "no-iend": good[:-12],
        "crc": good[:45] + bytes([good[45] ^ 0xFF]) + good[46:],
        "short-rows": _with_idat(good, zlib.compress(raw[: 10 * row])),
        "long-rows": _with_idat(good, zlib.compress(raw + raw[:row])),
        "filter": _with_idat(good, zlib.compress(bytes([9]) + raw[1:])),
        "zlib": _with_idat(good, b"not zlib data"),
    }[damage]
    path = tmp_path / f"{damage}.png"
    path.write_bytes(data)
    with pytest.raises(InputError) as info:
        read_image(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_opaque_alpha_is_dropped_and_transparent_alpha_refused(tmp_path):
    rgba = landscape(32, channels=4)
    loaded = read_image(save(tmp_path / "opaque.png", rgba))
    assert loaded.mode == "RGB" and loaded.dropped_alpha
    rgba[5, 5, 3] = 10
    with pytest.raises(InputError, match="1 transparent pixels") as info:
        read_image(save(tmp_path / "see-through.png", rgba))
    assert "see-through.png" in str(info.value)


def test_palette_and_jpeg(tmp_path):
    image = landscape(32)
    palette = Image.fromarray(image).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette.save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").mode == "RGB"
    Image.fromarray(image).save(tmp_path / "a.jpg", quality=95)
    jpeg = read_image(tmp_path / "a.jpg")
    assert jpeg.mode == "RGB" and np.abs(jpeg.array.astype(int) - image).mean() < 4


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "crc"])
def test_bad_files_are_input_errors_naming_the_file(tmp_path, damage):
    good = encode_png(landscape(32, bits=16 if damage == "crc" else 8))
    data = {"truncate": good[: len(good) // 2], "garbage": b"not an image at all",
            "empty": b"", "crc": good[:45] + bytes([good[45] ^ 0xFF]) + good[46:]}[damage]
    path = tmp_path / f"{damage}.png"
    path.write_bytes(data)
    with pytest.raises(InputError) as info:
        read_image(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_unsupported_modes_are_named(tmp_path):
    Image.fromarray(landscape(16)).convert("CMYK").save(tmp_path / "print.jpg")
    with pytest.raises(InputError, match="unsupported image mode CMYK") as info:
        read_image(tmp_path / "print.jpg")
    assert "print.jpg" in str(info.value)
    Image.fromarray(np.zeros((8, 8), np.float32), mode="F").save(tmp_path / "float.tiff")
    with pytest.raises(InputError, match="unsupported image mode F"):
        read_image(tmp_path / "float.tiff")


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_comparable(tmp_path / "nope.png")


def test_npy_arrays(tmp_path):
    latents = np.random.default_rng(0).normal(size=(1, 4, 8, 8)).astype(np.float32)
    np.save(tmp_path / "l.npy", latents)
    loaded = read_comparable(tmp_path / "l.npy")
    assert loaded.mode == "array" and loaded.array.dtype == np.float32
    np.testing.assert_array_equal(loaded.array, latents)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="obj.npy"):
        read_array(tmp_path / "obj.npy")
    np.savez(tmp_path / "two.npz", a=latents, b=latents)
    with pytest.raises(InputError, match="several arrays"):
        read_comparable(tmp_path / "two.npz")
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InputError, match="bad.npy"):
        read_array(tmp_path / "bad.npy")


@pytest.mark.parametrize(("array", "words"), [
    (np.array([1 + 2j, 3 - 1j], np.complex64), "complex"),
    (np.zeros((0, 4), np.float32), "empty"),
])
def test_complex_and_empty_arrays_are_input_errors_naming_the_file(tmp_path, array, words):
    np.save(tmp_path / "odd.npy", array)
    with pytest.raises(InputError, match=words) as info:
        read_comparable(tmp_path / "odd.npy")
    assert info.value.path == str(tmp_path / "odd.npy")


def test_npz_arrays_by_name_and_bad_npz_files(tmp_path):
    x, ids = np.ones((1, 4), np.float32), np.arange(3)
    np.savez(tmp_path / "feeds.npz", x=x, ids=ids)
    loaded = read_npz(tmp_path / "feeds.npz")
    assert sorted(loaded) == ["ids", "x"] and loaded["ids"].tolist() == [0, 1, 2]
    np.save(tmp_path / "one.npy", x)
    (tmp_path / "junk.npz").write_bytes(b"PK not really a zip")
    np.savez(tmp_path / "pickled.npz", o=np.array([{"a": 1}], dtype=object))
    for name, words in [("one.npy", "expected an .npz"), ("junk.npz", "not a readable .npz"),
                        ("pickled.npz", "not a readable .npz"), ("missing.npz", "not found")]:
        with pytest.raises(InputError, match=words) as info:
            read_npz(tmp_path / name)
        assert info.value.path == str(tmp_path / name) and "\n" not in str(info.value)


def test_to_pixels_quantises_floats_like_diffusers():
    floats = np.array([[[0.0, 0.5, 1.0]]])
    np.testing.assert_array_equal(to_pixels(floats), [[[0, 128, 255]]])
    assert to_pixels(Image.fromarray(landscape(8))).shape == (8, 8, 3)
    with pytest.raises(ValueError, match="0..1"):
        to_pixels(floats * 3)
    rgba = landscape(8, channels=4)
    np.testing.assert_array_equal(to_pixels(rgba), rgba[..., :3])  # opaque alpha dropped, as on reading
    rgba[0, 0, 3] = 0
    with pytest.raises(ValueError, match="transparent"):
        to_pixels(rgba)


def test_resize_to_keeps_dtype_and_reaches_the_shape():
    image = landscape(64, bits=16)
    smaller = resize_to(image, (32, 48))
    assert smaller.shape == (32, 48, 3) and smaller.dtype == np.uint16
