// The 3D view: the skeleton from the server's hello message on a ground grid, orbit controls,
// each pose eased towards every animation frame. Server joints are camera axes in mm
// (x right, y down, z away from the camera); three.js here is metres, y up, the viewer in front.
import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";

export const SIDE_COLOURS = { right: 0x3b82f6, left: 0xef4444, centre: 0x9ca3af }; // the paper's blue/red
const EASE_SECONDS = 0.06; // time constant of the easing towards the latest pose
const DEFAULT_PELVIS_HEIGHT = 0.95; // metres above the grid until both feet have been seen
const JOINT_RADIUS = 0.028;
const BONE_RADIUS = 0.016;
const UP = new THREE.Vector3(0, 1, 0);
const STILL_M = 1e-4; // easing steps below this are not worth a redraw
// Without a GPU every WebGL frame costs ~20 ms of CPU (readback and software compositing),
// CPU a server on the same machine needs: there the view redraws at most this often.
const SOFTWARE_FPS = 12;

/** Whether WebGL runs on the CPU (SwiftShader, llvmpipe: headless browsers, VMs, blocked GPUs). */
function isSoftware(gl) {
  const info = gl.getExtension("WEBGL_debug_renderer_info");
  const name = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
  return /swiftshader|llvmpipe|softpipe|software/i.test(name);
}

/** Camera axes (mm, y down, z away) -> three.js world (m, y up, towards the viewer). */
function toWorld([x, y, z]) {
  return new THREE.Vector3(x / 1000, -y / 1000, -z / 1000);
}

export class View3D {
  constructor(container) {
    this.container = container;
    this.joints = []; // {mesh, shown: Vector3, target: Vector3|null, confidence}
    this.bones = []; // {mesh, a, b}
    this.lift = DEFAULT_PELVIS_HEIGHT; // pelvis height above the grid, eased like the joints
    this.liftTarget = DEFAULT_PELVIS_HEIGHT;
    this.fresh = false; // a pose arrived since the last frame drawn
    this.lastRender = -Infinity;
    this.dirty = true; // something changed since the last render: draw only then, to spare the CPU
    this.scene = new THREE.Scene();
    this.scene.background = new THREE.Color(0x111827);
    this.scene.add(new THREE.HemisphereLight(0xffffff, 0x334155, 2.2));
    const sun = new THREE.DirectionalLight(0xffffff, 1.5);
    sun.position.set(2, 4, 3);
    this.scene.add(sun);
    const grid = new THREE.GridHelper(4, 16, 0x64748b, 0x334155);
    this.scene.add(grid);
    this.skeleton = new THREE.Group();
    this.scene.add(this.skeleton);

    this.camera = new THREE.PerspectiveCamera(40, 1, 0.05, 50);
    this.camera.position.set(0.8, 1.35, 2.9); // in front, a little to the side and above
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
    if (this.software) console.info(`posecast: software WebGL, the 3D view redraws at most ${SOFTWARE_FPS} times a second`);
    container.appendChild(this.renderer.domElement);
    this.controls = new OrbitControls(this.camera, this.renderer.domElement);
    this.controls.target.set(0, 0.85, 0);
    this.controls.enableDamping = true;
    this.controls.addEventListener("change", () => { this.dirty = true; });
    this.controls.update();
    new ResizeObserver(() => this.resize()).observe(container);
    this.resize();
  }

  resize() {
    const w = this.container.clientWidth || 1;
    const h = this.container.clientHeight || 1;
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    this.renderer.setSize(w, h, false);
    this.dirty = true;
  }

  /** Build joints and bones from a layout of the hello message (skeleton.h36m17). */
  setSkeleton(layout) {
    this.skeleton.clear();
    const sphere = new THREE.SphereGeometry(JOINT_RADIUS, 16, 12);
    const cylinder = new THREE.CylinderGeometry(BONE_RADIUS, BONE_RADIUS, 1, 10);
    const material = (side) => new THREE.MeshStandardMaterial({ color: SIDE_COLOURS[side], roughness: 0.5, transparent: true });
    this.joints = layout.joints.map((name, i) => {
      const mesh = new THREE.Mesh(sphere, material(layout.sides[i]));
      mesh.name = name;
      mesh.visible = false;
      this.skeleton.add(mesh);
      return { mesh, shown: new THREE.Vector3(), target: null, confidence: 0 };
    });
    this.bones = layout.edges.map(([a, b], i) => {
      const mesh = new THREE.Mesh(cylinder, material(layout.edge_sides[i]));
      mesh.visible = false;
      this.skeleton.add(mesh);
      return { mesh, a, b };
    });
    this.dirty = true;
  }

  /** The next pose to ease towards: joints3d [17][3] mm and confidence [17], or null when nobody is in view. */
  setPose(joints3d, confidence) {
    this.fresh = true;
    this.dirty = true;
    if (!joints3d) {
      for (const j of this.joints) j.target = null;
      return;
    }
    this.joints.forEach((j, i) => {
      j.confidence = confidence[i];
      j.target = confidence[i] > 0 ? toWorld(joints3d[i]) : null;
    });
    // Feet on the grid: the lowest joint sets the height, but only when every joint is seen,
    // else a half-visible body (legs out of frame) would stand on its hips.
    if (this.joints.every((j) => j.target)) {
      this.liftTarget = -Math.min(...this.joints.map((j) => j.target.y));
    }
  }

  /** Ease towards the targets by dt seconds and draw. Returns whether this frame shows a new pose first. */
  update(dt) {
    const k = 1 - Math.exp(-dt / EASE_SECONDS);
    let step = Math.abs(this.liftTarget - this.lift) * k;
    this.lift += (this.liftTarget - this.lift) * k;
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
      j.mesh.position.set(j.shown.x, j.shown.y + this.lift, j.shown.z);
      j.mesh.material.opacity = Math.min(1, 0.3 + j.confidence);
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

  /** Displayed joint positions in world metres (y up, grid at y = 0); null for a hidden joint. */
  positions() {
    return this.joints.map((j) => (j.mesh.visible ? j.mesh.position.toArray() : null));
  }
}
