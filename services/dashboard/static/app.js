// KHV mission control: the dashboard's web UI.
//
// Plain ES2020 module, no build step, no third-party code. It talks only to the
// gateway that serves it (same origin): REST under /api/... and a WebSocket at /ws.
//
// Rules kept throughout:
// * Money arrives as integer micro-dollars (*_micros) and counts as integer
//   hundredths of a contract (*_centi); both are formatted with BigInt integer
//   arithmetic, never through float rounding.
// * Data goes into the DOM through textContent only (never innerHTML).
// * The control token lives in sessionStorage only, is sent only in the
//   Authorization header, and is never logged.

// ---------------------------------------------------------------------------
// constants

const MICROS_PER_DOLLAR = 1_000_000n;
const LOG_CAP = 100_000;
const LOG_ROW_HEIGHT = 16; // px; must equal --log-row in style.css
const LOG_OVERSCAN = 10;
const TOAST_LIMIT = 5;
const TOAST_MS = 5000;
const HEARTBEAT_STALE_MS = 3000;
const SIGNALS_KEPT = 500;
const SIGNALS_SHOWN = 50;
const FILLS_SHOWN = 50;
const EQUITY_KEPT = 5000;
const BACKTEST_LINKS = [['report.html', 'report'], ['equity.png', 'chart']];
const TOKEN_KEY = 'khv.dashboard.token';
const FETCH_TIMEOUT_MS = 5000;
const OPEN_ORDER_STATUSES = new Set(['sent', 'unknown', 'resting', 'partial', 'pending', 'open']);
const CONTROLS_OFF_TEXT =
  'Controls are off: start the dashboard with DASHBOARD_TOKEN set (see docs/operations.md)';

// ---------------------------------------------------------------------------
// state

const state = {
  status: null,
  statusReceivedAt: 0,
  portfolio: null,
  tradingState: null, // 'active' | 'reducing' | 'halted' | null
  controlsEnabled: true, // until /api/status says otherwise
  positions: [],
  orders: new Map(), // client_order_id -> order
  fills: [], // newest first
  fillIds: new Set(),
  signals: new Map(), // signal_id -> signal (insertion order = arrival order)
  equity: [], // [ts_ns, nav_micros, drawdown_ppm], oldest first
  markets: [],
  book: null,
  bookMarket: '',
  wsOpen: false,
  endpointHealth: new Map(), // path -> last outcome ('ok' | 'error'), to toast only on change
  panelErrors: new Map(), // panel -> why its data could not be loaded
  portfolioMissing: false, // /api/portfolio answered 404: risk has published nothing yet
  backtests: [], // runs under dashboard.backtests_dir, by name
};

// ---------------------------------------------------------------------------
// small DOM helpers

const $ = (id) => document.getElementById(id);

/** A new element; `text` goes in as textContent, never as markup. */
function el(tag, opts = {}, children = []) {
  const node = document.createElement(tag);
  if (opts.className) node.className = opts.className;
  if (opts.text !== undefined && opts.text !== null) node.textContent = String(opts.text);
  if (opts.title) node.title = String(opts.title);
  for (const child of children) if (child) node.appendChild(child);
  return node;
}

function td(text, className = '') {
  return el('td', { text, className });
}

function setText(id, text) {
  const node = $(id);
  if (node && node.textContent !== text) node.textContent = text;
}

function setClass(node, base, extra) {
  const wanted = extra ? `${base} ${extra}` : base;
  if (node.className !== wanted) node.className = wanted;
}

// ---------------------------------------------------------------------------
// integer formatting (money, counts, parts per million)

/** An integer-valued JSON field as a BigInt, or null when it is not an integer. */
function toBigInt(value) {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value);
  return null;
}

function groupThousands(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/**
 * Micro-dollars as dollars: `$1,234.56`; a sub-cent amount shows 4 decimals
 * (`$0.4550`), and 6 when it has millionths (`$0.000001`). `signed` adds `+`
 * to positive amounts. Negative amounts read `-$1.50`.
 */
function formatMicros(value, signed = false) {
  const micros = toBigInt(value);
  if (micros === null) return '—';
  const negative = micros < 0n;
  const abs = negative ? -micros : micros;
  const dollars = abs / MICROS_PER_DOLLAR;
  const frac = abs % MICROS_PER_DOLLAR;
  let decimals;
  if (frac % 10_000n === 0n) decimals = (frac / 10_000n).toString().padStart(2, '0');
  else if (frac % 100n === 0n) decimals = (frac / 100n).toString().padStart(4, '0');
  else decimals = frac.toString().padStart(6, '0');
  const text = `$${groupThousands(dollars.toString())}.${decimals}`;
  if (negative) return `-${text}`;
  if (signed && micros > 0n) return `+${text}`;
  return text;
}

/** Hundredths of a contract as contracts: 1250 -> `12.5`, 1205 -> `12.05`, 1200 -> `12`. */
function formatCenti(value) {
  const centi = toBigInt(value);
  if (centi === null) return '—';
  const negative = centi < 0n;
  const abs = negative ? -centi : centi;
  const whole = groupThousands((abs / 100n).toString());
  const frac = abs % 100n;
  let text = whole;
  if (frac !== 0n) text += `.${frac.toString().padStart(2, '0').replace(/0$/, '')}`;
  return negative ? `-${text}` : text;
}

/** Parts per million as a percentage with two decimals (truncated): 52345 -> `5.23%`. */
function formatPpm(value) {
  const ppm = toBigInt(value);
  if (ppm === null) return '—';
  const negative = ppm < 0n;
  const hundredths = (negative ? -ppm : ppm) / 100n; // hundredths of a percent
  const text = `${hundredths / 100n}.${(hundredths % 100n).toString().padStart(2, '0')}%`;
  return negative ? `-${text}` : text;
}

/** -1, 0 or 1 for an integer field (0 when it is not one). */
function signOf(value) {
  const big = toBigInt(value);
  if (big === null || big === 0n) return 0;
  return big > 0n ? 1 : -1;
}

function pnlClass(value) {
  const sign = signOf(value);
  if (sign > 0) return 'pos';
  if (sign < 0) return 'neg';
  return 'zero';
}

/** A float ratio as a percentage (not money: display only). */
function formatRatio(ratio, digits = 2) {
  if (typeof ratio !== 'number' || !Number.isFinite(ratio)) return '—';
  return `${(ratio * 100).toFixed(digits)}%`;
}

function formatFloat(value, digits = 3) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return '—';
  return value.toFixed(digits);
}

function formatDuration(totalSeconds) {
  if (typeof totalSeconds !== 'number' || !Number.isFinite(totalSeconds) || totalSeconds < 0) return '—';
  const s = Math.trunc(totalSeconds);
  const days = Math.trunc(s / 86400);
  const hh = String(Math.trunc((s % 86400) / 3600)).padStart(2, '0');
  const mm = String(Math.trunc((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return days > 0 ? `${days}d ${hh}:${mm}:${ss}` : `${hh}:${mm}:${ss}`;
}

// ---------------------------------------------------------------------------
// time

/** Milliseconds since the epoch from an ISO string or a number in s, ms, us or ns. */
function toEpochMs(ts) {
  if (typeof ts === 'string') {
    if (/^\d+(\.\d+)?$/.test(ts)) return toEpochMs(Number(ts));
    const ms = Date.parse(ts);
    return Number.isFinite(ms) ? ms : null;
  }
  if (typeof ts !== 'number' || !Number.isFinite(ts) || ts <= 0) return null;
  if (ts > 1e17) return ts / 1e6; // nanoseconds
  if (ts > 1e14) return ts / 1e3; // microseconds
  if (ts > 1e11) return ts; // milliseconds
  return ts * 1000; // seconds
}

function pad2(n) {
  return String(n).padStart(2, '0');
}

function formatClock(ts, withMillis = false) {
  const ms = toEpochMs(ts);
  if (ms === null) return '—';
  const d = new Date(ms);
  const base = `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  return withMillis ? `${base}.${String(d.getMilliseconds()).padStart(3, '0')}` : base;
}

// ---------------------------------------------------------------------------
// render scheduling: many updates per frame, one render per part per frame

const renderers = {};
const dirtyParts = new Set();
let frameRequested = false;

function invalidate(part) {
  dirtyParts.add(part);
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(renderDirtyParts);
}

function renderDirtyParts() {
  frameRequested = false;
  const parts = [...dirtyParts];
  dirtyParts.clear();
  for (const part of parts) {
    try {
      renderers[part]();
    } catch (err) {
      reportUiError(`render ${part}`, err);
    }
  }
}

function reportUiError(where, err) {
  // never includes request headers, so never the token
  console.error(`dashboard: ${where}:`, err);
}

// ---------------------------------------------------------------------------
// toasts

function toast(kind, title, text = '') {
  const box = $('toasts');
  if (!box) return;
  const node = el('div', { className: `toast toast-${kind}` }, [
    el('span', { className: 'toast-title', text: title }),
    el('span', { text }),
  ]);
  node.addEventListener('click', () => node.remove());
  box.appendChild(node);
  while (box.children.length > TOAST_LIMIT) box.firstElementChild.remove();
  setTimeout(() => node.remove(), TOAST_MS);
}

// ---------------------------------------------------------------------------
// HTTP

/** GET a JSON endpoint; never throws: {ok, status, data, error}. */
async function getJSON(path) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
  try {
    const response = await fetch(path, {
      headers: { Accept: 'application/json' },
      cache: 'no-store',
      signal: controller.signal,
    });
    const data = await readJsonBody(response);
    return { ok: response.ok, status: response.status, data };
  } catch (err) {
    return { ok: false, status: 0, data: null, error: err && err.name === 'AbortError' ? 'timeout' : 'network error' };
  } finally {
    clearTimeout(timer);
  }
}

async function readJsonBody(response) {
  try {
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

function describeFailure(result) {
  if (result.status === 0) return result.error || 'network error';
  const detail = result.data && typeof result.data.detail === 'string' ? `: ${result.data.detail}` : '';
  return `HTTP ${result.status}${detail}`;
}

/**
 * Remember how an endpoint answered; toast when it starts failing with a
 * server or network error (a 404 is "not there (yet)", shown in its panel only).
 */
function noteEndpoint(name, result) {
  const outcome = result.ok || result.status === 404 ? 'ok' : 'error';
  const before = state.endpointHealth.get(name);
  state.endpointHealth.set(name, outcome);
  if (outcome === 'error' && before !== 'error') toast('error', name, describeFailure(result));
}

function listFrom(result, key) {
  if (!result.ok || !result.data || !Array.isArray(result.data[key])) return null;
  return result.data[key];
}

// ---------------------------------------------------------------------------
// status and portfolio

function applyStatus(status) {
  if (!status || typeof status !== 'object') return;
  state.status = status;
  state.statusReceivedAt = Date.now();
  if (typeof status.controls_enabled === 'boolean' && status.controls_enabled !== state.controlsEnabled) {
    state.controlsEnabled = status.controls_enabled;
    invalidate('controls');
  }
  if (typeof status.trading_state === 'string') applyTradingState(status.trading_state);
  invalidate('status');
  invalidate('metrics');
}

function applyPortfolio(portfolio) {
  if (!portfolio || typeof portfolio !== 'object') return;
  state.portfolio = portfolio;
  if (typeof portfolio.trading_state === 'string') applyTradingState(portfolio.trading_state);
  appendEquityPoint(portfolio);
  invalidate('status');
}

function applySnapshot(snapshot) {
  if (!snapshot || typeof snapshot !== 'object') return;
  if (snapshot.status) applyStatus(snapshot.status);
  if (snapshot.portfolio) applyPortfolio(snapshot.portfolio);
}

/** The latest word on the trading state wins; a change after the first one is toasted. */
function applyTradingState(raw) {
  const next = String(raw).toLowerCase();
  const before = state.tradingState;
  if (next === before) return;
  state.tradingState = next;
  invalidate('status');
  if (before === null) return;
  const kind = next === 'halted' ? 'error' : next === 'reducing' ? 'warn' : 'ok';
  toast(kind, 'trading state', `${before.toUpperCase()} → ${next.toUpperCase()}`);
}

renderers.status = function renderStatusBar() {
  const p = state.portfolio;
  setText('nav', p ? formatMicros(p.nav_micros) : '—');
  setText('cash', p ? formatMicros(p.cash_micros) : '—');
  const pnl = $('daily-pnl');
  pnl.textContent = p ? formatMicros(p.daily_pnl_micros, true) : '—';
  setClass(pnl, 'value', p ? pnlClass(p.daily_pnl_micros) : '');
  const drawdown = $('drawdown');
  drawdown.textContent = p ? formatPpm(p.drawdown_ppm) + (p.recovery_mode ? ' RECOVERY' : '') : '—';
  drawdown.title = !p && state.portfolioMissing ? 'risk has not published a portfolio yet' : '';
  $('nav').title = drawdown.title;
  setClass(drawdown, 'value', p && p.recovery_mode ? 'neg' : '');
  renderTradingState();
  renderMode();
  renderHaltedMarkets();
  renderUptime();
};

function renderTradingState() {
  const node = $('trading-state');
  const ts = state.tradingState;
  const known = ts === 'active' || ts === 'reducing' || ts === 'halted';
  node.textContent = ts ? ts.toUpperCase() : '—';
  setClass(node, 'badge', known ? `state-${ts}` : 'state-unknown');
}

function renderMode() {
  const node = $('mode');
  const mode = state.status && typeof state.status.mode === 'string' ? state.status.mode.toLowerCase() : '';
  node.textContent = mode ? mode.toUpperCase() : '—';
  setClass(node, 'badge', mode === 'live' ? 'mode-live' : mode === 'paper' ? 'mode-paper' : 'mode-unknown');
  node.title = mode === 'live' ? 'LIVE TRADING: real orders, real money' : '';
}

function renderHaltedMarkets() {
  const halted = state.status && Array.isArray(state.status.halted_markets) ? state.status.halted_markets : [];
  const node = $('halted-markets');
  node.textContent = halted.length ? halted.join(' ') : 'none';
  node.title = halted.join('\n');
  setClass(node, 'value', halted.length ? 'neg' : 'dim');
}

function renderUptime() {
  const s = state.status;
  if (!s || typeof s.uptime_s !== 'number') {
    setText('uptime', '—');
    return;
  }
  const elapsed = (Date.now() - state.statusReceivedAt) / 1000;
  setText('uptime', formatDuration(s.uptime_s + elapsed));
}

// ---------------------------------------------------------------------------
// metrics row

renderers.metrics = function renderMetrics() {
  const s = state.status || {};
  const latency = $('metric-latency');
  latency.textContent = typeof s.tick_to_order_p50_ms === 'number' ? `${s.tick_to_order_p50_ms.toFixed(2)} ms` : '—';
  const errors = $('metric-api-errors');
  errors.textContent = formatRatio(s.api_error_rate);
  setClass(errors, 'value', typeof s.api_error_rate === 'number' && s.api_error_rate > 0.05 ? 'neg' : '');
  const strategies = Array.isArray(s.active_strategies) ? s.active_strategies : [];
  const strat = $('metric-strategies');
  strat.textContent = state.status ? String(strategies.length) : '—';
  strat.title = strategies.join(', ');
  renderFeeds(s.feeds);
  renderServices(s.services);
};

function renderFeeds(feeds) {
  const box = $('metric-feeds');
  if (!feeds || typeof feeds !== 'object') {
    box.textContent = '—';
    return;
  }
  const chips = Object.keys(feeds)
    .sort((a, b) => (a === 'kalshi' ? -1 : b === 'kalshi' ? 1 : a.localeCompare(b)))
    .map((name) => {
      const value = String(feeds[name]);
      const dot = el('span', { className: `dot dot-${['fresh', 'stale', 'starting'].includes(value) ? value : 'other'}` });
      return el('span', { className: 'chip', title: `${name}: ${value}` }, [dot, el('span', { text: name })]);
    });
  box.replaceChildren(...chips);
  if (!chips.length) box.textContent = 'none';
}

function renderServices(services) {
  const box = $('metric-services');
  if (!Array.isArray(services)) {
    box.textContent = '—';
    return;
  }
  const chips = services.map((svc) => {
    const age = typeof svc.heartbeat_age_ms === 'number' ? svc.heartbeat_age_ms : null;
    const stale = age === null || age > HEARTBEAT_STALE_MS;
    const ageText = age === null ? '?' : age < 10_000 ? `${(age / 1000).toFixed(1)}s` : formatDuration(age / 1000);
    const info = svc.info && typeof svc.info === 'object' ? Object.entries(svc.info).map(([k, v]) => `${k}=${v}`) : [];
    const title = [`${svc.service}/${svc.instance} ${svc.role || ''} v${svc.version || '?'}`, ...info].join('\n');
    return el('span', { className: stale ? 'chip stale' : 'chip', title }, [
      el('span', { text: `${svc.service}/${svc.instance} ` }),
      el('span', { className: 'role', text: svc.role ? `${svc.role} ` : '' }),
      el('span', { text: ageText }),
    ]);
  });
  box.replaceChildren(...chips);
  if (!chips.length) box.textContent = 'none';
}

// ---------------------------------------------------------------------------
// positions

function applyPositions(result) {
  const positions = listFrom(result, 'positions');
  if (positions) state.positions = positions;
  notePanel('positions', positions ? '' : describeFailure(result));
  invalidate('positions');
}

/** Remember (or clear) why a panel's data could not be loaded. */
function notePanel(panel, error) {
  if (error) state.panelErrors.set(panel, error);
  else state.panelErrors.delete(panel);
}

/** A panel's header note: its load error if any, else a count ('none' when empty). */
function renderPanelNote(panel, count) {
  const error = state.panelErrors.get(panel);
  setText(`${panel}-note`, error || (count ? String(count) : 'none'));
}

/** A position's mark-to-market value in micros: YES at the mark, NO at 1 - mark. */
function positionValue(position) {
  const mark = toBigInt(position.mark_micros);
  const yes = toBigInt(position.yes_centi) ?? 0n;
  const no = toBigInt(position.no_centi) ?? 0n;
  if (mark === null) return null;
  return (yes * mark + no * (MICROS_PER_DOLLAR - mark)) / 100n;
}

renderers.positions = function renderPositions() {
  const rows = state.positions.map((position) => {
    const value = positionValue(position);
    const cost = toBigInt(position.cost_micros);
    const pnl = value !== null && cost !== null ? value - cost : null;
    return el('tr', {}, [
      td(position.market),
      td(formatCenti(position.yes_centi), 'num side-yes'),
      td(formatCenti(position.no_centi), 'num side-no'),
      td(formatMicros(position.cost_micros), 'num'),
      td(formatMicros(position.mark_micros), 'num'),
      td(value === null ? '—' : formatMicros(value), 'num'),
      td(pnl === null ? '—' : formatMicros(pnl, true), `num ${pnl === null ? '' : pnlClass(pnl)}`),
    ]);
  });
  $('positions').replaceChildren(...rows);
  renderPanelNote('positions', rows.length);
};

// ---------------------------------------------------------------------------
// open orders

function applyOrders(result) {
  const orders = listFrom(result, 'orders');
  if (orders) state.orders = new Map(orders.map((order) => [order.client_order_id, order]));
  notePanel('orders', orders ? '' : describeFailure(result));
  invalidate('orders');
}

/** An order event from /ws: merge it into the open orders, or drop the order when it is done. */
function applyOrderEvent(event) {
  if (!event || typeof event.client_order_id !== 'string') return;
  const id = event.client_order_id;
  const status = String(event.status || '').toLowerCase();
  const done = !OPEN_ORDER_STATUSES.has(status); // filled, canceled, rejected
  if (status === 'rejected') toast('error', 'order rejected', `${event.market || ''} ${event.reason || ''}`.trim());
  if (done) {
    state.orders.delete(id);
  } else {
    const before = state.orders.get(id) || {};
    state.orders.set(id, { ...before, ...event, filled_centi: event.filled_centi ?? before.filled_centi });
  }
  invalidate('orders');
}

function sideLabel(side, action) {
  const s = String(side || '').toUpperCase();
  const a = String(action || '').toLowerCase();
  return `${a || '?'} ${s || '?'}`;
}

renderers.orders = function renderOrders() {
  const orders = [...state.orders.values()].sort((a, b) => String(b.created_at || '').localeCompare(String(a.created_at || '')));
  const rows = orders.map((order) =>
    el('tr', {}, [
      td(order.created_at ? formatClock(order.created_at) : '—'),
      td(order.market),
      td(sideLabel(order.side, order.action), String(order.side).toLowerCase() === 'no' ? 'side-no' : 'side-yes'),
      td(formatMicros(order.price_micros), 'num'),
      td(formatCenti(order.count_centi), 'num'),
      td(formatCenti(order.filled_centi ?? 0), 'num'),
      td(order.status || '—', `status-${String(order.status || '').toLowerCase()}`),
      td(order.route || '—'),
      el('td', { className: 'ellipsis', text: order.client_order_id, title: order.client_order_id }),
    ]),
  );
  $('open-orders').replaceChildren(...rows);
  renderPanelNote('orders', rows.length);
};

// ---------------------------------------------------------------------------
// fills

function fillKey(fill) {
  return fill.trade_id !== undefined ? String(fill.trade_id) : JSON.stringify(fill);
}

/** Record a fill once (by trade id); returns whether it was new. */
function recordFill(fill) {
  if (!fill || typeof fill !== 'object') return false;
  const key = fillKey(fill);
  if (state.fillIds.has(key)) return false;
  state.fillIds.add(key);
  return true;
}

function applyInitialFills(result) {
  const fills = listFrom(result, 'fills');
  notePanel('fills', fills ? '' : describeFailure(result));
  invalidate('fills');
  if (!fills) return;
  const fresh = fills.filter(recordFill); // newest first, as served
  state.fills = [...state.fills, ...fresh].slice(0, FILLS_SHOWN);
  invalidate('fills');
}

function onFill(fill) {
  if (!recordFill(fill)) return;
  state.fills.unshift(fill);
  if (state.fills.length > FILLS_SHOWN) state.fills.length = FILLS_SHOWN;
  const what = `${sideLabel(fill.side, fill.action)} ${formatCenti(fill.count_centi)} ${fill.market}`;
  toast('fill', 'fill', `${what} @ ${formatMicros(fill.price_micros)}`);
  invalidate('fills');
}

renderers.fills = function renderFills() {
  setText('fills-count', String(state.fillIds.size));
  const rows = state.fills.map((fill) =>
    el('tr', {}, [
      td(formatClock(fill.ts)),
      td(fill.market),
      td(sideLabel(fill.side, fill.action), String(fill.side).toLowerCase() === 'no' ? 'side-no' : 'side-yes'),
      td(formatMicros(fill.price_micros), 'num'),
      td(formatCenti(fill.count_centi), 'num'),
      td(formatMicros(fill.fee_micros), 'num'),
      td(`${fill.is_taker ? 'taker' : 'maker'}${fill.paper ? ' (paper)' : ''}`),
    ]),
  );
  $('fills').replaceChildren(...rows);
  renderPanelNote('fills', rows.length);
};

// ---------------------------------------------------------------------------
// signals (ranked opportunities)

function applyInitialSignals(result) {
  const signals = listFrom(result, 'signals');
  notePanel('signals', signals ? '' : describeFailure(result));
  invalidate('signals');
  if (!signals) return;
  for (const signal of [...signals].reverse()) storeSignal(signal); // served newest first
}

function storeSignal(signal) {
  if (!signal || typeof signal !== 'object') return;
  const id = signal.signal_id !== undefined ? String(signal.signal_id) : JSON.stringify(signal);
  state.signals.delete(id); // re-insert: newest last
  state.signals.set(id, signal);
  while (state.signals.size > SIGNALS_KEPT) state.signals.delete(state.signals.keys().next().value);
}

function onSignal(signal) {
  storeSignal(signal);
  invalidate('signals');
}

function scoreOf(signal) {
  return typeof signal.score === 'number' && Number.isFinite(signal.score) ? signal.score : -Infinity;
}

function formatLeg(leg) {
  const action = String(leg.action || 'buy').toLowerCase() === 'sell' ? 'S' : 'B';
  const side = String(leg.side || '?').toUpperCase();
  return `${action} ${side} ${leg.market} @${formatMicros(leg.price_micros)} ×${formatCenti(leg.count_centi)}`;
}

function decisionCell(decision) {
  const text = String(decision || 'pending');
  const [verdict, ...rest] = text.split(':');
  const reason = rest.join(':');
  const kind = verdict === 'approved' ? 'approved' : verdict === 'rejected' ? 'rejected' : 'pending';
  return td(reason ? `${verdict}: ${reason}` : verdict, `decision-${kind}`);
}

renderers.signals = function renderSignals() {
  const ranked = [...state.signals.values()].sort((a, b) => scoreOf(b) - scoreOf(a)).slice(0, SIGNALS_SHOWN);
  const rows = ranked.map((signal) => {
    const legs = Array.isArray(signal.legs) ? signal.legs : [];
    const legsCell = el('td', { className: 'legs' }, legs.map((leg) => el('div', { text: formatLeg(leg) })));
    const tip = [
      `strategy ${signal.strategy}`,
      `model p ${formatFloat(signal.model_p)}`,
      `kelly ${formatFloat(signal.kelly_fraction, 4)}`,
      `AROC ${formatRatio(signal.aroc, 1)}`,
      `id ${signal.signal_id}`,
    ].join('\n');
    const row = el('tr', { title: tip }, [
      td(formatClock(signal.ts)),
      td(signal.kind || signal.strategy || '—'),
      td(signal.event || '—'),
      legsCell,
      td(formatMicros(signal.edge_micros), `num ${pnlClass(signal.edge_micros)}`),
      td(formatMicros(signal.ev_micros), `num ${pnlClass(signal.ev_micros)}`),
      td(formatRatio(signal.confidence, 0), 'num'),
      td(formatFloat(signal.score), 'num'),
      decisionCell(signal.decision),
    ]);
    return row;
  });
  $('signals').replaceChildren(...rows);
  renderPanelNote('signals', rows.length);
};

// ---------------------------------------------------------------------------
// backtests (runs on disk, served by the gateway under /backtests/{run}/{file})

function applyBacktests(result) {
  const runs = listFrom(result, 'backtests');
  if (runs) state.backtests = runs;
  notePanel('backtests', runs ? '' : describeFailure(result));
  invalidate('backtests');
}

/** An ISO time as `YYYY-MM-DD HH:MM` (the report writes UTC). */
function shortIso(iso) {
  return typeof iso === 'string' && iso ? iso.replace('T', ' ').slice(0, 16) : '?';
}

function backtestLinks(run) {
  const files = Array.isArray(run.files) ? run.files : [];
  const links = BACKTEST_LINKS.filter(([file]) => files.includes(file)).map(([file, text]) => {
    const link = el('a', { text, title: `${run.name}/${file}` });
    link.href = `/backtests/${encodeURIComponent(run.name)}/${file}`;
    link.target = '_blank';
    link.rel = 'noopener';
    return link;
  });
  const cell = el('td', { className: 'files' }, links);
  if (!links.length) cell.textContent = '—';
  return cell;
}

function backtestRow(run) {
  const span = run.span && typeof run.span === 'object' ? run.span : {};
  return el('tr', {}, [
    td(run.name),
    el('td', { className: 'ellipsis', text: run.title, title: run.title }),
    el('td', { text: `${shortIso(span.start)} → ${shortIso(span.end)}`, title: span.start ? `${span.start} → ${span.end}` : '' }),
    td(formatMicros(run.pnl_micros, true), `num ${pnlClass(run.pnl_micros)}`),
    td(toBigInt(run.trades) === null ? '—' : groupThousands(String(run.trades)), 'num'),
    td(formatFloat(run.sharpe, 2), 'num'),
    td(formatPpm(run.max_drawdown_ppm), 'num'),
    backtestLinks(run),
  ]);
}

function backtestErrorRow(run) {
  const cell = el('td', { className: 'run-error', text: String(run.error) });
  cell.colSpan = 7;
  return el('tr', {}, [td(run.name), cell]);
}

renderers.backtests = function renderBacktests() {
  const rows = state.backtests.map((run) => (run && run.error ? backtestErrorRow(run) : backtestRow(run)));
  $('backtests').replaceChildren(...rows);
  renderPanelNote('backtests', rows.length);
};

// ---------------------------------------------------------------------------
// equity and drawdown chart (canvas)

function applyEquity(result) {
  const points = listFrom(result, 'points');
  if (!points) {
    setText('equity-note', describeFailure(result));
    return;
  }
  state.equity = points.filter((p) => Array.isArray(p) && p.length >= 3 && Number.isFinite(Number(p[0])));
  setText('equity-note', '');
  invalidate('equity');
}

/** Extend the curve with live portfolio updates between re-fetches of /api/equity. */
function appendEquityPoint(portfolio) {
  const ts = Number(portfolio.ts_ns);
  if (!Number.isFinite(ts) || ts <= 0 || toBigInt(portfolio.nav_micros) === null) return;
  const last = state.equity[state.equity.length - 1];
  if (last && Number(last[0]) >= ts) return;
  state.equity.push([ts, portfolio.nav_micros, portfolio.drawdown_ppm ?? 0]);
  if (state.equity.length > EQUITY_KEPT) state.equity.splice(0, state.equity.length - EQUITY_KEPT);
  invalidate('equity');
}

const CHART = {
  navColor: '#39c5cf',
  ddFill: 'rgba(248, 81, 73, 0.35)',
  ddLine: '#f85149',
  grid: '#1c242e',
  text: '#7d8895',
  font: '10px ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", monospace',
  padRight: 10,
  padTop: 8,
  axisHeight: 18,
  gap: 10,
};

/** An equity point's time: nanoseconds since the epoch, as milliseconds (display only). */
function nsToMs(tsNs) {
  return Number(tsNs) / 1e6;
}

const TIME_STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];

/** Size the canvas backing store to its CSS box times the pixel ratio; returns the 2D context. */
function prepareCanvas(canvas) {
  const rect = canvas.getBoundingClientRect();
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(rect.width * ratio));
  const height = Math.max(1, Math.round(rect.height * ratio));
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, rect.width, rect.height);
  ctx.font = CHART.font;
  return { ctx, width: rect.width, height: rect.height };
}

function chartMessage(ctx, width, height, text) {
  ctx.fillStyle = CHART.text;
  ctx.textAlign = 'center';
  ctx.textBaseline = 'middle';
  ctx.fillText(text, width / 2, height / 2);
}

renderers.equity = function drawEquityChart() {
  const canvas = $('equity-canvas');
  if (!canvas || !canvas.getContext) return;
  const { ctx, width, height } = prepareCanvas(canvas);
  if (width < 50 || height < 50) return;
  const points = state.equity;
  if (!points.length) {
    chartMessage(ctx, width, height, 'no equity history yet');
    return;
  }
  const labels = navAxisLabels(points);
  const padLeft = Math.ceil(Math.max(...Object.values(labels).map((t) => ctx.measureText(t).width))) + 12;
  const layout = chartLayout(width, height, padLeft);
  const scale = chartScale(points, layout);
  scale.labels = labels;
  drawTimeAxis(ctx, layout, scale);
  drawNavSeries(ctx, points, layout, scale);
  drawDrawdownSeries(ctx, points, layout, scale);
};

/** Axis labels: the NAV range to the cent (truncated) and the deepest drawdown. */
function navAxisLabels(points) {
  let lo = null;
  let hi = null;
  let ddMax = 0;
  for (const [, nav, dd] of points) {
    const n = toBigInt(nav);
    if (n !== null && (lo === null || n < lo)) lo = n;
    if (n !== null && (hi === null || n > hi)) hi = n;
    ddMax = Math.max(ddMax, Math.trunc(Number(dd)) || 0);
  }
  const toCent = (v) => (v === null ? '—' : formatMicros((v / 10_000n) * 10_000n));
  const dd = { ddTop: 'DD 0%', ddBottom: `-${formatPpm(Math.max(ddMax, 1000))}` };
  if (hi === lo) return { navMax: '', navMin: '', nav: toCent(hi), ...dd }; // flat: one label, mid-height
  return { navMax: toCent(hi), navMin: toCent(lo), nav: 'NAV', ...dd };
}

function chartLayout(width, height, padLeft) {
  const plotLeft = Math.min(padLeft, width / 3);
  const plotRight = width - CHART.padRight;
  const usable = height - CHART.padTop - CHART.axisHeight - CHART.gap;
  const navTop = CHART.padTop;
  const navBottom = navTop + Math.round(usable * 0.68);
  const ddTop = navBottom + CHART.gap;
  const ddBottom = height - CHART.axisHeight;
  return { width, height, plotLeft, plotRight, navTop, navBottom, ddTop, ddBottom };
}

function chartScale(points, layout) {
  let tMin = Infinity;
  let tMax = -Infinity;
  let navMin = null;
  let navMax = null;
  let ddMax = 0;
  for (const [ts, nav, dd] of points) {
    const t = nsToMs(ts);
    if (Number.isFinite(t)) {
      tMin = Math.min(tMin, t);
      tMax = Math.max(tMax, t);
    }
    const n = toBigInt(nav);
    if (n !== null) {
      if (navMin === null || n < navMin) navMin = n;
      if (navMax === null || n > navMax) navMax = n;
    }
    ddMax = Math.max(ddMax, Number(dd) || 0);
  }
  if (!Number.isFinite(tMin)) tMin = tMax = Date.now();
  if (tMax - tMin < 1000) {
    tMin -= 30_000; // one point (or one instant): centre it in a minute
    tMax += 30_000;
  }
  if (navMin === null) navMin = navMax = 0n;
  let lo = Number(navMin);
  let hi = Number(navMax);
  if (hi - lo < 1) {
    const pad = Math.max(Math.abs(hi) * 0.001, 1_000_000); // flat: +/- 0.1% or $1
    lo -= pad;
    hi += pad;
  }
  const ddScale = Math.max(ddMax, 1000); // at least 0.1% of height
  const x = (t) => layout.plotLeft + ((t - tMin) / (tMax - tMin)) * (layout.plotRight - layout.plotLeft);
  const yNav = (nav) => layout.navBottom - ((nav - lo) / (hi - lo)) * (layout.navBottom - layout.navTop);
  const yDd = (dd) => layout.ddTop + (Math.max(0, dd) / ddScale) * (layout.ddBottom - layout.ddTop);
  return { tMin, tMax, navMin, navMax, ddMax, x, yNav, yDd };
}

function drawTimeAxis(ctx, layout, scale) {
  const spanS = (scale.tMax - scale.tMin) / 1000;
  const wanted = Math.max(2, Math.floor((layout.plotRight - layout.plotLeft) / 90));
  const step = TIME_STEPS_S.find((s) => spanS / s <= wanted) || TIME_STEPS_S[TIME_STEPS_S.length - 1];
  const stepMs = step * 1000;
  const tzOffsetMs = new Date(scale.tMin).getTimezoneOffset() * 60_000;
  const first = Math.ceil((scale.tMin - tzOffsetMs) / stepMs) * stepMs + tzOffsetMs;
  ctx.strokeStyle = CHART.grid;
  ctx.fillStyle = CHART.text;
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  ctx.lineWidth = 1;
  for (let t = first; t <= scale.tMax; t += stepMs) {
    const x = Math.round(scale.x(t)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(x, layout.navTop);
    ctx.lineTo(x, layout.ddBottom);
    ctx.stroke();
    ctx.fillText(timeLabel(t, step), x, layout.ddBottom + 4);
  }
}

function timeLabel(ms, stepS) {
  const d = new Date(ms);
  if (stepS >= 86400) return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
  if (stepS >= 60) return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

function drawNavSeries(ctx, points, layout, scale) {
  ctx.fillStyle = CHART.text;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'top';
  ctx.fillText(scale.labels.navMax, layout.plotLeft - 6, layout.navTop);
  ctx.textBaseline = 'bottom';
  ctx.fillText(scale.labels.navMin, layout.plotLeft - 6, layout.navBottom);
  ctx.textBaseline = 'middle';
  ctx.fillText(scale.labels.nav, layout.plotLeft - 6, (layout.navTop + layout.navBottom) / 2);

  ctx.strokeStyle = CHART.navColor;
  ctx.fillStyle = CHART.navColor;
  ctx.lineWidth = 1.5;
  if (points.length === 1) {
    const [ts, nav] = points[0];
    const x = scale.x(nsToMs(ts));
    const y = scale.yNav(Number(nav));
    ctx.beginPath();
    ctx.arc(x, y, 3, 0, Math.PI * 2);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  points.forEach(([ts, nav], i) => {
    const x = scale.x(nsToMs(ts));
    const y = scale.yNav(Number(nav));
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

function drawDrawdownSeries(ctx, points, layout, scale) {
  ctx.strokeStyle = CHART.grid;
  ctx.beginPath();
  ctx.moveTo(layout.plotLeft, layout.ddTop + 0.5);
  ctx.lineTo(layout.plotRight, layout.ddTop + 0.5);
  ctx.stroke();

  ctx.fillStyle = CHART.text;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'top';
  ctx.fillText(scale.labels.ddTop, layout.plotLeft - 6, layout.ddTop);
  ctx.textBaseline = 'bottom';
  ctx.fillText(scale.labels.ddBottom, layout.plotLeft - 6, layout.ddBottom);

  const xs = points.map(([ts]) => scale.x(nsToMs(ts)));
  const ys = points.map(([, , dd]) => scale.yDd(Number(dd) || 0));
  if (points.length === 1) {
    ctx.fillStyle = CHART.ddLine;
    ctx.fillRect(xs[0] - 1.5, layout.ddTop, 3, Math.max(1, ys[0] - layout.ddTop));
    return;
  }
  ctx.beginPath();
  ctx.moveTo(xs[0], layout.ddTop);
  xs.forEach((x, i) => ctx.lineTo(x, ys[i]));
  ctx.lineTo(xs[xs.length - 1], layout.ddTop);
  ctx.closePath();
  ctx.fillStyle = CHART.ddFill;
  ctx.fill();
  ctx.strokeStyle = CHART.ddLine;
  ctx.lineWidth = 1;
  ctx.beginPath();
  xs.forEach((x, i) => (i === 0 ? ctx.moveTo(x, ys[i]) : ctx.lineTo(x, ys[i])));
  ctx.stroke();
}

function watchChartSize() {
  const canvas = $('equity-canvas');
  const redraw = () => invalidate('equity');
  if (typeof ResizeObserver === 'function') new ResizeObserver(redraw).observe(canvas.parentElement);
  window.addEventListener('resize', redraw);
}

// ---------------------------------------------------------------------------
// markets and the order-book ladder

function applyMarkets(result) {
  const markets = listFrom(result, 'markets');
  if (!markets) return;
  state.markets = markets.filter((m) => m && typeof m.market === 'string');
  renderMarketSelector();
}

function renderMarketSelector() {
  const select = $('book-market');
  const current = state.bookMarket;
  const byEvent = new Map();
  for (const market of state.markets) {
    const event = market.event || '(no event)';
    if (!byEvent.has(event)) byEvent.set(event, []);
    byEvent.get(event).push(market);
  }
  const groups = [...byEvent.keys()].sort().map((event) => {
    const group = el('optgroup');
    group.label = event;
    for (const market of byEvent.get(event)) {
      const label = market.title ? `${market.market} — ${market.title}` : market.market;
      const tradable = !market.status || market.status === 'open' || market.status === 'active';
      const option = el('option', { text: tradable ? label : `${label} [${market.status}]` });
      option.value = market.market;
      group.appendChild(option);
    }
    return group;
  });
  if (!groups.length) {
    const none = el('option', { text: '— no markets —' });
    none.value = '';
    select.replaceChildren(none);
    return;
  }
  select.replaceChildren(...groups);
  const chosen = state.markets.some((m) => m.market === current) ? current : defaultBookMarket();
  select.value = chosen;
  if (chosen !== state.bookMarket) chooseBookMarket(chosen);
}

function defaultBookMarket() {
  const held = state.positions.find((p) => state.markets.some((m) => m.market === p.market));
  if (held) return held.market;
  const open = state.markets.find((m) => !m.status || m.status === 'open' || m.status === 'active');
  return (open || state.markets[0]).market;
}

function chooseBookMarket(market) {
  state.bookMarket = market;
  state.book = null;
  invalidate('book');
  refreshBook();
}

let bookInFlight = false;

async function refreshBook() {
  const market = state.bookMarket;
  if (!market || bookInFlight) return;
  bookInFlight = true;
  try {
    const result = await getJSON(`/api/markets/${encodeURIComponent(market)}/book`);
    if (market !== state.bookMarket) return; // the selection moved on
    state.book = result.ok && result.data
      ? result.data
      : { market, state: 'unknown', yes_bids: [], no_bids: [], error: describeFailure(result) };
    invalidate('book');
  } finally {
    bookInFlight = false;
  }
}

function bookLevels(raw) {
  if (!Array.isArray(raw)) return [];
  return raw
    .filter((level) => Array.isArray(level) && level.length >= 2)
    .map(([price, count]) => ({ price: toBigInt(price), count: toBigInt(count) }))
    .filter((level) => level.price !== null && level.count !== null);
}

renderers.book = function renderBook() {
  const book = state.book;
  const badge = $('book-state');
  const rowsBox = $('book-rows');
  if (!book) {
    badge.textContent = state.bookMarket ? '…' : '—';
    setClass(badge, 'badge', 'book-unknown');
    setText('book-summary', state.bookMarket ? 'loading…' : 'choose a market');
    rowsBox.replaceChildren();
    return;
  }
  const bookState = String(book.state || 'unknown').toLowerCase();
  badge.textContent = bookState.toUpperCase();
  setClass(badge, 'badge', `book-${['valid', 'invalid', 'stale'].includes(bookState) ? bookState : 'unknown'}`);
  const bids = bookLevels(book.yes_bids);
  // a NO bid at p is a YES ask at $1 - p; NO bids come best (highest) first, so asks come lowest first
  const asks = bookLevels(book.no_bids).map((lvl) => ({ price: MICROS_PER_DOLLAR - lvl.price, count: lvl.count }));
  setText('book-summary', book.error ? book.error : bookSummary(bids, asks));
  rowsBox.replaceChildren(...ladderRows(bids, asks));
};

function bookSummary(bids, asks) {
  const bid = bids[0];
  const ask = asks[0];
  if (!bid && !ask) return 'empty book';
  const parts = [`bid ${bid ? formatMicros(bid.price) : '—'}`, `ask ${ask ? formatMicros(ask.price) : '—'}`];
  if (bid && ask) parts.push(`spread ${formatMicros(ask.price - bid.price)}`);
  return parts.join('  ');
}

function ladderRows(bids, asks) {
  const depth = Math.max(bids.length, asks.length);
  let maxCount = 1n;
  for (const lvl of [...bids, ...asks]) if (lvl.count > maxCount) maxCount = lvl.count;
  const rows = [];
  for (let i = 0; i < depth; i += 1) {
    const bid = bids[i];
    const ask = asks[i];
    rows.push(
      el('div', { className: 'book-row' }, [
        sizeBar(bid, maxCount, 'bid'),
        el('span', { className: 'bid-price', text: bid ? formatMicros(bid.price) : '' }),
        el('span', { className: 'ask-price', text: ask ? formatMicros(ask.price) : '' }),
        sizeBar(ask, maxCount, 'ask'),
      ]),
    );
  }
  return rows;
}

function sizeBar(level, maxCount, side) {
  const cell = el('div', { className: `bar-cell ${side}` });
  if (!level) return cell;
  const percent = Number((level.count * 1000n) / maxCount) / 10; // display width only
  const bar = el('div', { className: `bar bar-${side}` });
  bar.style.width = `${Math.max(1, percent)}%`;
  cell.append(bar, el('span', { className: 'bar-label', text: formatCenti(level.count) }));
  return cell;
}

let bookPanelVisible = true;

function watchBookVisibility() {
  if (typeof IntersectionObserver !== 'function') return;
  new IntersectionObserver((entries) => {
    bookPanelVisible = entries.some((entry) => entry.isIntersecting);
  }).observe($('panel-book'));
}

function bookIsShown() {
  return bookPanelVisible && document.visibilityState !== 'hidden';
}

// ---------------------------------------------------------------------------
// the live log: a ring buffer of LOG_CAP lines, rendered as a virtual list

const logStore = {
  lines: new Array(LOG_CAP),
  first: 0, // sequence number of the oldest kept line
  next: 0, // sequence number the next line gets
  get size() {
    return this.next - this.first;
  },
  at(seq) {
    return this.lines[seq % LOG_CAP];
  },
  /** Add a line; returns the sequence number dropped to make room, or -1. */
  push(line) {
    this.lines[this.next % LOG_CAP] = line;
    this.next += 1;
    if (this.next - this.first > LOG_CAP) {
      this.first += 1;
      return this.first - 1;
    }
    return -1;
  },
};

const logView = {
  text: '', // lower-cased filter text
  levels: new Set(['INFO', 'WARN', 'EXEC', 'CRIT']),
  matches: null, // sequence numbers of matching lines when a filter is on, else null
  head: 0, // index of the first live entry in `matches`
  follow: true, // stick to the bottom
  ownScrollTop: -1, // the scrollTop this code set last: its scroll event is not the user's
  shiftRows: 0, // rows dropped above the viewport since the last render
  rows: [], // pooled row elements
};

function logFilterActive() {
  return logView.text !== '' || logView.levels.size < 4;
}

function logLineMatches(line) {
  if (!logView.levels.has(line.level)) return false;
  return logView.text === '' || line.lower.includes(logView.text);
}

const LOG_LEVEL_ALIASES = { INFO: 'INFO', WARN: 'WARN', WARNING: 'WARN', EXEC: 'EXEC', CRIT: 'CRIT', CRITICAL: 'CRIT', ERROR: 'CRIT' };

function normalizeLogLine(raw) {
  const level = String((raw && raw.level) || 'INFO').toUpperCase();
  const text = raw && raw.text !== undefined ? String(raw.text) : '';
  const known = LOG_LEVEL_ALIASES[level] || 'INFO';
  return { ts: formatClock(raw && raw.ts, true), level: known, text, lower: text.toLowerCase() };
}

function onLog(data) {
  const items = Array.isArray(data) ? data : [data];
  for (const raw of items) appendLogLine(normalizeLogLine(raw));
  invalidate('log');
}

function appendLogLine(line) {
  const seq = logStore.next;
  const dropped = logStore.push(line);
  if (logView.matches) {
    if (logLineMatches(line)) logView.matches.push(seq);
    if (dropped >= 0 && logView.matches[logView.head] === dropped) {
      logView.head += 1;
      logView.shiftRows += 1;
    }
    compactLogMatches();
  } else if (dropped >= 0) {
    logView.shiftRows += 1;
  }
}

function compactLogMatches() {
  if (logView.head > 50_000 && logView.head > logView.matches.length / 2) {
    logView.matches = logView.matches.slice(logView.head);
    logView.head = 0;
  }
}

function rebuildLogMatches() {
  if (!logFilterActive()) {
    logView.matches = null;
    logView.head = 0;
  } else {
    const matches = [];
    for (let seq = logStore.first; seq < logStore.next; seq += 1) {
      if (logLineMatches(logStore.at(seq))) matches.push(seq);
    }
    logView.matches = matches;
    logView.head = 0;
  }
  logView.shiftRows = 0;
  logView.follow = true;
  invalidate('log');
}

function logRowCount() {
  return logView.matches ? logView.matches.length - logView.head : logStore.size;
}

function logLineAtRow(row) {
  const seq = logView.matches ? logView.matches[logView.head + row] : logStore.first + row;
  return logStore.at(seq);
}

function logRowElement(index) {
  let row = logView.rows[index];
  if (!row) {
    const parts = ['ts', 'lv', 'tx'].map((className) => el('span', { className }));
    row = el('div', { className: 'log-row' }, parts);
    logView.rows[index] = row;
  }
  return row;
}

renderers.log = function renderLog() {
  const box = $('log');
  const spacer = $('log-spacer');
  const count = logRowCount();
  spacer.style.height = `${count * LOG_ROW_HEIGHT}px`;
  if (logView.follow) {
    box.scrollTop = box.scrollHeight;
    logView.ownScrollTop = box.scrollTop;
  } else if (logView.shiftRows > 0) {
    box.scrollTop = Math.max(0, box.scrollTop - logView.shiftRows * LOG_ROW_HEIGHT); // keep the same lines in view
    logView.ownScrollTop = box.scrollTop;
  }
  logView.shiftRows = 0;
  const firstRow = Math.max(0, Math.floor(box.scrollTop / LOG_ROW_HEIGHT) - LOG_OVERSCAN);
  const visible = Math.ceil(box.clientHeight / LOG_ROW_HEIGHT) + 2 * LOG_OVERSCAN;
  const lastRow = Math.min(count, firstRow + visible);
  const used = [];
  for (let row = firstRow; row < lastRow; row += 1) {
    const line = logLineAtRow(row);
    if (!line) continue;
    const node = logRowElement(used.length);
    node.className = `log-row log-${line.level}`;
    node.style.top = `${row * LOG_ROW_HEIGHT}px`;
    node.children[0].textContent = line.ts;
    node.children[1].textContent = line.level;
    node.children[2].textContent = line.text;
    used.push(node);
  }
  syncLogRows(spacer, used);
  setText('log-count', logFilterActive() ? `${count} of ${logStore.size} lines` : `${logStore.size} lines`);
  $('log-bottom').hidden = logView.follow;
};

/** Make the spacer hold exactly the rows in use (reusing the pooled nodes). */
function syncLogRows(spacer, used) {
  const inUse = new Set(used);
  for (const child of [...spacer.children]) if (!inUse.has(child)) child.remove();
  for (const node of used) if (node.parentNode !== spacer) spacer.appendChild(node);
}

/** The user scrolled: follow new lines only while they are at the bottom. */
function onLogScroll() {
  const box = $('log');
  if (Math.abs(box.scrollTop - logView.ownScrollTop) >= 1) {
    logView.follow = box.scrollTop + box.clientHeight >= box.scrollHeight - LOG_ROW_HEIGHT;
    logView.ownScrollTop = -1;
  }
  invalidate('log');
}

function wireLog() {
  const box = $('log');
  box.addEventListener('scroll', onLogScroll, { passive: true });
  let debounce = 0;
  $('log-filter').addEventListener('input', (e) => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      logView.text = e.target.value.trim().toLowerCase();
      rebuildLogMatches();
    }, 120);
  });
  for (const checkbox of document.querySelectorAll('.log-level')) {
    checkbox.addEventListener('change', () => {
      logView.levels = new Set([...document.querySelectorAll('.log-level')].filter((c) => c.checked).map((c) => c.value));
      rebuildLogMatches();
    });
  }
  $('log-bottom').addEventListener('click', () => {
    logView.follow = true;
    invalidate('log');
  });
  new ResizeObserver(() => invalidate('log')).observe(box);
}

// ---------------------------------------------------------------------------
// controls: kill, halt, reduce, resume (bearer token in sessionStorage only)

function readToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

function saveToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage unavailable (private mode): the token is simply not kept
  }
  renderTokenState();
}

function renderTokenState() {
  setText('token-state', readToken() ? 'token set for this tab (sessionStorage)' : 'no token in this tab');
}

/** The token to use: one typed but not yet saved is saved first. */
function currentToken() {
  const input = $('token-input');
  if (input.value) {
    saveToken(input.value);
    input.value = '';
  }
  return readToken();
}

function showControlMessage(text, kind) {
  const node = $('control-message');
  node.textContent = text;
  setClass(node, 'control-message', kind);
}

async function sendControl(command, { market = '', reason = '' } = {}) {
  const body = { reason: reason || `dashboard ${command}` };
  if (market && command !== 'kill') body.market = market;
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
  const token = currentToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  showControlMessage(`${command}: sending…`, '');
  let response;
  try {
    response = await fetch(`/api/control/${command}`, { method: 'POST', headers, body: JSON.stringify(body), cache: 'no-store' });
  } catch {
    showControlMessage(`${command}: network error`, 'error');
    toast('error', command, 'network error');
    return;
  }
  const data = await readJsonBody(response);
  reportControlOutcome(command, market, response.status, data);
}

function reportControlOutcome(command, market, status, data) {
  const detail = data && typeof data.detail === 'string' ? data.detail : '';
  if (status === 202 || (status >= 200 && status < 300)) {
    const id = data && data.command_id ? ` (command ${data.command_id})` : '';
    const text = `${command}${market ? ` ${market}` : ''} accepted${id}`;
    showControlMessage(text, 'ok');
    toast(command === 'resume' ? 'ok' : 'warn', 'control', text);
  } else if (status === 401) {
    showControlMessage('token refused', 'error');
    toast('error', command, 'token refused');
  } else if (status === 403) {
    const text = detail || 'forbidden';
    showControlMessage(text, 'error');
    toast('error', command, text);
  } else {
    const text = `${command}: HTTP ${status}${detail ? `: ${detail}` : ''}`;
    showControlMessage(text, 'error');
    toast('error', command, text);
  }
}

const CONTROL_IDS = [
  'token-input', 'token-save', 'token-clear', 'control-reason', 'control-market',
  'halt-button', 'reduce-button', 'resume-button', 'kill-button', 'kill-confirm',
];

renderers.controls = function renderControls() {
  const enabled = state.controlsEnabled;
  $('controls-off').hidden = enabled;
  for (const id of CONTROL_IDS) $(id).disabled = !enabled;
  if (!enabled) {
    $('kill-button').title = CONTROLS_OFF_TEXT;
    const dialog = $('kill-dialog');
    if (dialog.open) dialog.close();
  } else {
    $('kill-button').title = 'stop all trading and cancel every resting order';
  }
};

function openKillDialog() {
  const dialog = $('kill-dialog');
  $('kill-typed').value = '';
  $('kill-reason').value = $('control-reason').value;
  if (typeof dialog.showModal === 'function') dialog.showModal();
  else dialog.setAttribute('open', '');
  $('kill-reason').focus();
}

function closeKillDialog() {
  const dialog = $('kill-dialog');
  if (typeof dialog.close === 'function' && dialog.open) dialog.close();
  else dialog.removeAttribute('open');
}

function confirmKill() {
  const reason = $('kill-reason').value.trim();
  closeKillDialog();
  sendControl('kill', { reason });
}

function wireControls() {
  $('token-save').addEventListener('click', () => {
    const input = $('token-input');
    saveToken(input.value);
    input.value = '';
    showControlMessage(readToken() ? 'token saved for this tab' : 'token cleared', '');
  });
  $('token-input').addEventListener('keydown', (e) => {
    if (e.key !== 'Enter') return;
    e.preventDefault();
    $('token-save').click();
  });
  $('token-clear').addEventListener('click', () => {
    $('token-input').value = '';
    saveToken('');
    showControlMessage('token forgotten', '');
  });
  for (const command of ['halt', 'reduce', 'resume']) {
    $(`${command}-button`).addEventListener('click', () => {
      sendControl(command, { market: $('control-market').value.trim(), reason: $('control-reason').value.trim() });
    });
  }
  $('kill-button').addEventListener('click', openKillDialog);
  $('kill-cancel').addEventListener('click', closeKillDialog);
  $('kill-confirm').addEventListener('click', confirmKill);
  $('kill-typed').addEventListener('keydown', (e) => {
    if (e.key !== 'Enter') return;
    e.preventDefault(); // else the Enter lands on the kill button, focused again on close, and reopens the dialog
    if (e.target.value.trim() === 'KILL') confirmKill();
  });
  renderTokenState();
}

// ---------------------------------------------------------------------------
// loading and polling

const poll = {
  async status() {
    const result = await getJSON('/api/status');
    noteEndpoint('status', result);
    if (result.ok) applyStatus(result.data);
  },
  async portfolio() {
    const result = await getJSON('/api/portfolio');
    noteEndpoint('portfolio', result);
    state.portfolioMissing = result.status === 404;
    if (result.ok) applyPortfolio(result.data);
    else invalidate('status');
  },
  async positions() {
    const result = await getJSON('/api/positions');
    noteEndpoint('positions', result);
    applyPositions(result);
  },
  async orders() {
    const result = await getJSON('/api/orders');
    noteEndpoint('orders', result);
    applyOrders(result);
  },
  async fills() {
    const result = await getJSON('/api/fills?limit=100');
    noteEndpoint('fills', result);
    applyInitialFills(result);
  },
  async signals() {
    const result = await getJSON('/api/signals?limit=50');
    noteEndpoint('signals', result);
    applyInitialSignals(result);
  },
  async equity() {
    const result = await getJSON('/api/equity?limit=2000');
    noteEndpoint('equity', result);
    applyEquity(result);
  },
  async markets() {
    const result = await getJSON('/api/markets');
    noteEndpoint('markets', result);
    applyMarkets(result);
  },
  async backtests() {
    const result = await getJSON('/api/backtests');
    noteEndpoint('backtests', result);
    applyBacktests(result);
  },
};

/** Run a poll unless the same one is still in flight. */
const pollsInFlight = new Set();
async function runPoll(name) {
  if (pollsInFlight.has(name)) return;
  pollsInFlight.add(name);
  try {
    await poll[name]();
  } catch (err) {
    reportUiError(`poll ${name}`, err);
  } finally {
    pollsInFlight.delete(name);
  }
}

function every(ms, fn) {
  setInterval(fn, ms);
}

function startPolling() {
  every(2000, () => {
    runPoll('positions');
    runPoll('orders');
    if (!state.wsOpen) {
      // pushed over /ws while it is up
      runPoll('status');
      runPoll('portfolio');
    }
  });
  every(5000, () => runPoll('equity'));
  every(60_000, () => runPoll('markets'));
  every(30_000, () => runPoll('backtests')); // new runs appear as they are written
  every(1000, () => {
    if (bookIsShown()) refreshBook();
    renderUptime();
  });
}

async function initialLoad() {
  await Promise.all(['status', 'portfolio', 'positions', 'orders', 'fills', 'signals', 'equity', 'backtests'].map(runPoll));
  invalidate('fills');
  invalidate('signals');
  await runPoll('markets'); // after positions, so a held market is the default book
}

// ---------------------------------------------------------------------------
// WebSocket with reconnect and backoff

const wsHandlers = {
  portfolio: applyPortfolio,
  fill: onFill,
  signal: onSignal,
  order: applyOrderEvent,
  health: applyStatus,
  status: applyStatus,
  log: onLog,
  snapshot: applySnapshot,
};

let wsAttempts = 0;

function wsUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

function connectSocket() {
  let socket;
  setLinkState('connecting');
  try {
    socket = new WebSocket(wsUrl());
  } catch (err) {
    scheduleReconnect();
    return;
  }
  socket.addEventListener('open', () => {
    wsAttempts = 0;
    state.wsOpen = true;
    setLinkState('open');
  });
  socket.addEventListener('message', (event) => handleSocketMessage(event.data));
  socket.addEventListener('close', () => {
    state.wsOpen = false;
    setLinkState('closed');
    scheduleReconnect();
  });
  socket.addEventListener('error', () => {
    // 'close' follows and reconnects
  });
}

function handleSocketMessage(raw) {
  let message;
  try {
    message = JSON.parse(raw);
  } catch {
    return;
  }
  if (!message || typeof message.type !== 'string') return;
  const handler = wsHandlers[message.type];
  if (!handler) return;
  try {
    handler(message.data);
  } catch (err) {
    reportUiError(`ws ${message.type}`, err);
  }
}

function scheduleReconnect() {
  const delay = Math.min(10_000, 500 * 2 ** Math.min(wsAttempts, 5)) * (0.8 + Math.random() * 0.4);
  wsAttempts += 1;
  const banner = $('ws-banner');
  banner.textContent = `disconnected from the gateway — reconnecting in ${(delay / 1000).toFixed(1)} s`;
  setTimeout(connectSocket, delay);
}

function setLinkState(link) {
  const badge = $('ws-state');
  badge.textContent = link === 'open' ? 'live' : link === 'connecting' ? 'connecting' : 'disconnected';
  setClass(badge, 'badge', `link-${link}`);
  // the banner shows once a connection was lost or refused, until one opens
  if (link === 'open') $('ws-banner').hidden = true;
  if (link === 'closed') $('ws-banner').hidden = false;
}

// ---------------------------------------------------------------------------
// start

function start() {
  wireControls();
  wireLog();
  watchChartSize();
  watchBookVisibility();
  $('book-market').addEventListener('change', (e) => chooseBookMarket(e.target.value));
  invalidate('status');
  invalidate('metrics');
  invalidate('controls');
  invalidate('equity');
  invalidate('log');
  invalidate('fills');
  invalidate('book');
  initialLoad();
  connectSocket();
  startPolling();
}

window.addEventListener('unhandledrejection', (event) => {
  reportUiError('unhandled', event.reason);
  event.preventDefault();
});

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
