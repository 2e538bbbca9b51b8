// asgd dashboard: polls the API every 2 s and draws everything itself (no libraries, no network
// beyond asgd). A group picker (from /api/v1/groups; the URL keeps the choice as #group=NAME)
// points every panel at /api/v1/groups/NAME/...; a cluster panel appears when /api/v1/cluster
// reports more than one node. Charts keep the last 10 minutes: history from
// .../metrics/history at start (and when the group changes), then one sample per poll.
'use strict';

const POLL_MS = 2000;
const PAGE = 100;     // instance table rows per page: a group of 10,000 is read a page at a time
// the load chart draws a line per instance up to this many instances; above, the group's
// average alone (a hundred lines say nothing, and drawing them cost most of a refresh)
const LINES_MAX = 24;
const WINDOW_MS = 10 * 60 * 1000;
const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777',
                 '#65a30d', '#ea580c', '#4f46e5', '#0d9488', '#9333ea'];

const state = {
  name: null,         // the group shown (from #group=NAME, else the first of /api/v1/groups)
  groups: [],         // last GET /api/v1/groups
  group: null,        // last GET /api/v1/groups/NAME
  token: sessionStorage.getItem('asgd-token') || '',
  cap: [],            // [{t, desired, in_service}]
  avg: [],            // [[t, avg]]
  loads: new Map(),   // id -> [[t, load]]
  colors: new Map(),
  pages: [null],      // instance table: the `after` cursor of each page seen, [0] = from the start
  page: 0,            // index into pages of the page shown
  more: false,        // the last page read was full: there may be a next one
};

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

function colorOf(id) {
  if (!state.colors.has(id)) state.colors.set(id, PALETTE[state.colors.size % PALETTE.length]);
  return state.colors.get(id);
}

async function api(method, path, body) {
  const opts = { method, headers: { 'Accept': 'application/json' } };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  if (method !== 'GET' && state.token) opts.headers['Authorization'] = 'Bearer ' + state.token;
  const r = await fetch(path, opts);
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) {
    const msg = data && data.detail ? data.detail : ('HTTP ' + r.status);
    const err = new Error(msg);
    err.status = r.status;
    err.error = data && data.error;
    throw err;
  }
  return data;
}

// The API path of the shown group's resource sub ('' for the group itself).
function gp(sub) {
  return '/api/v1/groups/' + encodeURIComponent(state.name) + (sub || '');
}

function hashGroup() {
  const m = /(?:^#|&)group=([^&]*)/.exec(location.hash);
  return m ? decodeURIComponent(m[1]) : null;
}

function resetCharts() {
  state.cap = [];
  state.avg = [];
  state.loads = new Map();
  state.colors = new Map();
}

// Fills the picker; picks the group from the URL, else keeps the current one, else the first.
function renderPicker() {
  const sel = $('#group-pick');
  const names = state.groups.map((g) => g.name);
  const want = hashGroup();
  if (want && names.includes(want)) state.name = want;
  else if (!state.name || !names.includes(state.name)) state.name = names.length ? names[0] : null;
  const have = Array.from(sel.options).map((o) => o.value);
  if (have.join('\n') !== names.join('\n')) {
    sel.replaceChildren(...state.groups.map((g) => el('option', { value: g.name, text: g.name })));
  }
  if (state.name) sel.value = state.name;
  $('#picker').classList.toggle('hidden', names.length === 0);
}

async function switchGroup(name) {
  if (name === state.name) return;
  state.name = name;
  history.replaceState(null, '', '#group=' + encodeURIComponent(name));
  state.group = null;
  resetCharts();
  $('#instances tbody').replaceChildren();
  state.pages = [null];
  state.page = 0;
  $('#activities tbody').replaceChildren();
  $('#settings').querySelectorAll('.dirty').forEach((e) => e.classList.remove('dirty'));
  formMsg('', '');
  await loadHistory();
  await poll();
}

function renderCluster(c) {
  const nodes = c && Array.isArray(c.nodes) ? c.nodes : [];
  $('#cluster').classList.toggle('hidden', nodes.length < 2);
  if (nodes.length < 2) return;
  const tb = $('#cluster-nodes tbody');
  tb.replaceChildren();
  for (const n of nodes) {
    const l = n.lease && typeof n.lease === 'object' ? n.lease : null;
    const lease = el('td', {});
    if (l) {
      lease.append(tag(l.ok ? 'ok' : 'lost'));
      let txt = '';
      if (typeof l.last_renewal_ms_ago === 'number') txt += ' renewed ' + (l.last_renewal_ms_ago / 1000).toFixed(1) + ' s ago';
      if (l.detail) txt += ' · ' + l.detail;
      lease.append(txt);
    } else {
      lease.append('–');
    }
    const groups = el('td', { class: 'groups' });
    for (const g of n.groups || []) {
      const a = el('a', { href: '#group=' + encodeURIComponent(g), text: g });
      if (g === state.name) a.className = 'current';
      groups.append(a, ' ');
    }
    tb.append(el('tr', { 'data-node': n.name },
      el('td', { text: n.name + (n.self ? ' (this node)' : '') }), el('td', { text: n.api || '–' }),
      el('td', {}, tag(n.alive === false ? 'down' : 'alive')), lease, groups));
  }
  const st = c.store;
  $('#cluster-store').textContent = st ? (st.type || 'store') + (st.ok === false ? ': NOT OK ' + (st.detail || '') : ': ok') : '';
}

function fmtTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour12: false });
}

function fmtAgo(iso) {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  return s < 60 ? s + ' s ago' : Math.round(s / 60) + ' min ago';
}

// ---- gauge --------------------------------------------------------------------------------

function drawGauge(value) {
  const c = $('#gauge');
  const ctx = c.getContext('2d');
  const w = c.width, h = c.height, cx = w / 2, cy = h - 18, r = Math.min(w / 2 - 16, h - 30);
  ctx.clearRect(0, 0, w, h);
  ctx.lineWidth = 18;
  ctx.lineCap = 'butt';
  const g = state.group && state.group.policy;
  // zones: below down threshold, normal, above up threshold
  const lo = g ? (g.type === 'target' ? g.target * (1 - g.tolerance) : g.down_threshold) : 20;
  const hi = g ? (g.type === 'target' ? g.target * (1 + g.tolerance) : g.up_threshold) : 70;
  const arc = (from, to, color) => {
    ctx.strokeStyle = color;
    ctx.beginPath();
    ctx.arc(cx, cy, r, Math.PI + Math.PI * from / 100, Math.PI + Math.PI * to / 100);
    ctx.stroke();
  };
  arc(0, Math.max(0, Math.min(100, lo)), '#bfdbfe');
  arc(Math.max(0, Math.min(100, lo)), Math.max(0, Math.min(100, hi)), '#bbf7d0');
  arc(Math.max(0, Math.min(100, hi)), 100, '#fecaca');
  if (value !== null && value !== undefined) {
    const a = Math.PI + Math.PI * Math.max(0, Math.min(100, value)) / 100;
    ctx.strokeStyle = '#111827';
    ctx.lineWidth = 3;
    ctx.beginPath();
    ctx.moveTo(cx, cy);
    ctx.lineTo(cx + Math.cos(a) * (r + 6), cy + Math.sin(a) * (r + 6));
    ctx.stroke();
    ctx.fillStyle = '#111827';
    ctx.beginPath();
    ctx.arc(cx, cy, 5, 0, 2 * Math.PI);
    ctx.fill();
  }
  ctx.fillStyle = '#6b7385';
  ctx.font = '11px system-ui, sans-serif';
  ctx.textAlign = 'center';
  ctx.fillText('0', cx - r, cy + 14);
  ctx.fillText('100', cx + r, cy + 14);
  $('#gauge-text').textContent = value === null || value === undefined ? 'no data' : value.toFixed(1) + ' %';
}

// ---- line charts --------------------------------------------------------------------------

// series: [{color, points: [[t, v], ...], width, dash, step}]
function drawChart(canvas, series, opts) {
  const dpr = window.devicePixelRatio || 1;
  const cssW = canvas.clientWidth || 600, cssH = canvas.clientHeight || 220;
  if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);
  const L = 38, R = 10, T = 8, B = 22;
  const W = cssW - L - R, H = cssH - T - B;
  const now = Date.now(), t0 = now - WINDOW_MS;
  let yMax = opts.yMax;
  if (yMax === undefined) {
    yMax = 1;
    for (const s of series) for (const p of s.points) if (p[1] !== null && p[1] > yMax) yMax = p[1];
    yMax = Math.ceil(yMax + 1);
  }
  const x = (t) => L + (t - t0) / WINDOW_MS * W;
  const y = (v) => T + H - v / yMax * H;
  // grid
  ctx.strokeStyle = '#e2e5ea';
  ctx.fillStyle = '#6b7385';
  ctx.lineWidth = 1;
  ctx.font = '11px system-ui, sans-serif';
  ctx.textAlign = 'right';
  const steps = opts.integer ? Math.min(yMax, 5) : 4;
  for (let i = 0; i <= steps; i++) {
    const v = yMax * i / steps;
    ctx.beginPath();
    ctx.moveTo(L, y(v));
    ctx.lineTo(L + W, y(v));
    ctx.stroke();
    ctx.fillText(opts.integer ? Math.round(v) : v.toFixed(0), L - 6, y(v) + 4);
  }
  ctx.textAlign = 'center';
  for (let m = 0; m <= 10; m += 2) {
    const t = now - m * 60000;
    ctx.fillText(m === 0 ? 'now' : '-' + m + 'm', x(t), T + H + 15);
  }
  // lines
  ctx.save();
  ctx.beginPath();
  ctx.rect(L, T - 2, W, H + 4);
  ctx.clip();
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = s.width || 2;
    ctx.setLineDash(s.dash || []);
    ctx.beginPath();
    let pen = false, lastY = null;
    for (const [t, v] of s.points) {
      if (v === null || v === undefined || t < t0 - 60000) { pen = false; continue; }
      if (!pen) ctx.moveTo(x(t), y(v));
      else if (s.step) { ctx.lineTo(x(t), lastY); ctx.lineTo(x(t), y(v)); }
      else ctx.lineTo(x(t), y(v));
      pen = true;
      lastY = y(v);
    }
    if (s.step && pen) ctx.lineTo(x(now), lastY);
    ctx.stroke();
  }
  ctx.restore();
  ctx.setLineDash([]);
  if (!series.some((s) => s.points.length)) {
    ctx.fillStyle = '#6b7385';
    ctx.textAlign = 'center';
    ctx.fillText('waiting for data…', L + W / 2, T + H / 2);
  }
}

function drawCharts() {
  const loadSeries = [];
  const legend = $('#load-legend');
  legend.replaceChildren();
  let shown = 0;
  for (const [id, pts] of state.loads) {
    loadSeries.push({ color: colorOf(id), points: pts, width: state.loads.size > 24 ? 1 : 2 });
    if (++shown > 16) continue; // a big fleet: lines for all, names for the first 16
    const sw = el('span', { class: 'swatch' });
    sw.style.background = colorOf(id);
    legend.append(el('span', {}, sw, id));
  }
  if (shown > 16) legend.append(el('span', { text: '+' + (shown - 16) + ' more' }));
  loadSeries.push({ color: '#111827', width: 2.5, dash: [6, 4], points: state.avg });
  const avgKey = el('span', { class: 'swatch' });
  avgKey.style.background = '#111827';
  const n = state.group && state.group.instances;
  legend.append(el('span', {}, avgKey, n > LINES_MAX
    ? 'average of ' + n + ' instances (a line each up to ' + LINES_MAX + ')' : 'average'));
  drawChart($('#load-chart'), loadSeries, { yMax: 100 });
  drawChart($('#cap-chart'), [
    { color: '#7c3aed', width: 2.5, step: true, points: state.cap.map((p) => [p.t, p.desired]) },
    { color: '#16a34a', width: 2, step: true, dash: [5, 3], points: state.cap.map((p) => [p.t, p.in_service]) },
  ], { integer: true });
}

function trim() {
  const cut = Date.now() - WINDOW_MS - 60000;
  state.cap = state.cap.filter((p) => p.t >= cut);
  state.avg = state.avg.filter((p) => p[0] >= cut);
  for (const [id, pts] of state.loads) {
    const kept = pts.filter((p) => p[0] >= cut);
    if (kept.length) state.loads.set(id, kept); else state.loads.delete(id);
  }
}

async function loadHistory() {
  try {
    if (!state.name) return;
    const h = await api('GET', gp('/metrics/history?since=10m'));
    // the first poll came first: what it drew is newer, the history goes before it
    state.cap = h.group.map((r) => ({ t: r.t, desired: r.desired, in_service: r.in_service }))
      .concat(state.cap);
    state.avg = h.group.map((r) => [r.t, r.avg_load]).concat(state.avg);
    const inst = Object.entries(h.instances);
    if (inst.length <= LINES_MAX)
      for (const [id, pts] of inst) state.loads.set(id, pts.concat(state.loads.get(id) || []));
  } catch (e) { /* charts start empty */ }
}

// ---- settings form ------------------------------------------------------------------------

const fields = () => Array.from(document.querySelectorAll('#settings [data-kind]'));

function getPath(obj, path) {
  return path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

function fillForm(g, force) {
  for (const f of fields()) {
    if (!force && (f.classList.contains('dirty') || document.activeElement === f)) continue;
    const v = getPath(g, f.name);
    f.value = v === undefined || v === null ? '' : String(v);
    f.classList.remove('dirty', 'invalid');
  }
  showPolicyFields();
}

function showPolicyFields() {
  const type = $('[name="policy.type"]').value;
  document.querySelectorAll('.p-threshold').forEach((e) => e.classList.toggle('hidden', type !== 'threshold'));
  document.querySelectorAll('.p-target, .p-predictive, .p-step').forEach((e) =>
    e.classList.toggle('hidden', !['target', 'predictive', 'step'].some((t) => t === type && e.classList.contains('p-' + t))));
}

function formMsg(text, kind) {
  const m = $('#form-msg');
  m.textContent = text;
  m.className = kind || '';
}

// The PATCH body: only the fields the operator changed, typed as the API wants them.
function buildPatch() {
  const patch = {};
  for (const f of fields()) {
    if (!f.classList.contains('dirty')) continue;
    let v = f.value.trim();
    if (f.dataset.kind === 'int' || f.dataset.kind === 'num') {
      if (v === '' || !isFinite(Number(v))) throw Object.assign(new Error(f.name + ': enter a number'), { field: f });
      v = Number(v);
      if (f.dataset.kind === 'int' && !Number.isInteger(v)) throw Object.assign(new Error(f.name + ': enter a whole number'), { field: f });
    } else if (v === '') {
      throw Object.assign(new Error(f.name + ': must not be empty'), { field: f });
    }
    const parts = f.name.split('.');
    if (parts.length === 2) (patch[parts[0]] = patch[parts[0]] || {})[parts[1]] = v;
    else patch[f.name] = v;
  }
  return patch;
}

function markInvalidFrom(detail) {
  // API messages start with the key they are about: "min_size 5 > max_size 3", "policy.up_factor: ..."
  for (const f of fields()) {
    if (detail.startsWith(f.name + ' ') || detail.startsWith(f.name + ':') || detail.includes('"' + f.name + '"'))
      f.classList.add('invalid');
  }
}

async function submitSettings(ev) {
  ev.preventDefault();
  fields().forEach((f) => f.classList.remove('invalid'));
  let patch;
  try {
    patch = buildPatch();
  } catch (e) {
    if (e.field) e.field.classList.add('invalid');
    formMsg(e.message, 'error');
    return;
  }
  if (!Object.keys(patch).length) { formMsg('Nothing changed.', ''); return; }
  $('#apply').disabled = true;
  try {
    const g = await api('PATCH', gp(''), patch);
    state.group = g;
    fillForm(g, true);
    renderGroup(g);
    formMsg('Saved (revision ' + g.revision + ').', 'ok');
  } catch (e) {
    if (e.status === 401) formMsg('Not authorized: ' + e.message + ' Enter the API token above.', 'error');
    else { formMsg(e.message, 'error'); markInvalidFrom(e.message); }
  } finally {
    $('#apply').disabled = false;
  }
}

function esc(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
}

// What if: the form's changes simulated on the group's history next to the current settings,
// before anything is applied (POST .../simulate changes nothing).
async function whatIf() {
  fields().forEach((f) => f.classList.remove('invalid'));
  let patch;
  try {
    patch = buildPatch();
  } catch (e) {
    if (e.field) e.field.classList.add('invalid');
    formMsg(e.message, 'error');
    return;
  }
  delete patch.desired_capacity; // plays no part in a simulation
  $('#whatif').disabled = true;
  formMsg('Simulating…', '');
  try {
    const w = await api('POST', gp('/simulate'), Object.assign({ since: '24h' }, patch));
    const rows = [['current', w.current], ['proposed', w.proposed]];
    const best = (k) => Math.min(...rows.map(([, x]) => x.result[k]));
    const cell = (x, k, text) => '<td' + (x.result[k] === best(k) ? ' class="best"' : '') + '>' + text + '</td>';
    $('#whatif-table tbody').innerHTML = rows.map(([name, x]) => '<tr><th>' + name + '</th><td>' +
      esc(x.settings.policy.type) + ' ' + x.settings.min_size + '..' + x.settings.max_size + '</td>' +
      cell(x, 'cost_ratio', x.result.cost_ratio === null ? '–' : x.result.cost_ratio.toFixed(3)) +
      cell(x, 'violation_pct', x.result.violation_pct.toFixed(2) + ' %') +
      cell(x, 'unserved', x.result.unserved.toFixed(1)) +
      cell(x, 'actions', String(x.result.actions)) + cell(x, 'flaps', String(x.result.flaps)) + '</tr>').join('');
    $('#whatif-span').textContent = '(' + w.samples + ' samples over ' + Math.round((w.last_ms - w.first_ms) / 1000) +
      ' s' + (w.saturated ? ', ' + w.saturated + ' at 100 % load: demand there is a lower bound' : '') + ')';
    $('#whatif-chart').innerHTML = w.svg; // asgd's own SVG: text escaped, no script
    $('#whatif-result').classList.remove('hidden');
    formMsg('Simulated: nothing applied. "Apply changes" applies them.', 'ok');
  } catch (e) {
    if (e.status === 401) formMsg('Not authorized: ' + e.message + ' Enter the API token above.', 'error');
    else { formMsg(e.message, 'error'); markInvalidFrom(e.message); }
  } finally {
    $('#whatif').disabled = false;
  }
}

// ---- rendering ----------------------------------------------------------------------------

function renderGroup(g) {
  $('#group-name').textContent = g.name;
  document.title = 'asgd · ' + g.name;
  $('#c-min').textContent = g.min_size;
  $('#c-desired').textContent = g.desired_capacity;
  $('#c-max').textContent = g.max_size;
  $('#c-in-service').textContent = g.in_service;
  $('#c-pending').textContent = g.pending;
  $('#c-unhealthy').textContent = g.unhealthy;
  $('#c-standby').textContent = g.standby ?? '–';
  $('#c-hook-wait').textContent = g.hook_waiting ?? '–';
  $('#last-decision').textContent = g.last_decision || '–';
  const p = g.policy;
  $('#policy-summary').textContent = p.type === 'target'
    ? `target tracking at ${p.target}% ± ${p.tolerance}, every ${p.evaluation_period}, scale-down window ${p.scale_down_window}`
    : p.type === 'predictive'
      ? `predictive: plans ${p.lead} ahead for ${p.target}% load, every ${p.evaluation_period}, scale-down window ${p.scale_down_window}`
      : p.type === 'step'
        ? `step: ${p.steps}, every ${p.evaluation_period}, cooldown ${p.cooldown}`
        : `threshold: above ${p.up_threshold}% ×${p.up_factor}, below ${p.down_threshold}% ×${p.down_factor}, every ${p.evaluation_period}, cooldown ${p.cooldown}`;
  $('#termination-policy').textContent = (g.termination_policy || ['default']).join(', ');
  // suspended processes (issue 12): a duty that does not run must not go unnoticed
  const susp = g.suspended_processes || [];
  $('#suspended').textContent = susp.length ? susp.join(', ') : 'none';
  $('#suspended').className = susp.length ? 'pill bad' : '';
  drawGauge(g.average_load);
  const owner = $('#owner');
  if (g.live === false) {
    owner.textContent = 'owner ' + (g.owner_node || 'unknown') + ' not reachable: counts from the store, no health or load';
    owner.className = 'pill bad';
  } else {
    owner.textContent = g.owner_node ? 'run by ' + g.owner_node : '';
    owner.className = g.owner_node ? 'pill' : 'hidden';
  }
}

function tag(text) {
  // "pending:wait" -> class "pending-wait" (a ':' cannot be in a class selector)
  return el('span', { class: 'tag ' + String(text).replace(/:/g, '-'), text });
}

// Lifecycle actions of one instance (issue 12): what its state allows, beside terminate.
function lifeButtons(i) {
  const b = (action, text) => el('button', { class: 'life', type: 'button', text, 'data-id': i.id, 'data-action': action });
  const out = [];
  if (i.lifecycle === 'pending:wait' || i.lifecycle === 'terminating:wait') out.push(b('continue', 'complete hook'));
  if (i.lifecycle === 'in-service') out.push(b('standby', 'standby'));
  if (i.lifecycle === 'standby') out.push(b('exit-standby', 'back to service'));
  out.push(b(i.protected ? 'unprotect' : 'protect', i.protected ? 'unprotect' : 'protect'));
  return out;
}

// The API path of the shown page of the instance table (paged by id: ?limit&after).
function instancesPath() {
  const after = state.pages[state.page];
  return gp('/instances?limit=' + PAGE + (after ? '&after=' + encodeURIComponent(after) : ''));
}

function renderPager(list, total) {
  state.more = list.length === PAGE;
  if (state.more) state.pages[state.page + 1] = list[list.length - 1].id;
  const first = state.page * PAGE;
  $('#inst-count').textContent = list.length
    ? '(' + (first + 1) + '–' + (first + list.length) + ' of ' + total + ')'
    : '(' + total + ')';
  $('#inst-pager').classList.toggle('hidden', total <= PAGE && state.page === 0);
  $('#inst-prev').disabled = state.page === 0;
  $('#inst-next').disabled = !state.more;
}

function turnPage(delta) {
  const want = state.page + delta;
  if (want < 0 || (delta > 0 && !state.more)) return;
  state.page = want;
  poll();
}

function renderInstances(list, total) {
  const tb = $('#instances tbody');
  tb.replaceChildren();
  for (const i of list) {
    const bar = el('span', { class: 'bar' }, el('i'));
    if (i.load !== null) bar.firstChild.style.width = Math.max(0, Math.min(100, i.load)) + '%';
    bar.firstChild.style.background = colorOf(i.id);
    const btn = el('button', { class: 'danger', type: 'button', text: 'terminate', 'data-id': i.id });
    btn.disabled = i.lifecycle === 'terminating' || i.lifecycle === 'terminating:wait';
    const lc = el('td', {}, tag(i.lifecycle));
    if (i.protected) lc.append(' ', tag('protected'));
    if (i.hook_deadline_at) lc.append(el('span', { class: 'muted', text: ' until ' + fmtTime(i.hook_deadline_at) }));
    tb.append(el('tr', { 'data-id': i.id },
      el('td', { text: i.id }), el('td', { text: i.address }), lc,
      el('td', {}, tag(i.health)),
      el('td', {}, bar, i.load === null ? '–' : i.load.toFixed(1)),
      el('td', { text: fmtTime(i.launched_at) }), el('td', { text: fmtAgo(i.last_seen_at) }),
      el('td', {}, ...lifeButtons(i), btn)));
  }
  renderPager(list, total);
  $('#inst-empty').classList.toggle('hidden', list.length > 0);
}

function renderActivities(list) {
  const tb = $('#activities tbody');
  tb.replaceChildren();
  for (const a of list) {
    const cause = a.detail ? a.cause + ' (' + a.detail + ')' : a.cause;
    tb.append(el('tr', {},
      el('td', { text: fmtTime(a.at) }), el('td', { text: a.kind }),
      el('td', { text: a.from + ' → ' + a.to }), el('td', {}, tag(a.status)),
      el('td', { class: 'cause', text: cause })));
  }
}

async function lifeAction(id, action) {
  const p = '/instances/' + encodeURIComponent(id);
  const calls = {
    continue: ['POST', p + '/lifecycle', { action: 'continue' }],
    standby: ['POST', p + '/standby', { decrement_desired: false }],
    'exit-standby': ['POST', p + '/exit-standby', {}],
    protect: ['PATCH', p, { protected: true }],
    unprotect: ['PATCH', p, { protected: false }],
  };
  const c = calls[action];
  try {
    await api(c[0], gp(c[1]), c[2]);
    formMsg(action + ' of ' + id + ' requested.', 'ok');
  } catch (e) {
    formMsg(e.message, 'error');
  }
}

async function terminate(id) {
  const dec = confirm('Terminate ' + id + '?\n\nOK: lower desired capacity by one.\nCancel: keep desired (the instance is replaced).');
  try {
    await api('POST', gp('/instances/' + encodeURIComponent(id) + '/terminate'), { decrement_desired: dec });
    formMsg('Terminate of ' + id + ' requested.', 'ok');
  } catch (e) {
    formMsg(e.message, 'error');
  }
}

async function poll() {
  try {
    const [groups, cluster] = await Promise.all([
      api('GET', '/api/v1/groups'), api('GET', '/api/v1/cluster').catch(() => null),
    ]);
    state.groups = Array.isArray(groups) ? groups : [];
    renderPicker();
    renderCluster(cluster);
    if (!state.name) {
      $('#group-name').textContent = '(no group yet)';
      const conn = $('#conn');
      conn.textContent = 'no group';
      conn.className = 'pill';
      return;
    }
    const name = state.name;
    const [g, inst, acts] = await Promise.all([
      api('GET', gp('')), api('GET', instancesPath()), api('GET', gp('/activities?limit=30')),
    ]);
    if (name !== state.name) return; // switched meanwhile: the next poll draws the new group
    if (inst.length === 0 && state.page > 0) { // the page emptied (scale-in): back to the first
      state.page = 0;
      state.pages = [null];
    }
    const now = Date.now();
    state.group = g;
    renderGroup(g);
    fillForm(g, false);
    renderInstances(inst, typeof g.instances === 'number' ? g.instances : inst.length);
    renderActivities(acts);
    state.cap.push({ t: now, desired: g.desired_capacity, in_service: g.in_service });
    state.avg.push([now, g.average_load]);
    const total = typeof g.instances === 'number' ? g.instances : inst.length;
    if (total > LINES_MAX) state.loads.clear();
    else {
      for (const i of inst) {
        if (i.load === null) continue;
        if (!state.loads.has(i.id)) state.loads.set(i.id, []);
        state.loads.get(i.id).push([now, i.load]);
      }
    }
    trim();
    drawCharts();
    const conn = $('#conn');
    conn.textContent = g.provider_ok === false ? 'provider error' : (g.live === false ? 'not live' : 'live');
    conn.className = 'pill ' + (g.provider_ok === false || g.live === false ? 'bad' : 'ok');
    $('#updated').textContent = 'updated ' + new Date(now).toLocaleTimeString([], { hour12: false });
  } catch (e) {
    const conn = $('#conn');
    conn.textContent = 'asgd unreachable';
    conn.className = 'pill bad';
  }
}

function init() {
  $('#token').value = state.token;
  $('#token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.token = $('#token').value.trim();
    sessionStorage.setItem('asgd-token', state.token);
    formMsg(state.token ? 'Token set for this tab.' : 'Token cleared.', '');
  });
  $('#settings').addEventListener('submit', submitSettings);
  $('#whatif').addEventListener('click', whatIf);
  $('#settings').addEventListener('input', (ev) => {
    if (ev.target.dataset.kind) ev.target.classList.add('dirty');
    if (ev.target.name === 'policy.type') showPolicyFields();
  });
  $('#settings').addEventListener('change', (ev) => {
    if (ev.target.dataset.kind) ev.target.classList.add('dirty');
    if (ev.target.name === 'policy.type') showPolicyFields();
  });
  $('#revert').addEventListener('click', () => { if (state.group) fillForm(state.group, true); formMsg('', ''); });
  $('#instances').addEventListener('click', (ev) => {
    const id = ev.target.dataset && ev.target.dataset.id;
    const action = ev.target.dataset && ev.target.dataset.action;
    if (id && ev.target.tagName === 'BUTTON') {
      if (action) lifeAction(id, action);
      else terminate(id);
    }
  });
  $('#inst-prev').addEventListener('click', () => turnPage(-1));
  $('#inst-next').addEventListener('click', () => turnPage(1));
  window.addEventListener('resize', drawCharts);
  $('#group-pick').addEventListener('change', (ev) => switchGroup(ev.target.value));
  window.addEventListener('hashchange', () => {
    const want = hashGroup();
    if (want && want !== state.name) switchGroup(want);
  });
  drawGauge(null);
  // the first poll picks the group and draws the page; the charts' history (per group) follows
  poll().then(loadHistory).then(drawCharts);
  setInterval(poll, POLL_MS);
}

init();
