// An operator view left open, for benches/compare.sh's admin-fanout case,
// until stdin closes; then prints what it saw as `view {...}`.
//
//   node benches/admin_view.mjs HOST:PORT KEY page     # headless Chromium on /admin
//   node benches/admin_view.mjs HOST:PORT KEY socket   # only its live socket (the
//                                                      # server's side of a view, no browser)
//
// `page` uses playwright-core from tests/browser and reports what the page
// measured (updates, render times, update sizes); `socket` uses `ws` from
// benches/peers and reports updates and bytes.
import { createRequire } from 'node:module';

const [addr, key, mode = 'page'] = process.argv.slice(2);
const untilStdinEnds = () => new Promise((resolve) => {
  process.stdin.on('end', resolve);
  process.stdin.resume();
});

if (mode === 'socket') {
  const WebSocket = createRequire(new URL('./peers/package.json', import.meta.url))('ws');
  const b64 = Buffer.from(key).toString('base64url');
  const ws = new WebSocket(`ws://${addr}/admin/live`, ['roomcast.admin', `bearer.${b64}`]);
  const figures = { updates: 0, maxUpdateBytes: 0 };
  let first = true;
  ws.on('message', (data) => {
    if (first) { first = false; return; } // the history
    figures.updates += 1;
    figures.maxUpdateBytes = Math.max(figures.maxUpdateBytes, data.length);
    if (figures.updates === 1) console.log('viewing');
  });
  ws.on('error', (e) => { console.log(`error ${e.message}`); process.exit(1); });
  await untilStdinEnds();
  console.log(`view ${JSON.stringify(figures)}`);
  ws.close();
  process.exit(0);
}

const require = createRequire(new URL('../tests/browser/package.json', import.meta.url));
const { chromium } = require('playwright-core');
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking'],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
await page.goto(`http://${addr}/admin`);
await page.evaluate((k) => sessionStorage.setItem('roomcast.admin.key', k), key);
await page.reload();
await page.waitForFunction(() => window.roomcastAdmin && window.roomcastAdmin.updates > 0, null, { timeout: 30_000 });
console.log('viewing');
await untilStdinEnds();
const figures = await page.evaluate(() => window.roomcastAdmin);
console.log(`view ${JSON.stringify(figures)}`);
await browser.close();
process.exit(0);
