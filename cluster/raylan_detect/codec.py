"""Decoding encoded image bytes (JPEG, PNG, WebP, BMP) into pixels, with named errors."""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

SUPPORTED_FORMATS = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp", "BMP": "bmp"}
#: Known but unsupported formats, by magic bytes, for a precise error.
OTHER_FORMATS = {b"GIF8": "GIF", b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}
#: Largest image accepted, in pixels (width × height). 12000×12000 (144 MP) is refused: decoding it
#: would take 432 MB per image on the replica. Override with the deployment's max_pixels.
DEFAULT_MAX_PIXELS = 50_000_000


class ImageError(Exception):
    """An input that is not a usable image. `code` is stable, for clients to act on."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclass
class DecodedImage:
    pixels: np.ndarray  # H×W×3, BGR (Ultralytics' and OpenCV's order)
    width: int
    height: int
    format: str


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decodes one image. Raises ImageError: empty, unsupported_format, too_large, decode_failed."""
    if not data:
        raise ImageError("empty", "the image is empty (0 bytes)")
    pil_format = sniff(data)
    if pil_format is None:
        other = next((name for magic, name in OTHER_FORMATS.items() if data.startswith(magic)), None)
        if other:
            raise ImageError("unsupported_format", f"{other} images are not supported (use JPEG, PNG, WebP or BMP)")
        raise ImageError("unsupported_format", "not an image in a supported format (JPEG, PNG, WebP, BMP)")
    try:
        image = Image.open(io.BytesIO(data), formats=[pil_format])
    except UnidentifiedImageError:
        raise ImageError("unsupported_format", "not an image in a supported format (JPEG, PNG, WebP, BMP)")
    except Exception as error:  # noqa: BLE001 - any reader failure is a bad input
        raise ImageError("decode_failed", f"cannot read the image: {error}")
    kind = SUPPORTED_FORMATS.get(image.format or "")
    if kind is None:
        raise ImageError("unsupported_format", f"{image.format} images are not supported (use JPEG, PNG, WebP or BMP)")
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(
            "too_large", f"the image is {width}×{height} ({width * height / 1e6:.0f} MP), over the limit of "
            f"{max_pixels / 1e6:.0f} MP; downscale it first")
    try:
        rgb = np.asarray(image.convert("RGB"))
    except Exception as error:  # noqa: BLE001 - truncated or corrupt data
        raise ImageError("decode_failed", f"the {kind} data is truncated or corrupt: {error}")
    return DecodedImage(pixels=np.ascontiguousarray(rgb[:, :, ::-1]), width=width, height=height, format=kind)


def sniff(data: bytes) -> str | None:
    """The PIL format name from the magic bytes, for the supported formats only."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data.startswith(b"BM"):
        return "BMP"
    return None


def split_frames(body: bytes) -> list[bytes]:
    """The multi-image body: each image as a 4-byte big-endian length followed by its bytes."""
    frames, offset = [], 0
    while offset < len(body):
        if offset + 4 > len(body):
            raise ValueError("the body ends inside a frame header")
        length = int.from_bytes(body[offset:offset + 4], "big")
        offset += 4
        if offset + length > len(body):
            raise ValueError(f"frame {len(frames)} says {length} bytes but only {len(body) - offset} remain")
        frames.append(body[offset:offset + length])
        offset += length
    return frames
