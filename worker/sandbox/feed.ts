/**
 * A task's argument still arriving at the worker in parts: the buffer it
 * fills and how much of it has come, so that the argument can be sent on to
 * the task's sandbox as it comes instead of once it has all come. It is the
 * frame decoder's sink for that message (`FrameDecoder.onstream`).
 *
 * @module
 */
import type { PartSink } from "../../src/wire/frames.ts";
import type { OutgoingStream } from "./channel.ts";

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

/**
 * Passes an argument on to `out` as it comes, or, with no `out`, waits
 * until it has all come; then calls `done`. An argument abandoned half-way
 * abandons `out` (and `done` is not called).
 *
 * @param feed The argument, not all come yet.
 * @param out Where it goes as it comes (a sandbox's channel).
 * @param done Called once all of it has gone to `out`, or has come.
 * @returns A function that stops passing it on and abandons `out` (the
 *   receiver drops what it was sent); it returns `true`.
 *
 * @example
 * ```ts
 * import { ArgumentFeed, passOn } from "./feed.ts";
 *
 * const feed = new ArgumentFeed(new Uint8Array(4));
 * const got: number[] = [];
 * passOn(feed, { push: (b) => got.push(b.length), abort() {} }, () => got.push(-1));
 * feed.progress(1);
 * feed.progress(4);
 * console.log(got); // [1, 3, -1]
 * ```
 */
export function passOn(
  feed: ArgumentFeed,
  out: Pick<OutgoingStream, "push" | "abort"> | undefined,
  done: () => void,
): () => boolean {
  let sent = 0;
  const stop = feed.listen(() => more());
  const abandon = () => {
    stop();
    out?.abort();
    return true;
  };
  const more = () => {
    if (feed.aborted) return void abandon();
    if (out && feed.filled > sent) {
      out.push(feed.payload.subarray(sent, feed.filled));
      sent = feed.filled;
    }
    if (feed.done && (!out || sent === feed.payload.length)) {
      stop();
      done();
    }
  };
  more();
  return abandon;
}
