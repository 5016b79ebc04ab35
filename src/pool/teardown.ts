/**
 * Teardown on the way out: while pools are open, SIGINT, SIGTERM, an
 * uncaught exception or an unhandled rejection closes every open pool —
 * workers, machines, machines still being launched — before the process
 * exits. A second SIGINT or SIGTERM exits at once, after printing what may
 * be left and how to sweep it. A program whose own work is done while pools
 * are still open (never closed) closes them, with one line saying so, and
 * ends: an idle pool does not keep the program alive.
 *
 * @module
 */
import { type Provider, SELF_STOPPING } from "../provider.ts";

/** What the teardown needs of a pool. */
export interface Closable {
  /** The pool's id (the cluster id at the provider). */
  readonly id: string;
  /** Where its machines come from. */
  readonly provider: Provider<any>;
  /** Releases everything the pool launched. */
  close(): Promise<void>;
  /** Kills its workers at once, synchronously. */
  kill(): void;
}

const open = new Set<Closable>();
let exiting: number | undefined;
const SIGNALS: Deno.Signal[] = ["SIGINT", "SIGTERM"];
const listeners = new Map<Deno.Signal, () => void>();

/**
 * What may be left of each pool, and how to sweep it: one line per pool.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 * import { leftovers } from "./teardown.ts";
 *
 * const pool = { id: "sky-1", provider: sky.Local(), close: async () => {}, kill() {} };
 * console.log(leftovers([pool]));
 * ```
 */
export function leftovers(pools: Iterable<Closable> = open): string {
  const lines = [...pools].map((pool) =>
    `  ${pool.id} on ${pool.provider.name}: ${
      pool.provider.sweepHint?.(pool.id) ?? SELF_STOPPING
    }`
  );
  return lines.length > 0 ? lines.join("\n") : "  nothing";
}

/** Closes every open pool, then exits with `code`; a second call exits at once. */
function closeAllAndExit(code: number, what: string): void {
  if (exiting !== undefined) {
    console.error(
      `\n${what} again: exiting now. What may be left, and how to sweep it:\n${leftovers()}`,
    );
    for (const pool of open) pool.kill();
    Deno.exit(code);
  }
  exiting = code;
  console.error(
    `\n${what}: closing ${open.size} pool(s); interrupt again to exit now`,
  );
  Promise.allSettled([...open].map((p) => p.close())).then((results) => {
    for (const result of results) {
      if (result.status === "rejected") {
        console.error(
          result.reason instanceof Error
            ? result.reason.message
            : String(result.reason),
        );
      }
    }
    Deno.exit(code);
  });
}

function onSignal(signal: Deno.Signal): void {
  closeAllAndExit(signal === "SIGINT" ? 130 : 143, "Interrupted");
}

/**
 * While the pools close on the way out, the program's own failures (its
 * tasks rejected with `PoolClosedError`) must neither cut the teardown short
 * nor change the exit code.
 */
function swallowWhileExiting(event: Event): boolean {
  if (exiting === undefined) return false;
  event.preventDefault();
  return true;
}

function onError(event: ErrorEvent): void {
  if (swallowWhileExiting(event)) return;
  if (event.defaultPrevented || open.size === 0) return;
  event.preventDefault();
  console.error(
    `error: Uncaught ${Deno.inspect(event.error ?? event.message)}`,
  );
  closeAllAndExit(1, "Uncaught exception");
}

function onRejection(event: PromiseRejectionEvent): void {
  if (swallowWhileExiting(event)) return;
  if (event.defaultPrevented || open.size === 0) return;
  event.preventDefault();
  console.error(`error: Uncaught (in promise) ${Deno.inspect(event.reason)}`);
  closeAllAndExit(1, "Unhandled rejection");
}

function onUnload(): void {
  for (const pool of open) pool.kill();
}

/**
 * The program's own work is done and only open pools are left (their
 * workers do not keep the program alive while they idle): close them,
 * saying so, and let the program end.
 */
function onBeforeUnload(event: Event): void {
  if (open.size === 0 || exiting !== undefined) return;
  // Without this, Deno ends the program once the handlers return, whatever
  // they started: the close would stop half-way (machines released by the
  // dead-man switch only, the dashboard's last view never sent).
  event.preventDefault();
  const pools = [...open];
  console.error(
    `skyward: the program is done but ${
      pools.length === 1
        ? `pool ${pools[0].id} is`
        : `pools ${pools.map((p) => p.id).join(", ")} are`
    } still open: closing ${
      pools.length === 1 ? "it" : "them"
    } now (\`await using pool = await sky.ComputePool.start(...)\` closes a pool cleanly where its scope ends)`,
  );
  // Closing is work of its own: the program ends once it is done.
  for (const pool of pools) {
    pool.close().catch((error) =>
      console.error(error instanceof Error ? error.message : String(error))
    );
  }
}

/**
 * Registers an open pool; the first one installs the handlers.
 *
 * @param pool The pool, until {@linkcode untrack} is called.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 * import { track, untrack } from "./teardown.ts";
 *
 * const pool = { id: "sky-1", provider: sky.Local(), close: async () => {}, kill() {} };
 * track(pool);
 * untrack(pool);
 * ```
 */
export function track(pool: Closable): void {
  open.add(pool);
  if (open.size > 1) return;
  for (const signal of SIGNALS) {
    const listener = () => onSignal(signal);
    try {
      Deno.addSignalListener(signal, listener);
      listeners.set(signal, listener);
    } catch {
      // Signals are not available here (e.g. on Windows for SIGTERM).
    }
  }
  globalThis.addEventListener("error", onError);
  globalThis.addEventListener("unhandledrejection", onRejection);
  globalThis.addEventListener("unload", onUnload);
  globalThis.addEventListener("beforeunload", onBeforeUnload);
}

/**
 * Forgets a closed pool; the last one removes the handlers.
 *
 * @param pool A pool given to {@linkcode track}.
 *
 * @example
 * ```ts
 * import * as sky from "../../mod.ts";
 * import { track, untrack } from "./teardown.ts";
 *
 * const pool = { id: "sky-1", provider: sky.Local(), close: async () => {}, kill() {} };
 * track(pool);
 * untrack(pool);
 * ```
 */
export function untrack(pool: Closable): void {
  if (!open.delete(pool) || open.size > 0) return;
  // While exiting, the handlers stay: a second interrupt must still exit.
  if (exiting !== undefined) return;
  for (const [signal, listener] of listeners) {
    Deno.removeSignalListener(signal, listener);
  }
  listeners.clear();
  globalThis.removeEventListener("error", onError);
  globalThis.removeEventListener("unhandledrejection", onRejection);
  globalThis.removeEventListener("unload", onUnload);
  globalThis.removeEventListener("beforeunload", onBeforeUnload);
}
