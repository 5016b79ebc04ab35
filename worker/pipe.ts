/**
 * The protocol's pipes, read and written from the event loop's own thread.
 *
 * Deno reads and writes a file (`FsFile.read()`, `write()`, and their
 * streams) on a thread of its blocking pool: about 40 µs of CPU per call on
 * the 2-core test machine, more than a no-op task costs everywhere else on
 * its way, and the worker reads and writes every few tasks. Here each pipe
 * is opened non-blocking and used with libc's `read(2)` and `write(2)`
 * through FFI (about 2 µs); only when there is nothing to read, or no room to
 * write, does the worker wait, off the event loop, with `poll(2)` on a
 * blocking-pool thread (a non-blocking FFI call). A client that reads slowly
 * holds back the results, never the worker's event loop.
 *
 * Linux only (the flags' values are Linux's); {@linkcode pipeReadable} and
 * {@linkcode pipeWritable} return `undefined` where they cannot be set up,
 * and the worker uses Deno's files as before.
 *
 * @module
 */

const O_RDONLY = 0o0;
const O_WRONLY = 0o1;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const F_SETPIPE_SZ = 1031;
const EAGAIN = 11;
const EINTR = 4;
const POLLIN = 1;
const POLLOUT = 4;
/** The most read at once. */
const READ_BYTES = 256 * 1024;
/** The pipe's buffer asked for: fewer waits when the client reads in bursts. */
const PIPE_BYTES = 1024 * 1024;

const SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  poll: {
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
} as const;

interface Pipe {
  fd: number;
  c: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
  errno(): number;
  /** Waits (off the event loop, at most a second) until the pipe is ready. */
  wait(): Promise<number>;
  close(): void;
  open: boolean;
}

/** Opens a pipe non-blocking, for `events` (`POLLIN` or `POLLOUT`). */
function openPipe(
  path: string,
  flags: number,
  events: number,
): Pipe | undefined {
  let libc: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    libc = Deno.dlopen("libc.so.6", SYMBOLS);
  } catch {
    return undefined;
  }
  const c = libc.symbols;
  const fd = c.open(
    new TextEncoder().encode(`${path}\0`),
    flags | O_NONBLOCK | O_CLOEXEC,
  );
  if (fd < 0) {
    libc.close();
    return undefined;
  }
  const pollfd = new Uint8Array(8);
  const view = new DataView(pollfd.buffer);
  view.setInt32(0, fd, true);
  view.setInt16(4, events, true);
  const pipe: Pipe = {
    fd,
    c,
    open: true,
    errno: () => new Deno.UnsafePointerView(c.__errno_location()!).getInt32(),
    wait: () => c.poll(pollfd, 1n, 1_000),
    close() {
      if (!pipe.open) return;
      pipe.open = false;
      c.close(fd);
      libc.close();
    },
  };
  return pipe;
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
  const pipe = openPipe(path, O_RDONLY, POLLIN);
  if (!pipe) return undefined;
  const scratch = new Uint8Array(READ_BYTES);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        if (!pipe.open) return controller.close();
        const n = Number(
          pipe.c.read(pipe.fd, scratch, BigInt(scratch.length)),
        );
        if (n > 0) return controller.enqueue(scratch.slice(0, n));
        if (n === 0) {
          pipe.close();
          return controller.close();
        }
        const code = pipe.errno();
        if (code === EINTR) continue;
        if (code !== EAGAIN) {
          pipe.close();
          throw new Error(`Cannot read the client's pipe (errno ${code})`);
        }
        await pipe.wait();
      }
    },
    cancel: () => pipe.close(),
  }, { highWaterMark: 0 });
}

/**
 * Opens `path` (a pipe, e.g. `/proc/self/fd/1`) for writing, non-blocking,
 * and returns a stream that writes each chunk whole, in order.
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
  const pipe = openPipe(path, O_WRONLY, POLLOUT);
  if (!pipe) return undefined;
  // A smaller pipe only waits more.
  pipe.c.fcntl(pipe.fd, F_SETPIPE_SZ, PIPE_BYTES);
  return new WritableStream<Uint8Array>({
    async write(chunk) {
      for (let at = 0; at < chunk.length;) {
        if (!pipe.open) throw new Error("The pipe is closed");
        const n = Number(
          pipe.c.write(pipe.fd, chunk.subarray(at), BigInt(chunk.length - at)),
        );
        if (n > 0) {
          at += n;
          continue;
        }
        const code = n < 0 ? pipe.errno() : 0;
        if (code === EINTR) continue;
        if (code !== EAGAIN) {
          throw new Error(`Cannot write to the client's pipe (errno ${code})`);
        }
        // Full: wait until the client has read some, off the event loop.
        await pipe.wait();
      }
    },
    close: () => pipe.close(),
    abort: () => pipe.close(),
  });
}
