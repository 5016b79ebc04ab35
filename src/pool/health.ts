/**
 * Health checks: a compute the pool runs on each node, first to admit the
 * node (it takes no task before a check succeeds), then every `interval` to
 * watch it; `failures` failed checks in a row get the node replaced.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";
import type { Compute } from "../compute.ts";
import { sleep } from "../_timers.ts";

/**
 * Options of the pool's `healthCheck`.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 * import { healthy } from "../../examples/elastic.ts";
 *
 * const healthCheck: sky.HealthCheckOptions = { fn: healthy, interval: 5_000, failures: 3 };
 * await using pool = await sky.ComputePool.start({ provider: sky.Local(), healthCheck, console: "silent" });
 * console.log(pool.size); // 1, once its first check passed
 * ```
 */
export interface HealthCheckOptions {
  /**
   * The check: a compute taking no argument, run on the node like any task
   * (in its sandbox, with its permissions). It fails when it throws, returns
   * `false` or runs past `timeout`.
   */
  fn: Compute<[], unknown>;
  /**
   * Time between two checks of a node, in milliseconds. A check falls due
   * only while the node has a free slot: a node whose slots are all busy is
   * not checked (nor counted as failing) until one frees.
   * @default 30_000
   */
  interval?: number;
  /**
   * How long one check may run, in milliseconds.
   * @default 10_000
   */
  timeout?: number;
  /**
   * Failed checks in a row after which the node is replaced (or, while it
   * starts, given up).
   * @default 3
   */
  failures?: number;
}

const positive = z.number().int().positive();

/** The schema of the `healthCheck` option, resolving defaults. */
export const healthCheckSchema = z.object({
  fn: z.custom<Compute<[], unknown>>(
    (f) =>
      typeof f === "function" &&
      typeof (f as { id?: { key?: unknown } }).id?.key === "string",
    "must be a compute taking no argument, made with sky.compute(() => ...)",
  ),
  interval: positive.max(
    2 ** 31 - 1,
    "must be at most 2147483647 ms (24.8 days), the longest interval a timer takes",
  ).default(30_000),
  timeout: positive.default(10_000),
  failures: positive.default(3),
}).strict();

/** The `healthCheck` option with every default applied. */
export type ResolvedHealthCheck = z.output<typeof healthCheckSchema>;

/** What a {@linkcode HealthMonitor} needs from the pool. */
export interface HealthHooks {
  /** Runs one check on the node: resolves to the compute's result, or rejects. */
  probe(): Promise<unknown>;
  /** Whether every slot of the node is busy (the check waits for one). */
  busy(): boolean;
  /** A check failed; `failures` counts the failures in a row. */
  failed(failures: number, error: Error): void;
  /** `failures` checks in a row failed after the node was admitted. */
  unhealthy(reason: string): void;
}

/**
 * Watches one node. {@linkcode HealthMonitor.admit} resolves at the first
 * successful check and rejects after `failures` in a row;
 * {@linkcode HealthMonitor.start} then checks every `interval` and reports
 * `failures` failures in a row once.
 *
 * @example
 * ```ts
 * import { HealthMonitor, healthCheckSchema } from "./health.ts";
 * import { healthy } from "../../examples/elastic.ts";
 *
 * const options = healthCheckSchema.parse({ fn: healthy, interval: 10 });
 * const monitor = new HealthMonitor(options, {
 *   probe: () => Promise.resolve(true),
 *   busy: () => false,
 *   failed: () => {},
 *   unhealthy: () => {},
 * });
 * await monitor.admit();
 * monitor.stop();
 * ```
 */
export class HealthMonitor {
  #options: ResolvedHealthCheck;
  #hooks: HealthHooks;
  #failures = 0;
  #timer?: ReturnType<typeof setTimeout>;
  #stopped = false;

  /**
   * @param options The resolved health check.
   * @param hooks How to run a check and where to report.
   */
  constructor(options: ResolvedHealthCheck, hooks: HealthHooks) {
    this.#options = options;
    this.#hooks = hooks;
  }

  /**
   * Checks the node until a check succeeds, `interval` apart.
   *
   * @throws {Error} After `failures` failed checks in a row, or when stopped.
   */
  async admit(): Promise<void> {
    for (;;) {
      if (this.#stopped) throw new Error("the node's health checks stopped");
      const error = await this.#check();
      if (!error) return;
      if (this.#failures >= this.#options.failures) {
        throw new Error(
          `its health check failed ${this.#failures} time(s) in a row: ${error.message}`,
        );
      }
      await sleep(this.#options.interval);
    }
  }

  /** Checks the node every `interval` until {@linkcode HealthMonitor.stop}. */
  start(): void {
    this.#stopped = false;
    clearTimeout(this.#timer);
    this.#schedule(this.#options.interval);
  }

  /** Stops checking. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #schedule(delay: number): void {
    this.#timer = setTimeout(async () => {
      if (this.#stopped) return;
      // A busy node is not checked: look again shortly.
      if (this.#hooks.busy()) {
        return this.#schedule(Math.min(this.#options.interval, 100));
      }
      const error = await this.#check();
      if (this.#stopped) return;
      if (error && this.#failures >= this.#options.failures) {
        this.#stopped = true;
        this.#hooks.unhealthy(
          `its health check failed ${this.#failures} time(s) in a row: ${error.message}`,
        );
        return;
      }
      this.#schedule(this.#options.interval);
    }, delay);
    // Health checks never keep a program alive.
    Deno.unrefTimer(this.#timer);
  }

  /** Runs one check; returns why it failed, or `undefined`. */
  async #check(): Promise<Error | undefined> {
    let error: Error | undefined;
    try {
      if (await this.#hooks.probe() === false) {
        error = new Error("the check returned false");
      }
    } catch (thrown) {
      error = thrown instanceof Error ? thrown : new Error(String(thrown));
    }
    if (!error) {
      this.#failures = 0;
      return undefined;
    }
    this.#failures++;
    if (!this.#stopped) this.#hooks.failed(this.#failures, error);
    return error;
  }
}
