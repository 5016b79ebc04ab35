/**
 * The budget guard: `budget: { maxCost, warnAt }` on a pool (or on each
 * `sky.Spec`). Before a launch or a scale-up, it refuses what would pass
 * `maxCost` within the next cost interval; as the spend grows it reports
 * `BudgetWarning` once past `warnAt` and, at `maxCost`, `BudgetExceeded`,
 * after which the pool fails its tasks with `BudgetExceededError` and
 * closes. It wakes exactly when the spend reaches each threshold (the
 * ledger's rate tells when), so the pool stops at the cap, not up to an
 * interval past it.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";
import { BudgetExceededError, ConfigError } from "../errors.ts";
import { type EventInit, formatDollars } from "../events.ts";
import type { Candidate } from "../spec.ts";
import { HOUR_MS, type Spend } from "./spend.ts";

/**
 * A pool's (or a spec's) budget, in US dollars.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 *
 * const budget: sky.BudgetOptions = { maxCost: 20, warnAt: 15 };
 * await using pool = await sky.ComputePool.start({
 *   provider: sky.Local({ pricePerHour: 0.5 }),
 *   budget,
 *   console: "silent",
 * });
 * console.log(pool.size); // 1
 * ```
 */
export interface BudgetOptions {
  /**
   * The most the pool may spend, in dollars: it refuses launches that would
   * pass it within the next cost interval, and closes once its spend
   * reaches it.
   */
  maxCost: number;
  /**
   * Past this spend, in dollars, the pool reports `BudgetWarning` (once).
   * @default 80% of maxCost
   */
  warnAt?: number;
}

/**
 * A budget once checked, with its default: what a `sky.Spec` keeps.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 *
 * const spec = sky.Spec({ provider: sky.Local({ pricePerHour: 1 }), budget: { maxCost: 10 } });
 * const budget: sky.ResolvedBudget | undefined = spec.budget;
 * console.log(budget); // { maxCost: 10, warnAt: 8 }
 * ```
 */
export interface ResolvedBudget {
  /** The cap, in dollars. */
  maxCost: number;
  /** The warning threshold, in dollars. */
  warnAt: number;
}

/**
 * The share of `maxCost` at which a budget warns when `warnAt` is not given.
 *
 * @example
 * ```ts
 * import { DEFAULT_WARN_SHARE } from "./budget.ts";
 *
 * console.log(20 * DEFAULT_WARN_SHARE); // 16: a $20 budget warns at $16
 * ```
 */
export const DEFAULT_WARN_SHARE = 0.8;

/**
 * How often a pool reports its spend (`Cost`) by default, and the horizon
 * over which a launch must stay within the budget, in milliseconds.
 *
 * @example
 * ```ts
 * import { DEFAULT_COST_INTERVAL } from "./budget.ts";
 *
 * console.log(DEFAULT_COST_INTERVAL / 1000); // 60
 * ```
 */
export const DEFAULT_COST_INTERVAL = 60_000;

/**
 * Checks a `budget` option into its resolved form.
 *
 * @example
 * ```ts
 * import { budgetSchema } from "./budget.ts";
 *
 * console.log(budgetSchema.parse({ maxCost: 20 })); // { maxCost: 20, warnAt: 16 }
 * ```
 */
export const budgetSchema: z.ZodType<ResolvedBudget, BudgetOptions> = z.object(
  {
    maxCost: z.number().positive(),
    warnAt: z.number().positive().optional(),
  },
).strict().superRefine((b, ctx) => {
  if (b.warnAt !== undefined && b.warnAt > b.maxCost) {
    ctx.addIssue({
      code: "custom",
      path: ["warnAt"],
      message: `must be at most maxCost (${b.maxCost})`,
    });
  }
}).transform((b) => ({
  maxCost: b.maxCost,
  warnAt: b.warnAt ?? b.maxCost * DEFAULT_WARN_SHARE,
}));

/** Spend that counts as the cap: a few dollars' billionths of rounding. */
const EPSILON = 1e-9;

/**
 * What a {@linkcode BudgetGuard} needs.
 *
 * @example
 * ```ts
 * import type { BudgetGuardOptions } from "./budget.ts";
 * import { Spend } from "./spend.ts";
 *
 * const options: BudgetGuardOptions = {
 *   spend: new Spend(),
 *   interval: 60_000,
 *   emit: (event) => console.log(event.type),
 *   exceeded: (error) => console.log(error.message),
 * };
 * console.log(options.interval);
 * ```
 */
export interface BudgetGuardOptions {
  /** The pool's ledger. */
  spend: Spend;
  /** The cost interval, in milliseconds: the horizon of a launch's check. */
  interval: number;
  /** Reports `BudgetWarning` and `BudgetExceeded`. */
  emit(event: EventInit): void;
  /** The spend reached the cap: fail the tasks with `error` and close. */
  exceeded(error: BudgetExceededError): void;
}

/**
 * Keeps a pool within its budget.
 *
 * @example
 * ```ts
 * import { BudgetGuard } from "./budget.ts";
 * import { Spend } from "./spend.ts";
 *
 * const guard = new BudgetGuard({
 *   spend: new Spend(),
 *   interval: 60_000,
 *   emit: (event) => console.log(event.type),
 *   exceeded: (error) => console.log(error.message),
 * });
 * guard.use({ maxCost: 1, warnAt: 0.8 });
 * console.log(guard.afford(10, 6)); // 10 nodes at $6/h for a minute cost $1: all fit
 * guard.admit(2, 6);
 * guard.stop();
 * ```
 */
export class BudgetGuard {
  #options: BudgetGuardOptions;
  #limit: ResolvedBudget | undefined;
  /** The option the budget came from, for messages. */
  #option = "budget";
  #warned = false;
  #exceeded = false;
  #stopped = false;
  #cancel: () => void = () => {};
  #unlisten: () => void;

  /** @param options The ledger, the interval and what to do at the cap. */
  constructor(options: BudgetGuardOptions) {
    this.#options = options;
    this.#unlisten = options.spend.onChange(() => this.#watch());
  }

  /** The budget in force, once an offer was chosen. */
  get limit(): ResolvedBudget | undefined {
    return this.#limit;
  }

  /**
   * Puts a budget in force (the chosen spec's, or the pool's).
   *
   * @param limit The budget, or `undefined` for none.
   * @param option The option it came from, e.g. `"specs[1].budget"`.
   */
  use(limit: ResolvedBudget | undefined, option = "budget"): void {
    this.#limit = limit;
    this.#option = option;
    this.#watch();
  }

  /**
   * How many of `count` new machines at `pricePerHour` fit in the budget
   * over the next interval, with those held.
   *
   * @param count The machines wanted.
   * @param pricePerHour The price of each.
   * @returns From 0 to `count`.
   */
  afford(count: number, pricePerHour: number | undefined): number {
    const limit = this.#limit;
    if (!limit) return count;
    if (this.#exceeded) return 0;
    const hours = this.#options.interval / HOUR_MS;
    const room = limit.maxCost - this.#projected(0);
    const each = (pricePerHour ?? 0) * hours;
    if (each <= 0) return room >= -EPSILON ? count : 0;
    return Math.max(0, Math.min(count, Math.floor((room + EPSILON) / each)));
  }

  /**
   * Refuses to launch `count` machines at `pricePerHour` when the pool's
   * spend would pass `maxCost` within the next interval.
   *
   * @param count The machines to launch.
   * @param pricePerHour The price of each.
   * @throws {BudgetExceededError} Naming the cap, the spend and the rate.
   */
  admit(count: number, pricePerHour: number | undefined): void {
    const limit = this.#limit;
    if (!limit || this.afford(count, pricePerHour) >= count) return;
    const spend = this.#options.spend;
    const spent = spend.spent();
    const rate = spend.ratePerHour();
    const added = count * (pricePerHour ?? 0);
    throw new BudgetExceededError(
      `Cannot launch ${count} machine(s) at ${
        formatDollars(pricePerHour ?? 0)
      }/h: with ${formatDollars(spent)} spent and ${
        formatDollars(rate)
      }/h running, the pool would spend ${
        formatDollars(this.#projected(added))
      } within the next ${
        this.#options.interval / 1000
      } s, past its budget's maxCost of ${formatDollars(limit.maxCost)}. ` +
        `Raise '${this.#option}.maxCost', or ask for fewer or cheaper machines`,
      { spent, maxCost: limit.maxCost },
    );
  }

  /** Stops watching the spend (the pool is closing). */
  stop(): void {
    this.#stopped = true;
    this.#cancel();
    this.#unlisten();
  }

  /** The spend at the end of the next interval, with `added` dollars per hour more. */
  #projected(added: number): number {
    const spend = this.#options.spend;
    return spend.spent() +
      (spend.ratePerHour() + added) * this.#options.interval / HOUR_MS;
  }

  /**
   * Reports what the spend passed, and sets a timer for when it reaches the
   * next threshold at the rate now.
   */
  #watch(): void {
    this.#cancel();
    this.#cancel = () => {};
    const limit = this.#limit;
    if (!limit || this.#stopped || this.#exceeded) return;
    const { spend, emit } = this.#options;
    const spent = spend.spent();
    if (!this.#warned && spent >= limit.warnAt - EPSILON) {
      this.#warned = true;
      emit({
        type: "BudgetWarning",
        spent,
        warnAt: limit.warnAt,
        maxCost: limit.maxCost,
      });
    }
    if (spent >= limit.maxCost - EPSILON) {
      this.#exceeded = true;
      emit({ type: "BudgetExceeded", spent, maxCost: limit.maxCost });
      this.#options.exceeded(
        new BudgetExceededError(
          `The pool spent ${formatDollars(spent)}, its budget's maxCost of ${
            formatDollars(limit.maxCost)
          }: its tasks were stopped and its machines released`,
          { spent, maxCost: limit.maxCost },
        ),
      );
      return;
    }
    const rate = spend.ratePerHour();
    if (rate <= 0) return;
    const next = this.#warned ? limit.maxCost : limit.warnAt;
    const ms = Math.max(1, Math.ceil((next - spent) / rate * HOUR_MS));
    this.#cancel = spend.clock.after(ms, () => this.#watch());
  }
}

/**
 * The price a candidate's machines are counted at: the one that applies to
 * its allocation, else any the offer states.
 */
function offerPrice(candidate: Candidate): number {
  return candidate.price ?? candidate.offer.onDemandPrice ??
    candidate.offer.spotPrice ?? 0;
}

/**
 * Refuses, before anything is launched, a budget or a `costInterval` that
 * could have no effect: one given where no offer has a price (local, SSH
 * and container machines cost nothing unless given one).
 *
 * @param candidates The ranked offers, each with the budget of its spec and
 *   the option it came from.
 * @param costIntervalGiven Whether the pool was given `costInterval`.
 * @throws {ConfigError} Naming the option and how to give the machines a price.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 * import { checkPricing } from "./budget.ts";
 *
 * const provider = sky.Local({ pricePerHour: 0.5 });
 * const spec = { clusterId: "c", nodes: 1, allocation: "cheapest" as const };
 * const [offer] = await provider.offers(spec);
 * checkPricing([{ provider, spec, nodes: 1, offer, price: 0.5, budget: { maxCost: 1, warnAt: 0.8 } }], false);
 * ```
 */
export function checkPricing(
  candidates: Candidate[],
  costIntervalGiven: boolean,
): void {
  const priced = (c: Candidate) => offerPrice(c) > 0;
  const advice = (cs: Candidate[]) =>
    `no offer of ${
      [...new Set(cs.map((c) => c.provider.name))].join(", ")
    } has a price (local, SSH and container machines cost nothing unless given one, ` +
    `e.g. sky.Local({ pricePerHour: 0.5 }))`;
  const bySource = new Map<string, Candidate[]>();
  for (const c of candidates) {
    if (c.budgetOption === undefined) continue;
    bySource.set(c.budgetOption, [...bySource.get(c.budgetOption) ?? [], c]);
  }
  for (const [option, cs] of bySource) {
    if (!cs.some(priced)) {
      throw new ConfigError(
        `Cannot start pool: '${option}' has no effect: ${advice(cs)}`,
      );
    }
  }
  if (costIntervalGiven && !candidates.some(priced)) {
    throw new ConfigError(
      `Cannot start pool: 'costInterval' has no effect: ${advice(candidates)}`,
    );
  }
}
