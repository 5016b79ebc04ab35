/**
 * The start-up data of a sandbox that is a Node worker thread (a WASM
 * sandbox), apart from `common.ts` so that a sandbox process does not load
 * `node:worker_threads`.
 *
 * @module
 */
import { workerData } from "node:worker_threads";
import type { SandboxData } from "./common.ts";

/**
 * Reads the start-up data of a sandbox of this kind, or `undefined` when
 * this module runs anywhere else (then it does nothing).
 */
export function startupData(kind: string): SandboxData | undefined {
  const data = workerData as SandboxData | undefined;
  if (data?.skyward !== kind) return undefined;
  // The task code shares this realm: it must not reach the channel.
  const copy = { ...data };
  for (const key of Object.keys(data)) {
    delete (data as unknown as Record<string, unknown>)[key];
  }
  return copy;
}
