"""2D people detection: an OpenPose-style ONNX network, PAF decoding and person tracking."""
from .detector import Detection, Detector, DetectorOptions, Person

__all__ = ["Detection", "Detector", "DetectorOptions", "Person"]
