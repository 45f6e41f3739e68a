// Livermore admin page: plain JS, no build step. Every value from the API is set with
// textContent (never innerHTML), so symbol names or messages cannot inject markup.
"use strict";

const TOKEN_KEY = "livermore.token";
const POLL_MS = Number(new URLSearchParams(location.search).get("poll_ms")) || 2000;
const FEED_LIMIT = 200;
const state = { exchanges: [], poller: null, socket: null, searchTimer: null };

const $ = (id) => document.getElementById(id);
const token = () => sessionStorage.getItem(TOKEN_KEY);

function cell(row, text, testid, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (testid) td.dataset.testid = testid;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.status === 401) signOut("your token was rejected; sign in again");
  return { status: response.status, ok: response.ok, body };
}

// ------------------------------------------------------------------ sign in

async function signIn(candidate) {
  sessionStorage.setItem(TOKEN_KEY, candidate);
  const me = await api("/api/me");
  if (!me.ok) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("signin-error").textContent = me.body?.error?.message || `sign-in failed (${me.status})`;
    return;
  }
  $("signin-error").textContent = "";
  $("whoami").textContent = `${me.body.username} (${me.body.role})`;
  state.me = me.body;
  $("signin").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = false;
  await refreshExchanges();
  fillExchangeSelect();
  await loadSymbols();
  state.poller = setInterval(refreshExchanges, POLL_MS);
  connectFeed();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearInterval(state.poller);
  if (state.socket) { state.socket.onclose = null; state.socket.close(); }
  state.socket = null;
  $("app").hidden = true;
  $("sign-out").hidden = true;
  $("signin").hidden = false;
  $("whoami").textContent = "";
  $("signin-error").textContent = message || "";
}

// ------------------------------------------------------------------ exchanges

function progressOf(worker) {
  if (!worker.status) return { percent: 0, label: worker.liveness };
  if (worker.state === "connected") return { percent: 100, label: "connected" };
  const progress = worker.status.progress;
  // A stopped or failed worker reports phase "idle": show its state (and error), not "idle 0%".
  if (!progress || progress.phase === "idle") {
    const error = worker.state === "error" && worker.status.error ? `: ${worker.status.error}` : "";
    return { percent: 0, label: `${worker.state}${error}` };
  }
  const item = progress.current_item ? ` · ${progress.current_item}` : "";
  return { percent: progress.percent, label: `${progress.phase} ${Math.round(progress.percent)}%${item}` };
}

function renderExchange(exchange) {
  const row = document.createElement("tr");
  row.dataset.testid = `exchange-row-${exchange.name}`;
  cell(row, exchange.display_name);
  const worker = exchange.worker;
  const stateText = worker.alive ? worker.state : (worker.liveness === "dead" ? "dead" : "not running");
  cell(row, stateText, `state-${exchange.name}`, worker.alive ? "alive" : "dead");
  const progressCell = cell(row, "");
  const bar = document.createElement("progress");
  const progress = progressOf(worker);
  bar.max = 100;
  bar.value = progress.percent;
  bar.dataset.testid = `progress-${exchange.name}`;
  const label = document.createElement("span");
  label.textContent = ` ${progress.label}`;
  label.dataset.testid = `progress-label-${exchange.name}`;
  progressCell.append(bar, label);
  cell(row, worker.status ? worker.status.symbol_count : "");
  const actions = cell(row, "");
  if (!exchange.streaming) {
    // No worker can stream this exchange: a start command would wait forever.
    const note = document.createElement("span");
    note.className = "muted";
    note.textContent = "no streaming client";
    note.dataset.testid = `no-client-${exchange.name}`;
    actions.appendChild(note);
    return row;
  }
  for (const type of ["start", "stop"]) {
    const button = document.createElement("button");
    button.textContent = type;
    button.dataset.testid = `${type}-${exchange.name}`;
    button.addEventListener("click", () => command(exchange.name, type));
    actions.appendChild(button);
  }
  if (!worker.alive) {
    const hint = document.createElement("div");
    hint.className = "muted";
    hint.dataset.testid = `hint-${exchange.name}`;
    const how = document.createElement("code");
    how.textContent = `livermore-worker --exchange ${exchange.name}`;
    hint.append(worker.liveness === "dead" ? "worker died; restart it: " : "no worker running; start one: ", how);
    actions.appendChild(hint);
  }
  return row;
}

async function refreshExchanges() {
  const result = await api("/api/exchanges");
  if (!result.ok) return;
  state.exchanges = result.body.items;
  $("exchanges-table").tBodies[0].replaceChildren(...state.exchanges.map(renderExchange));
}

async function command(exchange, type) {
  $("command-message").textContent = `${type} ${exchange}: sending…`;
  const body = type === "start" ? { type } : { type, timeout_s: 10 };
  const result = await api(`/api/exchanges/${exchange}/commands`, { method: "POST", body });
  const text = result.status === 202
    ? `queued (${result.body.correlation_id})`
    : result.ok ? (result.body.message || result.body.status) : result.body?.error?.message;
  $("command-message").textContent = `${type} ${exchange}: ${text || result.status}`;
  await refreshExchanges();
}

// ------------------------------------------------------------------ symbols

function fillExchangeSelect() {
  const select = $("symbols-exchange");
  select.replaceChildren(...state.exchanges.map((exchange) => {
    const option = document.createElement("option");
    option.value = exchange.name;
    option.textContent = exchange.display_name;
    return option;
  }));
}

async function loadSymbols() {
  const exchange = $("symbols-exchange").value;
  if (!exchange) return;
  const params = new URLSearchParams({ limit: "100" });
  const search = $("symbols-search").value.trim();
  if (search) params.set("search", search);
  const result = await api(`/api/exchanges/${exchange}/symbols?${params}`);
  if (!result.ok) return;
  $("symbols-total").textContent = `${result.body.total} symbols`;
  renderNoSymbols(exchange, result.body.total === 0 && !search);
  $("symbols-table").tBodies[0].replaceChildren(...result.body.items.map((symbol) => {
    const row = document.createElement("tr");
    row.dataset.testid = "symbol-row";
    const name = cell(row, "");
    const link = document.createElement("a");
    link.href = chartUrl(exchange, symbol.symbol, "1h");
    link.textContent = symbol.symbol;
    link.title = "open the 1h chart";
    link.dataset.testid = "symbol-name";
    name.appendChild(link);
    cell(row, symbol.display_name);
    cell(row, symbol.volume_rank);
    cell(row, symbol.volume_24h);
    cell(row, symbol.tier ? `tier ${symbol.tier}` : "—", "symbol-tier", symbol.tier ? `tier-${symbol.tier}` : "");
    return row;
  }));
}

function renderNoSymbols(exchange, empty) {
  const box = $("symbols-empty");
  box.hidden = !empty;
  if (!empty) return;
  const text = document.createElement("span");
  text.textContent = `No symbols for ${exchange} yet. `;
  box.replaceChildren(text);
  if (state.me?.role !== "admin") {
    box.append("Ask an admin to refresh them (or run livermore-symbols refresh).");
    return;
  }
  const button = document.createElement("button");
  button.textContent = "Refresh symbols";
  button.dataset.testid = "refresh-symbols";
  button.addEventListener("click", async () => {
    button.disabled = true;
    text.textContent = `Refreshing ${exchange}… `;
    const result = await api(`/api/exchanges/${exchange}/symbols/refresh`, { method: "POST" });
    text.textContent = result.ok ? "" : `${result.body?.error?.message || result.status} `;
    button.disabled = false;
    if (result.ok) await loadSymbols();
  });
  box.appendChild(button);
}

// ------------------------------------------------------------------ live alerts

// The chart page's documented URL: /admin/chart?exchange=NAME&symbol=SYMBOL&timeframe=TF
function chartUrl(exchange, symbol, timeframe) {
  return `/admin/chart?${new URLSearchParams({ exchange, symbol, timeframe })}`;
}

const EXCHANGE_TITLES = { coinbase: "Coinbase", binance: "Binance", binance_us: "Binance US" };
const ARROWS = { up: "↑", down: "↓" };

function exchangeTitle(name) {
  return EXCHANGE_TITLES[name] || name;
}

// "Coinbase BTC-USD level_-200 ↓ → your Binance BTCUSDT", each "your" symbol linking its chart.
function renderSignal(td, alert) {
  const arrow = ARROWS[alert.direction] || "";
  const venues = alert.venues && alert.venues.length ? alert.venues : [{
    exchange: alert.source_exchange_name, symbol: alert.symbol, trigger_label: alert.trigger_label,
  }];
  const said = venues.map((v) => `${exchangeTitle(v.exchange)} ${v.symbol} ${v.trigger_label}`);
  const prefix = alert.alert_type === "confluence" ? "confluence: " : "";
  td.append(`${prefix}${said.join(" + ")} ${arrow}`);
  for (const [index, local] of (alert.local || []).entries()) {
    td.append(index === 0 ? " → your " : ", ");
    const link = document.createElement("a");
    link.href = chartUrl(local.exchange, local.symbol, alert.timeframe);
    link.textContent = `${exchangeTitle(local.exchange)} ${local.symbol}`;
    link.dataset.testid = "alert-local";
    link.addEventListener("click", (event) => event.stopPropagation());
    td.appendChild(link);
  }
}

function renderAlert(alert) {
  const row = document.createElement("tr");
  row.dataset.testid = alert.alert_type === "confluence" ? "alert-confluence" : "alert-item";
  row.className = "fresh";
  const mine = alert.local && alert.local.length ? alert.local[0] : null;
  const url = mine
    ? chartUrl(mine.exchange, mine.symbol, alert.timeframe)
    : chartUrl(alert.source_exchange_name, alert.symbol, alert.timeframe);
  row.dataset.chart = url;
  row.title = "open the chart";
  row.addEventListener("click", () => { location.href = url; });
  cell(row, new Date(alert.triggered_at).toLocaleTimeString());
  cell(row, alert.source_exchange_name, "alert-exchange");
  const symbol = cell(row, "");
  const link = document.createElement("a");
  link.href = chartUrl(alert.source_exchange_name, alert.symbol, alert.timeframe);
  link.textContent = alert.symbol;
  link.dataset.testid = "alert-symbol";
  symbol.appendChild(link);
  cell(row, alert.timeframe, "alert-timeframe");
  cell(row, alert.trigger_label, "alert-label");
  cell(row, alert.delayed ? `${alert.direction} (delayed)` : alert.direction, "alert-direction");
  cell(row, Number(alert.trigger_value).toFixed(1), "alert-macdv");
  cell(row, alert.price, "alert-price");
  renderSignal(cell(row, "", "alert-signal"), alert);
  const body = $("alert-feed").tBodies[0];
  body.insertBefore(row, body.firstChild);
  while (body.rows.length > FEED_LIMIT) body.deleteRow(-1);
}

function connectFeed() {
  // One feed at a time: signing in and toggling "only my assets" may both (re)connect.
  if (state.socket) {
    state.socket.onclose = null;
    state.socket.onmessage = null;
    state.socket.close();
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = new URLSearchParams({ token: token() || "" });
  if ($("feed-mine").checked) query.set("mine", "true");
  const socket = new WebSocket(`${scheme}://${location.host}/ws/alerts?${query}`);
  state.socket = socket;
  $("feed-status").textContent = "connecting";
  socket.onmessage = (message) => {
    const frame = JSON.parse(message.data);
    if (frame.type === "ready") $("feed-status").textContent = "live";
    if (frame.type === "alert") renderAlert(frame.alert);
  };
  socket.onclose = () => {
    $("feed-status").textContent = "reconnecting";
    if (token()) setTimeout(connectFeed, 2000);
  };
}

// ------------------------------------------------------------------ wiring

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn($("token-input").value.trim());
});
$("sign-out").addEventListener("click", () => signOut());
$("feed-mine").addEventListener("change", () => {
  $("alert-feed").tBodies[0].replaceChildren();
  if (token()) connectFeed();
});
$("symbols-exchange").addEventListener("change", loadSymbols);
$("symbols-search").addEventListener("input", () => {
  clearTimeout(state.searchTimer);
  state.searchTimer = setTimeout(loadSymbols, 250);
});
if (token()) signIn(token());
