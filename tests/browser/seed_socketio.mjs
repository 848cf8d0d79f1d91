// The seed tutorial's socket.io page, unchanged but for its URL, with the
// socket.io-client 2.0.3 build beside it, in headless Chromium against a
// running roomcast: one page opened from a file (Origin: null), one served by
// a web server on another origin than roomcast's. Both poll first (with
// credentials, cross-origin), then upgrade to WebSocket.
//
//   node tests/browser/seed_socketio.mjs 127.0.0.1:PORT
//
// Exits non-zero (with the failing step) unless every check passes.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { negotiated, recordExtensions } from './handshakes.mjs';

const addr = process.argv[2];
if (!addr) {
  console.error('usage: seed_socketio.mjs HOST:PORT');
  process.exit(2);
}
const require = createRequire(import.meta.url);
const TIMEOUT = 15_000;

// The page beside the client library, as the seed has it.
const seed = readFileSync(new URL('./seed/socketio.html', import.meta.url), 'utf8');
const from = 'io("ws://localhost:3000/")';
if (!seed.includes(from)) throw new Error(`socketio.html does not contain ${from}`);
const dir = mkdtempSync(join(tmpdir(), 'roomcast-seed-sio-'));
writeFileSync(join(dir, 'socketio.html'), seed.replace(from, `io("ws://${addr}/")`));
copyFileSync(require.resolve('socket.io-client-2/dist/socket.io.js'), join(dir, 'socket.io.2.0.3.js'));

// Another origin: a static server for the same two files, on its own port.
const web = createServer((req, res) => {
  const name = req.url.split('?')[0].slice(1);
  if (name === 'favicon.ico') {
    res.writeHead(204).end();
    return;
  }
  if (!['socketio.html', 'socket.io.2.0.3.js'].includes(name)) {
    res.writeHead(404).end();
    return;
  }
  const type = name.endsWith('.js') ? 'text/javascript' : 'text/html; charset=utf-8';
  res.writeHead(200, { 'content-type': type }).end(readFileSync(join(dir, name)));
});
await new Promise((resolve) => web.listen(0, '127.0.0.1', resolve));
const other = `http://127.0.0.1:${web.address().port}`;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking'],
});
const problems = [];

// A page, with its WebSocket handshakes' answers recorded.
async function blank() {
  const p = await browser.newPage();
  p.setDefaultTimeout(TIMEOUT);
  await recordExtensions(p);
  return p;
}

async function open(url, name) {
  const p = await blank();
  p.on('pageerror', (e) => problems.push(`${name}: page error: ${e.message}`));
  p.on('console', (m) => {
    if (m.type() === 'error') problems.push(`${name}: console error: ${m.text()}`);
  });
  await p.goto(url);
  return p;
}

async function send(p, text) {
  await p.fill('#sendTxt', text);
  await p.click('#sendBtn');
}

// A chat line: a <div> appended to <body>, coloured by type as in the seed.
async function chatLine(p, text, color) {
  const line = p.locator('body > div', { hasText: text }).last();
  await line.waitFor();
  const got = await line.evaluate((e) => e.style.color);
  if (got !== color) throw new Error(`"${text}" is ${got || 'uncoloured'}, expected ${color || 'uncoloured'}`);
}

async function transport(p, name) {
  await p.waitForFunction((n) => window.socket && window.socket.io.engine.transport.name === n, name);
}

let step = 'start';
try {
  step = 'the page opened from a file connects and sees its own enter line in blue';
  const one = await open(pathToFileURL(join(dir, 'socketio.html')).href, 'file page');
  await chatLine(one, 'user1 comes in', 'blue');
  console.log(`ok - ${step}`);

  step = 'the page from another origin joins: both see user2 comes in, in blue';
  const two = await open(`${other}/socketio.html`, 'other-origin page');
  await chatLine(two, 'user2 comes in', 'blue');
  await chatLine(one, 'user2 comes in', 'blue');
  console.log(`ok - ${step}`);

  step = 'both pages upgraded from polling to WebSocket';
  await transport(one, 'websocket');
  await transport(two, 'websocket');
  console.log(`ok - ${step}`);

  step = 'a message reaches both pages, sender included';
  await send(two, 'hi');
  await chatLine(two, 'user2:hi', '');
  await chatLine(one, 'user2:hi', '');
  console.log(`ok - ${step}`);

  step = 'their WebSockets negotiated permessage-deflate, and a long line is read as sent';
  negotiated(one, 'file page');
  negotiated(two, 'other-origin page');
  const long = 'a line long enough to be compressed on its way, '.repeat(12).trim();
  await send(one, long);
  await chatLine(two, `user1:${long}`, '');
  await chatLine(one, `user1:${long}`, '');
  console.log(`ok - ${step}`);

  step = 'socket.io-client 4 in Chromium over WebSocket, compressed both ways';
  const four = await blank();
  four.on('pageerror', (e) => problems.push(`socket.io-client 4: page error: ${e.message}`));
  await four.setContent('<!doctype html><title>socket.io-client 4</title>');
  await four.addScriptTag({
    path: new URL('./node_modules/socket.io-client/dist/socket.io.min.js', import.meta.url).pathname,
  });
  const echoed = await four.evaluate(([url, text]) => new Promise((resolve, reject) => {
    const s = io(url, { transports: ['websocket'], reconnection: false });
    s.on('connect_error', (e) => reject(new Error(`connect_error: ${e.message}`)));
    s.on('message', (m) => {
      if (typeof m === 'string' && m.endsWith(`:${text}`)) resolve(m);
    });
    s.on('connect', () => s.emit('message', text));
  }), [`http://${addr}/`, long]);
  if (!echoed.endsWith(`:${long}`)) throw new Error(`read ${echoed.slice(0, 80)}`);
  await chatLine(one, echoed, '');
  negotiated(four, 'socket.io-client 4');
  await four.close();
  console.log(`ok - ${step}`);

  step = 'closing a page shows its leave line in red';
  await two.close();
  await chatLine(one, 'user2 left', 'red');
  console.log(`ok - ${step}`);

  if (problems.length) throw new Error(problems.join('; '));
} catch (e) {
  console.error(`FAILED - ${step}: ${e.message}`);
  if (problems.length) console.error(problems.join('\n'));
  await browser.close();
  web.close();
  rmSync(dir, { recursive: true, force: true });
  process.exit(1);
}
await browser.close();
web.close();
rmSync(dir, { recursive: true, force: true });
console.log('the socket.io seed page works');
