// keeneye console: the little script the pages need (no framework, no network beyond this server).
"use strict";

// Forms that delete ask first.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});

// The live view: the latest annotated frame and its line counts, fetched a few times a second while
// the page is visible.
function startLiveView() {
  const img = document.getElementById("live");
  if (!img) return;
  const meta = document.getElementById("live-meta");
  const counts = document.querySelector("#line-counts tbody");
  let busy = false;
  async function tick() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const response = await fetch(img.dataset.meta, { cache: "no-store", credentials: "same-origin" });
      if (response.ok) {
        const data = await response.json();
        const status = document.getElementById("processor-status");
        if (status && data.status) {
          status.textContent = data.status.toLowerCase();
          status.className = "status-" + data.status.toLowerCase();
          const running = data.status === "RUNNING" || data.status === "STARTING";
          const start = document.getElementById("start-button");
          const stop = document.getElementById("stop-button");
          if (start) start.disabled = start.dataset.allowed !== "true" || running;
          if (stop) stop.disabled = stop.dataset.allowed !== "true" || !running;
        }
        const next = new Image();
        next.onload = () => { img.src = next.src; };
        next.src = img.dataset.src + "?t=" + Date.now();
        const behind = Math.max(0, Date.now() / 1000 - data.captured_at);
        meta.textContent = `Frame at ${(data.pts_ms / 1000).toFixed(1)} s · ${behind.toFixed(2)} s behind the camera · ${data.tracks.length} tracked`;
        counts.replaceChildren(...Object.entries(data.counts).map(([name, c]) => {
          const row = document.createElement("tr");
          for (const value of [name, c.in, c.out]) {
            const cell = document.createElement("td");
            cell.textContent = String(value);
            row.append(cell);
          }
          return row;
        }));
      } else {
        meta.textContent = "No live view: the processor is not running, or has seen no frame yet.";
      }
    } catch (err) {
      meta.textContent = "The live view is not reachable.";
    } finally {
      busy = false;
    }
  }
  tick();
  setInterval(tick, 300);
}

// Lines and zones drawn on a snapshot: two clicks make a line; a zone is its corners, closed by a button.
// Coordinates are ratios of the image, as the processors' options take them.
function startLineDrawing() {
  const img = document.getElementById("snapshot");
  if (!img) return;
  img.src = img.dataset.src;
  img.addEventListener("error", () => { img.alt = "No snapshot: the camera did not answer"; });
  const svg = document.getElementById("draw-lines");
  const linesField = document.getElementById("lines");
  const zonesField = document.getElementById("zones");
  const nameField = document.getElementById("line-name");
  const summary = document.getElementById("drawn-summary");
  const zoneMode = document.getElementById("mode-zone");
  const parse = (field) => { try { return JSON.parse(field.value || "[]"); } catch (err) { return []; } };
  let lines = parse(linesField);
  let zones = zonesField ? parse(zonesField) : [];
  let first = null;
  let corners = [];
  const ns = "http://www.w3.org/2000/svg";
  function draw() {
    const shapes = lines.map((l) => {
      const el = document.createElementNS(ns, "line");
      el.setAttribute("x1", l.p1[0]); el.setAttribute("y1", l.p1[1]);
      el.setAttribute("x2", l.p2[0]); el.setAttribute("y2", l.p2[1]);
      return el;
    });
    for (const polygon of zones.map((z) => z.polygon).concat(corners.length ? [corners] : [])) {
      const el = document.createElementNS(ns, "polygon");
      el.setAttribute("points", polygon.map((p) => p.join(",")).join(" "));
      shapes.push(el);
    }
    svg.replaceChildren(...shapes);
    linesField.value = JSON.stringify(lines);
    if (zonesField) zonesField.value = JSON.stringify(zones);
    if (summary) {
      summary.textContent = `${lines.length} lines (${lines.map((l) => l.name).join(", ") || "none"}), ` +
        `${zones.length} zones (${zones.map((z) => z.name).join(", ") || "none"})` +
        (corners.length ? `; a zone with ${corners.length} corners being drawn` : "");
    }
  }
  const nameOf = (fallback) => (nameField.value || fallback).trim() || fallback;
  img.addEventListener("click", (event) => {
    const box = img.getBoundingClientRect();
    const point = [+((event.clientX - box.left) / box.width).toFixed(4), +((event.clientY - box.top) / box.height).toFixed(4)];
    if (zoneMode && zoneMode.checked) { corners.push(point); draw(); return; }
    if (first === null) { first = point; return; }
    const name = nameOf("line");
    lines = lines.filter((l) => l.name !== name).concat([{ name, p1: first, p2: point }]);
    first = null;
    draw();
  });
  const close = document.getElementById("close-zone");
  if (close) {
    close.addEventListener("click", () => {
      if (corners.length < 3) return;
      const name = nameOf("zone");
      zones = zones.filter((z) => z.name !== name).concat([{ name, polygon: corners }]);
      corners = [];
      draw();
    });
  }
  document.getElementById("clear-lines").addEventListener("click", () => {
    lines = []; zones = []; corners = []; first = null; draw();
  });
  draw();
}

// A video job: reload while it runs; once done, draw each person's box over the player at its time.
function startJobPage() {
  const state = document.getElementById("job-state");
  if (state && (state.dataset.state === "QUEUED" || state.dataset.state === "RUNNING")) {
    setTimeout(() => window.location.reload(), 2000);
  }
  const player = document.getElementById("player");
  if (!player) return;
  const canvas = document.getElementById("overlay");
  const info = document.getElementById("player-meta");
  const ctx = canvas.getContext("2d");
  let boxes = [];
  fetch(player.dataset.tracks, { cache: "no-store", credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : { boxes: [] }))
    .then((data) => { boxes = data.boxes; draw(); });
  const colours = ["#f4b400", "#00b3ff", "#ff4d6d", "#7bd389", "#c77dff"];
  function draw() {
    const t = player.currentTime * 1000;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    // The boxes of the analysed frame nearest the playhead (frames are analysed a few times a second).
    let nearest = null;
    for (const b of boxes) {
      if (nearest === null || Math.abs(b[0] - t) < Math.abs(nearest - t)) nearest = b[0];
    }
    let shown = 0;
    if (nearest !== null && Math.abs(nearest - t) < 500) {
      ctx.lineWidth = Math.max(2, canvas.width / 400);
      ctx.font = `${Math.max(14, canvas.width / 50)}px sans-serif`;
      for (const [pts, index, x0, y0, x1, y1] of boxes) {
        if (pts !== nearest) continue;
        const colour = colours[index % colours.length];
        ctx.strokeStyle = colour; ctx.fillStyle = colour;
        ctx.strokeRect(x0 * canvas.width, y0 * canvas.height, (x1 - x0) * canvas.width, (y1 - y0) * canvas.height);
        ctx.fillText(`person ${index}`, x0 * canvas.width + 4, y0 * canvas.height + 18);
        shown += 1;
      }
    }
    info.textContent = `${(t / 1000).toFixed(1)} s · ${shown} people drawn`;
  }
  player.addEventListener("timeupdate", draw);
  player.addEventListener("seeked", draw);
  player.addEventListener("loadeddata", draw);
  function frameLoop() { if (!player.paused) draw(); requestAnimationFrame(frameLoop); }
  requestAnimationFrame(frameLoop);
}

// New access key: a preset fills the policy box (then edited as needed).
function startPresets() {
  const select = document.getElementById("preset");
  if (!select) return;
  const presets = JSON.parse(select.dataset.presets);
  select.addEventListener("change", () => {
    document.getElementById("policy").value = presets[select.value] || "";
  });
}

document.addEventListener("DOMContentLoaded", () => { startLiveView(); startLineDrawing(); startJobPage(); startPresets(); });
