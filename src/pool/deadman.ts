/**
 * The client's half of the dead-man switch: the options, the heartbeat the
 * pool sends every worker, and the settings each worker is started with.
 * The worker's half (stopping, powering off) is `worker/deadman.ts`.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";

/**
 * Options of the dead-man switch: how workers notice that their client is
 * gone, and the pool's hard time to live.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 *
 * const deadManSwitch: sky.DeadManSwitchOptions = {
 *   heartbeatInterval: 1_000,
 *   missedHeartbeats: 10, // a worker stops after 10 s without its client
 *   grace: 60_000, // and powers its cloud machine off a minute later
 *   ttl: 3_600_000, // the pool lives an hour at most
 * };
 * await using pool = await sky.ComputePool.start({
 *   provider: sky.Local(),
 *   console: "silent",
 *   deadManSwitch,
 * });
 * ```
 */
export interface DeadManSwitchOptions {
  /**
   * How often the client sends each worker a heartbeat, in milliseconds.
   * @default 5_000
   */
  heartbeatInterval?: number;
  /**
   * How many heartbeats in a row a worker may miss before it decides its
   * client is gone and stops (any bytes from the client count as a
   * heartbeat, so a long upload never looks like silence).
   * @default 6
   */
  missedHeartbeats?: number;
  /**
   * How long a worker whose client is gone waits for it to come back before
   * it powers its machine off, in milliseconds, on providers whose machines
   * can power themselves off (clouds). The worker's tasks stop at once.
   * @default 300_000 (5 minutes)
   */
  grace?: number;
  /**
   * The pool's hard time to live, in milliseconds from its start: then the
   * pool closes itself, and every worker stops and powers its machine off
   * (with no grace), whether or not the client is still there.
   * @default no limit
   */
  ttl?: number;
}

/** The dead-man switch's settings after validation. */
export interface ResolvedDeadManSwitch {
  heartbeatInterval: number;
  missedHeartbeats: number;
  grace: number;
  ttl?: number;
}

const positiveInt = z.number().int().positive();

/**
 * Validates {@linkcode DeadManSwitchOptions} (used by the pool's options).
 *
 * @example
 * ```ts
 * import { deadManSwitchSchema } from "./deadman.ts";
 *
 * console.log(deadManSwitchSchema.parse({ grace: 0 }).missedHeartbeats); // 6
 * ```
 */
export const deadManSwitchSchema: z.ZodType<
  ResolvedDeadManSwitch,
  DeadManSwitchOptions | undefined
> = z.object({
  heartbeatInterval: positiveInt.max(
    2 ** 31 - 1,
    "must be at most 2147483647 ms (24.8 days), the longest interval a timer takes",
  ).default(5_000),
  missedHeartbeats: positiveInt.default(6),
  grace: z.number().int().nonnegative().default(300_000),
  ttl: positiveInt.optional(),
}).strict().default({
  heartbeatInterval: 5_000,
  missedHeartbeats: 6,
  grace: 300_000,
});

/**
 * The value of the worker's `SKYWARD_DEADMAN` variable.
 *
 * @param options The pool's resolved switch.
 * @param powerOff The provider's power-off command, if its machines have one.
 * @param startedAt When the pool started (`Date.now()`), for the hard TTL.
 * @returns JSON, read by the worker when it starts.
 *
 * @example
 * ```ts
 * import { deadManSwitchSchema, workerDeadManSettings } from "./deadman.ts";
 *
 * const settings = workerDeadManSettings(deadManSwitchSchema.parse({}), undefined, Date.now());
 * console.log(JSON.parse(settings).silenceMs); // 30000
 * ```
 */
export function workerDeadManSettings(
  options: ResolvedDeadManSwitch,
  powerOff: string | undefined,
  startedAt: number,
): string {
  return JSON.stringify({
    silenceMs: options.heartbeatInterval * options.missedHeartbeats,
    graceMs: options.grace,
    ...(powerOff ? { powerOff } : {}),
    ...(options.ttl === undefined
      ? {}
      : { deadlineMs: Math.max(0, startedAt + options.ttl - Date.now()) }),
  });
}

/**
 * Calls `beat` every `intervalMs` until stopped, without keeping the
 * process alive by itself.
 *
 * @example
 * ```ts
 * import { Heartbeat } from "./deadman.ts";
 *
 * const heartbeat = new Heartbeat(1_000, () => console.log("ping"));
 * heartbeat.stop();
 * ```
 */
export class Heartbeat {
  #timer: ReturnType<typeof setInterval>;

  /**
   * @param intervalMs The period, in milliseconds.
   * @param beat What to do each time (send every worker a ping).
   */
  constructor(intervalMs: number, beat: () => void) {
    this.#timer = setInterval(beat, intervalMs);
    Deno.unrefTimer(this.#timer);
  }

  /** Stops the heartbeat. */
  stop(): void {
    clearInterval(this.#timer);
  }
}
