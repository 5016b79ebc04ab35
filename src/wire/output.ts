/**
 * Task output as text that can neither exhaust memory nor drive the user's
 * terminal: lines cut at a maximum length with a marker saying how much was
 * cut, a line splitter whose cost is linear in its input whatever the line
 * lengths, the marker shown for lines dropped under a flood, and control
 * characters shown escaped, as log viewers show them.
 *
 * Used on both sides: the worker and its sandboxes cut lines and count drops
 * before they send them; the client cuts the lines it reads from a worker's
 * stderr and escapes control characters when it prints.
 *
 * @module
 */

/**
 * The longest line of task output kept, in UTF-16 code units (64 Ki); the
 * rest of a longer line is replaced by a marker (see {@linkcode capLine}).
 */
export const MAX_LINE_CHARS = 64 * 1024;

/** Room for the marker past `max`: a line no longer than that is kept whole. */
const CUT_SLACK = 40;

/** The marker that ends a line cut at `max` characters, `cut` of them left out. */
function cutMarker(cut: number): string {
  return ` … [${cut} more characters cut]`;
}

/**
 * Cuts a line longer than `max` characters (and a few more, the room of
 * the marker) to `max` characters, never between the two halves of a
 * surrogate pair, followed by a marker saying how many were left out. A
 * line cut already is kept as it is.
 *
 * @param line The line, without its newline.
 * @param max The longest line kept whole.
 * @returns The line, or its start and the marker.
 *
 * @example
 * ```ts
 * import { capLine } from "./output.ts";
 *
 * const line = capLine("a".repeat(100), 3);
 * console.log(line); // "aaa … [97 more characters cut]"
 * console.log(capLine(line, 3) === line); // true
 * ```
 */
export function capLine(line: string, max: number = MAX_LINE_CHARS): string {
  // A line cut already (its marker past `max`) is not cut again.
  if (line.length <= max + CUT_SLACK) return line;
  const end = isHighSurrogate(line.charCodeAt(max - 1)) ? max - 1 : max;
  return line.slice(0, end) + cutMarker(line.length - end);
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/**
 * What a line of output costs against an output budget: its length plus a
 * fixed overhead for its message, so that a flood of empty lines costs too.
 *
 * @param line The line.
 * @returns Its cost, in bytes (a UTF-16 code unit counted as one).
 *
 * @example
 * ```ts
 * import { lineCost } from "./output.ts";
 *
 * console.log(lineCost("hello")); // 69
 * ```
 */
export function lineCost(line: string): number {
  return line.length + 64;
}

/**
 * The line shown in place of `count` lines dropped because output came
 * faster than it could be sent.
 *
 * @param count How many lines were dropped.
 * @returns The marker line.
 *
 * @example
 * ```ts
 * import { droppedLines } from "./output.ts";
 *
 * console.log(droppedLines(3));
 * // "[skyward] 3 lines of output dropped: the task wrote faster than they could be sent"
 * ```
 */
export function droppedLines(count: number): string {
  return `[skyward] ${count} line${
    count === 1 ? "" : "s"
  } of output dropped: the task wrote faster than they could be sent`;
}

/**
 * Splits text that arrives in pieces into lines, in time linear in the text
 * and memory bounded by `max`: a line longer than `max` is cut (see
 * {@linkcode capLine}) as it arrives, its rest only counted.
 *
 * @example
 * ```ts
 * import { LineSplitter } from "./output.ts";
 *
 * const lines = new LineSplitter(4);
 * console.log(lines.push("ab\ncdefg")); // ["ab"]
 * console.log(lines.push("h\n")); // ["cdef … [2 more characters cut]"]
 * console.log(lines.push("tail"), lines.end()); // [] "tail"
 * ```
 */
export class LineSplitter {
  #max: number;
  #parts: string[] = [];
  #length = 0;
  #cut = 0;

  /** @param max The longest line kept whole, in UTF-16 code units. */
  constructor(max: number = MAX_LINE_CHARS) {
    this.#max = max;
  }

  /** Characters held of the line not yet ended (at most `max`). */
  get buffered(): number {
    return this.#length;
  }

  /**
   * Adds text.
   *
   * @param text The next piece.
   * @returns The lines it ends, without their newlines.
   */
  push(text: string): string[] {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const newline = text.indexOf("\n", start);
      const end = newline < 0 ? text.length : newline;
      this.#add(text, start, end);
      if (newline < 0) break;
      lines.push(this.#take());
      start = newline + 1;
    }
    return lines;
  }

  /**
   * Ends the text.
   *
   * @returns The last line, if the text did not end with a newline.
   */
  end(): string | undefined {
    return this.#length > 0 || this.#cut > 0 ? this.#take() : undefined;
  }

  #add(text: string, start: number, end: number): void {
    const n = end - start;
    if (n === 0) return;
    const room = this.#max - this.#length;
    if (n <= room) {
      this.#parts.push(
        start === 0 && end === text.length ? text : text.slice(start, end),
      );
      this.#length += n;
      return;
    }
    if (room > 0) this.#parts.push(text.slice(start, start + room));
    this.#length = this.#max;
    this.#cut += n - room;
  }

  #take(): string {
    let line = this.#parts.length === 1 ? this.#parts[0] : this.#parts.join("");
    let cut = this.#cut;
    this.#parts = [];
    this.#length = 0;
    this.#cut = 0;
    if (cut === 0) return line;
    if (isHighSurrogate(line.charCodeAt(line.length - 1))) {
      line = line.slice(0, -1);
      cut++;
    }
    return line + cutMarker(cut);
  }
}

/**
 * Characters that act on a terminal rather than print: the C0 controls but
 * tab and newline, DEL, the C1 controls, and the Unicode marks that reorder
 * text (which can make a line read as something else).
 */
const CONTROLS =
  // deno-lint-ignore no-control-regex
  /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Shows the control characters of untrusted text escaped (`ESC` as `\x1b`,
 * a carriage return as `\r`), so that printing it cannot move the cursor,
 * erase lines, set the terminal's title or colours, or make a line read as
 * another. Tabs and newlines are kept.
 *
 * @param text Text from a task, a worker or a remote error.
 * @returns The text, safe to print.
 *
 * @example
 * ```ts
 * import { escapeControls } from "./output.ts";
 *
 * console.log(escapeControls("\x1b]0;title\x07done\r")); // "\x1b]0;title\x07done\r", as text
 * ```
 */
export function escapeControls(text: string): string {
  return text.replace(CONTROLS, (c) => {
    switch (c) {
      case "\r":
        return "\\r";
      case "\b":
        return "\\b";
      case "\f":
        return "\\f";
      case "\v":
        return "\\v";
      case "\0":
        return "\\0";
    }
    const code = c.charCodeAt(0);
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}
