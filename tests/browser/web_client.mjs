// roomcast's own web client (GET /) in headless Chromium, against the real
// binary, which this script starts, stops and starts again.
//
//   node tests/browser/web_client.mjs path/to/roomcast [screenshot.png]
//
// Exits non-zero (naming the failing step) unless every check passes.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve as absolute } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';
import { negotiated, recordExtensions } from './handshakes.mjs';

const [binArg, screenshot] = process.argv.slice(2);
if (!binArg) {
  console.error('usage: web_client.mjs ROOMCAST_BINARY [SCREENSHOT.png]');
  process.exit(2);
}
const bin = absolute(binArg);

const TIMEOUT = 15_000;
// An empty working directory: no roomcast.toml is picked up, so the server
// runs on its embedded defaults, as `roomcast` with no flags would.
const cwd = mkdtempSync(join(tmpdir(), 'roomcast-web-'));
let server = null;

// Start roomcast on `listen` and resolve with the address it reports.
function start(listen) {
  const env = { ...process.env, RUST_LOG: 'info' };
  delete env.ROOMCAST_CONFIG;
  const child = spawn(bin, ['--listen', listen], { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
  server = child;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not report its address')), TIMEOUT);
    const lines = createInterface({ input: child.stderr });
    lines.on('line', (l) => {
      const m = /listening on http:\/\/(\S+)/.exec(l);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('error', (e) => reject(new Error(`cannot start ${bin}: ${e.message}`)));
    child.on('exit', (code) => reject(new Error(`server exited (${code}) before listening`)));
  });
}

// The pages talk to a TCP proxy that holds one port for the whole run and
// forwards to whichever server is up, so a restarted server (on a fresh port
// of its own) is found at the same address, and no other test can take that
// address while the server is down. While it is down, connections are cut
// at once, as a stopped server's refused connections would be.
let backend = null; // host:port of the running server, or null
const piped = new Set(); // the pages' live connections, to cut
const proxy = createServer((client) => {
  if (!backend) {
    client.destroy();
    return;
  }
  piped.add(client);
  client.on('close', () => piped.delete(client));
  const [host, port] = backend.split(':');
  const upstream = connect({ host, port: Number(port) });
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  client.pipe(upstream);
  upstream.pipe(client);
  for (const s of [client, upstream]) {
    s.on('error', end);
    s.on('close', end);
  }
});
await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
const front = `127.0.0.1:${proxy.address().port}`;

// SIGTERM (a graceful stop: clients get 1001) and wait for the exit.
function stop() {
  backend = null;
  const child = server;
  server = null;
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.on('exit', resolve);
    child.kill('SIGTERM');
  });
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking'],
});

const problems = []; // page errors and dialogs: any is a failure

async function open(addr, name) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 680 } });
  const p = await context.newPage();
  p.setDefaultTimeout(TIMEOUT);
  p.on('pageerror', (e) => problems.push(`${name}: page error: ${e.message}`));
  p.on('dialog', (d) => {
    problems.push(`${name}: a ${d.type()} dialog opened: ${d.message()}`);
    d.dismiss();
  });
  p.on('console', (m) => {
    // Failed reconnect attempts while the server is down are expected.
    if (m.type() === 'error' && !/WebSocket connection to .* failed/.test(m.text())) {
      problems.push(`${name}: console error: ${m.text()}`);
    }
  });
  await recordExtensions(p);
  const resp = await p.goto(`http://${addr}/`);
  if (resp.status() !== 200) throw new Error(`GET / is ${resp.status()}`);
  return p;
}

async function enter(p, nick, room = 'lobby') {
  await p.fill('#nick', nick);
  await p.fill('#room', room);
  await p.click('#join');
  await state(p, 'online');
}

function state(p, want) {
  return p.waitForFunction((w) => document.getElementById('status').dataset.state === w, want);
}

async function say(p, text) {
  await p.fill('#text', text);
  await p.press('#text', 'Enter');
}

// A message line from `who` whose text is exactly `text`.
async function sees(p, who, text) {
  await p.waitForFunction(
    ([w, t]) => [...document.querySelectorAll('#messages li.message')].some(
      (li) => li.querySelector('.who').textContent === w && li.querySelector('.text').textContent === t,
    ),
    [who, text],
  );
}

// An enter or leave line, and that its colour is mostly blue or mostly red.
async function notice(p, kind, text) {
  const li = p.locator(`#messages li.${kind}`, { hasText: text }).last();
  await li.waitFor();
  const [r, g, b] = (await li.evaluate((e) => getComputedStyle(e).color)).match(/\d+/g).map(Number);
  const ok = kind === 'enter' ? b > r + 60 && b > g + 60 : r > g + 60 && r > b + 60;
  if (!ok) throw new Error(`"${text}" is rgb(${r}, ${g}, ${b}), not ${kind === 'enter' ? 'blue' : 'red'}`);
}

async function members(p, names) {
  await p.waitForFunction(
    (want) => [...document.querySelectorAll('#members li span:first-child')].map((e) => e.textContent).join(',') === want,
    names.join(','),
  );
}

let step = 'start';
try {
  step = 'the page is served by the binary';
  backend = await start('127.0.0.1:0');
  const addr = front;
  const ann = await open(addr, 'ann');
  const routes = await ann.$$eval('#route option', (os) => os.map((o) => o.value));
  if (routes.join(',') !== 'echo,shout,chat') throw new Error(`routes offered: ${routes}`);
  if ((await ann.inputValue('#route')) !== 'chat') throw new Error('chat is not preselected');
  console.log(`ok - ${step}`);

  step = 'joining shows the enter line in blue and the member list';
  await enter(ann, 'ann');
  await notice(ann, 'enter', 'ann comes in');
  await members(ann, ['ann']);
  const bob = await open(addr, 'bob');
  await enter(bob, 'bob');
  await notice(ann, 'enter', 'bob comes in');
  await members(ann, ['ann', 'bob']);
  await members(bob, ['ann', 'bob']);
  console.log(`ok - ${step}`);

  step = 'two pages chat with each other';
  await say(ann, 'hi bob, welcome to roomcast');
  await sees(bob, 'ann', 'hi bob, welcome to roomcast');
  await sees(ann, 'ann', 'hi bob, welcome to roomcast');
  await say(bob, 'thanks! the member list updates live');
  await sees(ann, 'bob', 'thanks! the member list updates live');
  console.log(`ok - ${step}`);

  step = 'the page negotiates permessage-deflate, and a long line is read as it was sent';
  negotiated(ann, 'ann');
  negotiated(bob, 'bob');
  const long = 'a line long enough to be compressed on its way, '.repeat(12).trim();
  await say(ann, long);
  await sees(bob, 'ann', long);
  console.log(`ok - ${step}`);

  step = 'leaving shows the leave line in red';
  const cat = await open(addr, 'cat');
  await enter(cat, 'cat');
  await members(ann, ['ann', 'bob', 'cat']);
  await cat.click('#leave');
  await notice(ann, 'leave', 'cat left');
  await members(ann, ['ann', 'bob']);
  if ((await cat.isVisible('#join-form')) !== true) throw new Error('leaving does not return to the form');
  console.log(`ok - ${step}`);

  step = 'markup in a message is shown as text and runs nothing';
  const evil = '<img src=x onerror=alert(1)>';
  await say(bob, evil);
  await sees(ann, 'bob', evil);
  await sees(bob, 'bob', evil);
  for (const p of [ann, bob]) {
    const imgs = await p.$$eval('#messages img', (e) => e.length);
    if (imgs !== 0) throw new Error(`${imgs} <img> elements were created`);
  }
  await say(ann, 'and that image tag stayed text');
  await sees(bob, 'ann', 'and that image tag stayed text');
  if (screenshot) await ann.screenshot({ path: screenshot });
  console.log(`ok - ${step}`);

  step = 'a cut connection (the server still up) resumes: nothing twice, nothing missing';
  for (const c of [...piped]) c.destroy();
  await Promise.all([state(ann, 'reconnecting'), state(bob, 'reconnecting')]);
  await Promise.all([state(ann, 'online'), state(bob, 'online')]);
  await say(bob, 'after the cut');
  await sees(ann, 'bob', 'after the cut');
  for (const p of [ann, bob]) {
    const copies = await p.$$eval('#messages li.message .text', (e) => e.filter((t) => t.textContent === 'and that image tag stayed text').length);
    if (copies !== 1) throw new Error(`a line shown ${copies} times after the resume`);
    const missing = await p.$$eval('#messages li.notice', (e) => e.filter((t) => /may be missing/.test(t.textContent)).length);
    if (missing !== 0) throw new Error('the resume failed after a cut');
  }
  console.log(`ok - ${step}`);

  step = 'a server restart shows reconnecting, then recovers';
  await stop();
  await Promise.all([state(ann, 'reconnecting'), state(bob, 'reconnecting')]);
  const shown = await ann.textContent('#status');
  if (!/^Reconnecting/.test(shown)) throw new Error(`status reads "${shown}"`);
  backend = await start('127.0.0.1:0'); // behind the same address: the pages reconnect to it
  await Promise.all([state(ann, 'online'), state(bob, 'online')]);
  await members(ann, ['ann', 'bob']);
  await say(bob, 'back after the restart');
  await sees(ann, 'bob', 'back after the restart');
  console.log(`ok - ${step}`);

  if (problems.length) throw new Error(problems.join('; '));
} catch (e) {
  console.error(`FAILED - ${step}: ${e.message}`);
  if (problems.length) console.error(problems.join('\n'));
  await browser.close();
  if (server) await stop();
  proxy.close();
  rmSync(cwd, { recursive: true, force: true });
  process.exit(1);
}
await browser.close();
await stop();
proxy.close();
rmSync(cwd, { recursive: true, force: true });
console.log('web client works');
