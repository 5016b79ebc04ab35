/**
 * The library's logging, through LogTape.
 *
 * Everything the library logs goes to LogTape categories under
 * `["skyward", ...]`, so a program that configures LogTape sees it like any
 * other library's logs:
 *
 * ```ts ignore
 * import { configure, getConsoleSink } from "npm:@logtape/logtape@2.4.2";
 *
 * await configure({
 *   sinks: { console: getConsoleSink() },
 *   loggers: [{ category: ["skyward"], sinks: ["console"], lowestLevel: "info" }],
 * });
 * ```
 *
 * Without configuring anything, the environment variable `SKYWARD_LOG` is a
 * quick switch: set to `trace`, `debug`, `info`, `warning`, `error` or
 * `fatal`, it makes the library print its own logs at that level and above to
 * stderr, e.g. `SKYWARD_LOG=debug deno run -A main.ts`. It takes effect when
 * the library first logs, and only if LogTape is not configured by then; the
 * program's own configuration always wins. A program that configures LogTape
 * itself should do so before it starts a pool (or pass `reset: true`), since
 * LogTape refuses a second configuration without it. Reading the variable
 * needs `--allow-env` (or `--allow-env=SKYWARD_LOG`); without that permission
 * the switch is off, and nothing asks for the permission. What it prints
 * shows the control characters of logged values escaped, since they may
 * carry a task's text.
 *
 * @module
 */

import {
  ansiColorFormatter,
  configureSync,
  defaultTextFormatter,
  getConfig,
  getLogger,
  type Logger,
  type LogLevel,
  type LogRecord,
} from "npm:@logtape/logtape@2.4.2";
import { escapeControls } from "./wire/output.ts";

/** The environment variable of the quick switch. */
const ENV_VAR = "SKYWARD_LOG";

const LEVELS: readonly LogLevel[] = [
  "trace",
  "debug",
  "info",
  "warning",
  "error",
  "fatal",
];

let envChecked = false;

/** Reads an environment variable only where reading it is already allowed. */
function readEnv(name: string): string | undefined {
  try {
    const { state } = Deno.permissions.querySync({
      name: "env",
      variable: name,
    });
    return state === "granted" ? Deno.env.get(name) : undefined;
  } catch {
    return undefined;
  }
}

function writeStderr(text: string): void {
  const bytes = new TextEncoder().encode(text);
  let written = 0;
  try {
    while (written < bytes.length) {
      const n = Deno.stderr.writeSync(bytes.subarray(written));
      if (n <= 0) return;
      written += n;
    }
  } catch {
    // A closed stderr must not make logging throw into the library.
  }
}

function parseLevel(value: string): LogLevel | undefined {
  const level = value.trim().toLowerCase();
  if (level === "warn") return "warning";
  return LEVELS.find((l) => l === level);
}

const INSPECT = Symbol.for("Deno.customInspect");

/**
 * A record whose values print with their control characters escaped: a
 * value may carry text from a task (an error's message, a worker's output),
 * which must not drive the terminal. Strings are quoted and escaped by the
 * formatter already; other values (errors above all) are shown as Deno
 * inspects them, without colour, then escaped.
 */
function neutralised(record: LogRecord): LogRecord {
  return {
    ...record,
    message: record.message.map((part, i) =>
      i % 2 === 0 || part === null || typeof part !== "object" ? part : {
        [INSPECT]: (
          inspect: (
            value: unknown,
            options?: Record<string, unknown>,
          ) => string,
          options?: Record<string, unknown>,
        ) => escapeControls(inspect(part, { ...options, colors: false })),
      }
    ),
  };
}

/**
 * Applies `SKYWARD_LOG` once: configures a stderr sink for `["skyward"]` at
 * the chosen level if LogTape is not configured yet.
 */
function applyEnvSwitch(): void {
  if (envChecked) return;
  envChecked = true;
  const value = readEnv(ENV_VAR);
  if (value === undefined || value.trim() === "") return;
  if (getConfig() !== null) return;
  const level = parseLevel(value);
  if (level === undefined) {
    writeStderr(
      `skyward: ignoring ${ENV_VAR}=${JSON.stringify(value)}: expected one of ${
        LEVELS.join(", ")
      }\n`,
    );
    return;
  }
  let isTerminal = false;
  try {
    isTerminal = Deno.stderr.isTerminal();
  } catch {
    // Not a terminal, as far as we can tell.
  }
  const format = isTerminal && !Deno.noColor
    ? ansiColorFormatter
    : defaultTextFormatter;
  const stderr = (record: LogRecord) =>
    writeStderr(format(neutralised(record)));
  try {
    configureSync({
      sinks: { stderr },
      loggers: [
        { category: ["skyward"], sinks: ["stderr"], lowestLevel: level },
        // LogTape's own diagnostics: only problems, not its greeting.
        {
          category: ["logtape", "meta"],
          sinks: ["stderr"],
          lowestLevel: "warning",
        },
      ],
    });
  } catch (error) {
    // Configured concurrently by the program: its configuration wins.
    if (getConfig() === null) throw error;
  }
}

/**
 * A LogTape logger under the library's category, `["skyward", ...category]`.
 *
 * The logger is the one `getLogger` from LogTape gives, except that its first
 * use applies the `SKYWARD_LOG` quick switch (see the module documentation),
 * so getting a logger at import time configures nothing yet.
 *
 * @param category The subcategories below `"skyward"`, e.g. `"pool"`.
 * @returns The logger of category `["skyward", ...category]`.
 *
 * @example
 * ```ts
 * import { logger } from "./log.ts";
 *
 * const log = logger("pool", "scheduler");
 * console.log(log.category); // ["skyward", "pool", "scheduler"]
 * log.debug("Queued task {task} for node {node}", { task: 3, node: 1 });
 * ```
 */
export function logger(...category: string[]): Logger {
  const target = getLogger(["skyward", ...category]);
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy(target, {
    get(target, property) {
      applyEnvSwitch();
      const value = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      // LogTape's loggers keep private fields: call methods on the target.
      let method = bound.get(property);
      if (method === undefined) {
        method = value.bind(target);
        bound.set(property, method);
      }
      return method;
    },
  });
}
