/**
 * The messages of the wire protocol between a client and a worker: the zod
 * schemas of the headers each side sends (validated on arrival; payloads are
 * not), their types, and the protocol's version.
 *
 * How the messages travel, in frames over one byte stream, is
 * `frames.ts`.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";

/** The protocol's version; the handshake refuses a worker speaking another. */
export const PROTOCOL_VERSION = 6;

/**
 * The `code` of the `SandboxError` a task fails with when its sandbox ran
 * out of memory; it also carries `heapLimitMb`. The client rewords it to
 * name the compute and its `memoryLimit`.
 */
export const SANDBOX_OUT_OF_MEMORY = "ERR_SANDBOX_OUT_OF_MEMORY";

const id = z.number().int().nonnegative();

const grant = z.union([z.boolean(), z.array(z.string())]);

/**
 * Deno permissions of a sandbox, resolved on the client (the image's
 * defaults merged with the compute's): every name present, `false` when
 * denied. Relative paths are resolved on the worker, against the code
 * directory.
 */
export const sandboxPermissions = z.object({
  read: grant,
  write: grant,
  net: grant,
  env: grant,
  run: grant,
  ffi: grant,
  sys: grant,
  import: grant,
}).strict();

const limit = z.number().int().positive().optional();

/** Where and how a compute's tasks run on a worker (sent once per node by `define`). */
export const sandboxSpec = z.discriminatedUnion("kind", [
  /** A Deno sandbox holding exactly `permissions`, importing the compute's module. */
  z.object({
    kind: z.literal("deno"),
    permissions: sandboxPermissions,
    isolation: z.enum(["shared", "task"]),
    /** Heap limit of the sandbox, in bytes. */
    memoryLimit: limit,
  }).strict(),
  /** A self-contained function run by QuickJS compiled to WebAssembly. */
  z.object({
    kind: z.literal("js"),
    /** The function's source text. */
    source: z.string(),
    memoryLimit: limit,
    /** Time limit of one call, in milliseconds. */
    timeout: limit,
  }).strict(),
  /** An export of a raw WebAssembly module. */
  z.object({
    kind: z.literal("wasm"),
    module: z.instanceof(Uint8Array),
    export: z.string(),
    /** The largest its memory may grow to, in 64 KiB pages. */
    memoryPages: limit,
    timeout: limit,
    /** Values of the module's imports, by module and name (a bigint as its decimal text). */
    imports: z.record(
      z.string(),
      z.record(
        z.string(),
        z.union([z.number(), z.object({ bigint: z.string() }).strict()]),
      ),
    ).optional(),
  }).strict(),
]);

/** Where and how a compute's tasks run on a worker. */
export type SandboxSpec = z.infer<typeof sandboxSpec>;

/**
 * Messages the client sends to a worker.
 *
 * @example
 * ```ts
 * import { clientMessage } from "./messages.ts";
 *
 * console.log(clientMessage.safeParse({ t: "cancel", id: 3 }).success); // true
 * console.log(clientMessage.safeParse({ t: "cancel", id: -1 }).success); // false
 * ```
 */
export const clientMessage = z.discriminatedUnion("t", [
  z.object({
    t: z.literal("hello"),
    v: z.number().int(),
    /** Content hash of the shipped code. */
    code: z.string(),
    /** The client's Deno version. */
    deno: z.string(),
    /** Shipped modules (paths relative to the code directory) to import before answering. */
    modules: z.array(z.string()),
    /** Tasks the worker runs at once. */
    concurrency: z.number().int().positive(),
  }),
  z.object({
    t: z.literal("call"),
    id,
    /** Module path relative to the code directory. */
    m: z.string(),
    /** The compute's key within its module. */
    k: z.string(),
    /**
     * Arguments streamed in after the call (their place in the payload's
     * array holds `null`): the argument's index, and whether the function
     * gets a `ReadableStream` (else an `AsyncIterable`).
     */
    streams: z.array(z.tuple([id, z.boolean()])).optional(),
  }),
  /**
   * Declares where the tasks of a compute run; sent once per node, before
   * its first `call`. A compute that was never defined runs in a Deno
   * sandbox with no permissions.
   */
  z.object({
    t: z.literal("define"),
    m: z.string(),
    k: z.string(),
    spec: sandboxSpec,
  }),
  z.object({ t: z.literal("cancel"), id }),
  /**
   * The pool's nodes changed (a node joined, left or was replaced): what
   * `instanceInfo()` returns from the next task on.
   */
  z.object({
    t: z.literal("cluster"),
    /** How many ranks the pool holds: the highest rank in use, plus one. */
    totalNodes: z.number().int().nonnegative(),
    /** The private address of each rank; `""` for a free rank. */
    peers: z.array(z.string()),
    /** The private address of node 0. */
    headAddr: z.string(),
  }),
  /**
   * Items of streamed argument `s` of task `id` (the payload an encoded
   * array); or its end; or its failure (the payload an encoded error).
   */
  z.object({
    t: z.literal("in"),
    id,
    s: id,
    end: z.boolean().optional(),
    err: z.boolean().optional(),
  }),
  /** The client took `n` more bytes of the task's streamed result. */
  z.object({ t: z.literal("credit"), id, n: id }),
  /** The client left the task's streamed result: return the generator. */
  z.object({ t: z.literal("stop"), id }),
  /**
   * The client's heartbeat, sent every few seconds: a worker that hears
   * nothing from its client for too long stops (see `worker/deadman.ts`).
   */
  z.object({ t: z.literal("ping") }),
  /**
   * The replies to the worker's collection calls `c` (see
   * `src/collections/service.ts`): the payload packs each encoded reply
   * (`src/collections/_batch.ts`), or for the calls listed in `err` an
   * encoded error.
   */
  z.object({
    t: z.literal("collr"),
    c: z.array(id),
    err: z.array(id).optional(),
  }),
  /**
   * The worker opens a collections backend of its own (sent after `hello`,
   * for a backend such as Redis that nodes reach directly): it imports
   * module `m` (relative to `worker/main.ts`) and calls its
   * `openBackend(config, { poolId })`, the payload the encoded config; its
   * tasks' calls then go there, as `holder`.
   */
  z.object({
    t: z.literal("colls"),
    m: z.string(),
    holder: z.string(),
    poolId: z.string(),
  }),
  z.object({ t: z.literal("bye") }),
]);

/**
 * Messages a worker sends to the client.
 *
 * @example
 * ```ts
 * import { workerMessage } from "./messages.ts";
 *
 * console.log(workerMessage.parse({ t: "ok", id: 3 })); // { t: "ok", id: 3 }
 * ```
 */
export const workerMessage = z.discriminatedUnion("t", [
  z.object({
    t: z.literal("hello"),
    v: z.number().int(),
    deno: z.string(),
    pid: z.number().int(),
    hostname: z.string(),
    /** The worker's code directory, as a file URL ending in `/`. */
    codeUrl: z.string(),
    /** Set when the handshake failed; the payload holds the error. */
    failed: z.boolean().optional(),
  }),
  /** The result (a stream's end, for a streamed result). */
  z.object({ t: z.literal("ok"), id }),
  /** The task's result is streamed: `yield` frames and its end follow. */
  z.object({ t: z.literal("open"), id }),
  /** Items of the task's streamed result (the payload an encoded array). */
  z.object({ t: z.literal("yield"), id }),
  /** The task took `n` more bytes of its streamed argument `s`. */
  z.object({ t: z.literal("credit"), id, s: id, n: id }),
  z.object({
    t: z.literal("err"),
    id,
    /** Set when the result could not be encoded: the path and the problem. */
    path: z.string().optional(),
    problem: z.string().optional(),
  }),
  /**
   * A line of output: of task `id`, or of the node itself (output while a
   * module was imported, the worker's own messages) when `id` is absent.
   */
  z.object({
    t: z.literal("log"),
    id: id.nullish(),
    s: z.enum(["stdout", "stderr"]),
    l: z.string(),
  }),
  z.object({ t: z.literal("perr"), message: z.string() }),
  /**
   * Calls on collections, made by tasks: the payload packs each encoded
   * call (`src/collections/_batch.ts`), answered by `collr`. With `x`, the
   * calls `c` are withdrawn instead: their callers stopped waiting.
   */
  z.object({
    t: z.literal("coll"),
    c: z.array(id),
    x: z.boolean().optional(),
  }),
]);

/** A message from the client to a worker. */
export type ClientMessage = z.infer<typeof clientMessage>;
/** A message from a worker to the client. */
export type WorkerMessage = z.infer<typeof workerMessage>;

/**
 * A schema that checks the messages sent at every task by hand — a header
 * whose keys are exactly `t` (one of `kinds`' keys), a non-negative integer
 * `id`, and the string fields `kinds[t]` names — and every other message
 * with `schema`. What it accepts, `schema` accepts as it is (with no key to
 * strip); the check costs a fraction of zod's, paid twice per task.
 *
 * @param schema The full schema.
 * @param kinds For each kind checked by hand, its string fields beside `t`
 *   and `id`.
 * @returns A schema for a `FrameDecoder`.
 *
 * @example
 * ```ts
 * import { fastPath, workerMessage } from "./messages.ts";
 *
 * const schema = fastPath(workerMessage, { ok: [] });
 * console.log(schema.safeParse({ t: "ok", id: 3 }).success); // true
 * console.log(schema.safeParse({ t: "ok", id: -3 }).success); // false
 * ```
 */
export function fastPath<H>(
  schema: z.ZodType<H>,
  kinds: Record<string, readonly string[]>,
): Pick<z.ZodType<H>, "safeParse"> {
  const fields = new Map(Object.entries(kinds));
  const plain = (raw: unknown): boolean => {
    if (typeof raw !== "object" || raw === null) return false;
    const header = raw as Record<string, unknown>;
    const strings = typeof header.t === "string"
      ? fields.get(header.t)
      : undefined;
    if (!strings || Object.getPrototypeOf(header) !== Object.prototype) {
      return false;
    }
    const id = header.id;
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) {
      return false;
    }
    let count = 0;
    for (const key in header) {
      if (key !== "t" && key !== "id" && !strings.includes(key)) return false;
      count++;
    }
    return count === 2 + strings.length &&
      strings.every((key) => typeof header[key] === "string");
  };
  return {
    safeParse:
      ((raw: unknown) =>
        plain(raw)
          ? { success: true, data: raw as H }
          : schema.safeParse(raw)) as z.ZodType<H>["safeParse"],
  };
}

/**
 * The worker's messages, those of every task checked by hand.
 *
 * @example
 * ```ts
 * import { fastWorkerMessage } from "./messages.ts";
 *
 * console.log(fastWorkerMessage.safeParse({ t: "yield", id: 3 }).success); // true
 * ```
 */
export const fastWorkerMessage: Pick<
  z.ZodType<WorkerMessage>,
  "safeParse"
> = fastPath(workerMessage, { ok: [], open: [], yield: [], err: [] });

/**
 * The client's messages, those of every task checked by hand.
 *
 * @example
 * ```ts
 * import { fastClientMessage } from "./messages.ts";
 *
 * console.log(fastClientMessage.safeParse({ t: "call", id: 1, m: "a.ts", k: "f" }).success); // true
 * console.log(fastClientMessage.safeParse({ t: "call", id: 1, m: "a.ts" }).success); // false
 * ```
 */
export const fastClientMessage: Pick<
  z.ZodType<ClientMessage>,
  "safeParse"
> = fastPath(clientMessage, { call: ["m", "k"], cancel: [] });
