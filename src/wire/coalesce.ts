/**
 * Small pieces joined into one buffer before they are written, so that they
 * share a write (a system call, a wake-up of the reader); large ones written
 * as they are, never copied.
 *
 * @module
 */

/**
 * Joins each run of pieces smaller than `large` into one buffer; pieces of
 * `large` bytes or more stay as they are, in their place.
 *
 * @param pieces The pieces, in the order they are written.
 * @param large The size from which a piece goes alone.
 * @returns The buffers to write, in order.
 *
 * @example
 * ```ts
 * import { coalesce } from "./coalesce.ts";
 *
 * const out = coalesce([new Uint8Array(2), new Uint8Array(3), new Uint8Array(10)], 8);
 * console.log(out.map((b) => b.length)); // [5, 10]
 * ```
 */
export function coalesce(pieces: Uint8Array[], large: number): Uint8Array[] {
  if (pieces.length === 1) return pieces;
  const out: Uint8Array[] = [];
  let run: Uint8Array[] = [];
  let size = 0;
  const join = () => {
    if (run.length === 1) out.push(run[0]);
    else if (run.length > 1) {
      const joined = new Uint8Array(size);
      let at = 0;
      for (const piece of run) {
        joined.set(piece, at);
        at += piece.length;
      }
      out.push(joined);
    }
    run = [];
    size = 0;
  };
  for (const piece of pieces) {
    if (piece.length >= large) {
      join();
      out.push(piece);
    } else {
      run.push(piece);
      size += piece.length;
    }
  }
  join();
  return out;
}
