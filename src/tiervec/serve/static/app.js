// tiervec's search page: plain JavaScript over the /v1 API, no build step, no other host.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { collection: null, hits: [], active: -1, stats: null, seq: 0 };

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

async function api(method, path, body) {
  const headers = { "content-type": "application/json" };
  const key = sessionStorage.getItem("tiervec-key");
  if (key) headers.authorization = `Bearer ${key}`;
  const res = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
  const data = res.status === 204 ? null : await res.json();
  if (!res.ok) {
    const err = new Error((data && data.error && data.error.message) || res.statusText);
    err.status = res.status;
    err.code = data && data.error && data.error.code;
    throw err;
  }
  return data;
}

function showError(err) {
  const box = $("error");
  if (!err) { box.hidden = true; box.textContent = ""; return; }
  box.hidden = false;
  box.textContent = `${err.code || "Error"}: ${err.message}`;
  if (err.status === 401 || err.status === 403) showKey();
}

// -- collections and their stats --------------------------------------------------------------
async function loadCollections() {
  const { collections } = await api("GET", "/v1/collections");
  const select = $("collection");
  select.replaceChildren(...collections.map((c) => {
    const opt = el("option", "", `${c.name} (${c.documents.toLocaleString()} docs)`);
    opt.value = c.name;
    return opt;
  }));
  const wanted = new URLSearchParams(location.search).get("collection");
  if (wanted && collections.some((c) => c.name === wanted)) select.value = wanted;
  if (!collections.length) {
    $("summary").textContent = "no collections yet: create one with POST /v1/collections";
    return;
  }
  await selectCollection(select.value);
}

async function selectCollection(name) {
  state.collection = name;
  state.hits = [];
  $("results").replaceChildren();
  $("meta").textContent = "";
  showError(null);
  const [stats, info] = await Promise.all([
    api("GET", `/v1/collections/${encodeURIComponent(name)}/stats`),
    api("GET", `/v1/collections/${encodeURIComponent(name)}`),
  ]);
  state.stats = stats;
  $("summary").textContent = `${stats.documents.toLocaleString()} documents · ${stats.dim}-d · `
    + `${stats.model || "vectors only"} · ${stats.chain}`;
  renderStats(stats, info);
  for (const option of $("mode").options) {  // lexical and hybrid need the lexical index
    option.disabled = option.value !== "dense" && !info.lexical;
  }
  if ($("mode").selectedOptions[0].disabled) $("mode").value = "dense";
  renderPlan(info.has_plan ? await api("GET", `/v1/collections/${encodeURIComponent(name)}/plan`)
    .catch(() => null) : null, stats.chain);
}

// The recall target kept and what its last measurement chose (see `tiervec recall`).
function describeRecall(r) {
  if (!r) return "no target kept (the chain's oversampling as written)";
  const target = `target ${r.target}`;
  if (r.recall === null || r.recall === undefined) return `${target}; not measured yet`;
  const setting = [r.oversample && `oversample ${r.oversample}`, r.effort && `effort ${r.effort}`]
    .filter(Boolean).join(", ") || "nothing to tune";
  return `${r.recall.toFixed(3)} (${target}${r.met ? "" : ", NOT met"}) with ${setting}; `
    + `measured on ${r.queries} ${r.source} queries of ${r.rows.toLocaleString()} vectors, `
    + `${r.measured_at}`;
}

function renderStats(stats, info) {
  const table = $("stats");
  const rows = [
    ["documents", stats.documents.toLocaleString()],
    ["deleted (not yet compacted)", `${stats.deleted.toLocaleString()} (${(100 * stats.deleted_share).toFixed(1)}%)`],
    ["segments", String(stats.segments)],
    ["chain", stats.chain],
    ["RAM", `${bytes(stats.ram_bytes)} (${stats.ram_bytes_per_vector} B/vector)`],
    ["disk (tiers)", bytes(stats.disk_bytes)],
    ["recall@10 vs exact", describeRecall(stats.recall)],
  ];
  if (stats.shards) {
    const names = Object.keys(stats.shards);
    const down = names.filter((n) => stats.shards[n] !== null);
    rows.push(["shards", down.length ? `${names.length - down.length} of ${names.length} up; down: ${down.join(", ")}`
      : `${names.length}, all up`]);
  }
  const frag = document.createDocumentFragment();
  for (const [k, v] of rows) {
    const tr = el("tr");
    tr.append(el("th", "", k), el("td", "num", v));
    frag.append(tr);
  }
  const head = el("tr");
  head.append(el("th", "", "tier"), el("th", "num", "RAM"), el("th", "num", "disk"));
  frag.append(head);
  for (const t of stats.tiers) {
    const tr = el("tr");
    tr.append(el("td", "", `${t.spec}`), el("td", "num", bytes(t.ram_bytes)),
      el("td", "num", bytes(t.disk_bytes)));
    frag.append(tr);
  }
  const fields = Object.entries(info.fields);
  if (fields.length) {
    const tr = el("tr");
    tr.append(el("th", "", "filter fields"),
      el("td", "num", fields.map(([n, f]) => `${n}: ${f.type}${f.indexed ? " (indexed)" : ""}`).join(", ")));
    frag.append(tr);
  }
  table.replaceChildren(frag);
}

// -- the plan's frontier as an SVG chart ----------------------------------------------------------
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function renderPlan(plan, chain) {
  const box = $("plan");
  if (!plan || !plan.settings || !plan.settings.length) {
    const p = el("p", "muted");
    p.append("No plan yet: run ", el("code", "", "tiervec plan"), " on this collection to see its frontier here.");
    box.replaceChildren(p);
    return;
  }
  const W = 360, H = 250, L = 44, R = 14, T = 20, B = 34;
  const pts = plan.settings.filter((s) => s.ram_bytes_per_vector > 0);
  const xs = pts.map((s) => Math.log2(s.ram_bytes_per_vector));
  const ys = pts.map((s) => 100 * s.quality);
  const x0 = Math.floor(Math.min(...xs)), x1 = Math.ceil(Math.max(...xs)) || x0 + 1;
  const y0 = Math.floor(Math.min(...ys, 100) - 1), y1 = Math.ceil(Math.max(...ys, 100) + 0.5);
  const X = (v) => L + (W - L - R) * (v - x0) / Math.max(x1 - x0, 1);
  const Y = (v) => T + (H - T - B) * (1 - (v - y0) / Math.max(y1 - y0, 1));
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": "quality versus RAM per vector" });
  for (let e = x0; e <= x1; e += 1) {
    root.append(svg("line", { x1: X(e), x2: X(e), y1: T, y2: H - B, stroke: "#eef0f4" }));
    root.append(svg("text", { x: X(e), y: H - B + 13, "text-anchor": "middle" }, `${2 ** e}`));
  }
  const step = Math.max(1, Math.round((y1 - y0) / 5));
  for (let v = y0; v <= y1; v += step) {
    root.append(svg("line", { x1: L, x2: W - R, y1: Y(v), y2: Y(v), stroke: "#eef0f4" }));
    root.append(svg("text", { x: L - 4, y: Y(v) + 3, "text-anchor": "end" }, `${v}%`));
  }
  root.append(svg("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle" },
    "RAM bytes per vector (log scale)"));
  root.append(svg("text", { x: 10, y: (T + H - B) / 2, "text-anchor": "middle",
    transform: `rotate(-90 10 ${(T + H - B) / 2})` }, "% of float32 quality"));
  const frontier = pts.map((s, i) => [xs[i], ys[i], s]).filter((p) => p[2].pareto)
    .sort((a, b) => a[0] - b[0]);
  if (frontier.length > 1) {
    root.append(svg("polyline", { class: "frontier",
      points: frontier.map(([x, y]) => `${X(x)},${Y(y)}`).join(" ") }));
  }
  const current = normalise(chain);
  const recommended = plan.recommended && plan.recommended.tiers;
  pts.forEach((s, i) => {
    const dot = svg("circle", { cx: X(xs[i]), cy: Y(ys[i]), r: 4,
      class: `pt${s.pareto ? " pareto" : ""}` });
    dot.append(svg("title", {}, `${s.tiers}\n${s.ram_bytes_per_vector} B/vector · `
      + `${(100 * s.quality).toFixed(2)}% of float32 · ${s.qps.toFixed(0)} QPS`));
    root.append(dot);
    if (normalise(s.tiers) === current) {
      root.append(svg("circle", { cx: X(xs[i]), cy: Y(ys[i]), r: 8, class: "pt current",
        "data-current": s.tiers }));
    }
    if (s.tiers === recommended) {
      root.append(svg("text", { x: X(xs[i]) + 7, y: Y(ys[i]) - 7 }, "recommended"));
    }
  });
  const legend = el("div", "legend muted");
  const marked = pts.some((s) => normalise(s.tiers) === current);
  legend.textContent = `${pts.length} settings measured on ${plan.plan_queries}; blue: Pareto-optimal; `
    + (marked ? `red ring: current (${chain})` : `current setting (${chain}) was not measured`)
    + (recommended ? `; recommended: ${recommended}` : "");
  box.replaceChildren(root, legend);
}

function normalise(spec) { return String(spec).replace(/\s+/g, ""); }

// -- searching --------------------------------------------------------------------------------
async function search() {
  const q = $("query").value.trim();
  if (!q || !state.collection) return;
  const body = { query: q, k: Number($("k").value), mode: $("mode").value };
  const f = $("filter").value.trim();
  if (f) body.filter = f;
  const seq = ++state.seq;
  const started = performance.now();
  let data;
  try {
    data = await api("POST", `/v1/collections/${encodeURIComponent(state.collection)}/search`, body);
  } catch (err) {
    if (seq !== state.seq) return;
    showError(err);
    $("results").replaceChildren();
    $("meta").textContent = "";
    return;
  }
  if (seq !== state.seq) return; // a newer search was sent meanwhile
  showError(null);
  renderResults(data.results[0], data.took_ms, performance.now() - started);
}

function renderResults(hits, serverMs, totalMs) {
  state.hits = hits;
  state.active = -1;
  const frag = document.createDocumentFragment();
  hits.forEach((h, i) => {
    const li = el("li");
    li.dataset.id = h.id;
    li.dataset.score = String(h.score);
    const head = el("div", "hit-head");
    head.append(el("span", "rank", `${i + 1}.`), el("span", "title", h.title || h.id),
      el("span", "hit-id", h.title ? h.id : ""), el("span", "score", h.score.toFixed(4)));
    const text = h.text || "";
    li.append(head, el("div", "snippet", text.length > 320 ? `${text.slice(0, 320)}…` : text));
    li.dataset.full = text;
    const meta = Object.entries(h.metadata || {});
    if (meta.length) {
      const chips = el("div", "chips");
      for (const [k, v] of meta) chips.append(el("span", "chip", `${k}: ${JSON.stringify(v)}`));
      li.append(chips);
    }
    li.addEventListener("click", () => { setActive(i); toggle(li); });
    frag.append(li);
  });
  $("results").replaceChildren(frag);
  $("meta").textContent = hits.length
    ? `${hits.length} results · server ${serverMs.toFixed(1)} ms · round trip ${totalMs.toFixed(1)} ms`
    : "no results (the filter may match no documents)";
}

function toggle(li) {
  li.classList.toggle("open");
  const snippet = li.querySelector(".snippet");
  const full = li.dataset.full;
  snippet.textContent = li.classList.contains("open") || full.length <= 320
    ? full : `${full.slice(0, 320)}…`;
}

function setActive(i) {
  const items = $("results").children;
  if (!items.length) return;
  state.active = Math.max(0, Math.min(items.length - 1, i));
  for (const [j, li] of Array.from(items).entries()) li.classList.toggle("active", j === state.active);
  items[state.active].scrollIntoView({ block: "nearest" });
}

// -- keyboard ---------------------------------------------------------------------------------
document.addEventListener("keydown", (e) => {
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
  if (e.key === "Escape") {
    if (typing) document.activeElement.blur();
    $("results").replaceChildren();
    $("meta").textContent = "";
    state.hits = [];
    return;
  }
  if (typing) return;
  if (e.key === "/") { e.preventDefault(); $("query").focus(); $("query").select(); }
  else if (e.key === "f") { e.preventDefault(); $("filter").focus(); }
  else if (e.key === "ArrowDown" || e.key === "j") { e.preventDefault(); setActive(state.active + 1); }
  else if (e.key === "ArrowUp" || e.key === "k") { e.preventDefault(); setActive(state.active - 1); }
  else if (e.key === "Enter" && state.active >= 0) { toggle($("results").children[state.active]); }
});

$("search-form").addEventListener("submit", (e) => { e.preventDefault(); search(); });
$("collection").addEventListener("change", (e) => {
  selectCollection(e.target.value).catch(showError);
});
// The server's key (asked for once the API answers 401), kept for this tab only; it can be
// changed by typing another, or forgotten.
function showKey() {
  const stored = sessionStorage.getItem("tiervec-key");
  $("key-box").hidden = false;
  $("api-key").value = "";
  $("api-key").placeholder = stored ? "stored; type to change" : "";
}
$("api-key").addEventListener("change", (e) => {
  sessionStorage.setItem("tiervec-key", e.target.value);
  showKey();
  loadCollections().then(() => showError(null)).catch(showError);
});
$("forget-key").addEventListener("click", () => {
  sessionStorage.removeItem("tiervec-key");
  showKey();
  $("api-key").focus();
});
if (sessionStorage.getItem("tiervec-key")) showKey();

loadCollections().catch(showError);
