// Camera capture and frame tagging: the camera is drawn into a canvas with a frame tag in its
// corner, and the canvas's own video track is what goes to the server. The draw time of each
// tag is kept, so a pose that echoes the tag gives capture-to-display latency.
import { draw as drawTag } from "./frametag.js";

const KEEP_TAGS = 600; // draw times remembered: 20 s at 30 fps, far beyond any useful latency
// Sent frames kept (full size, ~1.2 MB each at 640x480) for the overlay and the pipeline view: 1 s at 30 fps,
// more at the lower rates the page sends at when the server is slow; latency is ~0.1-0.3 s.
const KEPT_FRAMES = 32;

/** A camera failure, classified for the status line: "camera-denied" | "no-camera" | "camera-error". */
export class CameraError extends Error {
  constructor(state, message) {
    super(message);
    this.state = state;
  }
}

/** The user-facing camera, 640x480 ideal, video only. Throws CameraError. */
export async function openCamera() {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new CameraError("camera-error", "this browser gives no camera access here (it needs https or localhost)");
  }
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: false,
      video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" },
    });
  } catch (err) {
    if (err.name === "NotAllowedError" || err.name === "SecurityError") {
      throw new CameraError("camera-denied", err.message);
    }
    if (err.name === "NotFoundError" || err.name === "OverconstrainedError") {
      throw new CameraError("no-camera", err.message);
    }
    if (err.name === "NotReadableError") {
      throw new CameraError("camera-error", "the camera is in use by another application");
    }
    throw new CameraError("camera-error", `${err.name}: ${err.message}`);
  }
}

/** Copies each camera frame from a <video> into a canvas, tags it, and exposes the canvas's track. */
export class TaggedSource {
  constructor(video) {
    this.video = video;
    this.canvas = document.createElement("canvas");
    this.canvas.width = 640;
    this.canvas.height = 480;
    this.ctx = this.canvas.getContext("2d", { alpha: false });
    // captureStream(0) + requestFrame() sends exactly one frame per draw, so draw times are exact.
    const stream = this.canvas.captureStream(0);
    this.track = stream.getVideoTracks()[0];
    if (typeof this.track.requestFrame !== "function") { // no requestFrame: let the browser sample the canvas
      this.track.stop();
      this.track = this.canvas.captureStream(30).getVideoTracks()[0];
    }
    this.layout = null; // frame-tag layout from the server's hello; untagged until then
    this.nextId = 0;
    this.drawTimes = new Map();
    this.maxFps = 30; // frames sent per second at most: see main.js, which follows the server's pace
    this.lastSent = -Infinity;
    // Recent sent frames, so the overlay and the pipeline view draw a pose on the very frame it came from.
    this.kept = Array.from({ length: KEPT_FRAMES }, () => ({ tag: -1, canvas: null }));
  }

  /** The kept frame with this tag (a canvas), or null. */
  frame(tag) {
    return this.kept.find((slot) => slot.tag === tag)?.canvas ?? null;
  }

  /** Start copying frames; one per camera frame where the browser says when they come. */
  start() {
    const step = () => {
      this.drawFrame();
      if (this.video.requestVideoFrameCallback) this.video.requestVideoFrameCallback(step);
      else requestAnimationFrame(step);
    };
    step();
  }

  drawFrame() {
    const { video, canvas, ctx } = this;
    if (video.readyState < 2 || !video.videoWidth) return;
    const now = performance.now();
    if (now - this.lastSent < 1000 / this.maxFps - 5) return; // 5 ms slack for the camera's jitter
    this.lastSent = now;
    if (canvas.width !== video.videoWidth || canvas.height !== video.videoHeight) {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
    }
    ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
    if (this.layout) {
      const modulus = 2 ** this.layout.bits;
      this.keep(this.nextId % modulus); // before the tag goes on: the pipeline view shows the clean frame
      const tag = drawTag(ctx, canvas.width, this.nextId++, this.layout);
      this.drawTimes.set(tag, now);
      this.drawTimes.delete((tag - KEEP_TAGS + modulus) % modulus);
    }
    this.track.requestFrame?.();
  }

  keep(tag) {
    const slot = this.kept[tag % KEPT_FRAMES];
    const w = this.canvas.width;
    const h = this.canvas.height;
    if (!slot.canvas || slot.canvas.width !== w || slot.canvas.height !== h) {
      slot.canvas = Object.assign(document.createElement("canvas"), { width: w, height: h });
    }
    slot.canvas.getContext("2d").drawImage(this.canvas, 0, 0, w, h);
    slot.tag = tag;
  }

  /** When the frame with this tag was drawn (performance.now() ms), once; undefined if unknown. */
  takeDrawTime(tag) {
    const t = this.drawTimes.get(tag);
    this.drawTimes.delete(tag);
    return t;
  }
}
