/**
 * A cache of a provider's offers: the same spec asked again within the time
 * to live is answered from the first answer (also while that one is still in
 * flight); a failed answer is not kept.
 *
 * Internal to the providers; not part of the public API.
 *
 * @module
 */
import { describeAccelerator } from "../src/accelerators.ts";
import { NoOffersError } from "../src/errors.ts";
import type { ClusterSpec, Offer } from "../src/provider.ts";
import { priceFor } from "../src/spec.ts";

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

/**
 * A price as the providers' messages write it: `$0.2100/h`, `$2.49/h`.
 *
 * @example
 * ```ts
 * import { perHour } from "./_offers.ts";
 *
 * console.log(perHour(2.49)); // "$2.49/h"
 * ```
 */
export function perHour(n: number): string {
  return `$${n < 1 ? n.toFixed(4) : n.toFixed(2)}/h`;
}

/**
 * Why no offer is left under `maxHourlyCost`: the cheapest one and its price.
 *
 * @example
 * ```ts
 * import { overCap } from "./_offers.ts";
 *
 * console.log(overCap("p5.48xlarge", 98.32, 50));
 * // "the cheapest, p5.48xlarge, costs $98.32/h, above maxHourlyCost $50.00/h"
 * ```
 */
export function overCap(
  instanceType: string,
  price: number,
  cap: number,
): string {
  return `the cheapest, ${instanceType}, costs ${
    perHour(price)
  }, above maxHourlyCost ${perHour(cap)}`;
}

/**
 * Advice on the allocation, for "No instances available" messages.
 *
 * @example
 * ```ts
 * import { allocationHint } from "./_offers.ts";
 *
 * console.log(`Try another region${allocationHint("spot")}.`);
 * ```
 */
export function allocationHint(allocation: ClusterSpec["allocation"]): string {
  return allocation === "spot"
    ? ", or allocation 'spot-if-available' to fall back to on-demand"
    : allocation === "on-demand"
    ? ", or allocation 'spot-if-available' to use spot machines when there are"
    : ", or allocation 'on-demand'";
}

/** What a cloud's "No instances available" message names, besides why. */
export interface NoOffersContext {
  /** The cloud as messages name it, with where it looked: `"AWS in us-east-1"`. */
  cloud: string;
  /**
   * What was asked when the pool names no accelerator (an instance type,
   * `"a CPU machine"`); with one, the message names the accelerator.
   */
  otherwise?: string;
  /** Said after what was asked, e.g. `" (instance type p4d.24xlarge)"`. */
  detail?: string;
  /**
   * What else to try, before the allocation's advice: `"another region
   * (sky.AWS({ region })), another accelerator or instance type"`.
   */
  alternatives: string;
}

/**
 * Makes the errors of a search for offers that found nothing, all in one
 * form: "No instances available on {cloud} for {what was asked} with
 * allocation '{allocation}': {why}. Try {alternatives}{allocation advice}."
 *
 * @param spec What the pool asks for.
 * @param context The cloud, what to name when no accelerator is asked for,
 *   and what to try instead.
 * @returns A function from why nothing fits to the error.
 *
 * @example
 * ```ts
 * import { noOffersError } from "./_offers.ts";
 *
 * const noOffers = noOffersError(
 *   { clusterId: "c", nodes: 1, allocation: "spot" },
 *   { cloud: "Verda", otherwise: "a CPU machine", alternatives: "another location" },
 * );
 * console.log(noOffers("none in stock").message);
 * // "No instances available on Verda for a CPU machine with allocation 'spot': none in stock. Try another location, or allocation 'spot-if-available' to fall back to on-demand."
 * ```
 */
export function noOffersError(
  spec: ClusterSpec,
  context: NoOffersContext,
): (why: string) => NoOffersError {
  const wanted = spec.accelerator
    ? describeAccelerator(spec.accelerator)
    : context.otherwise ?? "a machine";
  return (why) =>
    new NoOffersError(
      `No instances available on ${context.cloud} for ${wanted}${
        context.detail ?? ""
      } with allocation '${spec.allocation}': ${why}. ` +
        `Try ${context.alternatives}${allocationHint(spec.allocation)}.`,
    );
}

/** Least vCPUs and memory (GB) of a CPU-only pool that names neither. */
const DEFAULT_SIZE = { vcpus: 2, memoryGb: 4 };

/**
 * The smallest machine a spec accepts: the vCPUs and memory it asks for;
 * a pool that asks for neither, nor an accelerator, gets 2 vCPUs and 4 GB
 * (what a worker with its sandbox wants), and a pool that asks for one of
 * them gets no bound on the other.
 *
 * @param spec What the pool asks for.
 * @returns The least vCPUs and memory in GB (0: no bound).
 *
 * @example
 * ```ts
 * import { minimumSize } from "./_offers.ts";
 *
 * console.log(minimumSize({ clusterId: "c", nodes: 1, allocation: "spot" }));
 * // { vcpus: 2, memoryGb: 4 }
 * console.log(minimumSize({ clusterId: "c", nodes: 1, allocation: "spot", vcpus: 8 }));
 * // { vcpus: 8, memoryGb: 0 }
 * ```
 */
export function minimumSize(
  spec: ClusterSpec,
): { vcpus: number; memoryGb: number } {
  const sized = spec.accelerator || spec.vcpus || spec.memoryGb;
  return {
    vcpus: spec.vcpus ?? (sized ? 0 : DEFAULT_SIZE.vcpus),
    memoryGb: spec.memoryGb ?? (sized ? 0 : DEFAULT_SIZE.memoryGb),
  };
}

/** How a machine is bought: interruptible (spot, a bid) or on demand. */
export type Market = "spot" | "on-demand";

/** Options of {@linkcode marketsFor}: where a cloud differs. */
export interface MarketsOptions {
  /**
   * Try on-demand even when the offer states no on-demand price (never
   * under a price cap, which an unknown price cannot be checked against).
   * For clouds that sell every machine type on demand and price it from a
   * table that may lack a type (AWS's bundled price list).
   * @default false
   */
  onDemandUnpriced?: boolean;
}

/**
 * The markets to try for an offer, in order: those of the allocation that
 * the offer supports (states a price for), the cheaper first for
 * `"cheapest"` (spot on a tie), none above `maxHourlyCost`.
 *
 * @param offer The offer's prices; a missing one means that market is not offered.
 * @param allocation The pool's allocation.
 * @param maxHourlyCost The pool's price cap, USD per hour.
 * @param options Where a cloud differs.
 * @returns The markets, in the order to try them; empty when none fits.
 *
 * @example
 * ```ts
 * import { marketsFor } from "./_offers.ts";
 *
 * const offer = { spotPrice: 0.3, onDemandPrice: 1 };
 * console.log(marketsFor(offer, "spot-if-available")); // ["spot", "on-demand"]
 * console.log(marketsFor(offer, "cheapest", 0.5)); // ["spot"]
 * ```
 */
export function marketsFor(
  offer: Pick<Offer, "spotPrice" | "onDemandPrice">,
  allocation: ClusterSpec["allocation"],
  maxHourlyCost?: number,
  options: MarketsOptions = {},
): Market[] {
  const { spotPrice, onDemandPrice } = offer;
  const order: Market[] = allocation === "spot"
    ? ["spot"]
    : allocation === "on-demand"
    ? ["on-demand"]
    : allocation === "cheapest" && onDemandPrice !== undefined &&
        spotPrice !== undefined && onDemandPrice < spotPrice
    ? ["on-demand", "spot"]
    : ["spot", "on-demand"];
  return order.filter((market) => {
    const price = market === "spot" ? spotPrice : onDemandPrice;
    if (price === undefined) {
      return market === "on-demand" && options.onDemandUnpriced === true &&
        maxHourlyCost === undefined;
    }
    return maxHourlyCost === undefined || price <= maxHourlyCost;
  });
}

/**
 * The offers within the price cap, cheapest first for the allocation (the
 * smaller machine, then the type's name, on a tie; an offer without a
 * price last).
 *
 * @param priced Each offer with its price for the pool's allocation.
 * @param maxHourlyCost The pool's price cap, USD per hour.
 * @param noOffers Makes the error that says why none is left.
 * @returns The offers, best first.
 * @throws What `noOffers` makes, when none is within the cap: naming the
 *   cheapest and its price, or saying that no price is known.
 *
 * @example
 * ```ts
 * import { rankWithinCap } from "./_offers.ts";
 *
 * const offer = (instanceType: string) => ({ provider: "x", instanceType });
 * const ranked = rankWithinCap(
 *   [{ offer: offer("big"), price: 3 }, { offer: offer("small"), price: 1 }],
 *   2,
 *   (why) => new Error(why),
 * );
 * console.log(ranked.map((o) => o.instanceType)); // ["small"]
 * ```
 */
export function rankWithinCap<O extends Offer>(
  priced: { offer: O; price: number | undefined }[],
  maxHourlyCost: number | undefined,
  noOffers: (why: string) => Error,
): O[] {
  const known = priced.filter((p) => p.price !== undefined)
    .sort((a, b) => a.price! - b.price!);
  let usable = priced;
  if (maxHourlyCost !== undefined) {
    usable = known.filter((p) => p.price! <= maxHourlyCost);
    if (usable.length === 0) {
      throw noOffers(
        known.length > 0
          ? overCap(known[0].offer.instanceType, known[0].price!, maxHourlyCost)
          : `no price is known for ${
            priced.map((p) => p.offer.instanceType).join("/")
          } to compare with maxHourlyCost`,
      );
    }
  }
  return [...usable].sort((a, b) =>
    (a.price ?? Infinity) - (b.price ?? Infinity) ||
    (a.offer.vcpus ?? 0) - (b.offer.vcpus ?? 0) ||
    a.offer.instanceType.localeCompare(b.offer.instanceType)
  ).map((p) => p.offer);
}

/**
 * The offers priced for the pool's allocation and within its price cap,
 * cheapest first; an offer without a price for the allocation is left out.
 * For clouds whose listing states every price it sells at.
 *
 * @param offers The offers that fit.
 * @param spec What the pool asks for (`allocation`, `maxHourlyCost`).
 * @param noOffers Makes the error that says why none is left.
 * @returns The offers, best first.
 * @throws What `noOffers` makes, when no offer is priced for the
 *   allocation ("no A/B is offered as spot") or none is within the cap.
 *
 * @example
 * ```ts
 * import { rankPriced } from "./_offers.ts";
 *
 * const offers = [
 *   { provider: "x", instanceType: "a", onDemandPrice: 2 },
 *   { provider: "x", instanceType: "b", spotPrice: 0.5, onDemandPrice: 1 },
 * ];
 * const spec = { clusterId: "c", nodes: 1, allocation: "spot" as const };
 * console.log(rankPriced(offers, spec, (why) => new Error(why)).map((o) => o.instanceType));
 * // ["b"]
 * ```
 */
export function rankPriced<O extends Offer>(
  offers: O[],
  spec: ClusterSpec,
  noOffers: (why: string) => Error,
): O[] {
  const priced = offers.map((offer) => ({
    offer,
    price: priceFor(offer, spec.allocation),
  })).filter((p) => p.price !== undefined);
  if (priced.length === 0) {
    throw noOffers(
      `no ${offers.map((o) => o.instanceType).join("/")} is offered ${
        spec.allocation === "spot"
          ? "as spot"
          : spec.allocation === "on-demand"
          ? "on demand"
          : "at a known price"
      }`,
    );
  }
  return rankWithinCap(priced, spec.maxHourlyCost, noOffers);
}
