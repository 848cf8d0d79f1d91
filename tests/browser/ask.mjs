// The conversation with the Rust test that drives a script: `line()` is its
// next line on stdin; `ask(what)` prints `ask WHAT` and waits for the
// answer. Shared by socketio_clients.mjs, socketio_recovery.mjs and
// deflate_clients.mjs.
import { createInterface } from 'node:readline';

const waiting = [];
const early = [];
createInterface({ input: process.stdin }).on('line', (l) => {
  const w = waiting.shift();
  if (w) w(l);
  else early.push(l);
});

export const line = () => (early.length ? Promise.resolve(early.shift()) : new Promise((r) => waiting.push(r)));

export async function ask(what) {
  console.log(`ask ${what}`);
  return line();
}
