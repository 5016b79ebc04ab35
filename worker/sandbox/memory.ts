/**
 * How much memory a sandbox process holds: its resident set (heap, array
 * buffers, WebAssembly memory, the heaps of Web Workers it started), read
 * from `/proc/<pid>/status` on Linux, from `ps -o rss=` elsewhere (macOS).
 * The worker process reads it while the sandbox lives and stops the sandbox
 * past its limit — as Dask's nanny and Ray's memory monitor do.
 *
 * @module
 */

/** How often each sandbox's memory is read, on Linux and elsewhere (`ps`). */
export const MEMORY_WATCH_MS = Deno.build.os === "linux" ? 50 : 500;

/**
 * A process's resident memory, in bytes, or `undefined` when it cannot be
 * read (the process has ended).
 *
 * @example
 * ```ts
 * import { residentBytes } from "./memory.ts";
 *
 * console.log((residentBytes(Deno.pid) ?? 0) > 0); // true
 * ```
 */
export function residentBytes(pid: number): number | undefined {
  if (Deno.build.os === "linux") {
    try {
      const status = Deno.readTextFileSync(`/proc/${pid}/status`);
      const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
      return match ? Number(match[1]) * 1024 : undefined;
    } catch {
      return undefined;
    }
  }
  try {
    const out = new Deno.Command("ps", {
      args: ["-o", "rss=", "-p", String(pid)],
      stderr: "null",
    }).outputSync();
    const kib = Number(new TextDecoder().decode(out.stdout).trim());
    return out.success && kib > 0 ? kib * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The heap limit of a Deno sandbox whose compute sets no `memoryLimit`:
 * half the machine's memory, between 256 and 4096 MiB.
 *
 * @returns The limit in MiB.
 *
 * @example
 * ```ts
 * import { defaultHeapMb } from "./memory.ts";
 *
 * console.log(defaultHeapMb() >= 256); // true
 * ```
 */
export function defaultHeapMb(): number {
  try {
    return Math.max(
      256,
      Math.min(4096, Math.floor(Deno.systemMemoryInfo().total / 2 / 2 ** 20)),
    );
  } catch {
    return 4096;
  }
}
