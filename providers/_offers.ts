/**
 * A cache of a provider's offers: the same spec asked again within the time
 * to live is answered from the first answer (also while that one is still in
 * flight); a failed answer is not kept.
 *
 * Internal to the providers; not part of the public API.
 *
 * @module
 */
import type { ClusterSpec, Offer } from "../src/provider.ts";

/**
 * Makes an offers cache.
 *
 * @param ttlMs How long an answer is reused, in ms.
 * @returns A function that answers `spec` in `scope` (e.g. a region) from
 *   the cache, or by calling `find`.
 *
 * @example
 * ```ts
 * import { offersCache } from "./_offers.ts";
 *
 * const cached = offersCache(60_000);
 * let asked = 0;
 * const find = () => Promise.resolve([{ provider: "x", instanceType: `t${++asked}` }]);
 * const spec = { clusterId: "c", nodes: 1, allocation: "cheapest" as const };
 * await cached("eu", spec, find);
 * console.log((await cached("eu", spec, find))[0].instanceType); // "t1"
 * ```
 */
export function offersCache<O extends Offer>(
  ttlMs: number,
): (
  scope: string | undefined,
  spec: ClusterSpec,
  find: () => Promise<O[]>,
) => Promise<O[]> {
  const answers = new Map<string, { at: number; offers: Promise<O[]> }>();
  return (scope, spec, find) => {
    const key = JSON.stringify([
      scope,
      spec.accelerator?.name,
      spec.accelerator?.count,
      spec.accelerator?.memory,
      spec.vcpus,
      spec.memoryGb,
      spec.architecture,
      spec.allocation,
      spec.maxHourlyCost,
    ]);
    const cached = answers.get(key);
    if (cached && Date.now() - cached.at < ttlMs) return cached.offers;
    const found = find();
    answers.set(key, { at: Date.now(), offers: found });
    found.catch(() => answers.delete(key));
    return found;
  };
}
