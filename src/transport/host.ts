/**
 * Transports move bytes to and from a node: they run commands there, give
 * their stdio as web streams, and write files. They know nothing of functions
 * or clouds. `LocalHost` runs on this machine; the SSH transport runs on a
 * remote one.
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
  writeTree(
    dir: string,
    files: { path: string; data: Uint8Array }[],
  ): Promise<void>;
  /** Whether a path exists. */
  exists(path: string): Promise<boolean>;
  /** Releases the connection. */
  close(): Promise<void>;
}

/** A host that is this machine: commands are child processes. */
export class LocalHost implements Host {
  readonly label: string;

  /** @param dir The node's directory, for messages. */
  constructor(dir: string) {
    this.label = `local:${dir}`;
  }

  exec(
    argv: string[],
    options: { cwd?: string; env?: Record<string, string> } = {},
  ): Promise<Channel> {
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      cwd: options.cwd,
      env: options.env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return Promise.resolve({
      readable: child.stdout,
      writable: child.stdin,
      stderr: child.stderr,
      pid: child.pid,
      exited: child.status.then((s) => ({
        code: s.signal ? null : s.code,
        signal: s.signal ?? undefined,
      })),
      kill() {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      },
      unref() {
        child.unref();
      },
    });
  }

  async writeTree(
    dir: string,
    files: { path: string; data: Uint8Array }[],
  ): Promise<void> {
    if (await this.exists(dir)) return;
    const temp = `${dir}.partial-${crypto.randomUUID().slice(0, 8)}`;
    try {
      for (const file of files) {
        const path = `${temp}/${file.path}`;
        await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), {
          recursive: true,
        });
        await Deno.writeFile(path, file.data);
      }
      await Deno.mkdir(dir.slice(0, dir.lastIndexOf("/")), { recursive: true });
      await Deno.rename(temp, dir);
    } catch (error) {
      await Deno.remove(temp, { recursive: true }).catch(() => {});
      // Another pool wrote the same tree first: its copy is as good as ours.
      if (!(await this.exists(dir))) throw error;
    }
  }

  async exists(path: string): Promise<boolean> {
    try {
      await Deno.stat(path);
      return true;
    } catch {
      return false;
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
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
  /**
   * Makes an Ed25519 key pair in OpenSSH's formats.
   *
   * @param comment The comment of both keys.
   * @returns The private key and the public key line.
   */
  generateKeyPair(comment: string): { privateKey: string; publicKey: string };
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
 * const { generateKeyPair } = await sshTransport();
 * console.log(generateKeyPair("sky-test").publicKey.startsWith("ssh-ed25519 ")); // true
 * ```
 */
export const sshTransport: () => Promise<SshTransport> = lazyModule<
  SshTransport
>(new URL("./ssh_dial.ts", import.meta.url), "the SSH client (npm:ssh2)");
