/**
 * What a pool does for its dashboard and its event log: it records its
 * events (and a sample of its queue when that changes) and hands each
 * record to the dashboard's server and to the log file; at close, the page
 * is told and the server stops, leaving no listener behind.
 *
 * @module
 */
import { type Accelerator, acceleratorLabel } from "../accelerators.ts";
import type { PoolEvent } from "../events.ts";
import { logger } from "../log.ts";
import { EventLogWriter } from "./event_log.ts";
import { type DashboardServer, loadDashboard } from "./serve.ts";
import type { DashboardRecord, PoolInfo } from "./state.ts";
import { DEFAULT_WARN_SHARE } from "../pool/budget.ts";
import type { ResolvedOptions } from "../pool/options.ts";

const log = logger("dashboard");

/** How often the queue is sampled, in milliseconds. */
const SAMPLE_EVERY = 500;

/** What {@linkcode watchPool} needs of a pool. */
export interface WatchedPool {
  /** The pool's id. */
  pool: string;
  /** When it started, in epoch milliseconds. */
  startedAt: number;
  /** The provider's name. */
  provider: string;
  /** The pool's options: what to serve and write, and what to show of them. */
  options: Pick<
    ResolvedOptions,
    | "dashboard"
    | "eventLog"
    | "console"
    | "accelerator"
    | "specs"
    | "nodes"
    | "budget"
  >;
  /** The pool's events, from the first. */
  events: AsyncIterable<PoolEvent>;
  /** How many tasks wait for a node now. */
  queued(): number;
}

/**
 * The line that describes the pool, first in its event log.
 *
 * @param pool The pool.
 * @returns Its `PoolInfo` record.
 *
 * @example
 * ```ts ignore
 * const info = poolInfo({ pool: id, startedAt, provider: "aws", options, events, queued });
 * console.log(info.accelerator); // "T4" or "A100:8 or H100:8" (its specs')
 * ```
 */
export function poolInfo(pool: WatchedPool): PoolInfo {
  const { accelerator, specs, budget, nodes } = pool.options;
  const name = (a: Accelerator | string) =>
    typeof a === "string" ? a : acceleratorLabel(a);
  // The pool's own, else those of its specs (one of which is chosen).
  const wanted = accelerator !== undefined ? [name(accelerator)] : [
    ...new Set(
      (specs ?? []).flatMap((s) => s.accelerator ? [name(s.accelerator)] : []),
    ),
  ];
  return {
    type: "PoolInfo",
    time: pool.startedAt,
    pool: pool.pool,
    provider: pool.provider,
    accelerator: wanted.length > 0 ? wanted.join(" or ") : undefined,
    nodes: nodes.desired,
    budget: budget && {
      maxCost: budget.maxCost,
      warnAt: budget.warnAt ?? budget.maxCost * DEFAULT_WARN_SHARE,
    },
  };
}

/** A pool's dashboard and event log, while the pool lives. */
export interface PoolWatch {
  /** The dashboard's address, token included, when there is one. */
  readonly url: string | undefined;
  /**
   * Tells whether the pool holds the program (starting, closing or running
   * tasks): the dashboard holds its pages' streams open only then.
   */
  hold(busy: boolean): void;
  /** Waits for the pool's last event, then stops the server and closes the log. */
  close(): Promise<void>;
}

/**
 * Starts a pool's dashboard and event log, as its options ask.
 *
 * @param pool The pool's events, queue and options.
 * @returns The watch, or `undefined` when neither was asked for.
 * @throws {ConfigError} (as a rejection) When the log cannot be written or the port is taken.
 *
 * @example
 * ```ts ignore
 * const watch = await watchPool({ pool: id, startedAt, provider: "local", options, events: hub.events, queued: () => 0 });
 * console.log(watch?.url); // http://127.0.0.1:PORT/TOKEN/
 * await watch?.close();
 * ```
 */
export async function watchPool(
  pool: WatchedPool,
): Promise<PoolWatch | undefined> {
  const { dashboard, eventLog } = pool.options;
  if (!dashboard && eventLog === undefined) return undefined;
  const writer = eventLog === undefined
    ? undefined
    : EventLogWriter.open(eventLog);
  let server: DashboardServer | undefined;
  try {
    if (dashboard) {
      const { serveDashboard } = await loadDashboard();
      server = await serveDashboard({
        port: dashboard === true ? undefined : dashboard.port,
        keepAlive: false,
      });
    }
  } catch (error) {
    writer?.close();
    throw error;
  }
  const record = (r: DashboardRecord) => {
    writer?.write(r);
    server?.apply(r);
  };
  record(poolInfo(pool));
  // Printed once, on stderr with the pool's other lines; always pool.dashboardUrl.
  if (server && pool.options.console !== "silent") {
    console.error(`Dashboard: ${server.url}`);
  }

  let queued = 0;
  const sampler = setInterval(() => {
    const now = pool.queued();
    if (now === queued) return;
    queued = now;
    record({
      type: "QueueSample",
      time: Date.now(),
      pool: pool.pool,
      queued,
    });
  }, SAMPLE_EVERY);
  Deno.unrefTimer(sampler);

  const iterator = pool.events[Symbol.asyncIterator]();
  // Follows the events until the pool ends them.
  const following = (async () => {
    try {
      for (;;) {
        const next = await iterator.next();
        if (next.done) break;
        if (queued > 0 && next.value.type === "ClusterDestroyed") {
          queued = 0;
          record({
            type: "QueueSample",
            time: next.value.time,
            pool: pool.pool,
            queued,
          });
        }
        record(next.value);
      }
    } catch (error) {
      log.warn("The dashboard stopped following the pool: {error}", { error });
    }
  })();

  let closing: Promise<void> | undefined;
  return {
    url: server?.url,
    hold: (busy) => server?.hold(busy),
    close() {
      closing ??= (async () => {
        clearInterval(sampler);
        await following;
        writer?.close();
        await server?.close().catch((error) =>
          log.warn("The dashboard did not stop cleanly: {error}", { error })
        );
      })();
      return closing;
    },
  };
}
