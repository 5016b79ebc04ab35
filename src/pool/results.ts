/**
 * How a task's answer becomes what its caller gets, in one place: the
 * result decoded from the worker's payload, a remote failure told better
 * (the permission a sandbox refused, the memory it ran out of), and the
 * three ways a task is cancelled (by its caller, by its timeout, by the
 * worker) turned into one error each.
 *
 * @module
 */
import { decode } from "../wire/codec.ts";
import {
  NodeLostError,
  RemoteError,
  TaskCancelledError,
  TaskTimeoutError,
} from "../errors.ts";
import { SANDBOX_OUT_OF_MEMORY } from "../wire/messages.ts";
import { explainDenied } from "../sandbox.ts";
import type { Job } from "./job.ts";

/** How a task ended, as its scheduler acts on it. */
export type Outcome =
  /** It returned `value` (`undefined` for a streamed result, whose items went to its iterable). */
  | { kind: "done"; value: unknown }
  /** It failed with `error`, which its caller gets. */
  | { kind: "failed"; error: Error }
  /** It was cancelled on the worker: its caller gets `error`. */
  | { kind: "cancelled"; error: Error }
  /** Its node was lost: the node's loss decides whether it is sent again. */
  | { kind: "lost" };

/**
 * The outcome of a task whose call answered: its decoded value, or a
 * failure when the payload cannot be decoded.
 *
 * @param payload The encoded result.
 * @param streamed Whether the result streamed (its items went to its iterable).
 *
 * @example
 * ```ts
 * import { answered } from "./results.ts";
 * import { encode } from "../wire/codec.ts";
 *
 * console.log(answered(encode(16), false)); // { kind: "done", value: 16 }
 * ```
 */
export function answered(payload: Uint8Array, streamed: boolean): Outcome {
  if (streamed) return { kind: "done", value: undefined };
  try {
    return { kind: "done", value: decode(payload) };
  } catch (error) {
    return { kind: "failed", error: error as Error };
  }
}

/**
 * The outcome of a task whose call failed: lost with its node, cancelled
 * (here or on the worker), or failed with the error told better.
 *
 * @param job The task.
 * @param error What its call rejected with.
 *
 * @example
 * ```ts
 * import { failed } from "./results.ts";
 * import { RemoteError } from "../errors.ts";
 * import type { Job } from "./job.ts";
 *
 * const job = { name: "square", spec: { kind: "deno" } } as Job;
 * const error = new RemoteError({ name: "TaskCancelledError", message: "cancelled" });
 * console.log(failed(job, error).kind); // "cancelled"
 * ```
 */
export function failed(job: Job, error: Error): Outcome {
  if (error instanceof NodeLostError) return { kind: "lost" };
  if (
    error instanceof TaskCancelledError || error.name === "RemoteError" &&
      (error as { remoteName?: string }).remoteName === "TaskCancelledError"
  ) return { kind: "cancelled", error: cancelled(job) };
  return {
    kind: "failed",
    error: withMemoryAdvice(withPermissionAdvice(error, job), job),
  };
}

/**
 * The error of a task cancelled by its caller (or its group, or its
 * stream), or by the worker.
 *
 * @param job The task.
 * @param reason Why, when the caller said.
 *
 * @example
 * ```ts
 * import { cancelled } from "./results.ts";
 * import type { Job } from "./job.ts";
 *
 * console.log(cancelled({ name: "square" } as Job, "aborted").name); // "TaskCancelledError"
 * ```
 */
export function cancelled(job: Job, reason?: string): TaskCancelledError {
  return new TaskCancelledError(job.name, reason);
}

/**
 * The error of a task that ran past its timeout.
 *
 * @param job The task, which has a timeout.
 *
 * @example
 * ```ts
 * import { timedOut } from "./results.ts";
 * import type { Job } from "./job.ts";
 *
 * console.log(timedOut({ name: "square", timeout: 50 } as Job).name); // "TaskTimeoutError"
 * ```
 */
export function timedOut(job: Job): TaskTimeoutError {
  return new TaskTimeoutError(job.name, job.timeout!);
}

/**
 * A task refused a permission in its sandbox: the same error, with advice
 * naming the compute and the option to add instead of Deno's "run again
 * with --allow-…".
 *
 * @example
 * ```ts
 * import { withPermissionAdvice } from "./results.ts";
 * import { RemoteError } from "../errors.ts";
 * import type { Job } from "./job.ts";
 *
 * const job = { name: "fetchTitle", spec: { kind: "deno", permissions: {} } } as Job;
 * const denied = new RemoteError({
 *   name: "NotCapable",
 *   message: 'Requires net access to "example.com:443", run again with the --allow-net flag',
 * });
 * console.log(withPermissionAdvice(denied, job).message); // names the compute and its `permissions`
 * ```
 */
export function withPermissionAdvice(error: Error, job: Job): Error {
  if (
    !(error instanceof RemoteError) || error.remoteName !== "NotCapable"
  ) return error;
  const said = error.message.slice("NotCapable: ".length);
  // Refused while loading a module: unless it is a remote import the task
  // asked for, the compute's permissions are not what is missing.
  if (
    (error as { code?: unknown }).code === "ERR_MODULE_NOT_FOUND" &&
    !/^Requires (import|net) access/.test(said)
  ) return error;
  const advice = explainDenied(
    said,
    job.name,
    job.spec.kind === "deno" ? job.spec.permissions : undefined,
  );
  if (!advice) return error;
  return reworded(error, said, advice);
}

/**
 * A task's sandbox ran out of memory (a `SandboxError` with code
 * `ERR_SANDBOX_OUT_OF_MEMORY`): the same error, naming the compute and its
 * `memoryLimit`, and how to raise it.
 *
 * @example
 * ```ts
 * import { withMemoryAdvice } from "./results.ts";
 * import { RemoteError } from "../errors.ts";
 * import type { Job } from "./job.ts";
 *
 * const job = { name: "grow", spec: { kind: "deno", memoryLimit: 64 * 2 ** 20 } } as Job;
 * const error = Object.assign(
 *   new RemoteError({ name: "SandboxError", message: "out of memory" }),
 *   { code: "ERR_SANDBOX_OUT_OF_MEMORY" },
 * );
 * console.log(withMemoryAdvice(error, job).message); // "SandboxError: compute 'grow' exceeded its memoryLimit of 64 MiB. …"
 * ```
 */
export function withMemoryAdvice(error: Error, job: Job): Error {
  const marked = error as { code?: unknown; heapLimitMb?: unknown };
  if (
    !(error instanceof RemoteError) || error.remoteName !== "SandboxError" ||
    marked.code !== SANDBOX_OUT_OF_MEMORY
  ) return error;
  const said = error.message.slice("SandboxError: ".length);
  const limit = job.spec.kind === "deno" ? job.spec.memoryLimit : undefined;
  const mib = limit === undefined
    ? Number(marked.heapLimitMb)
    : Math.round(limit / 2 ** 20 * 100) / 100;
  const loading = said.includes("loading");
  const what = limit === undefined
    ? `the default heap limit of its sandbox, ${mib} MiB (it sets no memoryLimit)`
    : `its memoryLimit of ${mib} MiB`;
  const advice =
    `compute '${job.name}' exceeded ${what}${
      loading
        ? " while its sandbox loaded its module (the module, its imports and this library count too)"
        : ""
    }. Its sandbox was stopped and is replaced for the next task. ` +
    `To allow more, raise it where the compute is defined: sky.compute(fn, { memoryLimit: ${
      Math.max(2 * Math.ceil(mib), 64)
    } * 2 ** 20 })`;
  return reworded(error, said, advice);
}

/**
 * A remote error told better: the same error (remote name, cause, node and
 * every field the worker sent) whose message, and its line in the remote
 * stack, say `advice` instead of `said`.
 *
 * @example
 * ```ts
 * import { reworded } from "./results.ts";
 * import { RemoteError } from "../errors.ts";
 *
 * const error = new RemoteError({ name: "Error", message: "said", stack: "Error: said\n    at f" });
 * const better = reworded(error, "said", "told better");
 * console.log(better.message, better.remoteStack); // "Error: told better" "Error: told better\n    at f"
 * ```
 */
export function reworded(
  error: RemoteError,
  said: string,
  advice: string,
): RemoteError {
  const better = new RemoteError({
    name: error.remoteName,
    message: advice,
    stack: error.remoteStack?.replace(said, advice),
  }, { cause: error.cause, node: error.node });
  for (const [key, value] of Object.entries(error)) {
    if (!(key in better)) {
      Object.defineProperty(better, key, { value, enumerable: true });
    }
  }
  return better;
}
