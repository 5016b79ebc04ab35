/**
 * How a collection handle finds its backend: the {@linkcode Caller} it was
 * made with (`pool.dict(...)`), or, for `sky.dict(...)` and the others, the
 * one of the place it is called from, looked up at each call — a task's
 * worker or sandbox (which installs {@linkcode COLLECTIONS_HOOK}), or on the
 * client the one pool that is open. Also the argument checks every handle
 * shares.
 *
 * @module
 */
import { decode, encode } from "../wire/codec.ts";
import { MAX_NAME_LENGTH } from "./backend.ts";
import type { CollectionBackend, CollectionCall } from "./backend.ts";
import { EmbeddedBackend } from "./embedded.ts";

/** Makes one call on a collection; replies as `CollectionReplies` says. */
export type Caller = (
  call: CollectionCall,
  signal?: AbortSignal,
) => Promise<unknown>;

/**
 * Where a worker process or a sandbox puts its {@linkcode Caller}, on
 * `globalThis`: every copy of the library loaded there finds it.
 */
export const COLLECTIONS_HOOK: unique symbol = Symbol.for(
  "skyward.collections",
) as never;

/** The callers of the pools open in this process, by pool id. */
const pools = new Map<string, Caller>();

/** The process's own collections, used where no pool is: see {@linkcode currentCaller}. */
let local: Caller | undefined;

/**
 * The caller of a backend in this process, as `"client"`: its replies are
 * copied, so that a value the caller changes is not changed in the backend.
 */
export function clientCaller(backend: CollectionBackend): Caller {
  return async (call, signal) => {
    const reply = await backend.call(call, "client", signal);
    return reply === undefined ? reply : decode(encode(reply, "reply"));
  };
}

/**
 * Makes a pool's collections what `sky.dict(...)` and the others use on the
 * client while it is the only pool open.
 *
 * @returns What forgets it (when the pool closes).
 */
export function registerPool(poolId: string, caller: Caller): () => void {
  pools.set(poolId, caller);
  return () => {
    if (pools.get(poolId) === caller) pools.delete(poolId);
  };
}

/**
 * The caller of the place this runs in: in a task, its pool's; on the
 * client, the open pool's; where no pool is open (a script trying a compute
 * with `fn.local()`), the process's own collections, in its memory.
 *
 * @param what The handle, for the error message: `sky.dict("a")`.
 * @throws {Error} On the client while several pools are open.
 */
export function currentCaller(what: string): Caller {
  const hook = (globalThis as Record<symbol, unknown>)[COLLECTIONS_HOOK];
  if (typeof hook === "function") return hook as Caller;
  if (pools.size === 1) return pools.values().next().value!;
  if (pools.size === 0) return local ??= clientCaller(new EmbeddedBackend());
  throw new Error(
    `Cannot use ${what} on the client while ${pools.size} pools are open: ` +
      `say which with pool.${what.replace(/^sky\./, "")}`,
  );
}

/**
 * A caller that sends each call as bytes and gets its reply as bytes:
 * what a worker or a sandbox installs.
 *
 * @param send Sends the encoded call; resolves with the encoded reply, or
 *   rejects with the call's error.
 */
export function bytesCaller(
  send: (
    bytes: Uint8Array,
    call: CollectionCall,
    signal?: AbortSignal,
  ) => Promise<Uint8Array>,
): Caller {
  return async (call, signal) =>
    decode(await send(encode(call, "call"), call, signal));
}

/** Checks a collection's name. */
export function checkName(kind: string, name: unknown): string {
  if (
    typeof name !== "string" || name.length === 0 ||
    name.length > MAX_NAME_LENGTH
  ) {
    throw new TypeError(
      `Cannot open ${kind} ${
        JSON.stringify(name) ?? String(name)
      }: a name must be a non-empty string of at most ${MAX_NAME_LENGTH} characters`,
    );
  }
  return name;
}

/**
 * Checks a duration option in milliseconds (`undefined` passes).
 *
 * @throws {RangeError} When it is not a finite number ≥ 0.
 */
export function checkMs(
  action: string,
  option: string,
  value: unknown,
): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new RangeError(
      `Cannot ${action}: '${option}' must be a number of milliseconds ≥ 0, got ${
        String(value)
      }`,
    );
  }
  return value;
}

/** The error of a call that ran out of time, as `AbortSignal.timeout()` gives. */
export function timeoutError(message: string): DOMException {
  return new DOMException(message, "TimeoutError");
}

/**
 * Encodes a value for a collection, failing with the codec's
 * `SerializationError` (naming `path`) when it cannot be sent.
 */
export function encodeValue(value: unknown, path: string): Uint8Array {
  return encode(value, path);
}

/** Decodes a value a backend replied. */
export function decodeValue<V>(bytes: Uint8Array): V {
  return decode(bytes) as V;
}
