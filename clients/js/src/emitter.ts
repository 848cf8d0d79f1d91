// A small typed event emitter (no dependency): `on` returns the function
// that removes the listener.

export type Listener<T> = (value: T) => void;

export class Emitter<Events extends object> {
  private listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Call `fn` on every `name` event; returns a function that stops it. */
  on<K extends keyof Events>(name: K, fn: Listener<Events[K]>): () => void {
    let set = this.listeners.get(name);
    if (!set) {
      set = new Set();
      this.listeners.set(name, set);
    }
    set.add(fn as Listener<never>);
    return () => this.off(name, fn);
  }

  /** Stop calling `fn` on `name` events. */
  off<K extends keyof Events>(name: K, fn: Listener<Events[K]>): void {
    this.listeners.get(name)?.delete(fn as Listener<never>);
  }

  /** The next `name` event, as a promise. */
  once<K extends keyof Events>(name: K): Promise<Events[K]> {
    return new Promise((resolve) => {
      const stop = this.on(name, (v) => {
        stop();
        resolve(v);
      });
    });
  }

  protected emit<K extends keyof Events>(name: K, value: Events[K]): void {
    for (const fn of [...(this.listeners.get(name) ?? [])]) {
      try {
        (fn as Listener<Events[K]>)(value);
      } catch (e) {
        // A listener's failure is the application's, not the connection's.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
}
