"""Decoding encoded image bytes (JPEG, PNG, WebP, BMP) into pixels, with named errors and bounded memory.

Every check that can refuse an image runs on its header, before any pixel is decoded: `inspect()` reads
the format, size and mode (PIL opens lazily; a WebP's size comes from its own header, because Pillow's
WebP reader allocates the canvas as soon as it opens the file), and `decoded_bytes()` says what decoding
will allocate. Animated images (APNG, animated WebP) are decoded on their first frame only.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from raylan_common import contract

SUPPORTED_FORMATS = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp", "BMP": "bmp"}
#: Known but unsupported formats, by magic bytes, for a precise error.
OTHER_FORMATS = {b"GIF8": "GIF", b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}
#: Largest image accepted, in pixels (width × height). 12000×12000 (144 MP) is refused: decoding it
#: would take 432 MB per image on the replica. Override with the deployment's max_pixels.
DEFAULT_MAX_PIXELS = 50_000_000
#: Decoded-memory budget of one request, in bytes: the sum of decoded_bytes() over its images.
#: Override with the deployment's max_decoded_bytes.
DEFAULT_MAX_DECODED_BYTES = 512 * 1024 * 1024
#: A decompression bomb: an image that decodes to more than BOMB_MIN_DECODED_BYTES and to more than
#: MAX_COMPRESSION_RATIO times its encoded size is refused from its header. A 6 KB 1-bit PNG of 7071×7071
#: (191 MiB decoded, 33,000:1) is one; photos compress 5–50:1, and even a flat 4000×3000 PNG stays under
#: 1000:1 at these sizes' thresholds.
BOMB_MIN_DECODED_BYTES = 64 * 1024 * 1024
MAX_COMPRESSION_RATIO = 1000
#: The fewest bytes decoding holds per pixel (a 1-bit or grey image: 1 + 3; see Header.decoded_bytes).
MIN_BYTES_PER_PIXEL = 4

# Our own size checks come first and name the error; PIL's decompression-bomb warning would only
# repeat them in the log (its error, past twice its limit, is turned into the same `too_large`).
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageError(Exception):
    """An input that is not a usable image, or a refused request. `code` is stable, for clients to act on."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def as_dict(self) -> dict:
        return contract.error(self.code, self.message)


@dataclass
class DecodedImage:
    pixels: np.ndarray  # H×W×3, BGR (Ultralytics' and OpenCV's order)
    width: int
    height: int
    format: str


@dataclass(frozen=True)
class Header:
    """What an image's header says, read without decoding a pixel."""
    format: str  # PIL's format name: JPEG, PNG, WEBP, BMP
    width: int
    height: int
    mode: str  # PIL's mode: "1", "L", "P", "RGB", "RGBA", "I;16", …

    @property
    def decoded_bytes(self) -> int:
        """The most memory decoding holds at once (see to_bgr), per pixel: 1-bit and grey images 4 (their
        1-byte pixels, then the 3-byte BGR array), RGB 7 (PIL's 4-byte pixels and their 3-byte copy),
        other modes their own size + 4 for PIL's RGB conversion, at least 7; WebP 12 (Pillow's decoder
        keeps a 4-byte canvas besides). A 7071×7071 1-bit PNG of 6 KB is 200 MB."""
        if self.mode in ("1", "L"):
            per_pixel = 4
        elif self.format == "WEBP":
            per_pixel = 12
        elif self.mode == "RGB":
            per_pixel = 7
        else:
            own = 1 if self.mode == "P" else 2 if self.mode.startswith("I;16") else 4
            per_pixel = max(own + 4, 7)
        return self.width * self.height * per_pixel


def configure_pil(max_pixels: int, max_decoded_bytes: int) -> None:
    """Sets PIL's process-wide decompression-bomb limit to the most pixels our own limits let through, so
    that its check is only a backstop behind ours (it errs past twice the limit, as `too_large` too)."""
    Image.MAX_IMAGE_PIXELS = max(1, min(max_pixels, max_decoded_bytes // MIN_BYTES_PER_PIXEL))


def sniff(data: bytes | bytearray | memoryview) -> str | None:
    """The PIL format name from the magic bytes, for the supported formats only."""
    head = bytes(data[:12])
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith(b"BM"):
        return "BMP"
    return None


def webp_size(data: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """A WebP's canvas size from its first chunk (VP8X, VP8L or VP8), or None if the header is cut short."""
    head = bytes(data[:30])
    if len(head) < 30:
        return None
    chunk = head[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
    if chunk == b"VP8L" and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(head[28:30], "little") & 0x3FFF
    return None


def too_large(width: int, height: int, why: str) -> ImageError:
    return ImageError("too_large", f"the image is {width}×{height} ({width * height / 1e6:.0f} MP): {why}; "
                                   f"downscale it first")


def inspect(data: bytes | bytearray | memoryview, max_pixels: int = DEFAULT_MAX_PIXELS) -> Header:
    """Reads an image's header without decoding it. Raises ImageError: empty, unsupported_format,
    decode_failed (an unreadable header), too_large (over max_pixels)."""
    if not len(data):
        raise ImageError("empty", "the image is empty (0 bytes)")
    pil_format = sniff(data)
    if pil_format is None:
        head = bytes(data[:4])
        other = next((name for magic, name in OTHER_FORMATS.items() if head.startswith(magic)), None)
        if other:
            raise ImageError("unsupported_format", f"{other} images are not supported (use JPEG, PNG, WebP or BMP)")
        raise ImageError("unsupported_format", "not an image in a supported format (JPEG, PNG, WebP, BMP)")
    if pil_format == "WEBP":
        # Pillow's WebP reader allocates the whole canvas when it opens the file: check the size first.
        size = webp_size(data)
        if size is None:
            raise ImageError("decode_failed", "cannot read the WebP header")
        if size[0] * size[1] > max_pixels:
            raise too_large(*size, f"over the limit of {max_pixels / 1e6:.0f} MP")
        return not_a_bomb(Header("WEBP", size[0], size[1], "RGBA"), len(data))
    with open_image(data, pil_format) as image:
        width, height = image.size
        if width * height > max_pixels:
            raise too_large(width, height, f"over the limit of {max_pixels / 1e6:.0f} MP")
        return not_a_bomb(Header(pil_format, width, height, image.mode), len(data))


def not_a_bomb(header: Header, encoded_bytes: int) -> Header:
    """The header, unless it describes a decompression bomb (see MAX_COMPRESSION_RATIO): too_large then."""
    ratio = header.decoded_bytes / max(encoded_bytes, 1)
    if header.decoded_bytes > BOMB_MIN_DECODED_BYTES and ratio > MAX_COMPRESSION_RATIO:
        raise too_large(header.width, header.height, (
            f"its {encoded_bytes} bytes would decode to {header.decoded_bytes / 2**20:.0f} MiB ({ratio:,.0f}:1, over "
            f"{MAX_COMPRESSION_RATIO}:1): a decompression bomb"))
    return header


def open_image(data: bytes | bytearray | memoryview, pil_format: str) -> Image.Image:
    """PIL's lazy open (the header only), with its failures as named errors."""
    try:
        image = Image.open(io.BytesIO(data), formats=[pil_format])
    except UnidentifiedImageError:
        raise ImageError("unsupported_format", "not an image in a supported format (JPEG, PNG, WebP, BMP)")
    except Image.DecompressionBombError:
        raise ImageError("too_large", "the image is over the pixel limit; downscale it first")
    except Exception as error:  # noqa: BLE001 - any reader failure is a bad input
        raise ImageError("decode_failed", f"cannot read the image: {error}")
    if SUPPORTED_FORMATS.get(image.format or "") is None:
        image.close()
        raise ImageError("unsupported_format", f"{image.format} images are not supported (use JPEG, PNG, WebP or BMP)")
    return image


def decode(data: bytes | bytearray | memoryview, max_pixels: int = DEFAULT_MAX_PIXELS,
           max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES) -> DecodedImage:
    """Decodes one image (the first frame of an animated one). Raises ImageError: empty,
    unsupported_format, too_large (over max_pixels, or decoding would allocate more than
    max_decoded_bytes; checked on the header, before decoding), decode_failed."""
    header = inspect(data, max_pixels)
    width, height = header.width, header.height
    if header.decoded_bytes > max_decoded_bytes:
        raise too_large(width, height, f"decoding it takes {header.decoded_bytes / 2**20:.0f} MiB, over the "
                                       f"budget of {max_decoded_bytes / 2**20:.0f} MiB")
    kind = SUPPORTED_FORMATS[header.format]
    try:
        with open_image(data, header.format) as image:
            if image.size != (width, height):
                raise ImageError("decode_failed", f"the {kind} header changed between reads")
            image.seek(0)  # animated images: the first frame only
            pixels = to_bgr(image)
    except ImageError:
        raise
    except Exception as error:  # noqa: BLE001 - truncated or corrupt data
        raise ImageError("decode_failed", f"the {kind} data is truncated or corrupt: {error}")
    return DecodedImage(pixels=pixels, width=width, height=height, format=kind)


def to_bgr(image: Image.Image) -> np.ndarray:
    """The image's pixels as an H×W×3 BGR array, each intermediate released as soon as the next exists,
    so that decoding holds at most Header.decoded_bytes: grey and 1-bit images go from their 1-byte
    pixels straight to BGR; others through PIL's RGB (4 bytes a pixel) and its 3-byte copy."""
    import cv2

    if image.mode in ("1", "L"):
        grey = np.asarray(image)  # 1 byte a pixel (a 1-bit image as 0/255)
        image.close()
        return cv2.cvtColor(grey.view(np.uint8), cv2.COLOR_GRAY2BGR)
    rgb_image = image if image.mode == "RGB" else image.convert("RGB")
    if rgb_image is not image:
        image.close()
    rgb = np.asarray(rgb_image)
    rgb_image.close()
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def split_frames(body: bytes | bytearray | memoryview, max_frames: int) -> list[memoryview]:
    """The multi-image body: each image as a 4-byte big-endian length followed by its bytes. Frames are
    views into the body, not copies. Raises ImageError: too_many_frames as soon as a frame past max_frames
    begins (the rest of the body is not walked), bad_request for framing that is cut short or a length
    that runs past the body's end."""
    view = memoryview(body)
    frames: list[memoryview] = []
    offset, end = 0, len(view)
    while offset < end:
        if len(frames) == max_frames:
            raise ImageError("too_many_frames", f"the body holds more than {max_frames} images, the most one "
                                                f"request may send; split it into several requests")
        if offset + 4 > end:
            raise ImageError("bad_request", "the body ends inside a frame header")
        length = int.from_bytes(view[offset:offset + 4], "big")
        offset += 4
        if length > end - offset:
            raise ImageError("bad_request",
                             f"frame {len(frames)} says {length} bytes but only {end - offset} remain")
        frames.append(view[offset:offset + length])
        offset += length
    return frames
