// Livermore chart page: /admin/chart?exchange=binance&symbol=BTCUSDT&timeframe=1h
// Candles with MACD-V and its signal below, level lines at ±150…±400, the series' alerts as
// markers; live from the series stream (closes + MACD-V) and the alert stream. Plain JS, no
// build step; values from the API are set with textContent only.
"use strict";

const TOKEN_KEY = "livermore.token";
const LEVELS = [150, 200, 250, 300, 350, 400];
const TF_MS = { "1m": 60e3, "5m": 300e3, "15m": 900e3, "1h": 3600e3, "4h": 14400e3, "1d": 86400e3 };
const LWC = window.LightweightCharts;
const params = new URLSearchParams(location.search);
const series = {
  exchange: params.get("exchange") || "",
  symbol: params.get("symbol") || "",
  timeframe: params.get("timeframe") || "1h",
};
const view = { chart: null, candles: null, macd: null, signal: null, markers: null,
  alerts: [], seen: new Set(), lastTime: 0, streams: [], ready: 0 };

const $ = (id) => document.getElementById(id);
const token = () => sessionStorage.getItem(TOKEN_KEY);
const seconds = (ms) => Math.floor(ms / 1000);

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token()}` } });
  const body = await response.json().catch(() => null);
  return { status: response.status, ok: response.ok, body };
}

function showSignIn(message) {
  $("signin").hidden = false;
  $("chart-app").hidden = true;
  $("signin-error").textContent = message || "";
}

// ------------------------------------------------------------------ drawing

function buildChart() {
  const chart = LWC.createChart($("chart"), {
    autoSize: true,
    layout: { background: { color: "#ffffff" }, textColor: "#1d2330" },
    grid: { vertLines: { color: "#f0f1f5" }, horzLines: { color: "#f0f1f5" } },
    timeScale: { timeVisible: true, secondsVisible: false },
  });
  view.candles = chart.addSeries(LWC.CandlestickSeries, {
    upColor: "#26a69a", downColor: "#ef5350", wickUpColor: "#26a69a", wickDownColor: "#ef5350",
    borderVisible: false,
  });
  view.macd = chart.addSeries(LWC.LineSeries, { color: "#2962ff", lineWidth: 2, title: "MACD-V" }, 1);
  view.signal = chart.addSeries(LWC.LineSeries, { color: "#ff6d00", lineWidth: 1, title: "signal" }, 1);
  for (const level of LEVELS) {
    for (const price of [level, -level]) {
      view.macd.createPriceLine({
        price, color: price > 0 ? "#ef535088" : "#26a69a88", lineWidth: 1,
        lineStyle: LWC.LineStyle.Dashed, axisLabelVisible: level === 150, title: String(price),
      });
    }
  }
  const panes = chart.panes();
  if (panes.length > 1) panes[1].setHeight(220);
  view.markers = LWC.createSeriesMarkers(view.candles, []);
  view.chart = chart;
}

function bar(candle) {
  return { time: seconds(candle.open_time), open: Number(candle.open), high: Number(candle.high),
    low: Number(candle.low), close: Number(candle.close) };
}

function line(point, field) {
  const value = point[field];
  return value === null || value === undefined
    ? { time: seconds(point.open_time) } : { time: seconds(point.open_time), value: Number(value) };
}

function legend(candle, macdv) {
  const parts = [`${series.exchange} ${series.symbol} ${series.timeframe}`];
  if (candle) parts.push(`close ${candle.close}`);
  if (macdv !== null && macdv !== undefined) parts.push(`MACD-V ${Number(macdv).toFixed(1)}`);
  $("chart-legend").textContent = parts.join(" · ");
}

function addAlert(alert) {
  if (view.seen.has(alert.uid)) return;
  view.seen.add(alert.uid);
  view.alerts.push(alert);
  const up = !String(alert.trigger_label).startsWith("level_-") && alert.trigger_label !== "reversal_overbought";
  const markers = view.alerts.map((a) => {
    const rising = !String(a.trigger_label).startsWith("level_-") && a.trigger_label !== "reversal_overbought";
    return { time: seconds(a.bar_open_time), position: rising ? "belowBar" : "aboveBar",
      color: rising ? "#0a7a32" : "#b00020", shape: rising ? "arrowUp" : "arrowDown",
      text: a.trigger_label };
  }).sort((a, b) => a.time - b.time);
  view.markers.setMarkers(markers);
  $("chart").dataset.markers = String(markers.length);
  const row = document.createElement("tr");
  row.dataset.testid = "chart-alert";
  row.className = `fresh ${up ? "alive" : "dead"}`;
  for (const [text, testid] of [
    [new Date(alert.bar_open_time).toISOString().slice(0, 16).replace("T", " "), "chart-alert-bar"],
    [alert.trigger_label, "chart-alert-label"],
    [Number(alert.trigger_value).toFixed(1), "chart-alert-macdv"],
    [alert.price, "chart-alert-price"],
  ]) {
    const td = document.createElement("td");
    td.textContent = String(text);
    td.dataset.testid = testid;
    row.appendChild(td);
  }
  const body = $("chart-alerts").tBodies[0];
  body.insertBefore(row, body.firstChild);
}

// ------------------------------------------------------------------ data

function seriesPath() {
  return `/api/exchanges/${encodeURIComponent(series.exchange)}/symbols/${encodeURIComponent(series.symbol)}`;
}

async function load() {
  const result = await api(`${seriesPath()}/chart?timeframe=${encodeURIComponent(series.timeframe)}&limit=300`);
  if (result.status === 401) return showSignIn("your token was rejected; sign in again");
  if (!result.ok) {
    $("chart-error").textContent = result.body?.error?.message || `could not load the chart (${result.status})`;
    return;
  }
  const data = result.body;
  view.candles.setData(data.candles.map(bar));
  view.macd.setData(data.macdv.map((p) => line(p, "macd_v")));
  view.signal.setData(data.macdv.map((p) => line(p, "signal")));
  const last = data.candles[data.candles.length - 1];
  view.lastTime = last ? last.open_time : 0;
  $("chart").dataset.candles = String(data.candles.length);
  $("chart").dataset.lastOpenTime = String(view.lastTime);
  if (!data.candles.length) $("chart-error").textContent = "no cached candles for this series yet";
  data.alerts.forEach(addAlert);
  $("chart").dataset.markers = String(view.alerts.length);
  legend(last, data.macdv.length ? data.macdv[data.macdv.length - 1].macd_v : null);
  view.chart.timeScale().fitContent();
}

function onCandle(candle) {
  if (candle.open_time < view.lastTime) return; // an older bar than the chart's newest
  view.candles.update(bar(candle));
  view.lastTime = candle.open_time;
  const count = Number($("chart").dataset.candles || 0) + 1;
  $("chart").dataset.candles = String(count);
  $("chart").dataset.lastOpenTime = String(candle.open_time);
  legend(candle, null);
}

function onIndicator(value) {
  const point = { open_time: value.open_time, ...value.value };
  if (point.macd_v !== null) view.macd.update(line(point, "macd_v"));
  if (point.signal !== null) view.signal.update(line(point, "signal"));
  $("chart").dataset.lastIndicatorTime = String(value.open_time);
}

function onAlert(event) {
  if (event.symbol !== series.symbol || event.timeframe !== series.timeframe) return;
  const closedAt = Date.parse(event.triggered_at);
  addAlert({ uid: event.id, bar_open_time: closedAt - TF_MS[series.timeframe],
    trigger_label: event.trigger_label, trigger_value: event.trigger_value, price: event.price });
}

function follow(url, handlers) {
  const source = new EventSource(url);
  source.addEventListener("ready", () => {
    view.ready += 1;
    if (view.ready >= 2) $("chart-status").textContent = "live";
  });
  for (const [name, handle] of Object.entries(handlers)) {
    source.addEventListener(name, (message) => handle(JSON.parse(message.data)));
  }
  source.onerror = () => { $("chart-status").textContent = "reconnecting"; view.ready = 0; };
  view.streams.push(source);
}

async function start() {
  const me = await api("/api/me");
  if (!me.ok) return showSignIn(me.status === 401 ? "" : `sign-in failed (${me.status})`);
  $("whoami").textContent = `${me.body.username} (${me.body.role})`;
  $("signin").hidden = true;
  $("chart-app").hidden = false;
  $("series-exchange").value = series.exchange;
  $("series-symbol").value = series.symbol;
  $("series-timeframe").value = series.timeframe;
  $("chart-title").textContent = `${series.exchange} ${series.symbol} ${series.timeframe}`;
  if (!series.exchange || !series.symbol) {
    $("chart-error").textContent = "choose an exchange and a symbol";
    return;
  }
  buildChart();
  const tokenParam = `token=${encodeURIComponent(token())}`;
  // Follow first, then load: a bar that closes in between is drawn by both, harmlessly.
  follow(`${seriesPath()}/stream?timeframe=${encodeURIComponent(series.timeframe)}&${tokenParam}`,
    { candle: onCandle, indicator: onIndicator });
  follow(`/api/alerts/stream?exchanges=${encodeURIComponent(series.exchange)}&${tokenParam}`,
    { alert: onAlert });
  await load();
}

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
  start();
});
$("series-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const next = new URLSearchParams({ exchange: $("series-exchange").value.trim(),
    symbol: $("series-symbol").value.trim(), timeframe: $("series-timeframe").value });
  location.search = next.toString();
});
if (token()) start(); else showSignIn();
