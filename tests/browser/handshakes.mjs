// What Chromium saw of a page's WebSocket handshakes: each answer's
// `Sec-WebSocket-Extensions` (was permessage-deflate agreed?), read through
// the DevTools protocol. Shared by seed_pages.mjs, seed_socketio.mjs and
// web_client.mjs.

export const AGREED = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';

// From now on, `page.extensions` lists each handshake's answer, in order.
export async function recordExtensions(page) {
  page.extensions = [];
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  cdp.on('Network.webSocketHandshakeResponseReceived', (e) => {
    const h = e.response.headers;
    page.extensions.push(h['Sec-WebSocket-Extensions'] ?? h['sec-websocket-extensions'] ?? '');
  });
}

// Throws unless every handshake of `page` (at least one) agreed deflate.
export function negotiated(page, name) {
  if (page.extensions.length < 1 || page.extensions.some((x) => x !== AGREED)) {
    throw new Error(`${name}: ${JSON.stringify(page.extensions)}`);
  }
}
