"""`python -m export lifter-temporal`: a temporal checkpoint -> weights/lifter_temporal.onnx (+ .json).

The graph holds the whole contract (posecast/lifter.py, TemporalLifter): per-frame
normalisation and missing-joint masking, the window's frames side by side, the newest frame's
pose out. The weight matrices are stored as int8 with a scale per output row and turned back
into float in the graph (weight-only quantisation: the arithmetic stays float), which keeps
the file at a quarter of its float size; the manifest gives the exported file's difference
from the float checkpoint and its metrics, measured on the exported file itself.
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

from posecast import paths
from posecast.skeleton import H36M17, H36M17_EDGES

from .lifter import LICENCE, OUTPUT, TEMPORAL_DATA_SOURCES, _parity, _random_inputs, _save, _to_onnx

log = logging.getLogger(__name__)
# Int8 weights move joints by a few millimetres at most on average (the figure is in the manifest); more means a broken export.
QUANTISED_MEAN_LIMIT_MM = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", type=Path, default=paths.ROOT / "runs" / "lifter-temporal" / "best.pt")
    parser.add_argument("--out", type=Path, default=paths.LIFTER_TEMPORAL_ONNX)
    parser.add_argument("--data", type=Path, help="sequence dataset for the manifest's metrics (default: cache)")
    parser.add_argument("--float", dest="quantise", action="store_false", help="keep float32 weights")


def run(args: argparse.Namespace) -> int:
    from training.prepare_temporal import SequenceFiles
    files = SequenceFiles(args.data) if args.data else SequenceFiles.default()
    manifest = export_temporal(args.checkpoint, args.out, files, quantise=args.quantise)
    print(json.dumps({k: manifest[k] for k in ("temporal", "parity", "metrics")}, indent=1))
    return 0


def export_temporal(checkpoint: Path, out: Path, files=None, quantise: bool = True) -> dict:
    import onnx
    import torch

    from training.temporal_model import load_temporal

    net, ckpt = load_temporal(checkpoint)
    t = net.opts.window
    model = _to_onnx(net, (torch.zeros(2, t, 17, 2), torch.ones(2, t, 17)))
    float_parity = _parity(model, net, _random_inputs((256, t)))
    if float_parity[0] >= 0.1:
        raise RuntimeError(f"ONNX and PyTorch differ by {float_parity[0]:.4f} mm")
    if quantise:
        model = int8_weights(model)
        onnx.checker.check_model(model, full_check=True)
    parity = _parity(model, net, _random_inputs((256, t)))
    if parity[1] >= QUANTISED_MEAN_LIMIT_MM:
        raise RuntimeError(f"the exported model differs from PyTorch by {parity[1]:.2f} mm on average")
    wopts = ckpt["window_options"]
    manifest = {
        "model": f"posecast temporal lifter (causal {net.opts.arch}, {t} frames)",
        "inputs": {"keypoints": f"float32 [N,{t},17,2] pixels, x right, y down, Human3.6M-17 order; "
                                "oldest frame first, the newest last",
                   "confidence": f"float32 [N,{t},17] in [0,1]; 0 = missing (coordinates ignored), also for "
                                 "frames before the person appeared"},
        "outputs": {"joints3d": f"the newest frame's pose: {OUTPUT}"},
        "temporal": {"window": t, "causal": True, "frame_times_input": False,
                     "rates_fps": list(wopts["rate"]["fps"]),
                     "interval_jitter": wopts["rate"]["jitter"],
                     "drops": {"window_probability": wopts["rate"]["drop"], "max_rate": wopts["rate"]["drop_rate"]},
                     "trained_for": "the last T frames the server processed, at 10-30 fps drawn per window, "
                                    "each interval up to 15 % uneven, frames dropped in a quarter of the "
                                    "windows; no frame times are input"},
        "joints": list(H36M17), "edges": [list(e) for e in H36M17_EDGES],
        "architecture": ckpt["model_options"],
        "weights": "int8 per output row, dequantised in the graph (weight-only)" if quantise else "float32",
        "data": TEMPORAL_DATA_SOURCES, "licence": LICENCE,
        "parity": {"float_max_abs_mm": round(float_parity[0], 5), "max_abs_mm": round(parity[0], 3),
                   "mean_abs_mm": round(parity[1], 3),
                   "note": "exported file against the PyTorch checkpoint, random poses with missing joints"},
        "training": {"epochs": ckpt["epoch"], "minutes": round(ckpt["train_seconds"] / 60, 1),
                     "best_score_mm": round(float(ckpt["best_score"]), 1),
                     "initialised_from": ckpt["fit_options"].get("init"),
                     "selection": "best epoch by the climbing set's bone-corrected P-MPJPE at live rates "
                                  "(exact, 5 px noise, knees/ankles gone over stretches)",
                     "options": ckpt["fit_options"]},
        "metrics": None,
    }
    _save(model, manifest, out)
    if files is not None and files.info.is_file():
        manifest["metrics"] = _metrics(out, files)
        _save(onnx.load(out), manifest, out)  # again, with the exported file's own figures
    return manifest


def int8_weights(model, min_size: int = 4096):
    """The Gemm weight matrices stored as int8 with one scale per row or column, restored to float
    by DequantizeLinear in the graph (weight-only: the arithmetic stays float, so the error is the
    weights' rounding alone)."""
    import numpy as np
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    targets = {n.input[1] for n in model.graph.node if n.op_type == "Gemm" and n.input[1] in inits
               and any(a.name == "transB" and a.i == 1 for a in n.attribute)}
    nodes = []
    for name in sorted(targets):
        w = numpy_helper.to_array(inits[name])
        if w.ndim != 2 or w.size < min_size:
            continue
        # A scale per row or per column, whichever rounds better: the stem's columns differ by
        # orders of magnitude between frames (the older frames' weights grow from zero).
        best = None
        for axis in (0, 1):
            scale = np.maximum(np.abs(w).max(1 - axis), 1e-12) / 127.0
            shape = (-1, 1) if axis == 0 else (1, -1)
            q = np.clip(np.rint(w / scale.reshape(shape)), -127, 127).astype(np.int8)
            err = np.linalg.norm(q * scale.reshape(shape) - w)
            if best is None or err < best[0]:
                best = (err, axis, scale, q)
        _, axis, scale, q = best
        model.graph.initializer.remove(inits[name])
        model.graph.initializer.extend([numpy_helper.from_array(q, f"{name}.int8"),
                                        numpy_helper.from_array(scale.astype(np.float32), f"{name}.scale"),
                                        numpy_helper.from_array(np.zeros(len(scale), np.int8), f"{name}.zero")])
        nodes.append(helper.make_node("DequantizeLinear", [f"{name}.int8", f"{name}.scale", f"{name}.zero"], [name],
                                      axis=axis, name=f"dequantize_{name}"))
    for node in reversed(nodes):
        model.graph.node.insert(0, node)
    return model


def _metrics(path: Path, files) -> dict:
    """{set: {condition: {metric: value}}} of the exported file on the full validation tracks, live rate."""
    from posecast.lifter import TemporalLifter
    from training.temporal_eval import CONDITIONS, evaluate_tracks

    lifter = TemporalLifter(path, device="cpu")
    rows = evaluate_tracks(lifter, files, conditions=CONDITIONS, window=lifter.window)
    out: dict = {}
    for r in rows:
        out.setdefault(r["set"], {})[r["condition"]] = {
            m: round(r[m], 2 if m == "accel" else 1) for m in ("p_mpjpe", "bone_p_mpjpe", "limb_deg", "accel", "lag_mm")}
    return out
