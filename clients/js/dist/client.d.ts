import { Emitter } from './emitter.js';
import { RoomcastError } from './errors.js';
import { Room } from './room.js';
import type { Author, SocketConstructor } from './types.js';
/** `connecting` (a WebSocket is opening), `connected`, `disconnected` (it
 * dropped: a reconnect is scheduled), `closed` (for good: `close()`, or the
 * server said not to come back). */
export type ConnectionState = 'connecting' | 'connected' | 'disconnected' | 'closed';
export interface ConnectOptions {
    /** The server's WebSocket URL, e.g. `wss://chat.example.com/chat`. */
    url: string;
    /** A token (JWT), when it never needs renewing. */
    token?: string;
    /** Called for a token before each connection that needs one and before
     * the current one expires (the connection is refreshed, not cut). */
    getToken?: () => string | Promise<string>;
    /** The nickname to ask for (kept across reconnects). */
    nick?: string;
    /** A WebSocket constructor where there is no global one (e.g. `ws`). */
    WebSocket?: SocketConstructor;
    /** Reconnect delays: from `minDelay` (500 ms) doubling to `maxDelay`
     * (15 s), with jitter; back to `minDelay` once a connection has stayed up
     * for `stableAfter` (10 s). */
    reconnect?: {
        minDelay?: number;
        maxDelay?: number;
        stableAfter?: number;
    };
    /** Publishes made while disconnected: at most `max` (100) wait, each at
     * most `timeout` ms (30 s); beyond either they are rejected. */
    queue?: {
        max?: number;
        timeout?: number;
    };
    /** How many recent messages to fetch after a failed resume (50; 0: none). */
    historyOnResumeFailure?: number;
    /** Ask for a new token at most this long before the current one expires
     * (30 s; a third of its life for shorter tokens). */
    tokenMargin?: number;
}
export interface StateChange {
    state: ConnectionState;
    /** The close code and reason, when a connection ended. */
    code?: number;
    reason?: string;
    /** When `disconnected`: the reconnect delay, in ms. */
    delay?: number;
}
export interface ClientEvents {
    state: StateChange;
    /** A message to this connection alone. */
    direct: {
        from: Author;
        data: unknown;
    };
    /** A script's answer to one of this connection's messages. */
    reply: {
        room: string | null;
        data: unknown;
    };
    /** The server's nickname for this connection. */
    nick: string;
    /** A fresh token from `getToken` is now the connection's (refreshed on
     * the live connection): its expiry, in seconds since the Unix epoch. */
    token: {
        exp: number | null;
    };
    /** Something went wrong that no call is waiting for (a refused token
     * refresh, a refused nickname, an unreadable frame). */
    error: RoomcastError;
}
export declare class Client extends Emitter<ClientEvents> {
    private readonly opts;
    private current;
    private ws;
    private rooms;
    private pending;
    private nextId;
    private attempt;
    private queued;
    private token;
    /** The last attempt ended before it opened (maybe a refused token). */
    private refused;
    private timers;
    private wantNick;
    private serverNick;
    private readonly Socket;
    private readonly link;
    /** @internal Use `connect()`. */
    constructor(opts: ConnectOptions);
    private readonly onOnline;
    /** The connection's state. */
    get state(): ConnectionState;
    /** The nickname the server gave this connection (after `connected`). */
    get nick(): string | null;
    /** A room (`route/room`), joined now or as soon as the connection is up,
     * and re-joined, resuming, after every reconnect. */
    room<T = unknown>(name: string): Room<T>;
    /** Ask for a new nickname (kept across reconnects): the server's answer. */
    setNick(nick: string): Promise<string>;
    /** Close for good: rooms are left, waiting publishes rejected. */
    close(): void;
    private open;
    /** The token for the next connection: a fresh one when the last is
     * missing, about to expire, refused, or the last attempt never opened. */
    private tokenFor;
    private opened;
    private closed;
    private scheduleReconnect;
    private end;
    private closedForGood;
    private clearTimers;
    private setState;
    /** Before `token` expires, get a new one and hand it to the server. */
    private scheduleRefresh;
    private refresh;
    /** Try again halfway to the expiry (the server closes with 4001 at it:
     * then the reconnect gets a fresh token). */
    private retryRefresh;
    private command;
    private named;
    private dispatch;
}
