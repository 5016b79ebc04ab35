/**
 * The codec for the values that travel between the client and its workers:
 * task arguments, results and thrown errors.
 *
 * Values are MessagePack, written and read by `@msgpack/msgpack`, with
 * extension types for what MessagePack has no type for. These kinds of value
 * come back exactly as they were sent:
 *
 * - `null`, `undefined` (kept apart from `null`, also inside arrays and
 *   objects), booleans, strings, and numbers including `NaN`, `-0` and
 *   `±Infinity`;
 * - bigints of any size;
 * - `Date`, including an invalid date;
 * - arrays, plain objects, `Map` (keys of any kind, in insertion order) and
 *   `Set`;
 * - `ArrayBuffer`, `DataView` and every typed array (`Float16Array` where the
 *   runtime has it), which keep their type and contents;
 * - errors, with name, message, stack, `cause` and own enumerable properties
 *   such as `code` (see {@linkcode toWireError}).
 *
 * Some things change on the way:
 *
 * - An object with a `null` prototype comes back as a plain object.
 * - Subclasses of `Array`, `Map`, `Set`, `Date` and the typed arrays come back
 *   as the base class. An error comes back as the built-in class of its name
 *   (`TypeError`, `RangeError`, `SyntaxError`, `ReferenceError`, `EvalError`,
 *   `URIError`, `AggregateError` with its `errors`), or else as an `Error`
 *   whose `name` is the sender's.
 * - Holes in arrays come back as `undefined`.
 * - Properties keyed by symbols are left out, as `JSON.stringify` does.
 * - Strings should be well-formed UTF-16: a lone surrogate may come back as
 *   U+FFFD.
 *
 * Anything else — functions, symbols, instances of other classes, `Promise`,
 * `WeakMap`, `WeakSet`, circular references — is refused by
 * {@linkcode encode} with a `SerializationError` that names the offending
 * part, before anything is sent. So is nesting deeper than 100 levels, though
 * not always: 100 levels always get through, and a deeper value is refused
 * when the encoder counts past the limit, which it does for nested arrays and
 * objects but not exactly across `Map`s, `Set`s and errors.
 *
 * ## Paths
 *
 * The path in a `SerializationError` is JavaScript that would reach the part
 * from the value, starting from the name given to {@linkcode encode}:
 *
 * | part                                | path                            |
 * | ----------------------------------- | ------------------------------- |
 * | array element                       | `args[0]`                       |
 * | property with an identifier key     | `args[0].onDone`                |
 * | property with another key           | `value["a b"]`                  |
 * | `Map` value under a primitive key   | `value.get("key")`, `.get(1n)`  |
 * | `Map` value under an object key     | `[...value.values()][2]`        |
 * | `Map` key                           | `[...value.keys()][2]`          |
 * | `Set` member                        | `[...value][2]`                 |
 *
 * @example Round trip
 * ```ts
 * import { decode, encode } from "./codec.ts";
 *
 * const value = { when: new Date(0), ids: new Map([[1n, [undefined, -0]]]) };
 * const copy = decode(encode(value)) as typeof value;
 * console.log(copy.ids.get(1n)); // [ undefined, -0 ]
 * ```
 *
 * @module
 */

// The package's ES module build: its `main` is CommonJS, which Deno loads
// through its Node module loader, some 30 ms more at each process's start
// (a sandbox's, a worker's).
// @ts-types="npm:@msgpack/msgpack@3.1.3"
import {
  Decoder,
  Encoder,
  ExtData,
  type ExtensionCodecType,
} from "npm:@msgpack/msgpack@3.1.3/dist.esm/index.mjs";
import { ProtocolError, SerializationError } from "../errors.ts";
import {
  fromWireError,
  makeSendable,
  readError,
  setOwn,
  text,
  type WireError,
} from "./wire_error.ts";

/**
 * How deeply values may nest. The MessagePack encoder counts the levels of
 * arrays and objects it writes itself; each extension payload (a `Map`, a
 * `Set`, an error, an array or object holding `undefined` or `-0`) is written
 * by a nested encoder that counts afresh, and the nested encoders are counted
 * too. Either count past the limit refuses the value, so a value within the
 * limit always gets through and one beyond it may.
 */
const MAX_DEPTH = 100;

/** Encoders and decoders whose buffers grew past this are dropped after use, so that one big message does not hold its memory for ever. */
const RELEASE_BYTES = 1 << 20;

/**
 * The MessagePack extension types (0 to 127 are the application's). A
 * payload that holds values is itself a MessagePack value, encoded by a
 * nested encoder; the comments give its shape. The numbers are on the wire
 * (from 0, in this order): add a type at the end, and never reorder them.
 */
enum Ext {
  /** `undefined`; empty payload. */
  Undefined,
  /** `-0`; empty payload. */
  NegativeZero,
  /** A bigint: 8 bytes of big-endian int64, or else its hexadecimal text (with `-` when negative). */
  Bigint,
  /** A `Date`: the big-endian float64 of `getTime()`, `NaN` for an invalid date. */
  Date,
  /** An array that holds `undefined` or `-0` (the encoder writes those as `nil` and `0`): the array, with placeholders. */
  Array,
  /** A plain object that holds `undefined` or `-0`, or has a `__proto__` key: `[key, value, key, value, …]`. */
  Object,
  /** A `Map`: `[key, value, key, value, …]`. */
  Map,
  /** A `Set`: `[member, …]`. */
  Set,
  /** An error: its {@linkcode WireError}. */
  Error,
  /** An `ArrayBuffer`: its bytes. */
  ArrayBuffer,
  /** A `DataView`: its bytes. */
  DataView,
  /** A typed array other than `Uint8Array` (which is MessagePack `bin`): its bytes, little-endian; the type is `Ext.TypedArray` plus the index in `TYPED_ARRAY_NAMES`. */
  TypedArray = 16,
}

const TYPED_ARRAY_NAMES = [
  "Int8Array",
  "Uint8ClampedArray",
  "Int16Array",
  "Uint16Array",
  "Int32Array",
  "Uint32Array",
  "Float32Array",
  "Float64Array",
  "BigInt64Array",
  "BigUint64Array",
  "Float16Array",
] as const;

interface TypedArrayKind {
  readonly type: number;
  readonly width: number;
  readonly create: new (
    buffer: ArrayBufferLike,
    byteOffset?: number,
    length?: number,
  ) => ArrayBufferView;
}

/** The typed arrays this runtime has, by their `Symbol.toStringTag` and by extension type. */
const typedArrayByName = new Map<string, TypedArrayKind>();
const typedArrayByType = new Map<number, TypedArrayKind>();
for (const [index, name] of TYPED_ARRAY_NAMES.entries()) {
  const create = (globalThis as Record<string, unknown>)[name] as
    | (TypedArrayKind["create"] & { BYTES_PER_ELEMENT: number })
    | undefined;
  if (typeof create !== "function") continue;
  const kind = {
    type: Ext.TypedArray + index,
    width: create.BYTES_PER_ELEMENT,
    create,
  };
  typedArrayByName.set(name, kind);
  typedArrayByType.set(kind.type, kind);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Stands in for a value that the MessagePack encoder writes without asking
 * the extension codec, so that it can be written as an extension instead.
 */
class Placeholder {
  constructor(readonly ext: ExtData) {}
}
const UNDEFINED = new Placeholder(
  new ExtData(Ext.Undefined, new Uint8Array(0)),
);
const NEGATIVE_ZERO = new Placeholder(
  new ExtData(Ext.NegativeZero, new Uint8Array(0)),
);

/** Thrown inside the encoder for a value that cannot be sent; {@linkcode encode} then looks for the path. */
const UNSENDABLE = new TypeError("The value cannot be sent");

const NESTED_TOO_DEEPLY =
  `is nested too deeply (the limit is ${MAX_DEPTH} levels)`;
const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/**
 * Encodes a value to send it to a worker or back to the client.
 *
 * Nothing is walked ahead: the value is encoded straight away, and only when
 * that fails is it walked again to find the part to blame.
 *
 * @param value The value: see the module documentation for what can be sent.
 * @param path What to call the value in an error message, e.g. `"args"`.
 * @returns The MessagePack bytes, in a buffer of their own.
 * @throws {SerializationError} When the value holds something that cannot be
 * sent; its `path` names that part, e.g. `args[0].onDone`.
 *
 * @example Encoding and failing with a path
 * ```ts
 * import { encode } from "./codec.ts";
 *
 * console.log(encode([1, "a", { x: 2 }]).byteLength); // 8
 * try {
 *   encode([{ onDone() {} }], "args");
 * } catch (error) {
 *   console.log((error as Error).message); // "Cannot send args[0].onDone: it is a function"
 * }
 * ```
 */
export function encode(value: unknown, path = "value"): Uint8Array {
  try {
    return encodeLarge(value) ?? encodeNested(placeheld(value)).slice();
  } catch (error) {
    throw explain(value, path, error);
  }
}

/**
 * Decodes bytes made by {@linkcode encode}.
 *
 * A `Uint8Array` in the value is not copied: it is a view into `bytes`, and so
 * are the other typed arrays and `DataView`s whose position in `bytes` suits
 * their element size (others are copied). Do not reuse `bytes` while the
 * value is in use. An `ArrayBuffer` is always copied.
 *
 * @param bytes The encoded value.
 * @returns The value.
 * @throws {ProtocolError} When the bytes are not a value made by
 * {@linkcode encode}.
 *
 * @example Decoding without copying
 * ```ts
 * import { decode, encode } from "./codec.ts";
 *
 * const bytes = encode({ data: new Uint8Array([1, 2, 3]) });
 * const { data } = decode(bytes) as { data: Uint8Array };
 * console.log(data.buffer === bytes.buffer); // true
 * ```
 */
export function decode(bytes: Uint8Array): unknown {
  try {
    return decodeNested(bytes);
  } catch (error) {
    throw new ProtocolError(
      `Cannot decode a value of ${bytes.byteLength} bytes: ${text(error)}`,
      { cause: error },
    );
  }
}

/**
 * Turns a thrown value into a {@linkcode WireError} that {@linkcode encode}
 * accepts. Never throws.
 *
 * - For an error: its `name`, `message`, `stack`, `cause` (when it has one)
 *   and own enumerable properties as `props` (with `errors` for an
 *   `AggregateError`). A cause or property that cannot be sent is replaced by
 *   its text, `String(value)`; so is a cause that leads back to the error.
 * - For any other thrown value (`throw "x"`, `throw { code: 1 }`): name
 *   `"Error"`, the value's text as message (`"x"`, `"[object Object]"`), and
 *   the value itself (or its text, when it cannot be sent) as `props.thrown`.
 *
 * {@linkcode encode} does the same for the errors it meets inside a value, so
 * an error never makes encoding fail.
 *
 * @param error What was thrown.
 * @returns The error as data.
 *
 * @example Reporting an error with an unsendable cause
 * ```ts
 * import { encode, toWireError } from "./codec.ts";
 *
 * const error = new RangeError("too big", { cause: Symbol("why") });
 * const wire = toWireError(error);
 * console.log(wire.name, wire.cause); // "RangeError" "Symbol(why)"
 * encode(wire, "error"); // does not throw
 * ```
 */
export function toWireError(error: unknown): WireError {
  if (!(error instanceof Error)) {
    return {
      name: "Error",
      message: text(error),
      props: { thrown: sendableOrText(error, 3) },
    };
  }
  const wire = readError(error);
  errorsInProgress.push(error);
  try {
    makeSendable(wire, sendableOrText);
  } finally {
    errorsInProgress.pop();
  }
  return wire;
}

// --- Encoding -------------------------------------------------------------

/**
 * One encoder per nesting level: an extension payload is encoded by the
 * encoder one level down while the one above is still busy (the library's
 * own answer to re-entry is a fresh encoder each time).
 */
const encoders: (Encoder | undefined)[] = [];
let encodeLevel = 0;
/** The array that {@linkcode encodeTrusted} is encoding, which needs no placeholders. */
let trusted: unknown = null;
/** The errors being encoded, to cut cycles through `cause`. */
const errorsInProgress: Error[] = [];

/**
 * Encodes with the encoder of the current level and returns a view of its
 * buffer, valid until that encoder runs again.
 */
function encodeNested(value: unknown, force = false): Uint8Array {
  const level = encodeLevel;
  if (level > MAX_DEPTH && !force) throw new RangeError(NESTED_TOO_DEEPLY);
  const encoder = encoders[level] ??= new Encoder({
    extensionCodec: codec,
    maxDepth: MAX_DEPTH,
  });
  encodeLevel++;
  try {
    const bytes = encoder.encodeSharedRef(value);
    if (bytes.byteLength > RELEASE_BYTES) encoders[level] = undefined;
    return bytes;
  } finally {
    encodeLevel--;
  }
}

/** A `Uint8Array` at least this large is copied once, straight into the encoded bytes. */
const LARGE_BYTES = 1 << 20;

/**
 * The bytes of a large `Uint8Array`, or of an array (a task's arguments)
 * holding some, built as MessagePack's encoder would build them (`array`
 * and `bin` headers, the other elements encoded each on its own) but with
 * each large array copied once into a buffer of the right size. The
 * encoder would grow its buffer to twice the message (zeroing it), copy
 * the bytes in, and then copy them out. `undefined` when the value is not
 * of that shape: it then goes through the encoder.
 */
function encodeLarge(value: unknown): Uint8Array | undefined {
  const large = (v: unknown): v is Uint8Array =>
    v instanceof Uint8Array && v.byteLength >= LARGE_BYTES &&
    v.byteLength < 2 ** 32;
  let pieces: Uint8Array[];
  if (large(value)) pieces = [binHead(value.byteLength), value];
  else if (
    Array.isArray(value) && value.length < 2 ** 32 && value.some(large) &&
    !holdsPlaceheld(value)
  ) {
    pieces = [arrayHead(value.length)];
    for (const item of value) {
      if (large(item)) pieces.push(binHead(item.byteLength), item);
      // Copied: the encoder's buffer is reused by the next element.
      else pieces.push(encodeNested(item).slice());
    }
  } else return undefined;
  let size = 0;
  for (const piece of pieces) size += piece.byteLength;
  const out = new Uint8Array(size);
  let at = 0;
  for (const piece of pieces) {
    out.set(piece, at);
    at += piece.byteLength;
  }
  return out;
}

/** MessagePack's `bin 32` header. */
function binHead(length: number): Uint8Array {
  const head = new Uint8Array(5);
  head[0] = 0xc6;
  new DataView(head.buffer).setUint32(1, length);
  return head;
}

/** MessagePack's header of an array of `length` items, in its shortest form. */
function arrayHead(length: number): Uint8Array {
  if (length < 16) return Uint8Array.of(0x90 | length);
  const wide = length >= 0x10000;
  const head = new Uint8Array(wide ? 5 : 3);
  const view = new DataView(head.buffer);
  head[0] = wide ? 0xdd : 0xdc;
  if (wide) view.setUint32(1, length);
  else view.setUint16(1, length);
  return head;
}

/** Encodes an array built here, whose values already are placeheld. */
function encodeTrusted(array: unknown[]): Uint8Array {
  trusted = array;
  try {
    return encodeNested(array);
  } finally {
    trusted = null;
  }
}

function placeheld(value: unknown): unknown {
  if (value === undefined) return UNDEFINED;
  if (value === 0 && 1 / value < 0) return NEGATIVE_ZERO;
  return value;
}

function holdsPlaceheld(array: unknown[]): boolean {
  for (let i = 0; i < array.length; i++) {
    const value = array[i];
    if (value === undefined || (value === 0 && 1 / value < 0)) return true;
  }
  return false;
}

function needsObjectExt(object: object): boolean {
  for (const key in object) {
    const value = (object as Record<string, unknown>)[key];
    if (
      value === undefined || (value === 0 && 1 / value < 0) ||
      key === "__proto__"
    ) return true;
  }
  return false;
}

function objectEntries(object: object): unknown[] {
  const flat: unknown[] = [];
  for (const key of Object.keys(object)) {
    flat.push(key, placeheld((object as Record<string, unknown>)[key]));
  }
  return flat;
}

function bigintBytes(value: bigint): Uint8Array {
  if (value >= INT64_MIN && value <= INT64_MAX) {
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigInt64(0, value);
    return bytes;
  }
  return textEncoder.encode(value.toString(16));
}

function dateBytes(date: Date): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setFloat64(0, date.getTime());
  return bytes;
}

function viewExt(view: ArrayBufferView): ExtData {
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  const tag = (view as unknown as Record<symbol, unknown>)[Symbol.toStringTag];
  const kind = typedArrayByName.get(tag as string);
  if (kind === undefined) {
    if (view instanceof DataView) return new ExtData(Ext.DataView, bytes);
    throw UNSENDABLE;
  }
  return new ExtData(
    kind.type,
    LITTLE_ENDIAN || kind.width === 1 ? bytes : byteSwapped(bytes, kind.width),
  );
}

/** Reverses the bytes of each element: for big-endian hosts, as the wire is little-endian. */
function byteSwapped(bytes: Uint8Array, width: number): Uint8Array {
  const swapped = new Uint8Array(bytes.byteLength);
  for (let i = 0; i < bytes.byteLength; i += width) {
    for (let j = 0; j < width; j++) swapped[i + j] = bytes[i + width - 1 - j];
  }
  return swapped;
}

function errorBytes(error: Error): Uint8Array {
  // A cause that leads back here: the enclosing error falls back to text.
  if (errorsInProgress.includes(error)) throw UNSENDABLE;
  errorsInProgress.push(error);
  try {
    const wire = readError(error);
    try {
      return encodeNested(wire);
    } catch {
      // Some part of the cause or the properties cannot be sent.
    }
    makeSendable(wire, sendableOrText);
    try {
      return encodeNested(wire);
    } catch {
      // Too deep together even though each part can be sent alone.
    }
    const bare: WireError = { name: wire.name, message: wire.message };
    if (wire.stack !== undefined) bare.stack = wire.stack;
    return encodeNested(bare, true);
  } finally {
    errorsInProgress.pop();
  }
}

/**
 * The value if it can be sent at `depth` (1 for the top), else its text.
 * Errors can always be sent, unless they are being encoded already.
 */
function sendableOrText(value: unknown, depth: number): unknown {
  if (value instanceof Error && !errorsInProgress.includes(value)) {
    return value;
  }
  let probe = value;
  for (let i = 1; i < depth; i++) probe = [probe];
  try {
    encodeNested(probe);
    return value;
  } catch {
    return text(value);
  }
}

// --- Decoding -------------------------------------------------------------

/** One decoder per nesting level, as for the encoders. */
const decoders: (Decoder | undefined)[] = [];
let decodeLevel = 0;

function decodeNested(bytes: Uint8Array): unknown {
  const level = decodeLevel;
  if (level > MAX_DEPTH + 1) {
    throw new RangeError("The value is nested too deeply");
  }
  const decoder = decoders[level] ??= new Decoder({ extensionCodec: codec });
  decodeLevel++;
  try {
    return decoder.decode(bytes);
  } finally {
    decodeLevel--;
    // The decoder keeps a reference to its last input.
    if (bytes.byteLength > RELEASE_BYTES) decoders[level] = undefined;
  }
}

function decodeArray(bytes: Uint8Array): unknown[] {
  const value = decodeNested(bytes);
  if (!Array.isArray(value)) {
    throw new TypeError("An extension payload is not an array");
  }
  return value;
}

function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function bigintFrom(bytes: Uint8Array): bigint {
  if (bytes.byteLength === 8) return dataView(bytes).getBigInt64(0);
  const hex = textDecoder.decode(bytes);
  return hex.startsWith("-")
    ? -BigInt(`0x${hex.slice(1)}`)
    : BigInt(`0x${hex}`);
}

function objectFrom(flat: unknown[]): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  for (let i = 0; i < flat.length; i += 2) {
    const key = String(flat[i]);
    if (key === "__proto__") setOwn(object, key, flat[i + 1]);
    else object[key] = flat[i + 1];
  }
  return object;
}

function mapFrom(flat: unknown[]): Map<unknown, unknown> {
  const map = new Map();
  for (let i = 0; i < flat.length; i += 2) map.set(flat[i], flat[i + 1]);
  return map;
}

function typedArrayFrom(
  bytes: Uint8Array,
  kind: TypedArrayKind,
): ArrayBufferView {
  const { create, width } = kind;
  if (bytes.byteLength % width !== 0) {
    throw new RangeError(
      `A typed array of ${bytes.byteLength} bytes is not made of ${width}-byte elements`,
    );
  }
  if (!LITTLE_ENDIAN && width > 1) {
    return new create(byteSwapped(bytes, width).buffer);
  }
  if (bytes.byteOffset % width === 0) {
    return new create(bytes.buffer, bytes.byteOffset, bytes.byteLength / width);
  }
  return new create(bytes.slice().buffer);
}

// --- The extension codec ----------------------------------------------------

const codec: ExtensionCodecType<undefined> = {
  // Called by the encoder for every value that is not null, undefined, a
  // boolean, a number or a string; null means "encode it yourself".
  tryToEncode(object: unknown): ExtData | null {
    if (object === trusted) {
      trusted = null;
      return null;
    }
    if (Array.isArray(object)) {
      return holdsPlaceheld(object)
        ? new ExtData(Ext.Array, encodeTrusted(Array.from(object, placeheld)))
        : null;
    }
    if (typeof object !== "object") {
      if (typeof object === "bigint") {
        return new ExtData(Ext.Bigint, bigintBytes(object));
      }
      throw UNSENDABLE; // a function or a symbol
    }
    const prototype = Object.getPrototypeOf(object);
    if (prototype === Object.prototype || prototype === null) {
      return needsObjectExt(object!)
        ? new ExtData(Ext.Object, encodeTrusted(objectEntries(object!)))
        : null;
    }
    if (object instanceof Placeholder) return object.ext;
    if (ArrayBuffer.isView(object)) {
      return object instanceof Uint8Array ? null : viewExt(object);
    }
    if (object instanceof Date) return new ExtData(Ext.Date, dateBytes(object));
    if (object instanceof Map) {
      const flat: unknown[] = [];
      for (const [key, value] of object) {
        flat.push(placeheld(key), placeheld(value));
      }
      return new ExtData(Ext.Map, encodeTrusted(flat));
    }
    if (object instanceof Set) {
      return new ExtData(Ext.Set, encodeTrusted(Array.from(object, placeheld)));
    }
    if (object instanceof Error) {
      return new ExtData(Ext.Error, errorBytes(object));
    }
    if (object instanceof ArrayBuffer) {
      return new ExtData(Ext.ArrayBuffer, new Uint8Array(object));
    }
    throw UNSENDABLE;
  },

  decode(data: Uint8Array, type: number): unknown {
    switch (type) {
      case Ext.Undefined:
        return undefined;
      case Ext.NegativeZero:
        return -0;
      case Ext.Bigint:
        return bigintFrom(data);
      case Ext.Date:
        return new Date(dataView(data).getFloat64(0));
      case Ext.Array:
        return decodeArray(data);
      case Ext.Object:
        return objectFrom(decodeArray(data));
      case Ext.Map:
        return mapFrom(decodeArray(data));
      case Ext.Set:
        return new Set(decodeArray(data));
      case Ext.Error: {
        const wire = decodeNested(data);
        if (wire === null || typeof wire !== "object") {
          throw new TypeError("An error payload is not an object");
        }
        return fromWireError(wire as WireError);
      }
      case Ext.ArrayBuffer:
        return data.slice().buffer;
      case Ext.DataView:
        return dataView(data);
    }
    const kind = typedArrayByType.get(type);
    if (kind === undefined) {
      throw new TypeError(`Unknown MessagePack extension type ${type}`);
    }
    return typedArrayFrom(data, kind);
  },
};

// --- Finding what cannot be sent -------------------------------------------

/** The error for a value that failed to encode: walks it to find the part to blame. */
function explain(
  value: unknown,
  path: string,
  error: unknown,
): SerializationError {
  const found = findProblem(value, path, []);
  if (found) return new SerializationError(found.path, found.problem);
  return new SerializationError(path, `could not be encoded: ${text(error)}`, {
    cause: error,
  });
}

interface Problem {
  path: string;
  problem: string;
}

/** The first part of `value` that cannot be sent, in the order the encoder meets them. */
function findProblem(
  value: unknown,
  path: string,
  ancestors: object[],
): Problem | undefined {
  const tooDeep = ancestors.length >= MAX_DEPTH;
  if (typeof value === "function") return { path, problem: "is a function" };
  if (typeof value === "symbol") return { path, problem: "is a symbol" };
  if (value === null || typeof value !== "object") {
    return tooDeep ? { path, problem: NESTED_TOO_DEEPLY } : undefined;
  }
  if (ancestors.includes(value)) {
    return { path, problem: "is a circular reference" };
  }
  if (tooDeep) return { path, problem: NESTED_TOO_DEEPLY };
  // An error is always sent, with text for what cannot be.
  if (value instanceof Error) return undefined;

  ancestors.push(value);
  try {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const found = findInChild(value, i, `${path}[${i}]`, ancestors);
        if (found) return found;
      }
      return undefined;
    }
    const prototype = Object.getPrototypeOf(value);
    if (prototype === Object.prototype || prototype === null) {
      for (const key of Object.keys(value)) {
        const found = findInChild(
          value,
          key,
          propertyPath(path, key),
          ancestors,
        );
        if (found) return found;
      }
      return undefined;
    }
    if (value instanceof Map) {
      let i = 0;
      for (const [key, item] of value) {
        const found =
          findProblem(key, `[...${path}.keys()][${i}]`, ancestors) ??
            findProblem(item, mapValuePath(path, key, i), ancestors);
        if (found) return found;
        i++;
      }
      return undefined;
    }
    if (value instanceof Set) {
      let i = 0;
      for (const item of value) {
        const found = findProblem(item, `[...${path}][${i}]`, ancestors);
        if (found) return found;
        i++;
      }
      return undefined;
    }
    if (
      value instanceof Date || value instanceof ArrayBuffer ||
      ArrayBuffer.isView(value)
    ) return undefined;
    return { path, problem: unsendableObject(value) };
  } finally {
    ancestors.pop();
  }
}

function findInChild(
  parent: object,
  key: string | number,
  path: string,
  ancestors: object[],
): Problem | undefined {
  let child: unknown;
  try {
    child = (parent as Record<string | number, unknown>)[key];
  } catch (error) {
    return { path, problem: `could not be read: ${text(error)}` };
  }
  return findProblem(child, path, ancestors);
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

function propertyPath(path: string, key: string): string {
  return IDENTIFIER.test(key)
    ? `${path}.${key}`
    : `${path}[${JSON.stringify(key)}]`;
}

function mapValuePath(path: string, key: unknown, index: number): string {
  switch (typeof key) {
    case "string":
      return `${path}.get(${JSON.stringify(key)})`;
    case "bigint":
      return `${path}.get(${key}n)`;
    case "number": // A Map holds -0 as 0, as this prints it.
    case "boolean":
    case "undefined":
      return `${path}.get(${key})`;
  }
  if (key === null) return `${path}.get(null)`;
  return `[...${path}.values()][${index}]`;
}

function unsendableObject(value: object): string {
  if (value instanceof Promise) {
    return "is a Promise; await it and send its result";
  }
  if (value instanceof WeakMap) {
    return "is a WeakMap, whose entries cannot be listed";
  }
  if (value instanceof WeakSet) {
    return "is a WeakSet, whose members cannot be listed";
  }
  if (value instanceof WeakRef) return "is a WeakRef; send its target instead";
  let name = "an anonymous class";
  try {
    const constructor = (value as { constructor?: unknown }).constructor;
    if (typeof constructor === "function" && constructor.name) {
      name = constructor.name;
    }
  } catch {
    // A proxy or a getter that throws: keep the generic name.
  }
  return `is an instance of ${name}; only plain objects, arrays, Map, Set, ` +
    "Date, Error, typed arrays, bigint and primitives can be sent";
}
