// socket.io connection state recovery with the real socket.io-client 4.8
// (and 2.0.3, which has none), driven by tests/socketio_recovery.rs through
// this process's stdin and stdout.
//
//   node tests/browser/socketio_recovery.mjs HOST:PORT SCENARIO
//
// HOST:PORT is a proxy the Rust test controls. SCENARIO is `recover` (the
// transport dropped with `socket.io.engine.close()`, messages published
// meanwhile, back within the window: `recovered`, exactly the missed
// messages of both its rooms, in order, once), `quiet` (the same before
// it got any message), `crash` (its node killed,
// back on another: `recovered`, nothing lost), `expire` (back after the
// window: a fresh session, nothing replayed) or `old` (2.0.3 across the
// same drop: reconnects as a new connection, as it always did). Each step
// prints `ok - STEP`; a failure prints `FAILED - STEP: why` and exits 1.
import { createRequire } from 'node:module';
import { ask, line } from './ask.mjs';

const require = createRequire(import.meta.url);
const { io: io4 } = require('socket.io-client');
const io2 = require('socket.io-client-2');

const [addr, scenario] = process.argv.slice(2);
const base = `http://${addr}`;
const TIMEOUT = 15_000;


function check(cond, why) {
  if (!cond) throw new Error(why);
}

// A client that reconnects at once (no backoff to wait out), recording
// every `message` event with all its arguments and every (re)connect.
function client(io, url, opts = {}) {
  const s = io(url, {
    forceNew: true,
    transports: ['websocket'],
    reconnectionDelay: 50,
    reconnectionDelayMax: 100,
    randomizationFactor: 0,
    ...opts,
  });
  s.messages = [];
  s.connects = [];
  s.waiters = [];
  const wake = () => {
    s.waiters = s.waiters.filter((w) => !w());
  };
  s.on('message', (...args) => {
    s.messages.push(args);
    wake();
  });
  s.on('connect', () => {
    s.connects.push({ recovered: s.recovered, id: s.id });
    wake();
  });
  return s;
}

function until(s, test, what) {
  if (test()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${TIMEOUT} ms`)), TIMEOUT);
    s.waiters.push(() => {
      if (!test()) return false;
      clearTimeout(timer);
      resolve();
      return true;
    });
  });
}

function call(s, ...args) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer to ${args[0]}`)), TIMEOUT);
    s.emit(...args, (answer) => {
      clearTimeout(timer);
      resolve(answer);
    });
  });
}

const texts = (s) => s.messages.map((args) => args[0]);
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

// Publish `text` into `room` (through the Rust test, on the node it says).
async function publish(room, text) {
  const answer = await ask(`publish ${room} ${text}`);
  check(answer === 'ok', `publish ${text}: ${answer}`);
}

// Drop the transport while the proxy refuses new connections; the Rust
// test waits until the server has seen the session end.
async function drop(s) {
  check((await ask('refuse')) === 'ok', 'refuse');
  const gone = new Promise((resolve) => s.once('disconnect', resolve));
  s.io.engine.close();
  const reason = await gone;
  // The client closed its own transport: socket.io-client says so.
  check(reason === 'forced close', `disconnected for ${reason}`);
  check((await ask('gone')) === 'ok', 'gone');
}

let current = 'start';
async function run(step, body) {
  current = step;
  await body();
  console.log(`ok - ${step}`);
}

async function recover() {
  const s = client(io4, `${base}/echo`);
  await run('connected with a pid, in a second room by command', async () => {
    await until(s, () => s.connects.length === 1, 'connect');
    check(s.connects[0].recovered === false, 'a first connect is not recovered');
    check(typeof s._pid === 'string' && s._pid.length > 0, `a pid: ${s._pid}`);
    const joined = await call(s, 'join', 'echo/side');
    check(joined.type === 'joined', `join: ${JSON.stringify(joined)}`);
  });
  await run('room messages carry their offset', async () => {
    await publish('echo/lobby', 'm1');
    await publish('echo/side', 's1');
    await until(s, () => s.messages.length === 2, 'm1 and s1');
    check(same(texts(s), ['m1', 's1']), `got ${JSON.stringify(texts(s))}`);
    for (const args of s.messages) {
      check(args.length === 2 && /^\d+:[^:]+:echo\//.test(args[1]), `an offset: ${JSON.stringify(args)}`);
    }
    check(s._lastOffset === s.messages[1][1], `the client keeps ${s._lastOffset}`);
  });
  const pid = s._pid;
  await run('the transport drops; messages go on without it', async () => {
    await drop(s);
    await publish('echo/lobby', 'm2');
    await publish('echo/side', 's2');
    await publish('echo/lobby', 'm3');
    check((await ask('return')) === 'ok', 'return');
  });
  await run('back within the window: recovered, exactly what it missed, once, in order', async () => {
    await until(s, () => s.connects.length === 2, 'the reconnect');
    check(s.connects[1].recovered === true, 'recovered');
    check(s._pid === pid, 'the same pid');
    // Its home room's first, then the room it joined by command.
    await until(s, () => s.messages.length === 5, 'the missed messages');
    check(same(texts(s), ['m1', 's1', 'm2', 'm3', 's2']), `got ${JSON.stringify(texts(s))}`);
    await publish('echo/lobby', 'm4');
    await publish('echo/side', 's3');
    await until(s, () => s.messages.length === 7, 'm4 and s3');
    check(same(texts(s), ['m1', 's1', 'm2', 'm3', 's2', 'm4', 's3']), `got ${JSON.stringify(texts(s))}`);
    const echoed = await new Promise((resolve) => {
      s.once('message', resolve);
      s.emit('message', 'still echoing');
    });
    check(echoed === 'still echoing', `echo: ${echoed}`);
    const again = await call(s, 'join', 'echo/side');
    check(again.code === 'already_joined', `in echo/side again: ${JSON.stringify(again)}`);
  });
  s.close();
}

async function quiet() {
  const s = client(io4, `${base}/echo`);
  await run('dropped before any message: still recovered (socket.io#4888)', async () => {
    await until(s, () => s.connects.length === 1, 'connect');
    const pid = s._pid;
    check(s._lastOffset === undefined, 'no offset yet');
    await drop(s);
    await publish('echo/lobby', 'q1');
    check((await ask('return')) === 'ok', 'return');
    await until(s, () => s.connects.length === 2, 'the reconnect');
    check(s.connects[1].recovered === true, 'recovered');
    check(s._pid === pid, 'the same pid');
    await until(s, () => s.messages.length === 1, 'q1');
    check(same(texts(s), ['q1']), `got ${JSON.stringify(texts(s))}`);
  });
  s.close();
}

async function crash() {
  const s = client(io4, `${base}/echo`);
  await run('connected, in a second room by command', async () => {
    await until(s, () => s.connects.length === 1, 'connect');
    const joined = await call(s, 'join', 'echo/side');
    check(joined.type === 'joined', `join: ${JSON.stringify(joined)}`);
    await publish('echo/side', 's1');
    await publish('echo/lobby', 'm1');
    await until(s, () => s.messages.length === 2, 's1 and m1');
  });
  const pid = s._pid;
  await run('its node dies; the chat goes on on another', async () => {
    check((await ask('refuse')) === 'ok', 'refuse');
    const gone = new Promise((resolve) => s.once('disconnect', resolve));
    check((await ask('kill')) === 'ok', 'kill');
    const reason = await gone;
    check(reason === 'transport close' || reason === 'transport error', `disconnected for ${reason}`);
    await publish('echo/lobby', 'm2');
    await publish('echo/side', 's2');
    check((await ask('return')) === 'ok', 'return');
  });
  await run('recovered from the record the dead node kept: nothing lost', async () => {
    await until(s, () => s.connects.length === 2, 'the reconnect');
    check(s.connects[1].recovered === true, 'recovered');
    check(s._pid === pid, 'the same pid');
    await until(s, () => texts(s).includes('s2'), 's2');
    await publish('echo/lobby', 'm3');
    await until(s, () => texts(s).includes('m3'), 'm3');
    // The home room from the client's own offset: exactly once. The room
    // joined by command from where its join found it (the dead node could
    // not say more): everything again since, so s1 twice, nothing missed.
    check(same(texts(s), ['s1', 'm1', 'm2', 's1', 's2', 'm3']), `got ${JSON.stringify(texts(s))}`);
  });
  s.close();
}

async function expire() {
  const s = client(io4, `${base}/echo`);
  await run('connected', async () => {
    await until(s, () => s.connects.length === 1, 'connect');
    await publish('echo/lobby', 'm1');
    await until(s, () => s.messages.length === 1, 'm1');
  });
  const pid = s._pid;
  await run('back after the window: a fresh session, nothing replayed', async () => {
    await drop(s);
    await publish('echo/lobby', 'm2');
    check((await ask('wait out the window')) === 'ok', 'the window');
    check((await ask('return')) === 'ok', 'return');
    await until(s, () => s.connects.length === 2, 'the reconnect');
    check(s.connects[1].recovered === false, 'not recovered');
    check(s._pid !== pid, 'a new pid');
    await publish('echo/lobby', 'm3');
    await until(s, () => s.messages.length === 2, 'm3');
    check(same(texts(s), ['m1', 'm3']), `got ${JSON.stringify(texts(s))}`);
  });
  s.close();
}

async function old() {
  const s = client(io2, `${base}/echo`);
  await run('2.0.3: no pid, no offsets, reconnects as a new connection', async () => {
    await until(s, () => s.connects.length === 1, 'connect');
    await publish('echo/lobby', 'm1');
    await until(s, () => s.messages.length === 1, 'm1');
    check(same(s.messages, [['m1']]), `2.0.3 gets the message alone: ${JSON.stringify(s.messages)}`);
    check((await ask('refuse')) === 'ok', 'refuse');
    const gone = new Promise((resolve) => s.once('disconnect', resolve));
    s.io.engine.close();
    await gone;
    check((await ask('gone')) === 'ok', 'gone');
    check((await ask('return')) === 'ok', 'return');
    await until(s, () => s.connects.length === 2, 'the reconnect');
    await publish('echo/lobby', 'm2');
    await until(s, () => s.messages.length === 2, 'm2');
    check(same(s.messages, [['m1'], ['m2']]), `got ${JSON.stringify(s.messages)}`);
  });
  s.close();
}

try {
  const scenarios = { recover, quiet, crash, expire, old };
  if (!scenarios[scenario]) throw new Error(`no scenario ${scenario}`);
  await scenarios[scenario]();
  console.log(`socket.io ${scenario} works`);
  process.exit(0);
} catch (e) {
  console.error(`FAILED - ${current}: ${e.message}`);
  process.exit(1);
}
