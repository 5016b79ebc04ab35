/**
 * Streams of values between a client and a worker, with credit-based flow
 * control: the receiver lets the sender have {@linkcode STREAM_WINDOW} bytes
 * of encoded items in flight and grants more as its consumer takes them;
 * the sender stops at zero. A slow consumer therefore slows the producer,
 * and each side holds at most a window (plus one batch) per stream.
 *
 * The same two pieces serve both directions and every hop: a
 * {@linkcode Pump} reads an iterable and sends its items in batches (one
 * encoded array each); an {@linkcode Inbox} receives the batches and is the
 * `AsyncIterable` its consumer reads. They know nothing of frames or
 * sockets: they are given a function that sends a batch and one that grants
 * credit.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { decode, encode } from "./codec.ts";

/** Bytes of encoded items a sender may have in flight per stream before it waits for credit. */
export const STREAM_WINDOW = 8 * 1024 * 1024;
/** A batch is sent once its items reach about this many bytes. */
const BATCH_BYTES = 256 * 1024;
/** ... or this many items. */
const BATCH_ITEMS = 4096;

/**
 * What a compute's result must be to be streamed back, and what an argument
 * must be to be streamed in: an async iterable (an async generator), a
 * `ReadableStream`, or a generator.
 */
export function isStreamable(
  value: unknown,
): value is AsyncIterable<unknown> | Iterable<unknown> {
  if (typeof value !== "object" || value === null) return false;
  if (
    typeof ReadableStream !== "undefined" && value instanceof ReadableStream
  ) {
    return true;
  }
  if (
    typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] ===
      "function"
  ) return true;
  return Object.prototype.toString.call(value) === "[object Generator]";
}

/**
 * The type a compute's result has on the client: a result that is streamed
 * (an async generator, an `AsyncIterable`, a `ReadableStream`, a generator)
 * arrives as an `AsyncIterable` of its items; any other result as itself.
 *
 * @typeParam R A compute's awaited result.
 *
 * @example
 * ```ts
 * import type { Streamed } from "../../mod.ts";
 *
 * const items: Streamed<AsyncGenerator<number>> = (async function* () {
 *   yield 1;
 * })(); // an AsyncIterable<number>
 * const plain: Streamed<number> = 4;
 * console.log(plain, typeof items[Symbol.asyncIterator]); // 4 "function"
 * ```
 */
export type Streamed<R> = R extends ReadableStream<infer T> ? AsyncIterable<T>
  : R extends AsyncIterable<infer T> ? AsyncIterable<T>
  : R extends Generator<infer T, unknown, unknown> ? AsyncIterable<T>
  : R;

type AnyIterator = {
  next(): unknown;
  return?(): unknown;
};

function iteratorOf(source: unknown): AnyIterator {
  const async = (source as AsyncIterable<unknown>)[Symbol.asyncIterator];
  if (typeof async === "function") return async.call(source);
  return (source as Iterable<unknown>)[Symbol.iterator]();
}

/**
 * The first byte of a batch of bytes only, which MessagePack never uses: the
 * batch is `0xc1 | u32 count | count × u32 length | the bytes`, one copy to
 * build and none to read, where an encoded array costs more of both.
 */
const BYTES_BATCH = 0xc1;

function bytesBatch(items: Uint8Array[]): Uint8Array {
  let size = 5 + 4 * items.length;
  for (const item of items) size += item.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out[0] = BYTES_BATCH;
  view.setUint32(1, items.length);
  let at = 5 + 4 * items.length;
  for (const [i, item] of items.entries()) {
    view.setUint32(5 + 4 * i, item.length);
    out.set(item, at);
    at += item.length;
  }
  return out;
}

/** Decodes a batch: an encoded array, or a batch of bytes (views into `bytes`). */
function decodeBatch(bytes: Uint8Array): unknown[] {
  if (bytes[0] !== BYTES_BATCH) return decode(bytes) as unknown[];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(1);
  const items: Uint8Array[] = new Array(count);
  let at = 5 + 4 * count;
  for (let i = 0; i < count; i++) {
    const length = view.getUint32(5 + 4 * i);
    items[i] = bytes.subarray(at, at + length);
    at += length;
  }
  if (at !== bytes.length) {
    throw new RangeError(
      `A batch of bytes ended after ${at} of its ${bytes.length} bytes`,
    );
  }
  return items;
}

function isBytes(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array;
}

function estimate(value: unknown): number {
  if (ArrayBuffer.isView(value)) return value.byteLength + 8;
  if (typeof value === "string") return value.length + 4;
  return 16;
}

/**
 * Reads an iterable and sends its items in batches, each an encoded array,
 * no more than the receiver's credit ahead. Items are sent as soon as the
 * source pauses (at the end of a turn of the event loop), or when a batch
 * is full.
 */
export class Pump {
  #source: unknown;
  #send: (batch: Uint8Array) => void;
  #path: string;
  #credit = STREAM_WINDOW;
  #wake: (() => void) | undefined;
  #stopped = false;
  #sent = 0;

  /**
   * @param source The items: an async iterable, a `ReadableStream` or an iterable.
   * @param send Sends one batch.
   * @param path What to call the items in a `SerializationError`, e.g. `"args[0]"`.
   */
  constructor(
    source: unknown,
    send: (batch: Uint8Array) => void,
    path: string,
  ) {
    this.#source = source;
    this.#send = send;
    this.#path = path;
  }

  /** Lets the sender have `bytes` more in flight. */
  grant(bytes: number): void {
    this.#credit += bytes;
    this.#wake?.();
  }

  /** Stops reading: the receiver is gone. The source's iterator is returned. */
  stop(): void {
    this.#stopped = true;
    this.#wake?.();
  }

  /**
   * Sends every item, then resolves. Rejects with the source's error (after
   * sending the items read before it) or a `SerializationError` naming the
   * item that cannot be sent. Resolves early once stopped.
   */
  async run(): Promise<void> {
    const iterator = iteratorOf(this.#source);
    let batch: unknown[] = [];
    let size = 0;
    let timer: ReturnType<typeof setImmediate> | undefined;
    let onlyBytes = true;
    const flush = () => {
      if (timer !== undefined) clearImmediate(timer);
      timer = undefined;
      if (batch.length === 0 || this.#stopped) return;
      const items = batch;
      batch = [];
      size = 0;
      const bytes = onlyBytes
        ? bytesBatch(items as Uint8Array[])
        : this.#encode(items);
      onlyBytes = true;
      this.#sent += items.length;
      this.#credit -= bytes.length;
      this.#send(bytes);
    };
    let done = false;
    try {
      while (!this.#stopped) {
        while (this.#credit <= 0 && !this.#stopped) {
          flush();
          await new Promise<void>((resolve) => this.#wake = resolve);
          this.#wake = undefined;
        }
        if (this.#stopped) break;
        const result = await iterator.next() as IteratorResult<unknown>;
        if (result.done || this.#stopped) {
          done = result.done === true;
          break;
        }
        batch.push(result.value);
        size += estimate(result.value);
        if (onlyBytes && !isBytes(result.value)) onlyBytes = false;
        if (size >= BATCH_BYTES || batch.length >= BATCH_ITEMS) flush();
        else timer ??= setImmediate(flush);
      }
      flush();
    } catch (error) {
      done = true;
      flush();
      throw error;
    } finally {
      if (timer !== undefined) clearImmediate(timer);
      if (!done) await iterator.return?.();
    }
  }

  #encode(items: unknown[]): Uint8Array {
    try {
      return encode(items, this.#path);
    } catch (error) {
      // Send the items before the one that cannot be sent, then name it by
      // its place in the whole stream.
      for (const [i, item] of items.entries()) {
        try {
          encode(item, `${this.#path}[${this.#sent + i}]`);
        } catch (itemError) {
          if (i > 0) {
            const bytes = encode(items.slice(0, i), this.#path);
            this.#sent += i;
            this.#credit -= bytes.length;
            this.#send(bytes);
          }
          throw itemError;
        }
      }
      throw error;
    }
  }
}

interface Batch {
  items: unknown[];
  bytes: number;
}

/**
 * The receiving end of a stream: an `AsyncIterable` of the items sent by a
 * {@linkcode Pump}, granting credit back as its consumer takes them. Values
 * already received are delivered before an error or the end.
 */
export class Inbox<T = unknown> implements AsyncIterableIterator<T> {
  #batches: Batch[] = [];
  #current: Batch | undefined;
  #index = 0;
  #consumed = 0;
  #ended = false;
  #error: Error | undefined;
  #closed = false;
  #wake: (() => void) | undefined;
  #grant: (bytes: number) => void;
  #stop: () => void | Promise<void>;

  /**
   * @param grant Grants the sender credit for bytes taken.
   * @param stop Called once when the consumer leaves before the end.
   */
  constructor(
    grant: (bytes: number) => void,
    stop: () => void | Promise<void> = () => {},
  ) {
    this.#grant = grant;
    this.#stop = stop;
  }

  /** Whether the stream has ended, failed or been left. */
  get finished(): boolean {
    return this.#closed || this.#ended || this.#error !== undefined;
  }

  /** Adds a received batch (an encoded array of items). */
  push(bytes: Uint8Array): void {
    if (this.#closed || this.#ended || this.#error) return;
    let items: unknown[];
    try {
      items = decodeBatch(bytes);
    } catch (error) {
      this.fail(error as Error);
      return;
    }
    this.#batches.push({ items, bytes: bytes.length });
    this.#wake?.();
  }

  /** The sender is done: the consumer sees the end after the items received. */
  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  /** The stream failed: the consumer gets `error` after the items received. */
  fail(error: Error): void {
    if (this.#ended || this.#error) return;
    this.#error = error;
    this.#wake?.();
  }

  /** Takes the next item, waiting for one. */
  async next(): Promise<IteratorResult<T>> {
    for (;;) {
      if (this.#closed) return { done: true, value: undefined };
      const current = this.#current;
      if (current && this.#index < current.items.length) {
        const value = current.items[this.#index];
        current.items[this.#index++] = undefined;
        return { done: false, value: value as T };
      }
      if (current) {
        this.#current = undefined;
        this.#consumed += current.bytes;
        if (this.#consumed >= STREAM_WINDOW / 4 || this.#batches.length === 0) {
          this.#grant(this.#consumed);
          this.#consumed = 0;
        }
      }
      const batch = this.#batches.shift();
      if (batch) {
        this.#current = batch;
        this.#index = 0;
        continue;
      }
      if (this.#error) {
        const error = this.#error;
        this.#closed = true;
        throw error;
      }
      if (this.#ended) {
        this.#closed = true;
        return { done: true, value: undefined };
      }
      await new Promise<void>((resolve) => this.#wake = resolve);
      this.#wake = undefined;
    }
  }

  /** Leaves the stream: the sender is told to stop. */
  async return(): Promise<IteratorResult<T>> {
    if (!this.#closed) {
      this.#closed = true;
      this.#batches = [];
      this.#current = undefined;
      if (!this.#ended && !this.#error) await this.#stop();
    }
    return { done: true, value: undefined };
  }

  /** The inbox is its own iterator. */
  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** A `ReadableStream` reading an inbox (for an argument that was a `ReadableStream`). */
export function readableOf<T>(inbox: Inbox<T>): ReadableStream<T> {
  return new ReadableStream<T>({
    async pull(controller) {
      const result = await inbox.next();
      if (result.done) controller.close();
      else controller.enqueue(result.value);
    },
    async cancel() {
      await inbox.return();
    },
  }, { highWaterMark: 0 });
}

/**
 * Splits one iterable into `count` that each deliver every item, read from
 * the source once. A branch may run at most `bound` items ahead of the
 * slowest: the slowest reader paces the source. A branch left early stops
 * counting; the source is returned when every branch has been left.
 *
 * @param source The items.
 * @param count How many branches.
 * @param bound Items held for the slower branches, at most.
 * @returns The branches.
 */
export function tee<T>(
  source: unknown,
  count: number,
  bound = 256,
): AsyncIterableIterator<T>[] {
  let iterator: AnyIterator | undefined;
  const buffer: T[] = [];
  let base = 0;
  const positions: number[] = new Array(count).fill(0);
  const active = new Set(positions.keys());
  let done = false;
  let failed = false;
  let error: unknown;
  let pulling: Promise<void> | undefined;
  let waiters: (() => void)[] = [];
  const trim = () => {
    let min = Infinity;
    for (const i of active) min = Math.min(min, positions[i]);
    while (buffer.length > 0 && base < min) {
      buffer.shift();
      base++;
    }
    const woken = waiters;
    waiters = [];
    for (const wake of woken) wake();
  };
  const pull = () =>
    pulling ??= (async () => {
      try {
        iterator ??= iteratorOf(source);
        const result = await iterator.next() as IteratorResult<T>;
        if (result.done) done = true;
        else buffer.push(result.value);
      } catch (cause) {
        failed = true;
        error = cause;
      } finally {
        pulling = undefined;
      }
    })();
  const branch = (i: number): AsyncIterableIterator<T> => ({
    async next(): Promise<IteratorResult<T>> {
      for (;;) {
        if (!active.has(i)) return { done: true, value: undefined };
        const at = positions[i] - base;
        if (at < buffer.length) {
          const value = buffer[at];
          positions[i]++;
          trim();
          return { done: false, value };
        }
        if (failed) throw error;
        if (done) return { done: true, value: undefined };
        if (buffer.length >= bound) {
          await new Promise<void>((resolve) => waiters.push(resolve));
        } else await pull();
      }
    },
    async return(): Promise<IteratorResult<T>> {
      if (active.delete(i)) {
        trim();
        if (active.size === 0 && !done && !failed) await iterator?.return?.();
      }
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  });
  return Array.from({ length: count }, (_, i) => branch(i));
}
