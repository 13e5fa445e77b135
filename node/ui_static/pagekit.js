// What the operator page (node/ui_static/operator.js) and the household page
// (agent/ui_static/household.js) both use to show figures and fill tables. One copy: every node
// and gateway serves it at /ui/pagekit.js, the agent at /pagekit.js; each page loads it before
// its own script (plain scripts, no build step: these names are globals of the page).

const $ = (sel) => document.querySelector(sel);
const kwh = (wh) => (wh === null || wh === undefined ? "–" : (wh / 1000).toFixed(3));
const short = (text, n) => (text && text.length > n ? text.slice(0, n) + "…" : text || "–");

function utc(ms) {
  if (ms === null || ms === undefined) return "–";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "");
}

function setK(key, text, raw) {
  for (const el of document.querySelectorAll('[data-k="' + key + '"]')) {
    el.textContent = text;
    if (raw !== undefined) el.dataset.raw = String(raw);
  }
}

function cell(row, text, cls, raw) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (cls) td.className = cls;
  if (raw !== undefined && raw !== null) td.dataset.raw = String(raw);
  row.appendChild(td);
  return td;
}

function fillTable(selector, rows, emptyText, build) {
  const body = document.querySelector(selector + " tbody");
  const fresh = document.createElement("tbody");
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const td = cell(tr, emptyText, "empty");
    td.colSpan = document.querySelectorAll(selector + " thead th").length;
    fresh.appendChild(tr);
  }
  for (const item of rows) {
    const tr = document.createElement("tr");
    build(tr, item);
    fresh.appendChild(tr);
  }
  body.replaceWith(fresh);
}
