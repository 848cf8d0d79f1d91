// What the operator view's browser scripts (admin.mjs, admin_scale.mjs)
// share: Chromium launched as every test here launches it, and named
// steps — each prints `ok - STEP`; a failure prints `FAILED - STEP: why`
// and sets the exit code.
import { chromium } from 'playwright-core';

export function check(ok, why) {
  if (!ok) throw new Error(why);
}

export function launch() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking'],
  });
}

let current = 'start';

export async function run(step, body) {
  current = step;
  await body();
  console.log(`ok - ${step}`);
}

/** Report a failure of the step under way. */
export function failed(e) {
  console.log(`FAILED - ${current}: ${e.message}`);
  process.exitCode = 1;
}
