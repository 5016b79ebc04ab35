/**
 * Says what to do when a task imports something its node does not hold.
 *
 * Nodes run from their cache with the code's lockfile frozen
 * (`--cached-only --frozen`), so a module the project and the image did not
 * declare fails to load with one of Deno's messages about lockfiles, caches
 * or import maps. This turns those into one that names the module and how
 * to declare it.
 *
 * @module
 */

/** The name to declare for a specifier: `npm:left-pad@1.3.0` → `left-pad`. */
function nameOf(specifier: string): string {
  const bare = specifier.replace(/^(?:npm|jsr):\/?/, "");
  if (bare === specifier) {
    // An https: URL: its last path segment, without extension.
    try {
      const path = new URL(specifier).pathname.replace(/\/+$/, "");
      return path.slice(path.lastIndexOf("/") + 1).replace(/\.[^.]*$/, "") ||
        "module";
    } catch {
      return specifier;
    }
  }
  const at = bare.indexOf("@", bare.startsWith("@") ? 1 : 0);
  const name = at < 0 ? bare : bare.slice(0, at);
  // Subpaths (`npm:pkg@1/sub`) are declared by their package.
  const parts = name.split("/");
  return name.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

/**
 * The message for an error a task got importing a module its node does not
 * hold, or `undefined` when the message is about something else.
 *
 * @param message The error's message, as Deno wrote it.
 * @returns The message to report instead.
 *
 * @example
 * ```ts
 * import { explainImport } from "./imports.ts";
 *
 * const why = explainImport(
 *   'The lockfile is out of date. Run `deno install --frozen=false`, or rerun with `--frozen=false` to update it.\nchanges:\n 4 | +    "npm:left-pad@1.3.0": "1.3.0",',
 * );
 * console.log(why?.startsWith('Cannot import "npm:left-pad@1.3.0"')); // true
 * ```
 */
export function explainImport(message: string): string | undefined {
  let specifier: string | undefined;
  if (/lockfile is out of date/i.test(message)) {
    specifier = message.match(/\+\s*"((?:npm|jsr):[^"]+)":/)?.[1] ??
      message.match(/\+\s*"(https?:[^"]+)":/)?.[1];
  } else if (/--cached-only/.test(message)) {
    specifier = message.match(/"((?:npm|jsr|https?):[^"]+)"/)?.[1] ??
      message.match(/npm package (?:not found in cache: )?"?'?([^"'\s,]+)/)
        ?.[1];
  } else if (/not a dependency and not in import map/.test(message)) {
    specifier = message.match(/Import "([^"]+)"/)?.[1];
  }
  if (!specifier) return undefined;
  const name = nameOf(specifier);
  const target = /^(?:npm|jsr|https?):/.test(specifier)
    ? specifier
    : `npm:${specifier}`;
  const first = message.split("\n")[0];
  return `Cannot import "${specifier}" on this node: a node holds only the ` +
    `dependencies the project and the image declare, fetched before the ` +
    `pool starts. Declare it in the image: sky.Image({ imports: { ${
      JSON.stringify(name)
    }: ${JSON.stringify(target)} } }) (Deno said: ${first})`;
}
