// The built SDK (dist/) in Node against the real roomcast binary, driven by
// tests/sdk.rs through this process's stdin and stdout:
//
//   node clients/js/test/integration.mjs SCENARIO URL [URL2]
//
// URL is what the client under test connects to (a proxy the Rust test can
// cut or point elsewhere), URL2 a direct one for its peer. `ask WHAT` lines
// ask the Rust test to do something (cut the network, restart the server…)
// and wait for its answer; each step prints `ok - STEP`; a failure prints
// `FAILED - STEP: why` and exits 1; the end is `sdk SCENARIO works`.
import { createHmac } from 'node:crypto';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';

import { connect } from '../dist/index.js';

const [scenario, url, url2 = url] = process.argv.slice(2);
const TIMEOUT = 15_000;
const clients = [];

const waiting = [];
const early = [];
createInterface({ input: process.stdin }).on('line', (l) => {
  const w = waiting.shift();
  if (w) w(l);
  else early.push(l);
});
const line = () => (early.length ? Promise.resolve(early.shift()) : new Promise((r) => waiting.push(r)));
async function ask(what) {
  console.log(`ask ${what}`);
  return line();
}

function check(ok, why) {
  if (!ok) throw new Error(why);
}

function within(promise, what, ms = TIMEOUT) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function client(opts) {
  const c = connect({ WebSocket, reconnect: { minDelay: 100, maxDelay: 400 }, ...opts });
  c.states = [];
  c.on('state', (s) => c.states.push(s.state));
  clients.push(c);
  return c;
}

// A room with everything it receives recorded, to wait on.
function watch(room) {
  room.seen = [];
  room.waiters = [];
  const record = (kind, value) => {
    room.seen.push({ kind, value });
    room.waiters = room.waiters.filter((w) => !w());
  };
  for (const kind of ['message', 'reset', 'resume_failed', 'history']) room.on(kind, (v) => record(kind, v));
  return room;
}

function until(room, test, what) {
  if (test()) return Promise.resolve();
  return within(new Promise((resolve) => room.waiters.push(() => test() && (resolve(), true))), what);
}

const texts = (room) => room.seen.filter((e) => e.kind === 'message').map((e) => e.value.data.data);
const state = (c, s) => (c.state === s ? Promise.resolve() : within(new Promise((r) => {
  const stop = c.on('state', (x) => x.state === s && (stop(), r()));
})), `state ${s}`);

async function joined(room) {
  if (room.state !== 'joined') await within(room.once('state').then(() => joined(room)), `${room.name} joined`);
}

// The seed's chat script frames every message as {type, data: "nick:text"}.
async function chatters(roomName, opts = {}) {
  const ann = client({ url, nick: 'ann', ...opts });
  const bob = client({ url: url2, nick: 'bob' });
  const a = watch(ann.room(roomName));
  const b = watch(bob.room(roomName));
  await joined(a);
  await joined(b);
  return { ann, bob, a, b };
}

function exactlyOnce(list, expected, what) {
  check(JSON.stringify(list) === JSON.stringify(expected), `${what}: got ${JSON.stringify(list)}, expected ${JSON.stringify(expected)}`);
}

async function drop() {
  const { ann, bob, a, b } = await chatters('chat/sdk-drop', { queue: { max: 2, timeout: 30_000 } });
  await run('messages before the drop', async () => {
    for (const t of ['m1', 'm2']) await b.publish(t);
    await until(a, () => texts(a).includes('bob:m2'), 'm2');
  });
  let queued;
  await run('a network drop: publishes wait, the bound refuses the third', async () => {
    const down = state(ann, 'disconnected');
    await ask('cut');
    await down;
    // While ann is away: bob speaks, ann's publishes wait.
    for (const t of ['m3', 'm4']) await b.publish(t);
    queued = [a.publish('a1'), a.publish('a2')];
    const third = await a.publish('a3').then(() => null, (e) => e);
    check(third && third.code === 'queue_full', `third publish: ${third && third.code}`);
    await ask('heal');
  });
  await run('resumes: every message once, in order, then the queued ones', async () => {
    const acks = await within(Promise.all(queued), 'queued publishes acked');
    check(acks.every((x) => typeof x.offset === 'number') && acks[0].offset < acks[1].offset, JSON.stringify(acks));
    await until(a, () => texts(a).includes('ann:a2'), 'a2 back to ann');
    await until(b, () => texts(b).includes('ann:a2'), 'a2 at bob');
    const mine = texts(a).filter((t) => /^(bob:m|ann:a)/.test(t));
    exactlyOnce(mine, ['bob:m1', 'bob:m2', 'bob:m3', 'bob:m4', 'ann:a1', 'ann:a2'], 'ann');
    check(!a.seen.some((e) => e.kind === 'resume_failed'), 'resumed');
    check(ann.states.includes('disconnected') && ann.state === 'connected', ann.states.join(','));
  });
  bob.close();
}

async function restart() {
  const { ann, a, b } = await chatters('chat/sdk-restart');
  await run('before the restart', async () => {
    await a.publish('before');
    await until(b, () => texts(b).includes('ann:before'), 'before');
  });
  await run('the server restarted: resume_failed, history fetched, chat goes on', async () => {
    const failed = until(a, () => a.seen.some((e) => e.kind === 'resume_failed'), 'resume_failed');
    await ask('restart');
    await failed;
    await until(a, () => a.seen.some((e) => e.kind === 'history'), 'history');
    const reason = a.seen.find((e) => e.kind === 'resume_failed').value.reason;
    check(/epoch/.test(reason), reason);
    await joined(b);
    await a.publish('after');
    await until(b, () => texts(b).includes('ann:after'), 'after, on the new server');
    check(ann.state === 'connected', ann.state);
  });
}

async function cluster() {
  const { ann, a, b } = await chatters('chat/sdk-cluster');
  await run('moved to another node: resumes there', async () => {
    await b.publish('n1');
    await until(a, () => texts(a).includes('bob:n1'), 'n1');
    const since = ann.states.length;
    await ask('move');
    await within(new Promise((r) => {
      const back = () => ann.states.slice(since).includes('connected') && a.state === 'joined';
      if (back()) return r();
      const stop = a.on('state', () => back() && (stop(), r()));
    }), 'back on the other node');
    await b.publish('n2');
    await until(a, () => texts(a).includes('bob:n2'), 'n2 on the other node');
    check(!a.seen.some((e) => e.kind === 'resume_failed'), 'resumed across nodes');
    exactlyOnce(texts(a).filter((t) => t.startsWith('bob:n')), ['bob:n1', 'bob:n2'], 'ann');
  });
  await run('Redis came back empty: the reset is told, nothing dropped or doubled after it', async () => {
    const before = a.seen.length;
    await ask('empty-redis');
    // Right after Redis is back a node may still not reach it: not_stored.
    for (let i = 0; ; i += 1) {
      const r = await b.publish('r1').then(() => 'ok', (e) => e.code);
      if (r === 'ok') break;
      check(r === 'not_stored' && i < 50, `publish after Redis came back: ${r}`);
    }
    await b.publish('r2');
    await until(a, () => texts(a).includes('bob:r2'), 'r2');
    const after = a.seen.slice(before).filter((e) => e.kind === 'reset' || (e.kind === 'message' && e.value.offset !== null));
    const kinds = after.map((e) => (e.kind === 'reset' ? 'reset' : `${e.value.offset}:${e.value.data.data}`));
    exactlyOnce(kinds, ['reset', '1:bob:r1', '2:bob:r2'], 'ann after the reset');
    check(a.position.epoch === after[0].value.epoch && a.position.offset === 2, JSON.stringify(a.position));
  });
}

function hs256(claims, secret) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

async function token() {
  const secret = await ask('secret');
  const now = () => Math.floor(Date.now() / 1000);
  const exp = now() + 3;
  const first = hs256({ sub: 'ann', exp }, secret);
  let calls = 0;
  const ann = client({
    url,
    nick: 'ann',
    getToken: () => {
      calls += 1;
      return calls === 1 ? first : hs256({ sub: 'ann', exp: now() + 600 }, secret);
    },
  });
  const room = watch(ann.room('chat/sdk-token'));
  await run('a token that expires in 3 s is refreshed, the connection stays up', async () => {
    await joined(room);
    const refreshed = within(ann.once('token'), 'the refreshed token');
    // A connection with the same first token and no refresh: closed at its expiry.
    const control = new WebSocket(`${url2}?token=${first}`, 'roomcast.v1');
    const closed = within(new Promise((r) => control.on('close', (code) => r(code))), 'the control connection closed');
    const { exp: fresh } = await refreshed;
    check(fresh > exp, `new exp ${fresh}`);
    check((await closed) === 4001, 'the control connection expired with 4001');
    await room.publish('still here');
    await until(room, () => texts(room).includes('ann:still here'), 'a round trip after the old expiry');
    check(!ann.states.includes('disconnected'), `never cut: ${ann.states.join(',')}`);
    check(calls === 2, `getToken called ${calls} times`);
  });
}

let current = 'start';
async function run(step, body) {
  current = step;
  await body();
  console.log(`ok - ${step}`);
}

try {
  const scenarios = { drop, restart, cluster, token };
  if (!scenarios[scenario]) throw new Error(`no scenario ${scenario}`);
  await scenarios[scenario]();
  for (const c of clients) c.close();
  console.log(`sdk ${scenario} works`);
  process.exit(0);
} catch (e) {
  console.error(`FAILED - ${current}: ${e.stack || e.message}`);
  process.exit(1);
}
