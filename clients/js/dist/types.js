// The roomcast.v1 wire, as the server sends it (docs/protocol.md).
export {};
