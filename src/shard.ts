/**
 * Splitting a data set between the nodes of a pool: {@linkcode shard} for one
 * array, {@linkcode shardAll} for several arrays whose elements belong
 * together (features and labels).
 *
 * Inside a task, the node's rank and the number of nodes are read from the
 * running worker, so every node can be given the whole data set and keep only
 * its part.
 *
 * @module
 */
import { placement } from "./instance.ts";

/** Every typed array type {@linkcode shard} accepts and gives back unchanged in type. */
export type TypedArray =
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float16Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array;

/**
 * What {@linkcode shard} can split: an array (readonly or not) or a typed
 * array.
 *
 * Strings are not accepted: whether a string splits into UTF-16 code units,
 * code points or lines is the caller's choice, so split it first
 * (`[...text]`, `text.split("\n")`) and shard the array.
 */
export type Shardable = readonly unknown[] | TypedArray;

/** Options of {@linkcode shard} and {@linkcode shardAll}. */
export interface ShardOptions {
  /**
   * The rank of the node whose part to return, from `0` to `totalNodes - 1`.
   *
   * @default {the running node's rank, or `0` outside a worker}
   */
  node?: number;
  /**
   * How many nodes share the data.
   *
   * @default {the running pool's node count, or `1` outside a worker}
   */
  totalNodes?: number;
  /**
   * Permute the elements before splitting them. The permutation depends only
   * on `seed` and the data's length, so every node computes the same one and
   * the parts stay disjoint.
   *
   * @default {false}
   */
  shuffle?: boolean;
  /**
   * The seed of the shuffle, a safe integer. Ignored without `shuffle`.
   *
   * @default {0}
   */
  seed?: number;
  /**
   * Give every node the same number of elements: node `k` gets the `k`-th of
   * `totalNodes` contiguous blocks of `floor(length / totalNodes)` elements,
   * and the remaining `length % totalNodes` elements go to no node. Without
   * it, the split is strided: node `k` gets elements `k`, `k + totalNodes`,
   * `k + 2 * totalNodes`, ..., so sizes differ by at most one.
   *
   * @default {false}
   */
  dropLast?: boolean;
}

interface Placement {
  node: number;
  totalNodes: number;
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "function") return "a function";
  if (value === null || typeof value !== "object") return String(value);
  const name = value.constructor?.name;
  return name ? `a ${name}` : "an object";
}

function isTypedArray(value: unknown): value is TypedArray {
  return ArrayBuffer.isView(value) && !(value instanceof DataView);
}

function checkData(action: string, what: string, data: unknown): void {
  if (Array.isArray(data) || isTypedArray(data)) return;
  const hint = typeof data === "string"
    ? " (split the string first, e.g. [...text])"
    : "";
  throw new TypeError(
    `Cannot ${action}: ${what} must be an array or a typed array, got ${
      describe(data)
    }${hint}`,
  );
}

interface ResolvedShardOptions extends Placement {
  shuffle: boolean;
  seed: number;
  dropLast: boolean;
}

function resolveOptions(
  action: string,
  options: ShardOptions,
): ResolvedShardOptions {
  const running = placement();
  const totalNodes = options.totalNodes ?? running.totalNodes;
  const node = options.node ?? running.node;
  if (!Number.isSafeInteger(totalNodes) || totalNodes < 1) {
    throw new RangeError(
      `Cannot ${action}: 'totalNodes' must be a positive integer, got ${
        describe(totalNodes)
      }`,
    );
  }
  if (!Number.isSafeInteger(node) || node < 0 || node >= totalNodes) {
    throw new RangeError(
      `Cannot ${action}: 'node' must be an integer from 0 to ${
        totalNodes - 1
      }, got ${describe(node)}`,
    );
  }
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed)) {
    throw new RangeError(
      `Cannot ${action}: 'seed' must be a safe integer, got ${describe(seed)}`,
    );
  }
  return {
    node,
    totalNodes,
    seed,
    shuffle: options.shuffle ?? false,
    dropLast: options.dropLast ?? false,
  };
}

/** Mulberry32: a small, fast, seeded generator of floats in `[0, 1)`. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Folds a safe integer seed into 32 bits, keeping its high bits' influence. */
function seed32(seed: number): number {
  const low = seed >>> 0;
  const high = Math.floor(seed / 4294967296) >>> 0;
  return (low ^ Math.imul(high, 0x9e3779b1)) >>> 0;
}

/**
 * The indices, into data of the given length, that the node keeps, in the
 * order it keeps them.
 */
function selectIndices(
  length: number,
  options: ResolvedShardOptions,
): Uint32Array | Float64Array {
  const { node, totalNodes, dropLast } = options;
  let order: Uint32Array | Float64Array | undefined;
  if (options.shuffle) {
    // Typed arrays may outgrow 32-bit indices; plain arrays cannot.
    order = length <= 0xffffffff
      ? new Uint32Array(length)
      : new Float64Array(length);
    for (let i = 0; i < length; i++) order[i] = i;
    const random = mulberry32(seed32(options.seed));
    for (let i = length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      const swap = order[i];
      order[i] = order[j];
      order[j] = swap;
    }
  }
  const at = (i: number) => order ? order[i] : i;
  if (dropLast) {
    const size = Math.floor(length / totalNodes);
    const start = node * size;
    const picked = new Float64Array(size);
    for (let i = 0; i < size; i++) picked[i] = at(start + i);
    return picked;
  }
  const size = node < length ? Math.ceil((length - node) / totalNodes) : 0;
  const picked = new Float64Array(size);
  for (let i = 0; i < size; i++) picked[i] = at(node + i * totalNodes);
  return picked;
}

function pick<T extends Shardable>(
  data: T,
  indices: ArrayLike<number>,
): T {
  if (isTypedArray(data)) {
    const Constructor = data.constructor as new (length: number) => TypedArray;
    const out = new Constructor(indices.length);
    // Typed arrays of one kind hold values of one kind (number or bigint).
    const source = data as unknown as ArrayLike<unknown>;
    const target = out as unknown as { [index: number]: unknown };
    for (let i = 0; i < indices.length; i++) target[i] = source[indices[i]];
    return out as T;
  }
  const source = data as readonly unknown[];
  const out = new Array<unknown>(indices.length);
  for (let i = 0; i < indices.length; i++) out[i] = source[indices[i]];
  return out as unknown as T;
}

/**
 * The part of `data` that one node of a pool should work on.
 *
 * By default the split is strided: of `n` nodes, node `k` keeps elements
 * `k`, `k + n`, `k + 2n`, ..., in that order, so every element goes to exactly
 * one node and sizes differ by at most one. With `dropLast`, node `k` keeps
 * the `k`-th of `n` contiguous blocks of `floor(length / n)` elements and the
 * remainder goes to no node. With `shuffle`, the elements are first permuted
 * by a seeded generator, identically on every node.
 *
 * Inside a task, `node` and `totalNodes` default to the running node's; on
 * the client (outside any worker) they default to node 0 of 1, which keeps
 * everything. To split several arrays with aligned indices, use
 * {@linkcode shardAll}.
 *
 * @typeParam T The type of the data, which is also the type of the result.
 * @param data An array or a typed array. It is not modified.
 * @param options The node, the node count, shuffling and dropping the remainder.
 * @returns A new array of the node's elements; a typed array comes back as a
 *   typed array of the same type (a `Float32Array` as a `Float32Array`).
 * @throws {TypeError} If `data` is not an array or a typed array (a string
 *   included).
 * @throws {RangeError} If `totalNodes` is not a positive integer, `node` is not
 *   an integer in `[0, totalNodes)`, or `seed` is not a safe integer.
 *
 * @example Strided, then in equal blocks
 * ```ts
 * import { shard } from "./shard.ts";
 *
 * const data = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
 * console.log(shard(data, { node: 1, totalNodes: 3 })); // [1, 4, 7]
 * console.log(shard(data, { node: 1, totalNodes: 3, dropLast: true })); // [3, 4, 5]
 * console.log(shard(new Float32Array([1, 2, 3, 4]), { node: 0, totalNodes: 2 })); // Float32Array [1, 3]
 * ```
 */
export function shard<T extends Shardable>(
  data: T,
  options: ShardOptions = {},
): T {
  const action = "shard";
  checkData(action, "'data'", data);
  const resolved = resolveOptions(action, options);
  return pick(data, selectIndices(data.length, resolved));
}

/**
 * The parts of several arrays that one node should work on, with aligned
 * indices: element `i` of every array goes to the same node, in the same
 * position, so features and labels stay paired.
 *
 * Each array is split as {@linkcode shard} splits one (strided, or equal blocks
 * with `dropLast`, after the same seeded shuffle), and keeps its type.
 *
 * @typeParam T The tuple of the arrays' types, which is also the result's.
 * @param arrays The arrays, all of the same length. None is modified.
 * @param options The node, the node count, shuffling and dropping the remainder.
 * @returns A new tuple with each array's part, in the order given.
 * @throws {TypeError} If `arrays` is not an array, or one of its elements is
 *   not an array or a typed array.
 * @throws {RangeError} If the arrays differ in length, or an option is out of
 *   range as for {@linkcode shard}.
 *
 * @example Features and labels, shuffled the same way
 * ```ts
 * import { shardAll } from "./shard.ts";
 *
 * const features = [[0, 0], [0, 1], [1, 0], [1, 1]];
 * const labels = new Uint8Array([0, 1, 1, 0]);
 * const [x, y] = shardAll([features, labels], { node: 0, totalNodes: 2, shuffle: true, seed: 42 });
 * console.log(x.length, y.length); // 2 2
 * console.log(y instanceof Uint8Array); // true
 * ```
 */
export function shardAll<const T extends readonly Shardable[]>(
  arrays: T,
  options: ShardOptions = {},
): { -readonly [K in keyof T]: T[K] } {
  const action = "shard arrays";
  if (!Array.isArray(arrays)) {
    throw new TypeError(
      `Cannot ${action}: 'arrays' must be an array of arrays, got ${
        describe(arrays)
      }`,
    );
  }
  arrays.forEach((data, i) => checkData(action, `'arrays[${i}]'`, data));
  const resolved = resolveOptions(action, options);
  const length = arrays.length === 0 ? 0 : arrays[0].length;
  arrays.forEach((data, i) => {
    if (data.length !== length) {
      throw new RangeError(
        `Cannot ${action}: every array must have the same length, got ${length} for 'arrays[0]' and ${data.length} for 'arrays[${i}]'`,
      );
    }
  });
  const indices = selectIndices(length, resolved);
  return arrays.map((data) => pick(data, indices)) as {
    -readonly [K in keyof T]: T[K];
  };
}
