// The seed tutorial's pages, unchanged but for their WebSocket URL, driven in
// headless Chromium against a running roomcast.
//
//   node tests/browser/seed_pages.mjs 127.0.0.1:PORT
//
// Exits non-zero (with the failing step) unless every check passes.
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { negotiated, recordExtensions } from './handshakes.mjs';

const addr = process.argv[2];
if (!addr) {
  console.error('usage: seed_pages.mjs HOST:PORT');
  process.exit(2);
}
const seed = (name) => readFileSync(new URL(`./seed/${name}`, import.meta.url), 'utf8');

// Only the URL changes: echo.websocket.org → /echo, the nodejs-websocket shout
// server → /shout, and the chat page keeps its bare "/" (roomcast's default route).
function page(name, from, to) {
  const html = seed(name);
  if (!html.includes(from)) throw new Error(`${name} does not contain ${from}`);
  return html.replace(from, to);
}
const pages = {
  echo: page('echo.html', 'ws://echo.websocket.org/', `ws://${addr}/echo`),
  shout: page('shout.html', 'ws://localhost:3000/', `ws://${addr}/shout`),
  chat: page('chat.html', 'ws://localhost:3000/', `ws://${addr}/`),
};

const TIMEOUT = 10_000;
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking'],
});

// A page, with its WebSocket handshakes' answers recorded.
async function open(html) {
  const p = await browser.newPage();
  p.setDefaultTimeout(TIMEOUT);
  await recordExtensions(p);
  await p.setContent(html);
  return p;
}

async function send(p, text) {
  await p.fill('#sendTxt', text);
  await p.click('#sendBtn');
}

async function recvIs(p, text) {
  await p.waitForFunction((t) => document.getElementById('recv').textContent === t, text);
}

// A chat line: a <div> appended to <body>, coloured by type as in the seed.
async function chatLine(p, text, color) {
  const line = p.locator('body > div', { hasText: text }).last();
  await line.waitFor();
  const got = await line.evaluate((e) => e.style.color);
  if (got !== color) throw new Error(`"${text}" is ${got || 'uncoloured'}, expected ${color || 'uncoloured'}`);
}

let step = 'start';
try {
  step = 'echo page echoes';
  const echo = await open(pages.echo);
  await recvIs(echo, 'connected');
  await send(echo, 'hello roomcast');
  await recvIs(echo, 'hello roomcast');
  // Long enough to be compressed both ways (Chromium compresses what it
  // sends; compression.threshold is 256).
  const long = 'hello roomcast, '.repeat(64);
  await send(echo, long);
  await recvIs(echo, long);
  console.log(`ok - ${step}`);

  step = 'shout page shouts';
  const shout = await open(pages.shout);
  await recvIs(shout, 'connected');
  await send(shout, 'hello roomcast');
  await recvIs(shout, 'HELLO ROOMCAST!!!');
  console.log(`ok - ${step}`);

  step = 'chat page: enter lines in blue';
  const one = await open(pages.chat);
  await chatLine(one, 'user1 comes in', 'blue');
  const two = await open(pages.chat);
  await chatLine(two, 'user2 comes in', 'blue');
  await chatLine(one, 'user2 comes in', 'blue');
  console.log(`ok - ${step}`);

  step = 'chat page: messages reach everyone, sender included';
  await send(two, 'hi from two');
  await chatLine(two, 'user2:hi from two', '');
  await chatLine(one, 'user2:hi from two', '');
  console.log(`ok - ${step}`);

  step = 'every page negotiated permessage-deflate';
  for (const [name, p] of [['echo', echo], ['shout', shout], ['chat', one], ['chat', two]]) {
    if (p.extensions.length !== 1) throw new Error(`${name}: ${p.extensions.length} handshakes`);
    negotiated(p, name);
  }
  console.log(`ok - ${step}`);

  step = 'chat page: leave line in red';
  await two.close();
  await chatLine(one, 'user2 left', 'red');
  console.log(`ok - ${step}`);
} catch (e) {
  console.error(`FAILED - ${step}: ${e.message}`);
  await browser.close();
  process.exit(1);
}
await browser.close();
console.log('all seed pages work');
