// One room of a client: its position for resume, deduplication by offset,
// and publishes that wait while the connection is down.
import { Emitter } from './emitter.js';
import { RoomcastError } from './errors.js';
export class Room extends Emitter {
    /** @internal */
    constructor(name, link, forget) {
        super();
        this.link = link;
        this.forget = forget;
        this.current = 'joining';
        this.pos = null;
        this.queue = [];
        this.name = name;
    }
    get state() {
        return this.current;
    }
    /** Where the client is in the room's stream: what a reconnect resumes from. */
    get position() {
        return this.pos ? { ...this.pos } : null;
    }
    /** Publish `data` (any JSON) into the room: resolved with its offset once
     * the room has taken it (`null` if the script answered without publishing,
     * or a cluster node could not store it), rejected with the server's code.
     * While disconnected it waits (bounded) and is sent after the re-join. */
    publish(data) {
        return new Promise((resolve, reject) => {
            if (this.current === 'left' || this.current === 'failed') {
                reject(new RoomcastError('closed', `not in ${this.name} (${this.current})`));
                return;
            }
            if (this.current === 'joined' && this.queue.length === 0 && this.send(data, resolve, reject))
                return;
            if (!this.link.reserve()) {
                reject(new RoomcastError('queue_full', 'too many publishes are waiting for the connection'));
                return;
            }
            const item = {
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
    history(opts = {}) {
        return this.ask({ type: 'history', room: this.name, ...opts }, 'history').then((ev) => ev.messages ?? []);
    }
    /** Who is in the room now. */
    presence() {
        return this.ask({ type: 'presence', room: this.name }, 'presence').then((ev) => ev.members ?? []);
    }
    /** Leave the room: no more events, no re-join on reconnect. */
    leave() {
        if (this.current === 'left' || this.current === 'failed')
            return Promise.resolve();
        this.finish('left', new RoomcastError('closed', `left ${this.name}`));
        return new Promise((resolve) => {
            const sent = this.link.command({ type: 'leave', room: this.name }, (ev) => {
                resolve();
                return ev.type === 'left' || ev.type === 'error';
            }, resolve);
            if (!sent)
                resolve();
        });
    }
    ask(cmd, type) {
        return new Promise((resolve, reject) => {
            if (this.current !== 'joined') {
                reject(new RoomcastError('not_member', `${this.name} is ${this.current}`));
                return;
            }
            const sent = this.link.command(cmd, (ev) => {
                if (ev.type === 'error')
                    reject(new RoomcastError(String(ev.code), String(ev.reason)));
                else if (ev.type === type)
                    resolve(ev);
                else
                    return false;
                return true;
            }, () => reject(new RoomcastError('connection_lost', 'the connection dropped before the answer')));
            if (!sent)
                reject(new RoomcastError('disconnected', 'not connected'));
        });
    }
    send(data, resolve, reject) {
        return this.link.command({ type: 'publish', room: this.name, data }, (ev) => {
            if (ev.type === 'ack')
                resolve({ offset: typeof ev.offset === 'number' ? ev.offset : null });
            else if (ev.type === 'error')
                reject(new RoomcastError(String(ev.code), String(ev.reason)));
            else
                return false; // a `reply` to it: the ack follows
            return true;
        }, () => reject(new RoomcastError('connection_lost', 'the connection dropped before the server answered: it may or may not have been published')));
    }
    // ---- driven by the client ----------------------------------------------
    /** @internal The connection is up: (re)join, resuming from the position. */
    join() {
        if (this.current === 'left' || this.current === 'failed')
            return;
        this.setState('joining');
        const resuming = this.pos !== null;
        const cmd = { type: 'join', room: this.name };
        if (this.pos)
            cmd.since = { epoch: this.pos.epoch, offset: this.pos.offset };
        let failure = null;
        this.link.command(cmd, (ev) => {
            // Left while the join was on its way: its answer changes nothing.
            if (this.current === 'left')
                return ev.type === 'joined' || ev.type === 'error';
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
            if (ev.type !== 'joined')
                return false;
            this.joined(ev, resuming, failure);
            return true;
        }, () => { });
    }
    joined(ev, resuming, failure) {
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
                this.history({ limit }).then((messages) => this.emit('history', messages), () => { });
            }
        }
        this.flush();
    }
    flush() {
        while (this.queue.length > 0 && this.current === 'joined') {
            const item = this.queue[0];
            if (!this.send(item.data, item.resolve, item.reject))
                return;
            this.queue.shift();
            clearTimeout(item.timer);
            this.link.release();
        }
    }
    /** @internal The connection dropped: join again when it is back. */
    lost() {
        if (this.current === 'joined')
            this.setState('joining');
    }
    /** @internal A `message` event of this room. */
    message(ev) {
        const m = ev;
        if (typeof m.offset === 'number') {
            if (this.pos && m.offset <= this.pos.offset)
                return; // seen already
            if (this.pos)
                this.pos.offset = m.offset;
        }
        const { type: _type, ...message } = m;
        this.emit('message', message);
    }
    /** @internal A `reset` event: the room's stream began again. */
    reset(ev) {
        this.pos = { epoch: String(ev.epoch), offset: Number(ev.offset) || 0 };
        this.emit('reset', { ...this.pos });
    }
    /** @internal A presence event. */
    presenceChange(ev) {
        const member = ev.member;
        if (ev.type === 'join')
            this.emit('join', member);
        else
            this.emit('leave', member);
    }
    /** @internal Done with this room: queued publishes are refused. */
    finish(state, why) {
        for (const q of this.queue.splice(0)) {
            clearTimeout(q.timer);
            this.link.release();
            q.reject(why);
        }
        this.setState(state);
        if (state === 'left' || state === 'failed')
            this.forget(this);
    }
    setState(state) {
        if (this.current === state)
            return;
        this.current = state;
        this.emit('state', state);
    }
}
