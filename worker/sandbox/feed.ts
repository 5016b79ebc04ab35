/**
 * A task's argument still arriving at the worker in parts: the buffer it
 * fills and how much of it has come, so that the argument can be sent on to
 * the task's sandbox as it comes instead of once it has all come. It is the
 * frame decoder's sink for that message (`FrameDecoder.onstream`).
 *
 * @module
 */
import type { PartSink } from "../../src/wire/frames.ts";

/**
 * How much of a task's argument has come, and whether it was abandoned
 * (its client cancelled the task half-way, or the connection ended).
 *
 * @example
 * ```ts
 * import { ArgumentFeed } from "./feed.ts";
 *
 * const feed = new ArgumentFeed(new Uint8Array(8));
 * feed.listen(() => console.log(feed.filled, feed.aborted)); // 8 false
 * feed.progress(8);
 * console.log(await feed.whole()); // true
 * ```
 */
export class ArgumentFeed implements PartSink {
  /** The buffer the argument comes into (its first `filled` bytes are there). */
  readonly payload: Uint8Array;
  /** Bytes of it that have come. */
  filled = 0;
  /** Whether it will never be whole. */
  aborted = false;
  #listeners = new Set<() => void>();

  /** @param payload The buffer the argument comes into. */
  constructor(payload: Uint8Array) {
    this.payload = payload;
  }

  /** Whether all of it has come. */
  get done(): boolean {
    return this.filled === this.payload.length;
  }

  /** More has come: `filled` bytes in all. */
  progress(filled: number): void {
    if (this.aborted) return;
    this.filled = filled;
    this.#tell();
  }

  /** It will never be whole; nothing once it is. */
  abort(): void {
    if (this.aborted || this.done) return;
    this.aborted = true;
    this.#tell();
  }

  /**
   * Calls `listener` each time more comes, and when it is abandoned.
   *
   * @returns A function that stops the calls.
   */
  listen(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves with `true` once all of it has come, `false` if it is abandoned first. */
  whole(): Promise<boolean> {
    if (this.done || this.aborted) return Promise.resolve(!this.aborted);
    return new Promise((resolve) => {
      const stop = this.listen(() => {
        if (!this.done && !this.aborted) return;
        stop();
        resolve(!this.aborted);
      });
    });
  }

  #tell(): void {
    for (const listener of [...this.#listeners]) listener();
  }
}
