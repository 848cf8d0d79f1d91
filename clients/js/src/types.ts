// The roomcast.v1 wire, as the server sends it (docs/protocol.md).

/** Who sent a message. `conn` is the connection id, `user` the token's `sub`. */
export interface Author {
  conn: number;
  nick: string;
  user: string | null;
}

/** A member of a room, as presence lists it (a user once, with its connections). */
export interface Member {
  user: string | null;
  nick: string;
  conns: number;
}

/** A message that entered a room. `offset` is `null` when it was not stored
 * (a cluster node that could not reach Redis delivered it locally only). */
export interface Message<T = unknown> {
  room: string;
  offset: number | null;
  /** Milliseconds since the Unix epoch. */
  time: number;
  from: Author;
  data: T;
}

/** A room's position: its stream's epoch and the last offset seen. */
export interface Position {
  epoch: string;
  offset: number;
}

/** Any event from the server (one JSON object with a `type`). */
export interface WireEvent {
  type: string;
  id?: string | number;
  room?: string;
  [field: string]: unknown;
}

/** The part of the WebSocket API the client uses: the browser's, Node 22's
 * global, or the `ws` package's. */
export interface SocketLike {
  readonly readyState: number;
  readonly protocol: string;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor (`new WebSocket(url, protocols)`). */
export type SocketConstructor = new (url: string, protocols: string | string[]) => SocketLike;
