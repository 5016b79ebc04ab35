/**
 * How a node's worker is launched: the one worker entry module
 * ({@linkcode WORKER_MAIN}), the library's code as nodes get it, and the
 * command line that starts the worker ({@linkcode workerArgv}).
 *
 * @module
 */
import { buildBundle, type Bundle } from "./bundle.ts";
import type { LibrarySource } from "./stage.ts";

/**
 * The worker's entry module, `worker/main.ts` of this library: what every
 * node runs, from the client's own files (local nodes) or from the copy
 * shipped with the library's bundle.
 *
 * @example
 * ```ts
 * import { WORKER_MAIN } from "./worker.ts";
 *
 * console.log(WORKER_MAIN.pathname.endsWith("/worker/main.ts")); // true
 * ```
 */
export const WORKER_MAIN: URL = new URL(
  "../../worker/main.ts",
  import.meta.url,
);

/**
 * The bundle of the library's worker: `worker/main.ts` and what it imports,
 * and the modules the worker loads on first use that the pool needs (e.g.
 * the Redis collections backend, with its npm packages).
 *
 * @param extra More modules of the library to ship, as `file:` URLs.
 * @returns The bundle (cached while its files are unchanged).
 * @throws {ConfigError} When the library is not on the local file system.
 *
 * @example
 * ```ts
 * import { libraryBundle } from "./worker.ts";
 *
 * const lib = await libraryBundle();
 * console.log(lib.files.some((f) => f.path.endsWith("worker/main.ts"))); // true
 * ```
 */
export function libraryBundle(
  extra: readonly string[] = [],
): Promise<Bundle> {
  return buildBundle([WORKER_MAIN.href, ...extra]);
}

/**
 * The library's worker as nodes get it: its bundle when the library is on
 * the local file system (imported by path), else the worker module's URL
 * (the library was imported from JSR or an `https:` URL), which is then
 * vendored with the code.
 *
 * @param extra More modules of the library to ship (see {@linkcode libraryBundle}).
 * @returns The bundle or the URL.
 *
 * @example
 * ```ts
 * import { librarySource } from "./worker.ts";
 *
 * const lib = await librarySource();
 * console.log(typeof lib === "string" ? lib : lib.root);
 * ```
 */
export function librarySource(
  extra: readonly string[] = [],
): Promise<LibrarySource> {
  return WORKER_MAIN.protocol === "file:"
    ? libraryBundle(extra)
    : Promise.resolve(WORKER_MAIN.href);
}

/**
 * The command line that starts a node's worker: Deno with every
 * permission (the sandboxes inside it hold each task to its own), the
 * unstable worker options the sandboxes need, the given flags, and the
 * configuration, when there is one.
 *
 * @param deno The Deno binary.
 * @param config The configuration file (`--config`), if any.
 * @param entry The worker's entry module.
 * @param flags More flags, e.g. `["--cached-only", "--frozen"]`.
 * @returns The program and its arguments.
 *
 * @example
 * ```ts
 * import { workerArgv } from "./worker.ts";
 *
 * console.log(workerArgv("deno", undefined, "main.ts").join(" "));
 * // deno run --quiet --no-prompt -A --unstable-worker-options main.ts
 * ```
 */
export function workerArgv(
  deno: string,
  config: string | undefined,
  entry: string,
  flags: string[] = [],
): string[] {
  return [
    deno,
    "run",
    "--quiet",
    "--no-prompt",
    "-A",
    "--unstable-worker-options",
    ...flags,
    ...(config ? ["--config", config] : []),
    entry,
  ];
}
