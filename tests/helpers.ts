// Helpers shared by the tests.
import * as sky from "../mod.ts";
import { RIG_DIR, type RigHost } from "./rig/rig.ts";

/** A fresh directory for a test file's local nodes, removed when the process exits. */
export async function tempRoot(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "skyward-test-" });
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // Already gone.
    }
  });
  return dir;
}

/** Whether a process is alive (and not a zombie), read from /proc. */
export async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Waits until `check` holds, polling, or fails after `ms`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  ms = 5_000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Starts silent pools of local nodes under `root` (a test file's own), with
 * `options` on top.
 */
export function localPools(
  root: string,
): (options?: Partial<sky.PoolOptions>) => Promise<sky.ComputePool> {
  return (options = {}) =>
    sky.ComputePool.start({
      provider: sky.Local({ root }),
      console: "silent",
      ...options,
    });
}

/** The events of one type, typed as such. */
export function ofType<T extends sky.PoolEvent["type"]>(
  events: sky.PoolEvent[],
  type: T,
): Extract<sky.PoolEvent, { type: T }>[] {
  return events.filter((e) => e.type === type) as Extract<
    sky.PoolEvent,
    { type: T }
  >[];
}

/** `sky.SSH()` on rig hosts, with the rig's key and known hosts. */
export function rigSsh(
  hosts: RigHost[],
  options: Partial<sky.SshOptions> = {},
): sky.SshProvider {
  return sky.SSH({
    hosts: hosts.map((h) => `${h.user}@${h.address}:${h.port}`),
    key: hosts[0].keyPath,
    knownHosts: `${RIG_DIR}/known_hosts`,
    ...options,
  });
}
