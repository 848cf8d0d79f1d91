/** The delay before reconnect attempt `attempt` (0 first): from `min`
 * doubling to `max`, with jitter (half to all of it), so a restarted
 * server is not hit by every client at once. */
export declare function backoffDelay(attempt: number, min: number, max: number): number;
