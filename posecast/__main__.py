"""`python -m posecast` (installed as `posecast`): process recordings offline, or serve the live page."""
from posecast.cli import entry

COMMANDS = {
    "process": ("posecast.offline.process", "images, folders of images and videos to 3D poses: JSON Lines, "
                "CSV, the four-panel figure, BVH (docs/offline.md)"),
    "serve": ("server.__main__", "the live server: webcam in the browser, 3D poses back (docs/server.md)"),
    "triton": ("posecast.triton.serve", "start a local Triton Inference Server serving both networks (docs/scaling.md)"),
}


def main() -> None:
    entry("posecast", "posecast: 3D human pose from video, live or offline.", COMMANDS)


if __name__ == "__main__":
    main()
