"""The live server: WebRTC frames in, 3D poses out over websockets."""
