// The operator view (/admin) in headless Chromium, against two roomcast
// nodes over one redis-server that tests/admin.rs started, with raw and v1
// clients of the Rust test and two socket.io-client 4 connections of this
// script. The Rust test answers the `ask` lines (ask.mjs).
//
//   node tests/browser/admin.mjs HOST:PORT two-nodes
//
// Prints `ok - STEP` for each step and `operator view works` at the end; a
// failure prints `FAILED - STEP: why` and exits 1.
import { createRequire } from 'node:module';
import { ask } from './ask.mjs';
import { check, failed, launch, run } from './steps.mjs';

const require = createRequire(import.meta.url);
const { io } = require('socket.io-client');

const TIMEOUT = 20_000;
const problems = [];

const [a, b, key, shot] = (await ask('nodes')).split(' ');
const sockets = [];
const browser = await launch();

try {
  // --- the mixed load's socket.io part: two clients on node B -------------
  await run('two socket.io clients join chat/lobby on node B', async () => {
    for (const transports of [['websocket'], ['polling']]) {
      const s = io(`http://${b}/`, { reconnection: false, forceNew: true, transports });
      s.heard = [];
      s.onAny((name, ...args) => s.heard.push([name, ...args]));
      sockets.push(s);
      await new Promise((resolve, reject) => {
        s.once('connect', resolve);
        s.once('connect_error', reject);
      });
    }
  });

  await run('a wrong key is 401 and nothing else', async () => {
    const r = await fetch(`http://${a}/api/admin/overview`, { headers: { Authorization: 'Bearer not-the-key-at-all' } });
    check(r.status === 401, `status ${r.status}`);
    const body = await r.json();
    check(body.error.code === 'unauthorized' && !JSON.stringify(body).includes('node'), JSON.stringify(body));
    const none = await fetch(`http://${a}/api/admin/overview`);
    check(none.status === 401, `no key: ${none.status}`);
  });

  const context = await browser.newContext({ viewport: { width: 1400, height: 1200 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/401/.test(m.text())) problems.push(`console: ${m.text()}`); });
  page.on('dialog', (d) => d.accept());

  await run('the page asks for the key and refuses a wrong one', async () => {
    await page.goto(`http://${a}/admin`);
    await page.waitForSelector('#login:not([hidden])', { timeout: TIMEOUT });
    await page.fill('#key', 'a-wrong-key-0123456789');
    await page.click('#login-form button');
    await page.waitForFunction(() => /401/.test(document.getElementById('login-error').textContent), null, { timeout: TIMEOUT });
    check(await page.evaluate(() => sessionStorage.getItem('roomcast.admin.key')) === null, 'a refused key is not kept');
  });

  await run('with the key it lists both nodes and counts the load by wire', async () => {
    await page.fill('#key', key);
    await page.click('#login-form button');
    await page.waitForSelector('#main:not([hidden])', { timeout: TIMEOUT });
    await page.waitForFunction(() => document.querySelectorAll('#nodes tbody tr').length === 2, null, { timeout: TIMEOUT });
    // node A: 3 raw + 2 v1; node B: 2 raw (lobby, hot) + 2 socket.io.
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#nodes tbody tr')].map((r) => [...r.cells].map((c) => c.textContent));
      const want = [['5', '3 / 2 / 0', '5 / 0'], ['4', '2 / 0 / 2', '2 / 2']];
      return rows.length === 2 && want.every((w) => rows.some((r) => r[1] === 'up' && r[3] === w[0] && r[4] === w[1] && r[5] === w[2]));
    }, null, { timeout: TIMEOUT });
    const state = await page.textContent('#state');
    check(state === 'live', `state ${state}`);
  });

  await run('the top rooms: chat/lobby by members, then a room that becomes hot by rate', async () => {
    await page.waitForFunction(() => {
      const first = document.querySelector('#top-members tbody tr');
      return first && first.dataset.room === 'chat/lobby' && first.dataset.members === '6';
    }, null, { timeout: TIMEOUT });
    check((await ask('hot')) === 'hot', 'the room is hot');
    await page.waitForFunction(() => {
      const first = document.querySelector('#top-rate tbody tr');
      return first && first.dataset.room === 'chat/hot' && Number(first.cells[2].textContent) >= 5;
    }, null, { timeout: TIMEOUT });
    check((await ask('cool')) === 'cool', 'the room cooled');
  });

  await run('a search by prefix finds the room and opens its page', async () => {
    await page.fill('#prefix', 'chat/lo');
    await page.click('#search-form button');
    await page.waitForSelector('#search tbody tr[data-room="chat/lobby"]', { timeout: TIMEOUT });
    await page.click('#search tbody tr[data-room="chat/lobby"] a');
    await page.waitForSelector('#room:not([hidden])', { timeout: TIMEOUT });
    // Every node's members: 3 raw on A; 1 raw and 2 socket.io on B.
    await page.waitForFunction(() => document.querySelectorAll('#members tbody tr').length === 6, null, { timeout: TIMEOUT });
    const figures = await page.textContent('#room-figures');
    check(/6 members on 2 nodes/.test(figures) && /6 in presence/.test(figures), figures);
    const wires = await page.$$eval('#members tbody tr', (rows) => rows.map((r) => r.cells[2].textContent).sort().join(' '));
    check(wires === 'raw raw raw raw socketio socketio', wires);
  });

  await run('disconnecting a member on the other node closes exactly that connection', async () => {
    const nick = await ask('victim');
    const row = page.locator('#members tbody tr', { hasText: nick });
    check((await row.count()) === 1, `one row for ${nick}`);
    await row.locator('button').click();
    await page.waitForFunction(() => /1 connection\(s\) closed/.test(document.getElementById('status').textContent), null, { timeout: TIMEOUT });
    const answer = await ask('closed');
    check(answer === 'ok', answer);
    await page.click('#room-refresh');
    await page.waitForFunction(() => document.querySelectorAll('#members tbody tr').length === 5, null, { timeout: TIMEOUT });
    check((await page.locator('#members tbody tr', { hasText: nick }).count()) === 0, `${nick} is gone`);
  });

  await run('publishing from the page reaches the members on both nodes', async () => {
    await page.fill('#publish-data', 'hello from the operator');
    await page.click('#publish-form button');
    await page.waitForFunction(() => /published into chat\/lobby at offset \d+/.test(document.getElementById('status').textContent), null, { timeout: TIMEOUT });
    for (const s of sockets) {
      const deadline = Date.now() + TIMEOUT;
      while (!s.heard.some((h) => h.includes('hello from the operator'))) {
        check(Date.now() < deadline, `socket.io client heard ${JSON.stringify(s.heard)}`);
        let wake;
        await new Promise((r) => {
          wake = () => r();
          s.onAny(wake);
          setTimeout(r, deadline - Date.now());
        });
        s.offAny(wake);
      }
    }
    const answer = await ask('published');
    check(answer === 'ok', answer);
  });

  await run('the room history shows it', async () => {
    await page.click('#history-load');
    await page.waitForFunction(() => [...document.querySelectorAll('#history li')].some((li) => /server: hello from the operator/.test(li.textContent)), null, { timeout: TIMEOUT });
  });

  await run('a node that stops is shown as not heard from, the other goes on', async () => {
    check((await ask('stop b')) === 'stopped', 'node B stopped');
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#nodes tbody tr')].map((r) => r.cells[1].textContent);
      return rows.length === 2 && rows.filter((s) => s === 'up').length === 1 && rows.includes('not heard from');
    }, null, { timeout: TIMEOUT });
    check(await page.textContent('#state') === 'live', 'the view is still live');
  });

  await run('updates are small and quick to render', async () => {
    const s = await page.evaluate(() => window.roomcastAdmin);
    check(s.updates >= 3, `updates ${s.updates}`);
    check(s.maxUpdateBytes > 0 && s.maxUpdateBytes < 64 * 1024, `largest update ${s.maxUpdateBytes} B`);
    check(s.maxRenderMs < 200, `slowest render ${s.maxRenderMs} ms`);
    if (shot) await page.screenshot({ path: shot, fullPage: true });
    check(problems.length === 0, problems.join('; '));
  });

  console.log('operator view works');
} catch (e) {
  failed(e);
} finally {
  for (const s of sockets) s.close();
  await browser.close();
  process.exit(); // stdin (ask.mjs) would keep it alive
}
