// The 3D view, in one of two modes:
// - "scene": everyone in view placed where they are in the room (each person's `root`), over a floor grid
//   that is the estimated floor (`floor`), with the webcam drawn where it stands and the main person's path as
//   a fading trail on the floor;
// - "pinned": the main person alone, pelvis over the grid's centre, lowest joint on the grid.
// The skeleton comes from the server's hello message; each pose is eased towards every animation frame.
// Server positions are camera axes in mm (x right, y down, z away); three.js here is metres, y up.
import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";

export const SIDE_COLOURS = { right: 0x3b82f6, left: 0xef4444, centre: 0x9ca3af }; // the paper's blue/red
const BACKGROUND = 0x111827;
const EASE_SECONDS = 0.06; // time constant of the easing towards the latest pose
const DEFAULT_PELVIS_HEIGHT = 0.95; // metres above the grid until both feet have been seen
const JOINT_RADIUS = 0.028;
const BONE_RADIUS = 0.016;
const UP = new THREE.Vector3(0, 1, 0);
const STILL_M = 1e-4; // easing steps below this are not worth a redraw
const GONE_MS = 500; // a person missed for a moment keeps their last pose: no flicker
const TRAIL_POINTS = 240; // the main person's path: ~16 s at 15 poses/s
const TRAIL_STEP_M = 0.02; // a new trail point once the person moved this far
const OTHERS_OPACITY = 0.65; // people other than the main one, a little fainter
const FRUSTUM_M = 0.35; // depth of the drawn webcam's viewing pyramid
const FOCUS_HEIGHT = 0.9; // m: the scene view looks at body height, not at the floor
// The scene view starts behind the webcam, to the side and above, far enough to see it and the main person.
const SCENE_VIEW_DIR = new THREE.Vector3(2.0, 1.3, 3.8).normalize();
// Without a GPU every WebGL frame costs ~20 ms of CPU (readback and software compositing),
// CPU a server on the same machine needs: there the view redraws at most this often.
const SOFTWARE_FPS = 12;

/** Whether WebGL runs on the CPU (SwiftShader, llvmpipe: headless browsers, VMs, blocked GPUs). */
function isSoftware(gl) {
  const info = gl.getExtension("WEBGL_debug_renderer_info");
  const name = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
  return /swiftshader|llvmpipe|softpipe|software/i.test(name);
}

const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const unit = (a) => { const n = Math.hypot(...a) || 1; return a.map((v) => v / n); };

/**
 * Camera space (mm) -> the scene (m, y up, the floor at y = 0, the webcam straight above the origin, looking
 * towards -z). `floor` as in the pose message ({normal: up in camera axes, height: the camera above the floor});
 * a level camera `height` mm up until the server has one.
 */
class Room {
  constructor(floor, height) {
    const n = unit(floor?.normal ?? [0, -1, 0]);
    const f = [0, 0, 1];
    const fn = dot(f, n);
    const ahead = unit([f[0] - fn * n[0], f[1] - fn * n[1], f[2] - fn * n[2]]); // the camera's view, level
    this.ey = n;
    this.ez = ahead.map((v) => -v);
    this.ex = cross(this.ey, this.ez);
    this.height = floor?.height ?? height;
  }

  /** A direction or offset (mm) in camera axes -> scene metres, no translation. */
  vector(p) {
    return new THREE.Vector3(dot(this.ex, p) / 1000, dot(this.ey, p) / 1000, dot(this.ez, p) / 1000);
  }

  /** A camera-space point (mm) -> the scene (m). */
  point(p) {
    return this.vector(p).add(new THREE.Vector3(0, this.height / 1000, 0));
  }
}

/** The pinned view's axes: camera axes flipped to y up and z towards the viewer, no tilt correction. */
const PINNED = { vector: ([x, y, z]) => new THREE.Vector3(x / 1000, -y / 1000, -z / 1000) };

/** One person's joints and bones; joints are eased relative to the pelvis, the pelvis (`base`) on its own. */
class Figure {
  constructor(layout, group, geometry) {
    this.group = new THREE.Group();
    group.add(this.group);
    const material = (side) => new THREE.MeshStandardMaterial({
      color: SIDE_COLOURS[side], roughness: 0.5, transparent: true,
    });
    this.joints = layout.joints.map((name, i) => {
      const mesh = new THREE.Mesh(geometry.sphere, material(layout.sides[i]));
      mesh.name = name;
      mesh.visible = false;
      this.group.add(mesh);
      return { mesh, shown: new THREE.Vector3(), target: null, confidence: 0 };
    });
    this.bones = layout.edges.map(([a, b], i) => {
      const mesh = new THREE.Mesh(geometry.cylinder, material(layout.edge_sides[i]));
      mesh.visible = false;
      this.group.add(mesh);
      return { mesh, a, b };
    });
    this.feet = { right: layout.joints.indexOf("r_ankle"), left: layout.joints.indexOf("l_ankle") };
    this.marks = Object.fromEntries(Object.keys(this.feet).map((side) => {
      const paint = new THREE.MeshBasicMaterial({ color: 0xfacc15, transparent: true, opacity: 0.8 });
      const mesh = new THREE.Mesh(geometry.disc, paint);
      mesh.rotation.x = -Math.PI / 2;
      mesh.visible = false;
      this.group.add(mesh);
      return [side, mesh];
    }));
    this.base = new THREE.Vector3(0, DEFAULT_PELVIS_HEIGHT, 0);
    this.baseTarget = this.base.clone();
    this.opacity = 1;
    this.contact = {};
    this.seen = -Infinity;
    this.placed = false; // whether `base` has been set once (the first placement jumps, later ones ease)
  }

  dispose() {
    this.group.removeFromParent();
    this.group.traverse((o) => o.material?.dispose());
  }

  /** Targets from a person of the pose message, in `axes` (PINNED or a Room), the pelvis at `base` (m). */
  set(person, axes, base, contact) {
    this.joints.forEach((j, i) => {
      j.confidence = person.confidence[i];
      // A held joint (not seen now, carried over from the last frames by the temporal lifter) is drawn faint.
      j.target = person.confidence[i] > 0 || person.held?.[i] ? axes.vector(person.joints3d[i]) : null;
    });
    if (base) {
      this.baseTarget.copy(base);
      if (!this.placed) this.base.copy(base);
      this.placed = true;
    }
    this.contact = contact ?? {};
  }

  /** Lowest seen joint relative to the pelvis (m), or null unless every joint is seen. */
  lowest() {
    if (!this.joints.every((j) => j.target)) return null;
    return Math.min(...this.joints.map((j) => j.target.y));
  }

  /** Ease by the factor k; returns the largest step taken (m). */
  update(k) {
    let step = this.base.distanceTo(this.baseTarget) * k;
    this.base.lerp(this.baseTarget, k);
    for (const j of this.joints) {
      if (!j.target) {
        j.mesh.visible = false;
        continue;
      }
      // A joint that reappears starts at its new place: easing from a stale spot (or the origin) would fly it in.
      if (!j.mesh.visible) j.shown.copy(j.target);
      else {
        step = Math.max(step, j.shown.distanceTo(j.target) * k);
        j.shown.lerp(j.target, k);
      }
      j.mesh.visible = true;
      j.mesh.position.copy(j.shown).add(this.base);
      j.mesh.material.opacity = Math.min(1, 0.3 + j.confidence) * this.opacity;
    }
    for (const bone of this.bones) {
      const a = this.joints[bone.a];
      const b = this.joints[bone.b];
      bone.mesh.visible = a.mesh.visible && b.mesh.visible;
      if (!bone.mesh.visible) continue;
      const dir = new THREE.Vector3().subVectors(b.mesh.position, a.mesh.position);
      const length = dir.length();
      bone.mesh.position.addVectors(a.mesh.position, b.mesh.position).multiplyScalar(0.5);
      bone.mesh.quaternion.setFromUnitVectors(UP, length > 1e-6 ? dir.divideScalar(length) : UP);
      bone.mesh.scale.set(1, length, 1);
      bone.mesh.material.opacity = Math.min(a.mesh.material.opacity, b.mesh.material.opacity);
    }
    for (const [side, mark] of Object.entries(this.marks)) {
      const ankle = this.joints[this.feet[side]].mesh;
      mark.visible = Boolean(this.contact[side]) && ankle.visible;
      if (mark.visible) mark.position.set(ankle.position.x, 0.004, ankle.position.z);
    }
    return step;
  }

  positions() {
    return this.joints.map((j) => (j.mesh.visible ? j.mesh.position.toArray() : null));
  }
}

/** The webcam: a small body and its viewing pyramid, built in camera space so any tilt shows. */
class Webcam {
  constructor(scene) {
    this.lines = new THREE.LineSegments(new THREE.BufferGeometry(), new THREE.LineBasicMaterial({ color: 0xe5e7eb }));
    this.body = new THREE.Mesh(new THREE.BoxGeometry(0.12, 0.07, 0.05),
      new THREE.MeshStandardMaterial({ color: 0x475569 }));
    this.lines.frustumCulled = false; // its points change: a bounding sphere computed once would go stale
    scene.add(this.lines, this.body);
    this.position = new THREE.Vector3();
  }

  set visible(on) {
    this.lines.visible = on;
    this.body.visible = on;
  }

  /** Place it in `room`, with the frame's aspect and horizontal field of view (degrees). */
  place(room, fovDeg, aspect) {
    const tx = Math.tan((fovDeg * Math.PI) / 360);
    const ty = tx / aspect;
    const d = FRUSTUM_M * 1000;
    const corners = [[-1, -1], [1, -1], [1, 1], [-1, 1]].map(([sx, sy]) => room.point([sx * tx * d, sy * ty * d, d]));
    this.position.copy(room.point([0, 0, 0]));
    const pts = [];
    corners.forEach((c, i) => pts.push(this.position, c, c, corners[(i + 1) % 4]));
    this.lines.geometry.setFromPoints(pts);
    this.body.position.copy(this.position);
    const forward = room.vector([0, 0, 1000]).normalize();
    this.body.quaternion.setFromUnitVectors(new THREE.Vector3(0, 0, -1), forward);
  }
}

/** The main person's path on the floor: old points fade into the background. */
class Trail {
  constructor(scene) {
    this.points = [];
    const geometry = new THREE.BufferGeometry();
    geometry.setAttribute("position", new THREE.BufferAttribute(new Float32Array(TRAIL_POINTS * 3), 3));
    geometry.setAttribute("color", new THREE.BufferAttribute(new Float32Array(TRAIL_POINTS * 3), 3));
    this.line = new THREE.Line(geometry, new THREE.LineBasicMaterial({ vertexColors: true }));
    this.line.frustumCulled = false;
    scene.add(this.line);
    this.id = null;
  }

  clear() {
    this.points = [];
    this.line.geometry.setDrawRange(0, 0);
  }

  /** Add the main person's pelvis (scene metres), projected onto the floor; a new main person starts anew. */
  add(id, p) {
    if (id !== this.id) this.clear();
    this.id = id;
    const last = this.points[this.points.length - 1];
    const q = new THREE.Vector3(p.x, 0.006, p.z);
    if (last && last.distanceTo(q) < TRAIL_STEP_M) return;
    this.points.push(q);
    if (this.points.length > TRAIL_POINTS) this.points.shift();
    const position = this.line.geometry.attributes.position;
    const colour = this.line.geometry.attributes.color;
    const bg = new THREE.Color(BACKGROUND);
    const fg = new THREE.Color(0xfacc15);
    const n = this.points.length;
    this.points.forEach((v, i) => {
      position.setXYZ(i, v.x, v.y, v.z);
      const c = bg.clone().lerp(fg, (i + 1) / n);
      colour.setXYZ(i, c.r, c.g, c.b);
    });
    position.needsUpdate = true;
    colour.needsUpdate = true;
    this.line.geometry.setDrawRange(0, n);
  }
}

export class View3D {
  constructor(container) {
    this.container = container;
    this.mode = "scene";
    this.layout = null;
    this.figures = new Map(); // person id -> Figure
    this.mainId = null;
    this.room = new Room(null, 1000 * DEFAULT_PELVIS_HEIGHT);
    this.camera3 = { fov: 65, aspect: 4 / 3 }; // the webcam's, from the pose messages
    this.fresh = false; // a pose arrived since the last frame drawn
    this.lastRender = -Infinity;
    this.dirty = true; // something changed since the last render: draw only then, to spare the CPU
    this.geometry = {
      sphere: new THREE.SphereGeometry(JOINT_RADIUS, 16, 12),
      cylinder: new THREE.CylinderGeometry(BONE_RADIUS, BONE_RADIUS, 1, 10),
      disc: new THREE.CircleGeometry(0.07, 20),
    };
    this.scene = new THREE.Scene();
    this.scene.background = new THREE.Color(BACKGROUND);
    this.scene.add(new THREE.HemisphereLight(0xffffff, 0x334155, 2.2));
    const sun = new THREE.DirectionalLight(0xffffff, 1.5);
    sun.position.set(2, 4, 3);
    this.scene.add(sun);
    this.pinnedGrid = new THREE.GridHelper(4, 16, 0x64748b, 0x334155);
    this.roomGrid = new THREE.GridHelper(16, 32, 0x64748b, 0x334155);
    this.scene.add(this.pinnedGrid, this.roomGrid);
    this.people = new THREE.Group();
    this.scene.add(this.people);
    this.webcam = new Webcam(this.scene);
    this.trail = new Trail(this.scene);
    // Where the scene view looks: between the webcam and the main person.
    this.focus = new THREE.Vector3(0, FOCUS_HEIGHT, -1.5);
    this.focusTarget = this.focus.clone();

    this.camera = new THREE.PerspectiveCamera(40, 1, 0.05, 80);
    try {
      this.renderer = new THREE.WebGLRenderer({ antialias: true });
    } catch (err) {
      // No WebGL: keep tracking the pose (the status line and test hook still work), say why there is no view.
      this.renderer = null;
      container.textContent = `The 3D view needs WebGL, which this browser cannot provide (${err.message}).`;
      container.classList.add("no-webgl");
      return;
    }
    this.renderer.setPixelRatio(window.devicePixelRatio);
    this.software = isSoftware(this.renderer.getContext());
    this.minFrameMs = this.software ? 1000 / SOFTWARE_FPS : 0;
    if (this.software) {
      console.info(`posecast: software WebGL, the 3D view redraws at most ${SOFTWARE_FPS} times a second`);
    }
    container.appendChild(this.renderer.domElement);
    this.controls = new OrbitControls(this.camera, this.renderer.domElement);
    this.controls.enableDamping = true;
    this.controls.addEventListener("change", () => { this.dirty = true; });
    new ResizeObserver(() => this.resize()).observe(container);
    this.resize();
    this.setMode(this.mode);
  }

  resize() {
    const w = this.container.clientWidth || 1;
    const h = this.container.clientHeight || 1;
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    this.renderer.setSize(w, h, false);
    this.dirty = true;
  }

  /** "scene" (everyone where they are) or "pinned" (the main person alone, at the centre). */
  setMode(mode) {
    this.mode = mode;
    const scene = mode === "scene";
    this.pinnedGrid.visible = !scene;
    this.roomGrid.visible = scene;
    this.webcam.visible = scene;
    this.trail.line.visible = scene;
    if (this.controls) {
      if (!scene) { // in front of the person, a little to the side and above
        this.controls.target.set(0, 0.85, 0);
        this.camera.position.set(0.8, 1.35, 2.9);
        this.controls.update();
      }
    }
    for (const figure of this.figures.values()) figure.placed = false; // jump to the new place, no flight
    this.framed = false;
    this.apply();
    if (scene) this.frameView();
    this.dirty = true;
  }

  /** Scene mode: look at the webcam and the main person, between them, from SCENE_VIEW_DIR. */
  frameView() {
    if (!this.controls) return;
    const main = this.figures.get(this.mainId);
    const person = main?.placed ? main.baseTarget : new THREE.Vector3(0, 0, -3);
    const cam = this.webcam.position;
    this.focus.set((cam.x + person.x) / 2, FOCUS_HEIGHT, (cam.z + person.z) / 2);
    this.focusTarget.copy(this.focus);
    const distance = Math.max(3.5, 1.3 * Math.hypot(person.x - cam.x, person.z - cam.z) + 1.5);
    this.controls.target.copy(this.focus);
    this.camera.position.copy(this.focus).addScaledVector(SCENE_VIEW_DIR, distance);
    this.controls.update();
    this.dirty = true;
  }

  /** Build the skeleton from a layout of the hello message (skeleton.h36m17). */
  setSkeleton(layout) {
    this.layout = layout;
    this.clear();
  }

  clear() {
    for (const figure of this.figures.values()) figure.dispose();
    this.figures.clear();
    this.trail.clear();
    this.last = null;
    this.framed = false;
    this.fresh = true;
    this.dirty = true;
  }

  /** A pose message: its people, floor and camera; null when the session ended. */
  setPose(msg, now = performance.now()) {
    this.fresh = true;
    this.dirty = true;
    if (!msg || !this.layout) {
      this.clear();
      return;
    }
    if (msg.camera) this.camera3 = { fov: msg.camera.fov, aspect: msg.frame_size[0] / msg.frame_size[1] };
    for (const person of msg.people) {
      let figure = this.figures.get(person.id);
      if (!figure) {
        figure = new Figure(this.layout, this.people, this.geometry);
        this.figures.set(person.id, figure);
      }
      figure.seen = now;
      figure.person = person;
    }
    for (const [id, figure] of this.figures) {
      if (now - figure.seen > GONE_MS) {
        figure.dispose();
        this.figures.delete(id);
      }
    }
    const main = msg.people[0];
    if (main) this.mainId = main.id;
    this.last = msg;
    this.apply();
  }

  /** Targets of every figure for the current mode, from the latest message. */
  apply() {
    const msg = this.last;
    if (!msg) return;
    const main = this.figures.get(this.mainId);
    // Until the server has a floor: a level camera as high above the main person's lowest joint as it is
    // (y is down), once every joint is seen (legs out of frame would put the floor at the hips).
    const person = main?.person;
    if (!msg.floor && person?.root && person.confidence.every((c) => c > 0)) {
      this.room.height = Math.max(...person.joints3d.map((p) => p[1])) + person.root[1];
    }
    this.room = new Room(msg.floor, this.room.height);
    for (const [id, figure] of this.figures) {
      const person = figure.person;
      const isMain = id === this.mainId;
      if (this.mode === "pinned") {
        figure.group.visible = isMain;
        figure.opacity = 1;
        figure.set(person, PINNED, null, {});
        const lowest = figure.lowest();
        figure.baseTarget.set(0, lowest === null ? figure.baseTarget.y : -lowest, 0);
        if (!figure.placed) figure.base.copy(figure.baseTarget);
        figure.placed = true;
        continue;
      }
      figure.group.visible = Boolean(person.root);
      figure.opacity = isMain ? 1 : OTHERS_OPACITY;
      if (!person.root) continue; // not placed this frame: it keeps its last place
      const base = this.room.point(person.root);
      figure.set(person, this.room, base, person.contact);
      if (isMain) {
        this.trail.add(id, base);
        this.focusTarget.set(base.x / 2, FOCUS_HEIGHT, base.z / 2);
      }
    }
    this.webcam.place(this.room, this.camera3.fov, this.camera3.aspect);
    if (this.mode === "scene" && !this.framed && main?.placed) { // the first placed main person: frame the view
      this.framed = true;
      this.frameView();
    }
  }

  /** Ease towards the targets by dt seconds and draw. Returns whether this frame shows a new pose first. */
  update(dt) {
    const k = 1 - Math.exp(-dt / EASE_SECONDS);
    let step = 0;
    for (const figure of this.figures.values()) step = Math.max(step, figure.update(k));
    if (this.mode === "scene" && this.controls) { // follow the action, keeping the user's angle and distance
      const before = this.focus.clone();
      this.focus.lerp(this.focusTarget, 1 - Math.exp(-dt / 0.5));
      const moved = this.focus.clone().sub(before);
      if (moved.lengthSq() > 1e-10) {
        this.controls.target.add(moved);
        this.camera.position.add(moved);
        step = Math.max(step, moved.length());
      }
      this.roomGrid.position.set(Math.round(this.focus.x), 0, Math.round(this.focus.z));
    }
    if (!this.renderer) return this.consumeFresh();
    this.controls.update(); // fires "change" while damping carries on
    const now = performance.now();
    if (!(this.dirty || step > STILL_M) || now - this.lastRender < this.minFrameMs) return false;
    this.renderer.render(this.scene, this.camera);
    this.lastRender = now;
    this.dirty = false;
    return this.consumeFresh();
  }

  consumeFresh() {
    const fresh = this.fresh;
    this.fresh = false;
    return fresh;
  }

  /** Displayed joint positions of the main person in scene metres (y up, grid at y = 0); null = hidden. */
  positions() {
    const main = this.figures.get(this.mainId);
    return main && main.group.visible ? main.positions() : (this.layout?.joints.map(() => null) ?? []);
  }

  /** What the view shows, for tests: mode, the webcam's place and every visible person's pelvis (m). */
  describe() {
    const pelvis = this.layout?.joints.indexOf("pelvis") ?? 0;
    const people = [...this.figures].filter(([, f]) => f.group.visible).map(([id, f]) => ({
      id, main: id === this.mainId, pelvis: f.positions()[pelvis], contact: { ...f.contact },
    }));
    return { mode: this.mode, camera: this.webcam.position.toArray(), fov: this.camera3.fov, people,
      trail: this.trail.points.length };
  }
}
