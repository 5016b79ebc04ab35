/**
 * Commands on an SSH connection: a channel as an {@linkcode SshProcess}
 * (stdio as web streams, its end as a promise), environment variables set
 * by the remote shell, and a short command run to its end.
 *
 * @module
 */
// @ts-types="npm:@types/ssh2@1.15.6"
import type { ClientChannel } from "npm:ssh2@1.17.0";
import { logger } from "../../log.ts";
import { shellQuote } from "../../_shell.ts";
import { SshConnectionError } from "./errors.ts";
import { nodeToWeb, webWritable } from "./streams.ts";

const log = logger("ssh");

/** Options of `SshConnection.exec`. */
export interface SshExecOptions {
  /**
   * Environment variables for the command, set by the remote shell (so they
   * need no `AcceptEnv` on the server). Names must be shell identifiers.
   */
  env?: Record<string, string>;
}

/** How a remote command ended. */
export interface SshExit {
  /** The exit code; `null` when it died by a signal or gave no status. */
  code: number | null;
  /** The signal that ended it, e.g. `"SIGKILL"`, when one did. */
  signal?: string;
}

/**
 * A command running on the host: its stdio as web streams (binary-safe, with
 * backpressure down to the SSH window) and its end.
 *
 * Read (or cancel) both `readable` and `stderr`: the two share the channel's
 * window, so an unread `stderr` eventually stalls `readable` too.
 */
export interface SshProcess {
  /** The command's standard output. */
  readonly readable: ReadableStream<Uint8Array>;
  /** The command's standard input; closing it sends EOF. */
  readonly writable: WritableStream<Uint8Array>;
  /** The command's standard error. */
  readonly stderr: ReadableStream<Uint8Array>;
  /**
   * Settles when the channel has closed: with the exit status, or rejected
   * with an {@linkcode SshConnectionError} when the connection was lost or
   * closed first. (A rejection nobody awaits is not reported as unhandled.)
   */
  readonly exited: Promise<SshExit>;
  /**
   * Sends a signal to the command (servers that support it: OpenSSH 7.9+).
   *
   * @param name The signal's name without `SIG`, e.g. `"TERM"` (as SSH names them).
   */
  signal(name: string): void;
  /** Sends `KILL`, then closes the channel. */
  kill(): void;
  /** Closes the channel: the command sees its pipes close. */
  close(): void;
}

/** Options of `SshConnection.run`. */
export interface SshRunOptions extends SshExecOptions {
  /** What to write to the command's standard input before closing it. */
  stdin?: string | Uint8Array;
  /** Aborts the command (it is killed) and rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** What a short command gave, see `SshConnection.run`. */
export interface SshRunResult extends SshExit {
  /** Standard output, decoded as UTF-8. */
  stdout: string;
  /** Standard error, decoded as UTF-8. */
  stderr: string;
}

/** A channel that is open, as the connection fails it when it is lost. */
export interface OpenChannel {
  /** Errors the channel's streams and rejects its `exited`. */
  fail(error: SshConnectionError): void;
}

/**
 * A command line that first exports the given variables (so they need no
 * `AcceptEnv` on the server).
 *
 * @param command The command line.
 * @param env The variables; names must be shell identifiers.
 * @returns The command line.
 * @throws {TypeError} When a name is not a shell identifier.
 *
 * @example
 * ```ts
 * import { withEnv } from "./exec.ts";
 *
 * console.log(withEnv("env", { MODE: "a b" })); // export MODE='a b'; env
 * ```
 */
export function withEnv(
  command: string,
  env: Record<string, string> | undefined,
): string {
  if (!env) return command;
  const assignments: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new TypeError(
        `Cannot run command over SSH: environment variable names must be shell identifiers, got '${name}'`,
      );
    }
    assignments.push(`${name}=${shellQuote([value])}`);
  }
  return assignments.length
    ? `export ${assignments.join(" ")}; ${command}`
    : command;
}

/**
 * Takes an `ssh2` exec channel as an {@linkcode SshProcess}, registered in
 * `open` until it closes, so that a lost connection fails it.
 *
 * @param channel The channel.
 * @param open The connection's open channels.
 * @param batch Runs each write to the channel's input (see `webWritable`).
 * @returns The process.
 *
 * @example
 * ```ts ignore
 * import { adoptChannel, type OpenChannel } from "./exec.ts";
 *
 * const open = new Set<OpenChannel>();
 * client.exec("uname", (error, channel) => {
 *   const process = adoptChannel(channel, open);
 * });
 * ```
 */
export function adoptChannel(
  channel: ClientChannel,
  open: Set<OpenChannel>,
  batch?: (write: () => void) => void,
): SshProcess {
  let exit: SshExit | undefined;
  let failed: SshConnectionError | undefined;
  let resolveExited!: (exit: SshExit) => void;
  let rejectExited!: (error: SshConnectionError) => void;
  const exited = new Promise<SshExit>((resolve, reject) => {
    resolveExited = resolve;
    rejectExited = reject;
  });
  exited.catch(() => {});

  // Errors surface through the streams and `exited`; without listeners
  // an 'error' event would be thrown.
  channel.on(
    "error",
    (error: Error) => log.debug("Channel error: {error}", { error }),
  );
  channel.stderr.on(
    "error",
    (error: Error) => log.debug("Channel error: {error}", { error }),
  );
  const stdout = nodeToWeb(channel);
  const stderr = nodeToWeb(channel.stderr);
  const stdin = webWritable(channel, batch);

  const entry: OpenChannel = {
    fail: (error) => {
      if (failed || exit) return;
      failed = error;
      stdout.fail(error);
      stderr.fail(error);
      stdin.fail(error);
      rejectExited(error);
    },
  };
  open.add(entry);

  channel.on("exit", (code: number | null, signal?: string) => {
    exit = code === null || code === undefined
      ? { code: null, signal: signal ?? undefined }
      : { code };
  });
  // ssh2 closes an exec channel with the same arguments as its `exit`
  // event. They are the ones to trust: ssh2 handles a whole TCP read at
  // once, so for a short command the exec's answer, `exit-status` and the
  // close can come in one read, and `exit` is emitted before the exec's
  // callback lets this function listen.
  channel.on("close", (code?: number | null, signal?: string) => {
    open.delete(entry);
    if (failed) return;
    stdin.fail(
      new SshConnectionError("The command has ended", { retriable: false }),
    );
    if (!exit && typeof code === "number") exit = { code };
    else if (!exit && signal) exit = { code: null, signal };
    if (exit) {
      resolveExited(exit);
      return;
    }
    // No status and no connection loss: the channel was closed by us or
    // the server without saying how the command ended.
    exit = { code: null };
    resolveExited(exit);
  });

  return {
    readable: stdout.stream,
    writable: stdin.stream,
    stderr: stderr.stream,
    exited,
    signal(name: string) {
      try {
        channel.signal(name);
      } catch {
        // The channel is gone.
      }
    },
    kill() {
      try {
        channel.signal("KILL");
      } catch {
        // The channel is gone.
      }
      channel.close();
    },
    close() {
      channel.close();
    },
  };
}

/**
 * Runs a started command to its end: writes `stdin` and closes it, and
 * collects the output; `signal` kills it.
 *
 * @param process The command.
 * @param options Standard input and an abort signal.
 * @returns The exit status and the decoded output; a non-zero exit is no error.
 * @throws {SshConnectionError} When the connection is lost before the command ends.
 *
 * @example
 * ```ts ignore
 * import { runToEnd } from "./exec.ts";
 *
 * const { stdout } = await runToEnd(await ssh.exec("cat"), { stdin: "hi" });
 * console.log(stdout); // hi
 * ```
 */
export async function runToEnd(
  process: SshProcess,
  options: SshRunOptions = {},
): Promise<SshRunResult> {
  const abort = () => process.kill();
  options.signal?.addEventListener("abort", abort, { once: true });
  try {
    const stdin = typeof options.stdin === "string"
      ? new TextEncoder().encode(options.stdin)
      : options.stdin;
    const writing = (async () => {
      const writer = process.writable.getWriter();
      try {
        if (stdin?.byteLength) await writer.write(stdin);
        await writer.close();
      } catch {
        // The command ended without reading all of its input.
      }
    })();
    const [stdout, stderr, exit] = await Promise.all([
      new Response(process.readable).text(),
      new Response(process.stderr).text(),
      process.exited,
      writing,
    ]);
    options.signal?.throwIfAborted();
    return { ...exit, stdout, stderr };
  } catch (error) {
    options.signal?.throwIfAborted();
    throw error;
  } finally {
    options.signal?.removeEventListener("abort", abort);
  }
}
