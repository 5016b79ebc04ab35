/**
 * The event hub of a pool: every event goes through {@linkcode EventHub.emit},
 * which stamps it (`time`, `pool`), keeps the lifecycle events in a bounded
 * history, and hands it to the user's `onEvent`, the console and each
 * iterator of `pool.events`.
 *
 * @module
 */
import type { EventInit, PoolEvent } from "../events.ts";
import { logger } from "../log.ts";
import type { ConsoleSink } from "./console.ts";

const log = logger("pool");

/** Lifecycle events kept for the iterators that start late. */
const HISTORY_LIMIT = 1_000;

/** Where a pool's events go, besides its iterators. */
export interface EventHubOptions {
  /** The pool's id, stamped on every event. */
  pool: string;
  /** The user's callback; an exception it throws is logged, never raised. */
  onEvent?: (event: PoolEvent) => void;
  /** The console that prints the events. */
  console: ConsoleSink;
}

/**
 * Whether an event is replayed to late iterators (task and log events are
 * not, nor the periodic `Cost`: the next one comes within an interval).
 */
function isLifecycle(event: PoolEvent): boolean {
  return !event.type.startsWith("Task") && event.type !== "Log" &&
    event.type !== "Cost";
}

/**
 * The events of one pool: emitted once, delivered to every listener.
 *
 * @example
 * ```ts
 * import { EventHub } from "./event_hub.ts";
 * import { createConsole } from "./console.ts";
 *
 * const hub = new EventHub({ pool: "sky-1", console: createConsole("silent") });
 * hub.emit({ type: "ClusterReady", nodes: 1, elapsedMs: 12 });
 * hub.close();
 * for await (const event of hub.events) console.log(event.type, event.pool); // ClusterReady sky-1
 * ```
 */
export class EventHub {
  #options: EventHubOptions;
  #history: PoolEvent[] = [];
  #subscribers = new Set<(e: PoolEvent | null) => void>();
  #ended = false;

  /** @param options The pool's id, the user's callback and the console. */
  constructor(options: EventHubOptions) {
    this.#options = options;
  }

  /** Stamps an event with the time and the pool, and delivers it. */
  emit(init: EventInit): void {
    const event = {
      ...init,
      time: Date.now(),
      pool: this.#options.pool,
    } as PoolEvent;
    if (isLifecycle(event)) {
      this.#history.push(event);
      if (this.#history.length > HISTORY_LIMIT) this.#history.shift();
    }
    try {
      this.#options.onEvent?.(event);
    } catch (error) {
      log.warn("onEvent threw: {error}", { error });
    }
    this.#options.console.event(event);
    for (const subscriber of this.#subscribers) subscriber(event);
  }

  /**
   * Every event: the lifecycle events so far (task, log and cost events
   * are not replayed), then each new one, until the hub is closed. An iterator
   * started after that gets the history, then ends.
   */
  get events(): AsyncIterable<PoolEvent> {
    const history = [...this.#history];
    const subscribers = this.#subscribers;
    const ended = this.#ended;
    return {
      [Symbol.asyncIterator](): AsyncIterator<PoolEvent> {
        const buffer: (PoolEvent | null)[] = [...history];
        if (ended) buffer.push(null);
        let wake: (() => void) | undefined;
        const subscriber = (e: PoolEvent | null) => {
          buffer.push(e);
          wake?.();
        };
        if (!ended) subscribers.add(subscriber);
        return {
          async next(): Promise<IteratorResult<PoolEvent>> {
            while (buffer.length === 0) {
              await new Promise<void>((r) => wake = r);
            }
            const event = buffer.shift()!;
            if (event === null) {
              subscribers.delete(subscriber);
              buffer.push(null);
              return { done: true, value: undefined };
            }
            return { done: false, value: event };
          },
          return(): Promise<IteratorResult<PoolEvent>> {
            subscribers.delete(subscriber);
            return Promise.resolve({ done: true, value: undefined });
          },
        };
      },
    };
  }

  /** Ends every iterator and closes the console. */
  close(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#options.console.close();
    for (const subscriber of this.#subscribers) subscriber(null);
    this.#subscribers.clear();
  }
}
