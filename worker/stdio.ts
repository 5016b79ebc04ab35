/**
 * Keeps the protocol's byte streams out of the sandboxes' reach.
 *
 * The worker speaks the protocol over its standard input and output, and
 * every thread of the process — sandboxes included, whatever their
 * permissions — may use `Deno.stdin` and `Deno.stdout`. A task could then
 * read other tasks' arguments or write forged results. So, before any
 * sandbox exists, the worker opens its own descriptors on the two pipes
 * (through `/proc/self/fd`) and points descriptor 0 at `/dev/null` and
 * descriptor 1 at standard error: a task reading standard input sees its end,
 * and what a task writes to standard output arrives as an untagged log line.
 *
 * This needs Linux and pipes (as the local and SSH transports give); where
 * it cannot be done the worker keeps its standard streams and says why.
 *
 * @module
 */

import { pipeReadable, pipeWritable } from "./pipe.ts";

/** The protocol's streams, and whether the standard ones were moved away. */
export interface ProtocolStreams {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
  /** Why the standard streams could not be taken away from sandboxes, if they could not. */
  unprotected?: string;
}

/**
 * Takes the protocol's streams away from descriptors 0 and 1.
 *
 * @returns The streams to speak the protocol over.
 */
export function protocolStreams(): ProtocolStreams {
  const standard = {
    readable: Deno.stdin.readable,
    writable: Deno.stdout.writable,
  };
  if (Deno.build.os !== "linux") {
    return { ...standard, unprotected: `not on Linux (${Deno.build.os})` };
  }
  let input: Deno.FsFile;
  let output: Deno.FsFile;
  try {
    for (const fd of [0, 1]) {
      if (!Deno.statSync(`/proc/self/fd/${fd}`).isFifo) {
        throw new Error(`descriptor ${fd} is not a pipe`);
      }
    }
    input = Deno.openSync("/proc/self/fd/0", { read: true });
    try {
      output = Deno.openSync("/proc/self/fd/1", { write: true });
    } catch (error) {
      input.close();
      throw error;
    }
  } catch (error) {
    return { ...standard, unprotected: message(error) };
  }
  // From here on the protocol goes through the new descriptors, whether or
  // not the standard ones can be moved away.
  // Read and written with libc where it can be (see pipe.ts).
  const fastIn = pipeReadable("/proc/self/fd/0");
  const fastOut = pipeWritable("/proc/self/fd/1");
  if (fastIn) input.close();
  if (fastOut) output.close();
  const streams = {
    readable: fastIn ?? input.readable,
    writable: fastOut ?? writable(output),
  };
  try {
    const libc = Deno.dlopen("libc.so.6", {
      open: { parameters: ["buffer", "i32"], result: "i32" },
      dup2: { parameters: ["i32", "i32"], result: "i32" },
      close: { parameters: ["i32"], result: "i32" },
    });
    try {
      const devNull = libc.symbols.open(
        new TextEncoder().encode("/dev/null\0"),
        0,
      );
      if (devNull < 0) throw new Error("cannot open /dev/null");
      const moved = libc.symbols.dup2(devNull, 0) === 0 &&
        libc.symbols.dup2(2, 1) === 1;
      libc.symbols.close(devNull);
      if (!moved) throw new Error("dup2 failed");
    } finally {
      libc.close();
    }
  } catch (error) {
    return { ...streams, unprotected: message(error) };
  }
  return streams;
}

/**
 * A byte sink writing to a file with `write()`. (The file's own `writable`
 * does not hand the bytes to a pipe until it is closed, in Deno 2.9.)
 */
function writable(file: Deno.FsFile): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>({
    async write(chunk) {
      for (let at = 0; at < chunk.length;) {
        at += await file.write(chunk.subarray(at));
      }
    },
    close() {
      file.close();
    },
    abort() {
      file.close();
    },
  });
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
