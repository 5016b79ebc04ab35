/**
 * Modules of the library that are loaded on first use only: the SSH
 * transport (`npm:ssh2`) and the AWS SDK. A user who runs `sky.Local()`
 * never downloads them, and the nodes, whose graph is the user's code and
 * the library's worker, never receive them.
 *
 * What Deno does, found by trying it (Deno 2.9, fresh `DENO_DIR`):
 *
 * - a dynamic `import("./x.ts")` or `import("npm:…")` whose argument is a
 *   string literal (or a template literal, which matches every file it could
 *   name) is part of the module graph: `deno run` downloads it before the
 *   program starts, and `deno info` lists it (so it would be shipped);
 * - type-only imports (`import type`, `typeof import("…")`) are not loaded
 *   by `deno run`, but `deno info` lists them too;
 * - an `import()` of a URL computed at run time is resolved and downloaded
 *   when it runs, npm packages included, and is in no graph.
 *
 * So a lazy module is imported here through a computed URL, and its callers
 * see it through an interface declared on their side (never through
 * `typeof import`), which the lazy module implements and `deno check`
 * verifies. A lazy module may import npm packages by the import map's bare
 * names: `deno publish` rewrites every file of the package, graph or not.
 *
 * @module
 */
import { ProvisioningError } from "./errors.ts";

/**
 * Makes a loader of a module of this library that imports it on the first
 * call and returns the same module afterwards. A failed import stays
 * failed for the life of the process, as Deno keeps a module's failure.
 *
 * @param url The module's URL, made with `new URL("./x.ts", import.meta.url)`.
 * @param what What the module brings, for the error, e.g. `"the AWS SDK (npm:@aws-sdk/client-ec2)"`.
 * @returns A function that resolves to the module.
 * @throws {ProvisioningError} (as a rejection) When the module or a package
 *   it imports cannot be loaded, e.g. the registry is unreachable.
 *
 * @example
 * ```ts
 * import { lazyModule } from "./_lazy.ts";
 *
 * const errors = lazyModule<{ ConfigError: ErrorConstructor }>(
 *   new URL("./errors.ts", import.meta.url),
 *   "the error classes",
 * );
 * console.log((await errors()).ConfigError.name); // "ConfigError"
 * ```
 */
export function lazyModule<T>(url: URL, what: string): () => Promise<T> {
  const href = url.href;
  let loading: Promise<T> | undefined;
  return () => {
    if (!loading) {
      // Computed on purpose, so that Deno does not prefetch it (see above);
      // `deno publish` warns that it cannot analyse it, which is the point.
      loading = (import(href) as Promise<T>).catch((error) => {
        throw new ProvisioningError(
          `Cannot load ${what}, which Skyward fetches on first use: ${
            error instanceof Error ? error.message : String(error)
          }`,
          { cause: error },
        );
      });
    }
    return loading;
  };
}
