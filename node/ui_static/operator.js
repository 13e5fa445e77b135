// The operator page (ADR 0038): reads the node's public API on the same origin and stays live
// over the /v1/events websocket. No build step: plain ES2020 in one file, and the vendored
// uPlot (window.uPlot). Every value is written with textContent, never as HTML.
"use strict";

const BLOCK_WINDOW = 20;     // blocks the participation figures are counted over
const RETRY_MS = 3000;       // API down: try again this often
const POLL_MS = 5000;        // no live feed (e.g. a sealed-reads-only node): poll this often
const MIN_REFRESH_MS = 700;  // a burst of blocks refreshes the tables at most this often

const state = {
  status: null,
  statusAt: 0,        // Date.now() when status was read
  lastOk: 0,
  feedLive: false,
  refreshing: false,
  pending: false,
  lastRefresh: 0,
  charts: {},
  validators: [],
  blocks: new Map(),  // height -> proposer, round and signers of the recent blocks
};

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function getJSON(path) {
  let response;
  try {
    response = await fetch(path, { cache: "no-store", headers: { Accept: "application/json" } });
  } catch (err) {
    throw new ApiError(0, "unreachable", "no connection (" + (err && err.message ? err.message : err) + ")");
  }
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  if (!response.ok) {
    const e = body && body.error ? body.error : { code: "http_" + response.status, message: response.statusText };
    throw new ApiError(response.status, e.code, e.message);
  }
  if (body === null) {
    throw new ApiError(response.status, "not_json", "the answer is not JSON");
  }
  return body;
}

// --- formatting -----------------------------------------------------------------------------

const price = (mc) => (mc === null || mc === undefined ? "–" : (mc / 1000).toFixed(3));

function banner(text) {
  const el = $("#banner");
  if (text) {
    el.textContent = text;
    el.hidden = false;
    document.body.classList.add("stale");
  } else {
    el.hidden = true;
    el.textContent = "";
    document.body.classList.remove("stale");
  }
}

function sectionNote(id, text) {
  let el = document.querySelector("#" + id + " .section-error");
  if (!el) {
    el = document.createElement("p");
    el.className = "section-error";
    document.querySelector("#" + id + " h2").after(el);
  }
  el.textContent = text || "";
  el.hidden = !text;
}

// --- charts ---------------------------------------------------------------------------------

function chart(id, series, data) {
  if (typeof window.uPlot !== "function") return;
  const box = document.getElementById(id);
  const width = Math.max(300, box.clientWidth || 600);
  let plot = state.charts[id];
  if (!plot) {
    const opts = {
      width: width,
      height: 220,
      series: [{}].concat(series),
      scales: { x: { time: true } },
      axes: [{}, { size: 60 }],
      legend: { live: false },
    };
    plot = new window.uPlot(opts, data, box);
    state.charts[id] = plot;
  } else {
    plot.setData(data);
  }
}

window.addEventListener("resize", () => {
  for (const [id, plot] of Object.entries(state.charts)) {
    const box = document.getElementById(id);
    plot.setSize({ width: Math.max(300, box.clientWidth || 600), height: 220 });
  }
});

// --- sections -------------------------------------------------------------------------------

function showStatus(status) {
  state.status = status;
  state.statusAt = Date.now();
  $("#chain-name").textContent = status.chain_name;
  $("#node-name").textContent = status.node;
  document.title = status.chain_name + " operator";
  setK("height", String(status.height), status.height);
  const c = status.consensus || {};
  setK("engine", String(c.engine || "–"));
  const view = c.view !== undefined ? c.view : c.round;
  setK("view", view === undefined ? "–" : String(view), view === undefined ? "" : view);
  setK("mempool", status.mempool.txs + " txs / " + status.mempool.bytes + " B", status.mempool.txs);
  const connected = status.peers.filter((p) => p.connected).length;
  setK("peers", connected + " / " + status.peers.length, connected);
  setK("halted", status.halted ? "halted: " + status.halted : "running", status.halted ? 1 : 0);
  showAge();
  fillTable("#peers", status.peers, "no peers (a single validator)", (tr, p) => {
    cell(tr, p.name || p.peer || p.public_key || p.address || "peer");
    cell(tr, p.connected ? "yes" : "no");
    // The figures an operator acts on; the whole record is in /v1/status.
    const rest = ["role", "address", "direction", "height", "score", "last_error"]
      .filter((k) => p[k] !== undefined && p[k] !== null)
      .map((k) => k + "=" + (typeof p[k] === "object" ? JSON.stringify(p[k]) : p[k]));
    cell(tr, rest.join("  "), "detail");
  });
}

function showAge() {
  const s = state.status;
  if (!s) return;
  const age = Math.max(0, Date.now() - s.head_time_ms);
  setK("commit-age", (age / 1000).toFixed(1) + " s ago", age);
}

async function showValidators(head) {
  if (state.validators.length === 0) {
    state.validators = (await getJSON("/v1/validators")).validators;
  }
  // Only the blocks not read yet are fetched: a block's proposer, round and signers never
  // change once committed, and a page of 20 full blocks may be large.
  const first = Math.max(1, head - BLOCK_WINDOW + 1);
  for (const h of Array.from(state.blocks.keys())) if (h < first || h > head) state.blocks.delete(h);
  let next = first;
  while (state.blocks.has(next)) next += 1;
  if (next <= head) {
    const fresh = await getJSON("/v1/blocks?from=" + next + "&limit=" + (head - next + 1));
    for (const b of fresh.blocks) {
      state.blocks.set(b.height, {
        header: { proposer: b.header.proposer, round: b.header.round },
        certificate: b.certificate ? { signatures: b.certificate.signatures.map((x) => ({ validator: x.validator })) } : null,
      });
    }
  }
  const page = { blocks: Array.from(state.blocks.entries()).sort((a, b) => a[0] - b[0]).map(([, b]) => b) };
  const proposed = {};
  const signed = {};
  let certified = 0;
  let roundChanges = 0;
  let maxRound = 0;
  for (const b of page.blocks) {
    proposed[b.header.proposer] = (proposed[b.header.proposer] || 0) + 1;
    if (b.header.round > 0) roundChanges += 1;
    maxRound = Math.max(maxRound, b.header.round);
    if (b.certificate) {
      certified += 1;
      for (const sig of b.certificate.signatures) signed[sig.validator] = (signed[sig.validator] || 0) + 1;
    }
  }
  const n = page.blocks.length;
  $("#window-note").textContent = n ? "over blocks " + first + "–" + (first + n - 1) : "";
  fillTable("#validators", state.validators, "no validators", (tr, v) => {
    tr.dataset.validator = v.name;
    cell(tr, v.name + (v.this_node ? " (this node)" : ""));
    cell(tr, short(v.address, 18), "mono");
    cell(tr, v.power, "n");
    cell(tr, proposed[v.public_key] || 0, "n", proposed[v.public_key] || 0);
    cell(tr, certified ? signed[v.public_key] || 0 : "–", "n", signed[v.public_key] || 0);
    const part = certified ? Math.round((100 * (signed[v.public_key] || 0)) / certified) + " %" : "–";
    cell(tr, part, "n");
  });
  $("#rounds-note").textContent = n
    ? roundChanges + " of the last " + n + " blocks needed more than one round (highest round " + maxRound + ")" +
      (certified ? "" : "; blocks carry no certificate on this engine, so only proposals are counted")
    : "no block yet";
}

async function showMarkets() {
  const [stats, markets] = await Promise.all([getJSON("/v1/stats/slots?count=12"), getJSON("/v1/markets")]);
  // A book nobody used is left out; the chart still spans every slot.
  const rows = [];
  for (const s of stats.slots) {
    for (const m of s.markets) {
      if (m.trades || m.bid_depth_wh || m.ask_depth_wh) rows.push([s, m]);
    }
  }
  const span = stats.slots.length
    ? "no trade and no resting order in slots " + stats.slots[0].slot + "–" + stats.slots[stats.slots.length - 1].slot
    : "no slots";
  fillTable("#slot-markets", rows, span, (tr, [s, m]) => {
    tr.dataset.slot = s.slot;
    tr.dataset.market = m.market;
    cell(tr, s.slot + (s.slot === stats.current_slot ? " (now)" : ""), "n", s.slot);
    cell(tr, utc(s.start_ms));
    cell(tr, m.market);
    cell(tr, m.trades, "n", m.trades);
    cell(tr, kwh(m.volume_wh), "n", m.volume_wh);
    cell(tr, price(m.vwap_mc_per_kwh), "n", m.vwap_mc_per_kwh);
    cell(tr, m.low_mc_per_kwh === null ? "–" : price(m.low_mc_per_kwh) + "–" + price(m.high_mc_per_kwh), "n");
    cell(tr, price(m.best_bid), "n", m.best_bid);
    cell(tr, price(m.best_ask), "n", m.best_ask);
    cell(tr, kwh(m.bid_depth_wh), "n", m.bid_depth_wh);
    cell(tr, kwh(m.ask_depth_wh), "n", m.ask_depth_wh);
  });
  const xs = stats.slots.map((s) => s.start_ms / 1000);
  const vwap = (name) => stats.slots.map((s) => {
    const m = s.markets.find((x) => x.market === name);
    return m && m.vwap_mc_per_kwh !== null ? m.vwap_mc_per_kwh / 1000 : null;
  });
  chart("price-chart", [
    { label: "day-ahead clearing credits/kWh", stroke: "#1f77b4", spanGaps: true, points: { show: true } },
    { label: "intraday clearing credits/kWh", stroke: "#ff7f0e", spanGaps: true, points: { show: true } },
    { label: "pool sell", stroke: "#2ca02c", dash: [4, 4], spanGaps: true },
    { label: "pool buy", stroke: "#d62728", dash: [4, 4], spanGaps: true },
  ], [
    xs, vwap("day_ahead"), vwap("intraday"),
    stats.slots.map((s) => (s.settlement.pool_p_sell_mc_per_kwh === null ? null : s.settlement.pool_p_sell_mc_per_kwh / 1000)),
    stats.slots.map((s) => (s.settlement.pool_p_buy_mc_per_kwh === null ? null : s.settlement.pool_p_buy_mc_per_kwh / 1000)),
  ]);
  // Settlement happens after a slot ends: the slots up to the current one.
  const settledSlots = stats.slots.filter((s) => s.slot <= stats.current_slot);
  fillTable("#slot-settlement", settledSlots, "no slot has ended in this window", (tr, s) => {
    const st = s.settlement;
    tr.dataset.slot = s.slot;
    cell(tr, s.slot, "n", s.slot);
    cell(tr, st.receipts, "n", st.receipts);
    cell(tr, kwh(st.traded_wh), "n", st.traded_wh);
    cell(tr, kwh(st.delivered_wh), "n", st.delivered_wh);
    cell(tr, kwh(st.taken_wh), "n", st.taken_wh);
    cell(tr, kwh(st.imbalance_wh), "n", st.imbalance_wh);
    cell(tr, kwh(st.shortfall_wh), "n", st.shortfall_wh);
    cell(tr, Object.entries(st.shortfall_reasons).map(([k, v]) => k + " ×" + v).join(", ") || "–");
    cell(tr, price(st.pool_p_sell_mc_per_kwh), "n", st.pool_p_sell_mc_per_kwh);
    cell(tr, price(st.pool_p_buy_mc_per_kwh), "n", st.pool_p_buy_mc_per_kwh);
  });
  chart("settlement-chart", [
    { label: "traded kWh", stroke: "#1f77b4", spanGaps: true, points: { show: true } },
    { label: "delivered kWh", stroke: "#2ca02c", spanGaps: true, points: { show: true } },
    { label: "taken kWh", stroke: "#9467bd", spanGaps: true, points: { show: true } },
  ], [
    xs,
    stats.slots.map((s) => s.settlement.traded_wh / 1000),
    stats.slots.map((s) => s.settlement.delivered_wh / 1000),
    stats.slots.map((s) => s.settlement.taken_wh / 1000),
  ]);
  // The nearest open book with orders in it, else the first open day-ahead one.
  const withOrders = rows.find(([s, m]) =>
    s.slot >= markets.first_open_slot[m.market] && (m.bid_depth_wh || m.ask_depth_wh));
  const [bookMarket, open] = withOrders
    ? [withOrders[1].market, withOrders[0].slot]
    : ["day_ahead", markets.first_open_slot.day_ahead];
  $("#open-slot").textContent = bookMarket + " slot " + open;
  $("#open-slot").dataset.raw = String(open);
  $("#open-slot").dataset.market = bookMarket;
  const book = await getJSON("/v1/markets/" + bookMarket + "/slots/" + open + "/book");
  const levels = book.asks.slice().reverse().map((l) => ["ask", l]).concat(book.bids.map((l) => ["bid", l]));
  fillTable("#book", levels, "the book is empty", (tr, [side, l]) => {
    tr.dataset.side = side;
    cell(tr, side);
    cell(tr, price(l.price_mc_per_kwh), "n", l.price_mc_per_kwh);
    cell(tr, kwh(l.quantity_wh), "n", l.quantity_wh);
    cell(tr, l.orders, "n", l.orders);
  });
}

const PFL_ROWS = [
  ["eq3_11", "eq. 3.11 ln((max−min)/mean)"],
  ["eq4_4", "eq. 4.4 total variation kW"],
  ["eq5_7", "eq. 5.7 slope variance (kW/h)²"],
  ["eq6_4", "eq. 6.4 squared steps kW²"],
];

async function showLoad() {
  const load = await getJSON("/v1/stats/load?limit=96");
  const pts = load.intervals;
  chart("load-chart", [
    { label: "base load kW", stroke: "#7f7f7f", points: { show: pts.length < 3 } },
    { label: "with committed schedule kW", stroke: "#1f77b4", points: { show: pts.length < 3 } },
  ], [pts.map((p) => p.start_ms / 1000), pts.map((p) => p.base_load_w / 1000), pts.map((p) => p.load_w / 1000)]);
  const fmt = (pfl, key) => (pfl === null || pfl[key] === null ? "–" : pfl[key].toFixed(3));
  fillTable("#pfl", PFL_ROWS, "", (tr, [key, label]) => {
    cell(tr, label);
    cell(tr, fmt(load.pfl_base, key), "n");
    cell(tr, fmt(load.pfl_scheduled, key), "n");
  });
  $("#load-note").textContent = pts.length
    ? pts.length + " decided intervals of " + load.interval_minutes + " min, " + utc(pts[0].start_ms) + " to " + utc(pts[pts.length - 1].end_ms)
    : "no interval decided yet (the chain decides one only when a charge or discharge request is open)";
}

async function showMeters() {
  const meters = (await getJSON("/v1/meters?limit=1000")).meters;
  fillTable("#meter-table", meters, "no meters registered", (tr, m) => {
    tr.dataset.meter = m.meter_id;
    cell(tr, m.meter_id);
    cell(tr, m.meter_type);
    cell(tr, short(m.owner, 18), "mono");
    cell(tr, m.last_sequence, "n", m.last_sequence);
    cell(tr, utc(m.last_interval_end_ms));
    cell(tr, kwh(m.last_import_wh), "n", m.last_import_wh);
    cell(tr, kwh(m.last_export_wh), "n", m.last_export_wh);
  });
}

// --- refresh and the live feed --------------------------------------------------------------

async function section(id, work) {
  try {
    await work();
    sectionNote(id, "");
  } catch (err) {
    if (err instanceof ApiError && err.status === 0) throw err; // the API is down: the banner says it
    sectionNote(id, "could not read this section: " + (err.code ? err.code + ": " : "") + err.message);
  }
}

async function refresh() {
  if (state.refreshing) {
    state.pending = true;
    return;
  }
  state.refreshing = true;
  state.lastRefresh = Date.now();
  try {
    const status = await getJSON("/v1/status");
    showStatus(status);
    await Promise.all([
      section("health", () => showValidators(status.height)),
      section("markets", showMarkets),
      section("load", showLoad),
      section("meters", showMeters),
    ]);
    state.lastOk = Date.now();
    banner("");
    document.body.dataset.loaded = "true";
  } catch (err) {
    const why = err.status === 0 ? err.message : "HTTP " + err.status + " " + (err.code || "") + ": " + err.message;
    const since = state.lastOk
      ? " The figures below are from " + utc(state.lastOk) + " UTC and may be stale."
      : " Nothing could be read yet.";
    banner("The node's API at " + location.origin + " is not answering: " + why + "." + since +
      " Retrying every " + RETRY_MS / 1000 + " s.");
    setTimeout(refresh, RETRY_MS);
  } finally {
    state.refreshing = false;
    if (state.pending) {
      state.pending = false;
      scheduleRefresh();
    }
  }
}

let timer = null;
function scheduleRefresh() {
  if (timer !== null) return;
  const wait = Math.max(0, state.lastRefresh + MIN_REFRESH_MS - Date.now());
  timer = setTimeout(() => {
    timer = null;
    refresh();
  }, wait);
}

function setFeed(mode, text) {
  const el = $("#feed");
  el.dataset.feed = mode;
  el.textContent = text;
  state.feedLive = mode === "live";
}

function connectFeed() {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/events";
  let ws;
  try {
    ws = new WebSocket(url);
  } catch (err) {
    setFeed("polling", "polling (no websocket)");
    return;
  }
  ws.onopen = () => setFeed("live", "live");
  ws.onmessage = (msg) => {
    let event;
    try {
      event = JSON.parse(msg.data);
    } catch (err) {
      return;
    }
    if (event.type === "block_committed") {
      setK("height", String(event.height), event.height);
      if (state.status) state.status.head_time_ms = event.timestamp_ms;
      showAge();
      scheduleRefresh();
    }
  };
  ws.onclose = () => {
    setFeed("polling", "feed lost: polling, reconnecting…");
    setTimeout(connectFeed, RETRY_MS);
  };
}

function start() {
  refresh();
  connectFeed();
  setInterval(showAge, 1000);
  setInterval(() => {
    if (!state.feedLive) scheduleRefresh();
  }, POLL_MS);
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
