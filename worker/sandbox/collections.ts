/**
 * Collections in a sandbox: the caller `sky.dict(...)` and the others use
 * there. Each call goes to the worker process over the sandbox's channel as
 * `{ t: "coll", c, id, k, b }` (see `worker/collections.ts`), and its reply
 * comes back as `{ c, b, err? }` in a `{ t: "collr", batch }` of the replies of one turn; a caller that stops waiting
 * sends `{ t: "collx", c }`. So a task reaches its pool's collections with
 * no permission of its own.
 *
 * @module
 */
import { decode } from "../../src/wire/codec.ts";
import { fromWireError, type WireError } from "../../src/wire/wire_error.ts";
import {
  bytesCaller,
  COLLECTIONS_HOOK,
} from "../../src/collections/_context.ts";
import type { CollectionCall } from "../../src/collections/backend.ts";
import { giveBack } from "../../src/collections/_give_back.ts";

interface Waiting {
  resolve(bytes: Uint8Array): void;
  reject(error: unknown): void;
}

/**
 * Installs the sandbox's collections caller.
 *
 * @example
 * ```ts ignore
 * const reply = installCollections((m, b) => post(port, m, b), () => currentTask.getStore());
 * // on { t: "collr", batch } from the worker process:
 * reply(message);
 * ```
 *
 * @param send Posts a message to the worker process (transferring `buffer`).
 * @param task The task whose code is running, if any.
 * @returns What handles a `collr` message from the worker process.
 */
export function installCollections(
  send: (message: unknown, buffer?: ArrayBuffer) => void,
  task: () => number | undefined,
): (message: Record<string, unknown>) => void {
  const waiting = new Map<number, Waiting>();
  /** Blocking calls given up, whose reply may still come: what it took is given back. */
  const abandoned = new Map<number, CollectionCall>();
  let next = 1;
  const caller = bytesCaller(
    (bytes, call, signal) =>
      new Promise<Uint8Array>((resolve, reject) => {
        const c = next++;
        const buffer = bytes.buffer as ArrayBuffer;
        const abort = () => {
          if (!waiting.delete(c)) return;
          abandoned.set(c, call);
          send({ t: "collx", c });
          reject(signal!.reason);
        };
        waiting.set(c, {
          resolve(bytes) {
            signal?.removeEventListener("abort", abort);
            resolve(bytes);
          },
          reject(error) {
            signal?.removeEventListener("abort", abort);
            reject(error);
          },
        });
        signal?.addEventListener("abort", abort, { once: true });
        send({
          t: "coll",
          c,
          id: task(),
          k: `${call.kind}.${call.op}`,
          b: buffer,
        }, buffer);
      }),
  );
  (globalThis as Record<symbol, unknown>)[COLLECTIONS_HOOK] = caller;
  const one = (message: Record<string, unknown>) => {
    const c = message.c as number;
    const call = waiting.get(c);
    if (!(message.b instanceof ArrayBuffer)) return;
    if (!call) {
      const given = abandoned.get(c);
      abandoned.delete(c);
      if (!given || message.err) return;
      const back = giveBack(given, decode(new Uint8Array(message.b)));
      if (back) caller(back).catch(() => {});
      return;
    }
    waiting.delete(c);
    const bytes = new Uint8Array(message.b);
    if (!message.err) return call.resolve(bytes);
    try {
      call.reject(fromWireError(decode(bytes) as WireError));
    } catch (error) {
      call.reject(error);
    }
  };
  return (message) => {
    if (!Array.isArray(message.batch)) return one(message);
    for (const reply of message.batch) {
      if (typeof reply === "object" && reply !== null) one(reply);
    }
  };
}
