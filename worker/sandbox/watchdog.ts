/**
 * Finding sandboxes that hang. Deno does not report a worker thread that
 * runs out of memory while it holds a lock (its thread waits for ever): a
 * sandbox running tasks that neither answers a ping nor uses the CPU (read
 * from its thread's `/proc` entry) for {@linkcode STALLS} checks in a row is
 * taken for hung. A busy one — a long computation, a loop — is left to its
 * task's timeout.
 *
 * @module
 */
import type { Sandbox } from "./sandbox.ts";

/** How often sandboxes running tasks are checked for a hang. */
export const WATCH_MS = 1_000;
/**
 * Checks in a row without an answer or CPU use after which a sandbox is taken
 * for hung. Generous: on a loaded machine an idle sandbox (a task awaiting a
 * timer or a socket) has been seen to take over half a second to answer, and
 * a sandbox stopped by mistake fails a task that was doing nothing wrong.
 */
export const STALLS = 10;
/**
 * Checks the sandboxes running tasks once: pings those not pinged yet, and
 * stops (through `stop`) one silent and idle for {@linkcode STALLS} checks.
 *
 * @returns Whether any sandbox runs tasks (else the checks may pause).
 *
 * @example
 * ```ts
 * import { checkHangs } from "./watchdog.ts";
 *
 * console.log(checkHangs([], () => {})); // false: no sandbox runs tasks
 * ```
 */
export function checkHangs(
  sandboxes: Iterable<Sandbox>,
  stop: (sandbox: Sandbox, reason: string) => void,
): boolean {
  let busy = false;
  for (const sandbox of sandboxes) {
    if (sandbox.tasks.size === 0 || sandbox.stopping) continue;
    busy = true;
    const ticks = cpuTicks(sandbox.thread);
    if (ticks === undefined) continue;
    if (sandbox.pinged === undefined) {
      sandbox.pinged = ticks;
      sandbox.port.postMessage({ t: "ping" });
      continue;
    }
    sandbox.stalls = ticks === sandbox.pinged ? sandbox.stalls + 1 : 0;
    sandbox.pinged = ticks;
    if (sandbox.stalls >= STALLS) {
      stop(
        sandbox,
        `it stopped answering and running: most likely it ran out of memory (its heap limit is ${sandbox.heapMb} MiB)`,
      );
    }
  }
  return busy;
}

/**
 * The `/proc` directory of the thread of the Node worker with this id, if
 * found (on Linux).
 *
 * @example
 * ```ts
 * import { threadDir } from "./watchdog.ts";
 *
 * console.log(threadDir(undefined)); // undefined
 * ```
 */
export function threadDir(id: number | undefined): string | undefined {
  if (id === undefined) return undefined;
  try {
    for (const entry of Deno.readDirSync("/proc/self/task")) {
      const dir = `/proc/self/task/${entry.name}`;
      if (Deno.readTextFileSync(`${dir}/comm`).trim() === `worker-${id}`) {
        return dir;
      }
    }
  } catch {
    // Not Linux: hangs are left to timeouts.
  }
  return undefined;
}

/** CPU time a thread has used, in clock ticks. */
function cpuTicks(dir: string | undefined): number | undefined {
  if (!dir) return undefined;
  try {
    const stat = Deno.readTextFileSync(`${dir}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}
