/**
 * `compute` marks a function to run on a pool; calling the result builds a
 * {@linkcode Pending} task that a pool runs. `gather` and `all` group tasks.
 *
 * A compute is identified by the module that created it (a path relative to
 * the project root on the client, the same path inside the shipped code on a
 * worker) and a key: its `name` option, or the line and column of the
 * `compute` call. The worker re-creates it by importing that module, so a
 * compute must be created when its module is evaluated: at the top level,
 * unconditionally.
 *
 * @module
 */

import { checkSandboxOptions, type Permissions } from "./sandbox.ts";
import { show, unknownOption } from "./_names.ts";
import type { Streamed } from "./wire/stream.ts";

export type { Permissions } from "./sandbox.ts";

/** Options of {@linkcode compute}. */
export interface ComputeOptions {
  /**
   * The compute's name in events and errors, and its key within its module.
   * @default the name of the variable it is assigned to, or of the function
   */
  name?: string;
  /**
   * How long a task may run, in milliseconds, before it fails with
   * `TaskTimeoutError`.
   * @default no limit
   */
  timeout?: number;
  /**
   * Deno permissions of the task's sandbox, deny by default. Names it leaves
   * out take the pool's image's (`sky.Image({ permissions })`); see the
   * README's Security section.
   * @default the image's permissions, else none
   */
  permissions?: Permissions;
  /**
   * Where the task runs on the worker: `"deno"`, a Deno sandbox holding
   * exactly `permissions`; `"wasm"`, QuickJS compiled to WebAssembly, for a
   * self-contained function (no imports, no free variables) with no host API.
   * @default "deno"
   */
  sandbox?: "deno" | "wasm";
  /**
   * Whether tasks share a warm sandbox (per module and permissions) or each
   * gets a fresh one. WASM tasks always get a fresh QuickJS context.
   * @default "shared"
   */
  isolation?: "shared" | "task";
  /**
   * The most memory a task's sandbox may use, in bytes (the heap of a Deno
   * sandbox, the whole QuickJS runtime of a WASM task). Past it the task
   * fails and a Deno sandbox is replaced.
   * @default half the node's memory, at most 4 GiB (Deno); 64 MiB (WASM)
   */
  memoryLimit?: number;
}

/** The options {@linkcode compute} knows. */
const COMPUTE_OPTIONS: readonly (keyof ComputeOptions)[] = [
  "name",
  "timeout",
  "permissions",
  "sandbox",
  "isolation",
  "memoryLimit",
];

/**
 * Checks that a compute's options are an object of known keys.
 *
 * @throws {TypeError} When they are not an object, or a key is unknown (the
 *   message names the nearest known one).
 */
function checkOptionKeys(options: unknown): void {
  if (
    typeof options !== "object" || options === null || Array.isArray(options)
  ) {
    throw new TypeError(
      `Cannot create a compute: its options must be an object such as { timeout: 30_000 }, got ${
        show(options)
      }${
        typeof options === "string"
          ? ` (to name the compute, pass { name: ${JSON.stringify(options)} })`
          : ""
      }`,
    );
  }
  for (const key of Object.keys(options)) {
    if (!(COMPUTE_OPTIONS as readonly string[]).includes(key)) {
      throw new TypeError(
        `Cannot create a compute: ${unknownOption(key, COMPUTE_OPTIONS)}`,
      );
    }
  }
}

// deno-lint-ignore no-explicit-any
type AnyFunction = (...args: any[]) => unknown;

/** Where a compute was created: the module, its key there, and a display name. */
export interface ComputeId {
  /** The URL of the module that created the compute. */
  module: string;
  /** Its key within the module: the `name` option, or `line:column`. */
  key: string;
  /** The name shown in events and errors. */
  name: string;
}

/**
 * A function marked to run on a pool. Call it to build a task; call
 * `.local(...)` to run the function here, with no pool.
 */
export interface Compute<A extends unknown[], R> {
  /** Builds a task that runs the function with these arguments on a pool. */
  (...args: A): Pending<R>;
  /** Runs the function in this process, now, with no pool and no serialisation. */
  local(...args: A): R | Promise<R>;
  /** Where the compute was created and what it is called. */
  readonly id: ComputeId;
  /** The options it was created with. */
  readonly options: Readonly<ComputeOptions>;
  /** The function itself. */
  readonly fn: (...args: A) => unknown;
}

/**
 * One call of a compute, waiting to be run on a pool: `await pool.run(p)`.
 * Immutable; {@linkcode Pending.withTimeout} returns a copy.
 */
export interface Pending<R> {
  /** Marks a task. */
  readonly kind: "task";
  /** The compute to run. */
  readonly compute: Compute<any[], R>;
  /** Its arguments. */
  readonly args: readonly unknown[];
  /** The timeout of this call in milliseconds, if any. */
  readonly timeout: number | undefined;
  /** A copy of this task with another timeout, in milliseconds. */
  withTimeout(ms: number): Pending<R>;
  /** Phantom member carrying the result type; never set. */
  readonly __result?: R;
}

/**
 * Several tasks run together; the pool resolves it to their results in order:
 * `R[]` for {@linkcode gather}, a typed tuple for {@linkcode all}.
 */
export interface Group<R> {
  /** Marks a group. */
  readonly kind: "group";
  /** The tasks, in order. */
  readonly tasks: readonly Pending<unknown>[];
  /** Phantom member carrying the result type; never set. */
  readonly __result?: R;
}

/** A task or a group of tasks: what `pool.run` takes. */
export type Dispatchable<R> = Pending<R> | Group<R>;

/** Whether a value is a {@linkcode Pending} task. */
export function isPending(value: unknown): value is Pending<unknown> {
  return typeof value === "object" && value !== null &&
    (value as { kind?: unknown }).kind === "task" &&
    typeof (value as { compute?: unknown }).compute === "function";
}

/** Whether a value is a {@linkcode Group} of tasks. */
export function isGroup(value: unknown): value is Group<unknown> {
  return typeof value === "object" && value !== null &&
    (value as { kind?: unknown }).kind === "group" &&
    Array.isArray((value as { tasks?: unknown }).tasks);
}

function pending<R>(
  compute: Compute<any[], R>,
  args: readonly unknown[],
  timeout: number | undefined,
): Pending<R> {
  return Object.freeze({
    kind: "task" as const,
    compute,
    args,
    timeout,
    withTimeout(ms: number): Pending<R> {
      checkTimeout("withTimeout", ms);
      return pending(compute, args, ms);
    },
  });
}

function checkTimeout(where: string, ms: unknown): void {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms <= 0) {
    throw new RangeError(
      `Cannot set ${where}: the timeout must be a positive number of milliseconds, got ${
        show(ms)
      }${ms === Infinity ? " (leave it out for no limit)" : ""}`,
    );
  }
}

/** The process-wide registry of computes, shared by every copy of this module. */
interface Registry {
  byModule: Map<string, Map<string, Compute<any[], unknown>>>;
}

const REGISTRY = Symbol.for("skyward.registry");
const WORKER = Symbol.for("skyward.worker");

function registry(): Registry {
  const g = globalThis as Record<symbol, unknown>;
  g[REGISTRY] ??= { byModule: new Map() } satisfies Registry;
  return g[REGISTRY] as Registry;
}

/** Whether this process is a worker (the worker sets this before importing user code). */
export function onWorker(): boolean {
  return (globalThis as Record<symbol, unknown>)[WORKER] === true;
}

/**
 * Finds a compute by module URL and key.
 *
 * @returns The compute, or `undefined` when the module created none by that key.
 */
export function lookupCompute(
  module: string,
  key: string,
): Compute<any[], unknown> | undefined {
  return registry().byModule.get(module)?.get(key);
}

/** The URLs of every module that created a compute, in creation order. */
export function computeModules(): string[] {
  return [...registry().byModule.keys()];
}

interface CallSite {
  getFileName(): string | null;
  getFunctionName(): string | null;
  getLineNumber(): number | null;
  getColumnNumber(): number | null;
}

function callSites(below: AnyFunction): CallSite[] {
  const E = Error as unknown as {
    prepareStackTrace?: (e: Error, s: CallSite[]) => unknown;
    captureStackTrace(target: object, fn: AnyFunction): void;
    stackTraceLimit: number;
  };
  const prepare = E.prepareStackTrace;
  const limit = E.stackTraceLimit;
  const holder: { stack?: CallSite[] } = {};
  try {
    E.stackTraceLimit = 4;
    E.prepareStackTrace = (_error, sites) => sites;
    E.captureStackTrace(holder, below);
    return holder.stack ?? [];
  } finally {
    E.prepareStackTrace = prepare;
    E.stackTraceLimit = limit;
  }
}

function moduleUrl(file: string): string {
  if (/^[a-z][a-z0-9+.-]*:/i.test(file)) return file;
  return new URL(`file://${encodeURI(file.replaceAll("\\", "/"))}`).href;
}

const sources = new Map<string, string[] | null>();

function sourceLines(url: string): string[] | null {
  if (!url.startsWith("file:")) return null;
  if (!sources.has(url)) {
    try {
      sources.set(url, Deno.readTextFileSync(new URL(url)).split("\n"));
    } catch {
      sources.set(url, null);
    }
  }
  return sources.get(url)!;
}

const OPENS_BLOCK =
  /^(if|else|for|while|do|switch|try|catch|finally|with)\b|^[{}]|^(export\s+)?(async\s+)?function\b|^(export\s+)?class\b/;

/**
 * Reads the source around a `compute` call: the name of the variable it is
 * assigned to, and whether the statement it belongs to is conditional.
 */
function inspectSource(
  url: string,
  line: number,
  column: number,
): { variable?: string; conditional?: string } {
  const lines = sourceLines(url);
  if (!lines || line > lines.length) return {};
  const before = lines[line - 1].slice(0, column - 1);
  const variable =
    /(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*(?::[^=]+)?=\s*[\w$.]*$/
      .exec(before)?.[1];
  // The statement starts on the nearest line at or above the call that begins
  // at column 1. A compute created inside a block is conditional.
  for (let i = line - 1; i >= 0 && i >= line - 200; i--) {
    const text = lines[i];
    if (text.length === 0 || /^\s/.test(text)) continue;
    if (
      text.startsWith("//") || text.startsWith("*") || text.startsWith("/*")
    ) continue;
    if (OPENS_BLOCK.test(text)) return { variable, conditional: text.trim() };
    break;
  }
  return { variable };
}

/**
 * Marks a function to run on a pool.
 *
 * The returned callable builds a {@linkcode Pending} task; nothing runs until a
 * pool runs it. The result type is the function's awaited return type, so
 * `await pool.run(square(2))` is a `number` to the type checker; a result
 * that streams (an async generator, an `AsyncIterable`, a `ReadableStream`)
 * is an `AsyncIterable` of its items.
 *
 * @param fn The function. Its arguments and result must be values the codec
 *   can send (plain data, `Map`, `Set`, `Date`, typed arrays, errors, ...).
 * @param options Name, timeout and sandbox of its tasks.
 * @returns The compute.
 * @throws {TypeError} When `fn` is not a function, the options are not an
 *   object of known keys (an unknown key is named with the nearest known
 *   one), or the compute is created where a worker cannot re-create it
 *   (inside a function or a block).
 * @throws {RangeError} When an option is out of range.
 *
 * Create computes at the top level of a module, as `examples/parallel.ts`
 * does: `export const square = sky.compute((x: number) => x * x);`.
 *
 * @example
 * ```ts
 * import { square } from "../examples/parallel.ts";
 *
 * console.log(square.local(6)); // 36
 * console.log(square(3).args); // [3]: a task, run by a pool
 * ```
 */
export function compute<A extends unknown[], R>(
  fn: (...args: A) => R,
  options: ComputeOptions = {},
): Compute<A, Streamed<Awaited<R>>> {
  if (typeof fn !== "function") {
    throw new TypeError(
      `Cannot create a compute: expected a function, got ${
        fn === null ? "null" : typeof fn
      }`,
    );
  }
  checkOptionKeys(options);
  if (options.timeout !== undefined) {
    checkTimeout("the compute's timeout", options.timeout);
  }
  checkSandboxOptions(fn, options);
  if (
    options.name !== undefined &&
    (typeof options.name !== "string" || options.name === "")
  ) {
    throw new TypeError(
      `Cannot create a compute: 'name' must be a non-empty string, got ${
        JSON.stringify(options.name)
      }`,
    );
  }
  const sites = callSites(creator ?? compute);
  const site = sites[0];
  const file = site?.getFileName();
  if (!site || !file) {
    throw new TypeError(
      "Cannot create a compute: its module could not be determined",
    );
  }
  const module = moduleUrl(file);
  const line = site.getLineNumber() ?? 0;
  const column = site.getColumnNumber() ?? 0;
  const where = `${module.replace(/^file:\/\//, "")}:${line}:${column}`;
  const worker = onWorker();
  // At a module's top level, the module's own frame is the only one left.
  if (!worker && (site.getFunctionName() !== null || sites.length > 1)) {
    const inside = site.getFunctionName();
    throw new TypeError(
      `Cannot create a compute at ${where}: it is created inside ${
        inside ? `function '${inside}'` : "a function or callback"
      }, where a worker cannot re-create it. Create computes at the top level of a module ` +
        `(for example \`export const f = sky.compute(...)\`).`,
    );
  }
  const source = worker ? {} : inspectSource(module, line, column);
  if (source.conditional) {
    throw new TypeError(
      `Cannot create a compute at ${where}: it is created inside a block (\`${source.conditional}\`), ` +
        `so a worker importing the module may not re-create it. Create computes unconditionally ` +
        `at the top level of a module.`,
    );
  }
  const key = options.name ?? `${line}:${column}`;
  const name = options.name ?? (source.variable ?? (fn.name || key));
  let computes = registry().byModule.get(module);
  if (!computes) registry().byModule.set(module, computes = new Map());
  if (computes.has(key)) {
    throw new TypeError(
      `Cannot create a compute at ${where}: ${
        options.name
          ? `another compute in this module is already named '${key}'`
          : "a compute was already created at this place (in a loop?); give each a distinct 'name'"
      }`,
    );
  }
  const self =
    ((...args: A) => pending(self, args, options.timeout)) as Compute<
      A,
      Streamed<Awaited<R>>
    >;
  Object.defineProperties(self, {
    local: { value: (...args: A) => fn(...args) },
    id: { value: Object.freeze({ module, key, name }) },
    options: { value: Object.freeze({ ...options }) },
    fn: { value: fn },
    name: { value: name },
  });
  computes.set(key, self as Compute<any[], unknown>);
  return self;
}

let creator: AnyFunction | undefined;

/**
 * Creates a compute on behalf of an API function such as `sky.wasm`: the
 * compute is identified by the place that called `api`, as if that place had
 * called `compute` itself.
 *
 * @param api The function the user called.
 * @param fn The compute's function.
 * @param options Its options.
 * @returns The compute.
 */
export function computeFor<A extends unknown[], R>(
  api: AnyFunction,
  fn: (...args: A) => R,
  options: ComputeOptions,
): Compute<A, Streamed<Awaited<R>>> {
  creator = api;
  try {
    return compute(fn, options);
  } finally {
    creator = undefined;
  }
}

/** The result type of a task or group. */
export type ResultOf<T> = T extends Pending<infer R> ? R
  : T extends Group<infer R> ? R
  : never;

/**
 * Groups tasks of one result type; a pool runs them concurrently and resolves
 * to their results in order.
 *
 * @param tasks The tasks.
 * @returns A group that `pool.run` resolves to `R[]`.
 *
 * @example
 * ```ts
 * import * as sky from "../mod.ts";
 * import { square } from "../examples/parallel.ts";
 *
 * const group = sky.gather(square(1), square(2), square(3));
 * console.log(group.tasks.length); // 3
 * ```
 */
export function gather<R>(...tasks: Pending<R>[]): Group<R[]> {
  for (const [i, task] of tasks.entries()) {
    if (!isPending(task)) {
      throw new TypeError(
        `Cannot gather: argument ${i} is not a task (call a compute to build one), got ${typeof task}`,
      );
    }
  }
  return Object.freeze({
    kind: "group" as const,
    tasks: Object.freeze([...tasks]),
  });
}

/**
 * Groups tasks of different result types into a typed tuple: `pool.run` of
 * `all(a, b, c)` resolves to `[A, B, C]`.
 *
 * @param tasks The tasks.
 * @returns A group that `pool.run` resolves to the tuple of their results.
 *
 * @example
 * ```ts
 * import * as sky from "../mod.ts";
 * import { square } from "../examples/parallel.ts";
 * import { info } from "../examples/demo.ts";
 *
 * const both = sky.all(square(3), info());
 * console.log(both.tasks.length); // 2; `pool.run(both)` gives [number, InstanceInfo]
 * ```
 */
export function all<T extends Pending<unknown>[]>(
  ...tasks: T
): Group<{ [K in keyof T]: ResultOf<T[K]> }> {
  return gather(...tasks) as unknown as Group<
    { [K in keyof T]: ResultOf<T[K]> }
  >;
}
