// The cost-advice form: GET /api/dashboard/advise (GET /api/advise's answer, reachable with
// the sign-in cookie) with the form's numbers; shows the recommended option with its monthly
// cost beside the alternatives, and the decision path. textContent only, never HTML.
"use strict";

(function () {
  function node(tag, attrs, ...children) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
    for (const c of children) {
      if (c === null || c === undefined) continue;
      n.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return n;
  }

  function money(v, currency) {
    return `${Number(v).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 })} ${currency || ""}`.trim();
  }

  function query(form) {
    const params = new URLSearchParams();
    for (const input of form.querySelectorAll("input, select")) {
      if (input.type === "checkbox") params.set(input.name, input.checked ? "true" : "false");
      else if (input.value !== "") params.set(input.name, input.value);
    }
    return params;
  }

  function optionRow(o, recommended) {
    return node("tr", { "data-option": o.Option, class: recommended ? "recommended" : "" },
      node("td", {}, o.Option + (recommended ? " (recommended)" : "")),
      node("td", { class: "num cost" }, money(o.MonthlyCost, o.Currency)),
      node("td", {}, o.InstanceType ? `${o.InstanceCount || 1} × ${o.InstanceType}` : "–"),
      node("td", {}, o.Fits ? "yes" : "no"),
      node("td", { class: "wrap" }, o.Note || ""));
  }

  function show(doc) {
    const r = doc.Recommendation;
    const head = node("p", { class: "recommendation", "data-option": r.Option },
      "Recommended: ", node("strong", {}, r.Option), " at ",
      node("strong", { class: "cost" }, money(r.MonthlyCost, r.Currency)), " per month");
    const table = node("table", { class: "options" },
      node("thead", {}, node("tr", {}, node("th", {}, "Option"), node("th", { class: "num" }, "Per month"),
        node("th", {}, "Size"), node("th", {}, "Meets the needs"), node("th", {}, "Note"))),
      node("tbody", {}, optionRow(r, true), ...doc.Alternatives.map((o) => optionRow(o, false))));
    const path = node("ol", { class: "path" }, ...doc.Path.map((p) =>
      node("li", {}, `${p.Question} ${p.Answer} (${p.Because})`)));
    const notes = node("p", { class: "muted" }, `Capacity: ${doc.Capacity}.`);
    return [head, table, node("h3", {}, "Decision path"), path, notes];
  }

  async function submit(ev) {
    ev.preventDefault();
    const out = document.getElementById("advice");
    try {
      const resp = await fetch("/api/dashboard/advise?" + query(ev.target).toString(),
        { credentials: "same-origin", cache: "no-store" });
      const doc = await resp.json();
      if (!resp.ok) throw new Error(doc.message || doc.Message || resp.statusText);
      out.replaceChildren(...show(doc));
    } catch (err) {
      out.replaceChildren(node("p", { class: "error", role: "alert" }, "advice failed: " + err.message));
    }
  }

  document.getElementById("advise-form").addEventListener("submit", submit);
})();
