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

/**
 * Makes a loader of a module of this library that imports it on the first
 * call and returns the same module afterwards; a failed import is tried
 * again on the next call.
 *
 * @param url The module's URL, made with `new URL("./x.ts", import.meta.url)`.
 * @returns A function that resolves to the module.
 *
 * @example
 * ```ts
 * import { lazyModule } from "./_lazy.ts";
 *
 * const errors = lazyModule<{ ConfigError: ErrorConstructor }>(
 *   new URL("./errors.ts", import.meta.url),
 * );
 * console.log((await errors()).ConfigError.name); // "ConfigError"
 * ```
 */
export function lazyModule<T>(url: URL): () => Promise<T> {
  const href = url.href;
  let loading: Promise<T> | undefined;
  return () => {
    if (!loading) {
      // Computed on purpose, so that Deno does not prefetch it (see above);
      // `deno publish` warns that it cannot analyse it, which is the point.
      loading = import(href) as Promise<T>;
      loading.catch(() => loading = undefined);
    }
    return loading;
  };
}
