/**
 * `skyward dashboard <file>`: serves the dashboard of a pool from its event
 * log (a pool started with `eventLog: "<file>"`), following the file as it
 * grows, so that a script's pool can be watched from another terminal, while
 * it runs or after it ended.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ConfigError } from "../errors.ts";
import { followEventLog } from "./event_log.ts";
import { loadDashboard } from "./serve.ts";

const USAGE = `Usage: skyward dashboard <file> [--port PORT]

Serves the live dashboard of a pool from its event log: the file a pool
started with \`eventLog: "<file>"\` writes its events to. The file is
followed as it grows; the page is on 127.0.0.1, at an address holding a
random token, printed once. Ctrl-C stops it.

Options:
  --port PORT   The port to listen on (default: a free one)
`;

/** Options of {@linkcode dashboardCommand}. */
export interface DashboardCommandOptions {
  /** Stops the command (besides Ctrl-C). */
  signal?: AbortSignal;
  /**
   * Prints a line of the command's output.
   * @default console.log
   */
  print?: (line: string) => void;
}

/**
 * Runs `skyward dashboard`.
 *
 * @param args The arguments after `dashboard`.
 * @param options A signal that stops it, and where to print.
 * @returns The exit code: 0 stopped, 2 bad usage.
 *
 * @example
 * ```ts ignore
 * const stop = new AbortController();
 * const code = dashboardCommand(["run.jsonl"], { signal: stop.signal });
 * stop.abort();
 * console.log(await code); // 0
 * ```
 */
export async function dashboardCommand(
  args: string[],
  options: DashboardCommandOptions = {},
): Promise<number> {
  const print = options.print ?? ((line: string) => console.log(line));
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        port: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.values.help) {
    print(USAGE);
    return 0;
  }
  const [file, ...extra] = parsed.positionals;
  if (file === undefined || extra.length > 0) {
    console.error(
      `${
        file === undefined
          ? "dashboard needs the event log's path"
          : `dashboard takes one file, got ${parsed.positionals.length}`
      }\n\n${USAGE}`,
    );
    return 2;
  }
  const portText = parsed.values.port;
  const port = portText === undefined ? undefined : Number(portText);
  if (
    port !== undefined &&
    (!/^\d+$/.test(portText!) || port > 65_535)
  ) {
    console.error(
      `--port must be a port number from 0 to 65535, got '${portText}'`,
    );
    return 2;
  }
  try {
    await Deno.stat(file);
  } catch (error) {
    console.error(
      `ConfigError: Cannot follow the event log ${file}: ${
        (error as Error).message
      }. Start the pool with \`eventLog: "${file}"\` to write it.`,
    );
    return 2;
  }
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  options.signal?.addEventListener("abort", onSignal, { once: true });
  if (options.signal?.aborted) stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    const { serveDashboard } = await loadDashboard();
    const server = await serveDashboard({ port });
    try {
      print(`Dashboard: ${server.url}`);
      print(`Following ${file}; Ctrl-C stops.`);
      await followEventLog(file, (record) => server.apply(record), {
        signal: stop.signal,
        onRestart: () => server.reset(),
      });
    } finally {
      await server.close();
    }
    return 0;
  } catch (error) {
    console.error(`${(error as Error).name}: ${(error as Error).message}`);
    return error instanceof ConfigError ? 2 : 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    options.signal?.removeEventListener("abort", onSignal);
  }
}
