/**
 * Batches of collection calls and replies on the wire: the calls (or
 * replies) made in one turn of the event loop travel in one message, whose
 * payload holds each one's encoded bytes after its length (4 bytes, big
 * endian). Batching is what lets a node keep many calls in flight at the
 * cost of few messages.
 *
 * @module
 */

/**
 * Packs byte arrays into one.
 *
 * @example
 * ```ts
 * import { pack, unpack } from "./_batch.ts";
 *
 * const parts = unpack(pack([new Uint8Array([1]), new Uint8Array([2, 3])]));
 * console.log(parts.map((p) => [...p])); // [ [ 1 ], [ 2, 3 ] ]
 * ```
 */
export function pack(parts: Uint8Array[]): Uint8Array {
  let size = 0;
  for (const part of parts) size += 4 + part.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const part of parts) {
    view.setUint32(at, part.length);
    out.set(part, at + 4);
    at += 4 + part.length;
  }
  return out;
}

/**
 * Unpacks what {@linkcode pack} made: views into `bytes`, not copies.
 *
 * @throws {RangeError} When the bytes are not a pack.
 *
 * @example
 * ```ts
 * import { unpack } from "./_batch.ts";
 *
 * console.log(unpack(new Uint8Array([0, 0, 0, 1, 7]))); // [ Uint8Array(1) [ 7 ] ]
 * ```
 */
export function unpack(bytes: Uint8Array): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parts: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (at + 4 > bytes.length) throw new RangeError("A truncated batch");
    const length = view.getUint32(at);
    if (at + 4 + length > bytes.length) {
      throw new RangeError("A truncated batch");
    }
    parts.push(bytes.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return parts;
}

/**
 * Collects items over one turn of the event loop and hands them over
 * together.
 *
 * @example
 * ```ts
 * import { Batcher } from "./_batch.ts";
 *
 * const batches: number[][] = [];
 * const batcher = new Batcher<number>((items) => void batches.push(items));
 * batcher.push(1);
 * batcher.push(2);
 * await Promise.resolve();
 * console.log(batches); // [ [ 1, 2 ] ]
 * ```
 */
export class Batcher<T> {
  #items: T[] = [];
  #flush: (items: T[]) => void;

  /** @param flush Gets the items of one turn. */
  constructor(flush: (items: T[]) => void) {
    this.#flush = flush;
  }

  /** Adds an item; the batch goes at the end of the current microtasks. */
  push(item: T): void {
    this.#items.push(item);
    if (this.#items.length > 1) return;
    queueMicrotask(() => {
      const items = this.#items;
      this.#items = [];
      this.#flush(items);
    });
  }
}
