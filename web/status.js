// The page's state (one of STATES) and its figures: processed fps, capture-to-display
// latency, provider, people in view. The banner explains any state that is not "live".
const FPS_WINDOW_MS = 2000;
const LATENCY_SAMPLES = 30;

/** Each state's banner; null = no banner. `d` holds details (retry delay, error text). */
export const STATES = {
  starting: () => "Starting the camera: allow access when the browser asks.",
  connecting: () => "Connecting to the server…",
  waiting: (d) => `Connected; waiting for the first processed frame (video link: ${d.peer ?? "starting"})…`,
  live: () => null,
  "no-person": () => "No person in view: step back until your whole body is in the picture.",
  "camera-denied": () =>
    "Camera permission denied. Allow the camera for this page (the camera icon in the address bar), then reload.",
  "no-camera": () => "No camera found. Connect a webcam, then reload.",
  "camera-error": (d) => `The camera could not be started: ${d.error}.`,
  "server-unreachable": (d) => `Server unreachable. Retrying in ${d.retry} s…`,
  "server-lost": (d) => `Connection to the server lost. Reconnecting in ${d.retry} s…`,
  "server-busy": (d) => `The server is busy: ${d.error} Retrying in ${d.retry} s…`,
  "inference-unavailable": (d) => `The server cannot run the pose models right now (${d.error}). Retrying…`,
};

export class Stats {
  constructor() {
    this.messages = 0; // pose messages received
    this.latencyMs = null; // median capture-to-display latency of the last LATENCY_SAMPLES tagged frames
    this.provider = null;
    this.people = 0;
    this.dropped = 0;
    this.timings = null; // the server's per-stage ms of the latest frame
    this.arrivals = [];
    this.latencies = [];
  }

  pose(msg, now = performance.now()) {
    this.messages++;
    this.arrivals.push(now);
    this.provider = msg.provider;
    this.people = msg.people.length;
    this.dropped = msg.dropped;
    this.timings = msg.timings;
  }

  latency(ms) {
    this.latencies.push(ms);
    if (this.latencies.length > LATENCY_SAMPLES) this.latencies.shift();
    const sorted = [...this.latencies].sort((a, b) => a - b);
    this.latencyMs = sorted[Math.floor(sorted.length / 2)];
  }

  /** A plain copy for the status line and the test hook; fps = pose messages per second lately. */
  snapshot(now = performance.now()) {
    while (this.arrivals.length && this.arrivals[0] < now - FPS_WINDOW_MS) this.arrivals.shift();
    const fps = this.arrivals.length / (FPS_WINDOW_MS / 1000);
    const { messages, latencyMs, provider, people, dropped, timings } = this;
    return { messages, fps, latencyMs, provider, people, dropped, timings };
  }
}

/** The one-line summary of the figures. */
export function statusLine(s) {
  const parts = [
    `${s.fps.toFixed(1)} fps`,
    `latency ${s.latencyMs == null ? "–" : Math.round(s.latencyMs)} ms`,
    s.provider ?? "–",
    `${s.people} ${s.people === 1 ? "person" : "people"} in view`,
  ];
  if (s.timings) parts.push(`server ${Math.round(s.timings.total)} ms/frame`);
  return parts.join(" · ");
}
