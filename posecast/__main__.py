from posecast.cli import entry

entry("posecast", "posecast commands.", {
    "triton": ("posecast.triton.serve", "start a local Triton Inference Server serving both networks"),
})
