/**
 * What keeps the program alive while its pool works: one timer, held while
 * the pool starts, resizes or closes (work a caller awaits) or has tasks
 * pending. The workers' processes do not hold the program: a pool that
 * idles lets it end (and the teardown closes the pool then). Whoever must
 * know when the pool turns busy or idle (the dashboard, which holds its
 * pages' streams open only while it is busy) is told on each check.
 *
 * @module
 */

/**
 * The keep-alive timer of a pool.
 *
 * @example
 * ```ts
 * import { KeepAlive } from "./keep_alive.ts";
 *
 * const keepAlive = new KeepAlive(() => false, (busy) => console.log("busy:", busy));
 * const release = keepAlive.hold(); // busy: true
 * release(); // busy: false
 * keepAlive.dispose();
 * ```
 */
export class KeepAlive {
  /** Work of the pool's own (starting, resizing, closing) the program waits for. */
  #keepers = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** Whether the timer holds the program now. */
  #held = false;
  #tasks: () => boolean;
  #changed: (busy: boolean) => void;

  /**
   * @param tasks Whether the pool has tasks pending.
   * @param changed Told whether the pool is busy, at each check.
   */
  constructor(
    tasks: () => boolean,
    changed: (busy: boolean) => void = () => {},
  ) {
    this.#tasks = tasks;
    this.#changed = changed;
  }

  /**
   * Keeps the program alive until the returned function is called: for the
   * pool's own work that a caller awaits (tasks are counted apart).
   */
  hold(): () => void {
    this.#keepers++;
    this.check();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#keepers--;
      this.check();
    };
  }

  /** Holds the program while the pool starts, resizes, closes or runs tasks. */
  check(): void {
    const busy = this.#keepers > 0 || this.#tasks();
    this.#changed(busy);
    if (busy === this.#held) return;
    this.#held = busy;
    // One timer, made once and held or let go: a pool running one task
    // after another turns busy and idle at each of them.
    if (busy) {
      this.#timer ??= setInterval(() => {}, 2 ** 30);
      Deno.refTimer(this.#timer!);
    } else if (this.#timer !== undefined) Deno.unrefTimer(this.#timer);
  }

  /** Lets the timer go for good (the pool is closed). */
  dispose(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#held = false;
  }
}
