// Real socket.io clients (socket.io-client 2.0.3 over Engine.IO 3, and 4.x
// over Engine.IO 4) against a running roomcast.
//
//   node tests/browser/socketio_clients.mjs HOST:PORT SCENARIO
//
// SCENARIO is `basic` (everything one server can show alone) or one that the
// Rust test drives through this process's stdin and stdout: `mixed` (a room
// shared with raw and v1 clients), `reload` (a script edit), `shutdown`,
// `auth` (tokens in the connect's auth payload, and their refresh). Each step prints
// `ok - STEP`; a failure prints `FAILED - STEP: why` and exits 1.
import { createRequire } from 'node:module';
import { ask, line } from './ask.mjs';

const require = createRequire(import.meta.url);
const { io: io4 } = require('socket.io-client');
const io2 = require('socket.io-client-2');

const [addr, scenario] = process.argv.slice(2);
if (!addr || !scenario) {
  console.error('usage: socketio_clients.mjs HOST:PORT SCENARIO');
  process.exit(2);
}
const base = `http://${addr}`;
const TIMEOUT = 10_000;
const sockets = [];


function connect(io, url, opts) {
  const s = io(url, { reconnection: false, forceNew: true, ...opts });
  sockets.push(s);
  // Every event a socket gets, to wait on.
  s.seen = [];
  s.waiters = [];
  const record = (name, args) => {
    s.seen.push({ name, args });
    s.waiters = s.waiters.filter((w) => !w(name, args));
  };
  for (const name of ['enter', 'message', 'leave', 'error', 'custom-reply', 'connect_error', 'disconnect']) {
    s.on(name, (...args) => record(name, args));
  }
  s.on('connect', () => record('connect', []));
  return s;
}

// The first event `name` (seen or to come) whose first argument passes `test`.
function until(s, name, test = () => true, what = name, timeout = TIMEOUT) {
  const found = s.seen.find((e) => e.name === name && test(e.args[0]));
  if (found) return Promise.resolve(found.args[0]);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeout} ms`)), timeout);
    s.waiters.push((n, args) => {
      if (n === name && test(args[0])) {
        clearTimeout(timer);
        resolve(args[0]);
        return true;
      }
      return false;
    });
  });
}

// emit with a callback, as a promise of the callback's argument.
function call(s, ...args) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer to ${args[0]}`)), TIMEOUT);
    s.emit(...args, (answer) => {
      clearTimeout(timer);
      resolve(answer);
    });
  });
}

function check(cond, why) {
  if (!cond) throw new Error(why);
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

async function basic() {
  await run('2.0.3: polls first, upgrades to WebSocket, chats', async () => {
    const s = connect(io2, `${base}/`);
    const firstTransport = await new Promise((resolve) => s.io.on('open', () => resolve(s.io.engine.transport.name)));
    check(firstTransport === 'polling', `started on ${firstTransport}`);
    const upgraded = new Promise((resolve) => s.io.engine.on('upgrade', (t) => resolve(t.name)));
    await until(s, 'enter', (d) => d === 'user1 comes in');
    check((await upgraded) === 'websocket', 'upgrade to websocket');
    s.emit('message', 'hello');
    await until(s, 'message', (d) => d === 'user1:hello');
    check(s.io.engine.transport.name === 'websocket', `now on ${s.io.engine.transport.name}`);
  });

  await run('2.0.3: polling only', async () => {
    const s = connect(io2, `${base}/`, { transports: ['polling'] });
    await until(s, 'enter', (d) => d === 'user2 comes in');
    s.emit('message', 'by polling');
    await until(s, 'message', (d) => d === 'user2:by polling');
    check(s.io.engine.transport.name === 'polling', `moved to ${s.io.engine.transport.name}`);
  });

  await run('4.x: WebSocket only, /echo echoes text and binary, /shout shouts', async () => {
    const echo = connect(io4, `${base}/echo`, { transports: ['websocket'] });
    await until(echo, 'connect');
    check(echo.io.engine.transport.name === 'websocket', 'a websocket');
    echo.emit('message', 'héllo');
    await until(echo, 'message', (d) => d === 'héllo');
    echo.emit('message', Buffer.from([0, 1, 2, 255]));
    await until(echo, 'message', (d) => Buffer.isBuffer(d) && same([...d], [0, 1, 2, 255]), 'the binary echo');
    const shout = connect(io4, `${base}/shout`, { transports: ['websocket'] });
    await until(shout, 'connect');
    shout.emit('message', 'straße');
    await until(shout, 'message', (d) => d === 'STRASSE!!!');
  });

  await run('2.0.3: binary both ways, over WebSocket and over polling', async () => {
    for (const transports of [['websocket'], ['polling']]) {
      const s = connect(io2, `${base}/echo`, { transports });
      await until(s, 'connect');
      s.emit('message', Buffer.from([9, 0, 255]));
      await until(s, 'message', (d) => Buffer.isBuffer(d) && same([...d], [9, 0, 255]), `the binary echo over ${transports[0]}`);
    }
  });

  await run('2.0.3 and 4.x in one room see each other', async () => {
    const old = connect(io2, `${base}/`, { query: 'room=both' });
    await until(old, 'enter', (d) => /comes in$/.test(d));
    const neu = connect(io4, `${base}/`, { auth: { room: 'both' } });
    const neuEnter = await until(neu, 'enter');
    await until(old, 'enter', (d) => d === neuEnter, 'the 4.x client coming in');
    const nick = neuEnter.split(' ')[0];
    neu.emit('message', 'from 4');
    await until(old, 'message', (d) => d === `${nick}:from 4`);
    old.emit('message', 'from 2');
    await until(neu, 'message', (d) => /:from 2$/.test(d));
    // Not in the lobby: the lobby client from the first step saw none of it.
    check(!sockets[0].seen.some((e) => e.name === 'message' && /from [24]$/.test(e.args[0])), 'rooms are apart');
  });

  await run('acks carry the v1 answer: an offset, or an error with a code', async () => {
    const s = connect(io4, `${base}/`, { auth: { room: 'acks' } });
    await until(s, 'enter');
    const ack = await call(s, 'message', 'acked');
    check(ack.type === 'ack' && ack.room === 'chat/acks' && Number.isInteger(ack.offset), JSON.stringify(ack));
    const notMember = await call(s, 'publish', 'chat/elsewhere', 'x');
    check(notMember.type === 'error' && notMember.code === 'not_member', JSON.stringify(notMember));
    const badRoom = await call(s, 'join', 'no room');
    check(badRoom.code === 'bad_room', JSON.stringify(badRoom));
    const unhandled = await call(s, 'custom', 1, 2);
    check(unhandled.code === 'dropped', `no on_event hook: ${JSON.stringify(unhandled)}`);
  });

  await run('room commands: join, publish, presence, history, nick, leave', async () => {
    const s = connect(io4, `${base}/`, { auth: { room: 'cmd' } });
    await until(s, 'enter');
    const joined = await call(s, 'join', 'chat/side');
    check(joined.type === 'joined' && joined.room === 'chat/side' && joined.resumed === false, JSON.stringify(joined));
    const nick = await call(s, 'nick', 'sio-ann');
    check(nick.nick === 'sio-ann', JSON.stringify(nick));
    const published = await call(s, 'publish', 'chat/side', 'in side');
    check(published.type === 'ack' && published.room === 'chat/side', JSON.stringify(published));
    await until(s, 'message', (d) => d === 'sio-ann:in side');
    const presence = await call(s, 'presence', 'chat/side');
    check(presence.members.length === 1 && presence.members[0].nick === 'sio-ann', JSON.stringify(presence));
    const history = await call(s, 'history', { room: 'chat/side', limit: 10 });
    check(history.messages.some((m) => same(m.data, { data: 'sio-ann:in side', type: 'message' })), JSON.stringify(history));
    const left = await call(s, 'leave', 'chat/side');
    check(left.type === 'left', JSON.stringify(left));
  });

  await run('4.x reconnects after its transport drops, as a new member', async () => {
    const s = io4(`${base}/`, { forceNew: true, reconnectionDelay: 50, auth: { room: 'again' } });
    sockets.push(s);
    const first = await new Promise((resolve) => s.once('connect', () => resolve(s.id)));
    s.io.engine.close(); // the transport drops; the client reconnects by itself
    const second = await new Promise((resolve) => s.once('connect', () => resolve(s.id)));
    check(first !== second, 'a new session');
    const answer = await call(s, 'message', 'back');
    check(answer.type === 'ack', JSON.stringify(answer));
  });

  await run('an unknown namespace is refused with connect_error', async () => {
    const s = connect(io4, `${base}/nowhere`);
    const err = await until(s, 'connect_error');
    check(/namespace/i.test(err.message), err.message);
  });
}

async function mixed() {
  await run('socket.io client in the lobby with a raw and a v1 client', async () => {
    const s = connect(io4, `${base}/`);
    const enter = await until(s, 'enter');
    const nick = enter.split(' ')[0];
    const go = await ask(`nick ${nick}`); // the raw and v1 clients speak now
    check(go === 'spoke', go);
    await until(s, 'message', (d) => /^user\d+:from raw$/.test(d), 'the raw client');
    await until(s, 'message', (d) => /^user\d+:from v1$/.test(d), 'the v1 client');
    s.emit('message', 'from socket.io');
    await until(s, 'message', (d) => d === `${nick}:from socket.io`);
    check((await ask('listen')) === 'heard', 'the others heard it');
  });
}

async function reload() {
  await run('a script edit reaches a connected socket.io client', async () => {
    const s = connect(io4, `${base}/shout`, { transports: ['websocket'] });
    await until(s, 'connect');
    s.emit('message', 'before');
    await until(s, 'message', (d) => d === 'BEFORE!!!');
    check((await ask('edit')) === 'edited', 'edited');
    s.emit('message', 'after');
    await until(s, 'message', (d) => d === 'after?!');
    check(s.seen.filter((e) => e.name === 'connect').length === 1, 'no reconnect');
  });
}

async function shutdown() {
  await run('shutdown: every socket.io client gets a disconnect', async () => {
    const old = connect(io2, `${base}/`);
    const neu = connect(io4, `${base}/echo`, { transports: ['websocket'] });
    await until(old, 'enter');
    await until(neu, 'connect');
    console.log('ask stop');
    const reasons = await Promise.all([until(old, 'disconnect'), until(neu, 'disconnect')]);
    check(reasons.every((r) => r === 'io server disconnect'), reasons.join(', '));
  });
}

// Many clients (SIO_CLIENTS, default 500: WebSocket and long-polling, 4.x
// and 2.0.3) for the shutdown-under-load test: each must hear the server's
// disconnect. Prints `ask stop` once all are in, then `disconnects N`.
async function shutdownMany() {
  const n = Number(process.env.SIO_CLIENTS || 500);
  const all = [];
  await run(`shutdown-many: ${n} socket.io clients connect`, async () => {
    for (let i = 0; i < n; i++) {
      const s = i % 10 === 0
        ? connect(io2, `${base}/`)
        : connect(io4, `${base}/echo`, i % 10 === 1 ? {} : { transports: ['websocket'] });
      all.push(s);
    }
    await Promise.all(all.map((s) => until(s, 'connect', () => true, 'connect', 60_000)));
  });
  console.log('ask stop');
  await run('shutdown-many: every one gets the server\'s disconnect', async () => {
    // Which kind of client, on which transport, saw what.
    const kinds = all.map((s, i) => `${i % 10 === 0 ? '2.0.3' : i % 10 === 1 ? '4.x polling-first' : '4.x websocket'}`
      + ` on ${s.io.engine?.transport?.name}`);
    const reasons = await Promise.all(all.map((s) => until(s, 'disconnect', () => true, 'disconnect', 60_000)));
    const bad = reasons.map((r, i) => [r, kinds[i]]).filter(([r]) => r !== 'io server disconnect');
    console.log(`disconnects ${reasons.length - bad.length}`);
    check(bad.length === 0, `${bad.length} other reasons: ${[...new Set(bad.map(([r, k]) => `${r} (${k})`))].join(', ')}`);
  });
}

// Churn for the soak test: SOAK_LOOPS loops (default 5) for SOAK_SECS
// seconds, each connecting (4.x over WebSocket or polling, or 2.0.3), sending
// a message and awaiting its answer, then leaving, half of them without a
// goodbye (the transport cut). Prints `cycles N` at the end.
async function churn() {
  const secs = Number(process.env.SOAK_SECS || 10);
  const loops = Number(process.env.SOAK_LOOPS || 5);
  const end = Date.now() + secs * 1000;
  let cycles = 0;
  await run(`churn: ${loops} loops for ${secs} s`, async () => {
    await Promise.all(Array.from({ length: loops }, async (_, k) => {
      for (let i = 0; Date.now() < end; i++) {
        const kind = (k + i) % 3;
        const s = kind === 0
          ? connect(io2, `${base}/`)
          : connect(io4, `${base}/echo`, kind === 1 ? { transports: ['websocket'] } : {});
        // Every connect must succeed: a connect_error (no retries here) or
        // no answer fails the soak, saying which client and transport.
        const who = () => `${['2.0.3 polling', '4.x websocket', '4.x polling'][kind]} client`
          + ` (engine ${s.io.engine?.readyState}, transport ${s.io.engine?.transport?.name})`;
        const outcome = await Promise.race([
          until(s, 'connect', () => true, 'connect', 30_000).then(() => null),
          until(s, 'connect_error', () => true, 'connect_error', 30_000)
            .then((e) => `connect_error: ${e?.message ?? e} ${e?.description ?? ''} ${e?.context?.status ?? ''}`),
        ]).catch((e) => e.message);
        if (outcome !== null) throw new Error(`${who()}: ${outcome}`);
        if (kind === 0) {
          s.emit('message', 'soak');
          await until(s, 'message');
        } else {
          const ack = await call(s, 'message', 'soak');
          check(ack.type === 'ack', JSON.stringify(ack));
        }
        const engine = s.io.engine;
        if (i % 2 === 0) s.close();
        else engine.close(); // cut: no namespace disconnect
        sockets.splice(sockets.indexOf(s), 1);
        if (engine.readyState !== 'closed') await new Promise((r) => engine.once('close', r));
        cycles++;
      }
    }));
  });
  console.log(`cycles ${cycles}`);
}

// A route limited to a few messages a second (RATE_N messages sent back to
// back, default 100): over WebSocket and polling, text and binary, every
// message is answered, in order, with no error: over the rate a message
// waits (the server stops reading), it is never dropped nor refused.
async function rate() {
  const n = Number(process.env.RATE_N || 100);
  const cases = [];
  for (const transport of ['websocket', 'polling']) {
    for (const binary of [false, true]) cases.push({ transport, binary });
  }
  await Promise.all(cases.map(({ transport, binary }) => run(
    `rate: ${n} ${binary ? 'binary' : 'text'} messages over ${transport}, every one answered in order`,
    async () => {
      const s = connect(io4, `${base}/limited`, { transports: [transport] });
      await until(s, 'connect');
      for (let i = 0; i < n; i++) {
        s.emit('message', binary ? Buffer.from([i % 256, 7]) : `m${i}`);
      }
      const answers = await new Promise((resolve, reject) => {
        const got = [];
        const timer = setTimeout(() => reject(new Error(`${got.length} of ${n} answered`)), 30_000);
        s.on('message', (d) => {
          got.push(d);
          if (got.length === n) {
            clearTimeout(timer);
            resolve(got);
          }
        });
      });
      for (let i = 0; i < n; i++) {
        const d = answers[i];
        const ok = binary ? Buffer.isBuffer(d) && d[0] === i % 256 && d[1] === 7 : d === `m${i}`;
        check(ok, `answer ${i} is ${binary ? JSON.stringify(d && [...d]) : d}`);
      }
      const errors = s.seen.filter((e) => e.name === 'error');
      check(errors.length === 0, `error events: ${JSON.stringify(errors.map((e) => e.args))}`);
    },
  )));
}

async function auth() {
  const [good, bad, fresh, other] = (await ask('tokens')).split(' ');
  await run('a token in the auth payload admits', async () => {
    const s = connect(io4, `${base}/`, { auth: { token: good } });
    await until(s, 'connect');
    const ack = await call(s, 'message', 'with a token');
    check(ack.type === 'ack', JSON.stringify(ack));
    const refreshed = await call(s, 'refresh', fresh);
    check(refreshed.type === 'refreshed' && typeof refreshed.exp === 'number', JSON.stringify(refreshed));
    const refused = await call(s, 'refresh', other);
    check(refused.code === 'token_refused' && /sub/.test(refused.reason), JSON.stringify(refused));
    const still = await call(s, 'message', 'still here');
    check(still.type === 'ack', JSON.stringify(still));
  });
  await run('a bad or missing token is a connect_error', async () => {
    const s = connect(io4, `${base}/`, { auth: { token: bad } });
    const err = await until(s, 'connect_error');
    check(/token/.test(err.message), err.message);
    const none = connect(io4, `${base}/`);
    const err2 = await until(none, 'connect_error');
    check(/token is required/.test(err2.message), err2.message);
  });
}

let current = 'start';
async function run(step, body) {
  current = step;
  await body();
  console.log(`ok - ${step}`);
}

try {
  const scenarios = { basic, mixed, reload, shutdown, auth, rate, 'shutdown-many': shutdownMany, churn };
  if (!scenarios[scenario]) throw new Error(`no scenario ${scenario}`);
  await scenarios[scenario]();
  // Close every client and wait until its transport is closed, so the
  // server has heard of it before this process ends. A polling client's
  // engine says `close` before its close packet is posted: then wait for
  // that POST too (a 2.x client of another namespace is also in `/`, which
  // only the close packet ends).
  await Promise.all(
    sockets.map((s) => {
      const engine = s.io.engine;
      if (!engine || engine.readyState === 'closed') {
        s.close();
        return Promise.resolve();
      }
      const transport = engine.transport;
      const polling = transport && transport.name === 'polling';
      const done = new Promise((resolve) => engine.once('close', () => {
        if (!polling) return resolve();
        const timer = setTimeout(resolve, 2000);
        transport.once('drain', () => { clearTimeout(timer); resolve(); });
      }));
      s.close();
      return done;
    }),
  );
  console.log(`socket.io ${scenario} works`);
  process.exit(0);
} catch (e) {
  console.error(`FAILED - ${current}: ${e.message}`);
  process.exit(1);
}
