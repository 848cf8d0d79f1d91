// permessage-deflate with real clients: Node's `ws` (RFC 7692, as browsers
// and most servers' clients do it) and socket.io-client 4 over WebSocket,
// driven by tests/compression.rs through this process's stdin and stdout.
//
//   node tests/browser/deflate_clients.mjs HOST:PORT SCENARIO
//
// SCENARIO is `chat` (three `ws` clients that offer deflate and one that
// does not, in one room of /chat: the extension answered to each that
// offered, none to the other; a 2,000-character line compressed by its
// sender, broadcast, read by all four as it was sent) or `sio` (a
// socket.io-client 4 with deflate on its WebSocket: the same line emitted,
// broadcast, read back) or `takeover` (a `ws` client on /echo that keeps its
// compression context from message to message, as `ws` does when the
// server lets it: five similar lines, each echoed as it was sent). Each
// step prints `ok - STEP`; `ask WHAT` waits for
// the Rust side's answer; a failure prints `FAILED - STEP: why`, exits 1.
import { createRequire } from 'node:module';
import { ask, line } from './ask.mjs';

const require = createRequire(import.meta.url);
const WebSocket = require('ws');
const { io } = require('socket.io-client');

const [addr, scenario] = process.argv.slice(2);
const TIMEOUT = 15_000;
const AGREED = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';
// Long enough to be compressed (compression.threshold: 256), and
// compressible: chat text.
const LINE = 'the quick brown fox jumps over the lazy dog; '.repeat(45).slice(0, 2000);


function check(cond, why) {
  if (!cond) throw new Error(why);
}

function within(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), TIMEOUT);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A `ws` client of /chat/deflate that records each message as text.
async function member(deflate) {
  const ws = new WebSocket(`ws://${addr}/chat/deflate`, {
    // threshold 0: the client compresses everything it sends.
    perMessageDeflate: deflate ? { threshold: 0 } : false,
  });
  ws.messages = [];
  ws.waiters = [];
  ws.answer = '';
  ws.on('upgrade', (res) => {
    ws.answer = res.headers['sec-websocket-extensions'] ?? '';
  });
  ws.on('message', (data, binary) => {
    ws.messages.push(binary ? data : data.toString());
    ws.waiters = ws.waiters.filter((w) => !w());
  });
  await within(new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  }), 'open');
  return ws;
}

function until(ws, cond, what) {
  return within(new Promise((resolve) => {
    const test = () => {
      const hit = ws.messages.find(cond);
      if (hit !== undefined) resolve(hit);
      return hit !== undefined;
    };
    if (!test()) ws.waiters.push(test);
  }), what);
}

async function chat() {
  const members = [await member(true), await member(true), await member(true), await member(false)];
  members.forEach((ws, i) => {
    const want = i < 3 ? AGREED : '';
    check(ws.answer === want, `member ${i + 1}: answered ${JSON.stringify(ws.answer)}`);
    check(ws.extensions === (i < 3 ? 'permessage-deflate' : ''), `member ${i + 1}: ${ws.extensions}`);
  });
  console.log('ok - the extension is answered to those that offered it, and only to them');
  // Everyone has seen the last one come in: nothing else is on its way.
  for (const ws of members) await until(ws, (m) => m.includes('user4 comes in'), 'user4 comes in');
  check((await ask('connected')) === 'ok', 'the server counts three deflate connections');
  members[0].send(LINE);
  let length = 0;
  for (const [i, ws] of members.entries()) {
    const got = await until(ws, (m) => m.includes('user1:'), `member ${i + 1} reads the line`);
    const m = JSON.parse(got);
    check(m.type === 'message' && m.data === `user1:${LINE}`, `member ${i + 1} read ${got.length} bytes, not the line`);
    length = Buffer.byteLength(got);
  }
  console.log('ok - a compressed line is broadcast and read by every member as it was sent');
  console.log(`ask broadcast ${length}`);
  check((await line()) === 'ok', 'the server compressed the broadcast once');
  await Promise.all(members.map((ws) => new Promise((resolve) => {
    ws.once('close', resolve);
    ws.close(1000);
  })));
  console.log('deflate chat works');
}

async function sio() {
  // Three members of one room: the broadcast is compressed once per worker
  // thread of the server, not once per member.
  const members = [];
  for (let i = 0; i < 3; i++) {
    const s = io(`http://${addr}/chat`, {
      forceNew: true,
      transports: ['websocket'],
      reconnection: false,
      perMessageDeflate: { threshold: 0 },
    });
    s.got = [];
    s.wake = () => {};
    s.on('message', (m) => {
      s.got.push(m);
      s.wake();
    });
    await within(new Promise((resolve, reject) => {
      s.once('connect', resolve);
      s.once('connect_error', reject);
    }), 'connect');
    // What `ws` (socket.io-client's WebSocket in Node) agreed to.
    const agreed = s.io.engine.transport.ws._extensions['permessage-deflate'];
    check(agreed, `no deflate: ${s.io.engine.transport.ws.extensions}`);
    const params = JSON.stringify(agreed.params);
    check(params === '{"server_no_context_takeover":true,"client_no_context_takeover":true}', `agreed ${params}`);
    members.push(s);
  }
  console.log('ok - socket.io over WebSocket negotiates deflate');
  check((await ask('connected')) === 'ok', 'the server counts three socket.io deflate connections');
  members[0].emit('message', LINE);
  for (const [i, s] of members.entries()) {
    await within(new Promise((resolve) => {
      s.wake = () => s.got.some((m) => String(m).endsWith(LINE)) && resolve();
      s.wake();
    }), `member ${i + 1} reads the line`);
    check(s.got.some((m) => m === `user1:${LINE}`), `read ${JSON.stringify(s.got).slice(0, 200)}`);
  }
  console.log('ok - a compressed event is broadcast and read by every member as it was sent');
  check((await ask('sent')) === 'ok', 'the server inflated it and compressed the broadcast once per thread');
  for (const s of members) s.close();
  console.log('deflate sio works');
}

async function takeover() {
  const ws = new WebSocket(`ws://${addr}/echo`, { perMessageDeflate: { threshold: 0 } });
  ws.answer = '';
  ws.on('upgrade', (res) => {
    ws.answer = res.headers['sec-websocket-extensions'] ?? '';
  });
  const got = [];
  let wake = () => {};
  ws.on('message', (data) => {
    got.push(data.toString());
    wake();
  });
  await within(new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  }), 'open');
  check(ws.answer === 'permessage-deflate; server_no_context_takeover', `answered ${JSON.stringify(ws.answer)}`);
  console.log('ok - the server lets the client take its context over');
  for (let i = 1; i <= 5; i++) {
    const line = `${i}: ${LINE}`;
    ws.send(line);
    await within(new Promise((resolve) => {
      wake = () => got.length >= i && resolve();
      wake();
    }), `echo ${i}`);
    check(got[i - 1] === line, `echo ${i}: ${got[i - 1].length} bytes, not the line`);
  }
  console.log('ok - five lines, each compressed with the ones before it, echoed as sent');
  check((await ask('takeover')) === 'ok', 'the server reserved the inflater');
  await new Promise((resolve) => {
    ws.once('close', resolve);
    ws.close(1000);
  });
  console.log('deflate takeover works');
}

const scenarios = { chat, sio, takeover };
try {
  check(scenarios[scenario], `unknown scenario ${scenario}`);
  await scenarios[scenario]();
  process.exit(0);
} catch (e) {
  console.log(`FAILED - ${scenario}: ${e.message}`);
  process.exit(1);
}
