/**
 * The library as nodes import it. A user's module imports `@skyward/skyward`
 * (by bare name, path or URL); on a node that import resolves to the
 * library's node entry, `node.ts`, which holds what a task needs and none of
 * the client (see `node.ts`). This file says where the two entries are and
 * writes the import map entries that send the one to the other.
 *
 * @module
 */

/**
 * The library's public entry, `mod.ts`, as this client loaded it.
 *
 * @example
 * ```ts
 * import { LIBRARY_MODULE } from "./library.ts";
 *
 * console.log(LIBRARY_MODULE.pathname.endsWith("/mod.ts")); // true
 * ```
 */
export const LIBRARY_MODULE: URL = new URL("../../mod.ts", import.meta.url);

/**
 * The library's node entry, `node.ts`, beside {@linkcode LIBRARY_MODULE}.
 *
 * @example
 * ```ts
 * import { NODE_ENTRY } from "./library.ts";
 *
 * console.log(NODE_ENTRY.pathname.endsWith("/node.ts")); // true
 * ```
 */
export const NODE_ENTRY: URL = new URL("../../node.ts", import.meta.url);

/** A JSR specifier of the library's root export, with or without a version. */
const JSR_ROOT = /^jsr:\/?@skyward\/skyward(?:@[^/]*)?$/;

/**
 * Sends imports of the library's `mod.ts` to its node entry, in an import map
 * the nodes run with: a target naming `mod.ts` (its shipped path, relative to
 * the configuration, its URL, or the library's JSR name) is replaced by the
 * node entry, and `mod.ts` itself, imported by a relative path, is mapped by
 * its key.
 *
 * @param imports The import map's `imports`, as the nodes get them.
 * @param shipped The paths, relative to the configuration (`./lib/mod.ts`),
 *   of `mod.ts` and `node.ts` in the shipped code, when the library's files
 *   are part of it (the user imports the library by path).
 * @returns The map, with the library's entries.
 *
 * @example
 * ```ts
 * import { toNodeEntry } from "./library.ts";
 *
 * const map = toNodeEntry(
 *   { "@skyward/skyward": "./lib/mod.ts" },
 *   { mod: "./lib/mod.ts", node: "./lib/node.ts" },
 * );
 * console.log(map); // { "@skyward/skyward": "./lib/node.ts", "./lib/mod.ts": "./lib/node.ts" }
 * ```
 */
export function toNodeEntry(
  imports: Readonly<Record<string, string>>,
  shipped?: { mod: string; node: string },
): Record<string, string> {
  const remote = LIBRARY_MODULE.protocol !== "file:";
  const node = shipped?.node ?? (remote ? NODE_ENTRY.href : undefined);
  if (node === undefined) return { ...imports };
  const isLibrary = (target: string) =>
    target === shipped?.mod ||
    remote && (target === LIBRARY_MODULE.href || JSR_ROOT.test(target));
  const out: Record<string, string> = {};
  for (const [key, target] of Object.entries(imports)) {
    out[key] = isLibrary(target) ? node : target;
  }
  if (shipped) out[shipped.mod] = shipped.node;
  if (remote) out[LIBRARY_MODULE.href] = node;
  return out;
}
