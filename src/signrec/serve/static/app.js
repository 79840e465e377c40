// signrec's page: upload a clip (drag and drop or file picker) or sign to the camera.
// Plain JavaScript, no build step. Talks to POST /api/predict and the WebSocket /api/live.
"use strict";

const $ = (id) => document.getElementById(id);
const PART_NAMES = { pose: "body", face: "face", left_hand: "left hand", right_hand: "right hand" };
let info = null;

// ---- model and tabs ---------------------------------------------------------------------------------------

async function loadInfo() {
  try {
    const r = await fetch("/api/info");
    info = await r.json();
    $("model").textContent = `${info.model}: ${info.labels.length} signs (${info.labels.slice(0, 8).join(", ")}` +
      `${info.labels.length > 8 ? ", …" : ""})`;
    $("limits").textContent = `Up to ${info.max_mb} MB and ${info.max_frames} frames: mp4, mov, webm, avi…`;
  } catch (e) {
    $("model").textContent = "The signrec server does not answer: is `signrec serve` still running?";
  }
}

function showTab(which) {
  for (const name of ["upload", "live"]) {
    $(`tab-${name}`).setAttribute("aria-selected", String(name === which));
    $(`${name}-panel`).hidden = name !== which;
  }
  if (which !== "live") stopLive();
}
$("tab-upload").addEventListener("click", () => showTab("upload"));
$("tab-live").addEventListener("click", () => showTab("live"));

// ---- upload -----------------------------------------------------------------------------------------------

function showError(box, message) {
  box.textContent = message;
  box.hidden = false;
}

async function upload(file) {
  $("upload-error").hidden = true;
  $("result").hidden = true;
  if (info && file.size > info.max_mb * 1e6) {
    showError($("upload-error"), `${file.name} is ${(file.size / 1e6).toFixed(1)} MB; this server takes clips up to ` +
      `${info.max_mb} MB. Send a shorter clip of the sign alone.`);
    return;
  }
  $("upload-status").textContent = `Recognising ${file.name}…`;
  const form = new FormData();
  form.append("file", file, file.name);
  let answer;
  try {
    const r = await fetch("/api/predict", { method: "POST", body: form });
    answer = await r.json().catch(() => ({ detail: `the server answered ${r.status} ${r.statusText}` }));
    if (!r.ok) {
      const wait = r.headers.get("Retry-After");
      $("upload-status").textContent = "";
      showError($("upload-error"), (answer.detail || `error ${r.status}`) +
        (wait && !String(answer.detail).includes("try again") ? ` Try again in ${wait} s.` : ""));
      if (answer.presence) showPresence(answer);  // no person: show what was (not) found
      return;
    }
  } catch (e) {
    $("upload-status").textContent = "";
    showError($("upload-error"), `The upload did not reach the server (${e.message}). Is signrec serve running?`);
    return;
  }
  $("upload-status").textContent = "";
  showResult(answer);
}

function percent(p) {
  return `${(100 * p).toFixed(1)}%`;
}

function showResult(a) {
  $("best").textContent = a.top.length ? a.top[0].gloss : "?";
  const length = a.seconds ? `${a.seconds.toFixed(2)} s, ` : "";
  $("clip-info").textContent = `${a.input}: ${length}${a.frames} frames${a.fps ? ` at ${a.fps.toFixed(3).replace(/\.?0+$/, "")} fps` : ""}`;
  const bars = $("bars");
  bars.replaceChildren();
  for (const t of a.top) {
    const li = document.createElement("li");
    li.innerHTML = `<span class="gloss"></span><span class="track"><span class="fill"></span></span><span class="pct"></span>`;
    li.querySelector(".gloss").textContent = t.gloss;
    li.querySelector(".fill").style.width = percent(t.probability);
    li.querySelector(".pct").textContent = percent(t.probability);
    li.setAttribute("aria-label", `${t.gloss}: ${percent(t.probability)}`);
    bars.appendChild(li);
  }
  showPresence(a);
}

// A strip per part (body, face, hands): a green column for each frame in which it was found.
function showPresence(a) {
  const canvas = $("presence");
  const ctx = canvas.getContext("2d");
  const parts = Object.keys(a.presence);
  const label = 92, pctw = 52, rowH = canvas.height / parts.length;
  const width = canvas.width - label - pctw;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "13px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  parts.forEach((part, row) => {
    const flags = a.presence[part];
    const y = row * rowH;
    ctx.fillStyle = "#1b1f24";
    ctx.fillText(PART_NAMES[part] || part, 6, y + rowH / 2);
    const w = width / Math.max(1, flags.length);
    flags.forEach((f, i) => {
      ctx.fillStyle = f ? "#2da44e" : "#e3e6ea";
      ctx.fillRect(label + i * w, y + 3, Math.max(1, w - (w > 3 ? 1 : 0)), rowH - 6);
    });
    ctx.fillStyle = "#5b6470";
    ctx.fillText(percent(a.found[part]).replace(".0%", "%"), label + width + 6, y + rowH / 2);
  });
  const hands = Math.max(a.found.left_hand, a.found.right_hand);
  let note = "Green: found in that frame; grey: not found.";
  if (a.found.pose < 0.5) note += " The body was found in few frames: is the signer in view?";
  else if (hands < 0.5) note += ` Hands were found in only ${percent(hands)} of the frames, so the prediction may be ` +
    "poor: more light, the hands inside the picture, or slower signing help.";
  $("presence-note").textContent = note;
  $("result").hidden = false;
  if (!a.top) {  // an error answer: only the strip
    $("best").textContent = "no sign";
    $("clip-info").textContent = `${a.input}: ${a.frames} frames`;
    $("bars").replaceChildren();
  }
}

const drop = $("drop");
$("file").addEventListener("change", (e) => {
  if (e.target.files.length) upload(e.target.files[0]);
  e.target.value = "";
});
drop.addEventListener("keydown", (e) => {
  if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); }
});
for (const kind of ["dragenter", "dragover"]) {
  drop.addEventListener(kind, (e) => { e.preventDefault(); drop.classList.add("over"); });
}
for (const kind of ["dragleave", "drop"]) {
  drop.addEventListener(kind, () => drop.classList.remove("over"));
}
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  const files = e.dataTransfer && e.dataTransfer.files;
  if (files && files.length) upload(files[0]);
});
// A file dropped anywhere else must not make the browser leave the page to play it.
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => e.preventDefault());

// ---- live camera ------------------------------------------------------------------------------------------

const live = { ws: null, stream: null, running: false, inFlight: 0, canvas: document.createElement("canvas"),
  sent: 0, stamps: [], chain: Promise.resolve(), lastGuess: "" };
const MAX_IN_FLIGHT = 2;  // frames on their way or being recognised: more would only queue up
const MAX_SIDE = 640;     // frames are scaled down to this: MediaPipe works on small images anyway

async function startLive() {
  $("live-error").hidden = true;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showError($("live-error"), "This browser allows the camera only on http://127.0.0.1, http://localhost or HTTPS. " +
      "Open the page on the machine that runs signrec serve.");
    return;
  }
  $("start").disabled = true;
  $("live-status").textContent = "Starting the camera…";
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } },
      audio: false });
  } catch (e) {
    $("start").disabled = false;
    $("live-status").textContent = "";
    showError($("live-error"), `The camera could not be opened (${e.name}: ${e.message}). Allow the camera for this ` +
      "page, or check that no other program uses it.");
    return;
  }
  const video = $("video");
  video.srcObject = live.stream;
  await video.play().catch(() => {});
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/api/live`);
  ws.binaryType = "arraybuffer";
  live.ws = ws;
  live.running = true;
  live.inFlight = 0;
  live.sent = 0;
  live.stamps = [];
  live.lastGuess = "";
  $("stop").disabled = false;
  $("live-status").textContent = "Connecting to the recogniser…";
  ws.onmessage = (event) => onLiveMessage(JSON.parse(event.data));
  ws.onclose = (event) => {
    if (live.running && event.code !== 1000) {
      showError($("live-error"), event.reason || "The connection to the recogniser closed.");
    }
    stopLive();
  };
  ws.onerror = () => {};
}

function onLiveMessage(m) {
  if (m.error) {
    if (m.frame === undefined) live.inFlight = Math.max(0, live.inFlight - 1);
    showError($("live-error"), m.error);
    if (!live.sent) stopLive();  // refused before the first frame (busy)
    else pump();
    return;
  }
  if (m.ready) {
    $("live-status").textContent = `Sign in front of the camera. The model reads the last ${m.window} frames.`;
    pump();
    return;
  }
  live.inFlight = Math.max(0, live.inFlight - 1);
  const now = performance.now();
  live.stamps.push(now);
  while (live.stamps.length > 30) live.stamps.shift();
  const fps = live.stamps.length > 1 ? (live.stamps.length - 1) * 1000 / (now - live.stamps[0]) : 0;
  const shown = $("shown");
  shown.textContent = m.shown;
  shown.classList.toggle("idle", m.shown === "no sign");
  if (m.gloss) live.lastGuess = `${m.gloss} ${percent(m.probability)}`;
  $("guess").textContent = `${live.lastGuess ? `guess: ${live.lastGuess} · ` : ""}${fps.toFixed(1)} frames/s`;
  const missing = Object.entries(m.parts).filter(([p, f]) => !f && p !== "face").map(([p]) => PART_NAMES[p]);
  $("live-status").textContent = m.status || (missing.length ? `Not found in this frame: ${missing.join(", ")}.` :
    "Body and both hands found.");
  pump();
}

function pump() {
  const video = $("video");
  while (live.running && live.ws && live.ws.readyState === WebSocket.OPEN && live.inFlight < MAX_IN_FLIGHT) {
    if (!video.videoWidth) {  // no picture yet
      setTimeout(pump, 50);
      return;
    }
    const scale = Math.min(1, MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
    live.canvas.width = Math.round(video.videoWidth * scale);
    live.canvas.height = Math.round(video.videoHeight * scale);
    live.canvas.getContext("2d").drawImage(video, 0, 0, live.canvas.width, live.canvas.height);
    live.inFlight += 1;
    // toBlob copies the picture now; the sends are chained so that frames leave in the order they were taken
    const encoded = new Promise((resolve) => live.canvas.toBlob(resolve, "image/jpeg", 0.85));
    const ws = live.ws;
    live.chain = live.chain.then(() => encoded).then(async (blob) => {
      if (!blob || ws.readyState !== WebSocket.OPEN) { live.inFlight -= 1; return; }
      ws.send(await blob.arrayBuffer());
      live.sent += 1;
    });
  }
}

function stopLive() {
  live.running = false;
  if (live.ws) { live.ws.onclose = null; live.ws.close(1000); live.ws = null; }
  if (live.stream) { for (const t of live.stream.getTracks()) t.stop(); live.stream = null; }
  $("video").srcObject = null;
  $("start").disabled = false;
  $("stop").disabled = true;
  if ($("live-status").textContent.startsWith("Sign") || $("live-status").textContent.startsWith("Connecting")) {
    $("live-status").textContent = "";
  }
}

$("start").addEventListener("click", startLive);
$("stop").addEventListener("click", stopLive);
window.addEventListener("beforeunload", stopLive);

loadInfo();
