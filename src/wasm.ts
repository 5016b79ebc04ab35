/**
 * `wasm`: a compute that runs an export of a raw WebAssembly module in the
 * worker's WASM sandbox, with a memory cap, a time limit and nothing imported
 * beyond what it declares.
 *
 * @module
 */
import { type Compute, computeFor, onWorker } from "./compute.ts";
import { setWasmModule, type WasmModuleSpec } from "./sandbox.ts";

/** Options of {@linkcode wasm}. */
export interface WasmOptions {
  /**
   * The compute's name in events and errors, and its key within its module.
   * @default the name of the variable it is assigned to, or the export's name
   */
  name?: string;
  /**
   * The most the module's memory may grow to, in 64 KiB pages: a memory the
   * module declares is capped there (its `memory.grow` fails past it), one
   * it imports is made with that maximum. A module whose memory starts
   * larger fails.
   * @default 1024 (64 MiB)
   */
  memoryPages?: number;
  /**
   * How long one call may run, in milliseconds; past it the call is stopped
   * and the task fails.
   * @default no limit
   */
  timeout?: number;
  /**
   * Values of the globals the module imports, by module and name (numbers,
   * or bigints for `i64`). Nothing else is given: a module importing a
   * function fails to run.
   */
  imports?: Record<string, Record<string, number | bigint>>;
}

/**
 * Marks an export of a raw WebAssembly module to run on a pool: calling the
 * result builds a task, run by the worker in its WASM sandbox (a thread with
 * no Deno permissions), in a fresh instance each call. Arguments and the
 * result are numbers and bigints, as WebAssembly exports take them.
 *
 * The module is read (or copied) now and sent to each node once. Like any
 * compute, call `wasm` at the top level of a module.
 *
 * @param module The module's bytes, or the path or `file:` URL of a `.wasm` file.
 * @param exportName The exported function to call.
 * @param options Name, memory cap, time limit and imported globals.
 * @returns The compute.
 * @throws {TypeError} When the bytes are not a valid WebAssembly module, the
 *   export is not one of its functions, or `module` is a remote URL (fetch
 *   it yourself and pass the bytes).
 * @throws {RangeError} When `memoryPages` or `timeout` is not a positive integer.
 *
 * Create them at the top level of a module, as `examples/sandboxes.ts` does:
 * `export const add = sky.wasm<[number, number]>(bytes, "add", { timeout: 1_000 })`.
 *
 * @example
 * ```ts
 * import { add } from "../examples/sandboxes.ts";
 *
 * console.log(add.local(2, 3)); // 5; `await pool.run(add(2, 3))` runs it on a node
 * ```
 */
export function wasm<A extends (number | bigint)[] = number[], R = number>(
  module: Uint8Array | ArrayBuffer | URL | string,
  exportName: string,
  options: WasmOptions = {},
): Compute<A, R> {
  if (onWorker()) {
    // A sandbox importing this module to run its other computes: the
    // WebAssembly itself reaches the node in its compute's spec.
    return computeFor(wasm, () => {
      throw new Error("A WebAssembly compute runs in the WASM sandbox");
    }, { name: options.name }) as unknown as Compute<A, R>;
  }
  const bytes = readModule(module);
  if (!WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>)) {
    throw new TypeError(
      "Cannot create a WebAssembly compute: the bytes are not a valid WebAssembly module",
    );
  }
  const compiled = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
  const exported = WebAssembly.Module.exports(compiled);
  if (!exported.some((e) => e.name === exportName && e.kind === "function")) {
    throw new TypeError(
      `Cannot create a WebAssembly compute: the module exports no function '${exportName}' (its exports: ${
        exported.map((e) => `${e.name} (${e.kind})`).join(", ") || "none"
      })`,
    );
  }
  for (const key of ["memoryPages", "timeout"] as const) {
    const value = options[key];
    if (value !== undefined && (!Number.isSafeInteger(value) || value <= 0)) {
      throw new RangeError(
        `Cannot create a WebAssembly compute: '${key}' must be a positive integer, got ${value}`,
      );
    }
  }
  const imports = (options.imports ?? {}) as WebAssembly.Imports;
  const run = (...args: A): R => {
    const instance = new WebAssembly.Instance(compiled, imports);
    return (instance.exports[exportName] as (...a: A) => R)(...args);
  };
  Object.defineProperty(run, "name", { value: exportName });
  const created = computeFor(wasm, run, {
    name: options.name,
    timeout: options.timeout,
  });
  const spec: WasmModuleSpec = {
    module: bytes,
    export: exportName,
    memoryPages: options.memoryPages,
    timeout: options.timeout,
    imports: options.imports && Object.fromEntries(
      Object.entries(options.imports).map(([name, values]) => [
        name,
        Object.fromEntries(
          Object.entries(values).map((
            [key, v],
          ) => [key, typeof v === "bigint" ? { bigint: String(v) } : v]),
        ),
      ]),
    ),
  };
  setWasmModule(created, spec);
  return created as unknown as Compute<A, R>;
}

function readModule(
  module: Uint8Array | ArrayBuffer | URL | string,
): Uint8Array<ArrayBuffer> {
  if (module instanceof Uint8Array) return new Uint8Array(module);
  if (module instanceof ArrayBuffer) return new Uint8Array(module.slice(0));
  const url = module instanceof URL
    ? module
    : /^[a-z][a-z0-9+.-]*:/i.test(module)
    ? new URL(module)
    : undefined;
  if (url && url.protocol !== "file:") {
    throw new TypeError(
      `Cannot create a WebAssembly compute from ${url.href}: only local files are read; ` +
        `fetch it yourself and pass the bytes`,
    );
  }
  return Deno.readFileSync(url ?? (module as string));
}
