/**
 * Quoting for POSIX shell command lines, for commands sent to a node.
 *
 * @module
 */

/**
 * Quotes arguments for a POSIX shell.
 *
 * @param argv The program and its arguments.
 * @returns One command line that runs exactly them.
 *
 * @example
 * ```ts
 * import { shellQuote } from "./_shell.ts";
 *
 * console.log(shellQuote(["echo", "it's", "$HOME"])); // echo 'it'\''s' '$HOME'
 * ```
 */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((arg) =>
    /^[A-Za-z0-9_./:=@%+,-]+$/.test(arg)
      ? arg
      : `'${arg.replaceAll("'", `'\\''`)}'`
  ).join(" ");
}
