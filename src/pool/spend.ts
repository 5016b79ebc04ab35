/**
 * What a pool spends: the price each machine was launched at (its offer's
 * spot or on-demand price), the dollars spent on each from its launch to its
 * release, the rate now, and the `Cost` event reported every
 * `costInterval`. Time comes from a {@linkcode Clock}, which tests replace by
 * one that runs fast ({@linkcode useClock}).
 *
 * What is counted is the machines' hourly price over the time the pool held
 * them; storage, traffic and anything billed apart from the machine's hour
 * are not.
 *
 * @module
 */
import type { EventInit, NodeCost } from "../events.ts";
import type { Instance, Offer } from "../provider.ts";
import { after } from "../_timers.ts";

/**
 * Milliseconds in an hour: prices are per hour, the clock in milliseconds.
 *
 * @example
 * ```ts
 * import { HOUR_MS } from "./spend.ts";
 *
 * console.log(0.53 * (90 * 60_000) / HOUR_MS); // dollars for 90 minutes at $0.53/h
 * ```
 */
export const HOUR_MS = 3_600_000;

/**
 * The time a pool's spend is measured with.
 *
 * @example
 * ```ts
 * import { systemClock } from "./spend.ts";
 *
 * const cancel = systemClock.after(1_000, () => console.log("a second later"));
 * cancel();
 * console.log(systemClock.now() > 0); // true
 * ```
 */
export interface Clock {
  /**
   * The time now.
   *
   * @returns Milliseconds since the epoch.
   */
  now(): number;
  /**
   * Calls `fn` once after `ms` milliseconds; the timer never keeps the
   * program alive by itself.
   *
   * @param ms The delay, in milliseconds.
   * @param fn What to call.
   * @returns A function that cancels the timer.
   */
  after(ms: number, fn: () => void): () => void;
}

/**
 * The wall clock: `Date.now()` and unreferenced timers.
 *
 * @example
 * ```ts
 * import { systemClock } from "./spend.ts";
 *
 * console.log(Math.abs(systemClock.now() - Date.now()) < 1_000); // true
 * ```
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  after: (ms, fn) => after(ms, fn, { keepAlive: false }),
};

let currentClock: Clock = systemClock;

/**
 * The clock the pools started from now on measure their spend with.
 *
 * @returns The clock.
 *
 * @example
 * ```ts
 * import { poolClock, systemClock } from "./spend.ts";
 *
 * console.log(poolClock() === systemClock); // true, unless a test replaced it
 * ```
 */
export function poolClock(): Clock {
  return currentClock;
}

/**
 * Replaces the clock of the pools started from now on (for tests: a clock
 * that runs fast shows hours of spend without waiting for them).
 *
 * @param clock The clock.
 * @returns A function that puts the previous clock back.
 *
 * @example
 * ```ts
 * import { poolClock, systemClock, useClock } from "./spend.ts";
 *
 * const restore = useClock({ now: () => 0, after: () => () => {} });
 * console.log(poolClock().now()); // 0
 * restore();
 * console.log(poolClock() === systemClock); // true
 * ```
 */
export function useClock(clock: Clock): () => void {
  const previous = currentClock;
  currentClock = clock;
  return () => {
    currentClock = previous;
  };
}

/**
 * A pool's spend as of now: what `pool.spend` gives.
 *
 * @example
 * ```ts
 * import type { PoolSpend } from "./spend.ts";
 *
 * const shown = (s: PoolSpend) =>
 *   `$${s.spent.toFixed(2)}${s.budget ? ` of $${s.budget.maxCost}` : ""} at $${s.ratePerHour}/h`;
 * console.log(shown({ spent: 1.5, ratePerHour: 2, budget: { maxCost: 10, warnAt: 8 } }));
 * ```
 */
export interface PoolSpend {
  /** Dollars spent so far, on every machine the pool launched. */
  spent: number;
  /** Dollars per hour now: the prices of the machines held. */
  ratePerHour: number;
  /** The budget in force, when there is one. */
  budget?: { maxCost: number; warnAt: number };
}

/**
 * What a machine costs, as its events carry it.
 *
 * @example
 * ```ts
 * import type { MachinePrice } from "./spend.ts";
 *
 * const spotT4: MachinePrice = { pricePerHour: 0.21, spot: true };
 * console.log(spotT4.pricePerHour);
 * ```
 */
export interface MachinePrice {
  /** Dollars per hour, when known. */
  pricePerHour?: number;
  /** Whether it is a spot machine, when known. */
  spot?: boolean;
}

/**
 * The price of a launched machine: the one its provider stated for it, else
 * the offer's spot price for a spot machine, its on-demand price for an on-demand one, and, where the
 * provider does not say which it launched, the price that applies to the
 * allocation (else any price the offer states).
 *
 * @param offer The offer it was launched on.
 * @param price The offer's price under the allocation (`priceFor`), when known.
 * @param instance The machine, as the provider returned it.
 * @returns Its price and whether it is spot, each when known.
 *
 * @example
 * ```ts
 * import { machinePrice } from "./spend.ts";
 *
 * const offer = { provider: "aws", instanceType: "g4dn.xlarge", spotPrice: 0.21, onDemandPrice: 0.53 };
 * console.log(machinePrice(offer, 0.21, { spot: false }));
 * // { pricePerHour: 0.53, spot: false }
 * ```
 */
export function machinePrice(
  offer: Offer,
  price: number | undefined,
  instance: Pick<Instance, "spot" | "pricePerHour">,
): MachinePrice {
  if (instance.pricePerHour !== undefined) {
    return instance.spot === undefined
      ? { pricePerHour: instance.pricePerHour }
      : { pricePerHour: instance.pricePerHour, spot: instance.spot };
  }
  const base = price ?? offer.onDemandPrice ?? offer.spotPrice;
  if (instance.spot === true) {
    return { pricePerHour: offer.spotPrice ?? base, spot: true };
  }
  if (instance.spot === false) {
    return { pricePerHour: offer.onDemandPrice ?? base, spot: false };
  }
  return base === undefined ? {} : { pricePerHour: base };
}

interface Machine {
  instanceId: string;
  pricePerHour: number | undefined;
  spot: boolean | undefined;
  node: number;
  from: number;
}

/**
 * The pool's ledger of machines: each from the moment it was launched to
 * the moment it was released, at its price.
 *
 * @example
 * ```ts
 * import { Spend } from "./spend.ts";
 *
 * let now = 0;
 * const spend = new Spend({ now: () => now, after: () => () => {} });
 * spend.open("i-1", { pricePerHour: 2 });
 * now = 30 * 60_000; // half an hour later
 * console.log(spend.spent(), spend.ratePerHour()); // 1 2
 * spend.close(["i-1"]);
 * console.log(spend.ratePerHour()); // 0
 * ```
 */
export class Spend {
  /** The clock the ledger reads. */
  readonly clock: Clock;
  #machines = new Map<string, Machine>();
  /** Dollars spent on the machines released. */
  #released = 0;
  #priced = false;
  #listeners = new Set<() => void>();

  /** @param clock The time to measure with. */
  constructor(clock: Clock = systemClock) {
    this.clock = clock;
  }

  /** Whether any machine of the pool had a price above zero. */
  get priced(): boolean {
    return this.#priced;
  }

  /**
   * Calls `fn` whenever a machine is opened or closed (the rate changed).
   *
   * @param fn What to call.
   * @returns A function that stops calling it.
   */
  onChange(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /**
   * Starts counting a machine, from now.
   *
   * @param instanceId The provider's id of the machine.
   * @param price Its price, when known.
   */
  open(instanceId: string, price: MachinePrice): void {
    if (this.#machines.has(instanceId)) return;
    this.#machines.set(instanceId, {
      instanceId,
      pricePerHour: price.pricePerHour,
      spot: price.spot,
      node: -1,
      from: this.clock.now(),
    });
    if ((price.pricePerHour ?? 0) > 0) this.#priced = true;
    this.#changed();
  }

  /**
   * Records which node a machine is.
   *
   * @param instanceId The machine.
   * @param node The node's index.
   */
  place(instanceId: string, node: number): void {
    const machine = this.#machines.get(instanceId);
    if (machine) machine.node = node;
  }

  /**
   * The price of a machine the ledger holds.
   *
   * @param instanceId The machine.
   * @returns Its price and whether it is spot, each when known.
   */
  priceOf(instanceId: string): MachinePrice {
    const machine = this.#machines.get(instanceId);
    if (!machine || machine.pricePerHour === undefined) return {};
    return machine.spot === undefined
      ? { pricePerHour: machine.pricePerHour }
      : { pricePerHour: machine.pricePerHour, spot: machine.spot };
  }

  /**
   * Stops counting machines, from now; those not held are skipped.
   *
   * @param instanceIds The machines released.
   */
  close(instanceIds: Iterable<string>): void {
    const now = this.clock.now();
    let changed = false;
    for (const id of instanceIds) {
      const machine = this.#machines.get(id);
      if (!machine) continue;
      this.#machines.delete(id);
      this.#released += cost(machine, now);
      changed = true;
    }
    if (changed) this.#changed();
  }

  /** Stops counting every machine (the pool released them all). */
  closeAll(): void {
    this.close([...this.#machines.keys()]);
  }

  /**
   * Dollars spent so far, on every machine launched.
   *
   * @returns The total.
   */
  spent(): number {
    const now = this.clock.now();
    let total = this.#released;
    for (const machine of this.#machines.values()) total += cost(machine, now);
    return total;
  }

  /**
   * Dollars per hour now: the prices of the machines held.
   *
   * @returns The rate.
   */
  ratePerHour(): number {
    let rate = 0;
    for (const machine of this.#machines.values()) {
      rate += machine.pricePerHour ?? 0;
    }
    return rate;
  }

  /**
   * The `Cost` event as of now: the total, the rate and each priced machine
   * held.
   *
   * @returns The event, to emit.
   */
  report(): Extract<EventInit, { type: "Cost" }> {
    const now = this.clock.now();
    const nodes: NodeCost[] = [];
    for (const machine of this.#machines.values()) {
      if (machine.pricePerHour === undefined) continue;
      nodes.push({
        node: machine.node,
        instanceId: machine.instanceId,
        pricePerHour: machine.pricePerHour,
        spent: cost(machine, now),
      });
    }
    nodes.sort((a, b) => a.node - b.node);
    return {
      type: "Cost",
      spent: this.spent(),
      ratePerHour: this.ratePerHour(),
      nodes,
    };
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }
}

function cost(machine: Machine, now: number): number {
  const price = machine.pricePerHour ?? 0;
  return price * Math.max(0, now - machine.from) / HOUR_MS;
}

/**
 * Reports the spend every `interval` while the pool's machines have a price.
 *
 * @param spend The ledger.
 * @param interval Milliseconds between two `Cost` events.
 * @param emit Reports the event.
 * @returns A function that stops the reports.
 *
 * @example
 * ```ts
 * import { reportCost, Spend } from "./spend.ts";
 *
 * const stop = reportCost(new Spend(), 60_000, (event) => console.log(event.spent));
 * stop();
 * ```
 */
export function reportCost(
  spend: Spend,
  interval: number,
  emit: (event: Extract<EventInit, { type: "Cost" }>) => void,
): () => void {
  let cancel: () => void = () => {};
  let stopped = false;
  const arm = () => {
    cancel = spend.clock.after(interval, () => {
      if (stopped) return;
      if (spend.priced) emit(spend.report());
      arm();
    });
  };
  arm();
  return () => {
    stopped = true;
    cancel();
  };
}
