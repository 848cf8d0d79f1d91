// The connection: open, reconnect with backoff, token refresh, commands and
// their answers, events to rooms.
import { backoffDelay } from './backoff.js';
import { Emitter } from './emitter.js';
import { RoomcastError } from './errors.js';
import { Room } from './room.js';
import { refreshDelay, tokenExpiry } from './token.js';
/** Close codes after which reconnecting would not help. */
const FINAL = new Set([1002, 1003, 1008, 4000]);
/** The server's code for an expired token. */
const TOKEN_EXPIRED = 4001;
export class Client extends Emitter {
    /** @internal Use `connect()`. */
    constructor(opts) {
        super();
        this.opts = opts;
        this.current = 'connecting';
        this.ws = null;
        this.rooms = new Map();
        this.pending = new Map();
        this.nextId = 1;
        this.attempt = 0;
        this.queued = 0;
        /** The last attempt ended before it opened (maybe a refused token). */
        this.refused = false;
        this.timers = { reconnect: undefined, stable: undefined, refresh: undefined };
        this.serverNick = null;
        this.onOnline = () => {
            if (this.current !== 'disconnected')
                return;
            clearTimeout(this.timers.reconnect);
            void this.open();
        };
        const Socket = opts.WebSocket ?? globalThis.WebSocket;
        if (!Socket)
            throw new TypeError('no WebSocket here: pass one as the `WebSocket` option (e.g. from the ws package)');
        this.Socket = Socket;
        this.token = opts.token;
        this.wantNick = opts.nick;
        const client = this;
        this.link = {
            command: (cmd, answer, lost) => this.command(cmd, answer, lost),
            reserve: () => {
                if (client.queued >= (opts.queue?.max ?? 100))
                    return false;
                client.queued += 1;
                return true;
            },
            release: () => {
                client.queued -= 1;
            },
            queueTimeout: opts.queue?.timeout ?? 30000,
            historyOnResumeFailure: opts.historyOnResumeFailure ?? 50,
        };
        // A browser that says the network is back: retry at once, not after
        // the backoff's delay.
        const events = globalThis;
        if (typeof events.addEventListener === 'function')
            events.addEventListener('online', this.onOnline);
        void this.open();
    }
    /** The connection's state. */
    get state() {
        return this.current;
    }
    /** The nickname the server gave this connection (after `connected`). */
    get nick() {
        return this.serverNick;
    }
    /** A room (`route/room`), joined now or as soon as the connection is up,
     * and re-joined, resuming, after every reconnect. */
    room(name) {
        let room = this.rooms.get(name);
        if (!room) {
            room = new Room(name, this.link, (r) => {
                if (this.rooms.get(name) === r)
                    this.rooms.delete(name);
            });
            this.rooms.set(name, room);
            if (this.current === 'connected')
                room.join();
        }
        return room;
    }
    /** Ask for a new nickname (kept across reconnects): the server's answer. */
    setNick(nick) {
        this.wantNick = nick;
        return new Promise((resolve, reject) => {
            const sent = this.command({ type: 'nick', nick }, (ev) => {
                if (ev.type === 'error')
                    reject(new RoomcastError(String(ev.code), String(ev.reason)));
                else if (ev.type === 'nick')
                    resolve(this.named(ev));
                else
                    return false;
                return true;
            }, () => reject(new RoomcastError('connection_lost', 'the connection dropped before the answer')));
            if (!sent)
                reject(new RoomcastError('disconnected', 'not connected (the nickname is asked for on reconnect)'));
        });
    }
    /** Close for good: rooms are left, waiting publishes rejected. */
    close() {
        this.end(1000, 'closed by the client');
        this.ws?.close(1000, 'bye');
        this.ws = null;
    }
    // ---- the connection -------------------------------------------------------
    async open() {
        if (this.current === 'closed')
            return;
        this.setState({ state: 'connecting' });
        const token = await this.tokenFor().catch((e) => {
            this.emit('error', new RoomcastError('token_unavailable', String(e instanceof Error ? e.message : e)));
            return null;
        });
        // `close()` may have been called while the token was fetched.
        if (this.closedForGood())
            return;
        if (token === null) {
            this.scheduleReconnect(0, 'no token');
            return;
        }
        let url = this.opts.url;
        if (token) {
            const u = new URL(url);
            u.searchParams.set('token', token);
            url = u.toString();
        }
        let ws;
        try {
            ws = new this.Socket(url, 'roomcast.v1');
        }
        catch (e) {
            this.end(0, `cannot open a WebSocket: ${e instanceof Error ? e.message : String(e)}`);
            return;
        }
        this.ws = ws;
        let opened = false;
        ws.onopen = () => {
            if (this.ws !== ws)
                return;
            if (ws.protocol !== 'roomcast.v1') {
                this.end(0, 'the server does not speak roomcast.v1');
                ws.close(1000, 'wrong protocol');
                return;
            }
            opened = true;
            this.refused = false;
            this.opened(token);
        };
        ws.onmessage = (e) => {
            if (this.ws !== ws)
                return;
            let ev;
            try {
                ev = JSON.parse(String(e.data));
            }
            catch {
                this.emit('error', new RoomcastError('bad_frame', 'the server sent something that is not JSON'));
                return;
            }
            this.dispatch(ev);
        };
        ws.onerror = () => { };
        ws.onclose = (e) => {
            if (this.ws !== ws)
                return;
            this.ws = null;
            this.closed(e.code, e.reason, opened);
        };
    }
    /** The token for the next connection: a fresh one when the last is
     * missing, about to expire, refused, or the last attempt never opened. */
    async tokenFor() {
        const get = this.opts.getToken;
        if (!get)
            return this.token;
        const exp = this.token ? tokenExpiry(this.token) : null;
        const stale = !this.token || this.refused || (exp !== null && exp * 1000 - Date.now() < 5000);
        if (stale)
            this.token = await get();
        return this.token;
    }
    opened(token) {
        this.setState({ state: 'connected' });
        const stableAfter = this.opts.reconnect?.stableAfter ?? 10000;
        this.timers.stable = setTimeout(() => {
            this.attempt = 0;
        }, stableAfter);
        // The nickname first: the join announcements use it.
        if (this.wantNick !== undefined) {
            this.command({ type: 'nick', nick: this.wantNick }, (ev) => {
                if (ev.type === 'error')
                    this.emit('error', new RoomcastError(String(ev.code), String(ev.reason)));
                else if (ev.type === 'nick')
                    this.named(ev);
                else
                    return false;
                return true;
            }, () => { });
        }
        for (const room of this.rooms.values())
            room.join();
        this.scheduleRefresh(token);
    }
    closed(code, reason, opened) {
        this.clearTimers();
        for (const p of [...this.pending.values()])
            p.lost();
        this.pending.clear();
        for (const room of this.rooms.values())
            room.lost();
        if (this.current === 'closed')
            return;
        if (!opened)
            this.refused = true;
        if (code === TOKEN_EXPIRED) {
            if (!this.opts.getToken)
                return this.end(code, reason || 'token expired');
            this.refused = true;
        }
        if (FINAL.has(code))
            return this.end(code, reason);
        this.scheduleReconnect(code, reason);
    }
    scheduleReconnect(code, reason) {
        const min = this.opts.reconnect?.minDelay ?? 500;
        const max = this.opts.reconnect?.maxDelay ?? 15000;
        const delay = backoffDelay(this.attempt, min, max);
        this.attempt += 1;
        this.setState({ state: 'disconnected', code, reason, delay });
        this.timers.reconnect = setTimeout(() => void this.open(), delay);
    }
    end(code, reason) {
        if (this.current === 'closed')
            return;
        this.clearTimers();
        const events = globalThis;
        if (typeof events.removeEventListener === 'function')
            events.removeEventListener('online', this.onOnline);
        this.current = 'closed';
        for (const p of [...this.pending.values()])
            p.lost();
        this.pending.clear();
        for (const room of [...this.rooms.values()])
            room.finish('left', new RoomcastError('closed', reason || 'closed'));
        this.emit('state', { state: 'closed', code, reason });
    }
    closedForGood() {
        return this.current === 'closed';
    }
    clearTimers() {
        clearTimeout(this.timers.reconnect);
        clearTimeout(this.timers.stable);
        clearTimeout(this.timers.refresh);
    }
    setState(change) {
        this.current = change.state;
        this.emit('state', change);
    }
    // ---- tokens -----------------------------------------------------------------
    /** Before `token` expires, get a new one and hand it to the server. */
    scheduleRefresh(token) {
        clearTimeout(this.timers.refresh);
        if (!token || !this.opts.getToken)
            return;
        const exp = tokenExpiry(token);
        if (exp === null)
            return;
        const delay = refreshDelay(exp, Date.now(), this.opts.tokenMargin ?? 30000);
        this.timers.refresh = setTimeout(() => void this.refresh(exp), delay);
    }
    async refresh(exp) {
        const getToken = this.opts.getToken;
        if (!getToken || this.current !== 'connected')
            return;
        let fresh;
        try {
            fresh = await getToken();
        }
        catch (e) {
            this.emit('error', new RoomcastError('token_unavailable', String(e instanceof Error ? e.message : e)));
            return this.retryRefresh(exp);
        }
        const sent = this.command({ type: 'refresh', token: fresh }, (ev) => {
            if (ev.type === 'refreshed') {
                this.token = fresh;
                this.scheduleRefresh(fresh);
                this.emit('token', { exp: typeof ev.exp === 'number' ? ev.exp : null });
            }
            else if (ev.type === 'error') {
                this.emit('error', new RoomcastError(String(ev.code), String(ev.reason)));
                this.retryRefresh(exp);
            }
            else {
                return false;
            }
            return true;
        }, () => { });
        if (!sent)
            this.retryRefresh(exp);
    }
    /** Try again halfway to the expiry (the server closes with 4001 at it:
     * then the reconnect gets a fresh token). */
    retryRefresh(exp) {
        const left = exp * 1000 - Date.now();
        if (left < 1000 || this.current !== 'connected')
            return;
        this.timers.refresh = setTimeout(() => void this.refresh(exp), left / 2);
    }
    // ---- commands and events ----------------------------------------------------
    command(cmd, answer, lost) {
        const ws = this.ws;
        if (!ws || this.current !== 'connected' || ws.readyState !== 1)
            return false;
        const id = this.nextId++;
        this.pending.set(id, { answer, lost });
        ws.send(JSON.stringify({ ...cmd, id }));
        return true;
    }
    named(ev) {
        this.serverNick = String(ev.nick);
        this.emit('nick', this.serverNick);
        return this.serverNick;
    }
    dispatch(ev) {
        const room = typeof ev.room === 'string' ? this.rooms.get(ev.room) : undefined;
        switch (ev.type) {
            case 'message':
                room?.message(ev);
                return;
            case 'reset':
                room?.reset(ev);
                return;
            case 'join':
            case 'leave':
                room?.presenceChange(ev);
                return;
            case 'direct':
                this.emit('direct', { from: ev.from, data: ev.data });
                return;
            case 'reply':
                this.emit('reply', { room: typeof ev.room === 'string' ? ev.room : null, data: ev.data });
                break; // and to the publish it answers, if any
            default:
                break;
        }
        if (typeof ev.id === 'number') {
            const p = this.pending.get(ev.id);
            if (p && p.answer(ev))
                this.pending.delete(ev.id);
            return;
        }
        if (ev.type === 'error')
            this.emit('error', new RoomcastError(String(ev.code), String(ev.reason)));
    }
}
