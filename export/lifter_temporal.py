"""`python -m export lifter-temporal`: temporal checkpoints -> weights/lifter_temporal.onnx (+ .json).

The graph holds the whole contract (posecast/lifter.py, TemporalLifter): per-frame
normalisation and missing-joint masking, the window's frames side by side, the newest frame's
pose out. The weight matrices are stored as float16 and cast back to float32 in the graph
(the arithmetic stays float32), which halves the file; the manifest gives the exported file's
difference from the float checkpoint and its metrics, measured on the exported file itself.

Given several members (checkpoints of `fit-temporal`, or temporal lifters already exported),
the file is their **mean**: one graph that runs each member on the same window and averages
the poses. Models trained apart err apart (a windowed MLP started from the per-frame lifter,
a TCN learnt from scratch), and the mean of their poses is nearer the truth than either
(docs/lifter.md has the figures); the contract stays that of a single lifter.
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
SELECTION = ("best epoch by the climbing set's bone-corrected P-MPJPE at live rates "
             "(exact, 5 px noise, knees/ankles gone over stretches)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("members", nargs="*", type=Path,
                        default=[paths.ROOT / "runs" / "lifter-temporal" / "best.pt"],
                        help="a checkpoint of `fit-temporal`; or several checkpoints and/or exported temporal "
                             "lifters (.onnx), averaged into one model")
    parser.add_argument("--out", type=Path, default=paths.LIFTER_TEMPORAL_ONNX)
    parser.add_argument("--data", type=Path, help="sequence dataset for the manifest's metrics (default: cache)")
    parser.add_argument("--float32", dest="quantise", action="store_false", help="store float32 weights")


def run(args: argparse.Namespace) -> int:
    from training.prepare_temporal import SequenceFiles
    files = SequenceFiles(args.data) if args.data else SequenceFiles.default()
    manifest = export_temporal(args.members, args.out, files, quantise=args.quantise)
    print(json.dumps({k: manifest[k] for k in ("temporal", "parity", "metrics")}, indent=1))
    return 0


def export_temporal(members: Path | list[Path], out: Path, files=None, quantise: bool = True) -> dict:
    """Export one checkpoint, or the mean of several members (checkpoints or exported .onnx files)."""
    import onnx

    sources = [Path(members)] if isinstance(members, (str, Path)) else [Path(m) for m in members]
    if not sources:
        raise ValueError("no member to export")
    built = [_member(p, files, quantise) for p in sources]  # all read before `out` may be overwritten
    windows = {info["temporal"]["window"] for _, info in built}
    if len(windows) > 1:
        raise ValueError(f"the members have different windows {sorted(windows)}: a mean needs one window")
    if any(info["temporal"] != built[0][1]["temporal"] for _, info in built):
        # The manifest says what frame intervals the model was trained for: one answer for all members.
        raise ValueError("the members were trained for different frame rates (their manifests' 'temporal' differ)")
    if len(built) == 1:
        model, manifest = built[0]
    else:
        model = mean_of([m for m, _ in built])
        onnx.checker.check_model(model, full_check=True)
        manifest = _ensemble_manifest(sources, built)
        manifest["parity"]["mean_of_members_max_abs_mm"] = _merge_parity(model, [m for m, _ in built], windows.pop())
    _save(model, manifest, out)
    if files is not None and files.info.is_file():
        manifest["metrics"] = _metrics(out, files)
        _save(onnx.load(out), manifest, out)  # again, with the exported file's own figures
    return manifest


def _member(path: Path, files, quantise: bool) -> tuple:
    """(ONNX model, manifest) of one member: an exported temporal lifter as it is, or a checkpoint
    converted (checked against PyTorch, float16 weights unless not `quantise`)."""
    import onnx

    if path.suffix == ".onnx":
        if not path.is_file():
            raise FileNotFoundError(f"temporal lifter not found: {path}")
        model = onnx.load(path)
        meta = {p.key: p.value for p in model.metadata_props}.get("posecast")
        info = json.loads(meta) if meta else {}
        if "temporal" not in info:
            raise ValueError(f"{path} is not a posecast temporal lifter (no manifest)")
        if "members" in info:
            raise ValueError(f"{path} is already the mean of {len(info['members'])} lifters: give its members")
        return model, info
    return _from_checkpoint(path, files, quantise)


def _from_checkpoint(checkpoint: Path, files, quantise: bool) -> tuple:
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
        "inputs": _inputs(t),
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
                     "selection": SELECTION, "options": ckpt["fit_options"]},
        "metrics": None,
    }
    return model, manifest


def _inputs(t: int) -> dict:
    return {"keypoints": f"float32 [N,{t},17,2] pixels, x right, y down, Human3.6M-17 order; "
                         "oldest frame first, the newest last",
            "confidence": f"float32 [N,{t},17] in [0,1]; 0 = missing (coordinates ignored), also for "
                          "frames before the person appeared"}


def mean_of(models: list):
    """One ONNX graph running every member on the same inputs and averaging their `joints3d`."""
    import onnx
    from onnx import TensorProto, helper

    opsets = {(o.domain, o.version) for m in models for o in m.opset_import}
    if len({d for d, _ in opsets}) != len(opsets):
        raise ValueError(f"the members use different opsets {sorted(opsets)}")
    graph = helper.make_graph([], "mean_of_lifters", list(models[0].graph.input), list(models[0].graph.output))
    outputs = []
    for i, member in enumerate(models):
        if [x.name for x in member.graph.input] != [x.name for x in graph.input]:
            raise ValueError("the members' inputs differ")
        g = onnx.compose.add_prefix_graph(member.graph, f"m{i}/", rename_inputs=False)
        graph.node.extend(g.node)
        graph.initializer.extend(g.initializer)
        graph.value_info.extend(g.value_info)
        outputs.append(g.output[0].name)
    _share_constants(graph)
    graph.initializer.append(helper.make_tensor("mean_weight", TensorProto.FLOAT, [], [1.0 / len(models)]))
    graph.node.extend([helper.make_node("Sum", outputs, ["sum_of_members"], name="sum_of_members"),
                       helper.make_node("Mul", ["sum_of_members", "mean_weight"], [graph.output[0].name],
                                        name="mean_of_members")])
    return helper.make_model(graph, opset_imports=list(models[0].opset_import), ir_version=models[0].ir_version,
                             producer_name="posecast")


def _share_constants(graph) -> None:
    """Members' equal constants (the same statistics, shapes, axes) become one, so that onnxruntime's
    common-subexpression pass computes the normalisation and the hold they share once."""
    from onnx import numpy_helper

    first: dict[tuple, str] = {}
    rename: dict[str, str] = {}
    kept = []
    for init in graph.initializer:
        value = numpy_helper.to_array(init)
        key = (init.data_type, tuple(init.dims), value.tobytes())
        if key in first:
            rename[init.name] = first[key]
        else:
            first[key] = init.name
            kept.append(init)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)


def _sha256(path: Path) -> str:
    import hashlib
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _merge_parity(model, members: list, t: int) -> float:
    """Max abs difference (mm) of the merged graph from the mean of its members run alone."""
    import onnxruntime as ort

    kp, cf = _random_inputs((64, t))
    run = lambda m: ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(  # noqa: E731
        ["joints3d"], {"keypoints": kp, "confidence": cf})[0]
    diff = float(np.abs(run(model) - np.mean([run(m) for m in members], axis=0)).max())
    if diff >= 1e-3:
        raise RuntimeError(f"the merged graph differs from the mean of its members by {diff:.4f} mm")
    return round(diff, 6)


def _ensemble_manifest(sources: list[Path], built: list[tuple]) -> dict:
    infos = [info for _, info in built]
    first = infos[0]
    t = first["temporal"]["window"]
    kinds = ", ".join(f"causal {i['architecture']['arch']}" for i in infos)
    worst = max(i["parity"]["climbing_windows"]["max_abs_mm"] for i in infos)
    return {
        "model": f"posecast temporal lifter (mean of {len(infos)}: {kinds}; {t} frames)",
        "inputs": _inputs(t), "outputs": first["outputs"],
        "temporal": first["temporal"],
        "joints": first["joints"], "edges": first["edges"],
        "architecture": {"mean_of": [i["architecture"] for i in infos]},
        "weights": "; ".join(sorted({i["weights"] for i in infos})),
        "data": TEMPORAL_DATA_SOURCES, "licence": LICENCE,
        "parity": {"float_max_abs_mm": max(i["parity"]["float_max_abs_mm"] for i in infos),
                   "climbing_windows": {"max_abs_mm": worst},
                   "note": "the worst member's, each against its float PyTorch checkpoint; coordinates, mm"},
        "training": {"minutes": round(sum(i["training"]["minutes"] for i in infos), 1),
                     "selection": "each member by its own run's " + SELECTION},
        "members": [{"source": src.name, "sha256": _sha256(src), "model": i["model"], "architecture": i["architecture"],
                     "training": i["training"], "parity": i["parity"], "metrics": i["metrics"]}
                    for src, i in zip(sources, infos)],
        "metrics": None,
    }


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
