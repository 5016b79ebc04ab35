/**
 * Length-prefixed frames over one byte stream: each a small MessagePack
 * header (a message of `messages.ts`, validated with zod on arrival)
 * followed by an opaque payload (a value encoded by the codec, not
 * re-validated on the hot path). {@linkcode FrameDecoder} splits received
 * bytes into frames; `frame_writer.ts` writes them, coalescing small
 * frames and sending large messages in parts.
 *
 * A frame is `u32 length | u32 headerLength | header | payload`, big-endian,
 * where `length` counts everything after itself.
 *
 * @module
 */
// The package's ES module build: its `main` is CommonJS, which Deno loads
// through its Node module loader, some 30 ms more at each process's start
// (a sandbox's, a worker's).
// @ts-types="npm:@msgpack/msgpack@3.1.3"
import {
  Decoder,
  Encoder,
} from "npm:@msgpack/msgpack@3.1.3/dist.esm/index.mjs";
import { z } from "npm:zod@4.6.7";
import { ProtocolError } from "../errors.ts";
import type { ClientMessage, WorkerMessage } from "./messages.ts";

/** The largest frame either side accepts, in bytes (1 GiB). */
export const MAX_FRAME_BYTES = 1024 * 1024 * 1024;

/**
 * A message whose payload is larger than this travels as parts of this size
 * (`{ t: "part" }` frames, see `FrameWriter.send`), so that it
 * never holds up the other messages on the connection.
 */
export const PART_BYTES = 512 * 1024;

/**
 * A frame at least this large that is a part of a message is received
 * straight into the message's buffer, not copied into a frame first.
 */
const DIRECT_PART_BYTES = 64 * 1024;

/** A payload at least this large is written as it is, not copied into its frame. */
export const DIRECT_BYTES = 16 * 1024;

/** The largest message either side accepts, in bytes, when sent in parts (4 GiB). */
export const MAX_MESSAGE_BYTES = 2 ** 32 - 1;

/**
 * One part of a large message: the first part carries the message's size
 * `n` and its header `h`; the receiver joins their payloads, and has the
 * message once `n` bytes have come. Knowing the message from its first
 * part, it may also take the payload as it comes
 * ({@linkcode FrameDecoder.onstream}). A part with `x` (and no payload)
 * abandons its message: the receiver drops what it holds of it (a message
 * whose sender gave up half-way: its producer failed, or its task was
 * cancelled; see `FrameWriter.stream` and `FrameWriter.abandon`).
 */
export interface PartMessage {
  t: "part";
  /** Which message, among those being sent in parts. */
  p: number;
  n?: number;
  h?: ClientMessage | WorkerMessage;
  x?: boolean;
}

/**
 * Where a receiver is told how a message in parts comes, when it takes
 * the message as it comes (see {@linkcode FrameDecoder.onstream}).
 */
export interface PartSink {
  /**
   * The payload's first `filled` bytes have come (all of it when `filled`
   * is its length: the message is then not delivered as a frame).
   */
  progress(filled: number): void;
  /** The message will not be whole: its sender abandoned it, or the input ended. */
  abort(): void;
}

/** A message being received in parts. */
interface Incoming<H> {
  buffer: Uint8Array;
  at: number;
  /** Its header, or `undefined` when it was not valid (reported once). */
  header: H | undefined;
  sink?: PartSink;
}

/** A decoded frame: its header and its raw payload. */
export interface Frame<H> {
  header: H;
  /** The payload's bytes (a view into the received buffer). */
  payload: Uint8Array;
  /**
   * Whether the payload's buffer holds this frame alone, so that it may be
   * transferred (else it is shared with other frames).
   */
  owned?: boolean;
}

const EMPTY = new Uint8Array(0);
// A field left `undefined` is left out, not sent as `nil` (which the
// receiving side's schema would refuse).
const headerEncoder = new Encoder({ ignoreUndefined: true });
const headerDecoder = new Decoder();

/**
 * Builds one frame.
 *
 * @param header A client or worker message.
 * @param payload The encoded value that goes with it, if any.
 * @returns The frame's bytes.
 *
 * @example
 * ```ts
 * import { encodeFrame } from "./frames.ts";
 *
 * const frame = encodeFrame({ t: "ping" });
 * console.log(new DataView(frame.buffer).getUint32(0) === frame.length - 4); // true
 * ```
 */
export function encodeFrame(
  header: ClientMessage | WorkerMessage | PartMessage,
  payload: Uint8Array = EMPTY,
): Uint8Array {
  const out = frameHead(header, payload.length, payload.length);
  out.set(payload, out.length - payload.length);
  return out;
}

/**
 * The start of a frame: its lengths and header, followed by `room` bytes
 * for the payload (0 when the payload is written on its own).
 */
function frameHead(
  header: ClientMessage | WorkerMessage | PartMessage,
  payloadLength: number,
  room: number,
): Uint8Array {
  // A view of the encoder's own buffer, copied into the frame below.
  const head = headerEncoder.encodeSharedRef(header);
  const length = 4 + head.length + payloadLength;
  if (length > MAX_FRAME_BYTES) {
    throw new ProtocolError(
      `Cannot send a frame of ${length} bytes: the limit is ${MAX_FRAME_BYTES}`,
    );
  }
  const out = new Uint8Array(8 + head.length + room);
  const view = new DataView(out.buffer);
  view.setUint32(0, length);
  view.setUint32(4, head.length);
  out.set(head, 8);
  return out;
}

/**
 * A frame as the pieces to write: a payload of 16 KiB or more is not
 * copied into the frame, but follows its head.
 *
 * @param header A client or worker message, or a part of one.
 * @param payload The encoded value that goes with it.
 * @returns The frame's bytes, in one or two pieces.
 *
 * @example
 * ```ts
 * import { framePieces } from "./frames.ts";
 *
 * console.log(framePieces({ t: "ping" }, new Uint8Array(1 << 20)).length); // 2
 * ```
 */
export function framePieces(
  header: ClientMessage | WorkerMessage | PartMessage,
  payload: Uint8Array,
): Uint8Array[] {
  if (payload.length < DIRECT_BYTES) return [encodeFrame(header, payload)];
  return [frameHead(header, payload.length, 0), payload];
}

/**
 * What a {@linkcode FrameDecoder} checks headers with: a zod schema, or one
 * like it (see `fastPath` in `messages.ts`).
 *
 * @example
 * ```ts
 * import type { HeaderSchema } from "./frames.ts";
 * import { clientMessage, type ClientMessage } from "./messages.ts";
 *
 * const schema: HeaderSchema<ClientMessage> = clientMessage;
 * console.log(schema.safeParse({ t: "cancel", id: 1 }).success); // true
 * ```
 */
export type HeaderSchema<H> = Pick<z.ZodType<H>, "safeParse">;

/**
 * Splits a byte stream into frames, validating each header with a zod schema.
 *
 * Feed it chunks as they arrive with {@linkcode FrameDecoder.push}; it returns
 * the complete frames. A frame whose header is not valid yields a
 * `ProtocolError` in its place (the stream stays in sync); a length past the
 * limit throws, since nothing after it can be trusted.
 *
 * @example
 * ```ts
 * import { encodeFrame, FrameDecoder } from "./frames.ts";
 * import { clientMessage } from "./messages.ts";
 *
 * const frame = encodeFrame({ t: "cancel", id: 7 });
 * const decoder = new FrameDecoder(clientMessage);
 * console.log(decoder.push(frame.subarray(0, 5))); // []: not whole yet
 * console.log(decoder.push(frame.subarray(5))); // [{ header: { t: "cancel", id: 7 }, payload: …, owned: false }]
 * ```
 */
export class FrameDecoder<H> {
  #schema: HeaderSchema<H>;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #need = -1;
  #parts = new Map<number, Incoming<H>>();
  /** The error of the first part being received directly, reported at its end. */
  #directError: ProtocolError | undefined;
  /** Whether the last `#take` copied into a buffer of its own. */
  #owned = false;
  /**
   * The part being received straight into its message's buffer: its header,
   * that message, and how many of its bytes are still to come.
   */
  #direct:
    | {
      part: PartMessage;
      message: Incoming<H>;
      left: number;
    }
    | undefined;

  /**
   * Called with the first part of a message in parts: its header and the
   * buffer its payload is received into. A sink returned is told as the
   * payload fills the buffer, and the message is not delivered as a frame
   * (so that a receiver can start on it before it has all come); without
   * one, the message is delivered whole once it has all come.
   */
  onstream: ((header: H, payload: Uint8Array) => PartSink | undefined) | null =
    null;

  /** @param schema The schema of the headers this side receives. */
  constructor(schema: HeaderSchema<H>) {
    this.#schema = schema;
  }

  /** Bytes received that do not yet form a whole frame. */
  get pending(): number {
    const direct = this.#direct;
    return this.#buffered + (direct ? this.#need - direct.left : 0);
  }

  /**
   * Adds received bytes.
   *
   * @returns The frames completed by them, or a `ProtocolError` per bad header.
   * @throws {ProtocolError} When a frame announces a length past the limit.
   */
  push(chunk: Uint8Array): (Frame<H> | ProtocolError)[] {
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    const frames: (Frame<H> | ProtocolError)[] = [];
    for (;;) {
      if (this.#direct) {
        if (!this.#fillDirect()) break;
        const done = this.#endDirect();
        if (done) frames.push(done);
        continue;
      }
      if (this.#need >= DIRECT_PART_BYTES && this.#startDirect()) continue;
      if (this.#need < 0) {
        if (this.#buffered < 4) break;
        const head = this.#take(4);
        const length = new DataView(head.buffer, head.byteOffset, 4).getUint32(
          0,
        );
        if (length < 4 || length > MAX_FRAME_BYTES) {
          throw new ProtocolError(
            `Received a frame announcing ${length} bytes; a frame is 4 to ${MAX_FRAME_BYTES} bytes`,
          );
        }
        this.#need = length;
        continue;
      }
      if (this.#buffered < this.#need) break;
      const body = this.#take(this.#need);
      const owned = this.#owned;
      this.#need = -1;
      const frame = this.#parse(body, owned);
      if (frame) frames.push(frame);
    }
    return frames;
  }

  #parse(
    body: Uint8Array,
    owned: boolean,
  ): Frame<H> | ProtocolError | undefined {
    const headerLength = new DataView(body.buffer, body.byteOffset, 4)
      .getUint32(0);
    if (headerLength > body.length - 4) {
      return new ProtocolError(
        `Received a frame whose header (${headerLength} bytes) is longer than the frame (${body.length} bytes)`,
      );
    }
    let raw: unknown;
    try {
      raw = headerDecoder.decode(body.subarray(4, 4 + headerLength));
    } catch (error) {
      return new ProtocolError(
        `Received a frame whose header is not MessagePack`,
        {
          cause: error,
        },
      );
    }
    const payload = body.subarray(4 + headerLength);
    if ((raw as PartMessage | undefined)?.t === "part") {
      return this.#part(raw as PartMessage, payload);
    }
    const parsed = this.#schema.safeParse(raw);
    if (!parsed.success) {
      return new ProtocolError(
        `Received an invalid message: ${
          z.prettifyError(parsed.error).replaceAll("\n", " ")
        }`,
      );
    }
    return { header: parsed.data, payload, owned };
  }

  /**
   * Starts receiving a large frame's payload straight into its message's
   * buffer, when the frame is a part of a message (not copied into a frame
   * of its own first, then into the message). Returns whether it did.
   */
  #startDirect(): boolean {
    if (this.#buffered < 4) return false;
    const headerLength = this.#peekUint32();
    if (headerLength > this.#need - 4 || this.#buffered < 4 + headerLength) {
      return false;
    }
    // The header is small: copied out with its length, then read.
    const head = this.#peek(4 + headerLength);
    let raw: PartMessage | undefined;
    try {
      raw = headerDecoder.decode(head.subarray(4)) as PartMessage;
    } catch {
      return false; // Reported when the whole frame is parsed.
    }
    if (raw?.t !== "part" || !Number.isInteger(raw.p)) return false;
    const size = this.#need - 4 - headerLength;
    let message = this.#parts.get(raw.p);
    if (raw.n !== undefined) {
      // A first part: anything amiss is left to the usual path, which
      // reports it.
      if (
        !Number.isInteger(raw.n) || raw.n < 0 || raw.n > MAX_MESSAGE_BYTES ||
        size > raw.n || raw.h === undefined
      ) return false;
      this.#take(4 + headerLength);
      const opened = this.#open(raw);
      if (opened instanceof ProtocolError) {
        // Reported at the part's end; its bytes go to its message when it
        // has one (to be dropped once whole), else nowhere.
        this.#direct = {
          part: raw,
          message: this.#parts.get(raw.p) ??
            { buffer: new Uint8Array(0), at: 0, header: undefined },
          left: size,
        };
        this.#directError = opened;
        return true;
      }
      message = opened;
    } else if (!message || message.at + size > message.buffer.length) {
      return false;
    } else this.#take(4 + headerLength);
    this.#direct = { part: raw, message, left: size };
    return true;
  }

  /** Copies what has come of the direct part into place; true once it is whole. */
  #fillDirect(): boolean {
    const direct = this.#direct!;
    while (direct.left > 0 && this.#chunks.length > 0) {
      const chunk = this.#chunks[0];
      const used = Math.min(chunk.length, direct.left);
      if (direct.message.buffer.length > 0) {
        direct.message.buffer.set(chunk.subarray(0, used), direct.message.at);
        direct.message.at += used;
      }
      direct.left -= used;
      this.#buffered -= used;
      if (used === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(used);
    }
    return direct.left === 0;
  }

  /** Ends the direct part: the message, when it was the last. */
  #endDirect(): Frame<H> | ProtocolError | undefined {
    const { part, message } = this.#direct!;
    this.#direct = undefined;
    this.#need = -1;
    const error = this.#directError;
    this.#directError = undefined;
    const frame = this.#filled(part.p, message);
    return error ?? frame;
  }

  /**
   * Starts a message in parts from its first part: its buffer, its header
   * checked, and whether its receiver takes it as it comes.
   */
  #open(part: PartMessage): Incoming<H> | ProtocolError {
    const n = part.n!;
    if (!Number.isInteger(n) || n < 0 || n > MAX_MESSAGE_BYTES) {
      return new ProtocolError(
        `Received a message announcing ${n} bytes; the limit is ${MAX_MESSAGE_BYTES}`,
      );
    }
    let buffer: Uint8Array;
    try {
      buffer = new Uint8Array(n);
    } catch (error) {
      return new ProtocolError(
        `Cannot receive a message of ${n} bytes: ${
          error instanceof Error ? error.message : String(error)
        }`,
      );
    }
    const parsed = this.#schema.safeParse(part.h);
    const message: Incoming<H> = {
      buffer,
      at: 0,
      header: parsed.success ? parsed.data : undefined,
    };
    this.#parts.set(part.p, message);
    if (!parsed.success) {
      // Its parts are taken and dropped; the error is reported once.
      return new ProtocolError(
        `Received an invalid message: ${
          z.prettifyError(parsed.error).replaceAll("\n", " ")
        }`,
      );
    }
    const sink = this.onstream?.(parsed.data, buffer);
    if (sink) message.sink = sink;
    return message;
  }

  /**
   * Some bytes of a message in parts have come: its sink is told, and the
   * message is delivered once whole (unless its sink took it).
   */
  #filled(p: number, message: Incoming<H>): Frame<H> | undefined {
    const whole = message.at === message.buffer.length;
    if (whole) this.#parts.delete(p);
    if (message.sink) message.sink.progress(message.at);
    if (!whole || message.sink || message.header === undefined) {
      return undefined;
    }
    return { header: message.header, payload: message.buffer, owned: true };
  }

  /**
   * The input has ended: the messages in parts not yet whole are dropped,
   * and their sinks aborted.
   */
  end(): void {
    const cut = [...this.#parts.values()];
    this.#parts.clear();
    for (const message of cut) message.sink?.abort();
  }

  /** The first four bytes buffered, as a big-endian `u32`, left in place. */
  #peekUint32(): number {
    const bytes = this.#peek(4);
    return new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0);
  }

  /** The first `n` bytes buffered (a copy when they span chunks), left in place. */
  #peek(n: number): Uint8Array {
    const first = this.#chunks[0];
    if (first.length >= n) return first.subarray(0, n);
    const out = new Uint8Array(n);
    let filled = 0;
    for (const chunk of this.#chunks) {
      const used = Math.min(chunk.length, n - filled);
      out.set(chunk.subarray(0, used), filled);
      filled += used;
      if (filled === n) break;
    }
    return out;
  }

  /** Adds a part of a large message; returns the message once complete. */
  #part(
    part: PartMessage,
    payload: Uint8Array,
  ): Frame<H> | ProtocolError | undefined {
    if (!Number.isInteger(part.p)) {
      return new ProtocolError("Received a part with no message number");
    }
    let message = this.#parts.get(part.p);
    if (part.x) {
      // Abandoned by its sender: what came of it is let go.
      this.#parts.delete(part.p);
      message?.sink?.abort();
      return undefined;
    }
    let error: ProtocolError | undefined;
    if (part.n !== undefined) {
      if (part.h === undefined) {
        return new ProtocolError(
          `Received the first part of message ${part.p} without its header`,
        );
      }
      const opened = this.#open(part);
      if (opened instanceof ProtocolError) {
        error = opened;
        message = this.#parts.get(part.p);
        if (!message) return error;
      } else message = opened;
    }
    if (!message) {
      return new ProtocolError(`Received a part of unknown message ${part.p}`);
    }
    if (message.at + payload.length > message.buffer.length) {
      this.#parts.delete(part.p);
      message.sink?.abort();
      return new ProtocolError(
        `Received more parts of message ${part.p} than its ${message.buffer.length} bytes`,
      );
    }
    message.buffer.set(payload, message.at);
    message.at += payload.length;
    return error ?? this.#filled(part.p, message);
  }

  #take(n: number): Uint8Array {
    const first = this.#chunks[0];
    this.#owned = false;
    if (first.length >= n) {
      this.#buffered -= n;
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[0];
      const used = Math.min(chunk.length, n - filled);
      out.set(chunk.subarray(0, used), filled);
      filled += used;
      if (used === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(used);
    }
    this.#buffered -= n;
    this.#owned = true;
    return out;
  }
}
