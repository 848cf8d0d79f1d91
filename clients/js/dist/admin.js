// The operator view's client (docs/admin.md): the HTTP API's admin
// endpoints and actions, and the live socket that pushes the cluster's
// figures once a second. The page at /admin is built on it; scripts can
// use it too (Node 20: `fetch` is global; give `WebSocket` for `live()`).
//
//   import { Admin } from 'roomcast-client';
//   const admin = new Admin({ url: 'https://chat.example.com', key });
//   const live = admin.live();
//   live.on('update', (u) => console.log(u.nodes.length, 'nodes'));
//   await admin.disconnect({ conn: 42 });
import { backoffDelay } from './backoff.js';
import { Emitter } from './emitter.js';
import { RoomcastError } from './errors.js';
/** The HTTP API's key as a WebSocket subprotocol (browsers cannot set headers there). */
function bearerProtocol(key) {
    const bytes = new TextEncoder().encode(key);
    let bin = '';
    for (const b of bytes)
        bin += String.fromCharCode(b);
    return 'bearer.' + btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
export class Admin {
    constructor(opts) {
        this.opts = opts;
    }
    /** Call the API: its JSON answer, or a `RoomcastError` with the API's
     * code (`unauthorized` for a refused key, `no_room`, …). */
    async call(path, init) {
        // The global fetch is called as itself (a browser's refuses another `this`).
        const doFetch = this.opts.fetch ?? ((input, i) => globalThis.fetch(input, i));
        const headers = { Authorization: `Bearer ${this.opts.key}` };
        if (init?.body !== undefined)
            headers['Content-Type'] = 'application/json';
        const resp = await doFetch(this.opts.url + path, {
            method: init?.method ?? 'GET',
            headers,
            body: init?.body === undefined ? undefined : JSON.stringify(init.body),
        });
        let body = null;
        try {
            body = await resp.json();
        }
        catch {
            body = null;
        }
        if (!resp.ok) {
            const e = body?.error;
            throw new RoomcastError(e?.code ?? String(resp.status), e?.reason ?? resp.statusText);
        }
        return body;
    }
    /** Every node's figures and the cluster's top rooms, now. */
    overview() {
        return this.call('/api/admin/overview');
    }
    /** Rooms by name prefix on every node. */
    rooms(prefix, limit = 50) {
        return this.call(`/api/admin/rooms?prefix=${encodeURIComponent(prefix)}&limit=${limit}`);
    }
    /** A room's members on every node (`limit` from each node's `from`th), presence, history kept, rate. */
    room(name, from = 0, limit = 50) {
        return this.call(`/api/admin/room?room=${encodeURIComponent(name)}&from=${from}&limit=${limit}`);
    }
    /** The room's latest kept messages. */
    history(room, limit = 50) {
        return this.call(`/api/rooms/history?room=${encodeURIComponent(room)}&limit=${limit}`);
    }
    /** Publish `data` into `room` as the server: its offset. */
    publish(room, data) {
        return this.call('/api/publish', { method: 'POST', body: { room, data } });
    }
    /** Close a connection or every connection of a user (Close 4000): how many. */
    disconnect(target, reason) {
        return this.call('/api/disconnect', { method: 'POST', body: { ...target, reason } });
    }
    /** The live socket: `history` once, then an `update` each second;
     * reconnects with backoff (asking the API first whether the key still
     * stands) until `close()` or a refused key. */
    live() {
        return new Live(this);
    }
    /** @internal */
    socketUrl() {
        return this.opts.url.replace(/^http/, 'ws') + '/admin/live';
    }
    /** @internal */
    options() {
        return this.opts;
    }
}
export class Live extends Emitter {
    constructor(admin) {
        super();
        this.admin = admin;
        this.socket = null;
        this.attempt = 0;
        this.timer = null;
        this.current = 'connecting';
        this.open();
    }
    /** Where it is. */
    get state() {
        return this.current;
    }
    /** Stop for good. */
    close() {
        if (this.timer)
            clearTimeout(this.timer);
        const s = this.socket;
        this.socket = null;
        s?.close(1000);
        this.set('closed');
    }
    set(state) {
        if (this.current === state)
            return;
        this.current = state;
        this.emit('state', state);
    }
    open() {
        const opts = this.admin.options();
        const Ws = opts.WebSocket ?? globalThis.WebSocket;
        if (!Ws)
            throw new Error('no WebSocket: pass one as the WebSocket option');
        this.set('connecting');
        const ws = new Ws(this.admin.socketUrl(), ['roomcast.admin', bearerProtocol(opts.key)]);
        this.socket = ws;
        ws.onopen = () => {
            this.attempt = 0;
            this.set('live');
        };
        ws.onmessage = (ev) => {
            if (typeof ev.data !== 'string')
                return;
            const msg = JSON.parse(ev.data);
            if (msg.type === 'history')
                this.emit('history', msg);
            else if (msg.type === 'update')
                this.emit('update', { ...msg, bytes: ev.data.length });
        };
        ws.onerror = () => { };
        ws.onclose = () => {
            if (this.socket !== ws)
                return;
            this.socket = null;
            this.retry();
        };
    }
    retry() {
        if (this.current === 'closed')
            return;
        this.set('reconnecting');
        const r = this.admin.options().reconnect;
        const delay = backoffDelay(this.attempt++, r?.minDelay ?? 500, r?.maxDelay ?? 10000);
        this.timer = setTimeout(() => {
            // A socket refused by its key only shows as a close: ask the API.
            this.admin.overview().then(() => {
                if (this.current !== 'closed')
                    this.open();
            }, (e) => {
                if (e instanceof RoomcastError && e.code === 'unauthorized') {
                    this.set('closed');
                    this.emit('unauthorized', e);
                }
                else
                    this.retry();
            });
        }, delay);
    }
}
