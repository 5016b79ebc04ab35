/**
 * `sky.lock(name)`: a mutual-exclusion lock shared by the client and the
 * tasks of a pool, with a lease, released for good when its holder's node
 * is lost.
 *
 * @module
 */
import type { CollectionReplies } from "./backend.ts";
import { type Caller, checkName } from "./_context.ts";
import { checkMs, timeoutError } from "./_context.ts";
import { send } from "./_handle.ts";

/** Options of {@linkcode Lock.acquire}. */
export interface LockAcquireOptions {
  /**
   * How long to wait for the lock, in milliseconds; past it `acquire`
   * rejects with a `DOMException` named `"TimeoutError"`.
   * @default no limit
   */
  timeout?: number;
  /**
   * How long the lock may be held, in milliseconds: it is released then,
   * whatever happens.
   * @default no lease: held until released, until the task that acquired it
   *   ends, or until its node is lost
   */
  lease?: number;
  /** Stops waiting: `acquire` rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * A held lock: release it with {@linkcode LockHandle.release}, or hold it
 * with `await using` for a block.
 */
export interface LockHandle extends AsyncDisposable {
  /** The lock's name. */
  readonly name: string;
  /** The token that proves this hold (opaque). */
  readonly token: string;
  /**
   * Releases the lock.
   *
   * @returns Whether this hold still had it (`false` when its lease ran out,
   *   or it was released before).
   */
  release(): Promise<boolean>;
}

/**
 * A lock shared by the client and the tasks of a pool, made by
 * {@linkcode lock}. It is exclusive, not reentrant, and granted in the order
 * it was asked for. A lock is never held for ever by a caller that is gone:
 * it is released when the task that acquired it ends, when that task's node
 * is lost, and past its lease.
 *
 * @example
 * ```ts
 * import { lock, type Lock } from "./lock.ts";
 *
 * const disk: Lock = lock("disk-class-example");
 * const held = await disk.acquire({ lease: 5_000 });
 * console.log(await held.release()); // true
 * ```
 */
export class Lock {
  /** The collection's name. */
  readonly name: string;
  #caller: Caller | undefined;

  /** @internal Made by {@linkcode lock} or `pool.lock`. */
  constructor(name: string, caller?: Caller) {
    this.name = checkName("lock", name);
    this.#caller = caller;
  }

  /**
   * Waits for the lock and takes it.
   *
   * @param options How long to wait, the lease, and a signal to stop waiting.
   * @returns The hold, to release (or dispose of).
   * @throws {DOMException} Named `"TimeoutError"`, past `timeout`.
   */
  async acquire(options: LockAcquireOptions = {}): Promise<LockHandle> {
    const action = `acquire lock '${this.name}'`;
    const timeoutMs = checkMs(action, "timeout", options.timeout);
    const leaseMs = checkMs(action, "lease", options.lease);
    options.signal?.throwIfAborted();
    const reply = await send(this.#caller, {
      kind: "lock",
      name: this.name,
      op: "acquire",
      timeoutMs,
      leaseMs,
    }, options.signal) as CollectionReplies["lock.acquire"];
    if (!("token" in reply)) {
      throw timeoutError(
        `Lock '${this.name}' was not free within ${timeoutMs} ms`,
      );
    }
    const token = reply.token;
    let released: Promise<boolean> | undefined;
    const release = () =>
      released ??= send(this.#caller, {
        kind: "lock",
        name: this.name,
        op: "release",
        token,
      }) as Promise<boolean>;
    return {
      name: this.name,
      token,
      release,
      [Symbol.asyncDispose]: async () => {
        await release();
      },
    };
  }
}

/**
 * A lock shared by the client and the tasks of the pool: in a task, the
 * task's pool's; on the client, the open pool's (or use `pool.lock(name)`);
 * with no pool open, the process's own.
 *
 * @param name The lock's name.
 * @returns Its handle.
 * @throws {TypeError} When the name is not a non-empty string.
 *
 * @example
 * ```ts
 * import { lock } from "./lock.ts";
 *
 * const gpu = lock("gpu0-example");
 * {
 *   await using held = await gpu.acquire({ timeout: 10_000, lease: 60_000 });
 *   console.log(held.name); // "gpu0-example"
 * } // released here
 * const again = await gpu.acquire({ timeout: 0 });
 * console.log(await again.release()); // true
 * ```
 */
export function lock(name: string): Lock {
  return new Lock(name);
}
