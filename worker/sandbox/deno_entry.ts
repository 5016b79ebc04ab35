/**
 * A Deno sandbox: a Node worker thread holding exactly its compute's
 * permissions. It starts ahead of need; on `{ t: "load", module }` it imports
 * the compute's module from the shipped code (while it still holds read
 * access to it), drops that access, then runs the tasks the worker process
 * sends it, `concurrency` at a time (the load message's), in the order they
 * came.
 *
 * Tasks arrive as `[id, key, payload, streams?]`, the payload an
 * `ArrayBuffer` of encoded arguments; results go back as encoded bytes too
 * (see `_sandbox_common.ts`). A streamed argument is fed by `{ t: "in" }`
 * messages and grants credit with `{ t: "credit", id, s, n }`; a streamed
 * result goes back as `{ t: "open", id }`, then `{ t: "item", id, b }`
 * batches as `{ t: "credit", id, n }` allows, then its outcome; `{ t:
 * "stop", id }` returns its generator. `{ t: "info", instance }` replaces
 * what `sky.instanceInfo()` returns, for the tasks that follow it.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { getHeapStatistics } from "node:v8";
import { decode } from "../../src/wire/codec.ts";
import { fromWireError, type WireError } from "../../src/wire/wire_error.ts";
import { lookupCompute } from "../../src/compute.ts";
import { setInstanceInfo } from "../../src/instance.ts";
import {
  Inbox,
  isStreamable,
  Pump,
  readableOf,
} from "../../src/wire/stream.ts";
import {
  collectionReply,
  currentTask,
  dropLoadGrants,
  holdLock,
  logAcknowledged,
  post,
  prepare,
  sendError,
  sendResult,
  startupData,
  wireError,
} from "./common.ts";

/** How often a sandbox running tasks checks that it has not run out of memory. */
const HEAP_WATCH_MS = 100;

const data = startupData("deno");
if (data) await main();

/**
 * Watches for the sandbox running out of memory, and says so once with
 * `{ t: "oom" }`. Deno does not always end a Node worker thread that
 * reaches its heap limit: it interrupts the JavaScript running then and
 * doubles the limit, so that a task awaiting between allocations is left
 * for ever unsettled (or its promise rejected with `null`) while the
 * thread goes on answering. The raised limit is the trace this looks for.
 */
function heapWatch(port: MessagePort): {
  exceeded(): boolean;
  watch(on: boolean): void;
} {
  const initial = getHeapStatistics().heap_size_limit;
  let said = false;
  let timer: ReturnType<typeof setInterval> | undefined;
  const exceeded = () => {
    if (getHeapStatistics().heap_size_limit <= initial) return false;
    if (!said) {
      said = true;
      port.postMessage({ t: "oom" });
    }
    return true;
  };
  return {
    exceeded,
    watch(on) {
      if (on && timer === undefined) {
        timer = setInterval(exceeded, HEAP_WATCH_MS);
      } else if (!on && timer !== undefined) {
        clearInterval(timer);
        timer = undefined;
      }
    },
  };
}

async function main(): Promise<void> {
  const port = data!.port;
  prepare(data!);
  const heap = heapWatch(port);
  let module = "";
  let concurrency = 1;
  try {
    await holdLock(data!.lock);
    module = await new Promise<string>((resolve) => {
      port.onmessage = (event: MessageEvent) => {
        if (event.data?.t === "info") setInstanceInfo(event.data.instance);
        if (event.data?.t === "logack") logAcknowledged(Number(event.data.n));
        if (event.data?.t !== "load") return;
        concurrency = Math.max(1, Number(event.data.concurrency) || 1);
        resolve(String(event.data.module));
      };
    });
    heap.watch(true);
    await import(module);
    heap.watch(false);
    dropLoadGrants(data!);
  } catch (error) {
    if (heap.exceeded()) return;
    const buffer = wireError(error);
    port.postMessage({ t: "fail", b: buffer }, [buffer]);
    return;
  }
  interface Task {
    id: number;
    key: string;
    payload: ArrayBuffer;
    inputs: [number, boolean, Inbox][];
  }
  const waiting: Task[] = [];
  const inputs = new Map<string, Inbox>();
  const pumps = new Map<number, Pump>();
  const stopped = new Set<number>();
  let running = 0;
  const next = () => {
    while (running < concurrency && waiting.length > 0) {
      const task = waiting.shift()!;
      running++;
      heap.watch(true);
      // Started from the event loop's immediate queue, not from the message
      // that brought it: a task that runs out of memory before its first
      // await then ends the thread (Deno reports it), where inside a message
      // handler it would leave the thread hung. (An immediate costs
      // microseconds; a `setTimeout(0)` about 2 ms.)
      setImmediate(() =>
        run(task).finally(() => {
          running--;
          if (running === 0) heap.watch(false);
          next();
        })
      );
    }
  };
  const accept = (
    [id, key, payload, streams]: [
      number,
      string,
      ArrayBuffer,
      [number, boolean][]?,
    ],
  ) => {
    const taskInputs = (streams ?? []).map(([arg, readable]) => {
      const inbox = new Inbox((n) =>
        post(port, { t: "credit", id, s: arg, n })
      );
      inputs.set(`${id}:${arg}`, inbox);
      return [arg, readable, inbox] as [number, boolean, Inbox];
    });
    waiting.push({ id, key, payload, inputs: taskInputs });
  };
  const handle = (message: unknown) => {
    if (Array.isArray(message)) {
      accept(message as Parameters<typeof accept>[0]);
      return;
    }
    const m = message as Record<string, unknown> | null;
    const id = m?.id as number;
    switch (m?.t) {
      case "in": {
        const inbox = inputs.get(`${id}:${m.s}`);
        if (!inbox) return;
        const bytes = m.b instanceof ArrayBuffer
          ? new Uint8Array(
            m.b,
            Number(m.o ?? 0),
            m.l === undefined ? undefined : Number(m.l),
          )
          : undefined;
        if (m.err && bytes) {
          inbox.fail(fromWireError(decode(bytes) as WireError));
        } else if (bytes) inbox.push(bytes);
        if (m.end) inbox.end();
        return;
      }
      case "credit":
        pumps.get(id)?.grant(Number(m.n));
        return;
      case "stop": {
        const pump = pumps.get(id);
        if (pump) pump.stop();
        else stopped.add(id);
        return;
      }
      case "cancel": {
        const at = waiting.findIndex((t) => t.id === id);
        if (at >= 0) waiting.splice(at, 1);
        // A streamed result nobody will take: return its generator, which
        // would otherwise wait for credit for ever, holding its slot.
        pumps.get(id)?.stop();
        port.postMessage({ t: "alive", id });
        return;
      }
      case "ping":
        if (!heap.exceeded()) port.postMessage({ t: "pong" });
        return;
      case "logack":
        logAcknowledged(Number(m.n));
        return;
      case "collr":
        collectionReply(m);
        return;
      case "info":
        setInstanceInfo(m.instance as Parameters<typeof setInstanceInfo>[0]);
        return;
    }
  };
  port.onmessage = (event: MessageEvent) => {
    const message = event.data;
    if (message?.t === "tasks" && Array.isArray(message.tasks)) {
      for (const one of message.tasks) handle(one);
    } else handle(message);
    next();
  };
  port.postMessage({ t: "ready" });

  async function run(task: Task): Promise<void> {
    const { id, key } = task;
    let value: unknown;
    try {
      try {
        const compute = lookupCompute(module, key);
        if (!compute) {
          throw new Error(
            `No compute '${key}' in ${module}: computes must be created at the top level ` +
              `of their module, unconditionally, so that importing the module re-creates them`,
          );
        }
        const args = decode(new Uint8Array(task.payload)) as unknown[];
        for (const [arg, readable, inbox] of task.inputs) {
          args[arg] = readable ? readableOf(inbox) : inbox;
        }
        value = await currentTask.run(id, () => compute.fn(...args));
      } catch (error) {
        if (!heap.exceeded()) sendError(port, id, error);
        return;
      }
      if (!isStreamable(value)) {
        sendResult(port, id, value);
        return;
      }
      post(port, { t: "open", id });
      const pump = new Pump(value, (batch) => {
        const buffer = batch.buffer as ArrayBuffer;
        post(port, { t: "item", id, b: buffer }, buffer);
      }, "yielded");
      pumps.set(id, pump);
      if (stopped.delete(id)) pump.stop();
      try {
        await currentTask.run(id, () => pump.run());
      } catch (error) {
        if (!heap.exceeded()) sendError(port, id, error);
        return;
      } finally {
        pumps.delete(id);
      }
      sendResult(port, id, null);
    } finally {
      stopped.delete(id);
      for (const [arg, , inbox] of task.inputs) {
        inputs.delete(`${id}:${arg}`);
        inbox.return();
      }
    }
  }
}
