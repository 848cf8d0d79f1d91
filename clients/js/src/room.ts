// One room of a client: its position for resume, deduplication by offset,
// and publishes that wait while the connection is down.

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
  resume_failed: { reason: string };
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

interface Queued {
  data: unknown;
  resolve: (v: { offset: number | null }) => void;
  reject: (e: RoomcastError) => void;
  timer: ReturnType<typeof setTimeout>;
}

export class Room<T = unknown> extends Emitter<RoomEvents<T>> {
  readonly name: string;
  private current: RoomState = 'joining';
  private pos: Position | null = null;
  private queue: Queued[] = [];

  /** @internal */
  constructor(
    name: string,
    private readonly link: Link,
    private readonly forget: (room: Room<T>) => void,
  ) {
    super();
    this.name = name;
  }

  get state(): RoomState {
    return this.current;
  }

  /** Where the client is in the room's stream: what a reconnect resumes from. */
  get position(): Position | null {
    return this.pos ? { ...this.pos } : null;
  }

  /** Publish `data` (any JSON) into the room: resolved with its offset once
   * the room has taken it (`null` if the script answered without publishing,
   * or a cluster node could not store it), rejected with the server's code.
   * While disconnected it waits (bounded) and is sent after the re-join. */
  publish(data: T | unknown): Promise<{ offset: number | null }> {
    return new Promise((resolve, reject) => {
      if (this.current === 'left' || this.current === 'failed') {
        reject(new RoomcastError('closed', `not in ${this.name} (${this.current})`));
        return;
      }
      if (this.current === 'joined' && this.queue.length === 0 && this.send(data, resolve, reject)) return;
      if (!this.link.reserve()) {
        reject(new RoomcastError('queue_full', 'too many publishes are waiting for the connection'));
        return;
      }
      const item: Queued = {
        data,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.queue = this.queue.filter((q) => q !== item);
          this.link.release();
          reject(new RoomcastError('timeout', `not connected within ${this.link.queueTimeout} ms`));
        }, this.link.queueTimeout),
      };
      this.queue.push(item);
    });
  }

  /** The room's recent messages (oldest first). */
  history(opts: { since?: number; limit?: number } = {}): Promise<Message<T>[]> {
    return this.ask({ type: 'history', room: this.name, ...opts }, 'history').then(
      (ev) => (ev.messages as Message<T>[]) ?? [],
    );
  }

  /** Who is in the room now. */
  presence(): Promise<Member[]> {
    return this.ask({ type: 'presence', room: this.name }, 'presence').then((ev) => (ev.members as Member[]) ?? []);
  }

  /** Leave the room: no more events, no re-join on reconnect. */
  leave(): Promise<void> {
    if (this.current === 'left' || this.current === 'failed') return Promise.resolve();
    this.finish('left', new RoomcastError('closed', `left ${this.name}`));
    return new Promise((resolve) => {
      const sent = this.link.command({ type: 'leave', room: this.name }, (ev) => {
        resolve();
        return ev.type === 'left' || ev.type === 'error';
      }, resolve);
      if (!sent) resolve();
    });
  }

  private ask(cmd: Record<string, unknown>, type: string): Promise<WireEvent> {
    return new Promise((resolve, reject) => {
      if (this.current !== 'joined') {
        reject(new RoomcastError('not_member', `${this.name} is ${this.current}`));
        return;
      }
      const sent = this.link.command(
        cmd,
        (ev) => {
          if (ev.type === 'error') reject(new RoomcastError(String(ev.code), String(ev.reason)));
          else if (ev.type === type) resolve(ev);
          else return false;
          return true;
        },
        () => reject(new RoomcastError('connection_lost', 'the connection dropped before the answer')),
      );
      if (!sent) reject(new RoomcastError('disconnected', 'not connected'));
    });
  }

  private send(
    data: unknown,
    resolve: (v: { offset: number | null }) => void,
    reject: (e: RoomcastError) => void,
  ): boolean {
    return this.link.command(
      { type: 'publish', room: this.name, data },
      (ev) => {
        if (ev.type === 'ack') resolve({ offset: typeof ev.offset === 'number' ? ev.offset : null });
        else if (ev.type === 'error') reject(new RoomcastError(String(ev.code), String(ev.reason)));
        else return false; // a `reply` to it: the ack follows
        return true;
      },
      () =>
        reject(
          new RoomcastError('connection_lost', 'the connection dropped before the server answered: it may or may not have been published'),
        ),
    );
  }

  // ---- driven by the client ----------------------------------------------

  /** @internal The connection is up: (re)join, resuming from the position. */
  join(): void {
    if (this.current === 'left' || this.current === 'failed') return;
    this.setState('joining');
    const resuming = this.pos !== null;
    const cmd: Record<string, unknown> = { type: 'join', room: this.name };
    if (this.pos) cmd.since = { epoch: this.pos.epoch, offset: this.pos.offset };
    let failure: string | null = null;
    this.link.command(
      cmd,
      (ev) => {
        // Left while the join was on its way: its answer changes nothing.
        if (this.current === 'left') return ev.type === 'joined' || ev.type === 'error';
        if (ev.type === 'error' && ev.code === 'resume_failed') {
          failure = String(ev.reason);
          return false; // `joined` follows
        }
        if (ev.type === 'error') {
          const err = new RoomcastError(String(ev.code), String(ev.reason));
          this.finish('failed', err);
          this.emit('error', err);
          return true;
        }
        if (ev.type !== 'joined') return false;
        this.joined(ev, resuming, failure);
        return true;
      },
      () => {},
    );
  }

  private joined(ev: WireEvent, resuming: boolean, failure: string | null): void {
    const epoch = String(ev.epoch);
    const offset = Number(ev.offset);
    if (!ev.resumed || !this.pos || this.pos.epoch !== epoch) {
      // From now on; what came before is history.
      this.pos = { epoch, offset };
    }
    this.setState('joined');
    if (resuming && !ev.resumed) {
      this.emit('resume_failed', { reason: failure ?? 'not resumed' });
      const limit = this.link.historyOnResumeFailure;
      if (limit > 0) {
        this.history({ limit }).then(
          (messages) => this.emit('history', messages),
          () => {},
        );
      }
    }
    this.flush();
  }

  private flush(): void {
    while (this.queue.length > 0 && this.current === 'joined') {
      const item = this.queue[0];
      if (!this.send(item.data, item.resolve, item.reject)) return;
      this.queue.shift();
      clearTimeout(item.timer);
      this.link.release();
    }
  }

  /** @internal The connection dropped: join again when it is back. */
  lost(): void {
    if (this.current === 'joined') this.setState('joining');
  }

  /** @internal A `message` event of this room. */
  message(ev: WireEvent): void {
    const m = ev as unknown as Message<T> & { type?: string };
    if (typeof m.offset === 'number') {
      if (this.pos && m.offset <= this.pos.offset) return; // seen already
      if (this.pos) this.pos.offset = m.offset;
    }
    const { type: _type, ...message } = m;
    this.emit('message', message as Message<T>);
  }

  /** @internal A `reset` event: the room's stream began again. */
  reset(ev: WireEvent): void {
    this.pos = { epoch: String(ev.epoch), offset: Number(ev.offset) || 0 };
    this.emit('reset', { ...this.pos });
  }

  /** @internal A presence event. */
  presenceChange(ev: WireEvent): void {
    const member = ev.member as Member;
    if (ev.type === 'join') this.emit('join', member);
    else this.emit('leave', member);
  }

  /** @internal Done with this room: queued publishes are refused. */
  finish(state: RoomState, why: RoomcastError): void {
    for (const q of this.queue.splice(0)) {
      clearTimeout(q.timer);
      this.link.release();
      q.reject(why);
    }
    this.setState(state);
    if (state === 'left' || state === 'failed') this.forget(this);
  }

  private setState(state: RoomState): void {
    if (this.current === state) return;
    this.current = state;
    this.emit('state', state);
  }
}
