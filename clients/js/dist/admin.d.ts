import { Emitter } from './emitter.js';
import { RoomcastError } from './errors.js';
import type { Message, SocketConstructor } from './types.js';
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
    reconnect?: {
        minDelay?: number;
        maxDelay?: number;
    };
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
    wires: {
        raw: number;
        v1: number;
        socketio: number;
    };
    transports: {
        websocket: number;
        socketio: number;
    };
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
    members: {
        total: number;
        partial: boolean;
        by_node: {
            node: number;
            total: number;
            members: MemberEntry[];
        }[];
    };
    presence: {
        total: number;
        conns: number;
        members: {
            user: string | null;
            nick: string;
            conns: number;
        }[];
    };
    history: {
        epoch: string;
        kept: number;
        capped: boolean;
        latest_offset: number | null;
    } | null;
    rate: number | null;
}
/** `live()`'s state: `connecting`, `live`, `reconnecting` (it dropped: a
 * retry is scheduled), `closed` (`close()`, or the key was refused). */
export type LiveState = 'connecting' | 'live' | 'reconnecting' | 'closed';
export interface LiveEvents {
    state: LiveState;
    history: History;
    /** Each update, with its size in characters. */
    update: Update & {
        bytes: number;
    };
    /** The key was refused (401): the live socket stops. */
    unauthorized: RoomcastError;
}
export declare class Admin {
    private readonly opts;
    constructor(opts: AdminOptions);
    /** Call the API: its JSON answer, or a `RoomcastError` with the API's
     * code (`unauthorized` for a refused key, `no_room`, …). */
    call<T>(path: string, init?: {
        method?: string;
        body?: unknown;
    }): Promise<T>;
    /** Every node's figures and the cluster's top rooms, now. */
    overview(): Promise<Update>;
    /** Rooms by name prefix on every node. */
    rooms(prefix: string, limit?: number): Promise<{
        prefix: string;
        rooms: {
            room: string;
            members: number;
        }[];
        more: boolean;
        partial: boolean;
    }>;
    /** A room's members on every node (`limit` from each node's `from`th), presence, history kept, rate. */
    room(name: string, from?: number, limit?: number): Promise<RoomPage>;
    /** The room's latest kept messages. */
    history(room: string, limit?: number): Promise<{
        room: string;
        epoch: string;
        messages: Message[];
    }>;
    /** Publish `data` into `room` as the server: its offset. */
    publish(room: string, data: unknown): Promise<{
        room: string;
        offset: number;
    }>;
    /** Close a connection or every connection of a user (Close 4000): how many. */
    disconnect(target: {
        conn: number;
    } | {
        user: string;
    }, reason?: string): Promise<{
        disconnected: number;
    }>;
    /** The live socket: `history` once, then an `update` each second;
     * reconnects with backoff (asking the API first whether the key still
     * stands) until `close()` or a refused key. */
    live(): Live;
    /** @internal */
    socketUrl(): string;
    /** @internal */
    options(): AdminOptions;
}
export declare class Live extends Emitter<LiveEvents> {
    private readonly admin;
    private socket;
    private attempt;
    private timer;
    private current;
    constructor(admin: Admin);
    /** Where it is. */
    get state(): LiveState;
    /** Stop for good. */
    close(): void;
    private set;
    private open;
    private retry;
}
