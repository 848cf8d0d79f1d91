// roomcast web client: the roomcast.v1 SDK (clients/js, served from
// /assets/sdk/) in one room, with a page around it. The SDK reconnects,
// resumes the room where it was, delivers each message once and keeps what
// is published while offline; this file only shows it.
//
// Everything the server sends is untrusted: it is put on the page with
// textContent and never parsed as HTML. The page's Content-Security-Policy
// (script-src 'self') is the second line of defence.

import { connect } from './sdk/index.js';

const $ = (id) => document.getElementById(id);

const MAX_LINES = 1000; // older lines are dropped from the page
const HISTORY_ON_JOIN = 50;

const state = {
  client: null,
  room: null, // the SDK's room
  route: '',
  name: '', // full room name, route/room
  nick: '', // asked for, then the server's answer
  chosen: false, // the user typed the nickname (so it is kept for next time)
  epoch: null, // the epoch the offsets on the page belong to
  joinedOnce: false,
  shown: new Set(), // offsets on the page (resume and history never duplicate)
  members: new Map(),
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

function onState({ state: s, code, reason, delay }) {
  switch (s) {
    case 'connecting':
      if (state.joinedOnce) setStatus('reconnecting', 'Reconnecting…');
      else setStatus('connecting', 'Connecting…');
      break;
    case 'connected':
      break; // online once the room is joined
    case 'disconnected': {
      const why = closeReason(code, reason);
      setStatus('reconnecting', `Reconnecting in ${Math.max(1, Math.round(delay / 1000))} s${why ? ` (${why})` : ''}`);
      break;
    }
    case 'closed':
      if (state.client) fail(closeReason(code, reason) || 'the connection closed');
      break;
    default:
      break;
  }
}

function closeReason(code, reason) {
  if (reason) return reason;
  switch (code) {
    case 1001: return 'server going away';
    case 1006: return 'connection lost';
    case 1008: return 'refused by policy';
    case 1009: return 'message too big';
    case 4000: return 'disconnected by the server';
    case 4008: return 'too slow to keep up';
    case 4009: return 'heartbeat missed';
    default: return code ? `code ${code}` : '';
  }
}

function fail(reason) {
  stop();
  setStatus('failed', 'Disconnected');
  showLobby(reason);
}

function stop() {
  const client = state.client;
  state.client = null;
  state.room = null;
  if (client) client.close();
}

// ---- the room ------------------------------------------------------------

function joined() {
  const pos = state.room.position;
  if (pos && pos.epoch !== state.epoch) {
    // A new life of the room (a restart): its offsets start again.
    forgetOffsets();
    state.epoch = pos.epoch;
  }
  if (!state.joinedOnce) {
    state.joinedOnce = true;
    // Show the recent past from history.
    if (pos && pos.offset > 0) state.room.history({ limit: HISTORY_ON_JOIN }).then(showHistory, () => {});
  }
  setStatus('online', 'Online');
  state.room.presence().then((members) => {
    state.members.clear();
    for (const m of members) state.members.set(memberKey(m), m);
    renderMembers();
  }, () => {});
}

function forgetOffsets() {
  state.shown.clear();
  for (const li of $('messages').children) delete li.dataset.offset;
}

function message(ev) {
  if (typeof ev.offset === 'number') {
    if (state.shown.has(ev.offset)) return;
    state.shown.add(ev.offset);
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
  stop();
  state.route = route;
  state.name = `${route}/${room}`;
  state.nick = nick;
  state.chosen = nick !== '';
  state.epoch = null;
  state.joinedOnce = false;
  state.shown.clear();
  state.members.clear();
  $('messages').replaceChildren();
  renderMembers();
  $('lobby').hidden = true;
  $('chat').hidden = false;
  $('where').textContent = state.name;
  document.title = `${state.name} · roomcast`;
  history.replaceState(null, '', `#${state.name}`);

  const client = connect({ url: wsUrl(), nick: nick || undefined });
  state.client = client;
  client.on('state', (change) => {
    if (state.client === client) onState(change);
  });
  client.on('nick', (n) => {
    // Keep the server's answer: a reconnect asks for the same name again.
    if (state.chosen) remember(n);
    state.nick = n;
  });
  client.on('reply', ({ data }) => line('reply', show(data)));
  client.on('direct', ({ from, data }) => line('direct', `${from && from.nick ? from.nick : 'server'} (to you): ${show(data)}`));
  client.on('error', (e) => {
    if (e.code === 'bad_nick') {
      line('error', `Nickname refused: ${e.reason}`);
      return;
    }
    line('error', `${e.reason || 'error'} (${e.code})`);
  });

  const r = client.room(state.name);
  state.room = r;
  r.on('state', (s) => {
    if (state.room === r && s === 'joined') joined();
  });
  r.on('message', message);
  r.on('history', showHistory);
  r.on('resume_failed', () => line('notice', 'Reconnected. Messages sent while you were away may be missing.'));
  r.on('reset', () => {
    forgetOffsets();
    state.epoch = r.position && r.position.epoch;
    line('notice', 'The room started over: its history was lost on the server.');
  });
  r.on('join', (m) => {
    state.members.set(memberKey(m), m);
    renderMembers();
  });
  r.on('leave', (m) => {
    state.members.delete(memberKey(m));
    renderMembers();
  });
  r.on('error', (e) => fail(`${e.reason} (${e.code})`));
  $('text').focus();
}

function leave() {
  const r = state.room;
  state.room = null;
  const client = state.client;
  state.client = null;
  const done = () => client && client.close();
  if (r) r.leave().then(done, done);
  else done();
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
  if (!text.trim() || !state.room) return;
  input.value = '';
  // Acked, or refused with a reason shown; while offline it waits (the
  // SDK's bounded queue) and goes after the re-join.
  state.room.publish(text).catch((err) => line('error', `Not sent: ${err.reason} (${err.code})`));
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
