from posecast.cli import entry

entry("python -m benchmarks", "Measure speed and accuracy; prints figures, asserts nothing.", {
    "lifter": ("benchmarks.lifter", "lifter latency (batch 1), throughput (batch 1024) and accuracy table"),
    "lifter-temporal": ("benchmarks.lifter_temporal",
                        "temporal lifter beside the per-frame lifter (+ One-Euro): latency and sequence table"),
    "detector": ("benchmarks.detector", "detector network and decoding time at several input sizes"),
    "latency": ("benchmarks.latency", "end-to-end WebRTC -> pose latency against the transport's own floor"),
    "soak": ("benchmarks.soak", "hostile and vanishing clients for longer, the server's memory, fds and threads over time"),
    "root": ("benchmarks.root", "position in the room: root error (true and +-15 % focal), foot slide"),
    "streams": ("benchmarks.streams", "N concurrent streams: in-process inference beside Triton with dynamic batching"),
})
