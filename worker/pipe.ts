/**
 * The protocol's pipes, read and written from the event loop's own thread.
 *
 * Deno reads and writes a file (`FsFile.read()`, `write()`, and their
 * streams) on a thread of its blocking pool: two thread hand-offs per read
 * and per write, about half of a stdio echo's round trip on the 2-core test
 * machine, and the worker reads and writes at every task. Here each pipe is
 * opened non-blocking (libc's `open(2)` through FFI, on `/proc/self/fd/N`:
 * a descriptor of the worker's own) and handed to `node:net`'s `Socket`,
 * which Deno serves from its event loop: a read is taken when the pipe says
 * it is readable, with no thread in between, and a write that does not fit
 * waits for the pipe to drain without holding the event loop. A client that
 * reads slowly holds back the results, never the worker's reading of its
 * input.
 *
 * Linux only (the flags' values are Linux's); {@linkcode pipeReadable} and
 * {@linkcode pipeWritable} return `undefined` where they cannot be set up,
 * and the worker uses Deno's files as before.
 *
 * @module
 */
import { Socket } from "node:net";

const O_RDONLY = 0o0;
const O_WRONLY = 0o1;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const F_SETPIPE_SZ = 1031;
/** The pipe's buffer asked for: fewer waits when the client reads in bursts. */
const PIPE_BYTES = 1024 * 1024;
/** What a readable holds read ahead of its reader before it stops reading. */
const READ_AHEAD_BYTES = 1024 * 1024;

/**
 * Opens `path` non-blocking with libc, and returns its descriptor, or
 * `undefined` where FFI or the path is not available.
 */
function openPipe(path: string, flags: number): number | undefined {
  let libc: Deno.DynamicLibrary<{
    open: { parameters: ["buffer", "i32"]; result: "i32" };
    fcntl: { parameters: ["i32", "i32", "i32"]; result: "i32" };
  }>;
  try {
    libc = Deno.dlopen("libc.so.6", {
      open: { parameters: ["buffer", "i32"], result: "i32" },
      fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
    });
  } catch {
    return undefined;
  }
  try {
    const fd = libc.symbols.open(
      new TextEncoder().encode(`${path}\0`),
      flags | O_NONBLOCK | O_CLOEXEC,
    );
    if (fd < 0) return undefined;
    // A smaller pipe only waits more (for writing; harmless for reading).
    if (flags === O_WRONLY) libc.symbols.fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES);
    return fd;
  } finally {
    libc.close();
  }
}

/**
 * Opens `path` (a pipe, e.g. `/proc/self/fd/0`) for reading, non-blocking,
 * and returns a stream of what is read, each chunk a buffer of its own.
 *
 * @param path The pipe's path.
 * @returns The stream, or `undefined` when FFI or the pipe is not available.
 *
 * @example
 * ```ts ignore
 * const readable = pipeReadable("/proc/self/fd/0") ?? Deno.stdin.readable;
 * ```
 */
export function pipeReadable(
  path: string,
): ReadableStream<Uint8Array> | undefined {
  const fd = openPipe(path, O_RDONLY);
  if (fd === undefined) return undefined;
  const socket = new Socket({ fd, readable: true, writable: false });
  let ended = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      socket.on("data", (chunk: Uint8Array) => {
        if (ended) return;
        controller.enqueue(
          new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength),
        );
        // The reader is behind: stop reading until it asks for more.
        if ((controller.desiredSize ?? 0) <= 0) socket.pause();
      });
      socket.on("end", () => {
        if (ended) return;
        ended = true;
        controller.close();
      });
      socket.on("error", (error: Error) => {
        if (ended) return;
        ended = true;
        controller.error(
          new Error(`Cannot read the client's pipe: ${error.message}`),
        );
      });
    },
    pull() {
      if (socket.isPaused()) socket.resume();
    },
    cancel() {
      ended = true;
      socket.destroy();
    },
  }, {
    highWaterMark: READ_AHEAD_BYTES,
    size: (chunk) => chunk.byteLength,
  });
}

/**
 * Opens `path` (a pipe, e.g. `/proc/self/fd/1`) for writing, non-blocking,
 * and returns a stream that writes each chunk whole, in order. A write
 * settles once its chunk is in the pipe, or held while the pipe drains
 * (then the next write waits for the drain).
 *
 * @param path The pipe's path.
 * @returns The stream, or `undefined` when FFI or the pipe is not available.
 *
 * @example
 * ```ts ignore
 * const writable = pipeWritable("/proc/self/fd/1") ?? Deno.stdout.writable;
 * ```
 */
export function pipeWritable(
  path: string,
): WritableStream<Uint8Array> | undefined {
  const fd = openPipe(path, O_WRONLY);
  if (fd === undefined) return undefined;
  const socket = new Socket({ fd, readable: false, writable: true });
  let failed: Error | undefined;
  /** Settles the write waiting for a drain, if one is. */
  let waiting: ((error?: Error) => void) | undefined;
  socket.on("drain", () => waiting?.());
  socket.on("error", (error: Error) => {
    failed = new Error(`Cannot write to the client's pipe: ${error.message}`);
    waiting?.(failed);
  });
  socket.on("close", () => {
    failed ??= new Error("The pipe is closed");
    waiting?.(failed);
  });
  return new WritableStream<Uint8Array>({
    write(chunk) {
      if (failed) throw failed;
      if (socket.write(chunk)) return;
      // Past the socket's buffer: the next write waits until it drains.
      return new Promise<void>((resolve, reject) => {
        waiting = (error) => {
          waiting = undefined;
          if (error) reject(error);
          else resolve();
        };
      });
    },
    close() {
      if (failed) return;
      return new Promise<void>((resolve) => socket.end(() => resolve()));
    },
    abort() {
      socket.destroy();
    },
  });
}
