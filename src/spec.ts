/**
 * `sky.Spec`: one wish for machines — a provider and the hardware asked of
 * it — and the ranking of offers across several of them, for pools started
 * with `specs` and `selection`.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";
import { type Accelerator, resolveAccelerator } from "./accelerators.ts";
import { ConfigError, NoOffersError } from "./errors.ts";
import type { ClusterSpec, Offer, Provider } from "./provider.ts";
import { unknownOption } from "./_options.ts";
import {
  type BudgetOptions,
  budgetSchema,
  type ResolvedBudget,
} from "./pool/budget.ts";

/** How machines are paid for, where a provider has spot machines. */
export type Allocation =
  | "spot"
  | "on-demand"
  | "spot-if-available"
  | "cheapest";

/** How a pool with several specs picks among their offers. */
export type Selection = "cheapest" | "first";

/** Options of {@linkcode Spec}. */
export interface SpecOptions {
  /** Where the machines come from: `sky.AWS()`, `sky.RunPod()`, … */
  provider: Provider<any>;
  /** The accelerators each machine needs: `sky.accelerators.H100()` or `"H100:8"`. */
  accelerator?: Accelerator | string;
  /** How many nodes, when this spec is chosen. @default the pool's `nodes` */
  nodes?: number;
  /** The allocation strategy. @default the pool's, else `"spot-if-available"` */
  allocation?: Allocation;
  /** Upper bound on the price of one machine, in dollars per hour. */
  maxHourlyCost?: number;
  /** The region, where the provider has regions. */
  region?: string;
  /** Least vCPUs per machine. */
  vcpus?: number;
  /** Least memory per machine, in GiB. */
  memoryGb?: number;
  /** Size of each machine's root disk, in GiB. */
  diskGb?: number;
  /** The CPU architecture. */
  architecture?: "x86_64" | "arm64";
  /**
   * The budget when this spec is chosen, in dollars: `{ maxCost, warnAt }`
   * (see the pool's `budget`).
   * @default the pool's `budget`
   */
  budget?: BudgetOptions;
}

/** A checked {@linkcode SpecOptions}, made by {@linkcode Spec}. */
export interface Spec
  extends Readonly<Omit<SpecOptions, "accelerator" | "budget">> {
  /** Marks a spec. */
  readonly kind: "spec";
  /** The accelerator, resolved from the catalog. */
  readonly accelerator?: Accelerator;
  /** The budget, with its default `warnAt`. */
  readonly budget?: ResolvedBudget;
}

const positiveInt = z.number().int().positive();

/** The hardware fields shared by pool options and specs, checked. */
export const hardwareSchema = {
  allocation: z.enum(["spot", "on-demand", "spot-if-available", "cheapest"]),
  maxHourlyCost: z.number().positive().optional(),
  accelerator: z.unknown().optional().transform((value, ctx) => {
    try {
      return resolveAccelerator(value);
    } catch (error) {
      ctx.addIssue({ code: "custom", message: (error as Error).message });
      return z.NEVER;
    }
  }),
  vcpus: positiveInt.optional(),
  memoryGb: z.number().positive().optional(),
  diskGb: positiveInt.optional(),
  architecture: z.enum(["x86_64", "arm64"]).optional(),
  region: z.string().min(1).optional(),
};

/** Checks that a value is a provider. */
export const providerSchema = z.custom<Provider>(
  (p) =>
    typeof p === "object" && p !== null &&
    ["offers", "prepare", "provision", "getInstance", "terminate", "teardown"]
      .every((m) =>
        typeof (p as unknown as Record<string, unknown>)[m] === "function"
      ),
  "must be a provider, such as sky.Local()",
);

const SPEC_OPTIONS = [
  "provider",
  "nodes",
  "budget",
  ...Object.keys(hardwareSchema),
];

const specSchema = z.object({
  provider: providerSchema,
  nodes: positiveInt.optional(),
  ...hardwareSchema,
  allocation: hardwareSchema.allocation.optional(),
  budget: budgetSchema.optional(),
}).strict();

/**
 * Describes one kind of machine a pool may run on. Give a pool several, and
 * it provisions the best offer among them — the cheapest, or the first that
 * can be had — falling back to the next when one cannot be prepared or
 * launched.
 *
 * @param options The provider and what is asked of it.
 * @returns The checked spec.
 * @throws {ConfigError} When an option is invalid (an unknown accelerator, a
 *   negative price, a provider that is not one).
 *
 * @example
 * ```ts
 * import * as sky from "../mod.ts";
 *
 * const specs = [
 *   sky.Spec({ provider: sky.Local(), nodes: 2 }),
 *   sky.Spec({ provider: sky.Local(), nodes: 1, maxHourlyCost: 1 }),
 * ];
 * await using pool = await sky.ComputePool.start({
 *   specs,
 *   selection: "first",
 *   console: "silent",
 * });
 * console.log(pool.size); // 2
 * ```
 */
export function Spec(options: SpecOptions): Spec {
  const parsed = specSchema.safeParse(options);
  if (!parsed.success) {
    throw new ConfigError(
      `Invalid sky.Spec: ${
        parsed.error.issues.map((i) =>
          i.code === "unrecognized_keys"
            ? i.keys.map((k) => unknownOption(k, SPEC_OPTIONS)).join("; ")
            : `'${i.path.join(".")}' ${
              i.message.replace(/^Invalid input: /, "")
            }`
        ).join("; ")
      }`,
    );
  }
  return Object.freeze({ kind: "spec" as const, ...parsed.data });
}

/** Whether a value is a {@linkcode Spec}. */
export function isSpec(value: unknown): value is Spec {
  return typeof value === "object" && value !== null &&
    (value as { kind?: unknown }).kind === "spec";
}

/**
 * The price of an offer under an allocation, in dollars per hour: the spot
 * price for `"spot"`, the on-demand price for `"on-demand"`, the spot price
 * when there is one for `"spot-if-available"`, the lower of the two for
 * `"cheapest"`. `undefined` when the offer has no such price (machines of
 * your own have none).
 *
 * @param offer The offer.
 * @param allocation The allocation it would be launched with.
 * @returns Dollars per hour, or `undefined`.
 *
 * @example
 * ```ts
 * import { priceFor } from "./spec.ts";
 *
 * const offer = { provider: "aws", instanceType: "g4dn.xlarge", spotPrice: 0.21, onDemandPrice: 0.53 };
 * console.log(priceFor(offer, "on-demand")); // 0.53
 * console.log(priceFor(offer, "spot-if-available")); // 0.21
 * ```
 */
export function priceFor(
  offer: Offer,
  allocation: Allocation,
): number | undefined {
  switch (allocation) {
    case "spot":
      return offer.spotPrice;
    case "on-demand":
      return offer.onDemandPrice;
    case "spot-if-available":
      return offer.spotPrice ?? offer.onDemandPrice;
    case "cheapest": {
      const prices = [offer.spotPrice, offer.onDemandPrice].filter((p) =>
        p !== undefined
      );
      return prices.length ? Math.min(...prices) : undefined;
    }
  }
}

/** One offer of one spec, as ranked by {@linkcode rankOffers}. */
export interface Candidate {
  /** The provider that made the offer. */
  provider: Provider<any>;
  /** What is asked of the provider. */
  spec: ClusterSpec;
  /** How many nodes to launch. */
  nodes: number;
  /** The offer. */
  offer: Offer;
  /** Its price under the spec's allocation, when known. */
  price?: number;
  /** The budget in force if it is chosen. */
  budget?: ResolvedBudget;
  /** The option that budget came from: `"budget"` or `"specs[1].budget"`. */
  budgetOption?: string;
}

/** A spec ready to ask for offers: the provider, the cluster spec, the count. */
export interface SpecRequest {
  /** The provider. */
  provider: Provider<any>;
  /** The spec passed to its `offers` and `prepare`. */
  spec: ClusterSpec;
  /** How many nodes to launch if chosen. */
  nodes: number;
  /** The budget in force if chosen. */
  budget?: ResolvedBudget;
  /** The option that budget came from: `"budget"` or `"specs[1].budget"`. */
  budgetOption?: string;
}

/**
 * Gathers the offers of every spec and ranks them: by price under each
 * spec's allocation for `"cheapest"` (offers without a price after those
 * with one, in their order), by spec order then the provider's own order for
 * `"first"`. Offers dearer than their spec's `maxHourlyCost` are left out.
 *
 * @param requests The specs, in the order given.
 * @param selection How to rank.
 * @returns The offers, best first.
 * @throws {NoOffersError} When no offer is left, naming the accelerators,
 *   the providers, the cap and why each provider had none. With a single
 *   spec whose provider failed, that provider's own error is thrown instead.
 *
 * @example
 * ```ts
 * import * as sky from "../mod.ts";
 * import { rankOffers } from "./spec.ts";
 *
 * const provider = sky.Local();
 * const ranked = await rankOffers(
 *   [{ provider, nodes: 1, spec: { clusterId: "c", nodes: 1, allocation: "cheapest" } }],
 *   "cheapest",
 * );
 * console.log(ranked[0].offer.provider); // "local"
 * ```
 */
export async function rankOffers(
  requests: SpecRequest[],
  selection: Selection,
): Promise<Candidate[]> {
  const results = await Promise.allSettled(
    requests.map((r) => r.provider.offers(r.spec)),
  );
  const reasons: string[] = [];
  const candidates: Candidate[] = [];
  let capped = 0;
  let cheapestCapped: Candidate | undefined;
  results.forEach((result, i) => {
    const request = requests[i];
    const name = request.provider.name;
    if (result.status === "rejected") {
      const error = result.reason as Error;
      if (requests.length === 1) throw error;
      reasons.push(`${name}: ${error?.message ?? String(error)}`);
      return;
    }
    if (result.value.length === 0) {
      reasons.push(`${name}: no offers`);
      return;
    }
    let kept = 0;
    for (const offer of result.value) {
      const price = priceFor(offer, request.spec.allocation);
      const candidate = { ...request, offer, price };
      const cap = request.spec.maxHourlyCost;
      if (cap !== undefined && price !== undefined && price > cap) {
        capped++;
        if (!cheapestCapped || price < cheapestCapped.price!) {
          cheapestCapped = candidate;
        }
        continue;
      }
      candidates.push(candidate);
      kept++;
    }
    if (kept === 0) {
      reasons.push(
        `${name}: every offer is above $${request.spec.maxHourlyCost}/h`,
      );
    }
  });
  if (candidates.length === 0) {
    const accelerators = [
      ...new Set(requests.map((r) => describeAccelerator(r.spec.accelerator))),
    ].join(", ");
    const providers = [...new Set(requests.map((r) => r.provider.name))]
      .join(", ");
    const caps = [
      ...new Set(
        requests.map((r) => r.spec.maxHourlyCost).filter((c) =>
          c !== undefined
        ),
      ),
    ];
    const cap = caps.length ? ` at most $${caps.join(" or $")}/h` : "";
    const dearest = cheapestCapped
      ? ` (${capped} offer(s) over the cap; the cheapest is ${cheapestCapped.provider.name} ${cheapestCapped.offer.instanceType} at $${cheapestCapped.price}/h)`
      : "";
    throw new NoOffersError(
      `No offers for ${accelerators} from ${providers}${cap}${dearest}: ${
        reasons.join("; ")
      }`,
    );
  }
  if (selection === "first") return candidates;
  return candidates
    .map((c, order) => ({ c, order }))
    .sort((a, b) =>
      (a.c.price ?? Infinity) - (b.c.price ?? Infinity) || a.order - b.order
    )
    .map(({ c }) => c);
}

function describeAccelerator(accelerator: Accelerator | undefined): string {
  if (!accelerator) return "machines without accelerators";
  return accelerator.count > 1
    ? `${accelerator.name} × ${accelerator.count}`
    : accelerator.name;
}
