/**
 * A sandbox as the worker process sees it: the record the manager keeps of
 * one (its tasks, its state), and how one is started. A Deno sandbox is a
 * process of its own (`process.ts`) running `deno_entry.ts` with exactly its
 * permissions. A WASM sandbox is a Node worker thread started by a sandbox
 * host (a Deno Web Worker holding no permission, see `deno_host.ts`) from
 * `wasm_entry.ts`.
 *
 * @module
 */
import type { InstanceInfo } from "../../src/instance.ts";
import { SandboxError, type TaskOutcome } from "./outcome.ts";
import {
  filePath,
  loadPermissions,
  type Permissions,
  workerOptions,
} from "./permissions.ts";
import { threadDir } from "./watchdog.ts";
import type { Port, SandboxSpawner } from "./process.ts";
import type { ByteSink } from "./channel.ts";

/**
 * A sandbox's entry for a Node worker thread: its file, or when the library
 * was imported from a URL (and is vendored with the code), a `data:` module
 * importing that URL. (A sandbox process runs `deno_entry.ts` by path or
 * URL: see {@linkcode PROCESS_ENTRY}.)
 */
function entryOf(name: string): string {
  const url = new URL(name, import.meta.url);
  return url.protocol === "file:"
    ? filePath(url)
    : `data:application/javascript,${
      encodeURIComponent(`import ${JSON.stringify(url.href)};`)
    }`;
}

const ENTRY = { wasm: entryOf("./wasm_entry.ts") };
const DENO_ENTRY = new URL("./deno_entry.ts", import.meta.url);
/** The module a sandbox process runs: a path, or the vendored URL. */
const PROCESS_ENTRY = DENO_ENTRY.protocol === "file:"
  ? filePath(DENO_ENTRY)
  : DENO_ENTRY.href;
const HOST = new URL("./deno_host.ts", import.meta.url);
/** The library's modules a sandbox loads: its entry and what it imports. */
const LIBRARY = new URL(import.meta.url).protocol === "file:"
  ? [
    filePath(new URL("../", import.meta.url)).replace(/\/$/, ""),
    filePath(new URL("../../src", import.meta.url)),
  ]
  : [];

/**
 * Names the sandbox entries with literal imports, so that the library
 * bundle shipped to nodes (the module graph of `worker/main.ts`) holds them
 * and their dependencies. Never called: sandboxes load them as threads.
 */
export const sandboxEntries = [
  () => import("./deno_entry.ts"),
  () => import("./wasm_entry.ts"),
  () => import("./deno_host.ts"),
];

/** What a task that streams is told, besides how it ended. */
export interface TaskStreamHooks {
  /** Its result is a stream: `item` calls follow, then its outcome. */
  open(): void;
  /** A batch of its result's items (an encoded array). */
  item(batch: Uint8Array): void;
  /** It took `bytes` more of its streamed argument `arg`. */
  credit(arg: number, bytes: number): void;
  /**
   * Its result is a large payload coming in parts (`total` bytes, the
   * encoded value): where to send them on as they come, if anywhere. The
   * task then ends with the outcome `sent` once all have been pushed; if
   * it ends otherwise first (its sandbox stopped, it was cancelled), the
   * sink is aborted before its outcome is given.
   */
  result?(total: number): ResultSink | undefined;
}

/** Where a task's result goes as it comes (see `TaskStreamHooks.result`). */
export interface ResultSink {
  push(bytes: Uint8Array): void;
  abort(): void;
}

/** A message for a sandbox, and the buffers it transfers. */
export type Outgoing = [unknown, ArrayBuffer[]];

/** A task sent to a sandbox, until it ends. */
export interface PendingTask {
  id: number;
  resolve(outcome: TaskOutcome): void;
  /** Cancels its time limit's timer. */
  timer?: () => void;
  hooks?: TaskStreamHooks;
  /** Abandons its result being sent on as it comes (see `TaskStreamHooks.result`). */
  abandon?: () => void;
  /**
   * While its argument is still arriving (see `ArgumentFeed`): stops
   * sending it on, and abandons what went (the sandbox drops it, and never
   * hears of the task). Returns true.
   */
  unfeed?: () => boolean;
  /** Whether it has been sent to its sandbox; stream messages wait until then. */
  posted: boolean;
  early: Outgoing[];
}

/** The Web Worker that starts a WASM sandbox's thread, and the grants it holds only to load modules. */
export interface Host {
  worker: Worker;
  revoke: Deno.PermissionDescriptor[];
}

/** A sandbox, started or being started. */
export interface Sandbox {
  sid: number;
  kind: "deno" | "wasm";
  /** Its place in the warm maps (`""` for a sandbox of one task). */
  key: string;
  /** Its channel: a `MessagePort` (WASM) or a socket's (a process). */
  port: {
    postMessage(message: unknown, transfer?: Transferable[]): void;
    /** A process's: see `Port.postStream`. */
    postStream?: Port["postStream"];
  };
  /** Stops it: it then ends (see `StartOptions.end`). */
  kill(): void;
  /** Lets go of what it holds, once it has ended. */
  dispose(): void;
  /** Its process id (a Deno sandbox). */
  pid?: number;
  /** Its resident memory when it connected, before it loaded its module, in bytes. */
  rssBase?: number;
  ready: Promise<void>;
  tasks: Map<number, PendingTask>;
  /** Runs one task at a time, then is given back (WASM) or stopped (`isolation: "task"`). */
  exclusive: boolean;
  /** The compute specs it has been sent (WASM). */
  known: Set<string>;
  /** Tasks and stream messages to send at the end of this turn, in one message. */
  outbox: Outgoing[];
  lastUsed: number;
  /** Why it is being stopped, once it is. */
  stopping?: string;
  ended?: string;
  stopTimer?: ReturnType<typeof setTimeout>;
  answered?: (id: number) => void;
  /** Its memory limit (its V8 heap's, and beyond its resident memory at start), in MiB. */
  heapMb: number;
  /** Set once it is known to have run out of memory. */
  oom?: boolean;
  /** The module it was told to load (a Deno sandbox), relative to the code directory. */
  module?: string;
  /** Set once it has loaded its module. */
  loaded?: boolean;
  /** Its `/proc` directory (its process's, or its thread's), once known. */
  thread?: string;
  /** Set while a ping is unanswered: the thread's CPU ticks at the last check. */
  pinged?: number;
  /** Checks in a row that found it neither answering nor running. */
  stalls: number;
  /** The last tasks it ran, whose late output lines keep their id. */
  recent: number[];
  /**
   * Output lines of a spare (started ahead, its module loaded before any
   * task asked for it), held until it is taken into use and dropped with it
   * otherwise: a module's top-level output comes once per sandbox used, as
   * if that sandbox had started when its first task came.
   */
  held?: { s: "stdout" | "stderr"; l: string; id?: unknown }[];
  opened(): void;
  failed(outcome: TaskOutcome): void;
}

/** What {@linkcode startSandbox} needs besides the sandbox's kind and limits. */
export interface StartOptions {
  /** The sandbox's id, unique in this process. */
  sid: number;
  /** What `sky.instanceInfo()` returns in the sandbox. */
  instance: InstanceInfo;
  /** The shipped code's directory, which a Deno sandbox reads while it loads. */
  codeDir: string;
  /** Starts sandbox processes. */
  spawner: SandboxSpawner;
  /** A message from the sandbox (untrusted). */
  message(sandbox: Sandbox, message: unknown): void;
  /**
   * A message whose large payload comes in parts (a process's result):
   * a sink returned takes them as they come; else the message arrives
   * whole, through `message`.
   */
  stream?(
    sandbox: Sandbox,
    message: Record<string, unknown>,
    total: number,
  ): ByteSink | undefined;
  /** The sandbox has connected (a process, before it loads its module). */
  connected?(sandbox: Sandbox): void;
  /** The sandbox's thread or process has ended, or its host failed. */
  end(sandbox: Sandbox, reason: string): void;
}

/** Starts the Web Worker holding a WASM sandbox's permissions, which starts the sandbox. */
function startHost(
  permissions: Permissions,
  kind: "deno" | "wasm",
  codeDir: string,
): Host {
  // Without the flag, Deno exits the whole process when a worker is
  // given permissions: check first.
  if (!workerOptions()) {
    throw new SandboxError(
      "Cannot start a sandbox: the worker was started without --unstable-worker-options",
    );
  }
  const { options, revoke } = loadPermissions(
    permissions,
    kind === "deno" ? [...LIBRARY, codeDir] : LIBRARY,
    kind === "deno",
  );
  let worker: Worker;
  try {
    worker = new Worker(HOST, {
      type: "module",
      name: "skyward-sandbox-host",
      deno: { permissions: options },
    } as WorkerOptions);
  } catch (error) {
    throw new SandboxError(
      `Cannot start a sandbox: ${
        error instanceof Error ? error.message : String(error)
      } (the worker must run with --unstable-worker-options)`,
    );
  }
  return { worker, revoke };
}

/**
 * Starts a sandbox. A Deno sandbox waits for `{ t: "load", module }`
 * before it imports its module and becomes ready.
 *
 * @throws {SandboxError} When it cannot start.
 *
 * @example
 * ```ts ignore
 * const sandbox = startSandbox("deno", NO_PERMISSIONS, 256, {
 *   sid: 1,
 *   instance,
 *   codeDir,
 *   spawner,
 *   message: (sandbox, message) => {},
 *   end: (sandbox, reason) => {},
 * });
 * sandbox.port.postMessage({ t: "load", module, concurrency: 1 });
 * ```
 */
export function startSandbox(
  kind: "deno" | "wasm",
  permissions: Permissions,
  heapMb: number,
  options: StartOptions,
): Sandbox {
  return kind === "deno"
    ? startProcess(permissions, heapMb, options)
    : startThread(kind, permissions, heapMb, options);
}

/** The record of a sandbox being started. */
function record(
  kind: "deno" | "wasm",
  heapMb: number,
  options: StartOptions,
  port: Port | MessagePort,
  kill: () => void,
  dispose: () => void,
): Sandbox {
  const send = port instanceof MessagePort
    ? {
      postMessage: (m: unknown, t?: Transferable[]) =>
        port.postMessage(m, t ?? []),
    }
    : port;
  let opened!: () => void;
  let failed!: (outcome: TaskOutcome) => void;
  const ready = new Promise<void>((resolve, reject) => {
    opened = resolve;
    failed = reject;
  });
  ready.catch(() => {});
  const sandbox: Sandbox = {
    sid: options.sid,
    kind,
    key: "",
    port: send,
    kill,
    dispose,
    ready,
    tasks: new Map(),
    exclusive: false,
    heapMb,
    stalls: 0,
    recent: [],
    known: new Set(),
    outbox: [],
    lastUsed: performance.now(),
    opened,
    failed,
  };
  port.onmessage = (event: { data: unknown }) =>
    options.message(sandbox, event.data);
  if (!(port instanceof MessagePort)) {
    port.onstream = (message, total) =>
      options.stream?.(sandbox, message, total);
  }
  return sandbox;
}

/** Starts a Deno sandbox: a process holding exactly its permissions. */
function startProcess(
  permissions: Permissions,
  heapMb: number,
  options: StartOptions,
): Sandbox {
  const socket = options.spawner.socketPath;
  const { options: grants, revoke } = loadPermissions(
    permissions,
    [...LIBRARY, options.codeDir, socket],
    true,
  );
  // It connects to the socket (Deno counts that as read, write and net
  // access), then drops that access with the other load grants.
  const write = permissions.write;
  if (
    write !== true &&
    !(write || []).some((p) => socket.startsWith(p.endsWith("/") ? p : `${p}/`))
  ) {
    grants.write = [...(Array.isArray(write) ? write : []), socket];
    revoke.push({ name: "write", path: socket });
  }
  const net = permissions.net;
  if (net !== true) {
    const host = `unix:${socket}`;
    grants.net = [...(Array.isArray(net) ? net : []), host];
    revoke.push({ name: "net", host });
  }
  // Its record, once made: the hooks fire only after this function returns.
  const made: { sandbox?: Sandbox } = {};
  let started;
  try {
    started = options.spawner.start(
      PROCESS_ENTRY,
      grants as Record<string, boolean | string[]>,
      heapMb,
      {
        connected: () => options.connected?.(made.sandbox!),
        exited(reason, oom) {
          if (oom) made.sandbox!.oom = true;
          options.end(made.sandbox!, reason);
        },
      },
    );
  } catch (error) {
    throw new SandboxError(
      `Cannot start a sandbox: ${
        error instanceof Error ? error.message : String(error)
      }`,
    );
  }
  const sandbox = made.sandbox = record(
    "deno",
    heapMb,
    options,
    started.port,
    started.kill,
    () => started.port.close(),
  );
  sandbox.pid = started.pid;
  sandbox.thread = Deno.build.os === "linux"
    ? `/proc/${started.pid}`
    : undefined;
  started.port.postMessage({
    t: "init",
    instance: options.instance,
    revoke,
  });
  return sandbox;
}

/** Starts a WASM sandbox: a Node worker thread started by a host holding no permission. */
function startThread(
  kind: "deno" | "wasm",
  permissions: Permissions,
  heapMb: number,
  options: StartOptions,
): Sandbox {
  const host = startHost(permissions, kind, options.codeDir);
  const { port1, port2 } = new MessageChannel();
  const sandbox = record(
    kind,
    heapMb,
    options,
    port1,
    () => host.worker.postMessage({ t: "kill", sid: options.sid }),
    () => {
      port1.close();
      host.worker.terminate();
    },
  );
  host.worker.onmessage = (event: MessageEvent) => {
    const message = event.data as {
      t: string;
      code: number;
      error?: string;
      thread?: number;
      oom?: boolean;
    };
    if (message?.t === "thread") sandbox.thread = threadDir(message.thread);
    if (message?.t !== "exit") return;
    if (message.oom) sandbox.oom = true;
    options.end(
      sandbox,
      message.error ?? `it exited with code ${message.code}`,
    );
  };
  host.worker.onerror = (event: ErrorEvent) => {
    // An error in a host must not end the worker process.
    event.preventDefault();
    options.end(sandbox, `its host failed: ${event.message}`);
  };
  host.worker.postMessage({
    t: "spawn",
    sid: sandbox.sid,
    entry: ENTRY.wasm,
    data: {
      skyward: kind,
      instance: options.instance,
      lock: `skyward-sandbox-${crypto.randomUUID()}`,
      revoke: host.revoke,
    },
    port: port2,
    heapMb,
  }, [port2]);
  return sandbox;
}
