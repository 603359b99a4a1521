"""`python -m export lifter`: a trained checkpoint -> weights/lifter.onnx (+ weights/lifter.json).

The graph holds the whole contract (see posecast/lifter.py): missing-joint masking, the
pose's own centre/scale normalisation, standardisation and the pelvis at 0. The export is
checked with onnx.checker and against PyTorch (max abs difference in mm); the manifest (also
stored as the ONNX metadata key `posecast`) names joints, edges, data and licences, metrics
and training time.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from posecast import paths
from posecast.skeleton import H36M17, H36M17_EDGES

log = logging.getLogger(__name__)
PARITY_LIMIT_MM = 0.1

DATA_SOURCES = [
    {"name": "Bandai Namco Research Motion Dataset 1 and 2", "use": "training and held-out validation",
     "licence": "CC BY-NC 4.0", "citation": "Kobayashi et al., Motion Capture Dataset for Practical Use of AI-based "
     "Motion Editing and Stylization, 2023, arXiv:2306.08861; Bandai Namco Research Inc."},
    {"name": "CMU Graphics Lab Motion Capture Database (subjects 102, 131; cgspeed BVH)", "use": "training",
     "licence": "CMU terms: free for research and products, not to be resold as data",
     "citation": "The data used in this project was obtained from mocap.cs.cmu.edu. "
                 "The database was created with funding from NSF EIA-0196217."},
    {"name": "holosoma-retargeting 0.1.0 climbing demo mocap", "use": "cross-dataset validation only",
     "licence": "Apache-2.0"},
]
CMU_TERMS = DATA_SOURCES[1]["licence"]
# The temporal lifter also learnt from these (and from the per-frame lifter it started from).
TEMPORAL_DATA_SOURCES = DATA_SOURCES[:2] + [
    {"name": "CMU Graphics Lab Motion Capture Database (subjects 60 and 61, salsa; cgspeed BVH)", "use": "training",
     "licence": CMU_TERMS, "citation": DATA_SOURCES[1]["citation"]},
    {"name": "CMU Graphics Lab Motion Capture Database (floor and acrobatic takes of subjects 77, 87, 88, 90, 111, "
             "113, 127, 139, 140; cgspeed BVH)", "use": "training (oversampled)",
     "licence": CMU_TERMS, "citation": DATA_SOURCES[1]["citation"]},
] + DATA_SOURCES[2:]
LICENCE = ("Weights trained on the Bandai Namco Research Motion Dataset inherit its CC BY-NC 4.0 terms: "
           "non-commercial use only, with attribution.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", type=Path, default=paths.ROOT / "runs" / "lifter" / "best.pt")
    parser.add_argument("--out", type=Path, default=paths.LIFTER_ONNX)
    parser.add_argument("--data", type=Path, help="prepared dataset for the manifest's metrics (default: cache)")


def run(args: argparse.Namespace) -> int:
    from training.dataset import DatasetFiles
    files = DatasetFiles(args.data) if args.data else DatasetFiles.default()
    manifest = export(args.checkpoint, args.out, files)
    print(json.dumps({k: manifest[k] for k in ("parity_max_abs_mm", "metrics", "training")}, indent=1))
    return 0


def export(checkpoint: Path, out: Path, files=None) -> dict:
    import torch

    from training.evaluate import evaluate, summary, torch_predictor
    from training.model import load_checkpoint

    net, ckpt = load_checkpoint(checkpoint)
    net.eval()
    model = _to_onnx(net, (torch.zeros(2, 17, 2), torch.ones(2, 17)))
    metrics = None
    if files is not None and files.stats.is_file():
        metrics = summary(evaluate(torch_predictor(net), files))
    manifest = {
        "model": "posecast lifter (Martinez et al. 2017 residual MLP)",
        "inputs": {"keypoints": "float32 [N,17,2] pixels, x right, y down, Human3.6M-17 order",
                   "confidence": "float32 [N,17] in [0,1]; 0 = missing (coordinates ignored)"},
        "outputs": {"joints3d": OUTPUT},
        "joints": list(H36M17), "edges": [list(e) for e in H36M17_EDGES],
        "architecture": ckpt["model_options"],
        "data": DATA_SOURCES, "licence": LICENCE,
        "metrics": metrics, "metrics_note": "mean mm / degrees on validation sets built by `python -m training prepare`",
        "training": {"epochs": ckpt["epoch"], "minutes": round(ckpt["train_seconds"] / 60, 1),
                     **_whole_run(checkpoint),
                     "continued_from": _lineage(ckpt),
                     "best_score_mm": round(float(ckpt["best_score"]), 1),
                     "selection": "best epoch by climbing-set bone-corrected P-MPJPE (cross-dataset)",
                     "options": ckpt["fit_options"]},
    }
    example = _random_inputs((512,))
    manifest["parity_max_abs_mm"] = _parity(model, net, example)[0]
    if manifest["parity_max_abs_mm"] >= PARITY_LIMIT_MM:
        raise RuntimeError(f"ONNX and PyTorch differ by {manifest['parity_max_abs_mm']:.4f} mm")
    _save(model, manifest, out)
    return manifest


OUTPUT = "float32 [N,17,3] mm, pelvis-relative, camera axes (x right, y down, z away)"


def _to_onnx(net, example: tuple):
    """The module as a checked ONNX model with a dynamic batch (the first axis)."""
    import onnx
    import torch

    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(net, example, dynamo=True, external_data=False,
                                input_names=["keypoints", "confidence"], output_names=["joints3d"],
                                dynamic_shapes={"keypoints": {0: batch}, "confidence": {0: batch}})
    model = program.model_proto
    onnx.checker.check_model(model, full_check=True)
    return model


def _save(model, manifest: dict, out: Path) -> None:
    """The manifest into the ONNX metadata (key `posecast`) and beside it as .json."""
    import onnx

    out.parent.mkdir(parents=True, exist_ok=True)
    for old in [p for p in model.metadata_props if p.key == "posecast"]:
        model.metadata_props.remove(old)
    entry = model.metadata_props.add()
    entry.key, entry.value = "posecast", json.dumps(manifest)
    onnx.save(model, out)
    out.with_suffix(".json").write_text(json.dumps(manifest, indent=1) + "\n")
    log.info("wrote %s (%.1f MB) and %s", out, out.stat().st_size / 1e6, out.with_suffix(".json").name)


def _whole_run(checkpoint: Path) -> dict:
    """The whole run's length, from last.pt beside the exported checkpoint (if it is there)."""
    import torch

    last = checkpoint.with_name("last.pt")
    if last == checkpoint or not last.is_file():
        return {}
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    return {"run_epochs": ckpt["epoch"], "run_minutes": round(ckpt["train_seconds"] / 60, 1),
            "samples_per_epoch": int(ckpt["fit_options"]["samples_per_epoch"]),
            "torch_threads": ckpt["fit_options"]["threads"]}


def _lineage(ckpt: dict) -> list[dict]:
    """The checkpoints a fine-tuned run started from (`fit --init`), newest first, while they exist."""
    import torch

    chain: list[dict] = []
    init = ckpt.get("fit_options", {}).get("init", "None")
    while init not in ("None", "") and Path(init).is_file() and len(chain) < 10:
        parent = torch.load(init, map_location="cpu", weights_only=False)
        chain.append({"checkpoint": init,
                      "epoch": parent["epoch"], "minutes": round(parent["train_seconds"] / 60, 1)})
        init = parent.get("fit_options", {}).get("init", "None")
    return chain


def _random_inputs(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Random poses (pixels) of the given leading shape, a fifth of the joints missing."""
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 1280, shape + (17, 2)).astype(np.float32)
    cf = (rng.random(shape + (17,)) > 0.2).astype(np.float32)
    return kp, cf


def _parity(model, net, inputs: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    """Max and mean abs difference (mm) between onnxruntime and PyTorch on the given inputs."""
    import onnxruntime as ort
    import torch

    kp, cf = inputs
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(["joints3d"], {"keypoints": kp, "confidence": cf})[0]
    with torch.no_grad():
        want = net(torch.from_numpy(kp), torch.from_numpy(cf)).numpy()
    return float(np.abs(got - want).max()), float(np.abs(got - want).mean())
