/**
 * A message channel over a byte stream (the Unix socket between the worker
 * process and a sandbox process), shaped like a `MessagePort`: each
 * `postMessage(message, buffers)` arrives as one `onmessage` event whose
 * `data` is the message, its `ArrayBuffer`s included.
 *
 * The message goes as MessagePack with each listed `ArrayBuffer` replaced by
 * a reference; the buffers follow it as raw bytes, never encoded, and the
 * receiver reads each straight into a buffer of its own. A frame is
 * `u32 headerLength | u32 count | count × u32 byteLength | header |
 * buffers`, big-endian. The messages posted in one turn leave in one write.
 *
 * What arrives from a sandbox is untrusted: a frame past the limits below
 * ends the channel (`onclose` with the reason), and the sandbox is stopped.
 *
 * @module
 */
import { Decoder, Encoder, ExtensionCodec } from "npm:@msgpack/msgpack@3.1.3";

/** The largest header (the message without its buffers), in bytes. */
const MAX_HEADER_BYTES = 16 * 1024 * 1024;
/** The most buffers one message may carry. */
const MAX_BUFFERS = 4096;
/** Messages of one turn up to this size are copied into one write. */
const COALESCE_BYTES = 64 * 1024;
/** How much is read from the socket at a time, outside large buffers. */
const READ_BYTES = 256 * 1024;

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
  /** Called with each message received, in order. */
  onmessage: ((event: ChannelEvent) => void) | null = null;
  /** Called once when the channel has ended, with why when it failed. */
  onclose: ((reason?: string) => void) | null = null;
  #conn: Deno.Conn;
  #queue: Uint8Array[] = [];
  #writing: Promise<void> = Promise.resolve();
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
   * Sends a message. The `ArrayBuffer`s in it (at any depth) travel as raw
   * bytes; they must not change until the turn ends. The second argument is
   * accepted for `MessagePort`'s shape, and ignored.
   */
  postMessage(message: unknown, _transfer?: unknown[]): void {
    if (this.#closed) return;
    for (const part of encodeMessage(message)) this.#queue.push(part);
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => this.#flush());
  }

  #scheduled = false;

  #flush(): void {
    this.#scheduled = false;
    const parts = this.#queue;
    this.#queue = [];
    // Small parts go together in one write; large buffers as they are.
    const writes: Uint8Array[] = [];
    let small: Uint8Array[] = [];
    let size = 0;
    const join = () => {
      if (small.length === 0) return;
      if (small.length === 1) writes.push(small[0]);
      else {
        const joined = new Uint8Array(size);
        let at = 0;
        for (const part of small) {
          joined.set(part, at);
          at += part.length;
        }
        writes.push(joined);
      }
      small = [];
      size = 0;
    };
    for (const part of parts) {
      if (part.length >= COALESCE_BYTES) {
        join();
        writes.push(part);
      } else {
        small.push(part);
        size += part.length;
      }
    }
    join();
    this.#writing = this.#writing.then(async () => {
      for (const bytes of writes) {
        for (let at = 0; at < bytes.length;) {
          at += await this.#conn.write(bytes.subarray(at));
        }
      }
    }).catch((error) => {
      this.#end(error instanceof Error ? error.message : String(error));
    });
  }

  /** Ends the channel and closes its connection. */
  close(): void {
    this.#end();
  }

  #end(reason?: string): void {
    if (this.#closed) return;
    this.#closed = true;
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
    const prefix = new Uint8Array(8);
    while (!this.#closed) {
      if (!(await fill(prefix))) return;
      const view = new DataView(prefix.buffer);
      const headerLength = view.getUint32(0);
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
      incoming = buffers;
      let data: unknown;
      try {
        data = decoder.decode(header);
      } finally {
        incoming = [];
      }
      this.onmessage?.({ data });
    }
  }
}
