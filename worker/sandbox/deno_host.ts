/**
 * A sandbox host, for WASM sandboxes (a Deno sandbox is a process: see
 * `process.ts`): a Deno Web Worker started by the worker process with
 * exactly one sandbox permission set (none, for WASM; plus read access to
 * the modules it must load). It runs no user code. On request it starts sandboxes — Node
 * worker threads, which inherit its permissions and, unlike Web Workers, can
 * be given a heap limit and be stopped in the middle of a busy loop — and
 * stops them; it reports how each one ended.
 *
 * Messages from the worker process:
 * - `{ t: "spawn", sid, entry, data, port, heapMb }`: start `entry` (a file
 *   path, or a `data:` URL) with `data` and `port` as its `workerData`;
 * - `{ t: "kill", sid }`: stop it.
 *
 * Messages to the worker process: `{ t: "thread", sid, thread }` (its
 * thread id) once a sandbox has started, and `{ t: "exit", sid, code,
 * error?, oom? }` when it has ended, for whatever reason (`oom` when it
 * reached its heap limit).
 *
 * @module
 */
import { SHARE_ENV, Worker } from "node:worker_threads";

interface Spawn {
  t: "spawn";
  sid: number;
  entry: string;
  data: Record<string, unknown>;
  port: MessagePort;
  heapMb: number;
}

const sandboxes = new Map<number, Worker>();
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent) => void) | null;
  postMessage(message: unknown): void;
};

function spawn(message: Spawn): void {
  let error: string | undefined;
  let oom = false;
  let worker: Worker;
  try {
    // A `data:` entry (the library was imported from a URL) goes as a URL.
    const entry = message.entry.startsWith("data:")
      ? new URL(message.entry)
      : message.entry;
    worker = new Worker(entry, {
      workerData: { ...message.data, port: message.port },
      // deno-lint-ignore no-explicit-any
      transferList: [message.port as any],
      resourceLimits: { maxOldGenerationSizeMb: message.heapMb },
      env: SHARE_ENV,
    });
  } catch (cause) {
    scope.postMessage({
      t: "exit",
      sid: message.sid,
      code: -1,
      error: `it could not start: ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
    });
    return;
  }
  sandboxes.set(message.sid, worker);
  // Its thread is named after this id: the worker process watches it.
  scope.postMessage({ t: "thread", sid: message.sid, thread: worker.threadId });
  worker.on("error", (cause: Error & { code?: string }) => {
    oom = cause?.code === "ERR_WORKER_OUT_OF_MEMORY";
    error = oom
      ? `it ran out of memory (its heap limit is ${message.heapMb} MiB)`
      : `it threw ${cause?.name ?? "Error"}: ${cause?.message ?? cause}`;
  });
  worker.on("exit", (code: number) => {
    sandboxes.delete(message.sid);
    scope.postMessage({ t: "exit", sid: message.sid, code, error, oom });
  });
}

scope.onmessage = (event: MessageEvent) => {
  const message = event.data as Spawn | { t: "kill"; sid: number };
  if (message.t === "spawn") spawn(message);
  else if (message.t === "kill") sandboxes.get(message.sid)?.terminate();
};
