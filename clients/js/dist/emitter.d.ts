export type Listener<T> = (value: T) => void;
export declare class Emitter<Events extends object> {
    private listeners;
    /** Call `fn` on every `name` event; returns a function that stops it. */
    on<K extends keyof Events>(name: K, fn: Listener<Events[K]>): () => void;
    /** Stop calling `fn` on `name` events. */
    off<K extends keyof Events>(name: K, fn: Listener<Events[K]>): void;
    /** The next `name` event, as a promise. */
    once<K extends keyof Events>(name: K): Promise<Events[K]>;
    protected emit<K extends keyof Events>(name: K, value: Events[K]): void;
}
