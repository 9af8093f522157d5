"""Image decoding: every bad input is a named error, every good one keeps its true size."""
import io

import numpy as np
import pytest
from PIL import Image

from raylan_detect.codec import ImageError, decode, split_frames


def encode(format: str, width: int = 64, height: int = 48) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format)
    return buffer.getvalue()


@pytest.mark.parametrize("format,kind", [("JPEG", "jpeg"), ("PNG", "png"), ("WEBP", "webp"), ("BMP", "bmp")])
def test_supported_formats_keep_their_size(format, kind):
    image = decode(encode(format, 64, 48))
    assert (image.width, image.height, image.format) == (64, 48, kind)
    assert image.pixels.shape == (48, 64, 3)


def test_pixels_are_bgr():
    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), (255, 0, 0), dtype=np.uint8)).save(buffer, format="PNG")
    assert decode(buffer.getvalue()).pixels[0, 0].tolist() == [0, 0, 255]


@pytest.mark.parametrize("data,code", [
    (b"", "empty"),
    (b"this is a text file named .jpg\n", "unsupported_format"),
    (encode("JPEG", 256, 256)[:600], "decode_failed"),
])
def test_bad_inputs_are_named(data, code):
    with pytest.raises(ImageError) as error:
        decode(data)
    assert error.value.code == code


def test_unsupported_format_is_named():
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="GIF")
    with pytest.raises(ImageError) as error:
        decode(buffer.getvalue())
    assert error.value.code == "unsupported_format"
    assert "GIF" in error.value.message


def test_huge_image_is_refused_before_decoding():
    data = encode("PNG", 400, 300)
    with pytest.raises(ImageError) as error:
        decode(data, max_pixels=100_000)
    assert error.value.code == "too_large"
    assert "400×300" in error.value.message


def test_frames_round_trip_and_reject_truncation():
    frames = [b"a", b"", b"xyz" * 100]
    body = b"".join(len(f).to_bytes(4, "big") + f for f in frames)
    assert [bytes(f) for f in split_frames(body, max_frames=3)] == frames
    for cut in (body[:-1], body + b"\0\0"):
        with pytest.raises(ImageError) as error:
            split_frames(cut, max_frames=4)
        assert error.value.code == "bad_request"
