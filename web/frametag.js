// Frame tags: the frame id drawn into the top-left corner of each sent frame, so the server
// can echo it in the pose message and the page can measure capture-to-display latency.
// The same layout as posecast/frametag.py; its parameters come from the server's hello message:
// a row of `cells` square cells of side floor(width / cells_per_width) px; cell 0 white, cell 1
// black, then `bits` bits of the id (mod 2**bits), most significant first, white = 1.

/** @typedef {{bits: number, cells: number, cells_per_width: number}} FrameTagLayout */

/** Side of one cell in pixels for a frame `width` px wide. */
export function cellSize(width, layout) {
  return Math.max(2, Math.floor(width / layout.cells_per_width));
}

/** Draw `id` into a 2D canvas context whose canvas is `width` px wide. Returns id mod 2**bits. */
export function draw(ctx, width, id, layout) {
  const s = cellSize(width, layout);
  const tag = id % 2 ** layout.bits;
  for (let i = 0; i < layout.cells; i++) {
    const bit = i === 0 ? 1 : i === 1 ? 0 : (tag >> (layout.bits - 1 - (i - 2))) & 1;
    ctx.fillStyle = bit ? "#fff" : "#000";
    ctx.fillRect(i * s, 0, s, s);
  }
  return tag;
}
