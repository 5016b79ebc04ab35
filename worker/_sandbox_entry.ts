/**
 * A Deno sandbox: a Node worker thread holding exactly its compute's
 * permissions. It starts ahead of need; on `{ t: "load", module }` it imports
 * the compute's module from the shipped code (while it still holds read
 * access to it), drops that access, then runs the tasks the worker process
 * sends it, `concurrency` at a time (the load message's), in the order they
 * came.
 *
 * Tasks arrive as `[id, key, payload]`, the payload an `ArrayBuffer` of
 * encoded arguments; results go back as encoded bytes too (see
 * `_sandbox_common.ts`). `{ t: "info", instance }` replaces what
 * `sky.instanceInfo()` returns, for the tasks that follow it.
 *
 * @module
 */
import { decode } from "../src/codec.ts";
import { lookupCompute } from "../src/compute.ts";
import { setInstanceInfo } from "../src/instance.ts";
import {
  currentTask,
  dropLoadGrants,
  holdLock,
  prepare,
  sendError,
  sendResult,
  startupData,
  wireError,
} from "./_sandbox_common.ts";

const data = startupData("deno");
if (data) await main();

async function main(): Promise<void> {
  const port = data!.port;
  prepare(data!);
  let module = "";
  let concurrency = 1;
  try {
    await holdLock(data!.lock);
    module = await new Promise<string>((resolve) => {
      port.onmessage = (event: MessageEvent) => {
        if (event.data?.t === "info") setInstanceInfo(event.data.instance);
        if (event.data?.t !== "load") return;
        concurrency = Math.max(1, Number(event.data.concurrency) || 1);
        resolve(String(event.data.module));
      };
    });
    await import(module);
    dropLoadGrants(data!);
  } catch (error) {
    const buffer = wireError(error);
    port.postMessage({ t: "fail", b: buffer }, [buffer]);
    return;
  }
  const waiting: [number, string, ArrayBuffer][] = [];
  let running = 0;
  const next = () => {
    while (running < concurrency && waiting.length > 0) {
      const [id, key, payload] = waiting.shift()!;
      running++;
      run(id, key, payload).finally(() => {
        running--;
        next();
      });
    }
  };
  port.onmessage = (event: MessageEvent) => {
    const message = event.data;
    if (Array.isArray(message)) {
      waiting.push(message as [number, string, ArrayBuffer]);
      next();
    } else if (message?.t === "tasks" && Array.isArray(message.tasks)) {
      waiting.push(...message.tasks);
      next();
    } else if (message?.t === "cancel") {
      const at = waiting.findIndex(([id]) => id === message.id);
      if (at >= 0) waiting.splice(at, 1);
      port.postMessage({ t: "alive", id: message.id });
    } else if (message?.t === "ping") port.postMessage({ t: "pong" });
    else if (message?.t === "info") setInstanceInfo(message.instance);
  };
  port.postMessage({ t: "ready" });

  async function run(
    id: number,
    key: string,
    payload: ArrayBuffer,
  ): Promise<void> {
    let value: unknown;
    try {
      const compute = lookupCompute(module, key);
      if (!compute) {
        throw new Error(
          `No compute '${key}' in ${module}: computes must be created at the top level ` +
            `of their module, unconditionally, so that importing the module re-creates them`,
        );
      }
      const args = decode(new Uint8Array(payload)) as unknown[];
      value = await currentTask.run(id, () => compute.fn(...args));
    } catch (error) {
      sendError(port, id, error);
      return;
    }
    sendResult(port, id, value);
  }
}
