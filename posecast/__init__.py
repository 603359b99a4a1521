"""posecast: live 3D human pose from a webcam, in the browser."""
__version__ = "0.1.0"
