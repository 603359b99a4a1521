"""`python -m export lifter-temporal`: a temporal checkpoint -> weights/lifter_temporal.onnx (+ .json).

The graph holds the whole contract (posecast/lifter.py, TemporalLifter): per-frame
normalisation and missing-joint masking, the window's frames side by side, the newest frame's
pose out. The weight matrices are stored as float16 and cast back to float32 in the graph
(the arithmetic stays float32), which halves the file; the manifest gives the exported file's
difference from the float checkpoint and its metrics, measured on the exported file itself.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from posecast import paths
from posecast.skeleton import H36M17, H36M17_EDGES

from .lifter import LICENCE, OUTPUT, TEMPORAL_DATA_SOURCES, _parity, _random_inputs, _save, _to_onnx

log = logging.getLogger(__name__)
# Float16 weights move joints by a few hundredths of a millimetre on real poses (the figures
# are in the manifest); more means a broken export.
QUANTISED_MEAN_LIMIT_MM = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", type=Path, default=paths.ROOT / "runs" / "lifter-temporal" / "best.pt")
    parser.add_argument("--out", type=Path, default=paths.LIFTER_TEMPORAL_ONNX)
    parser.add_argument("--data", type=Path, help="sequence dataset for the manifest's metrics (default: cache)")
    parser.add_argument("--float32", dest="quantise", action="store_false", help="store float32 weights")


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
        model = half_weights(model)
        onnx.checker.check_model(model, full_check=True)
    parity = _parity(model, net, _random_inputs((256, t)))
    # Random poses are far from any body and amplify the weights' rounding; real windows say what
    # a user gets (on the climbing tracks when prepared, else the random poses).
    real = _parity(model, net, _track_windows(files, t)) if files is not None and files.info.is_file() else parity
    if real[1] >= QUANTISED_MEAN_LIMIT_MM:
        raise RuntimeError(f"the exported model differs from PyTorch by {real[1]:.2f} mm on average")
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
        "weights": "float16 storage, float32 arithmetic" if quantise else "float32",
        "data": TEMPORAL_DATA_SOURCES, "licence": LICENCE,
        "parity": {"float_max_abs_mm": round(float_parity[0], 5),
                   "random_poses": {"max_abs_mm": round(parity[0], 2), "mean_abs_mm": round(parity[1], 2)},
                   "climbing_windows": {"max_abs_mm": round(real[0], 2), "mean_abs_mm": round(real[1], 2)},
                   "note": "exported file against the float PyTorch checkpoint (float: the graph before "
                           "the float16 weights, random poses); coordinates, mm"},
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


def half_weights(model, min_size: int = 4096):
    """The large weight matrices stored as float16, cast back to float32 in the graph (onnxruntime
    folds the casts when it loads the file: the arithmetic stays float32). Int8 weights were tried:
    a quarter of the size, but 5 mm mean difference on real poses (a few tenths of a millimetre
    after Procrustes): the rounding of these heavy-tailed weights adds up coherently."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    nodes = []
    for init in list(model.graph.initializer):
        if init.data_type != TensorProto.FLOAT or np.prod(init.dims) < min_size:
            continue
        w = numpy_helper.to_array(init)
        model.graph.initializer.remove(init)
        model.graph.initializer.append(numpy_helper.from_array(w.astype(np.float16), f"{init.name}.fp16"))
        nodes.append(helper.make_node("Cast", [f"{init.name}.fp16"], [init.name], to=TensorProto.FLOAT,
                                      name=f"cast_{init.name}"))
    for node in reversed(nodes):
        model.graph.node.insert(0, node)
    return model


def _track_windows(files, t: int, step: int = 3) -> tuple:
    """Windows of the climbing validation tracks (every `step`-th frame at 30 fps)."""
    from training.temporal_eval import windows_of

    tracks = files.load_tracks("climb") or files.load_tracks("bandai")
    kp, cf = windows_of(tracks.keypoints, tracks.confidence, tracks.track, t)
    return np.ascontiguousarray(kp[::step]), np.ascontiguousarray(cf[::step])


def _metrics(path: Path, files) -> dict:
    """{set: {condition: {metric: value}}} of the exported file on the validation tracks at the live
    rate (all climbing tracks; about 6,000 Bandai frames)."""
    from posecast.lifter import TemporalLifter
    from training.temporal_eval import CONDITIONS, evaluate_tracks

    lifter = TemporalLifter(path, device="cpu")
    rows = evaluate_tracks(lifter, files, conditions=CONDITIONS, window=lifter.window, frames=6000)
    out: dict = {}
    for r in rows:
        out.setdefault(r["set"], {})[r["condition"]] = {
            m: round(r[m], 2 if m == "accel" else 1) for m in ("p_mpjpe", "bone_p_mpjpe", "limb_deg", "accel", "lag_mm")}
    return out
