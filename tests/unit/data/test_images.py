"""The one image reader: upright, within a pixel limit, one frame, values scaled by bit depth."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import ExifTags, Image

from srdistill.data import images
from srdistill.data.images import ImageError, check_image, read_image, read_rgb
from srdistill.data.validation import find_bad_images, image_size


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)


def with_orientation(path, pixels: np.ndarray, orientation: int):
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    Image.fromarray(pixels).save(path, exif=exif.tobytes())
    return path


def header_only_png(path, width: int, height: int):
    """A valid PNG header claiming ``width`` x ``height`` RGB pixels, with almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize(
    "orientation,upright",
    [
        (2, np.fliplr),
        (3, lambda a: np.rot90(a, 2)),
        (6, lambda a: np.rot90(a, -1)),  # stored sideways: shown turned clockwise
        (8, lambda a: np.rot90(a, 1)),
    ],
)
def test_exif_orientation_is_applied_as_viewers_show_it(tmp_path, orientation, upright):
    stored = noise(4, 6)
    path = with_orientation(tmp_path / "phone.png", stored, orientation)
    assert np.array_equal(read_rgb(path)[0], upright(stored))


def test_training_checks_see_the_upright_size_of_a_rotated_jpeg(tmp_path):
    path = with_orientation(tmp_path / "phone.jpg", noise(24, 40), 6)
    assert image_size(path) == (40, 24) == read_rgb(path)[0].shape[:2]


def test_a_header_claiming_too_many_pixels_is_refused_without_decoding(tmp_path):
    path = header_only_png(tmp_path / "bomb.png", 100_000, 100_000)
    for read in (read_rgb, check_image):
        with pytest.raises(ImageError) as err:
            read(path)
        message = str(err.value)
        assert str(path) in message and "10,000,000,000 pixels" in message
        assert "178,956,970" in message and "\n" not in message


def test_images_just_over_the_limit_are_refused_too(tmp_path, monkeypatch):
    # PIL itself only warns between its limit and twice it
    monkeypatch.setattr(images, "MAX_PIXELS", 300)
    path = Image.fromarray(noise(20, 20)).save(tmp_path / "big.png") or tmp_path / "big.png"
    with pytest.raises(ImageError, match=r"big.png is 20x20 \(400 pixels\).*limit of 300"):
        read_rgb(path)


@pytest.mark.parametrize("suffix", [".gif", ".tif", ".png"])
def test_images_of_several_frames_are_refused(tmp_path, suffix):
    frames = [Image.fromarray(noise(8, 10, seed)) for seed in range(3)]
    path = tmp_path / f"anim{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    for read in (read_rgb, check_image):
        with pytest.raises(ImageError, match=r"anim\.\w+ holds 3 frames.*save the frame"):
            read(path)


def test_a_camera_mpo_reads_its_first_picture(tmp_path):
    first, preview = Image.new("RGB", (16, 16), "red"), Image.new("RGB", (16, 16), "blue")
    path = tmp_path / "camera.jpg"
    first.save(path, format="MPO", save_all=True, append_images=[preview])
    assert Image.open(path).format == "MPO"
    check_image(path)
    rgb = read_rgb(path)[0].reshape(-1, 3).mean(axis=0)
    assert rgb[0] > 200 and rgb[2] < 50  # the red picture, not the blue preview


def test_16_bit_and_float_images_are_scaled_by_their_depth(tmp_path):
    sixteen = np.array([[0, 257, 32896, 65535]], np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "deep.png")
    floats = np.array([[0.0, 0.25, 0.5, 1.0]], np.float32)
    Image.fromarray(floats, "F").save(tmp_path / "linear.tif")
    rgb, gray = read_rgb(tmp_path / "deep.png")
    assert gray and rgb[0, :, 0].tolist() == [0, 1, 128, 255] and rgb.shape == (1, 4, 3)
    rgb, gray = read_rgb(tmp_path / "linear.tif")
    assert gray and rgb[0, :, 1].tolist() == [0, 64, 128, 255]


@pytest.mark.parametrize(
    "values,mode,needles",
    [
        ([0.0, 3.5], "F", ["floating-point", "from 0.0 to 3.5", "[0, 1]"]),
        ([0.0, np.nan], "F", ["floating-point", "non-finite", "[0, 1]"]),
        ([0, 70000], "I", ["32-bit integer", "70000", "0 to 65535"]),
    ],
)
def test_values_outside_the_readable_range_are_refused(tmp_path, values, mode, needles):
    dtype = np.float32 if mode == "F" else np.int32
    path = tmp_path / "odd.tif"
    Image.fromarray(np.array([values], dtype), mode).save(path)
    for read in (read_rgb, check_image):
        with pytest.raises(ImageError) as err:
            read(path)
        assert str(path) in str(err.value) and all(n in str(err.value) for n in needles)


def test_transparency_comes_back_upright_with_the_pixels(tmp_path):
    stored = np.random.default_rng(0).integers(0, 256, (4, 6, 4), np.uint8)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    Image.fromarray(stored, "RGBA").save(tmp_path / "logo.png", exif=exif.tobytes())
    image = read_image(tmp_path / "logo.png")
    assert np.array_equal(image.rgb, np.rot90(stored[..., :3], -1))
    assert np.array_equal(image.alpha, np.rot90(stored[..., 3], -1))


def test_training_reports_what_the_reader_refuses_as_bad_images(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(noise(32, 32)).save(good)
    bomb = header_only_png(tmp_path / "bomb.png", 100_000, 100_000)
    frames = [Image.fromarray(noise(32, 32, seed)) for seed in range(2)]
    anim = tmp_path / "anim.png"
    frames[0].save(anim, save_all=True, append_images=frames[1:])
    problems = find_bad_images([good, bomb, anim], [None] * 3, scale=2, patch=8)
    assert set(problems) == {bomb, anim}
    assert "10,000,000,000 pixels" in problems[bomb] and "2 frames" in problems[anim]
    assert str(bomb) not in problems[bomb]  # the caller names the path once


def png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def with_late_exif(path, pixels: np.ndarray, orientation: int):
    """A PNG whose eXIf chunk (``orientation``) comes after the pixels, before IEND."""
    Image.fromarray(pixels).save(path)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    block = exif.tobytes()
    block = block[6:] if block.startswith(b"Exif\0\0") else block
    raw = path.read_bytes()
    end = raw.rindex(b"IEND") - 4
    path.write_bytes(raw[:end] + png_chunk(b"eXIf", block) + raw[end:])
    return path


def test_the_size_known_from_the_header_is_the_decoded_size(tmp_path):
    late = with_late_exif(tmp_path / "late.png", noise(4, 6), 6)
    tiff = tmp_path / "turned.tif"
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    Image.fromarray(np.full((4, 6), 0.5, np.float32), "F").save(tiff, exif=exif)
    for path in (late, tiff):
        with images.open_image(path) as img:
            header_size = images.upright_size(img)
        assert header_size == read_image(path).rgb.shape[:2], path.name


def damaged_png(path):
    """A PNG whose pixel data is corrupt while every chunk CRC is right."""
    Image.fromarray(noise(32, 32)).save(path)
    raw = bytearray(path.read_bytes())
    start = raw.index(b"IDAT") + 4
    length = struct.unpack(">I", raw[start - 8 : start - 4])[0]
    data = bytes(raw[start : start + length])
    data = data[:20] + bytes(b ^ 0x5A for b in data[20:])
    crc = struct.pack(">I", zlib.crc32(b"IDAT" + data) & 0xFFFFFFFF)
    raw[start : start + length + 4] = data + crc
    path.write_bytes(bytes(raw))
    return path


def half_jpeg(path):
    Image.fromarray(noise(64, 64)).save(path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


@pytest.mark.parametrize("damage", [half_jpeg, damaged_png], ids=["half jpeg", "bad idat"])
def test_a_full_check_decodes_what_verify_lets_through(tmp_path, damage):
    path = damage(tmp_path / ("photo.jpg" if damage is half_jpeg else "photo.png"))
    with pytest.raises(ImageError, match=f"cannot read image {path}"):
        check_image(path, decode=True)
    check_image(with_orientation(tmp_path / "fine.jpg", noise(8, 8), 6), decode=True)


def test_bytes_read_already_decode_as_the_file_does_and_errors_name_the_file(tmp_path):
    path = with_orientation(tmp_path / "turned.jpg", noise(16, 24), 6)
    from_bytes = read_image(path, path.read_bytes())
    np.testing.assert_array_equal(from_bytes.rgb, read_image(path).rgb)
    assert from_bytes.rgb.shape == (24, 16, 3)  # upright from the bytes too
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    messages = []
    for data in (None, bad.read_bytes()):
        with pytest.raises(ImageError) as err:
            read_rgb(bad, data)
        messages.append(str(err.value))
    assert messages[0] == messages[1] == f"cannot read image {bad}: cannot identify image file"
