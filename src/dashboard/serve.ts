/**
 * The dashboard as the rest of the library sees it: the server's interface,
 * its options as `ComputePool.start` accepts them, and the loader that
 * imports the server (and with it `hono` and `uplot`) only when a dashboard
 * is asked for, so that a program without one never downloads them.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";
import { lazyModule } from "../_lazy.ts";
import type { DashboardRecord, Snapshot } from "./state.ts";

/**
 * Options of the pool's dashboard (`dashboard: { port }`).
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 *
 * await using pool = await sky.ComputePool.start({
 *   provider: sky.Local(),
 *   console: "silent",
 *   dashboard: { port: 0 } satisfies sky.DashboardOptions, // 0: a free port
 * });
 * console.log(pool.dashboardUrl); // http://127.0.0.1:PORT/TOKEN/
 * ```
 */
export interface DashboardOptions {
  /**
   * The port to listen on, on 127.0.0.1.
   * @default a free port
   */
  port?: number;
}

/** What the dashboard's server is started with. */
export interface DashboardServeOptions {
  /** The port, on 127.0.0.1; 0 or none for a free one. */
  port?: number;
  /** The token of the URL; a random one by default (tests give their own). */
  token?: string;
  /**
   * Whether the listener keeps the program alive. A pool's does not: a
   * program whose work is done ends, and its pool (and dashboard) closes.
   * @default true
   */
  keepAlive?: boolean;
}

/** A running dashboard server. */
export interface DashboardServer {
  /** Its address, token included: `http://127.0.0.1:PORT/TOKEN/`. */
  readonly url: string;
  /** Folds a record into the view; the pages get it within 200 ms. */
  apply(record: DashboardRecord): void;
  /** Forgets every record (the event log was truncated and starts again). */
  reset(): void;
  /** The current view. */
  state(): Snapshot;
  /**
   * Whether the program is busy (with `keepAlive: false`): while it is, the
   * pages' streams stay open; while it is not, each page gets the view and
   * reconnects a second later, so that no open stream holds a program
   * whose work is done.
   */
  hold(busy: boolean): void;
  /** Marks the pool closed and sends that to the pages; the server stays up. */
  finish(time?: number): Promise<void>;
  /** Sends the last view, ends every page's stream and stops listening. */
  close(): Promise<void>;
}

/** The server module, implemented by `server.ts`. */
export interface DashboardServerModule {
  /** Starts a server. */
  serveDashboard(options?: DashboardServeOptions): Promise<DashboardServer>;
}

/**
 * Loads the server module on first use.
 *
 * @example
 * ```ts ignore
 * const { serveDashboard } = await loadDashboard();
 * ```
 */
export const loadDashboard: () => Promise<DashboardServerModule> = lazyModule<
  DashboardServerModule
>(
  new URL("./server.ts", import.meta.url),
  "the dashboard (npm:hono, npm:uplot)",
);

/** The `dashboard` option of the pool: `true`, or `{ port }`. */
export const dashboardSchema = z.union([
  z.boolean(),
  z.object({
    port: z.number().int().min(0).max(65_535).optional(),
  }).strict(),
]).optional();

/** The `eventLog` option of the pool: a file path. */
export const eventLogSchema = z.string().min(1, "must be a file path")
  .optional();
