from posecast.cli import entry

entry("python -m export", "Export the models to ONNX (into weights/).", {
    "detector": ("export.detector", "convert the OpenPose-style 2D detector to weights/openpose.onnx"),
    "lifter": ("export.lifter", "export a trained lifter checkpoint to weights/lifter.onnx"),
    "lifter-temporal": ("export.lifter_temporal",
                        "export a temporal lifter checkpoint to weights/lifter_temporal.onnx"),
    "triton": ("export.triton", "write a Triton model repository (ONNX Runtime backend, dynamic batching) for both models"),
})
