"""``Image``: numpy arrays, PIL images, matplotlib figures or files, stored as PNG in the background.

``run.log`` only copies the pixels (tens of microseconds for 256x256 RGB); a writer thread
scales, encodes (zlib, which releases the GIL) and writes the file under a temporary name, then
renames it, so a reader never sees half a PNG. ``finish()`` waits for the writer.
"""

from __future__ import annotations

import io
import os
import queue
import struct
import threading
import warnings
import zlib
from pathlib import Path
from typing import Any

from ..core.errors import InvalidValueError, NbtrackerWarning
from .base import Media, check_caption

MAX_SIDE = 16384
_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".gif": "gif", ".webp": "webp", ".bmp": "bmp"}


class Image(Media):
    """An image to log: ``run.log({"sample": nbtracker.Image(x, caption="...")})``.

    Parameters
    ----------
    x : numpy array, PIL image, matplotlib figure, torch tensor, or path
        Arrays are ``HW`` (gray), ``HWC`` with 1, 3 or 4 channels (``CHW`` is transposed),
        ``uint8`` 0-255 or float 0-1 (floats above 1 are read as 0-255; values are clipped).
        A path (``.png``, ``.jpg``, ``.gif``, ``.webp``, ``.bmp``) is copied as it is.
    caption : str, optional
    """

    extension = "png"

    def __init__(self, x: Any, caption: str | None = None) -> None:
        self.caption = check_caption(caption)
        self._pixels: Any = None
        self._bytes: bytes | None = None
        if isinstance(x, (str, os.PathLike)):
            path = Path(x)
            fmt = _FORMATS.get(path.suffix.lower())
            if fmt is None:
                raise InvalidValueError(f"{path} is not an image file this stores ({', '.join(_FORMATS)})")
            try:
                self._bytes = path.read_bytes()
            except FileNotFoundError:
                raise InvalidValueError(f"image file {path} does not exist") from None
            self.extension = path.suffix.lower().lstrip(".")
            self.width, self.height = _size_of(self._bytes)
        elif _is_figure(x):
            buf = io.BytesIO()
            x.savefig(buf, format="png")
            self._bytes = buf.getvalue()
            self.width, self.height = _size_of(self._bytes)
        else:
            self._pixels = _pixels(x)
            self.height, self.width = self._pixels.shape[:2]

    def store(self, run: Any, rel: str) -> dict[str, Any]:
        path = run.dir / rel
        _enqueue(run, path, self._pixels, self._bytes)
        ref = {"_type": "image", "path": rel, "width": self.width, "height": self.height}
        if self.caption is not None:
            ref["caption"] = self.caption
        return ref

    def __repr__(self) -> str:
        return f"<nbtracker.Image {self.width}x{self.height}{' ' + repr(self.caption) if self.caption else ''}>"


def _is_figure(x: Any) -> bool:
    return type(x).__name__ in ("Figure", "SubFigure") and hasattr(x, "savefig")


def _pixels(x: Any) -> Any:
    """A private copy of the pixels, shape checked (scaling happens in the writer)."""
    import numpy as np

    if hasattr(x, "detach") and hasattr(x, "cpu"):        # a torch tensor
        x = x.detach().cpu().numpy()
    elif type(x).__module__.startswith("PIL.") and hasattr(x, "mode"):
        if x.mode not in ("L", "RGB", "RGBA", "LA"):
            x = x.convert("RGBA" if "A" in x.mode or "transparency" in x.info else "RGB")
    try:
        arr = np.array(x, copy=True)
    except Exception as e:  # noqa: BLE001 - anything numpy cannot read
        raise InvalidValueError(f"Image() takes a numpy array, PIL image, matplotlib figure, tensor "
                                f"or path, not {type(x).__name__} ({e})") from None
    if arr.dtype.kind not in "biuf":
        raise InvalidValueError(f"Image() needs numbers, not an array of {arr.dtype}")
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 2, 3, 4):
        arr = arr.transpose(1, 2, 0)                     # CHW (PyTorch) -> HWC
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (2, 3, 4))):
        raise InvalidValueError(f"Image() takes HW, HWC (1-4 channels) or CHW arrays, not shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1 or max(arr.shape[:2]) > MAX_SIDE:
        raise InvalidValueError(f"image size {arr.shape[1]}x{arr.shape[0]} is outside 1..{MAX_SIDE} per side")
    return arr


def to_uint8(arr: Any) -> Any:
    import numpy as np

    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind == "b":
        return arr.astype(np.uint8) * 255
    if arr.dtype.kind == "f":
        a = arr.astype(np.float32)          # a private copy, scaled in place (few passes)
        if np.isnan(a).any():
            np.nan_to_num(a, copy=False, nan=0.0)
        if not (a.size and a.max() > 1.0):
            np.multiply(a, 255.0, out=a)
        np.clip(a, 0.0, 255.0, out=a)
        a += 0.5
        return a.astype(np.uint8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def encode_png(arr: Any, level: int = 1) -> bytes:
    """PNG bytes of an ``HW`` / ``HWC`` array (see ``png_parts``)."""
    return b"".join(png_parts(arr, level))


def png_parts(arr: Any, level: int = 1) -> list[bytes]:
    """The pieces of a PNG file of an ``HW`` / ``HWC`` array, to write one after the other.

    No filter; zlib (which releases the GIL while it works) at level 1 compresses natural images
    well at ~0.5 ms per 256x256 RGB. Pixels that do not compress (noise; checked on a 16 KB
    sample) are stored (level 0), which is 60x faster than failing to deflate them; the writer
    also stores when it falls behind (see ``_work``). Pieces are not joined and CRCs are computed
    incrementally, so the image is copied as little as possible while holding the GIL."""
    import numpy as np

    arr = to_uint8(arr)
    h, w = arr.shape[:2]
    c = 1 if arr.ndim == 2 else arr.shape[2]
    raw = np.empty((h, w * c + 1), np.uint8)
    raw[:, 0] = 0
    raw[:, 1:] = arr.reshape(h, w * c)
    sample = raw.data[: 1 << 14]
    if level and len(zlib.compress(sample, 1)) > 0.95 * len(sample):
        level = 0
    data = zlib.compress(raw.data, level)
    header = struct.pack(">IIBBBBB", w, h, 8, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, 0)
    return [b"\x89PNG\r\n\x1a\n", *_chunk(b"IHDR", header), *_chunk(b"IDAT", data), *_chunk(b"IEND", b"")]


def _chunk(tag: bytes, body: bytes) -> tuple[bytes, bytes, bytes]:
    crc = zlib.crc32(body, zlib.crc32(tag))
    return struct.pack(">I", len(body)) + tag, body, struct.pack(">I", crc)


def _size_of(data: bytes) -> tuple[int | None, int | None]:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    try:
        from PIL import Image as PILImage

        with PILImage.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:  # noqa: BLE001 - unknown size is fine for a copied file
        return None, None


# -- the writer thread -----------------------------------------------------------------------------
#: Images waiting for the writer; when it falls this far behind, ``log`` waits (bounded memory).
MAX_PENDING = 256
_queue: queue.Queue[tuple[Path, Any, bytes | None]] = queue.Queue(MAX_PENDING)
_thread: threading.Thread | None = None
_start = threading.Lock()
_failed: list[str] = []


def _enqueue(run: Any, path: Path, pixels: Any, data: bytes | None) -> None:
    global _thread
    if "images" not in run._parts:
        run._parts["images"] = True
        run._closers.append(wait_written)
    with _start:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_work, name="nbtracker-media", daemon=True)
            _thread.start()
    _queue.put((path, pixels, data))


def _work() -> None:
    while True:
        path, pixels, data = _queue.get()
        try:
            # Falling behind (images arrive faster than they deflate): store them uncompressed,
            # still valid PNG, rather than slow the user's loop down.
            parts = [data] if data is not None else png_parts(
                pixels, level=0 if _queue.qsize() > MAX_PENDING // 16 else 1)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            with open(tmp, "wb") as f:
                f.writelines(parts)
            os.replace(tmp, path)
        except Exception as e:  # noqa: BLE001 - reported at the next wait
            _failed.append(f"{path}: {type(e).__name__}: {e}")
        finally:
            _queue.task_done()


def wait_written() -> None:
    """Block until every queued image is on disk; report (once) images that could not be written."""
    _queue.join()
    if _failed:
        failed = list(_failed)
        _failed.clear()
        warnings.warn(f"nbtracker: {len(failed)} image(s) could not be written: {failed[0]}",
                      NbtrackerWarning, stacklevel=2)
