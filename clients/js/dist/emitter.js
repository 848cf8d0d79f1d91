// A small typed event emitter (no dependency): `on` returns the function
// that removes the listener.
export class Emitter {
    constructor() {
        this.listeners = new Map();
    }
    /** Call `fn` on every `name` event; returns a function that stops it. */
    on(name, fn) {
        let set = this.listeners.get(name);
        if (!set) {
            set = new Set();
            this.listeners.set(name, set);
        }
        set.add(fn);
        return () => this.off(name, fn);
    }
    /** Stop calling `fn` on `name` events. */
    off(name, fn) {
        this.listeners.get(name)?.delete(fn);
    }
    /** The next `name` event, as a promise. */
    once(name) {
        return new Promise((resolve) => {
            const stop = this.on(name, (v) => {
                stop();
                resolve(v);
            });
        });
    }
    emit(name, value) {
        for (const fn of [...(this.listeners.get(name) ?? [])]) {
            try {
                fn(value);
            }
            catch (e) {
                // A listener's failure is the application's, not the connection's.
                queueMicrotask(() => {
                    throw e;
                });
            }
        }
    }
}
