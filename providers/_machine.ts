/**
 * What this machine can hold, for the providers that run nodes on it
 * (local processes, containers).
 *
 * Internal to the providers; not part of the public API.
 *
 * @module
 */
import type { NodeLimit } from "../src/provider.ts";

/** The memory one local node needs: a Deno worker process and its warm sandbox. */
const NODE_MEMORY = 128 * 2 ** 20;

/**
 * How many nodes this machine can hold as local processes (or containers):
 * one per 128 MiB of its memory, the resident size of an idle worker with
 * its warm sandbox, rounded up.
 *
 * @param what The provider, for the message: `"sky.Local()"`.
 * @returns The bound and why.
 *
 * @example
 * ```ts
 * import { machineNodeLimit } from "./_machine.ts";
 *
 * console.log(machineNodeLimit("sky.Local()").reason);
 * // sky.Local() runs each node on this machine, which holds 188 (one per 128 MiB of its 23.5 GiB of memory)
 * ```
 */
export function machineNodeLimit(what: string): NodeLimit {
  let total: number | undefined;
  try {
    total = Deno.systemMemoryInfo().total;
  } catch {
    // No permission to read it: assume a small machine of 8 GiB.
  }
  const memory = total ?? 8 * 2 ** 30;
  const max = Math.max(1, Math.floor(memory / NODE_MEMORY));
  return {
    max,
    reason: `${what} runs each node on this machine, which holds ${max} ` +
      `(one per 128 MiB of its ${(memory / 2 ** 30).toFixed(1)} GiB of memory${
        total === undefined ? ", assumed" : ""
      })`,
  };
}
