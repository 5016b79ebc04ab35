/**
 * How a task ends on the worker: its {@linkcode TaskOutcome}, and the
 * {@linkcode SandboxError} of a task whose sandbox failed or that ran past
 * a sandbox limit.
 *
 * @module
 */
import { encode, toWireError } from "../../src/wire/codec.ts";
import { SANDBOX_OUT_OF_MEMORY } from "../../src/wire/messages.ts";

/**
 * How a task ended: its encoded result, its encoded error, an unsendable
 * result, or a result already sent on as it came (`sent`: see
 * `TaskStreamHooks.result`).
 */
export type TaskOutcome =
  | { t: "ok"; b: Uint8Array }
  | { t: "err"; b: Uint8Array }
  | { t: "ser"; path: string; problem: string }
  | { t: "sent" };

/**
 * A sandbox failed, or a task ran past a sandbox limit.
 *
 * @example
 * ```ts
 * import { SandboxError } from "./outcome.ts";
 *
 * console.log(new SandboxError("The worker is closing").name); // "SandboxError"
 * ```
 */
export class SandboxError extends Error {
  /** @param message What happened. */
  constructor(message: string) {
    super(message);
    this.name = "SandboxError";
  }
}

/**
 * The error of the tasks of a sandbox that ran out of memory: a
 * {@linkcode SandboxError} with `code` {@linkcode SANDBOX_OUT_OF_MEMORY} and
 * `heapLimitMb`, which the client turns into a message naming the compute.
 *
 * @param heapMb The sandbox's heap limit, in MiB.
 * @param loading Whether it was loading the task's module.
 *
 * @example
 * ```ts
 * import { outOfMemory } from "./outcome.ts";
 *
 * const error = outOfMemory(64, false) as Error & { code: string };
 * console.log(error.code); // "ERR_SANDBOX_OUT_OF_MEMORY"
 * ```
 */
export function outOfMemory(heapMb: number, loading: boolean): SandboxError {
  return Object.assign(
    new SandboxError(
      `The sandbox ${
        loading ? "loading this task's module" : "running this task"
      } ran out of memory: its heap, or all it held (array buffers, WebAssembly memory, the workers it started), went past its limit of ${heapMb} MiB. It was stopped, and is replaced for the next task.`,
    ),
    { code: SANDBOX_OUT_OF_MEMORY, heapLimitMb: heapMb },
  );
}

/**
 * The outcome of a task that failed with `error`, encoded.
 *
 * @example
 * ```ts
 * import { failure, SandboxError } from "./outcome.ts";
 *
 * console.log(failure(new SandboxError("stopped")).t); // "err"
 * ```
 */
export function failure(error: unknown): TaskOutcome {
  return { t: "err", b: encode(toWireError(error), "error") };
}
