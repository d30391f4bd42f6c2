"""``srdistill-upscale``: super-resolve your own images with a trained or released network."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from srdistill.cli.app import one_line

DESCRIPTION = """\
Upscale images (files, or folders searched recursively) into OUT_DIR as lossless PNGs named
like the inputs (photo.jpg -> OUT_DIR/photo.png; files found in a folder keep their sub-folders).

--ckpt is a train.py run checkpoint, an export of srdistill, a weights file of one of
srdistill's architectures (the released SPAN files, the official EDSR / RCAN / SwinIR layouts),
zoo:<name> from the teacher zoo, or any super-resolution checkpoint spandrel recognises
(pip install 'srdistill[spandrel]'). The architecture is read from the file; give --model (a
name of conf/model, or spandrel) for a file that does not tell it.

An output never replaces an input: an output path that is an input file (also through a
symlink or a hard link) is refused before anything is written, and a folder search skips
OUT_DIR when it lies inside the folder, so earlier outputs are not upscaled again. Nor does an
output replace a file upscale did not write: every PNG it writes is marked (PNG text
Software=srdistill-upscale), and an output path holding any other file is refused before
anything is upscaled; running again into the same OUT_DIR rewrites its own earlier outputs.
Every input is decoded once before any is upscaled, so a damaged file is refused before
anything is written.

Images are read as training reads them: EXIF orientation applied (a sideways-stored phone photo
comes out upright); 16-bit images scaled to 8 bits (value / 257, rounded); float images read on
[0, 1] and refused outside it; animations and multi-page files refused (save the frame you
want); images over 178,956,970 pixels (PIL's limit) refused from their header. Single-channel
images are upscaled as RGB and written as RGB. Transparency: the RGB channels go through the
network; the alpha channel is upscaled with MATLAB-style bicubic and re-attached (RGBA PNG).
"""

MARK = ("Software", "srdistill-upscale")  # PNG tEXt written before the pixels: read from the header
EXAMPLE = "example: srdistill-upscale photos/ -o upscaled/ --ckpt span_tiny_ch26_x4.pth"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="srdistill-upscale",
        description=DESCRIPTION,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help="image files and folders")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="created if missing")
    p.add_argument(
        "--ckpt", help="weights: run checkpoint, export, released or official file, zoo:<name>"
    )
    p.add_argument(
        "--model", help="architecture (a conf/model name, or spandrel) when --ckpt does not tell"
    )
    p.add_argument("--sha256", help="the SHA-256 you trust for --ckpt (a zoo entry without one)")
    p.add_argument("--scale", type=int, help="upscaling factor (default: read from --ckpt)")
    p.add_argument("--tile", type=int, help="LR tile size for large images (default: whole)")
    p.add_argument(
        "--tile-overlap", type=int, default=32, help="LR pixels of context per tile (default 32)"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps... (default cpu)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    # imported after parsing so that --help and option errors come without loading torch
    from srdistill.cli.common import USER_ERRORS

    try:
        written = run(args)
    except USER_ERRORS as err:
        print(f"error: {one_line(err) or type(err).__name__}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {len(written)} image(s) to {args.output}")


def run(args: argparse.Namespace) -> list[Path]:
    """Check everything cheap first, then load the network once and upscale every image."""
    import torch

    from srdistill.eval.tiling import check_tiling
    from srdistill.models.load import check_model_name

    check_model_name(args.model, "--model")
    if args.scale is not None and args.scale < 1:
        raise ValueError(f"--scale {args.scale}: give a positive factor (2, 3, 4, 8)")
    if args.tile is not None and args.tile < 1 or args.tile_overlap < 0:
        raise ValueError("--tile must be positive and --tile-overlap 0 or more (LR pixels)")
    if not args.output:
        raise ValueError("-o/--output is empty; give the folder to write the upscaled images to")
    device = _device(args.device, torch)
    check_tiling(args.tile, args.tile_overlap)
    # the network before the images: plan() creates the output folder, and a broken --ckpt
    # must leave nothing behind; loading weights costs seconds, upscaling is the long part
    model, scale = _network(args)
    jobs = plan(args.inputs, Path(args.output))
    model = model.to(device)
    written = []
    for source, target in _progress(jobs):
        written.append(upscale_file(model, source, target, scale, device, args))
    return written


def _device(name: str, torch):
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device {name}: {one_line(err)}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device is available here; use --device cpu")
    return device


def _network(args):
    from srdistill.models.detect import config_args
    from srdistill.models.registry import build_from_record

    if args.ckpt is None:
        if args.model != "bicubic":
            raise ValueError("give --ckpt with the weights to use (only --model bicubic has none)")
        return build_from_record("bicubic", config_args("bicubic", args.scale), None), (
            args.scale or 4
        )
    from srdistill.models.load import load_network

    loaded = load_network(args.ckpt, args.model, args.scale, option="--ckpt", sha256=args.sha256)
    print(f"network: {loaded.description}")
    return loaded.network, loaded.scale


def plan(inputs: list[str], out_dir: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs, every output name distinct, none of them an input file or a file
    upscale did not write, every one writable, and every input decoded once: all known to work
    before the first image is upscaled. Decoding twice costs little beside the network."""
    from srdistill.data.images import check_image
    from srdistill.outputs import ensure_writable_dir, ensure_writable_file

    jobs: list[tuple[Path, Path]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = _images_in(item, out_dir)
            jobs += [(p, out_dir / p.relative_to(item).with_suffix(".png")) for p in found]
        elif item.is_file():
            jobs.append((item, out_dir / f"{item.stem}.png"))
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    _check_targets(jobs, out_dir)
    ensure_writable_dir(out_dir, "-o/--output")
    for _, target in jobs:
        _refuse_foreign(target)
        # also probes the temporary name write_atomic uses (a name too long fails here)
        ensure_writable_file(target, "-o/--output")
    for source, _ in jobs:
        check_image(source, decode=True)
    return jobs


def _images_in(folder: Path, out_dir: Path) -> list[Path]:
    """The images below ``folder``; those in ``out_dir``, when it lies inside ``folder``, are
    earlier outputs and left out."""
    from srdistill.data.images import IMAGE_SUFFIXES

    root, out = folder.resolve(), out_dir.resolve()
    skipped = out if out != root and out.is_relative_to(root) else None
    found = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not (skipped and p.resolve().is_relative_to(skipped))
    )
    if not found:
        raise FileNotFoundError(f"{folder}: no PNG/JPEG/BMP images in this folder")
    return found


def _check_targets(jobs: list[tuple[Path, Path]], out_dir: Path) -> None:
    """Refuse two inputs written to one output, and an output that is an input file."""
    inputs = {source.resolve(): source for source, _ in jobs}
    by_inode = {_inode(source): source for source, _ in jobs}
    seen: dict[Path, Path] = {}
    for source, target in jobs:
        if target in seen:
            raise ValueError(
                f"{seen[target]} and {source} would both be written to {target}; rename one"
            )
        seen[target] = source
        # resolve() sees through symlinks, the inode through hard links
        victim = inputs.get(target.resolve()) or (target.exists() and by_inode.get(_inode(target)))
        if victim:
            raise ValueError(
                f"-o/--output: {target} would overwrite the input {victim}; give an output "
                f"folder that holds no input image (e.g. -o {out_dir / 'upscaled'})"
            )


def _refuse_foreign(target: Path) -> None:
    """An existing ``target`` is replaced only when it is one of upscale's own marked PNGs."""
    if not target.exists() and not target.is_symlink():
        return
    from PIL import Image

    try:
        with Image.open(target) as img:
            ours = img.format == "PNG" and img.info.get(MARK[0]) == MARK[1]
    except Exception:  # noqa: BLE001 - anything unreadable is not ours either
        ours = False
    if not ours:
        raise ValueError(
            f"-o/--output: {target} already exists and was not written by srdistill-upscale; "
            "give another -o folder, or remove that file"
        )


def _inode(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_dev, stat.st_ino


def _progress(jobs):
    from tqdm import tqdm

    return tqdm(jobs, desc="upscaling", unit="image", file=sys.stderr, disable=len(jobs) < 2)


def upscale_file(model, source: Path, target: Path, scale: int, device, args) -> Path:
    """One image through ``model`` (tiled when asked), written as a lossless PNG."""
    import numpy as np
    import torch
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from srdistill.data.images import read_image, to_tensor
    from srdistill.data.matlab_bicubic import imresize
    from srdistill.eval.tiling import tiled_forward
    from srdistill.outputs import write_atomic

    image = read_image(source)
    lq = to_tensor(image.rgb).unsqueeze(0).to(device)
    with torch.no_grad():
        sr = tiled_forward(model, lq, scale, args.tile, args.tile_overlap, to_uint8=True)
    pixels = sr[0].permute(1, 2, 0).numpy()
    if image.alpha is not None:
        plane = imresize(image.alpha.astype(np.float64) / 255.0, out_hw=pixels.shape[:2])
        alpha_up = np.clip(np.round(plane * 255.0), 0, 255).astype(np.uint8)
        pixels = np.concatenate([pixels, alpha_up[..., None]], axis=2)
    buffer = io.BytesIO()
    mark = PngInfo()
    mark.add_text(*MARK)
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", pnginfo=mark)
    return write_atomic(target, lambda f: f.write(buffer.getvalue()), "-o/--output")


if __name__ == "__main__":
    main()
