/**
 * Deno sandboxes as processes: each one a `deno run` child of the worker
 * process, started with exactly its permissions as `--allow-*` flags (plus
 * read access to the code it loads, which it drops before its first task),
 * the worker's own module flags (`--config`, `--cached-only`, `--frozen`,
 * …) and a V8 heap limit. It has its own heap, globals, broadcast channels,
 * Web Locks and signal handlers, and can be killed in the middle of a busy
 * loop.
 *
 * A sandbox talks to the worker over a Unix socket in a private directory
 * (its standard input is `/dev/null`; what it writes to its standard output
 * and error goes to the worker's standard error, which the client prints as
 * the node's output, as a thread's did): it connects with a one-time
 * token given on its command line, and drops its access to the socket's path
 * with its other load grants. On Linux a sandbox is started through
 * `setpriv --pdeathsig KILL`, so that it dies with the worker process even
 * in a busy loop; elsewhere it exits when its socket closes.
 *
 * @module
 */
import { LineSplitter } from "../../src/wire/output.ts";
import { after, sleep } from "../../src/_timers.ts";
import {
  type ByteSink,
  Channel,
  type ChannelEvent,
  type OutgoingStream,
} from "./channel.ts";

/** How long a sandbox that has exited may take to finish its output. */
const OUTPUT_GRACE_MS = 200;
/** How long a sandbox whose channel has closed has to exit before it is killed. */
const CLOSE_GRACE_MS = 1_000;
/** How long closing waits for the killed sandbox processes to be reaped. */
const REAP_MS = 1_000;
/** How long a started sandbox has to connect before it is taken for failed. */
const CONNECT_MS = 60_000;

/** A message port's shape, as the manager uses it (see `channel.ts`). */
export interface Port {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  /**
   * Sends a message whose `b` is given as it comes (see
   * `Channel.postStream`); `undefined` when the port cannot (not
   * connected yet): the caller then sends it whole.
   */
  postStream?(
    message: Record<string, unknown>,
    total: number,
  ): OutgoingStream | undefined;
  onmessage: ((event: ChannelEvent) => void) | null;
  /** Takes a large payload as it comes (see `Channel.onstream`). */
  onstream?:
    | ((data: Record<string, unknown>, total: number) => ByteSink | undefined)
    | null;
  close(): void;
}

/** What a started sandbox process reports. */
export interface ProcessHooks {
  /** It has connected, and is about to be told what to load. */
  connected(): void;
  /** It has ended: why, and whether it was out of memory by its own account. */
  exited(reason: string, oom: boolean): void;
}

/** A sandbox process, started. */
export interface SandboxProcess {
  pid: number;
  /** The channel to it; messages posted before it connects wait. */
  port: Port;
  /** Kills it (it then reports `exited`). */
  kill(): void;
}

/** V8's words when a heap limit is reached (it then aborts the process). */
const V8_OOM = /out of memory|Reached heap limit|allocation failed/i;

/**
 * A port that holds messages until its channel is connected.
 */
class LatePort implements Port {
  onmessage: ((event: ChannelEvent) => void) | null = null;
  onstream:
    | ((data: Record<string, unknown>, total: number) => ByteSink | undefined)
    | null = null;
  #channel?: Channel;
  #held: unknown[] = [];
  #closed = false;

  attach(channel: Channel): void {
    if (this.#closed) {
      channel.close();
      return;
    }
    this.#channel = channel;
    channel.onmessage = (event) => this.onmessage?.(event);
    channel.onstream = (data, total) => this.onstream?.(data, total);
    for (const message of this.#held.splice(0)) channel.postMessage(message);
  }

  postMessage(message: unknown): void {
    if (this.#channel) this.#channel.postMessage(message);
    else if (!this.#closed) this.#held.push(message);
  }

  postStream(
    message: Record<string, unknown>,
    total: number,
  ): OutgoingStream | undefined {
    return this.#channel?.postStream(message, total);
  }

  close(): void {
    this.#closed = true;
    this.#held = [];
    this.#channel?.close();
  }
}

/**
 * The command-line flags of the worker process that its sandboxes need too
 * (how modules resolve and load), without its permissions and V8 flags.
 *
 * @param argv The worker's command line (`deno run … entry args…`).
 *
 * @example
 * ```ts
 * import { moduleFlags } from "./process.ts";
 *
 * console.log(moduleFlags([
 *   "deno", "run", "--quiet", "-A", "--unstable-worker-options",
 *   "--cached-only", "--config", "/code/deno.json", "main.ts",
 * ])); // ["--quiet", "--cached-only", "--config", "/code/deno.json"]
 * ```
 */
export function moduleFlags(argv: string[]): string[] {
  const at = argv.indexOf("run");
  const flags: string[] = [];
  const withValue = new Set([
    "--config",
    "-c",
    "--import-map",
    "--cert",
    "--location",
    "--seed",
    "--ext",
  ]);
  for (let i = at + 1; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("-")) break;
    const name = arg.split("=")[0];
    const dropped = name === "-A" || name.startsWith("--allow-") ||
      name.startsWith("--deny-") || name === "--v8-flags" ||
      name === "--unstable-worker-options" || name.startsWith("--inspect") ||
      name === "--no-prompt";
    const valued = withValue.has(arg) && i + 1 < argv.length;
    if (!dropped) flags.push(arg);
    if (valued) {
      if (!dropped) flags.push(argv[i + 1]);
      i++;
    }
  }
  return flags;
}

let ownFlags: string[] | undefined;

/** This process's module flags (see {@linkcode moduleFlags}), read once. */
function workerFlags(): string[] {
  if (ownFlags) return ownFlags;
  let argv: string[] = [];
  try {
    argv = Deno.readTextFileSync("/proc/self/cmdline").split("\0");
  } catch {
    try {
      // No /proc (macOS): ps, which cannot tell spaces inside arguments.
      const out = new Deno.Command("ps", {
        args: ["-ww", "-o", "args=", "-p", String(Deno.pid)],
        stderr: "null",
      }).outputSync();
      argv = new TextDecoder().decode(out.stdout).trim().split(/\s+/);
    } catch {
      argv = [];
    }
  }
  return ownFlags = moduleFlags(argv);
}

/**
 * The `--allow-*` flags of a permission set: `true` grants all, a list
 * those named, `false` or an empty list nothing.
 *
 * @throws {RangeError} When a listed item holds a comma, which a flag
 *   cannot express (Deno splits its value at commas).
 *
 * @example
 * ```ts
 * import { permissionFlags } from "./process.ts";
 *
 * console.log(permissionFlags({ read: ["/data"], net: true, env: false }));
 * // ["--allow-read=/data", "--allow-net"]
 * ```
 */
export function permissionFlags(
  permissions: Partial<Record<string, boolean | string[] | undefined>>,
): string[] {
  const flags: string[] = [];
  for (const [name, grant] of Object.entries(permissions)) {
    if (grant === true) flags.push(`--allow-${name}`);
    else if (Array.isArray(grant) && grant.length > 0) {
      const comma = grant.find((g) => g.includes(","));
      if (comma !== undefined) {
        throw new RangeError(
          `Cannot grant ${name} access to ${
            JSON.stringify(comma)
          }: a sandbox's permissions are Deno flags, which cannot hold a comma; rename it or grant its parent directory`,
        );
      }
      flags.push(`--allow-${name}=${grant.join(",")}`);
    }
  }
  return flags;
}

/** The start of the name of a worker's socket directory, before its pid. */
const PREFIX = "skyward-sandboxes-";

/**
 * Removes the socket directories of workers that ended without removing
 * theirs (killed), found by their pid (on Linux).
 */
function sweep(): void {
  if (Deno.build.os !== "linux") return;
  try {
    const tmp = Deno.env.get("TMPDIR") || "/tmp";
    for (const entry of Deno.readDirSync(tmp)) {
      const pid = entry.name.startsWith(PREFIX)
        ? Number(entry.name.slice(PREFIX.length).split("-")[0])
        : NaN;
      if (!Number.isInteger(pid) || pid <= 0) continue;
      try {
        Deno.statSync(`/proc/${pid}`);
      } catch {
        Deno.removeSync(`${tmp}/${entry.name}`, { recursive: true });
      }
    }
  } catch {
    // Nothing to sweep, or not ours to.
  }
}

let pdeathsig: boolean | undefined;

/** Whether `setpriv --pdeathsig` is there (Linux, util-linux). */
function hasSetpriv(): boolean {
  if (pdeathsig !== undefined) return pdeathsig;
  if (Deno.build.os !== "linux") return pdeathsig = false;
  for (const dir of ["/usr/bin", "/bin"]) {
    try {
      Deno.statSync(`${dir}/setpriv`);
      return pdeathsig = true;
    } catch {
      // Not there.
    }
  }
  return pdeathsig = false;
}

/**
 * Starts sandbox processes and takes their connections, on one Unix socket
 * in a private temporary directory.
 *
 * @example
 * ```ts ignore
 * const spawner = new SandboxSpawner();
 * const sandbox = spawner.start(entry, permissions, 256, hooks);
 * sandbox.port.postMessage({ t: "load", module, concurrency: 1 });
 * await spawner.close();
 * ```
 */
export class SandboxSpawner {
  #dir?: string;
  #path?: string;
  #listener?: Deno.Listener;
  #waiting = new Map<string, (channel: Channel) => void>();
  #children = new Set<Deno.ChildProcess>();

  /** The socket's path (read and write access to it is a load grant). */
  get socketPath(): string {
    this.#listen();
    return this.#path!;
  }

  #listen(): void {
    if (this.#listener) return;
    sweep();
    this.#dir = Deno.makeTempDirSync({ prefix: `${PREFIX}${Deno.pid}-` });
    this.#path = `${this.#dir}/socket`;
    this.#listener = Deno.listen({ transport: "unix", path: this.#path });
    (async () => {
      for await (const conn of this.#listener!) this.#greet(conn);
    })().catch(() => {});
  }

  /** A connection's first message names its sandbox by token; else it is closed. */
  #greet(conn: Deno.Conn): void {
    const channel = new Channel(conn);
    channel.onmessage = (event) => {
      const m = event.data as { t?: string; token?: string } | null;
      const attach = typeof m?.token === "string"
        ? this.#waiting.get(m.token)
        : undefined;
      if (m?.t !== "hello" || !attach) {
        channel.close();
        return;
      }
      this.#waiting.delete(m.token!);
      channel.onmessage = null;
      attach(channel);
    };
  }

  /**
   * Starts a sandbox process.
   *
   * @param entry The sandbox's entry module (a path or a URL).
   * @param permissions What it may do (`--allow-*` flags).
   * @param heapMb Its V8 heap limit, in MiB.
   * @param hooks Where it reports.
   */
  start(
    entry: string,
    permissions: Partial<Record<string, boolean | string[]>>,
    heapMb: number,
    hooks: ProcessHooks,
  ): SandboxProcess {
    this.#listen();
    const token = crypto.randomUUID();
    const run = [
      Deno.execPath(),
      "run",
      "--no-prompt",
      ...workerFlags(),
      `--v8-flags=--max-old-space-size=${heapMb}`,
      ...permissionFlags(permissions),
      entry,
      this.#path!,
      token,
    ];
    const argv = hasSetpriv()
      ? ["setpriv", "--pdeathsig", "KILL", "--", ...run]
      : run;
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#children.add(child);
    const port = new LatePort();
    let fatal: string | undefined;
    let oom = false;
    const timer = setTimeout(() => {
      fatal ??= `it did not connect within ${CONNECT_MS} ms`;
      kill();
    }, CONNECT_MS);
    this.#waiting.set(token, (channel) => {
      clearTimeout(timer);
      port.attach(channel);
      // A sandbox whose channel closed is ending (or broke it): it has a
      // moment to exit on its own, and say why.
      channel.onclose = () => {
        const cancel = after(CLOSE_GRACE_MS, kill);
        child.status.then(cancel, cancel);
      };
      hooks.connected();
    });
    const kill = () => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already ended.
      }
    };
    // Its own writes to its standard streams go on to the worker's standard
    // error as they come (it waits while they do); its standard error is
    // also read for why it failed.
    const forward = async (
      stream: ReadableStream<Uint8Array>,
      scan: boolean,
    ) => {
      const lines = new LineSplitter();
      const decoder = new TextDecoder();
      const each = (line: string) => {
        if (V8_OOM.test(line)) oom = true;
        if (line.startsWith("error: ")) fatal ??= line;
      };
      for await (const chunk of stream) {
        for (let at = 0; at < chunk.length;) {
          at += await Deno.stderr.write(chunk.subarray(at));
        }
        if (scan) {
          for (
            const line of lines.push(decoder.decode(chunk, { stream: true }))
          ) {
            each(line);
          }
        }
      }
      const rest = scan ? lines.end() : undefined;
      if (rest) each(rest);
    };
    const output = Promise.all([
      forward(child.stdout, false),
      forward(child.stderr, true),
    ]).catch(() => {});
    child.status.then(async (status) => {
      clearTimeout(timer);
      this.#waiting.delete(token);
      // Its last words (why it failed) may still be on their way; a process
      // it started may hold its output open, so not for long.
      await Promise.race([output, sleep(OUTPUT_GRACE_MS)]);
      this.#children.delete(child);
      port.close();
      const how = status.signal
        ? `it was killed by ${status.signal}`
        : `it exited with code ${status.code}`;
      hooks.exited(fatal ? `${how} (${fatal})` : how, oom);
    });
    return { pid: child.pid, port, kill };
  }

  /**
   * Kills every sandbox process and removes the socket; resolves once they
   * have ended and been reaped (at most {@linkcode REAP_MS} later), so that
   * none is left to whatever process inherits them when the worker exits.
   */
  close(): Promise<void> {
    const ended = [...this.#children].map((child) =>
      child.status.then(() => {}, () => {})
    );
    for (const child of this.#children) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already ended.
      }
    }
    try {
      this.#listener?.close();
    } catch {
      // Already closed.
    }
    if (this.#dir) {
      try {
        Deno.removeSync(this.#dir, { recursive: true });
      } catch {
        // Already gone.
      }
    }
    return Promise.race([Promise.all(ended).then(() => {}), sleep(REAP_MS)]);
  }
}
