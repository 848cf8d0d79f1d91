// The operator view, on the SDK's `Admin` client (clients/js/src/admin.ts,
// served under /assets/sdk/): the live socket (pushed once a second) and
// the HTTP API; everything rendered as text (never as HTML), its own
// charts (SVG polylines). The key is asked for once and kept in this tab's
// session storage; the client sends it as a bearer token (over HTTP) and
// as a WebSocket subprotocol (browsers cannot set headers there).

import { Admin, RoomcastError } from '/assets/sdk/index.js';

const KEY = 'roomcast.admin.key';
const KEEP = 300; // points per chart: five minutes at one a second
const $ = (id) => document.getElementById(id);

// What the page measured, for tests and the curious.
// firstRenderMs: how long the first render took; firstUpdateMs: from the
// live socket's opening to its first update rendered.
const stats = { updates: 0, renders: 0, lastRenderMs: 0, maxRenderMs: 0, firstRenderMs: null, firstUpdateMs: null, lastUpdateBytes: 0, maxUpdateBytes: 0, openedAt: 0 };
window.roomcastAdmin = stats;

let admin = null; // the SDK's client, with the key
let live = null; // its live socket
const series = new Map(); // node -> {t: [], conns: [], ...}
const FIGURES = [
  ['conns', 'connections', (v) => fmt(v)],
  ['msgs_in', 'messages in/s', (v) => fmt(v)],
  ['msgs_out', 'messages out/s', (v) => fmt(v)],
  ['deliveries', 'deliveries/s', (v) => fmt(v)],
  ['slow', 'slow consumers', (v) => fmt(v)],
  ['rss', 'RSS', (v) => bytes(v)],
];
let room = null; // the room whose page is open: {name, from}
const PAGE = 50;

function key() { return sessionStorage.getItem(KEY); }

function fmt(n) {
  if (n === null || n === undefined) return '–';
  if (n >= 1e6) return (n / 1e6).toFixed(2) + 'M';
  if (n >= 1e4) return (n / 1e3).toFixed(1) + 'k';
  return String(Math.round(n * 10) / 10);
}

function bytes(n) {
  if (!n) return '–';
  if (n >= 1 << 30) return (n / (1 << 30)).toFixed(2) + ' GiB';
  return (n / (1 << 20)).toFixed(1) + ' MiB';
}

function when(ms) { return new Date(ms).toLocaleString(); }

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells, cls) {
  const tr = el('tr', null, cls);
  for (const c of cells) {
    if (c instanceof Node) { const td = el('td'); td.append(c); tr.append(td); } else tr.append(el('td', c));
  }
  return tr;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function status(text, bad) {
  const s = $('status');
  s.textContent = text;
  s.className = bad ? 'error' : '';
}

// --- the key ------------------------------------------------------------

function askKey(why) {
  $('main').hidden = true;
  $('login').hidden = false;
  $('logout').hidden = true;
  $('login-error').textContent = why || '';
  $('key').focus();
}

function forget(why) {
  sessionStorage.removeItem(KEY);
  if (live) { live.close(); live = null; }
  setState('not connected', '');
  askKey(why);
}

const REFUSED = 'That key was refused (401).';

// An API call through the client; a refused key asks for another.
async function api(call) {
  try {
    return await call(admin);
  } catch (e) {
    if (e instanceof RoomcastError && e.code === 'unauthorized') forget(REFUSED);
    throw e;
  }
}

// --- the live socket ----------------------------------------------------

function setState(text, cls) {
  const s = $('state');
  s.textContent = text;
  s.className = 'state ' + cls;
}

const STATES = { connecting: ['connecting…', ''], live: ['live', 'live'], reconnecting: ['reconnecting…', 'lost'], closed: ['not connected', ''] };

function connect() {
  stats.openedAt = performance.now();
  live = admin.live();
  live.on('state', (s) => setState(...STATES[s]));
  live.on('history', history);
  live.on('update', (u) => {
    stats.updates += 1;
    stats.lastUpdateBytes = u.bytes;
    stats.maxUpdateBytes = Math.max(stats.maxUpdateBytes, u.bytes);
    timed(u);
    if (stats.firstUpdateMs === null) stats.firstUpdateMs = performance.now() - stats.openedAt;
  });
  live.on('unauthorized', () => forget(REFUSED));
}

function history(msg) {
  series.clear();
  for (const [node, cols] of Object.entries(msg.nodes)) series.set(Number(node), cols);
}

function push(node) {
  let s = series.get(node.node);
  if (!s) { s = { t: [] }; for (const [f] of FIGURES) s[f] = []; series.set(node.node, s); }
  if (s.t.length && s.t[s.t.length - 1] === node.seen) return; // no new sample from it
  s.t.push(node.seen);
  for (const [f] of FIGURES) s[f].push(node[f]);
  if (s.t.length > KEEP) for (const k of Object.keys(s)) s[k].splice(0, s[k].length - KEEP);
}

// --- rendering ----------------------------------------------------------

function timed(u) {
  const t0 = performance.now();
  render(u);
  const ms = performance.now() - t0;
  stats.renders += 1;
  stats.lastRenderMs = ms;
  stats.maxRenderMs = Math.max(stats.maxRenderMs, ms);
  if (stats.firstRenderMs === null) stats.firstRenderMs = ms;
}

function render(u) {
  $('served').textContent = 'served by node ' + u.served_by;
  $('node-count').textContent = u.nodes.length + (u.nodes.length === 1 ? ' node' : ' nodes');
  const rows = [];
  for (const n of u.nodes) {
    push(n);
    const r = row([
      n.node,
      n.up ? 'up' : 'not heard from',
      when(n.up_since),
      fmt(n.conns),
      fmt(n.wires.raw) + ' / ' + fmt(n.wires.v1) + ' / ' + fmt(n.wires.socketio),
      fmt(n.transports.websocket) + ' / ' + fmt(n.transports.socketio),
      fmt(n.rooms),
      fmt(n.msgs_in),
      fmt(n.msgs_out),
      fmt(n.deliveries),
      fmt(n.slow),
      n.broker_up ? 'up' : 'DOWN',
      bytes(n.rss),
    ], n.up ? '' : 'down');
    r.dataset.node = n.node;
    r.dataset.conns = n.conns;
    rows.push(r);
  }
  fill($('nodes').tBodies[0], rows);
  charts(u.nodes);
  fill($('top-members').tBodies[0], u.top_members.map(roomRow));
  fill($('top-rate').tBodies[0], u.top_rate.map(roomRow));
}

function roomLink(name) {
  const a = el('a', name, 'room');
  a.href = '#';
  a.addEventListener('click', (e) => { e.preventDefault(); openRoom(name, 0); });
  return a;
}

function roomRow(f) {
  const r = row([roomLink(f.room), fmt(f.members), fmt(f.rate)]);
  r.dataset.room = f.room;
  r.dataset.members = f.members;
  return r;
}

const SVG = 'http://www.w3.org/2000/svg';

function charts(nodes) {
  const box = $('charts');
  const figures = [];
  for (const n of nodes) {
    const s = series.get(n.node);
    if (!s) continue;
    for (const [f, label, show] of FIGURES) figures.push(chart(n.node, label, s.t, s[f], show));
  }
  box.replaceChildren(...figures);
}

function chart(node, label, ts, values, show) {
  const fig = el('figure', null, 'chart');
  const cap = el('figcaption');
  cap.append(el('span', 'node ' + node + ' · ' + label), el('span', show(values[values.length - 1])));
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 300 40');
  svg.setAttribute('preserveAspectRatio', 'none');
  const max = Math.max(1, ...values);
  const line = document.createElementNS(SVG, 'polyline');
  const end = ts.length ? ts[ts.length - 1] : 0;
  const pts = [];
  for (let i = 0; i < values.length; i += 1) {
    const x = 300 - (end - ts[i]) / 1000; // one unit a second, newest at the right
    if (x < 0) continue;
    pts.push(x.toFixed(1) + ',' + (39 - (values[i] / max) * 37).toFixed(1));
  }
  line.setAttribute('points', pts.join(' '));
  svg.append(line);
  fig.append(cap, svg);
  return fig;
}

// --- rooms ----------------------------------------------------------------

async function search(prefix) {
  try {
    const r = await api((a) => a.rooms(prefix, PAGE));
    fill($('search').tBodies[0], r.rooms.map((f) => {
      const tr = row([roomLink(f.room), fmt(f.members)]);
      tr.dataset.room = f.room;
      return tr;
    }));
    $('search-more').textContent = r.more ? 'more rooms match: narrow the prefix' : r.rooms.length + ' found';
  } catch (e) { status('search: ' + e.message, true); }
}

async function openRoom(name, from) {
  room = { name, from };
  let r;
  try {
    r = await api((a) => a.room(name, from, PAGE));
  } catch (e) { status('room ' + name + ': ' + e.message, true); return; }
  $('room').hidden = false;
  $('room-name').textContent = name;
  const h = r.history;
  const m = r.members;
  $('room-figures').textContent = [
    m.total + ' members on ' + m.by_node.length + (m.by_node.length === 1 ? ' node' : ' nodes') + (m.partial ? ' (other nodes could not be asked)' : ''),
    r.presence.total + ' in presence (' + r.presence.conns + ' connections)',
    h ? 'history: ' + h.kept + (h.capped ? '+' : '') + ' messages kept, latest offset ' + (h.latest_offset ?? '–') : 'no history',
    'rate: ' + (r.rate === null ? 'not among the top rooms' : fmt(r.rate) + ' msgs/s'),
  ].join(' · ');
  const rows = [];
  for (const n of m.by_node) {
    for (const x of n.members) {
      const b = el('button', 'disconnect');
      b.type = 'button';
      b.addEventListener('click', () => disconnect({ conn: x.conn }, 'connection ' + x.conn));
      const tr = row([n.node, x.conn, x.wire, x.nick, x.user ?? '–', b]);
      tr.dataset.conn = x.conn;
      tr.dataset.node = n.node;
      rows.push(tr);
    }
  }
  fill($('members').tBodies[0], rows);
  const most = Math.max(0, ...m.by_node.map((n) => n.total));
  $('members-page').textContent = m.total ? 'from member ' + (from + 1) + ' of each node, ' + PAGE + ' a node' : 'none';
  $('members-prev').disabled = from === 0;
  $('members-next').disabled = from + PAGE >= Math.max(most, r.presence.total);
  fill($('presence').tBodies[0], r.presence.members.map((m) => {
    const cells = [m.user ?? '(no user)', m.nick, m.conns];
    if (m.user) {
      const b = el('button', 'disconnect user');
      b.type = 'button';
      b.addEventListener('click', () => disconnect({ user: m.user }, 'user ' + m.user));
      cells.push(b);
    } else cells.push('');
    return row(cells);
  }));
  $('history').replaceChildren();
}

async function disconnect(target, what) {
  if (!confirm('Disconnect ' + what + '?')) return;
  try {
    const r = await api((a) => a.disconnect(target, 'disconnected by an operator'));
    status('disconnected ' + what + ': ' + r.disconnected + ' connection(s) closed');
    if (room) openRoom(room.name, room.from);
  } catch (e) { status('disconnect: ' + e.message, true); }
}

async function publish(text, asJson) {
  let data = text;
  if (asJson) {
    try { data = JSON.parse(text); } catch (e) { status('not JSON: ' + e.message, true); return; }
  }
  try {
    const r = await api((a) => a.publish(room.name, data));
    status('published into ' + r.room + ' at offset ' + r.offset);
  } catch (e) { status('publish: ' + e.message, true); }
}

async function loadHistory() {
  try {
    const r = await api((a) => a.history(room.name, 50));
    $('history').replaceChildren(...r.messages.map((m) => {
      const data = typeof m.data === 'string' ? m.data : JSON.stringify(m.data);
      const who = m.from && m.from.nick ? m.from.nick : 'server';
      return el('li', '#' + m.offset + ' ' + who + ': ' + data);
    }));
  } catch (e) { status('history: ' + e.message, true); }
}

// --- wiring ---------------------------------------------------------------

async function start() {
  admin = new Admin({ url: location.origin, key: key() });
  try {
    const u = await api((a) => a.overview());
    $('login').hidden = true;
    $('main').hidden = false;
    $('logout').hidden = false;
    timed(u);
    connect();
  } catch (e) {
    if (!(e instanceof RoomcastError && e.code === 'unauthorized')) askKey('cannot reach the server: ' + e.message);
  }
}

$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem(KEY, $('key').value);
  $('key').value = '';
  start();
});
$('logout').addEventListener('click', () => forget(''));
$('search-form').addEventListener('submit', (e) => { e.preventDefault(); search($('prefix').value); });
$('room-refresh').addEventListener('click', () => openRoom(room.name, room.from));
$('room-close').addEventListener('click', () => { $('room').hidden = true; room = null; });
$('members-prev').addEventListener('click', () => openRoom(room.name, Math.max(0, room.from - PAGE)));
$('members-next').addEventListener('click', () => openRoom(room.name, room.from + PAGE));
$('publish-form').addEventListener('submit', (e) => { e.preventDefault(); publish($('publish-data').value, $('publish-json').checked); });
$('history-load').addEventListener('click', loadHistory);

if (key()) start(); else askKey('');
