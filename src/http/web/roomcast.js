// roomcast web client: one WebSocket speaking roomcast.v1 (docs/protocol.md).
//
// Everything the server sends is untrusted: it is put on the page with
// textContent and never parsed as HTML. The page's Content-Security-Policy
// (script-src 'self') is the second line of defence.

const $ = (id) => document.getElementById(id);

const MAX_LINES = 1000; // older lines are dropped from the page
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;
const HISTORY_ON_JOIN = 50;

const state = {
  ws: null,
  wanted: false, // the user is in a room (so a lost connection is retried)
  route: '',
  room: '', // full name, route/room
  nick: '', // asked for, then the server's answer
  chosen: false, // the user typed the nickname (so it is kept for next time)
  epoch: null, // the room's epoch and the last offset seen, for resume
  offset: 0,
  shown: new Set(), // offsets on the page (resume and history never duplicate)
  members: new Map(),
  attempt: 0,
  timer: null,
  seq: 0,
  publishes: new Set(), // ids of our publishes awaiting an ack or error
};

// ---- connection state --------------------------------------------------

function setStatus(kind, text) {
  const s = $('status');
  s.dataset.state = kind;
  s.textContent = text;
  $('send').disabled = kind !== 'online';
}

function wsUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/${encodeURIComponent(state.route)}`;
}

function connect() {
  clearTimeout(state.timer);
  state.timer = null;
  setStatus(state.attempt ? 'reconnecting' : 'connecting', state.attempt ? 'Reconnecting…' : 'Connecting…');
  let ws;
  try {
    ws = new WebSocket(wsUrl(), 'roomcast.v1');
  } catch (e) {
    fail(`cannot open a WebSocket: ${e.message}`);
    return;
  }
  state.ws = ws;
  ws.onopen = () => {
    if (ws.protocol !== 'roomcast.v1') {
      fail('this server does not speak roomcast.v1');
      ws.close();
      return;
    }
    // Ask for (or set) our nickname first: the join announcement uses it.
    send(state.nick ? { type: 'nick', nick: state.nick, id: 'nick' } : { type: 'nick', id: 'nick' });
    const join = { type: 'join', room: state.room, id: 'join' };
    if (state.epoch) join.since = { epoch: state.epoch, offset: state.offset };
    send(join);
  };
  ws.onmessage = (e) => {
    let ev;
    try {
      ev = JSON.parse(e.data);
    } catch {
      line('error', 'the server sent something unreadable');
      return;
    }
    handle(ev);
  };
  ws.onclose = (e) => {
    if (state.ws !== ws) return;
    state.ws = null;
    if (state.wanted) retry(e);
    else setStatus('idle', 'Not connected');
  };
}

// Exponential backoff with jitter, so that a restarted server is not hit by
// every client at the same instant.
function retry(close) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.attempt);
  const delay = Math.round(base / 2 + (Math.random() * base) / 2);
  state.attempt += 1;
  const why = closeReason(close);
  setStatus('reconnecting', `Reconnecting in ${Math.max(1, Math.round(delay / 1000))} s${why ? ` (${why})` : ''}`);
  state.timer = setTimeout(connect, delay);
}

function closeReason(close) {
  if (close.reason) return close.reason;
  switch (close.code) {
    case 1001: return 'server going away';
    case 1006: return 'connection lost';
    case 1008: return 'refused by policy';
    case 1009: return 'message too big';
    case 4008: return 'too slow to keep up';
    case 4009: return 'heartbeat missed';
    default: return close.code ? `code ${close.code}` : '';
  }
}

function fail(reason) {
  state.wanted = false;
  clearTimeout(state.timer);
  setStatus('failed', 'Disconnected');
  showLobby(reason);
}

function send(cmd) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify(cmd));
    return true;
  }
  return false;
}

// Retry at once when the browser says the network is back.
window.addEventListener('online', () => {
  if (state.wanted && state.timer) connect();
});

// ---- events --------------------------------------------------------------

function handle(ev) {
  switch (ev.type) {
    case 'nick':
      // Keep the server's answer: a reconnect asks for the same name again.
      if (state.chosen) remember(ev.nick);
      state.nick = ev.nick;
      break;
    case 'joined':
      if (ev.room !== state.room) break;
      joined(ev);
      break;
    case 'message':
      if (ev.room === state.room) message(ev);
      break;
    case 'history':
      if (ev.room === state.room) showHistory(ev.messages || []);
      break;
    case 'reply':
      line('reply', show(ev.data));
      break;
    case 'direct':
      line('direct', `${ev.from && ev.from.nick ? ev.from.nick : 'server'} (to you): ${show(ev.data)}`);
      break;
    case 'presence':
      if (ev.room !== state.room) break;
      state.members.clear();
      for (const m of ev.members || []) state.members.set(memberKey(m), m);
      renderMembers();
      break;
    case 'join':
      if (ev.room !== state.room || !ev.member) break;
      state.members.set(memberKey(ev.member), ev.member);
      renderMembers();
      break;
    case 'leave':
      if (ev.room !== state.room || !ev.member) break;
      state.members.delete(memberKey(ev.member));
      renderMembers();
      break;
    case 'ack':
      state.publishes.delete(ev.id);
      break;
    case 'error':
      error(ev);
      break;
    default:
      break; // left, and anything newer than this page
  }
}

function joined(ev) {
  const resuming = state.epoch !== null;
  if (ev.epoch !== state.epoch) {
    // A new life of the room (a restart): its offsets start again.
    state.shown.clear();
    for (const li of $('messages').children) delete li.dataset.offset;
  }
  if (!ev.resumed) {
    if (resuming) line('notice', 'Reconnected. Messages sent while you were away may be missing.');
    // Start from now, and show the recent past from history.
    state.offset = ev.offset;
    if (ev.offset > 0) send({ type: 'history', room: state.room, limit: HISTORY_ON_JOIN, id: 'history' });
  } else {
    line('notice', 'Reconnected.');
  }
  state.epoch = ev.epoch;
  state.attempt = 0;
  setStatus('online', 'Online');
  send({ type: 'presence', room: state.room, id: 'presence' });
}

function message(ev) {
  if (typeof ev.offset === 'number') {
    if (state.shown.has(ev.offset)) return;
    state.shown.add(ev.offset);
    if (ev.offset > state.offset) state.offset = ev.offset;
  }
  append(messageLine(ev));
}

// History arrives after live messages may have: put each missing one in
// offset order, above the newer lines.
function showHistory(messages) {
  const list = $('messages');
  for (const ev of messages) {
    if (typeof ev.offset !== 'number' || state.shown.has(ev.offset)) continue;
    state.shown.add(ev.offset);
    const li = messageLine(ev);
    const after = [...list.children].find((c) => Number(c.dataset.offset) > ev.offset);
    list.insertBefore(li, after || null);
  }
  scrollDown(true);
}

function error(ev) {
  if (ev.id === 'join') {
    if (ev.code === 'resume_failed') return; // joined follows; it says what to do
    fail(`${ev.reason} (${ev.code})`);
    return;
  }
  if (ev.id === 'nick') {
    line('error', `Nickname refused: ${ev.reason}`);
    state.nick = '';
    return;
  }
  state.publishes.delete(ev.id);
  line('error', `${ev.reason || 'error'} (${ev.code})`);
}

// ---- rendering (text only) -----------------------------------------------

// A value from the server as text: strings as they are, the rest as JSON.
function show(value) {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

// The tutorial's chat frames are {"type": "enter"|"message"|"leave", "data": …}.
function messageLine(ev) {
  const data = ev.data;
  const from = (ev.from && ev.from.nick) || 'server';
  let kind = 'message';
  let text = show(data);
  if (data && typeof data === 'object' && !Array.isArray(data) && 'data' in data && typeof data.type === 'string') {
    if (data.type === 'enter' || data.type === 'leave') kind = data.type;
    text = show(data.data);
  }
  const li = document.createElement('li');
  if (typeof ev.offset === 'number') li.dataset.offset = ev.offset;
  if (kind !== 'message') {
    li.className = kind;
    li.textContent = text;
    return li;
  }
  // "nick:text" (chat.rhai's shape) shows the nick apart from the text.
  let body = text;
  if (body.startsWith(`${from}:`)) body = body.slice(from.length + 1);
  li.className = 'message';
  if (state.nick && ev.from && ev.from.nick === state.nick) li.classList.add('mine');
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = from;
  const what = document.createElement('span');
  what.className = 'text';
  what.textContent = body;
  const when = document.createElement('time');
  when.className = 'when';
  if (ev.time) {
    const t = new Date(ev.time);
    when.dateTime = t.toISOString();
    when.textContent = t.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }
  li.append(who, what, when);
  return li;
}

function line(kind, text) {
  const li = document.createElement('li');
  li.className = kind;
  li.textContent = text;
  append(li);
}

function append(li) {
  const log = $('log');
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  const list = $('messages');
  list.append(li);
  while (list.children.length > MAX_LINES) list.firstElementChild.remove();
  scrollDown(atBottom);
}

function scrollDown(really) {
  if (really) $('log').scrollTop = $('log').scrollHeight;
}

function memberKey(m) {
  return m.user != null ? `user:${m.user}` : `nick:${m.nick}`;
}

function renderMembers() {
  const list = $('members');
  const sorted = [...state.members.values()].sort((a, b) => String(a.nick).localeCompare(String(b.nick)));
  list.replaceChildren(...sorted.map((m) => {
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.textContent = m.nick;
    li.append(name);
    if (m.conns > 1) {
      const c = document.createElement('span');
      c.className = 'conns';
      c.textContent = `×${m.conns}`;
      c.title = `${m.conns} connections`;
      li.append(c);
    }
    return li;
  }));
  $('member-count').textContent = `(${state.members.size})`;
}

// ---- screens ---------------------------------------------------------------

function showLobby(problem) {
  $('chat').hidden = true;
  $('lobby').hidden = false;
  $('where').textContent = '';
  const p = $('join-error');
  p.hidden = !problem;
  p.textContent = problem || '';
  document.title = 'roomcast';
}

function enter(route, room, nick) {
  state.route = route;
  state.room = `${route}/${room}`;
  state.nick = nick;
  state.chosen = nick !== '';
  state.epoch = null;
  state.offset = 0;
  state.attempt = 0;
  state.shown.clear();
  state.members.clear();
  state.wanted = true;
  $('messages').replaceChildren();
  renderMembers();
  $('lobby').hidden = true;
  $('chat').hidden = false;
  $('where').textContent = state.room;
  document.title = `${state.room} · roomcast`;
  history.replaceState(null, '', `#${state.room}`);
  connect();
  $('text').focus();
}

function leave() {
  state.wanted = false;
  clearTimeout(state.timer);
  send({ type: 'leave', room: state.room });
  if (state.ws) state.ws.close(1000, 'left the room');
  state.ws = null;
  setStatus('idle', 'Not connected');
  history.replaceState(null, '', location.pathname);
  showLobby();
}

// Only a nickname the user chose is kept for the next visit.
function remember(nick) {
  try {
    localStorage.setItem('roomcast.nick', nick);
  } catch {
    // storage may be off; nothing to keep then
  }
}

// ---- wiring ----------------------------------------------------------------

$('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const room = $('room').value.trim();
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(room)) {
    showLobby('A room name is 1–64 letters, digits, dots, dashes or underscores.');
    return;
  }
  enter($('route').value, room, $('nick').value.trim());
});

$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $('text');
  const text = input.value;
  if (!text.trim()) return;
  state.seq += 1;
  const id = `p${state.seq}`;
  if (send({ type: 'publish', room: state.room, data: text, id })) {
    state.publishes.add(id);
    input.value = '';
  }
});

$('leave').addEventListener('click', leave);

// A link like /#chat/lobby fills in the form; the nickname is remembered.
{
  const m = /^#([A-Za-z0-9._-]{1,64})\/([A-Za-z0-9._-]{1,64})$/.exec(location.hash);
  if (m && [...$('route').options].some((o) => o.value === m[1])) {
    $('route').value = m[1];
    $('room').value = m[2];
  }
  try {
    $('nick').value = localStorage.getItem('roomcast.nick') || '';
  } catch {
    // no storage: leave it empty
  }
}
