/**
 * A job: one task of the pool, from the moment it is submitted until it
 * settles — what it runs, where it may run, its timer, its streams and how
 * many times it was sent again after its node was lost.
 *
 * @module
 */
import type { Compute, Pending } from "../compute.ts";
import { ConfigError } from "../errors.ts";
import type { ResolvedImage } from "../image.ts";
import { sandboxSpecOf } from "../sandbox.ts";
import { encode } from "../wire/codec.ts";
import type { SandboxSpec } from "../wire/messages.ts";
import {
  splitStreams,
  type StreamArg,
  type StreamedCall,
} from "./remote_stream.ts";
import type { PoolNode } from "./node_state.ts";

/** One task of the pool, queued, running or settled. */
export interface Job {
  id: number;
  name: string;
  module: string;
  key: string;
  args: Uint8Array;
  /** Where it runs on the worker (sent once per node, before its first call). */
  spec: SandboxSpec;
  timeout: number | undefined;
  /** The node it must run on, for broadcasts. */
  pin?: number;
  node?: PoolNode;
  sentAt: number;
  /** When it last started waiting for a node, in ms of `performance.now()`. */
  queuedAt: number;
  /** Cancels its timeout's timer. */
  timer?: () => void;
  settled: boolean;
  /** How many times it was sent again after its node was lost. */
  attempts: number;
  /** Whether it is a health check (never sent again, never counted as work). */
  probe?: boolean;
  /** Its streamed arguments, if any. */
  streams?: StreamArg[];
  /** Its streams on the node it was sent to. */
  call?: StreamedCall;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/** What a job needs from its pool to be built. */
export interface JobContext {
  /** The next task id (taken only once the job is built). */
  nextId(): number;
  /** The shipped path of a module that defines computes, by client URL. */
  moduleOf(url: string): string | undefined;
  /** The pool's image (its sandbox defaults). */
  image?: ResolvedImage;
  /** The pool's default task timeout, in ms. */
  taskTimeout?: number;
}

/**
 * A job for a task: its arguments encoded (streamed ones split off), its
 * sandbox, its timeout (the call's, else the compute's, else the pool's).
 *
 * @throws {ConfigError} When the compute's module was not shipped.
 * @throws {SerializationError} When an argument cannot be sent.
 *
 * @example
 * ```ts
 * import { createJob } from "./job.ts";
 * import { square } from "../../examples/parallel.ts";
 *
 * const job = createJob(square(3), undefined, {
 *   nextId: () => 1,
 *   moduleOf: () => "main.ts",
 *   taskTimeout: 5_000,
 * });
 * console.log(job.id, job.module, job.timeout); // 1 "main.ts" 5000
 * ```
 */
export function createJob(
  task: Pending<unknown>,
  pin: number | undefined,
  context: JobContext,
): Job {
  const compute = task.compute as Compute<unknown[], unknown>;
  const module = context.moduleOf(compute.id.module);
  if (module === undefined) {
    throw new ConfigError(
      `Cannot run '${compute.id.name}': its module ${compute.id.module} was not shipped to the ` +
        `nodes. Import it before ComputePool.start() so that it is part of the code bundle.`,
    );
  }
  const split = splitStreams(task.args);
  const args = encode(split?.args ?? task.args, "args");
  return {
    id: context.nextId(),
    name: compute.id.name,
    module,
    key: compute.id.key,
    args,
    spec: sandboxSpecOf(compute, context.image),
    timeout: task.timeout ?? compute.options.timeout ?? context.taskTimeout,
    pin,
    sentAt: 0,
    queuedAt: 0,
    settled: false,
    attempts: 0,
    streams: split?.streams,
    resolve: () => {},
    reject: () => {},
  };
}
