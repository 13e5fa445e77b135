// The household page (ADR 0042): reads and acts through the agent on this device (same
// origin), which reads the node for this household's account and signs with its key. No build
// step: plain ES2020 in one file, and the operator page's vendored uPlot (window.uPlot). Every
// value is written with textContent, never as HTML.
"use strict";

const POLL_MS = 2000;   // the agent's reads are cheap; a new block shows within this
const PLAN_MS = 10000;  // the forecast and plan change once per agent cycle
const BOOK_SLOTS = 96;  // at most this many open slots in the book's slot list

const state = {
  health: null,
  household: null,
  planVersion: null,
  planAt: 0,
  lastOk: 0,
  busy: false,
  chart: null,
};

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function call(path, body) {
  const init = { cache: "no-store", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "unreachable", "no connection (" + (err && err.message ? err.message : err) + ")");
  }
  let doc = null;
  try {
    doc = await response.json();
  } catch (err) {
    doc = null;
  }
  if (!response.ok) {
    // an error envelope, or (502) the action the agent signed and the node did not commit
    const e = doc && doc.error && typeof doc.error === "object"
      ? doc.error
      : { code: "http_" + response.status, message: response.statusText };
    const failed = new ApiError(response.status, e.code, e.message);
    failed.body = doc;
    throw failed;
  }
  if (doc === null) throw new ApiError(response.status, "not_json", "the answer is not JSON");
  return doc;
}

// --- formatting -----------------------------------------------------------------------------

const credits = (mc) => (mc === null || mc === undefined ? "–" : (mc / 1000).toFixed(3));
const MARKET_NAMES = { day_ahead: "day-ahead", intraday: "intraday" };

function banner(text) {
  const el = $("#banner");
  el.hidden = !text;
  el.textContent = text || "";
  document.body.classList.toggle("stale", Boolean(text));
}

function badge(mode, text) {
  const el = $("#agent-state");
  el.dataset.state = mode;
  el.textContent = text;
}

function result(id, ok, text) {
  const el = document.getElementById(id);
  el.hidden = false;
  el.className = "result " + (ok ? "ok" : "error");
  el.dataset.outcome = ok ? "ok" : "error";
  el.textContent = text;
}

function failure(err) {
  if (err.status === 0) return "The agent did not answer: " + err.message + ". Nothing was sent.";
  if (err.status === 502 && err.body && err.body.status === "refused") {
    // the agent signed it; the node refused it, so nothing is ordered
    return "The node refused it: " + (err.body.error || "no reason given") + ". Nothing was ordered.";
  }
  if (err.status === 502 && err.body && err.body.status) {
    // the node accepted it and did not commit it in time: it may still commit
    return "Sent, but not committed yet: " + (err.body.error || "no reason given") + ". See \"What the agent did\".";
  }
  if (err.status >= 500) return "The node did not answer (" + err.code + "): " + err.message + ". Nothing was sent.";
  return "Refused (" + err.code + "): " + err.message + ". Nothing was sent.";
}

// --- reading what the user typed ------------------------------------------------------------

class InputError extends Error {}

// A decimal number with at most `places` decimals, as an integer of 10^-places units.
function fixed(text, what, places) {
  const t = String(text || "").trim();
  if (!/^\d+(\.\d+)?$/.test(t)) throw new InputError(what + " must be a positive number, got \"" + t + "\"");
  const [whole, frac = ""] = t.split(".");
  if (frac.length > places) throw new InputError(what + " takes at most " + places + " decimals, got \"" + t + "\"");
  const value = Number(whole) * 10 ** places + Number(frac.padEnd(places, "0") || "0");
  if (!Number.isSafeInteger(value) || value <= 0) throw new InputError(what + " must be more than zero, got \"" + t + "\"");
  return value;
}

function wholeNumber(text, what) {
  const t = String(text || "").trim();
  if (!/^\d{1,15}$/.test(t)) throw new InputError(what + " must be a whole number, got \"" + t + "\"");
  return Number(t);
}

// --- sections -------------------------------------------------------------------------------

function showAccount(h) {
  $("#household-name").textContent = h.name;
  $("#address").textContent = short(h.address, 20);
  $("#address").title = h.address;
  document.title = h.name + " · gridchain household";
  setK("balance", credits(h.account.balance_mc), h.account.balance_mc);
  setK("spendable", credits(h.account.spendable_mc), h.account.spendable_mc);
  setK("locked", credits(h.account.locked_mc), h.account.locked_mc);
  const vs = h.earnings.vs_tariffs_mc;
  setK("vs-tariffs", (vs > 0 ? "+" : "") + credits(vs), vs);
  const mk = h.markets;
  $("#clock-note").textContent = "Slots of " + mk.slot_length_ms / 1000 + " s; now slot " + mk.current_slot +
    "; first open: day-ahead " + mk.first_open_slot.day_ahead + ", intraday " + mk.first_open_slot.intraday +
    (mk.penalty_mc_per_kwh !== null && mk.penalty_mc_per_kwh !== undefined
      ? "; a seller that does not deliver pays " + credits(mk.penalty_mc_per_kwh) + " credits/kWh" : "") + ".";
}

function showOrders(h) {
  fillTable("#order-table", h.open_orders, "no open orders", (tr, o) => {
    tr.dataset.order = o.id;
    tr.dataset.slot = o.slot;
    tr.dataset.market = o.market;
    cell(tr, o.id.slice(0, 10), "mono");
    cell(tr, MARKET_NAMES[o.market] || o.market);
    cell(tr, o.slot, "n", o.slot);
    cell(tr, o.side);
    cell(tr, o.device);
    cell(tr, credits(o.price_mc_per_kwh), "n", o.price_mc_per_kwh);
    cell(tr, kwh(o.quantity_wh), "n", o.quantity_wh);
    cell(tr, kwh(o.open_wh), "n", o.open_wh);
    cell(tr, kwh(o.filled_wh), "n", o.filled_wh);
  });
}

function showTrades(h) {
  fillTable("#trade-table", h.trades, "no trades yet", (tr, t) => {
    tr.dataset.trade = t.trade_id;
    cell(tr, t.trade_id, "n", t.trade_id);
    cell(tr, MARKET_NAMES[t.market] || t.market);
    cell(tr, t.slot, "n", t.slot);
    cell(tr, t.seller === h.address ? "sold" : "bought");
    cell(tr, kwh(t.quantity_wh), "n", t.quantity_wh);
    cell(tr, credits(t.price_mc_per_kwh), "n", t.price_mc_per_kwh);
    cell(tr, credits(t.amount_mc), "n", t.amount_mc);
    cell(tr, t.status);
  });
}

function showReceipts(h) {
  fillTable("#receipt-table", h.receipts, "no receipts yet (a trade is settled after its slot ends)", (tr, v) => {
    const r = v.receipt;
    tr.dataset.trade = r.trade_id;
    cell(tr, r.trade_id, "n", r.trade_id);
    cell(tr, r.slot, "n", r.slot);
    cell(tr, v.role === "seller" ? "sold" : "bought");
    cell(tr, kwh(r.quantity_wh), "n", r.quantity_wh);
    cell(tr, kwh(r.delivered_wh), "n", r.delivered_wh);
    cell(tr, credits(r.paid_mc), "n", r.paid_mc);
    cell(tr, r.fine_paid_mc ? credits(r.fine_paid_mc) + (v.role === "seller" ? " paid" : " received") : "–", "n", r.fine_paid_mc);
    cell(tr, r.status, "status-" + r.status);
    cell(tr, r.shortfall_reason ? r.shortfall_reason.replace(/_/g, " ") : "–", null, r.shortfall_reason || "");
    const tariff = v.role === "seller" ? v.feed_in_mc_per_kwh : v.retail_mc_per_kwh;
    cell(tr, tariff === null ? "–" : credits(tariff) + (v.role === "seller" ? " feed-in" : " retail"), "n", tariff);
    cell(tr, v.vs_tariff_mc === null ? "–" : (v.vs_tariff_mc > 0 ? "+" : "") + credits(v.vs_tariff_mc), "n", v.vs_tariff_mc);
  });
  const e = h.earnings;
  $("#earnings-note").textContent = "over the " + e.receipts + " receipts above";
  const rows = [
    ["sold", e.sold_wh, e.sold_paid_mc - e.fines_paid_mc, e.sold_at_feed_in_mc, "feed-in"],
    ["bought", e.bought_wh, e.bought_paid_mc - e.fines_received_mc, e.bought_at_retail_mc, "retail"],
  ];
  fillTable("#earnings", rows, "", (tr, [what, wh, paid, tariff, name]) => {
    tr.dataset.row = what;
    cell(tr, what + " (vs " + name + ")");
    cell(tr, kwh(wh), "n", wh);
    cell(tr, credits(paid), "n", paid);
    cell(tr, credits(tariff), "n", tariff);
    const diff = what === "sold" ? paid - tariff : tariff - paid;
    cell(tr, (diff > 0 ? "+" : "") + credits(diff), "n", diff);
  });
}

function showCharges(h) {
  fillTable("#cd-table", h.cd_requests, "no charge requests", (tr, r) => {
    tr.dataset.request = r.id;
    cell(tr, r.id.slice(0, 10), "mono");
    cell(tr, r.device);
    cell(tr, r.kind);
    cell(tr, kwh(r.energy_wh), "n", r.energy_wh);
    cell(tr, kwh(r.delivered_wh), "n", r.delivered_wh);
    cell(tr, utc(r.departure_ms));
    cell(tr, r.status);
  });
}

function showActions(h) {
  fillTable("#action-table", h.actions, "nothing yet", (tr, a) => {
    tr.dataset.action = a.id;
    cell(tr, a.id, "n", a.id);
    cell(tr, utc(a.time_ms));
    cell(tr, a.origin === "plan" ? "plan v" + a.plan_version : "you");
    cell(tr, a.kind === "order" ? a.side + " " + a.device + " (" + (MARKET_NAMES[a.market] || a.market) + ")" : a.side + " " + a.device);
    cell(tr, a.slot, "n", a.slot);
    cell(tr, kwh(a.quantity_wh), "n", a.quantity_wh);
    cell(tr, a.price_mc_per_kwh > 1e12 ? "any" : credits(a.price_mc_per_kwh), "n", a.price_mc_per_kwh);
    cell(tr, a.status + (a.error ? ": " + a.error : ""), a.error ? "detail" : null);
  });
}

// The book's slot list: the first open slots of the chosen market; the choice is kept.
function showSlots(h) {
  const market = $("#book-market").value;
  const first = h.markets.first_open_slot[market];
  const select = $("#book-slot");
  const keep = Number(select.value);
  // every slot open for orders: from the first open one to the order horizon's last
  const mk = h.markets;
  const last = Math.min(Math.floor((mk.now_ms + mk.order_horizon_ms) / mk.slot_length_ms), first + BOOK_SLOTS - 1);
  const wanted = [];
  for (let s = first; s <= last; s += 1) wanted.push(s);
  const current = Array.from(select.options).map((o) => Number(o.value));
  if (current.join() !== wanted.join()) {
    select.replaceChildren(...wanted.map((s) => {
      const opt = document.createElement("option");
      opt.value = String(s);
      opt.textContent = s + " · " + utc(s * h.markets.slot_length_ms).slice(11);
      return opt;
    }));
    select.value = wanted.includes(keep) ? String(keep) : String(first);
  }
  const form = $("#order-form");
  if (!form.slot.value) form.slot.value = String(h.markets.first_open_slot[form.market.value]);
}

async function showBook() {
  const market = $("#book-market").value;
  const slot = $("#book-slot").value;
  if (!slot) return;
  const found = await call("/v1/offers?market=" + market + "&slot=" + slot);
  const own = new Set(found.own);
  const o = found.offers;
  $("#book-title").textContent = (MARKET_NAMES[o.market] || o.market) + " slot " + o.slot + (o.open ? "" : " (closed)");
  $("#book").dataset.market = o.market;
  $("#book").dataset.slot = o.slot;
  for (const [id, list] of [["#asks", o.asks], ["#bids", o.bids]]) {
    fillTable(id, list, "none", (tr, offer) => {
      tr.dataset.offer = offer.id;
      cell(tr, offer.priority, "n", offer.priority);
      cell(tr, credits(offer.price_mc_per_kwh), "n", offer.price_mc_per_kwh);
      cell(tr, kwh(offer.display_wh) + (offer.iceberg ? " (iceberg)" : ""), "n", offer.display_wh);
      const td = cell(tr, "");
      if (own.has(offer.id)) {
        td.textContent = "yours";
        td.className = "note";
      } else if (o.open) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "take";
        button.textContent = offer.side === "sell" ? "Buy" : "Sell";
        button.title = (offer.side === "sell" ? "buy " : "sell ") + kwh(offer.display_wh) + " kWh at " + credits(offer.price_mc_per_kwh);
        button.addEventListener("click", () => takeOffer(o.market, o.slot, offer, button));
        td.appendChild(button);
      }
    });
  }
}

// what today's readings so far did to the forecast (agent/intraday.py)
function intradayNote(what, c) {
  if (!c) return "";
  return c.applied
    ? " Re-planned on today's readings: " + what + " ×" + c.factor.toFixed(2) + " for the rest of the day (nRMSE " +
      c.nrmse.toFixed(2) + " over " + c.intervals + " intervals)."
    : " Today's " + what + " so far is as forecast (nRMSE " + c.nrmse.toFixed(2) + ").";
}

async function showPlan() {
  let plan;
  let forecast;
  try {
    [plan, forecast] = await Promise.all([call("/fetchOptimizationsData"), call("/fetchForecastData")]);
  } catch (err) {
    if (err.status === 404) {
      $("#plan-note").textContent = "No plan yet: " + err.message + ".";
      return;
    }
    throw err;
  }
  state.planVersion = plan.version;
  state.planAt = Date.now();
  $("#plan-version").textContent = "version " + plan.version + ", made " + utc(plan.made_ms) + " UTC";
  const saved = plan.base_case_cost_mc - plan.cost_mc;
  $("#plan-note").textContent = "Plan cost " + credits(plan.cost_mc) + " credits over " + plan.slots.length +
    " slots; the rule-based base case costs " + credits(plan.base_case_cost_mc) + " (" +
    (saved >= 0 ? "saves " : "costs ") + credits(Math.abs(saved)) + ")." +
    (forecast.pv_quality ? " PV forecast nRMSE " + forecast.pv_quality.regression.nrmse.toFixed(3) +
      " (persistence " + forecast.pv_quality.persistence.nrmse.toFixed(3) + ")." : "") +
    intradayNote("PV", forecast.pv_intraday) + intradayNote("load", forecast.load_intraday);
  const list = $("#violations");
  list.replaceChildren(...plan.violations.map((v) => {
    const li = document.createElement("li");
    li.textContent = v.goal + ": " + v.short_kwh.toFixed(2) + " kWh short (" + v.reason + ")";
    return li;
  }));
  fillTable("#plan-table", plan.slots.slice(0, 12), "no slots", (tr, s) => {
    tr.dataset.slot = s.slot;
    cell(tr, s.slot, "n", s.slot);
    cell(tr, utc(s.start_ms));
    cell(tr, s.pv_kw.toFixed(2), "n");
    cell(tr, s.load_kw.toFixed(2), "n");
    cell(tr, s.import_kw.toFixed(2), "n");
    cell(tr, s.export_kw.toFixed(2), "n");
    cell(tr, s.battery_soe_kwh.toFixed(2), "n");
    cell(tr, s.ev_soe_kwh.toFixed(2), "n");
  });
  // today's forecast (UTC day of the first planned slot) and the plan's net import
  const day = Math.floor(plan.slots[0].start_ms / 86400000);
  const today = forecast.intervals.filter((i) => Math.floor(i.start_ms / 86400000) === day);
  drawChart(today, plan.slots, forecast.interval_ms);
}

function drawChart(intervals, slots, intervalMs) {
  if (typeof window.uPlot !== "function" || intervals.length === 0) return;
  const xs = intervals.map((i) => i.start_ms / 1000);
  const first = xs[0];
  const last = xs[xs.length - 1];
  // the plan's slots (15 min, or seconds on a testnet) averaged over each forecast interval
  const net = intervals.map((i) => {
    const inside = slots.filter((x) => i.start_ms <= x.start_ms && x.start_ms < i.start_ms + intervalMs);
    return inside.length ? inside.reduce((sum, x) => sum + x.net_kw, 0) / inside.length : null;
  });
  const data = [xs, intervals.map((i) => i.pv_kw), intervals.map((i) => i.load_kw), net];
  const box = $("#plan-chart");
  const width = Math.max(280, box.clientWidth || 600);
  if (!state.chart) {
    state.chart = new window.uPlot({
      width: width,
      height: 200,
      series: [{}, { label: "PV kW", stroke: "#e0a800" }, { label: "load kW", stroke: "#1f77b4" },
        { label: "planned net kW", stroke: "#2ca02c", points: { show: true }, spanGaps: false }],
      scales: { x: { time: true, range: [first, last] } },
      axes: [{}, { size: 45 }],
      legend: { live: false },
    }, data, box);
  } else {
    state.chart.setData(data);
  }
}

window.addEventListener("resize", () => {
  if (state.chart) state.chart.setSize({ width: Math.max(280, $("#plan-chart").clientWidth || 600), height: 200 });
});

// --- actions --------------------------------------------------------------------------------

async function takeOffer(market, slot, offer, button) {
  button.disabled = true;
  try {
    const action = await call("/v1/take", { market: market, slot: slot, offer_id: offer.id });
    result("take-result", true, (action.side === "buy" ? "Bought " : "Sold ") + kwh(action.quantity_wh) +
      " kWh at " + credits(action.price_mc_per_kwh) + " credits/kWh (order " + short(action.tx_hash, 12) + ").");
  } catch (err) {
    result("take-result", false, failure(err));
  } finally {
    button.disabled = false;
    refresh();
  }
}

async function placeOrder(event) {
  event.preventDefault();
  const form = event.target;
  let body;
  try {
    body = {
      side: form.side.value,
      market: form.market.value,
      slot: wholeNumber(form.slot.value, "slot"),
      quantity_wh: fixed(form.kwh.value, "kWh", 3),
      price_mc_per_kwh: fixed(form.price.value, "credits/kWh", 3),
    };
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    result("order-result", false, err.message + ". Nothing was sent.");
    return;
  }
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const action = await call("/v1/orders", body);
    result("order-result", true, "Placed: " + action.side + " " + kwh(action.quantity_wh) + " kWh in " +
      (MARKET_NAMES[action.market] || action.market) + " slot " + action.slot + " at " +
      credits(action.price_mc_per_kwh) + " credits/kWh (order " + short(action.tx_hash, 12) + ").");
  } catch (err) {
    result("order-result", false, failure(err));
  } finally {
    button.disabled = false;
    refresh();
  }
}

async function requestCharge(event) {
  event.preventDefault();
  const form = event.target;
  let body;
  try {
    const hours = fixed(form.hours.value, "ready in hours", 2);
    body = {
      device: form.device.value,
      kind: "charge",
      energy_wh: fixed(form.kwh.value, "kWh", 3),
      max_rate_w: fixed(form.kw.value, "max kW", 3),
      departure_ms: Date.now() + hours * 36000, // hours in hundredths: 1 h = 100 * 36000 ms
    };
    if (String(form.price.value || "").trim()) body.limit_price_mc_per_kwh = fixed(form.price.value, "max credits/kWh", 3);
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    result("charge-result", false, err.message + ". Nothing was sent.");
    return;
  }
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const action = await call("/v1/charge", body);
    result("charge-result", true, "Requested: " + action.side + " the " + action.device + " with " +
      kwh(action.quantity_wh) + " kWh (request " + short(action.tx_hash, 12) + ").");
  } catch (err) {
    result("charge-result", false, failure(err));
  } finally {
    button.disabled = false;
    refresh();
  }
}

// --- refresh --------------------------------------------------------------------------------

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    try {
      state.health = await call("/agent/health");
    } catch (err) {
      badge("down", "agent down");
      throw Object.assign(err, { who: "agent" });
    }
    badge(state.health.status, "agent " + state.health.status);
    // who this is comes from the agent itself, so it shows even when the node does not answer
    $("#household-name").textContent = state.health.name;
    $("#address").textContent = short(state.health.address, 20);
    $("#address").title = state.health.address;
    let h;
    try {
      h = await call("/v1/household");
    } catch (err) {
      throw Object.assign(err, { who: err.status === 0 ? "agent" : "node" });
    }
    state.household = h;
    showAccount(h);
    showOrders(h);
    showTrades(h);
    showReceipts(h);
    showCharges(h);
    showActions(h);
    showSlots(h);
    await showBook();
    if (state.planVersion !== state.health.plan_version || Date.now() - state.planAt > PLAN_MS) await showPlan();
    state.lastOk = Date.now();
    banner("");
    document.body.dataset.loaded = "true";
  } catch (err) {
    const since = state.lastOk
      ? " The figures below are from " + utc(state.lastOk) + " UTC and may be stale."
      : " Nothing could be read yet.";
    let text;
    if (err.who === "agent") {
      text = "The agent on this device (" + location.origin + ") is not answering: " + err.message + ".";
    } else if (err.status === 502 || err.status === 504) {
      const node = state.health ? state.health.node_url : "the node";
      text = "The node's API at " + node + " is not answering (" + err.code + "): " + err.message +
        ". Your agent is running, but it cannot read your account or place orders until the node answers.";
    } else {
      text = "Could not read your account: HTTP " + err.status + " " + err.code + ": " + err.message + ".";
    }
    banner(text + since + " Retrying every " + POLL_MS / 1000 + " s.");
  } finally {
    state.busy = false;
  }
}

function start() {
  $("#order-form").addEventListener("submit", placeOrder);
  $("#charge-form").addEventListener("submit", requestCharge);
  $("#book-market").addEventListener("change", () => {
    if (state.household) showSlots(state.household);
    showBook().catch(() => {});
  });
  $("#book-slot").addEventListener("change", () => showBook().catch(() => {}));
  $("#order-form").market.addEventListener("change", (e) => {
    if (state.household) e.target.form.slot.value = String(state.household.markets.first_open_slot[e.target.value]);
  });
  refresh();
  setInterval(refresh, POLL_MS);
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
