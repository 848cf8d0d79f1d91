// roomcast-client: the roomcast.v1 client (docs/client.md), and the
// operator view's client (`Admin`, docs/admin.md).
//
//   import { connect } from 'roomcast-client';
//   const client = connect({ url: 'wss://chat.example.com/chat', nick: 'ann' });
//   const lobby = client.room('chat/lobby');
//   lobby.on('message', (m) => console.log(m.from.nick, m.data));
//   await lobby.publish('hello');
import { Client } from './client.js';
export { Client } from './client.js';
export { Room } from './room.js';
export { RoomcastError } from './errors.js';
export { Admin, Live } from './admin.js';
export { tokenExpiry } from './token.js';
/** Connect to a roomcast server: the client reconnects by itself until
 * `close()`, and its rooms resume where they were. */
export function connect(opts) {
    return new Client(opts);
}
