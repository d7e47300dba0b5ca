"""The one place that reads (and writes) images and ``.npy`` arrays for comparison.

Images: PNG and JPEG, 8- or 16-bit, grey, grey+alpha, RGB, RGBA and palette; an alpha channel must
be opaque and is then dropped (a transparent pixel has no colour to compare). Pillow reads
everything except 16-bit colour PNGs, which it silently cuts to 8 bits; those are decoded here with
zlib so a 16-bit golden keeps its 16 bits. Arrays: ``.npy`` without pickles.

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

from accuracy.errors import InputError
from accuracy.io import write_bytes_atomic

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
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
    return array


def read_image(path: str | Path) -> LoadedImage:
    """A PNG/JPEG image as an integer array with its data range (255 or 65535)."""
    path = Path(path)
    data = _require_file(path).read_bytes()
    if not data:
        raise InputError("file is empty", path=path)
    header = _png_header(data)
    if header is not None and header["bit_depth"] == 16 and header["colour_type"] in (2, 4, 6):
        array = _decode_png16(data, header, path)
    else:
        array = _decode_with_pillow(data, path)
    return _finish(path, array)


def _require_file(path: Path) -> Path:
    if not path.exists():
        raise InputError("file not found", path=path)
    if not path.is_file():
        raise InputError("is not a file", path=path)
    return path


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


# -- 16-bit colour PNG: Pillow keeps only 8 bits of these, so decode them here (PNG spec, ISO 15948) --

def _png_header(data: bytes) -> dict | None:
    if not data.startswith(PNG_SIGNATURE) or len(data) < 33 or data[12:16] != b"IHDR":
        return None
    width, height, bit_depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return {"width": width, "height": height, "bit_depth": bit_depth, "colour_type": colour_type,
            "interlace": interlace}


def _decode_png16(data: bytes, header: dict, path: Path) -> np.ndarray:
    """Decode a non-interlaced PNG (any filter) to an array of its own bit depth (8 or 16)."""
    if header["interlace"]:
        raise InputError("interlaced 16-bit colour PNGs are not supported; save it without interlacing", path=path)
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(header["colour_type"])
    if channels is None or header["bit_depth"] not in (8, 16):
        raise InputError("unsupported PNG colour type / bit depth", path=path)
    idat = bytearray()
    offset = len(PNG_SIGNATURE)
    while True:
        if offset + 8 > len(data):
            raise InputError("truncated PNG (no IEND chunk)", path=path)
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        crc = data[offset + 8 + length:offset + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise InputError(f"truncated PNG (chunk {kind.decode('latin-1')!r} cut short)", path=path)
        if zlib.crc32(kind + body) & 0xFFFFFFFF != struct.unpack(">I", crc)[0]:
            raise InputError(f"corrupt PNG (CRC mismatch in chunk {kind.decode('latin-1')!r})", path=path)
        if kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        offset += 12 + length
    try:
        raw = zlib.decompress(bytes(idat))
    except zlib.error as exc:
        raise InputError(f"corrupt PNG image data ({exc})", path=path) from None
    width, height = header["width"], header["height"]
    bpp = channels * header["bit_depth"] // 8
    stride = width * bpp
    if len(raw) != height * (stride + 1):
        raise InputError("truncated PNG image data", path=path)
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, stride + 1)
    pixels = _unfilter(rows, bpp, path)
    dtype = ">u2" if header["bit_depth"] == 16 else np.uint8
    array = pixels.view(dtype).reshape(height, width, channels)
    return array.astype(np.uint16 if header["bit_depth"] == 16 else np.uint8)


def _unfilter(rows: np.ndarray, bpp: int, path: Path) -> np.ndarray:
    height, stride = rows.shape[0], rows.shape[1] - 1
    out = np.zeros((height, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:]
        if kind == 0:
            current = line.copy()
        elif kind == 1:  # Sub: cumulative sum along each byte lane, modulo 256
            lanes = line.reshape(-1, bpp).astype(np.uint64)
            current = (np.cumsum(lanes, axis=0) % 256).astype(np.uint8).ravel()
        elif kind == 2:  # Up
            current = line + previous
        elif kind in (3, 4):  # Average, Paeth: each byte needs the decoded one to its left
            current = _unfilter_sequential(kind, line, previous, bpp)
        else:
            raise InputError(f"corrupt PNG (unknown filter type {kind} in row {y})", path=path)
        out[y] = current
        previous = current
    return out


def _unfilter_sequential(kind: int, line: np.ndarray, previous: np.ndarray, bpp: int) -> np.ndarray:
    raw, up = line.tolist(), previous.tolist()
    current = [0] * len(raw)
    for i, value in enumerate(raw):
        left = current[i - bpp] if i >= bpp else 0
        if kind == 3:
            current[i] = (value + ((left + up[i]) >> 1)) & 0xFF
            continue
        upper_left = up[i - bpp] if i >= bpp else 0
        estimate = left + up[i] - upper_left
        pa, pb, pc = abs(estimate - left), abs(estimate - up[i]), abs(estimate - upper_left)
        predictor = left if pa <= pb and pa <= pc else (up[i] if pb <= pc else upper_left)
        current[i] = (value + predictor) & 0xFF
    return np.asarray(current, dtype=np.uint8)


# -- writing --

def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8 or uint16 grey/RGB/RGBA array (16-bit colour written without Pillow)."""
    array = np.asarray(array)
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG pixels are uint8 or uint16, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"a PNG is (H, W), (H, W, 3) or (H, W, 4); got {array.shape}")
    if array.dtype == np.uint16 and array.ndim == 3:
        return _encode_png16(array)
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()


def _encode_png16(array: np.ndarray) -> bytes:
    height, width, channels = array.shape
    colour_type = {3: 2, 4: 6}[channels]
    body = array.astype(">u2").reshape(height, width * channels).view(np.uint8)
    raw = np.concatenate([np.zeros((height, 1), dtype=np.uint8), body], axis=1).tobytes()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


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
