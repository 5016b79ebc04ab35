/**
 * The Node streams of an `ssh2` channel as web streams, with backpressure
 * down to the SSH window, and a way to fail them when the connection is
 * lost (a cut stream never looks like a clean end).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { Readable } from "node:stream";

/** How many bytes a readable holds before its Node side is paused. */
const CHUNK_QUEUE_BYTES = 1 << 20;

/** A web readable fed by a Node readable, see {@linkcode nodeToWeb}. */
export interface WebReadable {
  /** The web stream. */
  stream: ReadableStream<Uint8Array>;
  /** Ends the stream: with an error, or cleanly without one. */
  fail(error?: Error): void;
}

/**
 * A Node readable as a web stream, pausing the Node side (and so the SSH
 * window) when the web side is full.
 *
 * @param source The Node readable (a channel or its `stderr`).
 * @returns The stream, and a way to fail it.
 *
 * @example
 * ```ts
 * import { Readable } from "node:stream";
 * import { nodeToWeb } from "./streams.ts";
 *
 * const { stream } = nodeToWeb(Readable.from([new TextEncoder().encode("hi")]));
 * console.log(await new Response(stream).text()); // hi
 * ```
 */
export function nodeToWeb(source: Readable): WebReadable {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let done = false;
  const finish = (error?: Error) => {
    if (done) return;
    done = true;
    try {
      if (error) controller.error(error);
      else controller.close();
    } catch {
      // Already closed or errored by the consumer.
    }
  };
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      source.on("data", (chunk: Buffer) => {
        if (done) return;
        // A plain Uint8Array view, not a Buffer (whose slice() does not copy).
        controller.enqueue(
          new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength),
        );
        if ((controller.desiredSize ?? 1) <= 0) source.pause();
      });
      source.on("end", () => finish());
    },
    pull() {
      source.resume();
    },
    cancel() {
      done = true;
      // Keep draining so the shared window keeps moving for the other stream.
      source.removeAllListeners("data");
      source.on("data", () => {});
      source.resume();
    },
  }, { highWaterMark: CHUNK_QUEUE_BYTES, size: (chunk) => chunk.byteLength });
  return { stream, fail: finish };
}

/** A web writable feeding a channel, see {@linkcode webWritable}. */
export interface WebWritable {
  /** The web stream; closing it sends EOF. */
  stream: WritableStream<Uint8Array>;
  /** Fails the stream and every pending write. */
  fail(error: Error): void;
}

/**
 * A web writable that writes to a channel (anything with Node's `write`
 * and `end`), each write settling when the channel has taken it.
 *
 * @param channel The channel.
 * @param batch Runs each `channel.write` call: the SSH connection corks its
 *   socket around it, so that the packets one chunk is cut into leave in one
 *   system call (see `SshConnection.exec`). By default it just calls it.
 * @returns The stream, and a way to fail it.
 *
 * @example
 * ```ts
 * import { webWritable } from "./streams.ts";
 *
 * const { stream } = webWritable({
 *   write: (_chunk: Uint8Array, done: () => void) => done(),
 *   end: () => console.log("EOF"),
 * });
 * await stream.getWriter().close(); // EOF
 * ```
 */
export function webWritable(
  channel: NodeWritable,
  batch: (write: () => void) => void = (write) => write(),
): WebWritable {
  let failure: Error | undefined;
  const pending = new Set<(error: Error) => void>();
  let controller: WritableStreamDefaultController | undefined;
  const stream = new WritableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    write(chunk) {
      if (failure) throw failure;
      return new Promise<void>((resolve, reject) => {
        pending.add(reject);
        const done = (error?: Error | null) => {
          pending.delete(reject);
          if (error) reject(error);
          else resolve();
        };
        const data = Buffer.from(
          chunk.buffer,
          chunk.byteOffset,
          chunk.byteLength,
        );
        batch(() => channel.write(data, done));
      });
    },
    close() {
      if (failure) throw failure;
      channel.end();
    },
    abort() {
      channel.end();
    },
  });
  return {
    stream,
    fail(error) {
      if (failure) return;
      failure = error;
      for (const reject of pending) reject(error);
      pending.clear();
      try {
        controller?.error(error);
      } catch {
        // Already closed.
      }
    },
  };
}

/** What {@linkcode webWritable} needs of a channel. */
export interface NodeWritable {
  /** Writes a chunk; `done` is called once it is taken, with an error when it failed. */
  write(chunk: Buffer, done: (error?: Error | null) => void): unknown;
  /** Sends EOF. */
  end(): unknown;
}
