// Unit tests of the built SDK (dist/), with node's test runner and a
// scripted stand-in for the WebSocket: what the client sends, and what it
// makes of what a server would answer. The real server is exercised by
// integration.mjs (driven by tests/sdk.rs).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Admin, connect, RoomcastError, tokenExpiry } from '../dist/index.js';

/** Every socket the client opened, newest last. */
function fakeSockets() {
  const sockets = [];
  class FakeSocket {
    constructor(url, protocol) {
      this.url = url;
      this.protocol = protocol;
      this.readyState = 0;
      this.sent = [];
      this.waiting = [];
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      sockets.push(this);
    }
    send(data) {
      const cmd = JSON.parse(data);
      this.sent.push(cmd);
      this.waiting = this.waiting.filter((w) => !w(cmd));
    }
    // The next command of `type` the client sends.
    next(type) {
      return new Promise((resolve) => {
        this.waiting.push((cmd) => cmd.type === type && (resolve(cmd), true));
      });
    }
    close(code = 1000, reason = '') {
      this.drop(code, reason);
    }
    // The server's side.
    open() {
      this.readyState = 1;
      this.onopen?.({});
    }
    push(ev) {
      this.onmessage?.({ data: JSON.stringify(ev) });
    }
    drop(code = 1006, reason = '') {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.onclose?.({ code, reason });
    }
    last(type) {
      return [...this.sent].reverse().find((c) => c.type === type);
    }
  }
  return { sockets, FakeSocket };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

function jwt(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'HS256' })}.${b64(claims)}.sig`;
}

test('tokenExpiry reads exp from a JWT, and nothing from anything else', () => {
  assert.equal(tokenExpiry(jwt({ sub: 'ann', exp: 1764128600 })), 1764128600);
  assert.equal(tokenExpiry(jwt({ sub: 'ann' })), null);
  assert.equal(tokenExpiry('not a token'), null);
  assert.equal(tokenExpiry('a.%%%.c'), null);
});

test('a room joins after the nickname, dedupes by offset and resumes from its position', async () => {
  const { sockets, FakeSocket } = fakeSockets();
  const client = connect({ url: 'ws://h/chat', nick: 'ann', WebSocket: FakeSocket, reconnect: { minDelay: 1, maxDelay: 2 } });
  const room = client.room('chat/lobby');
  const got = [];
  room.on('message', (m) => got.push(m.offset));
  await tick();
  const ws = sockets[0];
  assert.equal(ws.protocol, 'roomcast.v1');
  ws.open();
  assert.deepEqual(ws.sent.map((c) => c.type), ['nick', 'join']);
  const join = ws.last('join');
  assert.equal(join.since, undefined);
  ws.push({ type: 'joined', room: 'chat/lobby', epoch: 'E', offset: 4, resumed: false, id: join.id });
  assert.equal(room.state, 'joined');
  for (const offset of [5, 6, 6, 5, 7]) ws.push({ type: 'message', room: 'chat/lobby', offset, time: 0, from: {}, data: 'x' });
  ws.push({ type: 'message', room: 'chat/lobby', offset: null, time: 0, from: {}, data: 'local' });
  assert.deepEqual(got, [5, 6, 7, null]);

  // Dropped: back in a moment, joining with its position.
  ws.drop();
  assert.equal(client.state, 'disconnected');
  assert.equal(room.state, 'joining');
  await new Promise((r) => client.once('state').then(r));
  await tick();
  const again = sockets[1];
  again.open();
  const rejoin = again.last('join');
  assert.deepEqual(rejoin.since, { epoch: 'E', offset: 7 });
  again.push({ type: 'joined', room: 'chat/lobby', epoch: 'E', offset: 9, resumed: true, id: rejoin.id });
  for (const offset of [6, 7, 8, 9]) again.push({ type: 'message', room: 'chat/lobby', offset, time: 0, from: {}, data: 'x' });
  assert.deepEqual(got, [5, 6, 7, null, 8, 9], 'each message once');
  client.close();
  assert.equal(client.state, 'closed');
});

test('a failed resume is told once, then the recent history is fetched', async () => {
  const { sockets, FakeSocket } = fakeSockets();
  const client = connect({ url: 'ws://h/chat', WebSocket: FakeSocket, reconnect: { minDelay: 1, maxDelay: 2 } });
  const room = client.room('chat/lobby');
  const told = [];
  room.on('resume_failed', (e) => told.push(e.reason));
  await tick();
  sockets[0].open();
  sockets[0].push({ type: 'joined', room: 'chat/lobby', epoch: 'E', offset: 2, resumed: false, id: sockets[0].last('join').id });
  sockets[0].drop();
  await client.once('state');
  await tick();
  const ws = sockets[1];
  ws.open();
  const join = ws.last('join');
  ws.push({ type: 'error', code: 'resume_failed', reason: 'epoch changed', id: join.id });
  ws.push({ type: 'joined', room: 'chat/lobby', epoch: 'F', offset: 3, resumed: false, id: join.id });
  assert.deepEqual(told, ['epoch changed']);
  assert.deepEqual(room.position, { epoch: 'F', offset: 3 });
  const history = ws.last('history');
  assert.equal(history.limit, 50);
  const fetched = room.once('history');
  ws.push({ type: 'history', room: 'chat/lobby', epoch: 'F', messages: [{ offset: 3, data: 'x' }], id: history.id });
  assert.equal((await fetched).length, 1);
  client.close();
});

test('a reset starts the room over: offsets from 1 of the new epoch are delivered', async () => {
  const { sockets, FakeSocket } = fakeSockets();
  const client = connect({ url: 'ws://h/chat', WebSocket: FakeSocket });
  const room = client.room('chat/lobby');
  const got = [];
  room.on('message', (m) => got.push(m.offset));
  const resets = [];
  room.on('reset', (p) => resets.push(p));
  await tick();
  const ws = sockets[0];
  ws.open();
  ws.push({ type: 'joined', room: 'chat/lobby', epoch: 'E', offset: 8, resumed: false, id: ws.last('join').id });
  ws.push({ type: 'message', room: 'chat/lobby', offset: 9, time: 0, from: {}, data: 'x' });
  ws.push({ type: 'reset', room: 'chat/lobby', epoch: 'F', offset: 0 });
  ws.push({ type: 'message', room: 'chat/lobby', offset: 1, time: 0, from: {}, data: 'x' });
  assert.deepEqual(got, [9, 1]);
  assert.deepEqual(resets, [{ epoch: 'F', offset: 0 }]);
  assert.deepEqual(room.position, { epoch: 'F', offset: 1 });
  client.close();
});

test('publishes wait while disconnected, go in order after the re-join, and the queue is bounded', async () => {
  const { sockets, FakeSocket } = fakeSockets();
  const client = connect({ url: 'ws://h/chat', WebSocket: FakeSocket, queue: { max: 2, timeout: 60_000 } });
  const room = client.room('chat/lobby');
  const first = room.publish('one');
  const second = room.publish('two');
  await assert.rejects(room.publish('three'), (e) => e instanceof RoomcastError && e.code === 'queue_full');
  await tick();
  const ws = sockets[0];
  ws.open();
  assert.deepEqual(ws.sent.map((c) => c.type), ['join'], 'nothing before the join is answered');
  ws.push({ type: 'joined', room: 'chat/lobby', epoch: 'E', offset: 0, resumed: false, id: ws.last('join').id });
  const publishes = ws.sent.filter((c) => c.type === 'publish');
  assert.deepEqual(publishes.map((c) => c.data), ['one', 'two']);
  ws.push({ type: 'ack', room: 'chat/lobby', offset: 1, id: publishes[0].id });
  ws.push({ type: 'error', code: 'rate_limited', reason: 'slow down', id: publishes[1].id });
  assert.deepEqual(await first, { offset: 1 });
  await assert.rejects(second, (e) => e.code === 'rate_limited' && e.reason === 'slow down');
  // One in flight when the connection drops: rejected, never silently lost.
  const inFlight = room.publish('three');
  ws.drop();
  await assert.rejects(inFlight, (e) => e.code === 'connection_lost');
  client.close();
});

test('a queued publish times out', async () => {
  const { FakeSocket } = fakeSockets();
  const client = connect({ url: 'ws://h/chat', WebSocket: FakeSocket, queue: { timeout: 5 } });
  await assert.rejects(client.room('chat/lobby').publish('x'), (e) => e.code === 'timeout');
  client.close();
});

test('getToken gives the token of each connection and refreshes it before it expires', async () => {
  const { sockets, FakeSocket } = fakeSockets();
  const now = Math.floor(Date.now() / 1000);
  const tokens = [jwt({ sub: 'ann', exp: now + 1 }), jwt({ sub: 'ann', exp: now + 600 })];
  let calls = 0;
  const client = connect({ url: 'ws://h/chat?x=1', WebSocket: FakeSocket, getToken: () => tokens[calls++] });
  await tick();
  const ws = sockets[0];
  assert.equal(new URL(ws.url).searchParams.get('token'), tokens[0]);
  assert.equal(new URL(ws.url).searchParams.get('x'), '1');
  const sent = ws.next('refresh');
  ws.open();
  // A third of its life before it ends: within the second it has.
  const refresh = await sent;
  assert.equal(refresh.token, tokens[1]);
  ws.push({ type: 'refreshed', exp: now + 600, id: refresh.id });
  assert.equal(sockets.length, 1, 'the connection was not cut');
  client.close();
});

test('the server closing for good (4000) ends the client; 4001 without getToken too', async () => {
  for (const code of [4000, 4001]) {
    const { sockets, FakeSocket } = fakeSockets();
    const client = connect({ url: 'ws://h/chat', WebSocket: FakeSocket, token: 't' });
    const room = client.room('chat/lobby');
    const waiting = room.publish('x');
    await tick();
    sockets[0].open();
    sockets[0].drop(code, 'bye');
    assert.equal(client.state, 'closed');
    assert.equal(room.state, 'left');
    await assert.rejects(waiting, (e) => e.code === 'closed');
  }
});

test('a browser saying the network is back retries at once, not after the backoff', async () => {
  const listeners = new Map();
  globalThis.addEventListener = (type, fn) => listeners.set(type, fn);
  globalThis.removeEventListener = (type, fn) => listeners.get(type) === fn && listeners.delete(type);
  try {
    const { sockets, FakeSocket } = fakeSockets();
    const client = connect({ url: 'ws://h/chat', WebSocket: FakeSocket, reconnect: { minDelay: 60_000, maxDelay: 60_000 } });
    await tick();
    sockets[0].open();
    sockets[0].drop();
    assert.equal(client.state, 'disconnected');
    listeners.get('online')();
    await tick();
    assert.equal(sockets.length, 2, 'a new connection, long before the minute-long delay');
    client.close();
    assert.equal(listeners.has('online'), false, 'the listener is removed on close');
  } finally {
    delete globalThis.addEventListener;
    delete globalThis.removeEventListener;
  }
});

/** A stand-in for fetch: answers `replies[path]` (status, body), records calls. */
function fakeFetch(replies) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, init });
    const path = new URL(url).pathname;
    const [status, body] = replies[path] ?? [404, { error: { code: 'not_found', reason: 'no' } }];
    return { ok: status < 300, status, statusText: String(status), json: async () => body };
  };
  return { calls, fetch };
}

test('the admin client sends the key as a bearer token and turns API errors into RoomcastErrors', async () => {
  const { calls, fetch } = fakeFetch({
    '/api/disconnect': [200, { disconnected: 1 }],
    '/api/admin/room': [404, { error: { code: 'no_room', reason: 'no such room' } }],
  });
  const admin = new Admin({ url: 'http://h:1', key: 'k'.repeat(16), fetch });
  assert.deepEqual(await admin.disconnect({ conn: 7 }, 'bye'), { disconnected: 1 });
  assert.equal(calls[0].init.headers.Authorization, `Bearer ${'k'.repeat(16)}`);
  assert.deepEqual(JSON.parse(calls[0].init.body), { conn: 7, reason: 'bye' });
  await assert.rejects(admin.room('chat/x'), (e) => e instanceof RoomcastError && e.code === 'no_room');
  assert.equal(new URL(calls[1].url).search, '?room=chat%2Fx&from=0&limit=50');
});

test('the live socket offers the key as a subprotocol, reconnects, and stops for good on a refused key', async () => {
  const { sockets, FakeSocket } = fakeSockets();
  const replies = { '/api/admin/overview': [200, { type: 'update', nodes: [] }] };
  const { fetch } = fakeFetch(replies);
  const admin = new Admin({ url: 'http://h:1', key: 'secret-key-0123456', fetch, WebSocket: FakeSocket, reconnect: { minDelay: 1, maxDelay: 2 } });
  const live = admin.live();
  const states = [];
  live.on('state', (s) => states.push(s));
  assert.equal(sockets[0].url, 'ws://h:1/admin/live');
  assert.deepEqual(sockets[0].protocol, ['roomcast.admin', `bearer.${Buffer.from('secret-key-0123456').toString('base64url')}`]);
  sockets[0].open();
  const seen = [];
  live.on('history', (h) => seen.push(h.type));
  live.on('update', (u) => seen.push(`${u.type}:${u.bytes}`));
  sockets[0].push({ type: 'history', nodes: {} });
  sockets[0].push({ type: 'update', nodes: [] });
  assert.deepEqual(seen, ['history', `update:${JSON.stringify({ type: 'update', nodes: [] }).length}`]);
  // A drop ('reconnecting' at once): it asks the API, then opens again.
  sockets[0].drop();
  assert.equal(live.state, 'reconnecting');
  assert.equal(await live.once('state'), 'connecting');
  assert.equal(sockets.length, 2);
  sockets[1].open();
  // The key is revoked: the next drop ends it.
  replies['/api/admin/overview'] = [401, { error: { code: 'unauthorized', reason: 'wrong key' } }];
  sockets[1].drop();
  const refused = await live.once('unauthorized');
  assert.equal(refused.code, 'unauthorized');
  assert.equal(live.state, 'closed');
  assert.deepEqual(states, ['live', 'reconnecting', 'connecting', 'live', 'reconnecting', 'closed']);
  assert.equal(sockets.length, 2);
});
