// posecast's page: camera -> tagged canvas -> WebRTC to the server; poses back over the websocket
// drive the 3D view, the 2D overlay, the pipeline panels and the status line.
import { CameraError, openCamera, TaggedSource } from "./capture.js";
import { drawOverlay, drawPipeline } from "./overlay.js";
import { Recorder } from "./record.js";
import { connect, serverUrl } from "./signalling.js";
import { STATES, Stats, statusLine } from "./status.js";

const RETRY_MIN_S = 1;
const RETRY_MAX_S = 16;
const STATUS_EVERY_MS = 250;
const NO_PERSON_AFTER_MS = 500; // a person missed for a moment keeps their last pose: no flicker
const PROTOCOL = 3; // docs/protocol.md
// What the user types in the header for placing people in the room: kept in the browser across reloads, sent
// after each hello. An empty height means "an average adult" (the server's default), sent as null.
const SETTINGS = {
  fov: { key: "posecast.fov", message: (fov) => ({ type: "camera", fov }), clearable: false },
  height: { key: "posecast.height", message: (height) => ({ type: "person", height }), clearable: true },
};

/**
 * Frames per second to send when the server processes `fps`. The server keeps only the latest frame,
 * but every sent frame costs an encode here and a decode there: on one machine that CPU is taken from
 * the models. Twice the server's pace plus a margin keeps the wait for a fresh frame short and lets
 * the pace climb when the server can go faster.
 */
function sendRate(fps) {
  return Math.min(30, Math.max(10, 2 * fps + 5));
}

const $ = (id) => document.getElementById(id);
const video = $("video");
const banner = $("banner");
const line = $("status");
const panels = { crop: $("panel-crop"), coco: $("panel-coco"), h36m: $("panel-h36m") };

const stats = new Stats();
const recorder = new Recorder($("record"), $("recording"));
let view = null; // the 3D view, once three.js has loaded
let state = "starting";
let skeleton = null; // hello.skeleton
let pose = null; // the latest pose message of the open session
let poseDrawTime = null; // when the latest pose's frame was drawn (performance.now() ms)
let failures = 0; // sessions in a row that ended before the server said hello
let busyMessage = null; // the server's too_many_peers message, shown when it closes the session
let personSeen = -Infinity; // performance.now() of the last pose with a person in it
let source = null; // the camera's TaggedSource once the camera is open
let link = null; // the open session's {close, send}
const drawn = { pose: undefined, pipeline: undefined }; // what the 2D drawings show

function setState(name, details = {}) {
  const text = STATES[name](details);
  if (name === state && banner.textContent === (text ?? "")) return;
  state = name;
  banner.hidden = !text;
  banner.textContent = text ?? "";
  banner.dataset.state = name;
  document.body.dataset.state = name;
}

function session() {
  let hadHello = false;
  setState("connecting");
  link = connect(serverUrl(), source.track, {
    hello(msg) {
      recorder.attach(link.send, msg.limits);
      hadHello = true;
      failures = 0;
      if (msg.version !== PROTOCOL) {
        console.warn(`posecast: server speaks protocol ${msg.version}, this page ${PROTOCOL}`);
      }
      sendSettings();
      skeleton = msg.skeleton;
      source.layout = msg.frametag;
      source.maxFps = sendRate(Infinity);
      stats.provider = msg.provider;
      view?.setSkeleton(skeleton.h36m17);
      setState("waiting", {});
    },
    peerState(peer) {
      if (state === "waiting") setState("waiting", { peer });
    },
    pose(msg) {
      pose = msg;
      stats.pose(msg);
      recorder.pose();
      source.maxFps = sendRate(stats.snapshot().fps);
      if (msg.tagged) poseDrawTime = source.takeDrawTime(msg.frame) ?? null;
      showFov(msg.camera?.fov);
      const now = performance.now();
      view?.setPose(msg, now); // the view keeps a person missed for a moment itself
      if (msg.people.length) {
        personSeen = now;
        setState("live");
      } else if (now - personSeen > NO_PERSON_AFTER_MS) {
        setState("no-person");
      }
    },
    error(msg) {
      console.warn(`posecast: server error ${msg.code}: ${msg.message}`);
      if (state === "waiting") setState("waiting", { peer: `server error: ${msg.message}` });
      if (msg.code === "too_many_peers") busyMessage = msg.message;
      if (msg.code === "bad_record") recorder.refused(msg);
      // The models' server (Triton) is down: shown until poses flow again.
      if (msg.code === "inference_unavailable") setState("inference-unavailable", { error: msg.message });
    },
    recording: (msg) => recorder.message(msg),
    closed({ opened, code }) {
      recorder.detach();
      pose = null;
      view?.setPose(null);
      failures = hadHello ? 1 : failures + 1;
      const retry = Math.min(RETRY_MAX_S, RETRY_MIN_S * 2 ** (failures - 1));
      if (code === 1013) setState("server-busy", { retry, error: busyMessage ?? "too many viewers." });
      else setState(opened ? "server-lost" : "server-unreachable", { retry });
      busyMessage = null;
      setTimeout(session, retry * 1000);
    },
  });
}

function render(now, last) {
  const fresh = view ? view.update(Math.min(0.1, (now - last) / 1000)) : true;
  if (fresh && poseDrawTime != null) {
    stats.latency(performance.now() - poseDrawTime);
    poseDrawTime = null;
  }
  // The 2D drawings change only with the pose (or the view): redrawing them every frame costs compositing.
  const pipeline = document.body.classList.contains("pipeline");
  if (pose !== drawn.pose || pipeline !== drawn.pipeline) {
    const frame = (pose?.tagged && source?.frame(pose.frame)) || null; // the sent frame the pose came from
    if (!pipeline) drawOverlay($("overlay"), video, pose, skeleton, frame);
    else drawPipeline(panels, frame || video, pose, skeleton);
    Object.assign(drawn, { pose, pipeline });
  }
  requestAnimationFrame((t) => render(t, now));
}

/** A setting's stored value (a positive number), or null. */
function stored(name) {
  const v = Number(localStorage.getItem(SETTINGS[name].key));
  return Number.isFinite(v) && v > 0 ? v : null;
}

function sendSettings() {
  for (const [name, setting] of Object.entries(SETTINGS)) {
    const value = stored(name);
    if (value) link?.send(setting.message(value));
  }
}

/** The server's field of view, shown while the user has not set one. */
function showFov(fov) {
  const input = $("fov");
  if (fov != null && document.activeElement !== input && input.value !== String(fov)) input.value = String(fov);
}

function setupSettings() {
  for (const [name, setting] of Object.entries(SETTINGS)) {
    const input = $(name);
    if (stored(name)) input.value = String(stored(name));
    input.addEventListener("change", () => {
      if (input.value === "" && setting.clearable) {
        localStorage.removeItem(setting.key);
        link?.send(setting.message(null));
        return;
      }
      const value = Number(input.value);
      if (input.value === "" || !input.checkValidity() || !Number.isFinite(value)) {
        input.reportValidity();
        return;
      }
      localStorage.setItem(setting.key, String(value));
      link?.send(setting.message(value));
    });
  }
}

function setupSceneToggle() {
  const button = $("scene-toggle");
  const set = (scene) => {
    button.setAttribute("aria-pressed", String(!scene)); // like the pipeline toggle: pressed = pinned view on
    view?.setMode(scene ? "scene" : "pinned");
    document.body.dataset.view = scene ? "scene" : "pinned";
  };
  button.addEventListener("click", () => set(document.body.dataset.view !== "scene"));
  set(location.hash !== "#pinned");
}

function setupPipelineToggle() {
  const button = $("pipeline-toggle");
  const set = (on) => {
    document.body.classList.toggle("pipeline", on);
    button.setAttribute("aria-pressed", String(on));
  };
  button.addEventListener("click", () => set(!document.body.classList.contains("pipeline")));
  set(location.hash === "#pipeline");
}

/** three.js comes from a CDN (or the server's copy): if it cannot load, the rest of the page still works. */
async function loadView() {
  const container = $("view3d");
  try {
    const { View3D } = await import("./view3d.js");
    view = new View3D(container);
    view.setMode(document.body.dataset.view === "pinned" ? "pinned" : "scene");
    if (skeleton) view.setSkeleton(skeleton.h36m17);
  } catch (err) {
    console.error("posecast: 3D view unavailable", err);
    container.classList.add("no-webgl");
    container.textContent = `The 3D view could not load three.js (${err.message}).`;
  }
}

async function main() {
  setupPipelineToggle();
  setupSceneToggle();
  setupSettings();
  loadView();
  requestAnimationFrame((t) => render(t, t));
  setInterval(() => { line.textContent = statusLine(stats.snapshot()); }, STATUS_EVERY_MS);
  setState("starting");
  let stream;
  try {
    stream = await openCamera();
  } catch (err) {
    if (!(err instanceof CameraError)) throw err;
    console.warn(`posecast: camera: ${err.message}`);
    setState(err.state, { error: err.message });
    return;
  }
  stream.getVideoTracks()[0].addEventListener("ended", () => {
    setState("camera-error", { error: "the camera stopped (unplugged, or taken by another application?)" });
  });
  video.srcObject = stream;
  await video.play().catch(() => {}); // autoplay of a muted stream is allowed; this only hurries it
  source = new TaggedSource(video);
  source.start();
  session();
}

// Read-only hook for tests and the curious: window.posecast.stats, .joints() (the main person's displayed joints,
// metres, null = hidden), .scene() (view mode, the webcam's place, every shown person's pelvis), .recording (state,
// poses counted while recording, downloads).
window.posecast = Object.freeze({
  get state() { return state; },
  get stats() { return stats.snapshot(); },
  get recording() { return recorder.snapshot(); },
  joints: () => view?.positions() ?? [],
  scene: () => view?.describe() ?? null,
});

main();
