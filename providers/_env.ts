/**
 * Reading the environment the way every provider does: an unset, empty or
 * blank variable, or one the program may not read, is no value.
 *
 * Internal to the providers; not part of the public API.
 *
 * @module
 */

/**
 * A variable of the environment, trimmed.
 *
 * @param name The variable, e.g. `"VAST_API_KEY"`.
 * @returns Its value, or `undefined` when it is unset, blank, or env
 *   access is not granted (a task's sandbox evaluates the providers too).
 *
 * @example
 * ```ts
 * import { envVar } from "./_env.ts";
 *
 * console.log(envVar("SKYWARD_SURELY_UNSET")); // undefined
 * ```
 */
export function envVar(name: string): string | undefined {
  try {
    return Deno.env.get(name)?.trim() || undefined;
  } catch {
    return undefined;
  }
}
