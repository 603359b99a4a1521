// One session with the server (docs/protocol.md): a websocket for signalling and the pose
// stream, and a send-only WebRTC peer for the video. The server's ICE agent (aiortc) has no
// trickle ICE, so the offer goes out only once ICE gathering has completed.
const GATHER_TIMEOUT_MS = 5000; // send what was gathered if the browser never reports "complete"

/** ws:// or wss:// URL of the server's websocket, beside the page. */
export function serverUrl(location = window.location) {
  const url = new URL("ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

function iceGatheringDone(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", done);
      resolve();
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, GATHER_TIMEOUT_MS);
  });
}

/**
 * Open a session that sends `track`. Handlers (all optional):
 *   hello(msg)  before the peer starts: set up what the pose stream needs (e.g. the frame-tag layout)
 *   pose(msg), error(msg)  the server's messages
 *   peerState(state)  the RTCPeerConnection's connectionState
 *   closed({opened, code, reason})  once, when the session ends for any reason
 * Returns {close(), send(msg)}; send() drops a message while the socket is not open (the page resends its
 * settings after each hello).
 */
export function connect(url, track, on) {
  const ws = new WebSocket(url);
  let pc = null;
  let opened = false;
  let ended = false;
  let queue = Promise.resolve(); // messages are handled in order, even across awaits

  const end = (code, reason) => {
    if (ended) return;
    ended = true;
    pc?.close();
    if (ws.readyState <= WebSocket.OPEN) ws.close();
    on.closed?.({ opened, code, reason });
  };

  async function startPeer() {
    pc = new RTCPeerConnection();
    pc.addTransceiver(track, { direction: "sendonly" });
    pc.addEventListener("connectionstatechange", () => {
      on.peerState?.(pc.connectionState);
      if (pc.connectionState === "failed") end(4000, "WebRTC connection failed");
    });
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringDone(pc);
    if (!ended) ws.send(JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }));
  }

  async function handle(msg) {
    if (ended) return;
    switch (msg.type) {
      case "hello":
        on.hello?.(msg);
        await startPeer();
        break;
      case "answer":
        await pc?.setRemoteDescription({ type: "answer", sdp: msg.sdp });
        break;
      case "pose":
        on.pose?.(msg);
        break;
      case "error":
        on.error?.(msg);
        break;
      default: // newer servers may send more: ignore what this page does not know
    }
  }

  ws.addEventListener("open", () => { opened = true; });
  ws.addEventListener("message", (event) => {
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch {
      console.warn("posecast: ignoring a message that is not JSON");
      return;
    }
    queue = queue.then(() => handle(msg)).catch((err) => {
      console.error("posecast: session failed", err);
      end(4001, String(err.message ?? err));
    });
  });
  ws.addEventListener("close", (event) => end(event.code, event.reason));
  return {
    close: () => end(1000, "closed by the page"),
    send: (msg) => { if (ws.readyState === WebSocket.OPEN && !ended) ws.send(JSON.stringify(msg)); },
  };
}
