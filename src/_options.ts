/**
 * Helpers for checking options: showing a value as the user wrote it,
 * and suggesting the nearest known name for a misspelt one.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";
import { ConfigError } from "./errors.ts";
import { unknownOption } from "./_names.ts";

export { distance, nearest, show, unknownOption } from "./_names.ts";

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
