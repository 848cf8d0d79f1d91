import { Emitter } from './emitter.js';
import { RoomcastError } from './errors.js';
import type { Member, Message, Position, WireEvent } from './types.js';
/** `joining` (asked, or waiting for a connection), `joined`, `left` (by
 * `leave()` or `close()`), `failed` (the server refused the join). */
export type RoomState = 'joining' | 'joined' | 'left' | 'failed';
export interface RoomEvents<T> {
    /** A message, once, in offset order (the replay after a reconnect first). */
    message: Message<T>;
    /** Someone came in (rooms with presence on). */
    join: Member;
    /** Someone left. */
    leave: Member;
    state: RoomState;
    /** A reconnect could not resume (`epoch changed`, `position too old`, …):
     * messages may have been missed. A `history` event follows unless
     * `historyOnResumeFailure` is 0. */
    resume_failed: {
        reason: string;
    };
    /** The recent past, fetched after a failed resume (oldest first). */
    history: Message<T>[];
    /** The room's history was lost on the server (a Redis that came back
     * empty): offsets start from 1 again in a new epoch. */
    reset: Position;
    /** The server refused to let this client in (`room_forbidden`, …). */
    error: RoomcastError;
}
/** What a room needs of its client. */
export interface Link {
    /** Send a command if connected; `answer` gets every event with its id
     * until it returns true, or `lost` if the connection drops first.
     * False if not connected. */
    command(cmd: Record<string, unknown>, answer: (ev: WireEvent) => boolean, lost: () => void): boolean;
    /** Whether a publish may wait (the client's queue bound): reserves a slot. */
    reserve(): boolean;
    /** A queued publish left the queue. */
    release(): void;
    readonly queueTimeout: number;
    readonly historyOnResumeFailure: number;
}
export declare class Room<T = unknown> extends Emitter<RoomEvents<T>> {
    private readonly link;
    private readonly forget;
    readonly name: string;
    private current;
    private pos;
    private queue;
    /** @internal */
    constructor(name: string, link: Link, forget: (room: Room<T>) => void);
    get state(): RoomState;
    /** Where the client is in the room's stream: what a reconnect resumes from. */
    get position(): Position | null;
    /** Publish `data` (any JSON) into the room: resolved with its offset once
     * the room has taken it (`null` if the script answered without publishing,
     * or a cluster node could not store it), rejected with the server's code.
     * While disconnected it waits (bounded) and is sent after the re-join. */
    publish(data: T | unknown): Promise<{
        offset: number | null;
    }>;
    /** The room's recent messages (oldest first). */
    history(opts?: {
        since?: number;
        limit?: number;
    }): Promise<Message<T>[]>;
    /** Who is in the room now. */
    presence(): Promise<Member[]>;
    /** Leave the room: no more events, no re-join on reconnect. */
    leave(): Promise<void>;
    private ask;
    private send;
    /** @internal The connection is up: (re)join, resuming from the position. */
    join(): void;
    private joined;
    private flush;
    /** @internal The connection dropped: join again when it is back. */
    lost(): void;
    /** @internal A `message` event of this room. */
    message(ev: WireEvent): void;
    /** @internal A `reset` event: the room's stream began again. */
    reset(ev: WireEvent): void;
    /** @internal A presence event. */
    presenceChange(ev: WireEvent): void;
    /** @internal Done with this room: queued publishes are refused. */
    finish(state: RoomState, why: RoomcastError): void;
    private setState;
}
