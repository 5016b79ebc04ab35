/**
 * What every sandbox (a process of its own, or a Node worker thread started
 * by a sandbox host) does before it runs tasks: read its start-up data, mark
 * itself as a worker, send its console output to the worker process as log
 * messages, hold the lock that lets the host stop a thread in a busy loop,
 * and drop the permissions it had only for loading its modules.
 *
 * Messages to the worker process, over the `port` of its start-up data:
 * `{ t: "ready" }`, `{ t: "fail", b }` (it could not start: `b` is an encoded
 * wire error), `{ t: "ok", id, b }`, `{ t: "err", id, b }`,
 * `{ t: "ser", id, path, problem }`, `{ t: "log", id?, s, l }` (within its
 * output credit: see {@linkcode sendLog}) and `{ t: "alive", id }` (the
 * answer to `{ t: "cancel", id }`).
 *
 * @module
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { format } from "node:util";
import { encode, toWireError } from "../../src/wire/codec.ts";
import { explainImport } from "../imports.ts";
import { SerializationError } from "../../src/errors.ts";
import { type InstanceInfo, setInstanceInfo } from "../../src/instance.ts";
import { capLine, droppedLines, lineCost } from "../../src/wire/output.ts";
import { installCollections } from "./collections.ts";

/** Where a sandbox sends its messages: a `MessagePort` or a socket's channel. */
export interface Outlet {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  /** Sends a message whose `b` is `pieces` joined, without copying them (a channel). */
  postBytes?(message: Record<string, unknown>, pieces: Uint8Array[]): void;
}

/**
 * A `Uint8Array` result at least this large goes as it is, its MessagePack
 * header put in front by the receiver's read, not encoded (copied) here.
 */
const RAW_RESULT_BYTES = 64 * 1024;

/**
 * An encoded result smaller than this goes inside its message (a channel's:
 * the results of a turn share one encoding), not as a buffer of its own.
 */
const INLINE_BYTES = 16 * 1024;

/** What the worker process gives a sandbox when it starts it. */
export interface SandboxData {
  /** Which entry this data is for: `"deno"` or `"wasm"`. */
  skyward: string;
  /** The channel to the worker process. */
  port: MessagePort;
  /** What `sky.instanceInfo()` returns in the sandbox. */
  instance: InstanceInfo;
  /** A name for the lock the sandbox holds while it lives. */
  lock: string;
  /** Permissions granted only to load modules, dropped before the first task. */
  revoke: Deno.PermissionDescriptor[];
}

/** The id of the task whose code is running, for its console output. */
export const currentTask: AsyncLocalStorage<number> = new AsyncLocalStorage<
  number
>();

/**
 * Prepares the sandbox's realm before any user code is evaluated: the worker
 * flag, the instance info, and the console.
 */
export function prepare(
  data: Pick<SandboxData, "instance"> & { port: Outlet },
): void {
  (globalThis as Record<symbol, unknown>)[Symbol.for("skyward.worker")] = true;
  setInstanceInfo(data.instance);
  const port = data.port;
  logPort = port;
  const redirect = (stream: "stdout" | "stderr") => (...args: unknown[]) => {
    const id = currentTask.getStore();
    let text: string;
    try {
      text = format(...args);
    } catch (error) {
      text = `(output that could not be formatted: ${error})`;
    }
    for (const line of text.split("\n")) sendLog(id, stream, line);
  };
  console.log = console.info = console.debug = redirect("stdout");
  console.warn = console.error = console.trace = redirect("stderr");
  collectionReply = installCollections(
    (message, buffer) => post(port, message, buffer),
    () => currentTask.getStore(),
  );
}

/** Handles the worker's `collr` messages (see `collections.ts`). */
export let collectionReply: (message: Record<string, unknown>) => void =
  () => {};

/**
 * The most output, in bytes (see `lineCost`), a sandbox may have sent that
 * the worker process has not yet written to the client. Past it, lines are
 * dropped and counted, and a marker line says how many once the worker
 * process has caught up (`{ t: "logack", n }` gives credit back). A task
 * that prints in a loop thus holds at most this much output in flight,
 * however fast it prints.
 */
const LOG_CREDIT = 2 * 1024 * 1024;
let logCredit = LOG_CREDIT;
let logPort: Outlet | undefined;
/** Lines dropped, by task (`-1` for output of no task). */
const dropped = new Map<number, number>();

/**
 * Sends a line of output to the worker process, cut at `MAX_LINE_CHARS`,
 * or drops it when the sandbox has no output credit left.
 *
 * @param id The task that wrote it, if any.
 * @param stream Where it was written.
 * @param text The line.
 */
export function sendLog(
  id: number | undefined,
  stream: "stdout" | "stderr",
  text: string,
): void {
  if (!logPort) return;
  const line = capLine(text);
  const cost = lineCost(line);
  if (cost > logCredit) {
    const key = id ?? -1;
    dropped.set(key, (dropped.get(key) ?? 0) + 1);
    return;
  }
  logCredit -= cost;
  post(
    logPort,
    id === undefined ? { t: "log", s: stream, l: line } : {
      t: "log",
      id,
      s: stream,
      l: line,
    },
  );
}

/**
 * Takes back output credit (a `{ t: "logack", n }` message); once half of
 * it is back, says how many lines were dropped.
 *
 * @param n The credit given back, in bytes.
 */
export function logAcknowledged(n: number): void {
  if (!Number.isFinite(n) || n <= 0) return;
  logCredit = Math.min(LOG_CREDIT, logCredit + n);
  if (dropped.size === 0 || logCredit < LOG_CREDIT / 2) return;
  const counts = [...dropped];
  dropped.clear();
  for (const [key, count] of counts) {
    // The marker is sent whatever the credit: it is small, and the only
    // trace of what was lost.
    const line = droppedLines(count);
    logCredit -= lineCost(line);
    post(
      logPort!,
      key < 0 ? { t: "log", s: "stderr", l: line } : {
        t: "log",
        id: key,
        s: "stderr",
        l: line,
      },
    );
  }
}

/**
 * Takes the sandbox's lock and holds it for the sandbox's life. While a Node
 * worker thread holds a lock, Deno interrupts its JavaScript when the thread
 * is terminated, even in a busy loop (without one, `terminate()` only stops
 * the thread's event loop).
 */
export function holdLock(name: string): Promise<void> {
  return new Promise<void>((granted, failed) => {
    (navigator as unknown as { locks: Locks }).locks.request(name, () => {
      granted();
      return new Promise<never>(() => {});
    }).catch(failed);
  });
}

/** The part of the Web Locks API used here. */
interface Locks {
  request(name: string, callback: () => Promise<never>): Promise<unknown>;
}

/** Drops the permissions that were granted only to load modules. */
export function dropLoadGrants(data: Pick<SandboxData, "revoke">): void {
  for (const descriptor of data.revoke) {
    Deno.permissions.revokeSync(descriptor);
  }
}

const NOT_CAPABLE =
  /^Requires (read|write|net|env|run|ffi|sys|import) access\b/;

/**
 * Encodes a thrown value as a wire error. A module import refused for lack
 * of a permission (Deno throws a `TypeError`) is named `NotCapable`, like
 * every other refusal.
 */
export function wireError(error: unknown): ArrayBuffer {
  const wire = toWireError(error);
  wire.message = explainImport(wire.message) ?? wire.message;
  if (wire.name === "TypeError" && NOT_CAPABLE.test(wire.message)) {
    wire.name = "NotCapable";
  }
  return encode(wire, "error").buffer as ArrayBuffer;
}

const outbox: unknown[] = [];
const transfers: ArrayBuffer[] = [];
let outboxPort: Outlet | undefined;

/** Sends the messages of this turn now (before a message that bypasses the outbox). */
function flush(port: Outlet): void {
  if (outbox.length === 0) return;
  const messages = outbox.splice(0);
  const buffers = transfers.splice(0);
  (outboxPort ?? port).postMessage(
    messages.length === 1 ? messages[0] : { t: "batch", messages },
    buffers,
  );
}

/**
 * Sends a message to the worker process; the messages sent in one turn
 * share one `{ t: "batch", messages }`.
 */
export function post(
  port: Outlet,
  message: unknown,
  buffer?: ArrayBuffer,
): void {
  outbox.push(message);
  outboxPort = port;
  if (buffer) transfers.push(buffer);
  if (outbox.length > 1) return;
  queueMicrotask(() => flush(port));
}

/** Sends a task's result, or why it could not be sent. */
export function sendResult(
  port: Outlet,
  id: number,
  value: unknown,
): void {
  if (
    port.postBytes && value instanceof Uint8Array &&
    value.byteLength >= RAW_RESULT_BYTES && value.byteLength < 2 ** 32
  ) {
    // What the codec would make of it: MessagePack's bin, the bytes as
    // they are. They go in parts, other tasks' messages between them.
    flush(port);
    port.postBytes({ t: "ok", id }, [binHeader(value.byteLength), value]);
    return;
  }
  let bytes: Uint8Array;
  try {
    bytes = encode(value, "result");
  } catch (error) {
    sendError(port, id, error);
    return;
  }
  if (port.postBytes && bytes.byteLength < INLINE_BYTES) {
    // Inside the message, which the results of the turn share.
    post(port, { t: "ok", id, b: bytes });
    return;
  }
  const buffer = bytes.buffer as ArrayBuffer;
  post(port, { t: "ok", id, b: buffer }, buffer);
}

/** MessagePack's header of a `bin` of `length` bytes. */
function binHeader(length: number): Uint8Array {
  if (length < 2 ** 8) return new Uint8Array([0xc4, length]);
  if (length < 2 ** 16) {
    return new Uint8Array([0xc5, length >> 8, length & 255]);
  }
  const header = new Uint8Array(5);
  header[0] = 0xc6;
  new DataView(header.buffer).setUint32(1, length);
  return header;
}

/** Sends a task's failure. */
export function sendError(port: Outlet, id: number, error: unknown): void {
  if (error instanceof SerializationError) {
    post(port, { t: "ser", id, path: error.path, problem: error.message });
    return;
  }
  const buffer = wireError(error);
  post(port, { t: "err", id, b: buffer }, buffer);
}
