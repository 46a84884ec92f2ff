// The modelhost dashboard: one GET /api/dashboard/snapshot per refresh (every REFRESH_MS
// while the tab is visible), drawn with uPlot. Data is put into the page with textContent
// only, never as HTML.
"use strict";

const REFRESH_MS = 5000;
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2",
  "#db2777", "#65a30d", "#4b5563", "#ea580c", "#0d9488", "#9333ea"];
const SAMPLED = new Set(["cpu", "memory", "multi_model", "drift"]);
const EVENT_COLORS = { RollingBack: "#dc2626", Failed: "#dc2626", InService: "#16a34a" };

const state = { range: "1h", selected: "", compare: "", filter: "", timer: null, doc: null };
const charts = new Map(); // "endpoint/chartId" -> {plot, labels, events}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function badge(text) { return el("span", { class: "badge " + (text || "") }, text || "?"); }

function num(v, digits) {
  if (v === null || v === undefined) return "–";
  if (digits !== undefined) return Number(v).toFixed(digits);
  return Number.isInteger(v) ? v.toLocaleString() : Number(v).toLocaleString(undefined,
    { maximumFractionDigits: 2 });
}

function pct(v) { return v === null || v === undefined ? "–" : (v * 100).toFixed(1) + "%"; }

function when(epochS) { return new Date(epochS * 1000).toLocaleTimeString(); }

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  state.selected = params.get("endpoint") || "";
  state.compare = params.get("compare") || "";
  state.range = params.get("range") || state.range;
  document.getElementById("range").value = state.range;
}

function writeHash() {
  const params = new URLSearchParams();
  if (state.selected) params.set("endpoint", state.selected);
  if (state.compare) params.set("compare", state.compare);
  params.set("range", state.range);
  history.replaceState(null, "", "#" + params.toString());
}

async function refresh() {
  clearTimeout(state.timer);
  const detail = [state.selected, state.compare].filter(Boolean).join(",");
  const url = `/api/dashboard/snapshot?range=${encodeURIComponent(state.range)}` +
    `&endpoints=${encodeURIComponent(detail)}`;
  const updated = document.getElementById("updated");
  try {
    const resp = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    if (resp.status === 403 && document.body.dataset.auth === "on") {
      location.reload(); // the session ended: the page shows the sign-in form
      return;
    }
    const doc = await resp.json();
    if (!resp.ok) throw new Error(doc.message || doc.Message || resp.statusText);
    state.doc = doc;
    render(doc);
    updated.textContent = "updated " + when(doc.Now);
    updated.classList.remove("error");
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  } catch (err) {
    updated.textContent = "refresh failed: " + err.message;
    updated.classList.add("error");
  }
  state.timer = setTimeout(tick, REFRESH_MS);
}

function tick() {
  if (document.hidden) { state.timer = setTimeout(tick, REFRESH_MS); return; }
  refresh();
}

function render(doc) {
  const signOut = document.getElementById("sign-out");
  signOut.hidden = !doc.Auth;
  document.getElementById("who").textContent = doc.SignedInAs ? doc.SignedInAs : "";
  renderEndpoints(doc.Endpoints);
  renderCompare(doc.Endpoints);
  renderDetails(doc);
  renderAlarms(doc.Alarms);
  renderJobs(doc.TransformJobs);
}

function renderEndpoints(endpoints) {
  document.getElementById("endpoint-count").textContent = `(${endpoints.length})`;
  const minutes = Math.round((state.doc.OverviewSeconds || 300) / 60);
  document.querySelector(".overview-window").textContent = `(last ${minutes} min)`;
  const body = document.querySelector("#endpoints tbody");
  const rows = endpoints
    .filter((e) => !state.filter || e.Name.toLowerCase().includes(state.filter))
    .map((e) => {
      const row = el("tr", { "data-endpoint": e.Name },
        el("td", {}, e.Name), el("td", {}, badge(e.Status)),
        el("td", { class: "num" }, e.Variants.length), el("td", { class: "num" }, e.Instances),
        el("td", { class: "num" }, num(e.Invocations)), el("td", { class: "num" }, num(e.Errors4XX)),
        el("td", { class: "num" }, num(e.Errors5XX)));
      if (e.Name === state.selected) row.classList.add("selected");
      row.addEventListener("click", () => select(e.Name));
      return row;
    });
  body.replaceChildren(...rows);
}

function renderCompare(endpoints) {
  const select = document.getElementById("compare");
  const options = [el("option", { value: "" }, "(none)")];
  for (const e of endpoints) {
    if (e.Name !== state.selected) options.push(el("option", { value: e.Name }, e.Name));
  }
  select.replaceChildren(...options);
  select.value = state.compare;
}

function select(name) {
  state.selected = name;
  if (state.compare === name) state.compare = "";
  writeHash();
  refresh();
}

function renderDetails(doc) {
  const container = document.getElementById("details");
  const names = [state.selected, state.compare].filter((n) => n && doc.Details[n]);
  const keep = new Set();
  const columns = names.map((name) => {
    let column = container.querySelector(`[data-detail="${CSS.escape(name)}"]`);
    if (!column) {
      column = el("div", { class: "card", "data-detail": name },
        el("h2", {}, name), el("div", { class: "summary" }), el("div", { class: "charts" }));
    }
    return column;
  });
  container.replaceChildren(...columns); // in the page first, so the charts know their width
  names.forEach((name, i) => {
    const endpoint = doc.Endpoints.find((e) => e.Name === name);
    fillSummary(columns[i].querySelector(".summary"), endpoint, doc.Details[name]);
    drawCharts(columns[i].querySelector(".charts"), name, doc.Details[name], keep);
  });
  for (const [key, entry] of charts) {
    if (!keep.has(key)) { entry.plot.destroy(); charts.delete(key); }
  }
}

function rangeTotals(detail) {
  // Sums of the invocations chart's lines over the chosen range.
  const chart = (detail.Charts || []).find((c) => c.Id === "invocations");
  const totals = { invocations: 0, errors: 0 };
  for (const s of chart ? chart.Series : []) {
    const sum = s.Values.reduce((a, v) => a + (v || 0), 0);
    if (s.Label.endsWith("Invocations")) totals.invocations += sum; else totals.errors += sum;
  }
  return totals;
}

function fillSummary(node, endpoint, detail) {
  const totals = rangeTotals(detail);
  const parts = [el("p", {}, badge(endpoint.Status), " config ", endpoint.EndpointConfigName || "–",
    ` · ${num(totals.invocations)} invocations, ${num(totals.errors)} errors in range`,
    endpoint.FailureReason ? el("span", { class: "error" }, " " + endpoint.FailureReason) : null)];
  const variants = el("table", { class: "variants" },
    el("thead", {}, el("tr", {}, el("th", {}, "Variant"), el("th", { class: "num" }, "Weight"),
      el("th", { class: "num" }, "Desired"), el("th", { class: "num" }, "Instances"),
      el("th", { class: "num" }, "Desired"), el("th", {}, ""))),
    el("tbody", {}, ...endpoint.Variants.map((v) => el("tr", { "data-variant": v.VariantName },
      el("td", {}, v.VariantName), el("td", { class: "num" }, num(v.CurrentWeight)),
      el("td", { class: "num" }, num(v.DesiredWeight)),
      el("td", { class: "num" }, num(v.CurrentInstanceCount)),
      el("td", { class: "num" }, num(v.DesiredInstanceCount)),
      el("td", {}, v.Shadow ? "shadow" : "")))));
  parts.push(variants);
  if (detail.Bandit) {
    const weights = detail.Bandit.CurrentWeights || {};
    parts.push(el("h3", {}, "Bandit (" + detail.Bandit.RoutingConfig.Strategy + ")"),
      el("table", { class: "bandit" }, el("tbody", {}, ...(detail.Bandit.Variants || []).map((v) =>
        el("tr", {}, el("td", {}, v.VariantName), el("td", { class: "num" }, pct(weights[v.VariantName])),
          el("td", { class: "num" }, num(v.Invocations) + " calls"),
          el("td", { class: "num" }, "mean reward " + num(v.MeanReward)))))));
  }
  if (detail.Shadow && detail.Shadow.length) {
    parts.push(el("h3", {}, "Shadow agreement"),
      el("table", { class: "shadow" }, el("tbody", {}, ...detail.Shadow.map((s) =>
        el("tr", {}, el("td", {}, s.VariantName), el("td", { class: "num" }, num(s.Pairs) + " pairs"),
          el("td", { class: "num" }, "exact " + pct(s.ExactAgreement)),
          el("td", { class: "num" }, "numeric " + pct(s.NumericAgreement)))))));
  }
  const instances = instanceParts(detail.Instances);
  if (instances.length) parts.push(...instances);
  const monitoring = monitoringParts(detail.Monitoring);
  if (monitoring.length) parts.push(...monitoring);
  if (detail.Events.length) {
    parts.push(el("h3", {}, "Deployment events"),
      el("table", { class: "events" }, el("tbody", {}, ...detail.Events.slice(-8).map((ev) =>
        el("tr", { "data-status": ev.Status }, el("td", {}, when(ev.Time)), el("td", {}, badge(ev.Status)),
          el("td", { class: "wrap" }, ev.Message))))));
  }
  node.replaceChildren(...parts);
}

function tierText(inst) {
  // A single-model instance: its model's compiled-tier state; multi-model: counts by state.
  const t = inst.CompiledTier;
  if (t) {
    if (t.state === "compiled") return `compiled (up to ${t.maxRows} rows)`;
    if (t.state === "failed") return "not compiled: " + t.reason;
    return t.state;
  }
  const counts = inst.CompiledModels || {};
  return ["compiled", "pending", "failed", "off"].filter((k) => counts[k])
    .map((k) => `${counts[k]} ${k}`).join(", ") || "no models";
}

function instanceParts(list) {
  // Each instance's own stats (GET /modelhost/stats): batching counters, compiled tier.
  if (!list || !list.length) return [];
  return [el("h3", {}, "Instances"), el("table", { class: "instances" },
    el("thead", {}, el("tr", {}, el("th", {}, "Instance"), el("th", {}, "Variant"),
      el("th", { class: "num" }, "Batches"), el("th", { class: "num" }, "Rows"),
      el("th", { class: "num" }, "Alone"), el("th", {}, "Compiled tier"))),
    el("tbody", {}, ...list.flatMap((i) => {
      const b = i.Batching;
      const row = el("tr", { "data-instance": i.InstanceId }, el("td", {}, i.InstanceId),
        el("td", {}, i.VariantName), el("td", { class: "num" }, b ? num(b.batches) : "–"),
        el("td", { class: "num" }, b ? num(b.batchedRows) : "–"),
        el("td", { class: "num" }, b ? num(b.alone) : "–"),
        el("td", { class: "wrap tier" }, tierText(i)));
      // Multi-model: each model the compiled tier failed on, with the reason.
      const failures = (i.CompileFailures || []).map((f) =>
        el("tr", { class: "compile-failure", "data-model": f.modelName }, el("td", {}, ""),
          el("td", {}, f.modelName), el("td", { class: "wrap", colSpan: 4 }, "not compiled: " + f.reason)));
      return [row, ...failures];
    })))];
}

function monitoringParts(m) {
  // Model Monitor: the endpoint's schedules, its last executions and their violations.
  if (!m || !m.Schedules || !m.Schedules.length) return [];
  const schedules = el("table", { class: "schedules" }, el("tbody", {}, ...m.Schedules.map((s) =>
    el("tr", { "data-schedule": s.MonitoringScheduleName }, el("td", {}, s.MonitoringScheduleName),
      el("td", {}, s.MonitoringType || ""), el("td", {}, badge(s.MonitoringScheduleStatus))))));
  const rows = [];
  for (const e of m.Executions) {
    rows.push(el("tr", { class: "execution", "data-execution-status": e.MonitoringExecutionStatus },
      el("td", {}, e.ScheduledTime ? when(e.ScheduledTime) : "–"),
      el("td", {}, e.MonitoringScheduleName), el("td", {}, badge(e.MonitoringExecutionStatus)),
      el("td", { class: "wrap" }, e.FailureReason || e.ViolationsError ||
        (e.Violations.length ? `${e.Violations.length} violation(s)` : ""))));
    for (const v of e.Violations) {
      rows.push(el("tr", { class: "violation", "data-feature": v.Feature || "", "data-check": v.CheckType || "" },
        el("td", {}, ""), el("td", {}, v.Feature || ""), el("td", {}, v.CheckType || ""),
        el("td", { class: "wrap" }, v.Description || "")));
    }
  }
  const executions = el("table", { class: "executions" },
    el("thead", {}, el("tr", {}, el("th", {}, "Scheduled"), el("th", {}, "Schedule / feature"),
      el("th", {}, "Status / check"), el("th", {}, "Violations"))),
    el("tbody", {}, ...rows));
  return [el("h3", {}, "Monitoring"), schedules, executions];
}

function eventsPlugin(entry) {
  // Deployment events as dashed vertical lines with their status, over every chart.
  return { hooks: { draw: [(u) => {
    const ctx = u.ctx;
    const [min, max] = [u.scales.x.min, u.scales.x.max];
    let drawn = 0;
    ctx.save();
    ctx.setLineDash([5, 4]);
    ctx.lineWidth = 1.5 * devicePixelRatio;
    ctx.font = `${11 * devicePixelRatio}px sans-serif`;
    for (const ev of entry.events) {
      if (ev.Time < min || ev.Time > max) continue;
      const x = Math.round(u.valToPos(ev.Time, "x", true));
      const color = EVENT_COLORS[ev.Status] || "#6b7280";
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.beginPath();
      ctx.moveTo(x, u.bbox.top);
      ctx.lineTo(x, u.bbox.top + u.bbox.height);
      ctx.stroke();
      ctx.fillText(ev.Status, x + 3 * devicePixelRatio, u.bbox.top + (12 + 12 * (drawn % 4)) * devicePixelRatio);
      drawn += 1;
    }
    ctx.restore();
    u.root.parentNode.dataset.eventsDrawn = String(drawn);
  }] } };
}

function drawCharts(node, name, detail, keep) {
  const width = Math.max(node.clientWidth || 480, 320) - 8;
  const holders = [];
  for (const chart of detail.Charts || []) {
    const key = name + "/" + chart.Id;
    keep.add(key);
    const data = [chart.X, ...chart.Series.map((s) => s.Values)];
    const labels = chart.Series.map((s) => s.Label).join("|");
    let entry = charts.get(key);
    if (entry && entry.labels !== labels) { entry.plot.destroy(); charts.delete(key); entry = null; }
    if (!entry) {
      const holder = el("div", { class: "chart", "data-chart": chart.Id });
      entry = { labels, events: detail.Events, holder };
      const opts = {
        title: `${chart.Title} (${chart.Unit})`, width, height: 200,
        scales: { x: { time: true } },
        // Instances are sampled every few seconds: join their samples into lines.
        series: [{}, ...chart.Series.map((s, i) => ({
          label: s.Label, stroke: COLORS[i % COLORS.length], width: 1.5,
          spanGaps: SAMPLED.has(chart.Id) }))],
        axes: [{}, { size: 56 }],
        plugins: [eventsPlugin(entry)],
      };
      entry.plot = new uPlot(opts, data, holder);
      charts.set(key, entry);
    } else {
      entry.events = detail.Events;
      entry.plot.setData(data);
    }
    const values = chart.Series.flatMap((s) => s.Values);
    entry.holder.dataset.series = String(chart.Series.length);
    entry.holder.dataset.nonzero = String(values.filter((v) => v !== null && v !== 0).length);
    holders.push(entry.holder);
  }
  node.replaceChildren(...holders);
}

function renderAlarms(alarms) {
  const body = document.querySelector("#alarms tbody");
  body.replaceChildren(...alarms.map((a) => el("tr", { "data-alarm": a.AlarmName },
    el("td", {}, a.AlarmName), el("td", {}, badge(a.StateValue)),
    el("td", {}, a.MetricName || ""), el("td", {}, a.EndpointName || ""),
    el("td", { class: "wrap" }, a.StateReason || ""))));
}

function renderJobs(jobs) {
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren(...jobs.map((j) => {
    const p = j.Progress || {};
    const detail = p.RecordsPlanned ? `${num(p.RecordsDone)} / ${num(p.RecordsPlanned)} records`
      : `${num(p.ObjectsDone || 0)} / ${num(p.ObjectsTotal || 0)} objects`;
    return el("tr", { "data-job": j.TransformJobName },
      el("td", {}, j.TransformJobName), el("td", {}, badge(j.TransformJobStatus)),
      el("td", {}, el("progress", { max: 1, value: j.ProgressFraction }), " ", detail));
  }));
}

function start() {
  readHash();
  document.getElementById("range").addEventListener("change", (ev) => {
    state.range = ev.target.value; writeHash(); refresh();
  });
  document.getElementById("compare").addEventListener("change", (ev) => {
    state.compare = ev.target.value; writeHash(); refresh();
  });
  document.getElementById("filter").addEventListener("input", (ev) => {
    state.filter = ev.target.value.toLowerCase();
    if (state.doc) renderEndpoints(state.doc.Endpoints);
  });
  window.addEventListener("hashchange", () => { readHash(); refresh(); });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  window.addEventListener("resize", () => {
    for (const entry of charts.values()) {
      const w = Math.max(entry.holder.parentNode ? entry.holder.parentNode.clientWidth : 480, 320) - 8;
      entry.plot.setSize({ width: w, height: 200 });
    }
  });
  refresh();
}

start();
