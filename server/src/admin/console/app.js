// The game server's console: rooms, a room's players from above, and charts of the last
// minutes, from the admin endpoint's event stream (/api/console/feed, five updates a second).
// Plain JavaScript and SVG; no library, nothing loaded from elsewhere.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const HISTORY_SECONDS = 300; // the charts' history
const MIN_WINDOW_SECONDS = 30; // their narrowest time span, while the history is shorter
const MAP = 600; // the map's viewBox side
const $ = (id) => document.getElementById(id);

let room = roomFromHash(); // the chosen room's id, or null
let selected = null; // the selected player's id
let extent = 0; // the map's half-width in world units; only grows while a room is shown
let feed = null;
let last = null; // the previous update, for rates
let lastSample = null; // the update the last chart point was computed from
const history = []; // chart points: {t, players, in, out, p50, p99}

function roomFromHash() {
  const m = /room=(\d+)/.exec(location.hash);
  return m ? Number(m[1]) : null;
}

function el(tag, attrs = {}, parent = null, ns = null) {
  const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function status(text, bad = false) {
  $("status").textContent = text;
  $("status").className = bad ? "bad" : "";
}

// The outcome of the operator's last action (a kick), kept until the next one.
function action(text, bad = false) {
  $("action").textContent = text;
  $("action").className = bad ? "bad" : "";
}

function connect() {
  if (feed) feed.close();
  feed = new EventSource("/api/console/feed" + (room === null ? "" : "?room=" + room));
  feed.addEventListener("update", (e) => {
    status("live");
    update(JSON.parse(e.data));
  });
  feed.addEventListener("unavailable", (e) => status(e.data, true));
  feed.onerror = () => status("disconnected; retrying…", true);
}

function choose(id) {
  if (id === room) return;
  room = id;
  selected = null;
  extent = 0;
  clearRoom();
  // Remembered in the address, so a reload shows the same room.
  location.hash = id === null ? "" : "room=" + id;
  connect();
}

function update(u) {
  $("summary").textContent = `${u.players} players in ${u.rooms.length} rooms · up ${duration(u.uptime_s)}`;
  renderRooms(u.rooms);
  if (room === null && u.rooms.length) return choose(u.rooms[0].id);
  renderRoom(u.room);
  sample(u);
  last = u;
}

function renderRooms(rooms) {
  const list = $("rooms");
  list.replaceChildren();
  for (const r of rooms) {
    const li = el("li", { "data-room": r.id }, list);
    if (r.id === room) li.className = "chosen";
    el("span", {}, li).textContent = "room " + r.id;
    el("span", {}, li).textContent = r.players;
    li.onclick = () => choose(r.id);
  }
  if (!rooms.length) el("li", {}, list).textContent = "none open";
}

function renderRoom(detail) {
  const map = $("map");
  if (!detail) {
    $("room-title").textContent = room === null ? "No room" : `Room ${room} is closed`;
    clearRoom();
    return;
  }
  $("room-title").textContent = `Room ${detail.id} · ${detail.player_count} players`;
  const players = detail.players;
  const shown = players.length < detail.player_count ? `showing ${players.length} of ${detail.player_count} players · ` : "";
  const radius = detail.view_radius;
  $("note").textContent = shown + (radius ? `view radius ${radius}` : "everyone sees everyone") + " · x → right, z ↑ up";
  let needed = 10;
  for (const p of players) needed = Math.max(needed, Math.abs(p.x), Math.abs(p.z));
  if (radius && selected !== null) needed += radius;
  extent = Math.max(extent, nice(needed * 1.1));
  drawMap(map, players, radius);
  drawTable(players);
}

function clearRoom() {
  $("map").replaceChildren();
  dots.clear();
  drawTable([]);
  $("note").textContent = "";
}

// A round number at least `v`: 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten.
function nice(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  return [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10].map((m) => m * p).find((n) => n >= v);
}

function toMap(x, z) {
  const scale = (MAP / 2 - 10) / extent;
  return [MAP / 2 + x * scale, MAP / 2 - z * scale, scale];
}

// The map and the table keep one element per player, moved and updated in place, so a click on
// a dot or a button is not lost to the next update.
const dots = new Map(); // player id → {dot, label}
const rows = new Map(); // player id → table row

function drawMap(map, players, radius) {
  if (!map.querySelector(".grid") || map.dataset.extent !== String(extent)) {
    map.replaceChildren();
    dots.clear();
    map.dataset.extent = extent;
    for (const f of [-1, -0.5, 0, 0.5, 1]) {
      const [a] = toMap(f * extent, 0);
      el("line", { class: "grid", x1: a, y1: 0, x2: a, y2: MAP }, map, SVG);
      el("line", { class: "grid", x1: 0, y1: a, x2: MAP, y2: a }, map, SVG);
    }
    el("text", { class: "scale", x: 6, y: MAP - 6 }, map, SVG).textContent = `±${extent}`;
    el("circle", { class: "view", r: 0, visibility: "hidden" }, map, SVG);
  }
  const view = map.querySelector(".view");
  const me = players.find((p) => p.id === selected);
  if (me && radius) {
    const [cx, cy, scale] = toMap(me.x, me.z);
    for (const [k, v] of Object.entries({ cx, cy, r: radius * scale, visibility: "visible" })) view.setAttribute(k, v);
  } else {
    view.setAttribute("visibility", "hidden");
  }
  const present = new Set();
  for (const p of players) {
    present.add(p.id);
    let shown = dots.get(p.id);
    if (!shown) {
      const dot = el("circle", { class: "player", "data-player": p.id, r: 6 }, map, SVG);
      dot.onclick = () => select(p.id);
      const label = el("text", { class: "label" }, map, SVG);
      label.textContent = p.id;
      shown = { dot, label };
      dots.set(p.id, shown);
    }
    const [cx, cy] = toMap(p.x, p.z);
    shown.dot.setAttribute("cx", cx);
    shown.dot.setAttribute("cy", cy);
    shown.dot.classList.toggle("selected", p.id === selected);
    shown.label.setAttribute("x", cx + 8);
    shown.label.setAttribute("y", cy + 4);
  }
  for (const [id, shown] of dots) {
    if (!present.has(id)) {
      shown.dot.remove();
      shown.label.remove();
      dots.delete(id);
    }
  }
}

function drawTable(players) {
  const body = $("players").tBodies[0];
  const present = new Set();
  for (const p of players) {
    present.add(p.id);
    let row = rows.get(p.id);
    if (!row) {
      row = el("tr", { "data-player": p.id }, body);
      for (let i = 0; i < 7; i++) el("td", {}, row);
      const kick = el("button", { class: "kick", "data-kick": p.id, title: "close this player's connection" }, el("td", {}, row));
      kick.textContent = "kick";
      kick.onclick = (e) => {
        e.stopPropagation();
        kickPlayer(p.id, kick);
      };
      row.onclick = () => select(p.id);
      rows.set(p.id, row);
    }
    row.classList.toggle("selected", p.id === selected);
    const since = p.connected_since ? duration((Date.now() - Date.parse(p.connected_since)) / 1000) : "-";
    const cells = [p.id, p.x.toFixed(1), p.z.toFixed(1), p.peer ?? "-", p.packets_in, p.packets_out, since];
    cells.forEach((text, i) => {
      if (row.cells[i].textContent !== String(text)) row.cells[i].textContent = text;
    });
  }
  for (const [id, row] of rows) {
    if (!present.has(id)) {
      row.remove();
      rows.delete(id);
    }
  }
}

function select(id) {
  selected = selected === id ? null : id;
  if (last && last.room) renderRoom(last.room);
}

async function kickPlayer(id, button) {
  button.disabled = true;
  try {
    const answer = await fetch(`/api/players/${id}/kick`, { method: "POST" });
    const body = await answer.json();
    action(answer.ok ? `player ${id} kicked` : `kick failed: ${body.error}`, !answer.ok);
  } catch (e) {
    action(`kick failed: ${e}`, true);
  }
}

// One chart point a second: rates and tick percentiles over the second since the last point.
function sample(u) {
  if (lastSample && u.uptime_s - lastSample.uptime_s < 1) return;
  if (lastSample && u.uptime_s > lastSample.uptime_s) {
    const dt = u.uptime_s - lastSample.uptime_s;
    const ticks = u.tick_buckets.map((n, i) => n - (lastSample.tick_buckets[i] ?? 0));
    history.push({
      t: u.uptime_s,
      players: u.players,
      in: (u.packets_in - lastSample.packets_in) / dt,
      out: (u.packets_out - lastSample.packets_out) / dt,
      p50: quantile(0.5, u.tick_bounds, ticks),
      p99: quantile(0.99, u.tick_bounds, ticks),
    });
    while (history.length && history[0].t < u.uptime_s - HISTORY_SECONDS) history.shift();
    drawCharts(u.uptime_s);
  }
  lastSample = u;
}

// The q-quantile of a histogram's counts per bucket, in ms, interpolated inside its bucket as
// Prometheus' histogram_quantile does; null without counts.
function quantile(q, bounds, counts) {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total <= 0) return null;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    if (below + counts[i] >= rank && counts[i] > 0) {
      if (i >= bounds.length) return bounds[bounds.length - 1] * 1000;
      const low = i === 0 ? 0 : bounds[i - 1];
      return (low + (bounds[i] - low) * ((rank - below) / counts[i])) * 1000;
    }
    below += counts[i];
  }
  return null;
}

function drawCharts(now) {
  chart($("chart-players"), now, [["a", "players"]]);
  chart($("chart-packets"), now, [["in", "in"], ["out", "out"]]);
  chart($("chart-tick"), now, [["in", "p50"], ["out", "p99"]]);
}

function chart(svg, now, series) {
  const [w, h, top] = [300, 110, 12];
  const span = Math.min(HISTORY_SECONDS, Math.max(MIN_WINDOW_SECONDS, now - (history.length ? history[0].t : now)));
  let max = 0;
  for (const s of history) for (const [, key] of series) max = Math.max(max, s[key] ?? 0);
  max = max > 0 ? nice(max) : 1;
  svg.replaceChildren();
  for (const [cls, key] of series) {
    const points = history
      .filter((s) => s[key] !== null)
      .map((s) => `${(w * (1 - (now - s.t) / span)).toFixed(1)},${(h - (h - top) * (s[key] / max)).toFixed(1)}`);
    el("polyline", { class: cls, points: points.join(" ") }, svg, SVG);
  }
  el("text", { x: 3, y: 10 }, svg, SVG).textContent = max;
  el("text", { x: w - 3, y: h - 3, "text-anchor": "end" }, svg, SVG).textContent = span < 60 ? `${Math.round(span)} s` : `${(span / 60).toFixed(1)} min`;
}

function duration(s) {
  if (s < 60) return `${Math.floor(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

window.addEventListener("hashchange", () => {
  const id = roomFromHash();
  if (id !== null) choose(id);
});
connect();
