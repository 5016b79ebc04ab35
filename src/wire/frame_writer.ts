/**
 * The writing side of the frames of `frames.ts`: {@linkcode FrameWriter}
 * queues frames and coalesces the small ones of a turn into one write, and
 * sends a large message in parts that take turns with the other frames,
 * whole ({@linkcode FrameWriter.send}) or as its bytes come
 * ({@linkcode FrameWriter.stream}), and can abandon one half-way.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { ProtocolError } from "../errors.ts";
import {
  DIRECT_BYTES,
  encodeFrame,
  framePieces,
  MAX_MESSAGE_BYTES,
  PART_BYTES,
} from "./frames.ts";
import type { ClientMessage, WorkerMessage } from "./messages.ts";
import { coalesce } from "./coalesce.ts";

const EMPTY = new Uint8Array(0);

/** What `FrameWriter.#flushing` holds while a flush runs its first steps. */
const FLUSHING: Promise<void> = Promise.resolve();

interface Round {
  promise: Promise<void>;
  resolve(): void;
}

function round(): Round {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => resolve = r);
  return { promise, resolve };
}

interface Bulk {
  part: number;
  header: ClientMessage | WorkerMessage;
  /** The payload's bytes not yet written, in order. */
  chunks: Uint8Array[];
  /** The payload's size. */
  total: number;
  /** Bytes written. */
  at: number;
  /** Bytes given (all of them, but for a message being streamed). */
  given: number;
  /** Whether its turn has come (the messages of its task before it are written). */
  queued: boolean;
  /** Whether it waits for bytes (streamed): out of the turns until they come. */
  idle: boolean;
  /** Whether its last part has been taken, or it was abandoned. */
  ended: boolean;
  done: Round;
  /** Messages of the same task sent after it, queued once it is written. */
  after: (() => void)[];
}

/**
 * A message given to {@linkcode FrameWriter.stream}: its payload's bytes
 * are pushed as they are produced.
 */
export interface MessageStream {
  /**
   * Adds the next bytes of the payload (not copied: they must not change
   * until written). The first part goes with the header; the last once
   * the announced size has been pushed.
   *
   * @throws {RangeError} When they go past the announced size.
   */
  push(bytes: Uint8Array): void;
  /**
   * Abandons the message: the parts written are dropped by the receiver
   * (an `x` part), and the messages of its task queued behind it go.
   * Nothing once its last part has been taken.
   */
  abort(): void;
  /** Settles once the whole message is handed on (or abandoned). */
  done: Promise<void>;
}

function taskOf(header: ClientMessage | WorkerMessage): number | undefined {
  return (header as { id?: number }).id;
}

/**
 * Writes frames to a byte stream, coalescing the frames queued in the same
 * turn of the event loop into one write.
 *
 * A message with a payload over {@linkcode PART_BYTES} (see
 * {@linkcode FrameWriter.send}) is written in parts, one part at a time
 * between the other frames, and several such messages take turns: a large
 * value never holds up the small messages behind it.
 *
 * @example
 * ```ts
 * import { FrameWriter } from "./frame_writer.ts";
 *
 * const chunks: Uint8Array[] = [];
 * const writer = new FrameWriter(new WritableStream({ write: (c) => void chunks.push(c) }));
 * await writer.send({ t: "ping" });
 * await writer.close();
 * console.log(chunks.length); // 1
 * ```
 */
export class FrameWriter {
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #queue: Uint8Array[] = [];
  #round: Round | undefined;
  #bulk: Bulk[] = [];
  /** The last message in parts of each task, which its next messages wait for. */
  #lastBulk = new Map<number, Bulk>();
  /** The messages being streamed (see {@linkcode FrameWriter.stream}), until they end. */
  #streams = new Set<Bulk>();
  #nextPart = 1;
  #flushing: Promise<void> | undefined;
  #failed: unknown;
  #closed = false;
  #maxMessageBytes: number;

  /**
   * @param writable The byte stream the frames go to.
   * @param options `maxMessageBytes`: the largest payload
   *   {@linkcode FrameWriter.send} takes (at most, and by default,
   *   {@linkcode MAX_MESSAGE_BYTES}; lower only to test what happens past
   *   it without allocating gigabytes).
   */
  constructor(
    writable: WritableStream<Uint8Array>,
    options: { maxMessageBytes?: number } = {},
  ) {
    this.#writer = writable.getWriter();
    this.#maxMessageBytes = Math.min(
      MAX_MESSAGE_BYTES,
      options.maxMessageBytes ?? MAX_MESSAGE_BYTES,
    );
  }

  /** The largest payload {@linkcode FrameWriter.send} takes, in bytes. */
  get maxMessageBytes(): number {
    return this.#maxMessageBytes;
  }

  /** Whether the stream has failed or been closed. */
  get closed(): boolean {
    return this.#closed || this.#failed !== undefined;
  }

  /**
   * Queues a frame. Returns a promise that settles once it has been handed to
   * the stream (await it for backpressure; it never rejects).
   *
   * @param frame The frame's bytes.
   * @param batch Whether the frame may wait for the end of this turn of the
   *   event loop, to share one write with the frames that follow it (for a
   *   sender that knows more frames are coming). Otherwise it is written at
   *   once when nothing is being written, else with the frames queued while
   *   the write under way finishes.
   */
  write(frame: Uint8Array, batch = false): Promise<void> {
    return this.#write([frame], batch);
  }

  #write(pieces: Uint8Array[], batch: boolean): Promise<void> {
    if (this.closed) return Promise.resolve();
    for (const piece of pieces) this.#queue.push(piece);
    const written = this.#round ??= round();
    this.#start(batch);
    return written.promise;
  }

  /**
   * Queues a message: as one frame when its payload is small, else in parts
   * that take turns with the other frames. The messages of one task (by
   * their `id`) keep their order. Settles like
   * {@linkcode FrameWriter.write}, once the whole message is handed on.
   *
   * @param header The message.
   * @param payload Its payload.
   * @param batch As for {@linkcode FrameWriter.write}.
   * @throws {ProtocolError} When the payload is larger than
   *   {@linkcode FrameWriter.maxMessageBytes}, or the header larger than a
   *   frame: nothing is sent.
   */
  send(
    header: ClientMessage | WorkerMessage,
    payload: Uint8Array = EMPTY,
    batch = false,
  ): Promise<void> {
    if (payload.length > this.#maxMessageBytes) {
      throw new ProtocolError(
        `Cannot send a message of ${payload.length} bytes: the limit is ${this.#maxMessageBytes}`,
      );
    }
    const task = taskOf(header);
    const before = task === undefined ? undefined : this.#lastBulk.get(task);
    if (payload.length <= PART_BYTES) {
      const pieces = framePieces(header, payload);
      if (!before) return this.#write(pieces, batch);
      return new Promise<void>((resolve) =>
        before.after.push(() => this.#write(pieces, false).then(resolve))
      );
    }
    if (this.closed) return Promise.resolve();
    return this.#addBulk(header, payload.length, [payload]).done.promise;
  }

  /**
   * Queues a large message whose payload is not all there yet: its parts
   * go, taking turns with the other frames like {@linkcode FrameWriter.send}'s,
   * as its bytes are pushed (the receiver sees the message once all have
   * come). For a payload that arrives in pieces (a result coming from a
   * sandbox), so that it need not be gathered before it is sent on.
   *
   * @param header The message, sent with its first part.
   * @param total The payload's size: more than {@linkcode PART_BYTES}, at
   *   most {@linkcode FrameWriter.maxMessageBytes}.
   * @returns Where its bytes go.
   * @throws {ProtocolError} When `total` is past the message limit.
   * @throws {RangeError} When `total` is not more than {@linkcode PART_BYTES}
   *   (such a message goes whole, with {@linkcode FrameWriter.send}).
   */
  stream(
    header: ClientMessage | WorkerMessage,
    total: number,
  ): MessageStream {
    if (total > this.#maxMessageBytes) {
      throw new ProtocolError(
        `Cannot send a message of ${total} bytes: the limit is ${this.#maxMessageBytes}`,
      );
    }
    if (!Number.isInteger(total) || total <= PART_BYTES) {
      throw new RangeError(
        `Cannot stream a message of ${total} bytes: only one of more than ${PART_BYTES} bytes goes in parts`,
      );
    }
    const bulk = this.#addBulk(header, total, []);
    if (this.closed) bulk.ended = true;
    else this.#streams.add(bulk);
    return {
      push: (bytes) => {
        if (bulk.ended || bytes.length === 0) return;
        if (bulk.given + bytes.length > bulk.total) {
          throw new RangeError(
            `Cannot add ${bytes.length} bytes to a message of ${bulk.total} bytes with ${bulk.given} already given`,
          );
        }
        bulk.given += bytes.length;
        bulk.chunks.push(bytes);
        if (bulk.queued && bulk.idle) {
          bulk.idle = false;
          this.#bulk.push(bulk);
          this.#start(false);
        }
      },
      abort: () => this.#abort(bulk),
      done: bulk.done.promise,
    };
  }

  #addBulk(
    header: ClientMessage | WorkerMessage,
    total: number,
    chunks: Uint8Array[],
  ): Bulk {
    const task = taskOf(header);
    const before = task === undefined ? undefined : this.#lastBulk.get(task);
    const bulk: Bulk = {
      part: this.#nextPart++,
      header,
      chunks,
      total,
      at: 0,
      given: chunks.reduce((n, c) => n + c.length, 0),
      queued: false,
      idle: false,
      ended: false,
      done: round(),
      after: [],
    };
    if (this.closed) {
      bulk.done.resolve();
      return bulk;
    }
    if (task !== undefined) this.#lastBulk.set(task, bulk);
    if (before) before.after.push(() => this.#queueBulk(bulk));
    else this.#queueBulk(bulk);
    return bulk;
  }

  #queueBulk(bulk: Bulk): void {
    if (this.closed) return bulk.done.resolve();
    if (bulk.ended) {
      // Abandoned before its turn: the task's messages behind it go now.
      this.#endBulk(bulk);
      return bulk.done.resolve();
    }
    bulk.queued = true;
    if (bulk.chunks.length === 0) {
      bulk.idle = true;
      return;
    }
    this.#bulk.push(bulk);
    this.#start(false);
  }

  /**
   * Abandons the last message in parts of task `id` not yet all written:
   * the parts still to go are dropped, the receiver drops what it holds of
   * it (an `x` part; nothing is sent of one not started), and the task's
   * messages queued behind it go. For a call whose task is cancelled while
   * its argument is on its way.
   *
   * @param id The task.
   * @returns Whether a message was abandoned.
   */
  abandon(id: number): boolean {
    const bulk = this.#lastBulk.get(id);
    if (!bulk || bulk.ended) return false;
    this.#abort(bulk);
    return true;
  }

  /** Abandons a message in parts (see {@linkcode MessageStream.abort}). */
  #abort(bulk: Bulk): void {
    if (bulk.ended) return;
    bulk.ended = true;
    bulk.chunks = [];
    const at = this.#bulk.indexOf(bulk);
    if (at >= 0) this.#bulk.splice(at, 1);
    // Its task's messages before it still go first: it ends in its turn.
    if (!bulk.queued) return;
    // The receiver holds the parts written: it lets them go. (Queued
    // before the messages of its task that waited for it.)
    if (bulk.at > 0) {
      this.#write([encodeFrame({ t: "part", p: bulk.part, x: true })], false);
    }
    this.#endBulk(bulk);
    bulk.done.resolve();
  }

  /** A message in parts is done with: the messages of its task behind it go. */
  #endBulk(bulk: Bulk): void {
    this.#streams.delete(bulk);
    const task = taskOf(bulk.header);
    if (task !== undefined && this.#lastBulk.get(task) === bulk) {
      this.#lastBulk.delete(task);
    }
    for (const next of bulk.after.splice(0)) next();
  }

  #start(batch: boolean): void {
    if (this.#flushing) return;
    if (batch) {
      this.#flushing = new Promise((resolve) => setImmediate(resolve)).then(
        () => this.#flush(),
      );
      return;
    }
    // Flushed now: what is written while the loop runs its first steps (a
    // sink that calls back) joins it rather than starting another.
    this.#flushing = FLUSHING;
    const flushing = this.#flush();
    // (Unless it has already ended, having nothing to wait for.)
    if (this.#flushing === FLUSHING) this.#flushing = flushing;
  }

  async #flush(): Promise<void> {
    while (!this.closed) {
      let pieces: Uint8Array[];
      let done: Round | undefined;
      if (this.#queue.length > 0) {
        pieces = coalesce(this.#queue, DIRECT_BYTES);
        done = this.#round;
        this.#queue = [];
        this.#round = undefined;
      } else {
        const bulk = this.#bulk.shift();
        if (!bulk) break;
        const chunk = bulk.chunks[0];
        const piece = chunk.subarray(0, PART_BYTES);
        if (piece.length === chunk.length) bulk.chunks.shift();
        else bulk.chunks[0] = chunk.subarray(piece.length);
        const first = bulk.at === 0;
        bulk.at += piece.length;
        const last = bulk.at === bulk.total;
        pieces = framePieces({
          t: "part",
          p: bulk.part,
          ...(first ? { n: bulk.total, h: bulk.header } : {}),
        }, piece);
        if (last) {
          bulk.ended = true;
          done = bulk.done;
          this.#endBulk(bulk);
        } else if (bulk.chunks.length > 0) this.#bulk.push(bulk);
        else bulk.idle = true;
      }
      try {
        // The stream queues the pieces; waiting for the last is enough.
        let written: Promise<void> | undefined;
        for (const piece of pieces) {
          written?.catch(() => {});
          written = this.#writer.write(piece);
        }
        await written;
      } catch (error) {
        this.#failed = error ?? new Error("write failed");
      }
      done?.resolve();
    }
    this.#flushing = undefined;
    if (this.closed) this.#settleAll();
  }

  #settleAll(): void {
    this.#round?.resolve();
    this.#round = undefined;
    this.#queue = [];
    for (
      const bulk of [
        ...this.#bulk.splice(0),
        ...this.#lastBulk.values(),
        ...this.#streams,
      ]
    ) {
      bulk.ended = true;
      bulk.chunks = [];
      bulk.done.resolve();
      for (const next of bulk.after.splice(0)) next();
    }
    this.#lastBulk.clear();
    this.#streams.clear();
  }

  /** Flushes what is queued, then closes the stream. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#flushing;
    this.#closed = true;
    this.#settleAll();
    try {
      await this.#writer.close();
    } catch {
      // The other side is gone already.
    }
  }
}
