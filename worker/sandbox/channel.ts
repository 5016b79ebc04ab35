/**
 * A message channel over a byte stream (the Unix socket between the worker
 * process and a sandbox process), shaped like a `MessagePort`: each
 * `postMessage(message)` arrives as one `onmessage` event whose `data` is the
 * message, its `ArrayBuffer`s included.
 *
 * The message goes as MessagePack with each `ArrayBuffer` in it replaced by
 * a reference; the buffers follow it as raw bytes, never encoded, and the
 * receiver reads each straight into a buffer of its own. A large payload
 * (a task's result) can go with {@linkcode Channel.postBytes}: its bytes,
 * given in pieces that are written as they are (no copy, no encoding), go
 * in parts of {@linkcode PART_BYTES}, and the messages posted meanwhile go
 * between two parts — a small result is not held up behind a large one.
 * The receiver may take such a payload as it comes, part by part, instead
 * of whole ({@linkcode Channel.onstream}). A payload whose bytes are not
 * all there yet (a task's argument still arriving at the worker) goes with
 * {@linkcode Channel.postStream}, part by part as they are given, and can
 * be abandoned half-way: the receiver then drops it.
 * A message is written as soon as it is posted; those posted while a write
 * is under way leave together in the next one.
 *
 * Frames, big-endian, by their first `u32`:
 * - a message: `headerLength | u32 count | count × u32 byteLength | header
 *   | buffers`;
 * - a message whose `b` comes in parts: `0x80000000 | headerLength | u32
 *   stream | f64 total | header`;
 * - a part: `0xFFFFFFFF | u32 stream | u32 length | bytes`;
 * - the end of a payload abandoned half-way: `0xFFFFFFFE | u32 stream`.
 *
 * What arrives from a sandbox is untrusted: a frame past the limits below
 * ends the channel (`onclose` with the reason), and the sandbox is stopped.
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
  ExtensionCodec,
} from "npm:@msgpack/msgpack@3.1.3/dist.esm/index.mjs";
import { coalesce } from "../../src/wire/coalesce.ts";

/** The largest header (the message without its buffers), in bytes. */
const MAX_HEADER_BYTES = 16 * 1024 * 1024;
/** The most buffers one message may carry. */
const MAX_BUFFERS = 4096;
/** Messages of one turn up to this size are copied into one write. */
const COALESCE_BYTES = 64 * 1024;
/** How much is read from the socket at a time, outside large buffers. */
const READ_BYTES = 256 * 1024;
/** The size of the parts a payload sent with `postBytes` travels in. */
export const PART_BYTES = 1024 * 1024;
/** The most payloads coming in parts at once. */
const MAX_STREAMS = 1024;
/** The largest payload sent in parts (4 GiB, the largest message). */
const MAX_STREAM_BYTES = 2 ** 32 - 1;
const PARTED = 0x80000000;
const PART = 0xffffffff;
const ABANDON = 0xfffffffe;

/** The extension type that stands for the `i`-th buffer of the frame. */
const BUFFER_EXT = 0;

let outgoing: ArrayBuffer[] = [];
let incoming: ArrayBuffer[] = [];
const extensions = new ExtensionCodec();
extensions.register({
  type: BUFFER_EXT,
  encode(value: unknown) {
    if (!(value instanceof ArrayBuffer)) return null;
    const ref = new Uint8Array(4);
    new DataView(ref.buffer).setUint32(0, outgoing.push(value) - 1);
    return ref;
  },
  decode(data: Uint8Array) {
    const at = new DataView(data.buffer, data.byteOffset, data.byteLength)
      .getUint32(0);
    const buffer = incoming[at];
    if (!buffer) throw new RangeError(`no buffer ${at} in this frame`);
    return buffer;
  },
});
const encoder = new Encoder({
  extensionCodec: extensions,
  ignoreUndefined: true,
});
const decoder = new Decoder({ extensionCodec: extensions });

/** A message from its header and the buffers that followed it. */
function decodeMessage(header: Uint8Array, buffers: ArrayBuffer[]): unknown {
  incoming = buffers;
  try {
    return decoder.decode(header);
  } finally {
    incoming = [];
  }
}

/** A message's bytes: its head (prefix and header) and its buffers. */
function encodeMessage(message: unknown): Uint8Array[] {
  outgoing = [];
  const header = encoder.encode(message);
  const buffers = outgoing;
  outgoing = [];
  const head = new Uint8Array(8 + 4 * buffers.length + header.length);
  const view = new DataView(head.buffer);
  view.setUint32(0, header.length);
  view.setUint32(4, buffers.length);
  buffers.forEach((b, i) => view.setUint32(8 + 4 * i, b.byteLength));
  head.set(header, 8 + 4 * buffers.length);
  return [head, ...buffers.map((b) => new Uint8Array(b))];
}

/** What {@linkcode Channel.onmessage} is given: the message as `data`. */
export interface ChannelEvent {
  // deno-lint-ignore no-explicit-any
  data: any;
}

/** A payload on its way in parts. */
interface Outgoing {
  stream: number;
  pieces: Uint8Array[];
  /** Bytes not given yet (see {@linkcode Channel.postStream}). */
  left: number;
  /** Whether it is out of the turns: it waits for bytes, or was abandoned. */
  idle: boolean;
}

/** A payload given as it comes, to {@linkcode Channel.postStream}. */
export interface OutgoingStream {
  /**
   * Adds the next bytes (not copied: they must not change until written).
   *
   * @throws {RangeError} When they go past the announced size.
   */
  push(bytes: Uint8Array): void;
  /**
   * Abandons the payload before all of it is written: the receiver drops
   * what came of it and never sees its message. Nothing once it is all
   * given and written, or the channel has ended.
   */
  abort(): void;
}

/** A payload coming in parts, and the message it completes. */
interface Incoming {
  data: Record<string, unknown>;
  /** Where its bytes go: gathered here, or handed on as they come. */
  buffer?: ArrayBuffer;
  sink?: ByteSink;
  total: number;
  filled: number;
}

/**
 * Where the bytes of a payload sent with {@linkcode Channel.postBytes} go
 * as they come, when {@linkcode Channel.onstream} takes it.
 */
export interface ByteSink {
  /** The next bytes (a buffer of their own, at most {@linkcode PART_BYTES}). */
  push(bytes: Uint8Array): void;
  /** All of them have come. */
  end(): void;
  /** The channel ended before they all came. */
  abort(): void;
}

/**
 * A message channel over a connection (see the module's doc).
 *
 * @example
 * ```ts ignore
 * const channel = new Channel(await Deno.connect({ transport: "unix", path }));
 * channel.onmessage = (event) => console.log(event.data);
 * channel.postMessage({ t: "ok", b: new ArrayBuffer(8) });
 * ```
 */
export class Channel {
  /** Called with each message received. */
  onmessage: ((event: ChannelEvent) => void) | null = null;
  /** Called once when the channel has ended, with why when it failed. */
  onclose: ((reason?: string) => void) | null = null;
  /**
   * Called when a message sent with {@linkcode Channel.postBytes} starts
   * to arrive, with the message (without its `b`) and the payload's size:
   * a sink returned takes the payload's bytes as they come, and the
   * message is not delivered to {@linkcode Channel.onmessage}; without
   * one, the payload is gathered and the message delivered whole.
   */
  onstream:
    | ((data: Record<string, unknown>, total: number) => ByteSink | undefined)
    | null = null;
  #conn: Deno.Conn;
  /** Frames to write, in order, before the next part. */
  #frames: Uint8Array[] = [];
  /** Payloads going in parts, in turn. */
  #streams: Outgoing[] = [];
  #nextStream = 1;
  /** Payloads coming in parts, by stream. */
  #incoming = new Map<number, Incoming>();
  #pumping = false;
  #closed = false;

  /** @param conn The connection, which the channel reads, writes and closes. */
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.#read().then(
      () => this.#end(),
      (error) =>
        this.#end(error instanceof Error ? error.message : String(error)),
    );
  }

  /**
   * Sends a message, in order with the other messages. The `ArrayBuffer`s
   * in it (at any depth) travel as raw bytes; they must not change until the
   * turn ends. The second argument is accepted for `MessagePort`'s shape,
   * and ignored.
   */
  postMessage(message: unknown, _transfer?: unknown[]): void {
    if (this.#closed) return;
    for (const part of encodeMessage(message)) this.#frames.push(part);
    this.#pump();
  }

  /**
   * Sends a message whose `b` arrives as one `ArrayBuffer` holding `pieces`
   * one after the other. The pieces are written as they are, in parts, with
   * the messages posted meanwhile between parts: the message may arrive after
   * messages posted later (so it must be the last of whatever it ends, such
   * as a task's outcome). The pieces must not change until written.
   */
  postBytes(message: Record<string, unknown>, pieces: Uint8Array[]): void {
    const total = pieces.reduce((n, p) => n + p.byteLength, 0);
    const out = this.postStream(message, total);
    for (const piece of pieces) out.push(piece);
  }

  /**
   * Sends a message like {@linkcode Channel.postBytes}, whose `b` of
   * `total` bytes is given later, piece by piece, as it comes: its parts go
   * as they are given, taking turns with the other payloads and messages.
   * The receiver sees the message once all has come (or takes its bytes as
   * they come, {@linkcode Channel.onstream}), or never, if it is abandoned.
   *
   * @param message The message, without its `b`.
   * @param total The payload's size in bytes.
   * @returns Where its bytes go, and how to abandon it.
   */
  postStream(message: Record<string, unknown>, total: number): OutgoingStream {
    const out: Outgoing = { stream: 0, pieces: [], left: total, idle: true };
    if (this.#closed) return { push() {}, abort() {} };
    const stream = out.stream = this.#nextStream++;
    const header = encoder.encode(message);
    const head = new Uint8Array(16 + header.length);
    const view = new DataView(head.buffer);
    view.setUint32(0, PARTED | header.length);
    view.setUint32(4, stream);
    view.setFloat64(8, total);
    head.set(header, 16);
    this.#frames.push(head);
    this.#pump();
    let abandoned = false;
    return {
      push: (bytes) => {
        if (this.#closed || abandoned || bytes.length === 0) return;
        if (bytes.length > out.left) {
          throw new RangeError(
            `Cannot add ${bytes.length} bytes to a payload of ${total} bytes with ${out.left} left to give`,
          );
        }
        out.left -= bytes.length;
        out.pieces.push(bytes);
        if (out.idle) {
          out.idle = false;
          this.#streams.push(out);
        }
        this.#pump();
      },
      abort: () => {
        if (this.#closed || abandoned) return;
        if (out.left === 0 && out.pieces.length === 0) return; // All gone.
        abandoned = true;
        out.left = 0;
        out.pieces = [];
        const at = this.#streams.indexOf(out);
        if (at >= 0) this.#streams.splice(at, 1);
        const end = new Uint8Array(8);
        new DataView(end.buffer).setUint32(0, ABANDON);
        new DataView(end.buffer).setUint32(4, stream);
        this.#frames.push(end);
        this.#pump();
      },
    };
  }

  /** Writes frames, then a part, then the frames posted meanwhile, and so on. */
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    (async () => {
      for (;;) {
        if (this.#frames.length > 0) {
          for (
            const bytes of coalesce(this.#frames.splice(0), COALESCE_BYTES)
          ) {
            await this.#write(bytes);
          }
          continue;
        }
        const out = this.#streams[0];
        if (!out) break;
        const piece = out.pieces[0];
        const chunk = piece.subarray(0, PART_BYTES);
        if (chunk.length === piece.length) out.pieces.shift();
        else out.pieces[0] = piece.subarray(chunk.length);
        if (out.pieces.length === 0) {
          // All given, or waiting for more (then back in turn when it comes).
          this.#streams.shift();
          out.idle = true;
        }
        const head = new Uint8Array(12);
        const view = new DataView(head.buffer);
        view.setUint32(0, PART);
        view.setUint32(4, out.stream);
        view.setUint32(8, chunk.length);
        await this.#write(head);
        await this.#write(chunk);
      }
    })().catch((error) => {
      this.#end(error instanceof Error ? error.message : String(error));
    }).finally(() => {
      this.#pumping = false;
      if (!this.#closed && (this.#frames.length || this.#streams.length)) {
        this.#pump();
      }
    });
  }

  async #write(bytes: Uint8Array): Promise<void> {
    for (let at = 0; at < bytes.length;) {
      at += await this.#conn.write(bytes.subarray(at));
    }
  }

  /** Ends the channel and closes its connection. */
  close(): void {
    this.#end();
  }

  #end(reason?: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#frames = [];
    this.#streams = [];
    // Payloads cut short by the channel's end: their sinks are told.
    const cut = [...this.#incoming.values()];
    this.#incoming.clear();
    for (const stream of cut) stream.sink?.abort();
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
    this.onclose?.(reason);
  }

  async #read(): Promise<void> {
    const conn = this.#conn;
    const chunk = new Uint8Array(READ_BYTES);
    let pending = new Uint8Array(0);
    /** Fills `target` from what is pending, then from the socket: false at the end. */
    const fill = async (target: Uint8Array): Promise<boolean> => {
      let at = Math.min(pending.length, target.length);
      target.set(pending.subarray(0, at));
      pending = pending.subarray(at);
      while (at < target.length) {
        const want = target.length - at;
        if (want >= READ_BYTES) {
          // A large buffer is read straight into its place.
          const n = await conn.read(target.subarray(at));
          if (n === null) return false;
          at += n;
          continue;
        }
        const n = await conn.read(chunk);
        if (n === null) return false;
        const take = Math.min(n, want);
        target.set(chunk.subarray(0, take), at);
        at += take;
        if (take < n) pending = chunk.slice(take, n);
      }
      return true;
    };
    const streams = this.#incoming;
    const deliver = (data: unknown) => this.onmessage?.({ data });
    const prefix = new Uint8Array(8);
    const view = new DataView(prefix.buffer);
    /**
     * Takes a plain message whole from what is pending, without waiting:
     * false when it is not all there yet (or is another kind of frame).
     */
    const takeWhole = (): boolean => {
      if (pending.length < 8) return false;
      const at = new DataView(
        pending.buffer,
        pending.byteOffset,
        pending.byteLength,
      );
      const headerLength = at.getUint32(0);
      const count = at.getUint32(4);
      if (
        headerLength > MAX_HEADER_BYTES || count > MAX_BUFFERS ||
        pending.length < 8 + 4 * count + headerLength
      ) return false;
      let end = 8 + 4 * count + headerLength;
      for (let i = 0; i < count; i++) end += at.getUint32(8 + 4 * i);
      if (pending.length < end) return false;
      const buffers: ArrayBuffer[] = [];
      let from = 8 + 4 * count + headerLength;
      for (let i = 0; i < count; i++) {
        const size = at.getUint32(8 + 4 * i);
        buffers.push(pending.slice(from, from + size).buffer);
        from += size;
      }
      const header = pending.subarray(
        8 + 4 * count,
        8 + 4 * count + headerLength,
      );
      pending = pending.subarray(end);
      // A `Uint8Array` in the message is a view of the bytes read, which
      // are the message's own (never read into again).
      deliver(decodeMessage(header, buffers));
      return true;
    };
    while (!this.#closed) {
      // The messages already read are taken at once, one after the other.
      while (!this.#closed && takeWhole());
      if (this.#closed) return;
      if (pending.length === 0) {
        const n = await conn.read(chunk);
        if (n === null) return;
        pending = chunk.slice(0, n);
        continue;
      }
      if (!(await fill(prefix))) return;
      const first = view.getUint32(0);
      if (first === ABANDON) {
        // Its sender gave up on it: what came of it is dropped.
        const stream = streams.get(view.getUint32(4));
        streams.delete(view.getUint32(4));
        stream?.sink?.abort();
        continue;
      }
      if (first === PART) {
        const stream = streams.get(view.getUint32(4));
        const length = new Uint8Array(4);
        if (!(await fill(length))) return;
        const size = new DataView(length.buffer).getUint32(0);
        if (!stream || stream.filled + size > stream.total) {
          throw new RangeError("a part of no payload, or past its end");
        }
        if (stream.sink) {
          // Handed on as it comes, in buffers of their own.
          for (let left = size; left > 0;) {
            const bytes = new Uint8Array(Math.min(left, PART_BYTES));
            if (!(await fill(bytes))) return;
            left -= bytes.length;
            stream.filled += bytes.length;
            stream.sink.push(bytes);
          }
        } else {
          const into = new Uint8Array(stream.buffer!, stream.filled, size);
          if (!(await fill(into))) return;
          stream.filled += size;
        }
        if (stream.filled === stream.total) {
          streams.delete(view.getUint32(4));
          if (stream.sink) stream.sink.end();
          else deliver({ ...stream.data, b: stream.buffer });
        }
        continue;
      }
      if (first & PARTED) {
        const headerLength = first & ~PARTED;
        const id = view.getUint32(4);
        const rest = new Uint8Array(8 + headerLength);
        if (headerLength > MAX_HEADER_BYTES || !(await fill(rest))) {
          if (headerLength > MAX_HEADER_BYTES) {
            throw new RangeError(`a header of ${headerLength} bytes`);
          }
          return;
        }
        const total = new DataView(rest.buffer).getFloat64(0);
        if (
          !Number.isSafeInteger(total) || total < 0 ||
          total > MAX_STREAM_BYTES || streams.size >= MAX_STREAMS ||
          streams.has(id)
        ) {
          throw new RangeError(`a payload of ${total} bytes in parts`);
        }
        const data = decoder.decode(rest.subarray(8)) as Record<
          string,
          unknown
        >;
        const sink = total > 0 ? this.onstream?.(data, total) : undefined;
        if (total === 0) deliver({ ...data, b: new ArrayBuffer(0) });
        else if (sink) streams.set(id, { data, sink, total, filled: 0 });
        else {
          streams.set(id, {
            data,
            buffer: new ArrayBuffer(total),
            total,
            filled: 0,
          });
        }
        continue;
      }
      const headerLength = first;
      const count = view.getUint32(4);
      if (headerLength > MAX_HEADER_BYTES || count > MAX_BUFFERS) {
        throw new RangeError(
          `a message past the channel's limits (${headerLength} bytes of header, ${count} buffers)`,
        );
      }
      const lengths = new Uint8Array(4 * count);
      if (!(await fill(lengths))) return;
      const header = new Uint8Array(headerLength);
      if (!(await fill(header))) return;
      const sizes = new DataView(lengths.buffer);
      const buffers: ArrayBuffer[] = [];
      for (let i = 0; i < count; i++) {
        const buffer = new ArrayBuffer(sizes.getUint32(4 * i));
        if (!(await fill(new Uint8Array(buffer)))) return;
        buffers.push(buffer);
      }
      deliver(decodeMessage(header, buffers));
    }
  }
}
