"""`python -m benchmarks streams`: many streams at once, in-process inference beside Triton with dynamic batching.

For each N (default 1, 2, 4, 8) N aiortc clients stream real footage (640x480, 30 fps, frame ids drawn in):
  in-process   one pose server (its own process) running the networks itself, one inference worker
  triton xS    S pose servers (own processes) sharing one local Triton (`posecast triton`: the bundled
               server, Python backend running onnxruntime), clients spread over the servers
Per run: per-stream processed fps, p50/p95 latency (pose arrival - frame handed to the encoder), total
poses/s, failed Triton requests, the batch sizes Triton formed (its metrics: inferences / executions, and
its statistics endpoint's count per batch size), CPU cores used by the servers and Triton.

First (unless --no-pad-check) what the fixed detector input sizes cost: the same crops through the detector
with the width following the crop (in-process default) and padded up to the bucket widths (the Triton
default); and the network's time per frame at batch 1, 4 and 8 on this machine.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing as mp
import os
import re
import statistics
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.latency import CLIP, _client, _cpu_seconds, _pct, _serve, _summary
from posecast import paths
from posecast.detector import Detector, DetectorOptions
from posecast.inference import DEFAULT_DETECTOR_ASPECTS, DETECTOR, LIFTER, PaddedDetectorSession, bucket_widths
from posecast.pipeline import PipelineOptions, PoseEstimator
from posecast.runtime import create_session
from server.client import clip_frames


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clients", default="1,2,4,8", help="numbers of concurrent streams (default 1,2,4,8)")
    p.add_argument("--seconds", type=float, default=15.0, help="measured seconds per run (default 15)")
    p.add_argument("--modes", default="inprocess,triton,triton2",
                   help="inprocess, triton (1 pose server), triton2 (2 pose servers) (default all three)")
    p.add_argument("--clip", type=Path, default=None, help=f"footage to loop (default ../shared/{CLIP})")
    p.add_argument("--size", default="640x480", help="frame size sent (default 640x480)")
    p.add_argument("--fps", type=float, default=30.0, help="frames per second sent (default 30)")
    p.add_argument("--input-height", type=int, default=PipelineOptions.input_height)
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads, in process and in Triton (default 1)")
    p.add_argument("--max-batch-sizes", default="1,8",
                   help="Triton's max batch sizes, one Triton run each (default 1,8: `posecast triton`'s CPU "
                        "default, and batching)")
    p.add_argument("--queue-delay-us", type=int, default=2000, help="Triton's batching delay (default 2000)")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    p.add_argument("--triton-host", default=None, metavar="HOST",
                   help="use the Triton already serving on HOST (gRPC 8001, HTTP 8000, metrics 8002; e.g. the "
                        "official server with `python -m export triton`) instead of starting `posecast triton`; "
                        "its CPU time is then not counted")
    p.add_argument("--no-pad-check", dest="pad_check", action="store_false", help="skip the padding cost check")
    p.add_argument("--pad-frames", type=int, default=150, help="frames of the padding check (default 150)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")


# ---------------------------------------------------------------------------------------------- padding cost

def pad_check(clip: Path, height: int, frames: int) -> dict:
    """The same frames and crops through the detector with exact widths and with padded bucket widths."""
    estimator = PoseEstimator(PipelineOptions(device="cpu", threads=1, input_height=height, smoothing=None))
    stream = estimator.new_stream()
    session = create_session(paths.DETECTOR_ONNX, "cpu", threads=1)
    widths = bucket_widths(height, DEFAULT_DETECTOR_ASPECTS)
    exact = Detector(DetectorOptions(input_height=height, track=False), session=session)
    padded = Detector(DetectorOptions(input_height=height, track=False), session=PaddedDetectorSession(session, widths))
    shifts, only_one, both, people_diff = [], 0, 0, 0
    times: dict[str, list[float]] = {"exact": [], "padded": []}
    for i, frame in enumerate(itertools.islice(clip_frames(clip, loop=False), frames)):
        crop = stream(frame, i / 30).crop  # the tracked crop the live server would use
        crop = tuple(int(v) for v in crop)
        found = {}
        for name, det in (("exact", exact), ("padded", padded)):
            image, box = det.preprocess(frame, crop)
            t0 = time.perf_counter()
            heatmaps, pafs = det.session.run(["heatmaps", "pafs"], {"image": image})
            times[name].append((time.perf_counter() - t0) * 1e3)
            found[name] = det.postprocess(heatmaps[0], pafs[0], box)
        (ka, ca, _), (kb, cb, _) = found["exact"], found["padded"]
        people_diff += len(ka) != len(kb)
        if len(ka) and len(kb):  # the best-scoring person of each (the main person on this footage)
            seen_a, seen_b = ca[0] > 0, cb[0] > 0
            both += int((seen_a & seen_b).sum())
            only_one += int((seen_a ^ seen_b).sum())
            shifts += np.linalg.norm(ka[0] - kb[0], axis=-1)[seen_a & seen_b].tolist()
    return {"frames": frames, "widths": list(widths), "exact_network_ms": statistics.fmean(times["exact"]),
            "padded_network_ms": statistics.fmean(times["padded"]),
            "keypoint_shift_px_mean": statistics.fmean(shifts) if shifts else float("nan"),
            "keypoint_shift_px_p95": _pct(shifts, 95), "joints_found_by_one_only": only_one,
            "joints_found_by_both": both, "frames_with_other_people_count": people_diff}


def batch_cost(height: int, reps: int = 6) -> dict[int, float]:
    """Detector network ms per frame at batch 1, 4 and 8 in process (a 3:4 crop): what batching gains here."""
    session = create_session(paths.DETECTOR_ONNX, "cpu", threads=1)
    width = bucket_widths(height, (0.75,))[0]
    images = {n: np.random.default_rng(0).uniform(0, 255, (n, 3, height, width)).astype(np.float32)
              for n in (1, 4, 8)}
    times: dict[int, list[float]] = {n: [] for n in images}
    for _ in range(reps):  # interleaved, so that the machine's load falls on every batch size alike
        for n, image in images.items():
            t0 = time.perf_counter()
            session.run(None, {"image": image})
            times[n].append((time.perf_counter() - t0) * 1e3 / n)
    return {n: statistics.median(v[1:]) for n, v in times.items()}  # the first run of each allocates


def print_pad_check(r: dict) -> None:
    print(f"\n== detector input padded to widths {r['widths']} vs width following the crop "
          f"({r['frames']} frames, tracked crops)")
    print(f"network ms      exact {r['exact_network_ms']:.1f}   padded {r['padded_network_ms']:.1f} "
          f"(+{100 * (r['padded_network_ms'] / r['exact_network_ms'] - 1):.0f} %)")
    print(f"main person     keypoint shift mean {r['keypoint_shift_px_mean']:.2f} px, p95 "
          f"{r['keypoint_shift_px_p95']:.2f} px; joints found by one only {r['joints_found_by_one_only']} of "
          f"{r['joints_found_by_both'] + r['joints_found_by_one_only']}; frames with a different people count "
          f"{r['frames_with_other_people_count']}")


# ------------------------------------------------------------------------------------------------- streams

def tree_cpu_seconds(root: int) -> float:
    """CPU time of a process and all its descendants (Triton and its backend stubs)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    family, changed = {root}, True
    while changed:
        grown = family | {p for p, pp in parents.items() if pp in family}
        changed, family = grown != family, grown
    total = 0.0
    for pid in family:
        try:
            total += _cpu_seconds(pid)
        except OSError:
            pass
    return total


class TritonStats:
    """Counters from Triton's metrics endpoint and batch sizes from its statistics endpoint."""

    def __init__(self, metrics_url: str, http: str) -> None:
        self.metrics_url, self.http = metrics_url, http

    def snapshot(self) -> dict:
        text = urllib.request.urlopen(self.metrics_url, timeout=5).read().decode()
        out: dict = {}
        for model in (DETECTOR, LIFTER):
            for name in ("nv_inference_count", "nv_inference_exec_count", "nv_inference_request_success",
                         "nv_inference_request_failure", "nv_inference_queue_duration_us"):
                m = re.search(rf'^{name}{{model="{model}",version="1"}} (\S+)$', text, re.M)
                out[(model, name)] = float(m.group(1)) if m else 0.0
            stats = json.loads(urllib.request.urlopen(f"{self.http}/v2/models/{model}/stats", timeout=5).read())
            batches = stats["model_stats"][0].get("batch_stats", [])
            out[(model, "batches")] = {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in batches}
            # Per execution (the metrics' durations are summed per request, i.e. times the batch size).
            out[(model, "exec_ns")] = sum(int(b["compute_infer"]["ns"]) for b in batches)
        return out

    @staticmethod
    def delta(before: dict, after: dict) -> dict:
        result = {}
        for model in (DETECTOR, LIFTER):
            d = {name: after[(model, name)] - before[(model, name)] for (m, name) in after
                 if m == model and name != "batches"}
            batches = {size: n - before[(model, "batches")].get(size, 0)
                       for size, n in after[(model, "batches")].items()}
            execs = d["nv_inference_exec_count"]
            result[model] = {
                "requests": d["nv_inference_request_success"], "failed": d["nv_inference_request_failure"],
                "mean_batch": d["nv_inference_count"] / execs if execs else float("nan"),
                "executions_by_batch_size": {s: n for s, n in sorted(batches.items()) if n},
                "queue_ms": d["nv_inference_queue_duration_us"] / 1e3 / max(1, d["nv_inference_request_success"]),
                "compute_ms_per_execution": d["exec_ns"] / 1e6 / max(1, execs),
                "compute_ms_per_frame": d["exec_ns"] / 1e6 / max(1, d["nv_inference_count"]),
            }
        return result


def start_servers(count: int, pipeline: PipelineOptions, max_peers: int) -> tuple[list, list[int]]:
    """count pose servers, each in its own process (its own GIL, as deployed)."""
    procs, ports = [], []
    for _ in range(count):
        parent, child = mp.Pipe()
        proc = mp.get_context("spawn").Process(target=_serve, args=(child, True, pipeline, max_peers))
        proc.start()
        port = parent.recv()
        if isinstance(port, str):
            raise RuntimeError(port)
        procs.append((proc, parent))
        ports.append(port)
    return procs, ports


def stop_servers(procs) -> None:
    for proc, conn in procs:
        conn.send("stop")
    for proc, _ in procs:
        proc.join(10)
        if proc.is_alive():
            proc.terminate()


async def _clients(urls: list[str], clip: Path, size, fps: float, seconds: float, n: int):
    return list(await asyncio.gather(*(_client(urls[i % len(urls)], clip, size, fps, seconds) for i in range(n))))


def run_streams(name: str, n: int, servers: int, pipeline: PipelineOptions, args, clip: Path,
                triton=None, stats: TritonStats | None = None) -> dict:
    size = tuple(int(v) for v in args.size.split("x"))
    procs, ports = start_servers(servers, pipeline, max(4, n))
    try:
        load0 = os.getloadavg()[0]
        cpu0 = sum(_cpu_seconds(p.pid) for p, _ in procs) + (tree_cpu_seconds(triton.process.pid) if triton else 0)
        before = stats.snapshot() if stats else None
        wall0 = time.monotonic()
        results = asyncio.run(_clients([f"ws://127.0.0.1:{p}/ws" for p in ports], clip, size, args.fps,
                                       args.seconds, n))
        wall = time.monotonic() - wall0
        triton_stats = TritonStats.delta(before, stats.snapshot()) if stats else None
        cpu = sum(_cpu_seconds(p.pid) for p, _ in procs) + (tree_cpu_seconds(triton.process.pid) if triton else 0)
    finally:
        stop_servers(procs)
    s = _summary(results)
    s.update(name=name, servers=servers, cpu_cores=(cpu - cpu0) / wall, load=[load0, os.getloadavg()[0]],
             poses_per_s=s["processed"] / s["seconds"], triton=triton_stats)
    return s


def print_row(s: dict) -> None:
    fps = s["processed_fps_per_client"]
    line = (f"{s['name']:<13} N={s['clients']:<2} fps/stream {statistics.fmean(fps):5.1f} (min {min(fps):4.1f})  "
            f"p50 {s['p50_ms']:6.1f}  p95 {s['p95_ms']:6.1f} ms  poses/s {s['poses_per_s']:5.1f}  "
            f"cpu {s['cpu_cores']:.2f}  load {s['load'][0]:.1f}->{s['load'][1]:.1f}")
    stages = s["stage_ms"]
    line += (f"\n{'':13} server ms/frame: network {stages.get('detect_network', 0):.1f}, detect "
             f"{stages.get('detect', 0):.1f}, lift {stages.get('lift', 0):.1f}, total {stages.get('total', 0):.1f}")
    t = s.get("triton")
    if t:
        d, lf = t[DETECTOR], t[LIFTER]
        line += (f"\n{'':13} detector: batch mean {d['mean_batch']:.2f} {d['executions_by_batch_size']}, "
                 f"queue {d['queue_ms']:.1f} ms, compute {d['compute_ms_per_execution']:.1f} ms/exec "
                 f"({d['compute_ms_per_frame']:.1f} per frame); "
                 f"lifter batch mean {lf['mean_batch']:.2f}; failed {d['failed'] + lf['failed']:.0f}")
    print(line, flush=True)


def run_triton_modes(modes: list[str], label: str, ns: list[int], pipeline: PipelineOptions, args, clip: Path,
                     triton, stats: TritonStats, results: dict) -> None:
    for mode in modes:
        servers = int(mode.removeprefix("triton") or 1)
        for n in ns:
            if servers <= n:
                results["runs"].append(run_streams(f"triton x{servers} {label}", n, servers, pipeline, args, clip,
                                                   triton, stats))
                print_row(results["runs"][-1])


def run(args: argparse.Namespace) -> int:
    clip = args.clip or paths.shared_dir() / CLIP
    if not clip.is_file():
        print(f"footage not found: {clip} (pass --clip or set POSECAST_SHARED)")
        return 2
    ns = [int(v) for v in args.clients.split(",")]
    modes = args.modes.split(",")
    print(f"{clip.name} looped at {args.size}, {args.fps:g} fps, {args.seconds:g} s per run; {os.cpu_count()} CPU "
          f"cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    results: dict = {"runs": []}
    if args.pad_check:
        results["pad_check"] = pad_check(clip, args.input_height, args.pad_frames)
        print_pad_check(results["pad_check"])
        results["batch_cost_ms_per_frame"] = cost = batch_cost(args.input_height)
        print("network ms per frame by batch size (in process, 1 thread): "
              + ", ".join(f"batch {n}: {ms:.1f}" for n, ms in cost.items()))
    print()
    base = PipelineOptions(device=args.device, input_height=args.input_height, threads=args.threads)
    if "inprocess" in modes:
        for n in ns:
            results["runs"].append(run_streams("in-process", n, 1, base, args, clip))
            print_row(results["runs"][-1])
    triton_modes = [m for m in modes if m.startswith("triton")]
    if triton_modes and args.triton_host:
        h = args.triton_host
        stats = TritonStats(f"http://{h}:8002/metrics", f"http://{h}:8000")
        remote = replace(base, inference=f"triton://{h}:8001")
        run_triton_modes(triton_modes, "external", ns, remote, args, clip, None, stats, results)
    elif triton_modes:
        from posecast.triton.repository import RepositoryOptions
        from posecast.triton.serve import LocalTriton, resolve_device
        device = resolve_device(args.device, paths.DETECTOR_ONNX)
        for max_batch in (int(v) for v in args.max_batch_sizes.split(",")):
            options = RepositoryOptions(max_batch_size=max_batch, queue_delay_us=args.queue_delay_us,
                                        threads=args.threads, device=device)
            with LocalTriton(options, grpc_port=0, http_port=0, metrics_port=0) as triton:
                stats = TritonStats(triton.metrics_url, f"http://127.0.0.1:{triton.http_port}")
                run_triton_modes(triton_modes, f"b{max_batch}", ns, replace(base, inference=triton.url), args, clip,
                                 triton, stats, results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0
