/**
 * Small checks of the client's file system, for code that must answer
 * synchronously (option parsing, finding a project's configuration).
 *
 * @module
 */

/**
 * Whether a path exists on this machine (following links). Any failure
 * to look, a denied permission included, counts as absent.
 *
 * @param path The path.
 * @returns `true` when `Deno.statSync` finds it.
 *
 * @example
 * ```ts
 * import { pathExistsSync } from "./_fs.ts";
 *
 * console.log(pathExistsSync(Deno.cwd())); // true
 * console.log(pathExistsSync("/no/such/path")); // false
 * ```
 */
export function pathExistsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
