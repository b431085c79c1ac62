// traceflow serve: the page. Plain ES module, no build step. Every value from a capture is put in the page as
// text (textContent, SVG text nodes), never as HTML. The whole state lives in the URL.

const FLOW_COLS = ["capture", "label", "src", "sport", "dst", "dport", "first_time", "last_time", "duration",
  "packets", "bytes", "payload_bytes", "flags", "state"];
const CONN_COLS = ["capture", "conn", "community_id", "orig_h", "orig_p", "resp_h", "resp_p", "first_time",
  "last_time", "duration", "orig_pkts", "orig_bytes", "resp_pkts", "resp_bytes", "conn_state", "history"];
const FLOW_DEFAULT = ["capture", "src", "sport", "dst", "dport", "first_time", "duration", "packets", "bytes",
  "flags", "state"];
const CONN_DEFAULT = ["capture", "orig_h", "orig_p", "resp_h", "resp_p", "first_time", "duration", "orig_pkts",
  "resp_pkts", "conn_state", "history"];
const SORTS = { bytes: "bytes", packets: "packets", duration: "duration", first_time: "time",
  orig_pkts: "packets", resp_pkts: "packets", orig_bytes: "bytes", resp_bytes: "bytes" };
const GROUPS = ["src", "dst", "pair", "dport", "sport", "capture", "conn-state"];
// The columns of a group row that are its totals; the others are its key, each a term on click.
const GROUP_TOTALS = ["flows", "connections", "packets", "bytes", "payload_bytes", "first_time", "last_time"];

// ---- state <-> URL

function state() {
  const q = new URLSearchParams(location.search);
  const view = q.get("view") === "connections" ? "connections" : "flows";
  const all = view === "flows" ? FLOW_COLS : CONN_COLS;
  let cols = (q.get("cols") || "").split(",").filter((c) => all.includes(c));
  if (!cols.length) cols = view === "flows" ? FLOW_DEFAULT : CONN_DEFAULT;
  return {
    page: q.get("page") || "",
    view,
    filter: q.get("filter") || "",
    sort: q.get("sort") || "time",
    cols,
    after: q.get("after") || "",
    back: (q.get("back") || "").split(" ").filter(Boolean),
    log: q.get("log") === "1",
    group: q.get("group") || "",
    flow: q.get("flow") || "",
    conn: q.get("conn") || "",
  };
}

function urlOf(s) {
  const q = new URLSearchParams();
  if (s.page) q.set("page", s.page);
  if (s.view !== "flows") q.set("view", s.view);
  if (s.filter) q.set("filter", s.filter);
  if (s.sort && s.sort !== "time") q.set("sort", s.sort);
  const def = s.view === "flows" ? FLOW_DEFAULT : CONN_DEFAULT;
  if (s.cols.join(",") !== def.join(",")) q.set("cols", s.cols.join(","));
  if (s.after) q.set("after", s.after);
  if (s.back && s.back.length) q.set("back", s.back.join(" "));
  if (s.log) q.set("log", "1");
  if (s.group) q.set("group", s.group);
  if (s.flow) q.set("flow", s.flow);
  if (s.conn) q.set("conn", s.conn);
  const t = q.toString();
  return "/" + (t ? "?" + t : "");
}

function go(change, replace) {
  const s = Object.assign(state(), change);
  const u = urlOf(s);
  if (replace) history.replaceState(null, "", u); else history.pushState(null, "", u);
  render();
}

window.addEventListener("popstate", render);

// ---- helpers

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v;
    else if (k === "on") for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}

function api(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  return "/api/" + path + (q.toString() ? "?" + q.toString() : "");
}

async function getJSON(path, params) {
  const r = await fetch(api(path, params), { credentials: "same-origin" });
  const body = await r.json().catch(() => ({ error: "the server sent no JSON (status " + r.status + ")" }));
  if (!r.ok) { const e = new Error(body.error || ("status " + r.status)); e.body = body; throw e; }
  return body;
}

function addTerm(term) {
  const f = state().filter.trim();
  go({ filter: f ? "(" + f + ") and " + term : term, after: "", back: [], flow: "", conn: "", page: "" });
}

// A value that filters on click: an address, a port, a Community ID.
function clickable(col, value) {
  const terms = { src: "host", dst: "host", orig_h: "host", resp_h: "host", sport: "port", dport: "port",
    orig_p: "port", resp_p: "port", community_id: "community-id", a: "host", b: "host", capture: "capture",
    conn_state: "conn-state" };
  const t = terms[col];
  const text = Array.isArray(value) ? value.join(" ") : String(value ?? "");
  if (!t || text === "") return document.createTextNode(text);
  return el("a", { href: "#", class: "term", title: "add `" + t + " " + text + "` to the filter", text,
    on: { click: (ev) => { ev.preventDefault(); addTerm(t + " " + text); } } });
}

function fmtCount(n, exact) {
  return exact ? n.toLocaleString("en-US") : n.toLocaleString("en-US") + "+";
}

const main = () => document.getElementById("main");

// ---- the search page

let plot = null;

async function render() {
  const s = state();
  document.getElementById("nav-flows").classList.toggle("on", !s.page && !s.flow && !s.conn && s.view === "flows");
  document.getElementById("nav-connections").classList.toggle("on", !s.page && !s.flow && !s.conn && s.view === "connections");
  document.getElementById("nav-captures").classList.toggle("on", s.page === "captures");
  if (plot) { plot.destroy(); plot = null; }
  main().replaceChildren();
  if (s.page === "captures") return renderCaptures();
  if (s.flow || s.conn) return renderDetail(s);
  return renderSearch(s);
}

function renderSearch(s) {
  const input = el("input", { id: "filter", type: "search", value: s.filter, spellcheck: "false",
    placeholder: "host 10.0.0.5 and port 443 and after 2024-03-01T10:00", autocomplete: "off" });
  const form = el("form", { id: "search", on: { submit: (ev) => { ev.preventDefault();
    go({ filter: input.value.trim(), after: "", back: [] }); } } },
  input, el("button", { type: "submit", text: "Search" }));
  const views = el("div", { class: "views" },
    ...["flows", "connections"].map((v) => el("label", {},
      el("input", { type: "radio", name: "view", value: v, id: "view-" + v, checked: s.view === v,
        on: { change: () => go({ view: v, after: "", back: [], cols: [], sort: "time" }) } }), " " + v)));
  const err = el("div", { id: "filter-error", hidden: true });
  const hist = el("div", { id: "hist-box" },
    el("div", { class: "hist-bar" },
      el("span", { id: "hist-title", text: "flows over time (drag to zoom)" }),
      el("label", {}, el("input", { type: "checkbox", id: "log", checked: s.log,
        on: { change: (ev) => go({ log: ev.target.checked }, true) } }), " log scale"),
      el("button", { id: "zoom-out", type: "button", text: "whole span",
        on: { click: () => go({ filter: setWindow(state().filter, null, null), after: "", back: [] }) } })),
    el("div", { id: "hist" }));
  const bar = toolbar(s);
  const table = el("table", { id: "rows" });
  const pager = el("div", { class: "pager" },
    el("button", { id: "prev", type: "button", text: "◀ previous", disabled: !s.back.length,
      on: { click: () => { const b = s.back.slice(); const a = b.pop(); go({ after: a === "-" ? "" : a, back: b }); } } }),
    el("span", { id: "page-no", text: "page " + (s.back.length + 1) }),
    el("button", { id: "next", type: "button", text: "next ▶", disabled: true }));
  const groups = el("section", { id: "groups" });
  const note = el("div", { id: "note", hidden: true });
  main().append(form, views, err, hist, bar, note, table, pager, groups);
  loadRows(s, table, err, note);
  loadCount(s, false);
  loadHist(s);
  renderGroups(s, groups);
}

function toolbar(s) {
  const all = s.view === "flows" ? FLOW_COLS : CONN_COLS;
  const chooser = el("details", { id: "columns" }, el("summary", { text: "columns" }),
    ...all.map((c) => el("label", {}, el("input", { type: "checkbox", value: c, checked: s.cols.includes(c),
      on: { change: (ev) => {
        const cols = all.filter((x) => x === c ? ev.target.checked : state().cols.includes(x));
        if (cols.length) go({ cols }, true);
      } } }), " " + c)));
  const dl = (format) => el("a", { id: "dl-" + format, class: "dl", href: api("download",
    { view: s.view, filter: s.filter, sort: s.sort, format, columns: format.startsWith("pcap") ? "" : s.cols.join(",") }),
  text: format, on: { click: (ev) => download(ev, s) } });
  const cmd = el("code", { id: "command" });
  return el("div", { class: "toolbar" },
    el("span", { id: "count", text: "…" }),
    el("button", { id: "exact", type: "button", text: "exact count", on: { click: () => loadCount(s, true) } }),
    chooser,
    el("span", { class: "dls" }, "download ", dl("pcap"), " ", dl("pcapng"), " ", dl("csv"), " ", dl("jsonl")),
    el("a", { id: "json-link", href: api(s.view, { filter: s.filter, sort: s.sort, after: s.after }), text: "JSON" }),
    el("button", { id: "copy-cmd", type: "button", text: "copy as command", on: { click: async () => {
      const c = await getJSON("command", { view: s.view, filter: s.filter, sort: s.sort });
      cmd.textContent = c.command;
      try { await navigator.clipboard.writeText(c.command); } catch (e) { /* shown below instead */ }
    } } }),
    cmd);
}

// Before a pcap starts: how many matching flows have no bytes to give.
async function download(ev, s) {
  const href = ev.currentTarget.href;
  ev.preventDefault();
  const note = document.getElementById("note");
  try {
    const c = await getJSON("download/check", { filter: s.filter, format: "pcap" });
    if (c.message) { note.hidden = false; note.textContent = c.message; }
  } catch (e) { note.hidden = false; note.textContent = e.message; return; }
  location.href = href;
}

function showFilterError(err, e) {
  err.hidden = false;
  err.replaceChildren();
  const f = e.body && e.body.filter;
  if (f) {
    err.append(el("div", { class: "msg", text: f.message }),
      el("pre", { id: "filter-text", text: f.text }), el("pre", { id: "caret", text: f.caret }));
  } else {
    err.append(el("div", { class: "msg", text: e.message }));
  }
}

async function loadRows(s, table, err, note) {
  let page;
  try {
    page = await getJSON(s.view, { filter: s.filter, sort: s.sort, after: s.after });
  } catch (e) { showFilterError(err, e); table.replaceChildren(); return; }
  if (page.unbuilt) { note.hidden = false; note.textContent = page.unbuilt.message; }
  const head = el("tr", {}, ...s.cols.map((c) => {
    const key = SORTS[c];
    const th = el("th", { "data-col": c });
    if (key) {
      const on = s.sort === key;
      th.append(el("a", { href: "#", class: on ? "sorted" : "", text: c + (on ? (key === "time" ? " ▲" : " ▼") : ""),
        on: { click: (ev) => { ev.preventDefault(); go({ sort: key, after: "", back: [] }); } } }));
    } else th.textContent = c;
    return th;
  }), el("th", { text: "" }));
  const body = page.rows.map((r) => {
    const link = s.view === "flows"
      ? { flow: r.capture_id + "/" + r.label } : { conn: r.capture_id + "/" + r.conn };
    return el("tr", {}, ...s.cols.map((c) => el("td", { "data-col": c }, clickable(c, r[c]))),
      el("td", {}, el("a", { href: urlOf(Object.assign(state(), link)), class: "open", text: "open",
        on: { click: (ev) => { ev.preventDefault(); go(link); } } })));
  });
  table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...body));
  const next = document.getElementById("next");
  if (page.next) {
    next.disabled = false;
    next.onclick = () => go({ after: page.next, back: s.back.concat([s.after || "-"]) });
  }
}

async function loadCount(s, exact) {
  const span = document.getElementById("count");
  try {
    const c = await getJSON("count", { view: s.view, filter: s.filter, exact: exact ? "1" : "" });
    span.textContent = fmtCount(c.count, c.exact) + " " + s.view;
    span.dataset.count = c.count;
    span.dataset.exact = c.exact;
    document.getElementById("exact").hidden = c.exact;
  } catch (e) { span.textContent = ""; }
}

// ---- the histogram

// The filter with its after/before terms (the ones a zoom writes) replaced by this window.
function setWindow(filter, lo, hi) {
  let f = filter.replace(/(^|\s+and\s+|\s+)(after|before)\s+\S+/gi, " ").trim();
  f = f.replace(/^and\s+/i, "").replace(/\s+and$/i, "").trim();
  const terms = [];
  if (lo !== null) terms.push("after " + new Date(lo * 1000).toISOString());
  if (hi !== null) terms.push("before " + new Date(hi * 1000).toISOString());
  if (!terms.length) return f;
  return f ? f + " and " + terms.join(" and ") : terms.join(" and ");
}

async function loadHist(s) {
  const box = document.getElementById("hist");
  let h;
  try { h = await getJSON("histogram", { filter: s.filter, buckets: 120 }); } catch (e) { return; }
  const xs = [], ys = [];
  h.counts.forEach((c, i) => { xs.push((h.lo + i * h.width) / 1e9); ys.push(s.log ? (c > 0 ? c : null) : c); });
  box.dataset.counts = JSON.stringify(h.counts);
  const width = Math.max(300, box.clientWidth || 900);
  const opts = {
    width, height: 160,
    scales: { x: { time: true }, y: { distr: s.log ? 3 : 1 } },
    axes: [{}, { size: 60 }],
    legend: { show: false },
    cursor: { drag: { x: true, y: false, setScale: false } },
    series: [{}, { label: "flows", stroke: "#2a6fdb", fill: "rgba(42,111,219,0.25)", points: { show: false },
      paths: uPlot.paths.bars({ size: [1, Infinity] }) }],
    hooks: { setSelect: [(u) => {
      if (u.select.width < 2) return;
      const lo = u.posToVal(u.select.left, "x");
      const hi = u.posToVal(u.select.left + u.select.width, "x");
      go({ filter: setWindow(state().filter, lo, hi), after: "", back: [] });
    }] },
  };
  plot = new uPlot(opts, [xs, ys], box);
}

// ---- group-by panels

function renderGroups(s, box) {
  const sel = el("select", { id: "group-by", on: { change: (ev) => go({ group: ev.target.value }, true) } },
    el("option", { value: "", text: "group by…" }),
    ...GROUPS.map((g) => el("option", { value: g, text: g, selected: s.group === g })));
  box.append(el("h2", { text: "Groups" }), sel);
  if (!s.group) return;
  const t = el("table", { id: "group-rows" });
  box.append(t);
  // Groups of what the table shows: flows, or connections (whose keys are the originator's and responder's).
  getJSON("groups", { filter: s.filter, by: s.group, limit: 20, view: s.view }).then((g) => {
    if (!g.rows.length) { t.replaceChildren(el("tr", {}, el("td", { text: "no " + s.view }))); return; }
    const cols = Object.keys(g.rows[0]);
    t.replaceChildren(el("tr", {}, ...cols.map((c) => el("th", { text: c }))),
      ...g.rows.map((r) => el("tr", {}, ...cols.map((c) => el("td", { "data-col": c },
        clickable(GROUP_TOTALS.includes(c) ? "" : c, r[c]))))));
  }).catch((e) => t.replaceChildren(el("tr", {}, el("td", { text: e.message }))));
}

// ---- captures

async function renderCaptures() {
  const t = el("table", { id: "captures" });
  main().append(el("h1", { text: "Captures" }), t);
  const c = await getJSON("captures");
  const cols = ["id", "name", "format", "compression", "linktypes", "frames", "tcp_frames", "flows", "first_time",
    "last_time", "truncated_at", "truncated_why", "embedded", "connections_built"];
  t.append(el("tr", {}, ...cols.map((k) => el("th", { text: k }))),
    ...c.rows.map((r) => el("tr", {}, ...cols.map((k) => el("td", {},
      k === "name" ? el("a", { href: "#", text: String(r.name), on: { click: (ev) => { ev.preventDefault();
        go({ page: "", filter: "capture " + r.id, after: "", back: [] }); } } }) : document.createTextNode(String(r[k] ?? "")))))));
}

// ---- one flow or connection

async function renderDetail(s) {
  const [cid, rest] = splitOnce(s.flow || s.conn, "/");
  const m = main();
  let d;
  try {
    d = s.flow ? await getJSON("flow", { capture: cid, label: rest }) : await getJSON("connection", { capture: cid, conn: rest });
  } catch (e) { m.append(el("div", { id: "detail-error", text: e.message })); return; }
  m.append(el("p", {}, el("a", { href: "#", id: "back", text: "◀ back to the list",
    on: { click: (ev) => { ev.preventDefault(); go({ flow: "", conn: "" }); } } })));
  const fields = d.kind === "flow" ? d.flows[0] : d.connection;
  m.append(el("h1", { id: "detail-title", text: d.kind === "flow" ? fields.label : "connection " + fields.conn + " of " + fields.capture }));
  const ft = el("table", { id: "fields" });
  for (const [k, v] of Object.entries(fields)) ft.append(el("tr", {}, el("th", { text: k }), el("td", {}, clickable(k, v))));
  m.append(ft);
  if (d.kind === "flow") {
    m.append(el("h2", { text: "Index tuple" }), el("pre", { id: "index", text: JSON.stringify({ index: (d.index.frames || []), label: d.index.label }) }));
    if (d.connections.length) {
      m.append(el("h2", { text: "Connection" }));
      const ct = el("table", { id: "conn-fields" });
      for (const c of d.connections) for (const k of ["conn", "community_id", "conn_state", "history"])
        ct.append(el("tr", {}, el("th", { text: k }), el("td", {}, k === "conn"
          ? el("a", { href: "#", text: String(c.conn), on: { click: (ev) => { ev.preventDefault(); go({ flow: "", conn: c.capture_id + "/" + c.conn }); } } })
          : clickable(k, c[k]))));
      m.append(ct);
    }
  }
  if (d.frames_note) m.append(el("div", { id: "frames-note", text: d.frames_note }));
  m.append(el("h2", { text: "Ladder" }), ladder(d, fields));
  const cols = ["number", "time", "direction", "flags", "seq", "ack", "len", "payload_len"];
  const t = el("table", { id: "frames" }, el("tr", {}, ...cols.map((c) => el("th", { text: c }))),
    ...d.frames.map((f) => el("tr", {}, ...cols.map((c) => el("td", { text: String(f[c] ?? "") })))));
  m.append(el("h2", { text: "Frames" }), t, el("h2", { text: "Decoded" }), el("pre", { id: "tree", text: d.tree }));
}

function splitOnce(s, sep) {
  const i = s.indexOf(sep);
  return i < 0 ? [s, ""] : [s.slice(0, i), s.slice(i + 1)];
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// Two columns, one arrow per frame, time down the side.
function ladder(d, fields) {
  const left = d.kind === "flow" ? fields.src + ":" + fields.sport : fields.orig_h + ":" + fields.orig_p;
  const right = d.kind === "flow" ? fields.dst + ":" + fields.dport : fields.resp_h + ":" + fields.resp_p;
  const row = 28, top = 50, xl = 200, xr = 620;
  const h = top + row * d.frames.length + 20;
  const s = svg("svg", { id: "ladder", width: 760, height: h, viewBox: "0 0 760 " + h });
  const defs = svg("defs", {});
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse" });
  marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "head" }));
  defs.append(marker);
  s.append(defs, svg("text", { x: xl, y: 20, "text-anchor": "middle", class: "end" }, left),
    svg("text", { x: xr, y: 20, "text-anchor": "middle", class: "end" }, right),
    svg("line", { x1: xl, y1: 30, x2: xl, y2: h - 10, class: "life" }),
    svg("line", { x1: xr, y1: 30, x2: xr, y2: h - 10, class: "life" }));
  const t0 = d.frames.length ? parseFloat(d.frames[0].time_epoch) : 0;
  d.frames.forEach((f, i) => {
    const y = top + i * row;
    const orig = f.direction === "orig";
    const g = svg("g", { class: "frame " + f.direction, "data-number": String(f.number) });
    g.append(svg("text", { x: 10, y: y + 4, class: "t" }, "+" + (parseFloat(f.time_epoch) - t0).toFixed(6) + " s"),
      svg("line", { x1: orig ? xl : xr, y1: y, x2: orig ? xr : xl, y2: y, class: "arrow", "marker-end": "url(#arrow)" }),
      svg("text", { x: (xl + xr) / 2, y: y - 4, "text-anchor": "middle", class: "lbl" },
        "#" + f.number + " " + (f.flags || "-") + " len=" + (f.payload_len ?? 0)));
    s.append(g);
  });
  return s;
}

render();
