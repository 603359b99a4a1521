// 2D drawing: keypoints on the frame they came from, and the first three panels of the paper's
// pipeline view (input crop, the detector's COCO-18 keypoints, the converted 17 joints).
const SIDE_CSS = { right: "#3b82f6", left: "#ef4444", centre: "#d1d5db" };

/**
 * Draw a skeleton's 2D points into ctx.
 * points: [[x, y], ...] in frame pixels; confidence: [c, ...] (0 = missing, not drawn);
 * layout: {edges, sides, edge_sides} from the hello message; toCanvas maps frame pixels to canvas pixels.
 */
export function drawSkeleton2d(ctx, points, confidence, layout, toCanvas, scale = 1) {
  ctx.lineCap = "round";
  ctx.lineWidth = 3 * scale;
  layout.edges.forEach(([a, b], i) => {
    if (!(confidence[a] > 0 && confidence[b] > 0)) return;
    const [ax, ay] = toCanvas(points[a]);
    const [bx, by] = toCanvas(points[b]);
    ctx.strokeStyle = SIDE_CSS[layout.edge_sides[i]];
    ctx.globalAlpha = Math.min(1, 0.3 + Math.min(confidence[a], confidence[b]));
    ctx.beginPath();
    ctx.moveTo(ax, ay);
    ctx.lineTo(bx, by);
    ctx.stroke();
  });
  points.forEach((p, i) => {
    if (!(confidence[i] > 0)) return;
    const [x, y] = toCanvas(p);
    ctx.globalAlpha = Math.min(1, 0.3 + confidence[i]);
    ctx.fillStyle = SIDE_CSS[layout.sides[i]];
    ctx.beginPath();
    ctx.arc(x, y, 4 * scale, 0, 2 * Math.PI);
    ctx.fill();
  });
  ctx.globalAlpha = 1;
}

/**
 * Keypoints of every person, drawn on the very frame they came from: `frame` is the sent frame with the pose's
 * tag (the page keeps the last few), painted over the live video, so fast arms do not leave their keypoints
 * behind. Without it (an untagged pose, a frame no longer kept) the keypoints go over the live video.
 * The canvas has the video's pixel size.
 */
export function drawOverlay(canvas, video, pose, skeleton, frame = null) {
  if (video.videoWidth && (canvas.width !== video.videoWidth || canvas.height !== video.videoHeight)) {
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
  }
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!pose || !skeleton) return;
  if (frame) ctx.drawImage(frame, 0, 0, canvas.width, canvas.height);
  canvas.dataset.frame = frame ? String(pose.frame) : "live"; // which image the keypoints are on (tests)
  const sx = canvas.width / pose.frame_size[0];
  const sy = canvas.height / pose.frame_size[1];
  const toCanvas = ([x, y]) => [x * sx, y * sy];
  if (pose.crop) {
    const [x0, y0, x1, y1] = pose.crop;
    ctx.setLineDash([6, 6]);
    ctx.strokeStyle = "rgba(255,255,255,0.35)";
    ctx.lineWidth = 1;
    ctx.strokeRect(x0 * sx, y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy);
    ctx.setLineDash([]);
  }
  for (const person of pose.people) {
    drawSkeleton2d(ctx, person.keypoints, person.confidence, skeleton.h36m17, toCanvas, canvas.width / 640);
  }
}

const PANEL_HEIGHT = 360; // canvas pixels; CSS scales the panels to fit

/**
 * The pipeline panels: the detector's input crop (the pose's `crop`, frame pixels) cut from `image`
 * (the sent frame the pose came from, else the live video), the main person's COCO-18 keypoints on
 * it, and the converted 17 joints on it.
 */
export function drawPipeline({ crop, coco, h36m }, image, pose, skeleton) {
  const panels = [crop, coco, h36m];
  const imageWidth = image.videoWidth ?? image.width;
  const imageHeight = image.videoHeight ?? image.height;
  if (!pose || !skeleton || !imageWidth) {
    for (const c of panels) c.getContext("2d").clearRect(0, 0, c.width, c.height);
    return;
  }
  const [fw, fh] = pose.frame_size;
  const [x0, y0, x1, y1] = pose.crop ?? [0, 0, fw, fh];
  const width = Math.max(1, Math.round((PANEL_HEIGHT * (x1 - x0)) / Math.max(1, y1 - y0)));
  const vx = imageWidth / fw;
  const vy = imageHeight / fh;
  const toCanvas = ([x, y]) => [((x - x0) * width) / (x1 - x0), ((y - y0) * PANEL_HEIGHT) / (y1 - y0)];
  const person = pose.people[0];
  for (const c of panels) {
    if (c.width !== width || c.height !== PANEL_HEIGHT) {
      c.width = width;
      c.height = PANEL_HEIGHT;
    }
    const ctx = c.getContext("2d");
    ctx.drawImage(image, x0 * vx, y0 * vy, (x1 - x0) * vx, (y1 - y0) * vy, 0, 0, width, PANEL_HEIGHT);
    if (c !== crop) {
      ctx.fillStyle = "rgba(17,24,39,0.45)"; // dim the photo so the keypoints stand out
      ctx.fillRect(0, 0, width, PANEL_HEIGHT);
    }
  }
  if (!person) return;
  drawSkeleton2d(coco.getContext("2d"), person.coco18.map(([x, y]) => [x, y]), person.coco18.map((p) => p[2]),
    skeleton.coco18, toCanvas);
  drawSkeleton2d(h36m.getContext("2d"), person.keypoints, person.confidence, skeleton.h36m17, toCanvas);
}
