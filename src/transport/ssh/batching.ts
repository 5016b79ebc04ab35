/**
 * Fewer system calls for the bytes ssh2 writes: its writes are gathered
 * while the socket is corked and leave together, in one `writev`.
 *
 * ssh2 hands every packet to `socket.write` in three pieces, the encrypted
 * length, the payload and the MAC (`ChaChaPolyCipherNative.encrypt` in
 * ssh2's `lib/protocol/crypto.js`, v1.17.0), after cutting a channel write
 * into packets of at most the server's packet size (32 KiB from OpenSSH;
 * `Channel._write` in `lib/Channel.js`). Each piece would be a system call
 * of its own. Two places cork the socket for a moment:
 *
 * - {@linkcode corked} around a write to a channel (a 512 KiB chunk is 16
 *   packets, 48 pieces);
 * - {@linkcode batchWrites}: around each read, for what ssh2 writes while
 *   it handles one (the rest of a chunk, sent when the server's window
 *   adjustment arrives, and the window adjustments it sends itself).
 *
 * Corking holds nothing back past the current turn: the socket is uncorked
 * before the turn ends, and Nagle stays off.
 *
 * @module
 */
import process from "node:process";
import type { Socket } from "node:net";

/**
 * Corks the socket while ssh2 handles each read, uncorking it once the
 * current turn's callbacks have run.
 *
 * @param socket The connection's socket, before ssh2 listens on it (the
 *   listener must run first).
 *
 * @example
 * ```ts ignore
 * import { connect } from "node:net";
 * import { batchWrites } from "./batching.ts";
 *
 * const socket = connect({ host: "10.213.0.10", port: 22 });
 * batchWrites(socket);
 * ```
 */
export function batchWrites(socket: Socket): void {
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  socket.prependListener("data", () => {
    if (corked) return;
    corked = true;
    socket.cork();
    process.nextTick(uncork);
  });
}

/**
 * Runs a write with the socket corked, so that the pieces of every packet
 * it makes leave in one system call.
 *
 * @param socket The socket, if connected.
 * @param write The write.
 *
 * @example
 * ```ts
 * import { corked } from "./batching.ts";
 *
 * corked(null, () => console.log("written")); // written (no socket: as it is)
 * ```
 */
export function corked(socket: Socket | null, write: () => void): void {
  if (!socket) return write();
  socket.cork();
  try {
    write();
  } finally {
    socket.uncork();
  }
}
