// Reconnect delays, shared by the room client and the operator view's
// live socket.
/** The delay before reconnect attempt `attempt` (0 first): from `min`
 * doubling to `max`, with jitter (half to all of it), so a restarted
 * server is not hit by every client at once. */
export function backoffDelay(attempt, min, max) {
    const base = Math.min(max, min * 2 ** Math.min(attempt, 30));
    return Math.round(base / 2 + (Math.random() * base) / 2);
}
