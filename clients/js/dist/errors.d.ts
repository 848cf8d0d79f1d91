/** A refusal, with the server's error code (`not_member`, `rate_limited`,
 * `not_stored`, `token_refused`, …) or one of the client's own:
 * `queue_full`, `timeout`, `connection_lost` (sent, but the connection
 * dropped before the answer: it may or may not have been taken), `closed`. */
export declare class RoomcastError extends Error {
    readonly code: string;
    readonly reason: string;
    constructor(code: string, reason: string);
}
