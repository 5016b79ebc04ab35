/**
 * The wire protocol between a client and a worker: length-prefixed frames
 * over one byte stream, each a small MessagePack header (validated with zod)
 * followed by an opaque payload (a value encoded by the codec, not
 * re-validated on the hot path).
 *
 * A frame is `u32 length | u32 headerLength | header | payload`, big-endian,
 * where `length` counts everything after itself.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { Decoder, Encoder } from "@msgpack/msgpack";
import { z } from "zod";
import { ProtocolError } from "./errors.ts";

/** The protocol's version; the handshake refuses a worker speaking another. */
export const PROTOCOL_VERSION = 3;

/** The largest frame either side accepts, in bytes (1 GiB). */
export const MAX_FRAME_BYTES = 1024 * 1024 * 1024;

const id = z.number().int().nonnegative();

const grant = z.union([z.boolean(), z.array(z.string())]);

/**
 * Deno permissions of a sandbox, resolved on the client (the image's
 * defaults merged with the compute's): every name present, `false` when
 * denied. Relative paths are resolved on the worker, against the code
 * directory.
 */
export const sandboxPermissions = z.object({
  read: grant,
  write: grant,
  net: grant,
  env: grant,
  run: grant,
  ffi: grant,
  sys: grant,
  import: grant,
}).strict();

const limit = z.number().int().positive().optional();

/** Where and how a compute's tasks run on a worker (sent once per node by `define`). */
export const sandboxSpec = z.discriminatedUnion("kind", [
  /** A Deno sandbox holding exactly `permissions`, importing the compute's module. */
  z.object({
    kind: z.literal("deno"),
    permissions: sandboxPermissions,
    isolation: z.enum(["shared", "task"]),
    /** Heap limit of the sandbox, in bytes. */
    memoryLimit: limit,
  }).strict(),
  /** A self-contained function run by QuickJS compiled to WebAssembly. */
  z.object({
    kind: z.literal("js"),
    /** The function's source text. */
    source: z.string(),
    memoryLimit: limit,
    /** Time limit of one call, in milliseconds. */
    timeout: limit,
  }).strict(),
  /** An export of a raw WebAssembly module. */
  z.object({
    kind: z.literal("wasm"),
    module: z.instanceof(Uint8Array),
    export: z.string(),
    /** The largest its memory may grow to, in 64 KiB pages. */
    memoryPages: limit,
    timeout: limit,
    /** Values of the module's imports, by module and name (a bigint as its decimal text). */
    imports: z.record(
      z.string(),
      z.record(
        z.string(),
        z.union([z.number(), z.object({ bigint: z.string() }).strict()]),
      ),
    ).optional(),
  }).strict(),
]);

/** Where and how a compute's tasks run on a worker. */
export type SandboxSpec = z.infer<typeof sandboxSpec>;

/** Messages the client sends to a worker. */
export const clientMessage = z.discriminatedUnion("t", [
  z.object({
    t: z.literal("hello"),
    v: z.number().int(),
    /** Content hash of the shipped code. */
    code: z.string(),
    /** The client's Deno version. */
    deno: z.string(),
    /** Shipped modules (paths relative to the code directory) to import before answering. */
    modules: z.array(z.string()),
    /** Tasks the worker runs at once. */
    concurrency: z.number().int().positive(),
  }),
  z.object({
    t: z.literal("call"),
    id,
    /** Module path relative to the code directory. */
    m: z.string(),
    /** The compute's key within its module. */
    k: z.string(),
  }),
  /**
   * Declares where the tasks of a compute run; sent once per node, before
   * its first `call`. A compute that was never defined runs in a Deno
   * sandbox with no permissions.
   */
  z.object({
    t: z.literal("define"),
    m: z.string(),
    k: z.string(),
    spec: sandboxSpec,
  }),
  z.object({ t: z.literal("cancel"), id }),
  /**
   * The client's heartbeat, sent every few seconds: a worker that hears
   * nothing from its client for too long stops (see `worker/_deadman.ts`).
   */
  z.object({ t: z.literal("ping") }),
  z.object({ t: z.literal("bye") }),
]);

/** Messages a worker sends to the client. */
export const workerMessage = z.discriminatedUnion("t", [
  z.object({
    t: z.literal("hello"),
    v: z.number().int(),
    deno: z.string(),
    pid: z.number().int(),
    hostname: z.string(),
    /** The worker's code directory, as a file URL ending in `/`. */
    codeUrl: z.string(),
    /** Set when the handshake failed; the payload holds the error. */
    failed: z.boolean().optional(),
  }),
  z.object({ t: z.literal("ok"), id }),
  z.object({
    t: z.literal("err"),
    id,
    /** Set when the result could not be encoded: the path and the problem. */
    path: z.string().optional(),
    problem: z.string().optional(),
  }),
  z.object({
    t: z.literal("log"),
    id: id.optional(),
    s: z.enum(["stdout", "stderr"]),
    l: z.string(),
  }),
  z.object({ t: z.literal("perr"), message: z.string() }),
]);

/** A message from the client to a worker. */
export type ClientMessage = z.infer<typeof clientMessage>;
/** A message from a worker to the client. */
export type WorkerMessage = z.infer<typeof workerMessage>;

/** A decoded frame: its header and its raw payload. */
export interface Frame<H> {
  header: H;
  /** The payload's bytes (a view into the received buffer). */
  payload: Uint8Array;
}

const EMPTY = new Uint8Array(0);
const headerEncoder = new Encoder();
const headerDecoder = new Decoder();

/**
 * Builds one frame.
 *
 * @param header A client or worker message.
 * @param payload The encoded value that goes with it, if any.
 * @returns The frame's bytes.
 */
export function encodeFrame(
  header: ClientMessage | WorkerMessage,
  payload: Uint8Array = EMPTY,
): Uint8Array {
  const head = headerEncoder.encode(header);
  const length = 4 + head.length + payload.length;
  if (length > MAX_FRAME_BYTES) {
    throw new ProtocolError(
      `Cannot send a frame of ${length} bytes: the limit is ${MAX_FRAME_BYTES}`,
    );
  }
  const out = new Uint8Array(4 + length);
  const view = new DataView(out.buffer);
  view.setUint32(0, length);
  view.setUint32(4, head.length);
  out.set(head, 8);
  out.set(payload, 8 + head.length);
  return out;
}

/**
 * Splits a byte stream into frames, validating each header with a zod schema.
 *
 * Feed it chunks as they arrive with {@linkcode FrameDecoder.push}; it returns
 * the complete frames. A frame whose header is not valid yields a
 * `ProtocolError` in its place (the stream stays in sync); a length past the
 * limit throws, since nothing after it can be trusted.
 */
export class FrameDecoder<H> {
  #schema: z.ZodType<H>;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #need = -1;

  /** @param schema The schema of the headers this side receives. */
  constructor(schema: z.ZodType<H>) {
    this.#schema = schema;
  }

  /** Bytes received that do not yet form a whole frame. */
  get pending(): number {
    return this.#buffered;
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
      }
      if (this.#buffered < this.#need) break;
      const body = this.#take(this.#need);
      this.#need = -1;
      frames.push(this.#parse(body));
    }
    return frames;
  }

  #parse(body: Uint8Array): Frame<H> | ProtocolError {
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
    const parsed = this.#schema.safeParse(raw);
    if (!parsed.success) {
      return new ProtocolError(
        `Received an invalid message: ${
          z.prettifyError(parsed.error).replaceAll("\n", " ")
        }`,
      );
    }
    return { header: parsed.data, payload: body.subarray(4 + headerLength) };
  }

  #take(n: number): Uint8Array {
    const first = this.#chunks[0];
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
    return out;
  }
}

/**
 * Writes frames to a byte stream, coalescing the frames queued in the same
 * turn of the event loop into one write.
 */
export class FrameWriter {
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #flushing: Promise<void> | undefined;
  #failed: unknown;
  #closed = false;

  /** @param writable The byte stream the frames go to. */
  constructor(writable: WritableStream<Uint8Array>) {
    this.#writer = writable.getWriter();
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
   *   sender that knows more frames are coming). Otherwise it is written as
   *   soon as the current microtasks have run.
   */
  write(frame: Uint8Array, batch = false): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.#queue.push(frame);
    this.#queued += frame.length;
    if (!this.#flushing) {
      this.#flushing = batch
        ? new Promise((resolve) => setImmediate(resolve)).then(() =>
          this.#flush()
        )
        : Promise.resolve().then(() => this.#flush());
    }
    return this.#flushing;
  }

  async #flush(): Promise<void> {
    while (this.#queue.length > 0 && !this.closed) {
      const frames = this.#queue;
      const size = this.#queued;
      this.#queue = [];
      this.#queued = 0;
      let bytes: Uint8Array;
      if (frames.length === 1) bytes = frames[0];
      else {
        bytes = new Uint8Array(size);
        let at = 0;
        for (const frame of frames) {
          bytes.set(frame, at);
          at += frame.length;
        }
      }
      try {
        await this.#writer.write(bytes);
      } catch (error) {
        this.#failed = error ?? new Error("write failed");
      }
    }
    this.#flushing = undefined;
  }

  /** Flushes what is queued, then closes the stream. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#flushing;
    this.#closed = true;
    try {
      await this.#writer.close();
    } catch {
      // The other side is gone already.
    }
  }
}
