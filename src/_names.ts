/**
 * Names and values as messages show them: a value as the user wrote it, and
 * the nearest known name for a misspelt one. Free of any dependency, so that
 * what a node loads (`compute`, sandboxes' checks) stays light.
 *
 * @module
 */

/**
 * A value as a message quotes it: `NaN`, `Infinity`, `-1`, `"text"`,
 * `a function`, `{"a":1}`. Unlike `JSON.stringify`, never `null` for a
 * number that JSON cannot hold.
 *
 * @param value Anything.
 * @returns Its text for a message.
 *
 * @example
 * ```ts
 * import { show } from "./_names.ts";
 *
 * console.log(show(NaN), show({ max: Infinity }), show("2")); // NaN {"max":"Infinity"} "2"
 * ```
 */
export function show(value: unknown): string {
  if (typeof value === "function") return "a function";
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "number" || value === undefined) return String(value);
  if (typeof value === "symbol") return value.toString();
  try {
    return JSON.stringify(
      value,
      (_key, v) =>
        typeof v === "number" && !Number.isFinite(v)
          ? String(v)
          : typeof v === "bigint"
          ? `${v}n`
          : v,
    ) ?? String(value);
  } catch {
    return String(value);
  }
}

/** The edit distance between two words (insertions, deletions, substitutions, swaps). */
export function distance(a: string, b: string): number {
  const d: number[][] = Array.from(
    { length: a.length + 1 },
    (_, i) => Array.from({ length: b.length + 1 }, (_, j) => i || j),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(
        d[i - 1][j] + 1,
        d[i][j - 1] + 1,
        d[i - 1][j - 1] + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/**
 * The known name nearest to a misspelt one, when it is near enough to be
 * the one meant (at most a third of its letters differ).
 *
 * @param word The name given.
 * @param known The names accepted.
 * @returns The nearest known name, or `undefined`.
 *
 * @example
 * ```ts
 * import { nearest } from "./_names.ts";
 *
 * console.log(nearest("isolaton", ["name", "isolation"])); // "isolation"
 * console.log(nearest("colour", ["name", "isolation"])); // undefined
 * ```
 */
export function nearest(
  word: string,
  known: readonly string[],
): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const name of known) {
    const d = distance(word.toLowerCase(), name.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [name, d];
  }
  return bestDistance <= Math.max(1, Math.floor(word.length / 3))
    ? best
    : undefined;
}

/**
 * The message part naming an unknown option: `unknown option 'isolaton'
 * (did you mean 'isolation'?)`.
 *
 * @param key The unknown key.
 * @param known The keys accepted there.
 * @returns The message part.
 *
 * @example
 * ```ts
 * import { unknownOption } from "./_names.ts";
 *
 * console.log(unknownOption("timout", ["name", "timeout"]));
 * // unknown option 'timout' (did you mean 'timeout'?)
 * ```
 */
export function unknownOption(key: string, known: readonly string[]): string {
  const near = nearest(key, known);
  return `unknown option '${key}' (${
    near ? `did you mean '${near}'?` : `the options are ${known.join(", ")}`
  })`;
}
