/**
 * A WASM sandbox: a Node worker thread with no permissions at all, hosting
 * QuickJS compiled to WebAssembly and raw WebAssembly modules. It runs one
 * task at a time (WebAssembly calls are synchronous), each in a fresh QuickJS
 * runtime and context or a fresh module instance.
 *
 * Messages from the worker process: `{ t: "spec", key, spec }` (what a
 * compute runs, sent before its first task here) and tasks as
 * `[id, key, payload]`.
 *
 * @module
 */
import { decode } from "../../src/wire/codec.ts";
import type { SandboxSpec } from "../../src/wire/messages.ts";
import {
  dropLoadGrants,
  holdLock,
  logAcknowledged,
  prepare,
  sendError,
  sendLog,
  sendResult,
  wireError,
} from "./common.ts";
import { startupData } from "./thread_data.ts";
import {
  checkSelfContained,
  compileCapped,
  loadQuickJS,
  runExport,
  runFunction,
} from "./wasm.ts";

type Compiled = ReturnType<typeof compileCapped>;

const data = startupData("wasm");
if (data) await main();

async function main(): Promise<void> {
  const port = data!.port;
  prepare(data!);
  try {
    await holdLock(data!.lock);
    await loadQuickJS();
    dropLoadGrants(data!);
  } catch (error) {
    const buffer = wireError(error);
    port.postMessage({ t: "fail", b: buffer }, [buffer]);
    return;
  }
  const specs = new Map<string, SandboxSpec>();
  /** What each compute runs, once checked or compiled (or why it cannot run). */
  const prepared = new Map<string, { compiled?: Compiled; error?: unknown }>();

  port.onmessage = async (event: MessageEvent) => {
    const message = event.data;
    if (message?.t === "spec") specs.set(message.key, message.spec);
    else if (message?.t === "ping") port.postMessage({ t: "pong" });
    else if (message?.t === "logack") logAcknowledged(Number(message.n));
    else if (Array.isArray(message)) {
      await run(message[0], message[1], message[2]);
    }
  };
  port.postMessage({ t: "ready" });

  async function run(
    id: number,
    key: string,
    payload: ArrayBuffer,
  ): Promise<void> {
    const spec = specs.get(key);
    let value: unknown;
    try {
      if (!spec || spec.kind === "deno") {
        throw new Error(`The WASM sandbox has no function for '${key}'`);
      }
      const engine = await loadQuickJS();
      let ready = prepared.get(key);
      if (!ready) {
        try {
          ready = spec.kind === "js"
            ? (checkSelfContained(spec.source, engine), {})
            : { compiled: compileCapped(spec.module, spec.memoryPages) };
        } catch (error) {
          ready = { error };
        }
        prepared.set(key, ready);
      }
      if (ready.error) throw ready.error;
      const args = decode(new Uint8Array(payload)) as unknown[];
      if (spec.kind === "js") {
        value = runFunction(engine, spec.source, args, {
          memoryLimit: spec.memoryLimit,
          timeout: spec.timeout,
          log: (s, l) => sendLog(id, s, l),
        });
      } else {
        value = runExport(ready.compiled!, spec.export, args, {
          memoryPages: spec.memoryPages,
          imports: importValues(spec.imports),
        });
      }
    } catch (error) {
      sendError(port, id, error);
      return;
    }
    sendResult(port, id, value);
  }
}

function importValues(
  imports: Extract<SandboxSpec, { kind: "wasm" }>["imports"],
): Record<string, Record<string, number | bigint>> | undefined {
  if (!imports) return undefined;
  return Object.fromEntries(
    Object.entries(imports).map(([module, names]) => [
      module,
      Object.fromEntries(
        Object.entries(names).map((
          [name, v],
        ) => [name, typeof v === "number" ? v : BigInt(v.bigint)]),
      ),
    ]),
  );
}
