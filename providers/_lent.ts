/**
 * Giving back machines that are lent, not made: the local provider's
 * processes on this machine and the SSH provider's hosts belong to the
 * user, so terminating one, or tearing a cluster down, only forgets it (the
 * pool has already stopped what it ran there).
 *
 * Internal to the providers; not part of the public API.
 *
 * @module
 */
import type { Provider } from "../src/provider.ts";

/**
 * A provider's `terminate` and `teardown` for machines it only keeps a
 * record of: each forgets them from the cluster's map of machines in use.
 *
 * @param inUse The cluster's machines in use, by instance id.
 * @returns `terminate` (forgets those ids) and `teardown` (forgets all).
 *
 * @example
 * ```ts
 * import { forgetOnRelease } from "./_lent.ts";
 *
 * const cluster = { used: new Map([["a", 0], ["b", 1]]) };
 * const release = forgetOnRelease((c: typeof cluster) => c.used);
 * await release.terminate(cluster, ["a"]);
 * console.log([...cluster.used.keys()]); // ["b"]
 * ```
 */
export function forgetOnRelease<C>(
  inUse: (cluster: C) => Map<string, unknown>,
): Pick<Provider<C>, "terminate" | "teardown"> {
  return {
    terminate(cluster: C, ids: string[]): Promise<void> {
      const machines = inUse(cluster);
      for (const id of ids) machines.delete(id);
      return Promise.resolve();
    },
    teardown(cluster: C): Promise<void> {
      inUse(cluster).clear();
      return Promise.resolve();
    },
  };
}
