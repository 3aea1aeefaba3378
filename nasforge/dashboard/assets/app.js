// nasforge dashboard: a read-only view of a store, polled while searches write to it. No dependencies.
"use strict";

const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];
const POLL_MS = 2000;
let pollTimer = null;
let generation = 0; // bumped on every navigation, so a late answer for an old page is dropped

// ---- small helpers ---------------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "onclick") node.addEventListener("click", value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function fmt(value, digits = 4) {
  if (value === null || value === undefined) return "-";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en");
  return Math.abs(value) >= 1000 ? value.toFixed(0) : value.toPrecision(digits);
}

function studyHref(name) { return "#/study/" + encodeURIComponent(name); }
function trialHref(name, n) { return studyHref(name) + "/trial/" + n; }
function api(...parts) { return "/api/" + parts.map((p) => encodeURIComponent(p)).join("/"); }

function setStatus(text) { document.getElementById("status").textContent = text; }
function setWhere(...nodes) { document.getElementById("where").replaceChildren(...nodes); }

function poll(page, fn) {
  clearTimeout(pollTimer);
  const tick = async () => {
    if (page !== generation) return;
    let again = true;
    try {
      again = (await fn()) !== false;
      setStatus("updated " + new Date().toLocaleTimeString());
    } catch (error) {
      setStatus("could not update: " + error.message);
    }
    if (again && page === generation) pollTimer = setTimeout(tick, POLL_MS);
  };
  return tick();
}

// ---- charts on a canvas ----------------------------------------------------------------------
function niceTicks(lo, hi, count) {
  if (!(hi > lo)) { hi = lo + 1; }
  const step0 = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(t);
  return ticks;
}

// series: [{points: [[x, y], ...], kind: "dots" | "line" | "step", colour, label}]
function drawChart(canvas, series, options = {}) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 400;
  const height = canvas.clientHeight || 240;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  const mini = height < 150;
  const pad = mini ? { l: 38, r: 8, t: 6, b: 18 } : { l: 58, r: 14, t: 10, b: 38 };
  const logx = Boolean(options.logx);
  const tx = (x) => (logx ? Math.log10(Math.max(x, 1e-12)) : x);
  const all = series.flatMap((s) => s.points).filter((p) => p[0] !== null && p[1] !== null);
  g.font = (mini ? 10 : 12) + "px system-ui, sans-serif";
  g.fillStyle = "#66707c";
  if (!all.length) {
    g.fillText(options.empty || "nothing to show yet", pad.l, height / 2);
    return;
  }
  let [x0, x1] = [Math.min(...all.map((p) => tx(p[0]))), Math.max(...all.map((p) => tx(p[0])))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 === y0) { y0 -= Math.abs(y0) * 0.05 || 1; y1 += Math.abs(y1) * 0.05 || 1; }
  const ym = (y1 - y0) * 0.05;
  y0 -= ym; y1 += ym;
  const px = (x) => pad.l + ((tx(x) - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const py = (y) => height - pad.b - ((y - y0) / (y1 - y0)) * (height - pad.t - pad.b);
  g.strokeStyle = "#dde2e8";
  g.lineWidth = 1;
  g.textAlign = "right";
  for (const t of niceTicks(y0, y1, mini ? 3 : 5)) {
    g.beginPath(); g.moveTo(pad.l, py(t)); g.lineTo(width - pad.r, py(t)); g.stroke();
    g.fillText(fmt(t, 3), pad.l - 4, py(t) + 4);
  }
  g.textAlign = "center";
  const xticks = logx ? niceTicks(x0, x1, 5).filter((t) => Number.isInteger(t)).map((t) => Math.pow(10, t))
    : niceTicks(x0, x1, mini ? 3 : 6);
  for (const t of xticks) {
    g.fillText(logx ? "1e" + Math.round(Math.log10(t)) : fmt(t, 3), px(t), height - pad.b + (mini ? 12 : 15));
  }
  if (!mini) {
    g.fillText(options.xlabel || "", pad.l + (width - pad.l - pad.r) / 2, height - 6);
    g.save(); g.translate(13, pad.t + (height - pad.t - pad.b) / 2); g.rotate(-Math.PI / 2);
    g.fillText(options.ylabel || "", 0, 0); g.restore();
  }
  for (const s of series) {
    const pts = s.points.filter((p) => p[0] !== null && p[1] !== null);
    g.strokeStyle = g.fillStyle = s.colour || COLOURS[0];
    if (s.kind === "dots") {
      g.globalAlpha = pts.length > 2000 ? 0.35 : 0.6;
      const r = pts.length > 2000 ? 1.6 : 2.6;
      for (const [x, y] of pts) { g.beginPath(); g.arc(px(x), py(y), r, 0, 2 * Math.PI); g.fill(); }
      g.globalAlpha = 1;
      continue;
    }
    g.lineWidth = s.width || 2;
    g.beginPath();
    pts.forEach(([x, y], i) => {
      if (i === 0) g.moveTo(px(x), py(y));
      else if (s.kind === "step") { g.lineTo(px(x), py(pts[i - 1][1])); g.lineTo(px(x), py(y)); }
      else g.lineTo(px(x), py(y));
    });
    if (s.kind === "step" && pts.length && options.extendTo !== undefined) g.lineTo(px(options.extendTo), py(pts[pts.length - 1][1]));
    g.stroke();
    if (s.marks) for (const [x, y] of pts) { g.beginPath(); g.arc(px(x), py(y), 3.5, 0, 2 * Math.PI); g.fill(); }
  }
}

// ---- pages -------------------------------------------------------------------------------------
async function studiesPage(page) {
  const main = document.getElementById("main");
  setWhere("studies");
  const selected = new Set();
  const compare = el("a", { class: "muted" }, "select studies to compare");
  const body = el("tbody");
  main.replaceChildren(el("h1", {}, "Studies"), el("div", { class: "card" },
    el("table", { id: "studies" }, el("thead", {}, el("tr", {}, ["", "study", "space", "strategy", "objective",
      "complete", "running", "failed", "best"].map((c) => el("th", {}, c)))), body), el("p", {}, compare)));
  const updateCompare = () => {
    if (selected.size >= 1) {
      compare.setAttribute("href", "#/compare?studies=" + [...selected].map(encodeURIComponent).join(","));
      compare.className = ""; compare.textContent = "compare " + selected.size + " selected";
    } else { compare.removeAttribute("href"); compare.className = "muted"; compare.textContent = "select studies to compare"; }
  };
  await poll(page, async () => {
    const data = await getJSON("/api/studies");
    document.getElementById("storage").textContent = data.storage;
    if (page !== generation) return;
    body.replaceChildren(...data.studies.map((s) => {
      const box = el("input", { type: "checkbox", "aria-label": "compare " + s.name, checked: selected.has(s.name) });
      box.addEventListener("change", () => { box.checked ? selected.add(s.name) : selected.delete(s.name); updateCompare(); });
      return el("tr", {}, el("td", {}, box), el("td", {}, el("a", { href: studyHref(s.name) }, s.name)),
        el("td", {}, s.space || "-"), el("td", {}, s.strategy || "-"), el("td", {}, s.objective + " (" + s.direction + ")"),
        el("td", { class: "num" }, fmt(s.counts.complete || 0)), el("td", { class: "num" }, fmt(s.counts.running || 0)),
        el("td", { class: "num" }, fmt(s.counts.failed || 0)), el("td", { class: "num" }, fmt(s.best)));
    }));
    if (!data.studies.length) body.append(el("tr", {}, el("td", { colspan: 9, class: "muted" }, "no studies in this store yet")));
  });
}

async function studyPage(page, name) {
  const main = document.getElementById("main");
  setWhere(el("a", { href: "#/" }, "studies"), " / ", name);
  const counts = el("div", { class: "counts" });
  const board = el("tbody");
  const history = el("canvas", { class: "chart", id: "history" });
  const pareto = el("canvas", { class: "chart", id: "pareto" });
  const paretoTitle = el("h2", {}, "Pareto front");
  const running = el("div", { class: "running-list" });
  let byTime = false;
  let data = null;
  const seen = new Set();
  const toggle = el("span", { class: "toggle" });
  const redrawHistory = () => {
    if (!data) return;
    const rows = data.history.rows.filter((r) => r[1] === "complete" && r[2] !== null);
    const x = (r) => (byTime ? r[3] : r[0]);
    const best = [];
    const sorted = [...rows].sort((a, b) => x(a) - x(b));
    const better = data.direction === "minimize" ? (a, b) => a < b : (a, b) => a > b;
    for (const r of sorted) if (!best.length || better(r[2], best[best.length - 1][1])) best.push([x(r), r[2]]);
    const last = sorted.length ? x(sorted[sorted.length - 1]) : undefined;
    drawChart(history, [{ points: rows.map((r) => [x(r), r[2]]), kind: "dots", colour: COLOURS[0] },
      { points: best, kind: "step", colour: COLOURS[2] }],
      { xlabel: byTime ? "wall time (s)" : "trial number", ylabel: data.objective, extendTo: last,
        empty: "no complete trial yet" });
  };
  const buttons = ["trial number", "wall time"].map((label, i) => {
    const b = el("button", { type: "button", class: i === 0 ? "on" : "" }, label);
    b.addEventListener("click", () => { byTime = i === 1; buttons.forEach((o, k) => { o.className = k === i ? "on" : ""; }); redrawHistory(); });
    return b;
  });
  toggle.append(...buttons);
  main.replaceChildren(el("h1", {}, name), counts, el("div", { class: "grid" },
    el("section", { class: "card wide" }, el("h2", {}, "Leaderboard"),
      el("div", { class: "scroll" }, el("table", { id: "leaderboard" }, el("thead", {}, el("tr", {}, ["rank", "trial", "value",
        "test", "params", "time (s)", "architecture"].map((c) => el("th", { class: c === "architecture" ? "" : "num" }, c)))),
      board))),
    el("section", { class: "card" }, el("h2", {}, "History ", toggle), history, el("div", { class: "legend" },
      el("span", {}, el("i", { class: "swatch-0" }), "trial"), el("span", {}, el("i", { class: "swatch-2" }), "best so far"))),
    el("section", { class: "card" }, paretoTitle, pareto),
    el("section", { class: "card wide" }, el("h2", {}, "Running trials"), running)));
  window.addEventListener("resize", redrawHistory);
  await poll(page, async () => {
    data = await getJSON(api("study", name));
    if (page !== generation) return;
    const c = data.counts;
    counts.replaceChildren(el("span", {}, data.space + " space, " + data.strategy + " strategy"),
      el("span", {}, "objective " + data.objective + " (" + data.direction + ")"),
      ...["complete", "running", "failed", "pruned"].map((k) => el("span", {}, el("span", { class: "pill " + k }, k), " " + fmt(c[k] || 0))));
    board.replaceChildren(...data.leaderboard.map((r) => {
      const row = el("tr", { class: "link" + (seen.size && !seen.has(r.trial) ? " new" : ""), dataset: { trial: r.trial } },
        el("td", { class: "num" }, r.rank), el("td", { class: "num" }, el("a", { href: trialHref(name, r.trial) }, r.trial)),
        el("td", { class: "num" }, fmt(r.value)), el("td", { class: "num" }, fmt(r.test)), el("td", { class: "num" }, fmt(r.params)),
        el("td", { class: "num" }, fmt(r.time_s, 3)), el("td", { class: "arch" }, r.architecture));
      row.addEventListener("click", () => { location.hash = trialHref(name, r.trial); });
      return row;
    }));
    data.leaderboard.forEach((r) => seen.add(r.trial));
    if (!data.leaderboard.length) board.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "no complete trial yet")));
    document.body.dataset.leaderboard = String(data.leaderboard.length);
    redrawHistory();
    const front = new Set(data.pareto.front);
    const points = data.pareto.points;
    drawChart(pareto, [{ points: points.map((p) => [p[1], p[2]]), kind: "dots", colour: "#7f7f7f" },
      { points: points.filter((p) => front.has(p[0])).map((p) => [p[1], p[2]]).sort((a, b) => a[0] - b[0]), kind: "step", colour: COLOURS[3], marks: true }],
      { xlabel: data.pareto.x, ylabel: data.pareto.y, logx: points.length > 1 && Math.max(...points.map((p) => p[1])) > 30 * Math.max(1, Math.min(...points.map((p) => p[1]))),
        empty: "no complete trial stores " + data.pareto.objectives.join(" and ") });
    paretoTitle.textContent = data.pareto.y + " against " + data.pareto.x + " (front over " + data.pareto.objectives.join(", ") + ")";
    running.replaceChildren(...data.running.map((t) => {
      const canvas = el("canvas", { class: "mini" });
      const card = el("div", { class: "card" }, el("a", { href: trialHref(name, t.trial) }, "trial " + t.trial), " ",
        el("span", { class: "muted" }, (t.progress.length ? "epoch " + t.progress[t.progress.length - 1].step : "starting")),
        canvas, el("div", { class: "muted arch" }, t.architecture));
      return [card, canvas, t];
    }).map(([card, canvas, t]) => {
      requestAnimationFrame(() => drawChart(canvas, curveSeries(t.progress, data.objective), { empty: "no epoch finished yet" }));
      return card;
    }));
    if (!data.running.length) running.append(el("p", { class: "muted" }, "none"));
    performance.mark("nasforge-study-painted");
  });
}

function curveSeries(points, objective) {
  const names = [objective, "train_loss"].filter((n) => points.some((p) => p[n] !== undefined));
  return names.map((n, i) => ({ points: points.filter((p) => p[n] !== undefined).map((p) => [p.step, p[n]]), kind: "line",
    colour: COLOURS[i], label: n }));
}

async function trialPage(page, name, number) {
  const main = document.getElementById("main");
  setWhere(el("a", { href: "#/" }, "studies"), " / ", el("a", { href: studyHref(name) }, name), " / trial " + number);
  const head = el("div");
  const metrics = el("tbody");
  const curve = el("canvas", { class: "chart", id: "curve" });
  const curveLegend = el("div", { class: "legend" });
  const drawing = el("div");
  const error = el("div");
  const commands = el("div");
  main.replaceChildren(el("h1", {}, name + ": trial " + number), head, el("div", { class: "grid" },
    el("section", { class: "card wide" }, el("h2", {}, "Architecture"), drawing),
    el("section", { class: "card" }, el("h2", {}, "Metrics"), el("table", { class: "kv" }, metrics)),
    el("section", { class: "card" }, el("h2", {}, "Learning curve"), curve, curveLegend),
    el("section", { class: "card wide" }, el("h2", {}, "Commands"), commands, error)));
  let drawn = false;
  await poll(page, async () => {
    const t = await getJSON(api("study", name, "trial", String(number)));
    if (page !== generation) return;
    head.replaceChildren(el("p", {}, el("span", { class: "pill " + t.state }, t.state), " ", t.objective + " " + fmt(t.value),
      t.params !== null ? " · " + fmt(t.params) + " params" : "", t.duration_s !== null ? " · " + fmt(t.duration_s, 3) + " s" : "",
      t.parent !== null ? " · parent " : "", t.parent !== null ? el("a", { href: trialHref(name, t.parent) }, t.parent) : ""),
      el("p", { class: "arch muted" }, t.summary));
    const rows = Object.entries(t.metrics).sort();
    rows.push(["seed", t.seed], ["key", t.key]);
    metrics.replaceChildren(...rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { class: "num" }, fmt(v)))));
    const series = curveSeries(t.curve, t.objective);
    drawChart(curve, series, { xlabel: "epoch", empty: "no stored curve" });
    curveLegend.replaceChildren(...series.map((s, i) => el("span", {}, el("i", { class: "swatch-" + i }), s.label)));
    if (!drawn && t.drawable) {
      drawn = true;
      const img = el("img", { class: "drawing", alt: "architecture of trial " + number, src: api("study", name, "trial", String(number)) + "/drawing.svg" });
      img.addEventListener("error", () => { drawing.replaceChildren(el("p", { class: "muted" }, "no drawing for this trial")); });
      drawing.replaceChildren(img);
    } else if (!t.drawable) drawing.replaceChildren(el("p", { class: "muted" }, "this trial's space cannot be drawn here"));
    commands.replaceChildren(...Object.entries(t.commands).map(([k, v]) => el("p", {}, el("b", {}, k + ": "), el("code", {}, v))));
    error.replaceChildren(...(t.error ? [el("h2", {}, "Error"), el("pre", { class: "error" }, t.error)] : []));
    return ["running", "waiting"].includes(t.state); // a finished trial no longer changes: stop polling
  });
}

async function comparePage(page, names) {
  const main = document.getElementById("main");
  setWhere(el("a", { href: "#/" }, "studies"), " / compare");
  const chart = el("canvas", { class: "chart", id: "compare" });
  const body = el("tbody");
  const keys = el("div", { class: "legend" });
  main.replaceChildren(el("h1", {}, "Compare studies"), el("div", { class: "grid" },
    el("section", { class: "card wide" }, el("h2", {}, "Best so far by trial number"), chart, keys),
    el("section", { class: "card wide" }, el("table", {}, el("thead", {}, el("tr", {}, ["study", "space", "strategy",
      "objective", "complete", "best"].map((c) => el("th", {}, c)))), body))));
  await poll(page, async () => {
    const data = await getJSON("/api/compare?studies=" + names.map(encodeURIComponent).join(","));
    if (page !== generation) return;
    const last = Math.max(0, ...data.studies.map((s) => s.curve.length ? s.curve[s.curve.length - 1][0] : 0));
    drawChart(chart, data.studies.map((s, i) => ({ points: s.curve, kind: "step", colour: COLOURS[i % 6] })),
      { xlabel: "trial number", ylabel: data.studies.map((s) => s.objective).filter((v, i, a) => a.indexOf(v) === i).join(" / "), extendTo: last });
    keys.replaceChildren(...data.studies.map((s, i) => el("span", {}, el("i", { class: "swatch-" + (i % 6) }), s.name)));
    body.replaceChildren(...data.studies.map((s) => el("tr", {}, el("td", {}, el("a", { href: studyHref(s.name) }, s.name)),
      el("td", {}, s.space), el("td", {}, s.strategy), el("td", {}, s.objective + " (" + s.direction + ")"),
      el("td", { class: "num" }, fmt(s.complete)), el("td", { class: "num" }, fmt(s.best)))));
  });
}

function route() {
  generation += 1;
  clearTimeout(pollTimer);
  const page = generation;
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  let done;
  if (parts[0] === "study" && parts.length === 2) done = studyPage(page, parts[1]);
  else if (parts[0] === "study" && parts.length === 4 && parts[2] === "trial") done = trialPage(page, parts[1], Number(parts[3]));
  else if (parts[0] === "compare") {
    const names = new URLSearchParams(query || "").get("studies") || "";
    done = comparePage(page, names.split(",").filter(Boolean));
  } else done = studiesPage(page);
  done.catch((error) => {
    document.getElementById("main").replaceChildren(el("p", { class: "muted" }, "error: " + error.message));
  });
}

window.addEventListener("hashchange", route);
route();
