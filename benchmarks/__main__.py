from posecast.cli import entry

entry("python -m benchmarks", "Measure speed and accuracy; prints figures, asserts nothing.", {
    "lifter": ("benchmarks.lifter", "lifter latency (batch 1), throughput (batch 1024) and accuracy table"),
    "detector": ("benchmarks.detector", "detector network and decoding time at several input sizes"),
    "latency": ("benchmarks.latency", "end-to-end WebRTC -> pose latency against the transport's own floor"),
    "streams": ("benchmarks.streams", "N concurrent streams: in-process inference beside Triton with dynamic batching"),
})
