"""End-to-end latency: an aiortc client streams real footage to the server, frame ids drawn in.

Three runs against a server in its own process (its own GIL, as in production):
  floor  inference switched off (the server still decodes, reads the tag and answers):
         what WebRTC + websockets cost on their own
  live   the real models, one client
  multi  the real models, N clients at once (per-client fps and latency)
Latency = pose message arrival - the moment the client handed that frame to its encoder.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posecast import paths
from server.client import PoseClient, TaggedVideoTrack, clip_frames
from posecast.pipeline import FrameResult, PipelineOptions

CLIP = "media/clips/dance_facing_camera.mp4"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=60.0, help="length of the floor and live runs (default 60)")
    p.add_argument("--clients", type=int, default=4, help="clients in the multi run (0 = skip it; default 4)")
    p.add_argument("--multi-seconds", type=float, default=20.0, help="length of the multi run (default 20)")
    p.add_argument("--clip", type=Path, default=None, help=f"footage to loop (default ../shared/{CLIP})")
    p.add_argument("--size", default="640x480", help="frame size sent (default 640x480)")
    p.add_argument("--fps", type=float, default=30.0, help="frames per second sent (default 30)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--input-height", type=int, default=PipelineOptions.input_height)
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: half the cores)")
    p.add_argument("--no-floor", dest="floor", action="store_false", help="skip the inference-off run")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")


class NoInference:
    """The transport floor: no model at all, an empty people list per frame."""
    provider = "none"
    models: dict = {}
    smoothing = False

    def new_stream(self) -> NoInference:
        return self

    def __call__(self, frame_bgr: np.ndarray, t: float) -> FrameResult:
        return FrameResult()


def _serve(conn, inference: bool, pipeline: PipelineOptions, max_peers: int) -> None:
    """In a child process: run the server until told to stop; report the port, then its CPU time."""
    from posecast.logs import setup_logging
    from server.app import PoseServer, ServerOptions
    from posecast.pipeline import PoseEstimator

    setup_logging("WARNING")

    async def main() -> None:
        try:
            estimator = PoseEstimator(pipeline) if inference else NoInference()
        except Exception as exc:  # noqa: BLE001 - reported by the parent
            conn.send(f"the server could not start: {exc}")
            return
        server = PoseServer(ServerOptions(port=0, max_peers=max_peers), estimator)
        await server.start()
        conn.send(server.port)
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await server.stop()

    asyncio.run(main())


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@dataclass
class ClientResult:
    sent: int
    poses: list  # server.client.Received
    seconds: float

    def latencies(self, since: float = 0.0, until: float = float("inf")) -> list[float]:
        t0 = self.poses[0].arrived if self.poses else 0.0
        return [p.latency_ms for p in self.poses if p.latency_ms is not None and since <= p.arrived - t0 < until]


async def _client(url: str, clip: Path, size: tuple[int, int], fps: float, seconds: float) -> ClientResult:
    client = PoseClient(url)
    await client.connect()
    track = TaggedVideoTrack(clip_frames(clip, size), fps)
    await client.start_video(track)
    await client.wait_for_poses(1, timeout=30)
    start = track.count
    first = len(client.poses)
    await asyncio.sleep(seconds)
    result = ClientResult(track.count - start, client.poses[first:], seconds)
    await client.close()
    return result


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _summary(results: list[ClientResult]) -> dict:
    lat = [v for r in results for v in r.latencies()]
    seconds = results[0].seconds
    poses = [p for r in results for p in r.poses]
    stale = sum(r.poses[-1].message["dropped"] - r.poses[0].message["dropped"] for r in results if r.poses)
    timings: dict[str, list[float]] = {}
    for p in poses:
        for k, v in p.message["timings"].items():
            timings.setdefault(k, []).append(v)
    first = [v for r in results for v in r.latencies(0, 10)]
    last = [v for r in results for v in r.latencies(seconds - 10, seconds + 1)]
    return {
        "clients": len(results), "seconds": seconds, "sent": sum(r.sent for r in results), "processed": len(poses),
        "processed_fps_per_client": [len(r.poses) / seconds for r in results],
        "stale_dropped": stale, "lost_in_transport": max(0, sum(r.sent for r in results) - len(poses) - stale),
        "p50_ms": _pct(lat, 50), "p95_ms": _pct(lat, 95), "p99_ms": _pct(lat, 99),
        "p50_per_client_ms": [_pct(r.latencies(), 50) for r in results],
        "first10_p50_ms": _pct(first, 50), "last10_p50_ms": _pct(last, 50),
        "stage_ms": {k: statistics.fmean(v) for k, v in timings.items()},
        "people_per_frame": statistics.fmean(len(p.message["people"]) for p in poses) if poses else 0.0,
    }


def _run(name: str, inference: bool, clients: int, seconds: float, args, clip: Path) -> dict:
    size = tuple(int(v) for v in args.size.split("x"))
    pipeline = PipelineOptions(device=args.device, input_height=args.input_height, threads=args.threads)
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_serve, args=(child, inference, pipeline, max(4, clients)))
    proc.start()
    try:
        port = parent.recv()
        if isinstance(port, str):
            raise RuntimeError(port)
        cpu0, wall0 = _cpu_seconds(proc.pid), time.monotonic()
        client_cpu0 = time.process_time()
        results = asyncio.run(_all_clients(f"ws://127.0.0.1:{port}/ws", clip, size, args.fps, seconds, clients))
        server_cpu = _cpu_seconds(proc.pid) - cpu0
        wall = time.monotonic() - wall0
        client_cpu = time.process_time() - client_cpu0
    finally:
        parent.send("stop")
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
    summary = _summary(results)
    summary.update(name=name, server_cpu_cores=server_cpu / wall, client_cpu_cores=client_cpu / wall,
                   server_cpu_ms_per_frame=1e3 * server_cpu / max(1, summary["processed"]))
    return summary


async def _all_clients(url, clip, size, fps, seconds, n) -> list[ClientResult]:
    return list(await asyncio.gather(*(_client(url, clip, size, fps, seconds) for _ in range(n))))


def _print(s: dict) -> None:
    fps = ", ".join(f"{v:.1f}" for v in s["processed_fps_per_client"])
    print(f"\n== {s['name']}: {s['clients']} client(s), {s['seconds']:.0f} s")
    print(f"latency ms      p50 {s['p50_ms']:.1f}   p95 {s['p95_ms']:.1f}   p99 {s['p99_ms']:.1f}"
          f"   (first 10 s p50 {s['first10_p50_ms']:.1f}, last 10 s p50 {s['last10_p50_ms']:.1f})")
    if s["clients"] > 1:
        print("p50 per client  " + ", ".join(f"{v:.1f}" for v in s["p50_per_client_ms"]))
    print(f"processed fps   {fps}   (sent {s['sent']}, processed {s['processed']}, stale dropped "
          f"{s['stale_dropped']}, lost {s['lost_in_transport']})")
    print("stage ms (mean) " + "  ".join(f"{k} {v:.1f}" for k, v in s["stage_ms"].items()))
    print(f"CPU             server {s['server_cpu_cores']:.2f} cores ({s['server_cpu_ms_per_frame']:.1f} ms per "
          f"processed frame), client {s['client_cpu_cores']:.2f} cores; people per frame {s['people_per_frame']:.2f}")


def run(args: argparse.Namespace) -> int:
    clip = args.clip or paths.shared_dir() / CLIP
    if not clip.is_file():
        print(f"footage not found: {clip} (pass --clip or set POSECAST_SHARED)")
        return 2
    print(f"{clip.name} looped at {args.size}, {args.fps:g} fps; {os.cpu_count()} CPU cores")
    runs = [("floor (inference off)", False, 1, args.seconds)] if args.floor else []
    runs.append(("live", True, 1, args.seconds))
    if args.clients > 1:
        runs.append((f"live, {args.clients} clients", True, args.clients, args.multi_seconds))
    results = []
    for name, inference, clients, seconds in runs:
        try:
            results.append(_run(name, inference, clients, seconds, args, clip))
        except RuntimeError as exc:
            print(exc)
            return 1
        _print(results[-1])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0
