/**
 * The event log: a pool started with `eventLog: "run.jsonl"` writes each of
 * its records there, one JSON object a line (JSON Lines), as they happen; a
 * `skyward dashboard run.jsonl` follows the file as it grows and serves the
 * same page a pool's own dashboard does. The first line describes the pool
 * (`PoolInfo`); then come the pool's events, as `onEvent` gets them, and
 * samples of its queue (`QueueSample`).
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import { logger } from "../log.ts";
import { sleep } from "../_timers.ts";
import type { DashboardRecord } from "./state.ts";

const log = logger("dashboard");

/**
 * Writes records to a file, one JSON line each.
 *
 * @example
 * ```ts
 * import { EventLogWriter } from "./event_log.ts";
 *
 * const path = await Deno.makeTempFile({ suffix: ".jsonl" });
 * const writer = EventLogWriter.open(path);
 * writer.write({ type: "QueueSample", time: Date.now(), pool: "p", queued: 3 });
 * writer.close();
 * console.log(JSON.parse(await Deno.readTextFile(path)).queued); // 3
 * await Deno.remove(path);
 * ```
 */
export class EventLogWriter {
  #file: Deno.FsFile | undefined;
  #path: string;
  #encoder = new TextEncoder();

  private constructor(file: Deno.FsFile, path: string) {
    this.#file = file;
    this.#path = path;
  }

  /**
   * Creates the file, or empties it.
   *
   * @param path Where.
   * @returns The writer.
   * @throws {ConfigError} When the file cannot be written, naming it.
   */
  static open(path: string): EventLogWriter {
    try {
      return new EventLogWriter(
        Deno.openSync(path, { write: true, create: true, truncate: true }),
        path,
      );
    } catch (error) {
      throw new ConfigError(
        `Cannot start pool: 'eventLog' cannot be written (${path}): ${
          error instanceof Error ? error.message : String(error)
        }`,
        { cause: error },
      );
    }
  }

  /** Appends one record; after a failed write, the log stops (with one warning). */
  write(record: DashboardRecord): void {
    if (!this.#file) return;
    const bytes = this.#encoder.encode(JSON.stringify(record) + "\n");
    try {
      for (let at = 0; at < bytes.length;) {
        at += this.#file.writeSync(bytes.subarray(at));
      }
    } catch (error) {
      log.warn("Event log {path} stopped: {error}", {
        path: this.#path,
        error,
      });
      this.close();
    }
  }

  /** Closes the file. */
  close(): void {
    try {
      this.#file?.close();
    } catch {
      // Already closed.
    }
    this.#file = undefined;
  }
}

/** Options of {@linkcode followEventLog}. */
export interface FollowOptions {
  /** Stops following. */
  signal?: AbortSignal;
  /**
   * How often the file is checked for new lines, in milliseconds.
   * @default 250
   */
  interval?: number;
  /** Called when the file was emptied or replaced: its records start again. */
  onRestart?: () => void;
}

/**
 * Reads an event log's records, then follows the file as it grows (as
 * `tail -f` does) until the signal aborts; a file emptied or shrunk is read
 * again from its start. A line that is not a record (not JSON, no `type`) is
 * skipped with a warning.
 *
 * @param path The event log.
 * @param onRecord Called with each record, in order.
 * @param options The signal that stops it.
 * @returns Once the signal aborted.
 * @throws {ConfigError} (as a rejection) When the file cannot be read at the start.
 *
 * @example
 * ```ts
 * import { followEventLog } from "./event_log.ts";
 *
 * const path = await Deno.makeTempFile({ suffix: ".jsonl" });
 * await Deno.writeTextFile(path, '{"type":"QueueSample","time":1,"pool":"p","queued":2}\n');
 * const stop = new AbortController();
 * await followEventLog(path, (record) => {
 *   console.log(record.type); // QueueSample
 *   stop.abort();
 * }, { signal: stop.signal });
 * await Deno.remove(path);
 * ```
 */
export async function followEventLog(
  path: string,
  onRecord: (record: DashboardRecord) => void,
  options: FollowOptions = {},
): Promise<void> {
  const interval = options.interval ?? 250;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    throw new ConfigError(
      `Cannot follow the event log ${path}: ${
        error instanceof Error ? error.message : String(error)
      }. Start the pool with \`eventLog: "${path}"\` to write it.`,
      { cause: error },
    );
  }
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(64 * 1024);
  let offset = 0;
  let partial = "";
  let lineNumber = 0;
  try {
    while (!options.signal?.aborted) {
      const { size, ino } = await Deno.stat(path).catch(() => ({
        size: offset,
        ino: null,
      }));
      const current = await file.stat();
      if (size < offset || (ino !== null && ino !== current.ino)) {
        // Emptied, or replaced by a new run's file.
        file.close();
        file = await Deno.open(path, { read: true });
        offset = 0;
        partial = "";
        lineNumber = 0;
        options.onRestart?.();
      }
      let read: number | null;
      while ((read = await file.read(buffer)) !== null && read > 0) {
        offset += read;
        const lines = (partial + decoder.decode(buffer.subarray(0, read), {
          stream: true,
        })).split("\n");
        partial = lines.pop()!;
        for (const line of lines) {
          lineNumber++;
          if (line.trim() === "") continue;
          let record: DashboardRecord;
          try {
            record = JSON.parse(line);
          } catch {
            log.warn("{path}:{line} is not JSON; skipped", {
              path,
              line: lineNumber,
            });
            continue;
          }
          if (typeof (record as { type?: unknown })?.type !== "string") {
            log.warn("{path}:{line} has no 'type'; skipped", {
              path,
              line: lineNumber,
            });
            continue;
          }
          onRecord(record);
        }
        if (options.signal?.aborted) return;
      }
      await sleep(interval, options.signal).catch(() => {});
    }
  } finally {
    file.close();
  }
}
