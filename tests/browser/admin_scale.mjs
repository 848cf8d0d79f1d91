// The operator view under load (tests/admin_scale.rs holds the load):
// the page shows every connection and the busy rooms in order, renders
// each update quickly, and its updates stay small. Prints its figures as
// `figures {...}` and `operator view at scale works` at the end.
import { ask } from './ask.mjs';
import { check, failed, launch, run } from './steps.mjs';

const TIMEOUT = 30_000;
const RENDER_MS = 200;
const UPDATE_BYTES = 64 * 1024;
const UPDATES = 8; // measured after the first


const [addr, key, shot, conns, busy] = (await ask('target')).split(' ');
const browser = await launch();
const problems = [];
try {
  const page = await (await browser.newContext({ viewport: { width: 1400, height: 1000 } })).newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  await page.goto(`http://${addr}/admin`);
  await page.evaluate((k) => sessionStorage.setItem('roomcast.admin.key', k), key);

  await run('the page opens on the loaded node', async () => {
    await page.reload();
    await page.waitForFunction((n) => {
      const row = document.querySelector('#nodes tbody tr');
      return row && row.dataset.conns === n;
    }, conns, { timeout: TIMEOUT });
  });

  await run('the top lists: 50 rooms by members, the busy rooms by rate in order', async () => {
    await page.waitForFunction((b) => {
      const members = document.querySelectorAll('#top-members tbody tr');
      const rate = [...document.querySelectorAll('#top-rate tbody tr')].map((r) => r.dataset.room);
      const want = Array.from({ length: Number(b) }, (_, i) => `chat/r${Number(b) - 1 - i}`);
      return members.length === 50 && [...members].every((r) => r.dataset.members === '10')
        && rate.length === want.length && rate.every((r, i) => r === want[i]);
    }, busy, { timeout: TIMEOUT });
  });

  let figures;
  await run(`${UPDATES} more updates, each rendered in under ${RENDER_MS} ms and under 64 KB`, async () => {
    const from = await page.evaluate(() => window.roomcastAdmin.updates);
    await page.waitForFunction((n) => window.roomcastAdmin.updates >= n, from + UPDATES, { timeout: TIMEOUT });
    figures = await page.evaluate(() => window.roomcastAdmin);
    console.log(`figures ${JSON.stringify(figures)}`);
    check(figures.firstRenderMs !== null && figures.firstRenderMs < RENDER_MS, `first render ${figures.firstRenderMs} ms`);
    check(figures.maxRenderMs < RENDER_MS, `slowest render ${figures.maxRenderMs} ms`);
    check(figures.maxUpdateBytes > 0 && figures.maxUpdateBytes < UPDATE_BYTES, `largest update ${figures.maxUpdateBytes} B`);
    await page.screenshot({ path: shot });
  });

  await run('a search and a room page answer at this size', async () => {
    await page.fill('#prefix', 'chat/r14');
    await page.click('#search-form button');
    await page.waitForSelector('#search tbody tr[data-room="chat/r14"]', { timeout: TIMEOUT });
    const more = await page.textContent('#search-more');
    check(/more rooms match/.test(more), more);
    await page.click('#search tbody tr[data-room="chat/r14"] a');
    await page.waitForFunction(() => document.querySelectorAll('#members tbody tr').length === 10, null, { timeout: TIMEOUT });
    check(problems.length === 0, problems.join('; '));
  });
  console.log('operator view at scale works');
} catch (e) {
  failed(e);
} finally {
  await browser.close();
  process.exit();
}
