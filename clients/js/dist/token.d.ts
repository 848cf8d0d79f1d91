/** The `exp` claim of a JWT, in seconds since the Unix epoch, if it has one. */
export declare function tokenExpiry(token: string): number | null;
/** How long from `now` (ms) to ask for a new token for one that expires at
 * `exp` (seconds): a third of its remaining life before it ends, at most
 * `margin` ms before, never less than 0. */
export declare function refreshDelay(exp: number, now: number, margin: number): number;
