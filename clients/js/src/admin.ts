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
import type { Message, SocketConstructor, SocketLike } from './types.js';

export interface AdminOptions {
  /** A node's base URL (`http://host:port`; the page passes its origin). */
  url: string;
  /** An API key: `api.key`, or one of `api.keys`. */
  key: string;
  /** `fetch` (default: the global one). */
  fetch?: typeof fetch;
  /** A WebSocket constructor for `live()` (default: the global one). */
  WebSocket?: SocketConstructor;
  /** Live socket reconnect delays (default 500 ms doubling to 10 s, with jitter). */
  reconnect?: { minDelay?: number; maxDelay?: number };
}

/** A room on a top list. */
export interface RoomFigure {
  room: string;
  members: number;
  /** Publications per second. */
  rate: number;
}

/** One node's figures now (rates per second). */
export interface NodeFigures {
  node: number;
  /** Heard from in the last 5 s. */
  up: boolean;
  up_since: number;
  seen: number;
  conns: number;
  wires: { raw: number; v1: number; socketio: number };
  transports: { websocket: number; socketio: number };
  rooms: number;
  msgs_in: number;
  msgs_out: number;
  deliveries: number;
  slow: number;
  slow_rate: number;
  broker_up: boolean;
  rss: number;
}

/** What the live socket pushes each second (and `overview()` answers). */
export interface Update {
  type: 'update';
  t: number;
  served_by: number;
  nodes: NodeFigures[];
  top_members: RoomFigure[];
  top_rate: RoomFigure[];
}

/** Each node's last five minutes, as columns. */
export interface History {
  type: 'history';
  every_ms: number;
  nodes: Record<string, Record<'t' | 'conns' | 'msgs_in' | 'msgs_out' | 'deliveries' | 'slow' | 'rss', number[]>>;
}

/** A member as a room's page lists it. */
export interface MemberEntry {
  conn: number;
  wire: 'raw' | 'v1' | 'socketio';
  nick: string;
  user: string | null;
}

/** A room's page (`room()`). */
export interface RoomPage {
  room: string;
  node: number;
  from: number;
  limit: number;
  members: { total: number; partial: boolean; by_node: { node: number; total: number; members: MemberEntry[] }[] };
  presence: { total: number; conns: number; members: { user: string | null; nick: string; conns: number }[] };
  history: { epoch: string; kept: number; capped: boolean; latest_offset: number | null } | null;
  rate: number | null;
}

/** `live()`'s state: `connecting`, `live`, `reconnecting` (it dropped: a
 * retry is scheduled), `closed` (`close()`, or the key was refused). */
export type LiveState = 'connecting' | 'live' | 'reconnecting' | 'closed';

export interface LiveEvents {
  state: LiveState;
  history: History;
  /** Each update, with its size in characters. */
  update: Update & { bytes: number };
  /** The key was refused (401): the live socket stops. */
  unauthorized: RoomcastError;
}

/** The HTTP API's key as a WebSocket subprotocol (browsers cannot set headers there). */
function bearerProtocol(key: string): string {
  const bytes = new TextEncoder().encode(key);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return 'bearer.' + btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export class Admin {
  private readonly opts: AdminOptions;

  constructor(opts: AdminOptions) {
    this.opts = opts;
  }

  /** Call the API: its JSON answer, or a `RoomcastError` with the API's
   * code (`unauthorized` for a refused key, `no_room`, …). */
  async call<T>(path: string, init?: { method?: string; body?: unknown }): Promise<T> {
    // The global fetch is called as itself (a browser's refuses another `this`).
    const doFetch = this.opts.fetch ?? ((input: string, i?: RequestInit) => globalThis.fetch(input, i));
    const headers: Record<string, string> = { Authorization: `Bearer ${this.opts.key}` };
    if (init?.body !== undefined) headers['Content-Type'] = 'application/json';
    const resp = await doFetch(this.opts.url + path, {
      method: init?.method ?? 'GET',
      headers,
      body: init?.body === undefined ? undefined : JSON.stringify(init.body),
    });
    let body: unknown = null;
    try {
      body = await resp.json();
    } catch {
      body = null;
    }
    if (!resp.ok) {
      const e = (body as { error?: { code: string; reason: string } } | null)?.error;
      throw new RoomcastError(e?.code ?? String(resp.status), e?.reason ?? resp.statusText);
    }
    return body as T;
  }

  /** Every node's figures and the cluster's top rooms, now. */
  overview(): Promise<Update> {
    return this.call('/api/admin/overview');
  }

  /** Rooms by name prefix on every node. */
  rooms(prefix: string, limit = 50): Promise<{ prefix: string; rooms: { room: string; members: number }[]; more: boolean; partial: boolean }> {
    return this.call(`/api/admin/rooms?prefix=${encodeURIComponent(prefix)}&limit=${limit}`);
  }

  /** A room's members on every node (`limit` from each node's `from`th), presence, history kept, rate. */
  room(name: string, from = 0, limit = 50): Promise<RoomPage> {
    return this.call(`/api/admin/room?room=${encodeURIComponent(name)}&from=${from}&limit=${limit}`);
  }

  /** The room's latest kept messages. */
  history(room: string, limit = 50): Promise<{ room: string; epoch: string; messages: Message[] }> {
    return this.call(`/api/rooms/history?room=${encodeURIComponent(room)}&limit=${limit}`);
  }

  /** Publish `data` into `room` as the server: its offset. */
  publish(room: string, data: unknown): Promise<{ room: string; offset: number }> {
    return this.call('/api/publish', { method: 'POST', body: { room, data } });
  }

  /** Close a connection or every connection of a user (Close 4000): how many. */
  disconnect(target: { conn: number } | { user: string }, reason?: string): Promise<{ disconnected: number }> {
    return this.call('/api/disconnect', { method: 'POST', body: { ...target, reason } });
  }

  /** The live socket: `history` once, then an `update` each second;
   * reconnects with backoff (asking the API first whether the key still
   * stands) until `close()` or a refused key. */
  live(): Live {
    return new Live(this);
  }

  /** @internal */
  socketUrl(): string {
    return this.opts.url.replace(/^http/, 'ws') + '/admin/live';
  }

  /** @internal */
  options(): AdminOptions {
    return this.opts;
  }
}

export class Live extends Emitter<LiveEvents> {
  private socket: SocketLike | null = null;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private current: LiveState = 'connecting';

  constructor(private readonly admin: Admin) {
    super();
    this.open();
  }

  /** Where it is. */
  get state(): LiveState {
    return this.current;
  }

  /** Stop for good. */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    const s = this.socket;
    this.socket = null;
    s?.close(1000);
    this.set('closed');
  }

  private set(state: LiveState): void {
    if (this.current === state) return;
    this.current = state;
    this.emit('state', state);
  }

  private open(): void {
    const opts = this.admin.options();
    const Ws = opts.WebSocket ?? (globalThis as { WebSocket?: SocketConstructor }).WebSocket;
    if (!Ws) throw new Error('no WebSocket: pass one as the WebSocket option');
    this.set('connecting');
    const ws = new Ws(this.admin.socketUrl(), ['roomcast.admin', bearerProtocol(opts.key)]);
    this.socket = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.set('live');
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string') return;
      const msg = JSON.parse(ev.data) as History | Update;
      if (msg.type === 'history') this.emit('history', msg);
      else if (msg.type === 'update') this.emit('update', { ...msg, bytes: ev.data.length });
    };
    ws.onerror = () => {};
    ws.onclose = () => {
      if (this.socket !== ws) return;
      this.socket = null;
      this.retry();
    };
  }

  private retry(): void {
    if (this.current === 'closed') return;
    this.set('reconnecting');
    const r = this.admin.options().reconnect;
    const delay = backoffDelay(this.attempt++, r?.minDelay ?? 500, r?.maxDelay ?? 10_000);
    this.timer = setTimeout(() => {
      // A socket refused by its key only shows as a close: ask the API.
      this.admin.overview().then(
        () => {
          if (this.current !== 'closed') this.open();
        },
        (e: unknown) => {
          if (e instanceof RoomcastError && e.code === 'unauthorized') {
            this.set('closed');
            this.emit('unauthorized', e);
          } else this.retry();
        },
      );
    }, delay);
  }
}
