/**
 * SSH keepalives that do not keep the program alive: see
 * {@linkcode unrefKeepalives}.
 *
 * @module
 */

let keepalivesUnrefed = false;

/**
 * ssh2 (1.17.0, `lib/client.js`, `resetKA`) re-arms a plain `setInterval`
 * of its `sendKA` function after every packet received; it would keep the
 * program alive after the connection let go of it. From the first
 * connection that lets go on, those intervals are unref'd as they are
 * armed: the socket, not the keepalive, decides whether the program waits.
 *
 * @example
 * ```ts
 * import { unrefKeepalives } from "./keepalive.ts";
 *
 * // Called by a connection that lets the program end; idempotent.
 * console.log(typeof unrefKeepalives); // "function"
 * ```
 */
export function unrefKeepalives(): void {
  if (keepalivesUnrefed) return;
  keepalivesUnrefed = true;
  const original = globalThis.setInterval;
  const patched = function (
    handler: unknown,
    timeout?: number,
    ...args: unknown[]
  ) {
    const timer = (original as (...a: unknown[]) => unknown)(
      handler,
      timeout,
      ...args,
    );
    if (typeof handler === "function" && handler.name === "sendKA") {
      if (typeof timer === "number") Deno.unrefTimer(timer);
      else (timer as { unref?(): void }).unref?.();
    }
    return timer;
  };
  globalThis.setInterval = patched as typeof globalThis.setInterval;
}
