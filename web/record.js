// The record button. Recording happens on the server (docs/protocol.md: `record`, `recording`): it keeps
// the pose messages it sends while recording and, once stopped, offers them as JSON Lines and BVH at
// private, expiring URLs. The limits (minutes, megabytes) come from the server's hello and are shown.
const TICK_MS = 500;

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function megabytes(bytes) {
  return `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 1 : 0)} MB`;
}

export class Recorder {
  /** button: the record/stop button; info: where the limits, the timer and the downloads are shown. */
  constructor(button, info) {
    this.button = button;
    this.info = info;
    this.send = null; // the session's send, while there is one
    this.limits = null;
    this.state = "off"; // off (no session) | idle | starting | recording | stopping | ready
    this.poses = 0; // pose messages received while recording
    this.counting = false; // from the server's `recording` to its `stopped`: what it records (also after Stop)
    this.result = null; // the server's `ready` message
    this.startedAt = 0;
    this.timer = null;
    this.expiry = null;
    button.addEventListener("click", () => this.toggle());
    this.render();
  }

  /** A session said hello: recording is possible, within its limits. */
  attach(send, limits) {
    this.send = send;
    this.limits = limits;
    this.set("idle");
  }

  /** The session ended: the server deletes a client's recordings when it leaves. */
  detach() {
    this.send = null;
    this.counting = false;
    this.result = null;
    this.set("off");
  }

  toggle() {
    if (!this.send) return;
    if (this.state === "recording") {
      this.send({ type: "record", action: "stop" });
      this.set("stopping");
    } else if (this.state === "idle" || this.state === "ready") {
      this.send({ type: "record", action: "start" });
      this.set("starting");
    }
  }

  /** Every pose message: counted while the server records (it records exactly these). */
  pose() {
    if (this.counting) this.poses++;
  }

  /** The server's `recording` messages. */
  message(msg) {
    if (msg.state === "recording") {
      this.poses = 0;
      this.counting = true;
      this.result = null;
      this.startedAt = performance.now();
      this.set("recording");
    } else if (msg.state === "stopped") {
      this.counting = false;
      this.set("stopping");
    } else if (msg.state === "ready") {
      this.result = msg;
      this.set("ready");
      clearTimeout(this.expiry);
      this.expiry = setTimeout(() => { if (this.result === msg) { this.result = null; this.set("idle"); } },
        msg.expires_in_s * 1000);
    }
  }

  /** The server refused a record message (e.g. the socket reconnected meanwhile). */
  refused(msg) {
    console.warn(`posecast: recording: ${msg.message}`);
    this.set(this.result ? "ready" : "idle");
  }

  set(state) {
    this.state = state;
    clearInterval(this.timer);
    if (state === "recording") this.timer = setInterval(() => this.render(), TICK_MS);
    this.render();
  }

  limitsText() {
    const l = this.limits;
    return l ? `at most ${clock(l.max_recording_seconds)} min or ${megabytes(l.max_recording_bytes)}` : "";
  }

  render() {
    const { button, info, state } = this;
    button.disabled = state === "off" || state === "starting" || state === "stopping";
    button.setAttribute("aria-pressed", String(state === "recording"));
    button.textContent = state === "recording" ? "■ Stop" : "● Record";
    button.title = `Record the 3D poses on the server (${this.limitsText()}), then download them as JSON Lines and BVH`;
    info.replaceChildren();
    if (state === "recording") {
      const elapsed = (performance.now() - this.startedAt) / 1000;
      info.append(`Recording ${clock(elapsed)} · ${this.poses} poses (${this.limitsText()})`);
    } else if (state === "stopping") {
      info.append("Preparing the downloads…");
    } else if (state === "ready" && this.result) {
      this.renderDownloads(this.result);
    } else if (state !== "off") {
      info.append(`Records ${this.limitsText()}`);
    }
  }

  renderDownloads(r) {
    const { info } = this;
    info.append(`Recorded ${r.frames} poses (${r.seconds.toFixed(1)} s): `);
    const link = (format, label) => {
      const url = r.downloads[format];
      if (!url || !url.startsWith("/recordings/")) return null;
      return Object.assign(document.createElement("a"), { href: url, download: "", textContent: label,
        id: `download-${format}` });
    };
    const jsonl = link("jsonl", "JSON Lines");
    const bvh = link("bvh", "BVH");
    if (jsonl) info.append(jsonl);
    if (bvh) info.append(" · ", bvh);
    if (r.bvh_error) {
      const why = Object.assign(document.createElement("span"), { className: "bvh-error", id: "bvh-error",
        textContent: ` · no BVH: ${r.bvh_error}` });
      info.append(why);
    }
    info.append(` (kept ${Math.round(r.expires_in_s / 60)} min)`);
  }

  /** For the test hook: what the page knows of the recording. */
  snapshot() {
    const r = this.result;
    return { state: this.state, poses: this.poses, frames: r?.frames ?? null, downloads: r?.downloads ?? null,
      bvhError: r?.bvh_error ?? null };
  }
}
