/**
 * What a pool prints about itself while it runs: one line per event
 * (`"log"`), the same lines under a live status line on a terminal
 * (`"rich"`), or nothing (`"silent"`).
 *
 * Lines are written with synchronous, complete writes, so two lines never
 * interleave mid-line even when events arrive from many nodes at once. A
 * line a task wrote on a node (a `Log` event) goes to the stream it was
 * written to, stdout or stderr, prefixed `[node N] `; every other line goes
 * to stderr. Text that came from tasks is printed with its control
 * characters shown escaped (`\x1b`, `\r`): only the library's own colours
 * reach the terminal.
 *
 * @module
 */

import { formatDollars, formatEvent, type PoolEvent } from "../events.ts";
import { escapeControls } from "../wire/output.ts";

/** How a pool prints its events: see {@linkcode createConsole}. */
export type ConsoleMode = "rich" | "log" | "silent";

/** A stream written with complete synchronous writes, such as `Deno.stderr`. */
export interface WritableLike {
  /**
   * Writes some of `bytes`, returning how many were written.
   *
   * @param bytes The bytes to write.
   * @returns How many bytes were written.
   */
  writeSync(bytes: Uint8Array): number;
  /**
   * Whether the stream is a terminal.
   *
   * @returns `true` on a terminal.
   */
  isTerminal?(): boolean;
}

/** Options of {@linkcode createConsole}. */
export interface ConsoleOptions {
  /**
   * Where event lines, the status line, and a task's stderr lines go.
   *
   * @default {Deno.stderr}
   */
  stderr?: WritableLike;
  /**
   * Where a task's stdout lines go.
   *
   * @default {Deno.stdout}
   */
  stdout?: WritableLike;
  /**
   * Whether `stderr` is a terminal, which `"rich"` needs to draw its status
   * line.
   *
   * @default {stderr.isTerminal(), or false where it cannot tell}
   */
  isTty?: boolean;
  /**
   * Whether `"rich"` colours its lines, on a terminal only.
   *
   * @default {true, unless the NO_COLOR environment variable is set}
   */
  color?: boolean;
  /**
   * The terminal's width, to which `"rich"` cuts its status line so that it
   * never wraps.
   *
   * @default {the width of the process's terminal, or 80}
   */
  columns?: number;
}

/** The console of a pool: it is given every event, then closed. */
export interface ConsoleSink {
  /**
   * Prints an event. Never throws: a stream that cannot be written to (a
   * closed pipe) is skipped, since printing must not fail the pool. Events
   * after {@linkcode ConsoleSink.close} are ignored.
   *
   * @param event The event to print.
   */
  event(event: PoolEvent): void;
  /** Clears the status line, stops its timer, and ignores later events. */
  close(): void;
}

const MODES: readonly ConsoleMode[] = ["rich", "log", "silent"];

/** How often, at most, the status line is redrawn, in milliseconds. */
const REDRAW_MS = 100;

/** Carriage return, then erase the whole line. */
const CLEAR_LINE = "\r\x1b[2K";

const encoder = new TextEncoder();

function writeAll(writer: WritableLike, text: string): void {
  if (text === "") return;
  const bytes = encoder.encode(text);
  try {
    let offset = 0;
    while (offset < bytes.length) {
      const written = writer.writeSync(bytes.subarray(offset));
      if (written <= 0) return;
      offset += written;
    }
  } catch {
    // Printing never fails the pool (a closed pipe, a detached terminal).
  }
}

function isTerminal(writer: WritableLike): boolean {
  try {
    return writer.isTerminal?.() ?? false;
  } catch {
    return false;
  }
}

/** Where an event's text goes, and the text, lines without the last newline. */
interface Printed {
  stream: "stdout" | "stderr";
  text: string;
}

/**
 * The line an event prints as, or `undefined` for `TaskStarted`, which the
 * console leaves out (its `TaskCompleted` or `TaskFailed` line follows).
 */
function lineOf(event: PoolEvent): Printed | undefined {
  if (event.type === "TaskStarted") return undefined;
  // What tasks wrote (in their output, their errors' messages, the names
  // they chose) is shown with its control characters escaped: it cannot
  // move the cursor, erase a line, or set the terminal's title.
  if (event.type !== "Log") {
    return { stream: "stderr", text: escapeControls(formatEvent(event)) };
  }
  const prefix = `[node ${event.node}] `;
  const line = event.line.endsWith("\n") ? event.line.slice(0, -1) : event.line;
  return {
    stream: event.stream,
    text: line.split("\n").map((part) => prefix + escapeControls(part)).join(
      "\n",
    ),
  };
}

function logConsole(stderr: WritableLike, stdout: WritableLike): ConsoleSink {
  let closed = false;
  return {
    event(event) {
      if (closed) return;
      const printed = lineOf(event);
      if (!printed) return;
      const { stream, text } = printed;
      writeAll(stream === "stdout" ? stdout : stderr, text + "\n");
    },
    close() {
      closed = true;
    },
  };
}

const STYLE = {
  dim: ["\x1b[2m", "\x1b[22m"],
  red: ["\x1b[31m", "\x1b[39m"],
  green: ["\x1b[32m", "\x1b[39m"],
  yellow: ["\x1b[33m", "\x1b[39m"],
  cyan: ["\x1b[36m", "\x1b[39m"],
} as const;

type Style = keyof typeof STYLE;

function styleOf(event: PoolEvent): Style | undefined {
  switch (event.type) {
    case "TaskFailed":
    case "NodeLost":
    case "BudgetExceeded":
      return "red";
    case "BootstrapPhase":
      return event.status === "failed" ? "red" : "dim";
    case "InstancePreempted":
    case "InstanceReplaced":
    case "HealthCheckFailed":
    case "BudgetWarning":
    case "BudgetLimited":
      return "yellow";
    case "NodeReady":
    case "ClusterReady":
      return "green";
    case "TaskStarted":
    case "TaskCompleted":
    case "Log":
      return undefined;
    default:
      return "dim";
  }
}

function paint(style: Style | undefined, text: string): string {
  if (style === undefined) return text;
  const [open, close] = STYLE[style];
  return text.split("\n").map((line) => open + line + close).join("\n");
}

function duration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes}m${String(seconds % 60).padStart(2, "0")}s`;
}

function richConsole(
  stderr: WritableLike,
  stdout: WritableLike,
  color: boolean,
  columns: () => number,
): ConsoleSink {
  const started = performance.now();
  const ready = new Set<number>();
  const running = new Set<number>();
  let totalNodes = 0;
  let completed = 0;
  let failed = 0;
  /** The spend and the rate of the last `Cost` event, once there was one. */
  let cost: { spent: number; ratePerHour: number } | undefined;
  let closed = false;
  /** The status line on screen, styled, or `undefined` before the first event. */
  let shown: string | undefined;
  let timer: ReturnType<typeof setInterval> | undefined;

  function track(event: PoolEvent): void {
    switch (event.type) {
      case "ClusterProvisioned":
        totalNodes = event.nodes;
        break;
      case "ClusterReady":
        totalNodes = Math.max(totalNodes, event.nodes);
        break;
      case "PoolResized":
        totalNodes = event.nodes;
        break;
      case "NodeReady":
        ready.add(event.node);
        break;
      case "NodeLost":
      case "InstancePreempted":
      case "NodeRetired":
        ready.delete(event.node);
        break;
      case "ClusterDestroyed":
        ready.clear();
        break;
      case "TaskStarted":
        running.add(event.task);
        break;
      case "TaskCompleted":
        running.delete(event.task);
        completed++;
        break;
      case "TaskFailed":
        running.delete(event.task);
        failed++;
        break;
      case "Cost":
        cost = { spent: event.spent, ratePerHour: event.ratePerHour };
        break;
    }
  }

  function status(): string {
    const total = Math.max(totalNodes, ready.size);
    const text =
      `skyward · nodes ${ready.size}/${total} ready · tasks ${running.size} running, ${completed} completed, ${failed} failed · ${
        duration(performance.now() - started)
      }${
        cost
          ? ` · ${formatDollars(cost.spent)} (${
            formatDollars(cost.ratePerHour)
          }/h)`
          : ""
      }`;
    const width = Math.max(1, columns() - 1);
    const cut = text.length > width ? text.slice(0, width) : text;
    return color ? paint("cyan", cut) : cut;
  }

  /** Whether the status line is erased while the program prints. */
  let hidden = false;

  function redraw(): void {
    if (hidden) return;
    const next = status();
    if (next === shown) return;
    writeAll(stderr, CLEAR_LINE + next);
    shown = next;
  }

  const view: StatusView = {
    hide() {
      if (shown === undefined || hidden) return;
      hidden = true;
      writeAll(stderr, CLEAR_LINE);
    },
    show() {
      if (!hidden) return;
      hidden = false;
      shown = status();
      writeAll(stderr, shown);
    },
  };

  return {
    event(event) {
      if (closed) return;
      track(event);
      const printed = lineOf(event);
      if (!printed) return;
      const { stream, text } = printed;
      const line = color ? paint(styleOf(event), text) : text;
      const clear = shown === undefined ? "" : CLEAR_LINE;
      // Drawn with the counts as they are now, this event included.
      shown = status();
      if (stream === "stderr") {
        writeAll(stderr, clear + line + "\n" + shown);
      } else {
        writeAll(stderr, clear);
        writeAll(stdout, line + "\n");
        writeAll(stderr, shown);
      }
      if (timer === undefined) {
        timer = setInterval(redraw, REDRAW_MS);
        // The status line never keeps a program alive.
        Deno.unrefTimer(timer);
        showing.add(view);
        patchConsole();
      }
    },
    close() {
      if (closed) return;
      closed = true;
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      showing.delete(view);
      if (showing.size === 0) unpatchConsole();
      if (shown !== undefined) writeAll(stderr, CLEAR_LINE);
      shown = undefined;
    },
  };
}

/** A status line on screen, which the program's own output goes above. */
interface StatusView {
  /** Erases the status line (the cursor is left at the start of its line). */
  hide(): void;
  /** Draws it again, up to date. */
  show(): void;
}

/** The status lines on screen. */
const showing = new Set<StatusView>();

/**
 * The `console` methods that print; while a status line is shown, each
 * erases it first and draws it again after, so that what the program prints
 * lands above it.
 */
const PRINTING = [
  "log",
  "info",
  "debug",
  "warn",
  "error",
  "trace",
  "dir",
  "dirxml",
  "table",
  "assert",
  "count",
  "countReset",
  "group",
  "groupCollapsed",
  "groupEnd",
  "time",
  "timeLog",
  "timeEnd",
] as const;

/** Calls of the console's printing methods in progress. */
let printing = 0;

/** The console's own methods, while they are replaced. */
let originals: Map<string, (...args: unknown[]) => unknown> | undefined;

function patchConsole(): void {
  if (originals) return;
  originals = new Map();
  const target = console as unknown as Record<string, unknown>;
  for (const name of PRINTING) {
    const original = target[name];
    if (typeof original !== "function") continue;
    const wrapped = function (this: unknown, ...args: unknown[]): unknown {
      // One method may call another (`table` calls `log`): the outermost
      // call erases and draws.
      if (printing++ === 0) { for (const view of showing) view.hide(); }
      try {
        return original.apply(this, args);
      } finally {
        if (--printing === 0) { for (const view of showing) view.show(); }
      }
    };
    originals.set(name, original as (...args: unknown[]) => unknown);
    wrappers.set(name, wrapped);
    target[name] = wrapped;
  }
}

/** The replacements, to tell them from methods the program set since. */
const wrappers = new Map<string, unknown>();

function unpatchConsole(): void {
  if (!originals) return;
  const target = console as unknown as Record<string, unknown>;
  for (const [name, original] of originals) {
    // A method the program replaced since is left as it set it.
    if (target[name] === wrappers.get(name)) target[name] = original;
  }
  originals = undefined;
  wrappers.clear();
}

/**
 * Creates the console a pool prints its events to.
 *
 * - `"log"`: one line per event on stderr, as {@linkcode formatEvent} writes
 *   it (`[ClusterReady] Cluster ready with 2 node(s) in 310ms`); a `Log`
 *   event's line goes to the stream the task wrote it to, prefixed
 *   `[node N] `.
 * - `"rich"`: on a terminal, the same lines, coloured, above a live status
 *   line (nodes ready, tasks running, completed and failed, elapsed time,
 *   and, once the pool reported a `Cost`, the spend and the rate)
 *   redrawn at most every 100 ms and whenever a line is printed, with the
 *   counts as they are then; elsewhere exactly `"log"`. While the status
 *   line is shown, what the program prints with `console.*` goes above it
 *   (the console's printing methods erase it first and draw it again
 *   after, until the pool is closed); bytes written straight to
 *   `Deno.stdout` or `Deno.stderr` may still share its line.
 * - `"silent"`: nothing.
 *
 * @param mode How to print.
 * @param options The streams, and whether stderr is a terminal.
 * @returns A sink to give every event to, and to close when the pool is done.
 * @throws {RangeError} If `mode` is not one of the three modes.
 *
 * @example
 * ```ts
 * import { createConsole } from "./console.ts";
 *
 * const sink = createConsole("log");
 * sink.event({ type: "ClusterReady", time: Date.now(), pool: "p", nodes: 2, elapsedMs: 310 });
 * sink.event({ type: "Log", time: Date.now(), pool: "p", node: 1, stream: "stdout", line: "hello" });
 * sink.close();
 * // stderr: [ClusterReady] Cluster ready with 2 node(s) in 310ms
 * // stdout: [node 1] hello
 * ```
 */
export function createConsole(
  mode: ConsoleMode,
  options: ConsoleOptions = {},
): ConsoleSink {
  if (!MODES.includes(mode)) {
    throw new RangeError(
      `Cannot create console: 'mode' must be one of ${
        MODES.map((m) => `"${m}"`).join(", ")
      }, got ${JSON.stringify(mode)}`,
    );
  }
  const stderr = options.stderr ?? Deno.stderr;
  const stdout = options.stdout ?? Deno.stdout;
  if (mode === "silent") return { event() {}, close() {} };
  const isTty = options.isTty ?? isTerminal(stderr);
  if (mode === "log" || !isTty) return logConsole(stderr, stdout);
  const color = options.color ?? !Deno.noColor;
  const fixedColumns = options.columns;
  const columns = fixedColumns !== undefined ? () => fixedColumns : () => {
    try {
      return Deno.consoleSize().columns || 80;
    } catch {
      return 80;
    }
  };
  return richConsole(stderr, stdout, color, columns);
}

/**
 * The console mode a pool uses when none is given: `"rich"` when stderr is a
 * terminal, `"log"` otherwise (a pipe, a file, CI).
 *
 * @returns `"rich"` or `"log"`.
 *
 * @example
 * ```ts
 * import { defaultConsoleMode } from "./console.ts";
 *
 * console.log(defaultConsoleMode()); // "log" when stderr is redirected
 * ```
 */
export function defaultConsoleMode(): ConsoleMode {
  return isTerminal(Deno.stderr) ? "rich" : "log";
}
