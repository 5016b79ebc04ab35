/**
 * Transports move bytes to and from a node: they run commands there, give
 * their stdio as web streams, and write files. They know nothing of functions
 * or clouds. This file holds the contract; `local.ts` runs on this machine,
 * and the SSH transport (`ssh/`, loaded on first use) on a remote one.
 *
 * @module
 */
import { lazyModule } from "../_lazy.ts";
import type { Endpoint } from "../provider.ts";

/** A command running on a node, with its stdio as byte streams. */
export interface Channel {
  /** The command's standard output. */
  readable: ReadableStream<Uint8Array>;
  /** The command's standard input. */
  writable: WritableStream<Uint8Array>;
  /** The command's standard error. */
  stderr: ReadableStream<Uint8Array>;
  /** Settles when the command has ended. */
  exited: Promise<{ code: number | null; signal?: string }>;
  /** The process id, where the transport knows it. */
  pid?: number;
  /** Stops the command (SIGKILL where possible). */
  kill(): void;
  /**
   * Lets the program end while the command runs (its stdio included): the
   * caller keeps the program alive while it waits for the command. Where a
   * transport cannot, it leaves this out.
   */
  unref?(): void;
}

/** A machine to run commands on and write files to. */
export interface Host {
  /** Where the host is, for messages: `local:<dir>` or `user@host:port`. */
  readonly label: string;
  /**
   * Starts a command.
   *
   * @param argv The program and its arguments.
   * @param options Working directory and extra environment variables.
   */
  exec(
    argv: string[],
    options?: { cwd?: string; env?: Record<string, string> },
  ): Promise<Channel>;
  /**
   * Writes files into a directory that must not exist yet, atomically: the
   * directory appears whole or not at all. Does nothing when it exists.
   */
  writeTree(dir: string, files: TreeFile[]): Promise<void>;
  /** Whether a path exists. */
  exists(path: string): Promise<boolean>;
  /** Releases the connection. */
  close(): Promise<void>;
}

/** A file of a tree written by {@linkcode Host.writeTree}. */
export interface TreeFile {
  /** Its path relative to the tree's directory, with `/` separators. */
  path: string;
  /** Its content. */
  data: Uint8Array;
}

/**
 * Where {@linkcode Host.writeTree} stages a tree before moving it into
 * place: a fresh sibling of `dir`, or `undefined` when `dir` exists already
 * (the tree is written once; another pool that wrote it first wrote the
 * same content).
 *
 * @param host The host.
 * @param dir The tree's directory.
 * @returns The staging directory's path, or `undefined` when there is nothing to write.
 *
 * @example
 * ```ts
 * import { stagingDir } from "./host.ts";
 * import { LocalHost } from "./local.ts";
 *
 * const dir = await Deno.makeTempDir();
 * console.log(await stagingDir(new LocalHost(dir), dir)); // undefined: it exists
 * console.log((await stagingDir(new LocalHost(dir), `${dir}/code`))?.startsWith(`${dir}/code.partial-`)); // true
 * await Deno.remove(dir);
 * ```
 */
export async function stagingDir(
  host: Pick<Host, "exists">,
  dir: string,
): Promise<string | undefined> {
  if (await host.exists(dir)) return undefined;
  return `${dir}.partial-${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * The SSH transport as the pool sees it: `src/transport/ssh_dial.ts`, loaded on first
 * use (it needs `npm:ssh2`, which a program that only runs local nodes
 * never downloads).
 *
 * @example
 * ```ts
 * import { sshTransport, type SshTransport } from "./host.ts";
 *
 * const transport: SshTransport = await sshTransport();
 * console.log(typeof transport.dialSsh); // "function"
 * ```
 */
export interface SshTransport {
  /**
   * Opens one SSH connection to a machine, retrying while it boots.
   *
   * @param endpoint Where the machine is and how to log in.
   * @param retries How many times a refused or reset connection is tried again.
   * @returns The machine as a {@linkcode Host}.
   */
  dialSsh(
    endpoint: Extract<Endpoint, { kind: "ssh" }>,
    retries: number,
  ): Promise<Host>;
}

/**
 * Loads the SSH transport (`src/transport/ssh_dial.ts`) on first use: the only way the
 * library reaches `npm:ssh2`, so that a program that only runs local nodes
 * never downloads it (see `_lazy.ts`).
 *
 * @example
 * ```ts
 * import { sshTransport } from "./host.ts";
 *
 * const { dialSsh } = await sshTransport();
 * console.log(typeof dialSsh); // "function"
 * ```
 */
export const sshTransport: () => Promise<SshTransport> = lazyModule<
  SshTransport
>(new URL("./ssh_dial.ts", import.meta.url), "the SSH client (npm:ssh2)");
