"""The one place that reads (and writes) images and ``.npy`` arrays for comparison.

Images: PNG and JPEG, 8- or 16-bit, grey, grey+alpha, RGB, RGBA and palette, interlaced or not; an
alpha channel must be opaque and is then dropped (a transparent pixel has no colour to compare).
Pillow reads everything except 16-bit PNGs with colour or alpha, which it silently cuts to 8 bits;
those are read with pypng (``import png``), and 16-bit PNGs are written with it, so a 16-bit golden
keeps its 16 bits. Arrays: ``.npy`` (one array) and ``.npz`` (arrays by name), without pickles.

Every failure is an ``InputError`` that names the file: missing, corrupt, truncated, unsupported
mode, transparent pixels.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import png

from accuracy.errors import InputError
from accuracy.io import regular_file, write_bytes_atomic

ARRAY_SUFFIXES = (".npy", ".npz")  # .npz only to say it is not supported


@dataclass(frozen=True)
class LoadedImage:
    """Pixels ready for ``accuracy.compare.images``: ``(H, W)`` or ``(H, W, 3)``, integer dtype for
    images (uint8/uint16), the file's own dtype for arrays; ``data_range`` is what SSIM/PSNR need."""

    path: Path
    array: np.ndarray
    data_range: float
    mode: str  # "L", "RGB", "L;16", "RGB;16" for images, "array" for .npy
    dropped_alpha: bool = False

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as people say image sizes."""
        return int(self.array.shape[1]), int(self.array.shape[0])


def read_comparable(path: str | Path) -> LoadedImage:
    """Read an image or a ``.npy`` array, whichever ``path`` holds."""
    path = Path(path)
    if path.suffix.lower() in ARRAY_SUFFIXES:
        from accuracy.compare.images import data_range_for

        array = read_array(path)
        return LoadedImage(path=path, array=array, data_range=data_range_for(array), mode="array")
    return read_image(path)


def read_array(path: str | Path) -> np.ndarray:
    """A ``.npy`` array (no pickles): an ``InputError`` naming the file when it cannot be read."""
    path = Path(path)
    _require_file(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"not a readable .npy array ({exc})", path=path) from None
    if not isinstance(array, np.ndarray):
        array.close()  # an NpzFile keeps its file open
        raise InputError("holds several arrays (.npz); pass one .npy array", path=path)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise InputError(f"holds {array.dtype} values, not numbers", path=path)
    if np.iscomplexobj(array):
        raise InputError(f"holds complex ({array.dtype}) values; save the real part or the magnitude", path=path)
    if array.size == 0:
        raise InputError(f"holds an empty array (shape {array.shape}); nothing to compare", path=path)
    return array


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` (no pickles) by name: an ``InputError`` naming the file when it cannot be read."""
    path = Path(path)
    _require_file(path)
    try:
        data = np.load(path, allow_pickle=False)
        if not hasattr(data, "files"):
            raise InputError("holds one array (.npy); expected an .npz with one array per name", path=path)
        with data:
            return {name: data[name] for name in data.files}
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy/zipfile raise many types for a bad file
        raise InputError(f"not a readable .npz ({exc})", path=path) from None


def read_image(path: str | Path) -> LoadedImage:
    """A PNG/JPEG image as an integer array with its data range (255 or 65535)."""
    path = Path(path)
    data = _require_file(path).read_bytes()
    if not data:
        raise InputError("file is empty", path=path)
    reader = _png_reader_if_pillow_truncates(data, path)
    array = _decode_with_pypng(reader, path) if reader is not None else _decode_with_pillow(data, path)
    return _finish(path, array)


def _require_file(path: Path) -> Path:
    return regular_file(path)  # not found, a folder, a named pipe, a name too long: one line each


def _finish(path: Path, array: np.ndarray) -> LoadedImage:
    """Drop an opaque alpha channel; refuse a transparent one."""
    dropped = False
    if array.ndim == 3 and array.shape[2] in (2, 4):
        alpha = array[..., -1]
        opaque = np.iinfo(array.dtype).max
        if alpha.min() < opaque:
            count = int(np.count_nonzero(alpha < opaque))
            raise InputError(
                f"has {count} transparent pixels; composite it onto a background or save it without alpha",
                path=path,
            )
        array = array[..., :-1]
        dropped = True
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    depth = "" if array.dtype == np.uint8 else ";16"
    mode = ("L" if array.ndim == 2 else "RGB") + depth
    return LoadedImage(
        path=path,
        array=np.ascontiguousarray(array),
        data_range=float(np.iinfo(array.dtype).max),
        mode=mode,
        dropped_alpha=dropped,
    )


def _decode_with_pillow(data: bytes, path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            mode = image.mode
            if mode == "P" or mode == "PA":
                image = image.convert("RGBA" if "transparency" in image.info or mode == "PA" else "RGB")
            elif mode == "1":
                image = image.convert("L")
            elif mode in ("I;16", "I;16L", "I;16B", "I;16N"):
                return np.asarray(image).astype(np.uint16)
            elif mode == "I":
                array = np.asarray(image)
                if array.min() < 0 or array.max() > 65535:
                    raise InputError("32-bit integer pixels are not supported; save it as 16-bit", path=path)
                return array.astype(np.uint16)
            elif mode not in ("L", "LA", "RGB", "RGBA"):
                raise InputError(f"unsupported image mode {mode}; save it as grey, RGB or RGBA", path=path)
            return np.asarray(image).copy()
    except UnidentifiedImageError:
        raise InputError("not a readable image (PNG or JPEG expected)", path=path) from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"refused: {exc}", path=path) from None
    except (OSError, SyntaxError, ValueError, struct.error, zlib.error) as exc:
        raise InputError(f"corrupt or truncated image ({exc})", path=path) from None


# -- 16-bit PNGs with colour or alpha: Pillow keeps only 8 bits of these, pypng keeps all 16 --

_PNG_ERRORS = (png.Error, zlib.error, EOFError, ValueError, struct.error)


def _png_reader_if_pillow_truncates(data: bytes, path: Path) -> png.Reader | None:
    """A pypng reader, past the chunks before the image data, for a 16-bit PNG with colour or alpha
    (colour types 2, 4, 6); ``None`` for anything else, which Pillow reads (or names as broken)."""
    if not data.startswith(png.signature):
        return None
    reader = png.Reader(bytes=data)

    def truncated_by_pillow() -> bool:  # IHDR's fields are set as soon as it is parsed
        return getattr(reader, "bitdepth", None) == 16 and getattr(reader, "color_type", None) in (2, 4, 6)

    try:
        reader.preamble()
    except _PNG_ERRORS as exc:
        if truncated_by_pillow():
            raise InputError(f"corrupt or truncated PNG ({_one_line(exc)})", path=path) from None
        return None
    return reader if truncated_by_pillow() else None


def _decode_with_pypng(reader: png.Reader, path: Path) -> np.ndarray:
    """``(H, W, planes)`` uint16 pixels as stored: ``read`` rather than ``asDirect``, which would
    rescale to an ``sBIT`` depth and add alpha from ``tRNS`` (Pillow ignores ``tRNS`` outside palettes)."""
    from PIL import Image

    width, height, planes = reader.width, reader.height, reader.planes
    if Image.MAX_IMAGE_PIXELS and width * height > 2 * Image.MAX_IMAGE_PIXELS:
        raise InputError(f"refused: image size ({width * height} pixels) exceeds the limit of "
                         f"{2 * Image.MAX_IMAGE_PIXELS} pixels (a decompression bomb?)", path=path)
    out = np.empty((height, width * planes), dtype=np.uint16)
    count = 0
    try:
        for count, row in enumerate(reader.read()[2], start=1):  # rows of array("H"), native order
            if count > height or len(row) != width * planes:
                raise InputError("corrupt PNG (image data does not fit its size)", path=path)
            out[count - 1] = np.frombuffer(row, dtype=np.uint16)
    except _PNG_ERRORS as exc:
        raise InputError(f"corrupt or truncated PNG ({_one_line(exc)})", path=path) from None
    if count != height:
        raise InputError(f"truncated PNG image data ({count} of {height} rows)", path=path)
    return out.reshape(height, width, planes)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# -- writing --

def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8 or uint16 grey/RGB/RGBA array (16-bit ones written with pypng, since
    Pillow cannot write 16-bit colour)."""
    array = np.asarray(array)
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG pixels are uint8 or uint16, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"a PNG is (H, W), (H, W, 3) or (H, W, 4); got {array.shape}")
    if array.dtype == np.uint16:
        height, width = array.shape[:2]
        channels = 1 if array.ndim == 2 else array.shape[2]
        writer = png.Writer(width, height, greyscale=channels == 1, alpha=channels == 4, bitdepth=16)
        rows = array.astype(">u2").reshape(height, width * channels).view(np.uint8)  # packed, big-endian
        buffer = io.BytesIO()
        writer.write_packed(buffer, rows)
        return buffer.getvalue()
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path: str | Path, array: np.ndarray, *, overwrite: bool = True) -> Path:
    """Write ``array`` as a PNG atomically (see ``accuracy.io.write_bytes_atomic``)."""
    return write_bytes_atomic(path, encode_png(array), overwrite=overwrite)


def to_pixels(image: object) -> np.ndarray:
    """A pipeline's image (PIL image, uint8/uint16 array, or float array in 0..1) as PNG-ready pixels.

    Floats are what diffusers returns with ``output_type="np"``; they are rounded to 8 bits, the
    way diffusers' own ``numpy_to_pil`` does, so a golden and a fresh run quantise alike. An opaque
    alpha channel is dropped, as ``read_image`` drops it; a transparent one is refused.
    """
    if hasattr(image, "mode") and hasattr(image, "size") and not isinstance(image, np.ndarray):
        image = np.asarray(image.convert("RGBA" if image.mode in ("P", "PA", "LA") else image.mode))
    array = np.asarray(image)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("image holds NaN or infinite values")
        if array.min() < -1e-3 or array.max() > 1 + 1e-3:
            raise ValueError(f"float images must lie in 0..1, got {array.min():.4g}..{array.max():.4g}")
        array = np.round(np.clip(array, 0.0, 1.0) * 255).astype(np.uint8)
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"cannot store {array.dtype} pixels as an image; use uint8, uint16 or floats in 0..1")
    if array.ndim == 3 and array.shape[2] in (2, 4):
        if array[..., -1].min() < np.iinfo(array.dtype).max:
            raise ValueError("image has transparent pixels; composite it onto a background first")
        array = array[..., :-1]
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    return array


def resize_to(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``array`` resampled to ``shape[:2]`` (bilinear, anti-aliased), keeping its dtype.

    Only on request (``accuracy diff --resize``): a resize hides real size bugs otherwise.
    """
    from skimage.transform import resize

    target = tuple(shape[:2]) + tuple(array.shape[2:])
    resized = resize(array, target, order=1, preserve_range=True, anti_aliasing=True)
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        return np.clip(np.round(resized), info.min, info.max).astype(array.dtype)
    return resized.astype(array.dtype)
