/**
 * Helpers for checking options: showing a value as the user wrote it,
 * and suggesting the nearest known name for a misspelt one.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";
import { ConfigError } from "./errors.ts";

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
 * import { show } from "./_options.ts";
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
 * import { nearest } from "./_options.ts";
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
 * import { unknownOption } from "./_options.ts";
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

/** The part of a validation issue that {@linkcode optionsProblem} reads (zod's shape). */
export interface OptionIssue {
  /** The kind of problem, e.g. `"unrecognized_keys"`. */
  code: string;
  /** Where, from the options object. */
  path: readonly PropertyKey[];
  /** The unknown keys, for `"unrecognized_keys"`. */
  keys?: readonly string[];
}

/**
 * What is wrong with an options object, for a provider's or an image's
 * factory: each unknown top-level key named with the nearest known one,
 * else the validator's own description.
 *
 * @param issues The validation issues.
 * @param known The options accepted.
 * @param fallback The validator's description of the issues.
 * @returns The message part.
 *
 * @example
 * ```ts
 * import { optionsProblem } from "./_options.ts";
 *
 * console.log(optionsProblem(
 *   [{ code: "unrecognized_keys", path: [], keys: ["rot"] }],
 *   ["root", "keepCode"],
 *   "Unrecognized key: \"rot\"",
 * )); // unknown option 'rot' (did you mean 'root'?)
 * ```
 */
export function optionsProblem(
  issues: readonly OptionIssue[],
  known: readonly string[],
  fallback: string,
): string {
  const unknown = issues.filter((i) =>
    i.code === "unrecognized_keys" && i.path.length === 0
  ).flatMap((i) => i.keys ?? []);
  if (unknown.length === 0) return fallback;
  const rest = issues.filter((i) =>
    !(i.code === "unrecognized_keys" && i.path.length === 0)
  );
  return [
    ...unknown.map((key) => unknownOption(key, known)),
    ...(rest.length > 0 ? [fallback] : []),
  ].join("; ");
}

/**
 * Validates a factory's options against its schema: the parsed options, or a
 * `ConfigError` naming each unknown option with the nearest known one
 * ({@linkcode optionsProblem}), else the validator's description.
 *
 * @param schema The options' schema (a strict object).
 * @param options The options given.
 * @param what What the message starts with, e.g. `Invalid sky.SSH options`.
 * @returns The parsed options.
 * @throws {ConfigError} When the options do not fit the schema.
 *
 * @example
 * ```ts
 * import { z } from "npm:zod@4.6.7";
 * import { parseOptions } from "./_options.ts";
 *
 * const schema = z.object({ root: z.string().optional() }).strict();
 * console.log(parseOptions(schema, { root: "/tmp" }, "Invalid options")); // { root: "/tmp" }
 * ```
 */
export function parseOptions<S extends z.ZodObject>(
  schema: S,
  options: unknown,
  what: string,
): z.output<S> {
  const parsed = schema.safeParse(options);
  if (parsed.success) return parsed.data;
  throw new ConfigError(
    `${what}: ${
      optionsProblem(
        parsed.error.issues,
        Object.keys(schema.shape),
        z.prettifyError(parsed.error),
      )
    }`,
  );
}
