import assert from "node:assert/strict";
import fc from "fast-check";
import { decode as rawDecode, ExtData } from "@msgpack/msgpack";
import { decode, encode, toWireError } from "../src/wire/codec.ts";
import { fromWireError } from "../src/wire/wire_error.ts";
import { ProtocolError, SerializationError } from "../src/errors.ts";

// --- A structural equality that knows what the codec keeps -----------------

function show(value: unknown): string {
  try {
    return Deno.inspect(value, { depth: 2 });
  } catch {
    return String(value);
  }
}

function className(value: object): string {
  return Object.getPrototypeOf(value)?.constructor?.name ??
    "null-prototype object";
}

/**
 * Where `actual` (a decoded value) differs from `expected` (the value sent),
 * or undefined. Numbers compare with `Object.is` (NaN equals NaN, -0 is not
 * 0), maps and sets in order, objects with a null prototype come back plain.
 */
function difference(
  actual: unknown,
  expected: unknown,
  path = "value",
): string | undefined {
  if (typeof expected !== "object" || expected === null) {
    return Object.is(actual, expected)
      ? undefined
      : `${path}: got ${show(actual)}, sent ${show(expected)}`;
  }
  if (typeof actual !== "object" || actual === null) {
    return `${path}: got ${show(actual)}, sent ${show(expected)}`;
  }
  const prototype = Object.getPrototypeOf(expected) ?? Object.prototype;
  if (Object.getPrototypeOf(actual) !== prototype) {
    return `${path}: got a ${className(actual)}, sent a ${className(expected)}`;
  }
  if (Array.isArray(expected)) {
    return differenceInLists(actual as unknown[], expected, path);
  }
  if (expected instanceof Map) {
    const got = [...(actual as Map<unknown, unknown>)].flat();
    return differenceInLists(got, [...expected].flat(), `[...${path}]`);
  }
  if (expected instanceof Set) {
    return differenceInLists(
      [...(actual as Set<unknown>)],
      [...expected],
      `[...${path}]`,
    );
  }
  if (expected instanceof Date) {
    return difference(
      (actual as Date).getTime(),
      expected.getTime(),
      `${path}.getTime()`,
    );
  }
  if (expected instanceof ArrayBuffer) {
    return differenceInLists(
      [...new Uint8Array(actual as ArrayBuffer)],
      [...new Uint8Array(expected)],
      path,
    );
  }
  if (expected instanceof DataView) {
    const view = actual as DataView;
    return differenceInLists(
      [...new Uint8Array(view.buffer, view.byteOffset, view.byteLength)],
      [
        ...new Uint8Array(
          expected.buffer,
          expected.byteOffset,
          expected.byteLength,
        ),
      ],
      path,
    );
  }
  if (ArrayBuffer.isView(expected)) {
    return differenceInLists(
      Array.from(actual as unknown as ArrayLike<unknown>),
      Array.from(expected as unknown as ArrayLike<unknown>),
      path,
    );
  }
  if (expected instanceof Error) {
    const got = actual as Error;
    for (const key of ["name", "message", "stack"] as const) {
      const found = difference(got[key], expected[key], `${path}.${key}`);
      if (found) return found;
    }
    if (Object.hasOwn(got, "cause") !== Object.hasOwn(expected, "cause")) {
      return `${path}.cause: present on one side only`;
    }
    const found = difference(got.cause, expected.cause, `${path}.cause`);
    if (found) return found;
    if (expected instanceof AggregateError) {
      const found = difference(
        (got as AggregateError).errors,
        expected.errors,
        `${path}.errors`,
      );
      if (found) return found;
    }
    return differenceInProperties(got, expected, path, ["name"]);
  }
  return differenceInProperties(actual, expected, path, []);
}

function differenceInLists(
  actual: unknown[],
  expected: unknown[],
  path: string,
): string | undefined {
  if (actual.length !== expected.length) {
    return `${path}: length ${actual.length}, sent ${expected.length}`;
  }
  for (let i = 0; i < expected.length; i++) {
    const found = difference(actual[i], expected[i], `${path}[${i}]`);
    if (found) return found;
  }
  return undefined;
}

function differenceInProperties(
  actual: object,
  expected: object,
  path: string,
  ignored: string[],
): string | undefined {
  const keys = (object: object) =>
    Object.keys(object).filter((key) => !ignored.includes(key));
  const got = keys(actual);
  const sent = keys(expected);
  if (got.join("\0") !== sent.join("\0")) {
    return `${path}: keys ${show(got)}, sent ${show(sent)}`;
  }
  for (const key of sent) {
    const found = difference(
      (actual as Record<string, unknown>)[key],
      (expected as Record<string, unknown>)[key],
      `${path}[${JSON.stringify(key)}]`,
    );
    if (found) return found;
  }
  return undefined;
}

function assertRoundTrip(value: unknown): void {
  const found = difference(decode(encode(value)), value);
  if (found) throw new assert.AssertionError({ message: found });
}

function assertCannotSend(value: unknown, name: string, message: string): void {
  assert.throws(
    () => encode(value, name),
    (error: unknown) => {
      assert.ok(
        error instanceof SerializationError,
        `not a SerializationError: ${error}`,
      );
      assert.equal(error.message, message);
      assert.equal(
        error.message,
        `Cannot send ${error.path}: it ${message.split(": it ")[1]}`,
      );
      return true;
    },
  );
}

// --- Generated values -------------------------------------------------------

const ONLY_PLAIN =
  "only plain objects, arrays, Map, Set, Date, Error, typed arrays, " +
  "bigint and primitives can be sent";

const numbers = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(
    0,
    -0,
    NaN,
    Infinity,
    -Infinity,
    2 ** 32,
    -(2 ** 53) + 1,
    2 ** 64,
  ),
);

const bigints = fc.oneof(
  fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }),
  fc.bigInt({ min: -(2n ** 300n), max: 2n ** 300n }),
  fc.constantFrom(-(2n ** 63n), 2n ** 63n - 1n, 2n ** 63n, -(2n ** 63n) - 1n),
);

const typedArrays = fc.oneof(
  fc.uint8Array(),
  fc.uint8Array({ minLength: 2 }).map((array) => array.subarray(1)),
  fc.int8Array(),
  fc.uint8ClampedArray(),
  fc.int16Array(),
  fc.uint16Array(),
  fc.int32Array(),
  fc.uint32Array(),
  fc.float32Array(),
  fc.float64Array(),
  fc.bigInt64Array(),
  fc.bigUint64Array(),
  fc.array(fc.double()).map((values) =>
    typeof Float16Array === "function"
      ? new Float16Array(values)
      : new Float64Array(values)
  ),
  fc.uint8Array().map((array) => array.slice().buffer),
  fc.uint8Array().map((array) => new DataView(array.slice().buffer)),
);

const leaves = fc.oneof(
  fc.constantFrom(null, undefined, true, false),
  numbers,
  fc.string({ unit: "grapheme" }),
  fc.string({ minLength: 60, maxLength: 300 }),
  bigints,
  fc.date(),
  typedArrays,
);

const keys = fc.oneof(
  fc.string(),
  fc.constantFrom("__proto__", "constructor", "a b", "0", ""),
);

const ERROR_NAMES = [
  "Error",
  "TypeError",
  "RangeError",
  "SyntaxError",
  "ReferenceError",
  "EvalError",
  "URIError",
  "AggregateError",
  "ValidationError",
];

function makeError(
  name: string,
  message: string,
  cause: { value: unknown } | null,
  code: string | null,
  errors: unknown[],
): Error {
  const options = cause ? { cause: cause.value } : undefined;
  let error: Error;
  if (name === "AggregateError") {
    error = new AggregateError(errors, message, options);
  } else {
    const BuiltIn =
      (globalThis as unknown as Record<string, ErrorConstructor>)[name];
    error = BuiltIn
      ? new BuiltIn(message, options)
      : new Error(message, options);
    if (!BuiltIn) error.name = name;
  }
  if (code !== null) Object.assign(error, { code });
  return error;
}

const { value: values } = fc.letrec((tie) => ({
  value: fc.oneof(
    { maxDepth: 4, withCrossShrink: true },
    leaves,
    tie("array"),
    tie("object"),
    tie("map"),
    tie("set"),
    tie("error"),
  ),
  array: fc.array(tie("value"), { maxLength: 5 }),
  object: fc.dictionary(keys, tie("value"), { maxKeys: 5 }),
  map: fc.array(fc.tuple(tie("value"), tie("value")), { maxLength: 4 })
    .map((entries) => new Map(entries)),
  set: fc.array(tie("value"), { maxLength: 4 }).map((members) =>
    new Set(members)
  ),
  error: fc.tuple(
    fc.constantFrom(...ERROR_NAMES),
    fc.string(),
    fc.option(fc.record({ value: tie("value") })),
    fc.option(fc.string()),
    fc.array(tie("value"), { maxLength: 3 }),
  ).map(([name, message, cause, code, errors]) =>
    makeError(name, message, cause, code, errors)
  ),
}));

// --- Round trips --------------------------------------------------------------

Deno.test("decode(encode(x)) gives back every kind of value the codec supports", () => {
  fc.assert(fc.property(values, assertRoundTrip), { numRuns: 1000 });
});

Deno.test("decode(encode(x)) keeps the kind and contents of every typed array", () => {
  fc.assert(
    fc.property(typedArrays, (array) => {
      // At the top and one level down (inside an extension payload).
      assertRoundTrip(array);
      assertRoundTrip(new Map([["x", [undefined, array]]]));
    }),
  );
});

Deno.test("encode() keeps undefined apart from null, also in arrays and objects", () => {
  const value = [
    undefined,
    null,
    { a: undefined, b: null },
    new Set([undefined, null]),
  ];
  const copy = decode(encode(value)) as typeof value;
  assert.equal(copy[0], undefined);
  assert.equal(copy[1], null);
  assert.ok(Object.hasOwn(copy[2] as object, "a"));
  assert.deepEqual(copy[2], { a: undefined, b: null });
  assert.equal(decode(encode(undefined)), undefined);
  assertRoundTrip(value);
});

Deno.test("encode() keeps NaN, -0 and infinities", () => {
  for (const value of [NaN, -0, Infinity, -Infinity, [-0, 0], { z: -0 }]) {
    assertRoundTrip(value);
  }
  assert.ok(Object.is(decode(encode(-0)), -0));
});

Deno.test("encode() keeps bigints of any size and sign", () => {
  for (
    const value of [
      0n,
      -1n,
      2n ** 63n - 1n,
      -(2n ** 63n),
      2n ** 63n,
      -(10n ** 100n),
    ]
  ) {
    assert.equal(decode(encode(value)), value);
  }
});

Deno.test("encode() keeps a Map's key types and insertion order", () => {
  const key = { id: 1 };
  const map = new Map<unknown, unknown>([["b", 1], [1, "one"], [key, [1]], [
    1n,
    null,
  ], [
    undefined,
    -0,
  ]]);
  const copy = decode(encode(map)) as Map<unknown, unknown>;
  assert.deepEqual([...copy.keys()], ["b", 1, { id: 1 }, 1n, undefined]);
  assertRoundTrip(map);
});

Deno.test("encode() keeps invalid dates invalid", () => {
  const copy = decode(encode(new Date(NaN))) as Date;
  assert.ok(copy instanceof Date);
  assert.ok(Number.isNaN(copy.getTime()));
});

Deno.test("encode() sends an object with a __proto__ key as data, not as a prototype", () => {
  const value = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}');
  const copy = decode(encode(value)) as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(copy), Object.prototype);
  assert.deepEqual(Object.keys(copy), ["__proto__", "a"]);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

Deno.test("decode() returns a null-prototype object as a plain object", () => {
  const value = Object.assign(Object.create(null), { a: 1 });
  const copy = decode(encode(value)) as object;
  assert.equal(Object.getPrototypeOf(copy), Object.prototype);
  assert.deepEqual(copy, { a: 1 });
});

Deno.test("decode() turns holes in arrays into undefined", () => {
  // deno-lint-ignore no-sparse-arrays
  const copy = decode(encode([1, , 3])) as unknown[];
  assert.ok(Object.hasOwn(copy, 1));
  assert.equal(copy[1], undefined);
});

Deno.test("decode() returns a Uint8Array as a view into the input, without copying", () => {
  const bytes = encode({
    data: new Uint8Array([1, 2, 3]),
    nested: new Set([new Uint8Array([4])]),
  });
  const copy = decode(bytes) as { data: Uint8Array; nested: Set<Uint8Array> };
  assert.equal(copy.data.buffer, bytes.buffer);
  assert.deepEqual([...copy.data], [1, 2, 3]);
  const [nested] = copy.nested;
  assert.equal(nested.buffer, bytes.buffer);
  // Writing through the input shows in the value: it is the same memory.
  bytes[copy.data.byteOffset] = 9;
  assert.equal(copy.data[0], 9);
});

Deno.test("encode() sends only the bytes a Uint8Array views", () => {
  const whole = new Uint8Array(1000).fill(7);
  const bytes = encode(whole.subarray(10, 13));
  assert.ok(bytes.byteLength < 10);
  assert.deepEqual([...(decode(bytes) as Uint8Array)], [7, 7, 7]);
});

Deno.test("encode() returns bytes that later calls do not overwrite", () => {
  const first = encode([1, 2, 3]);
  encode(["something", "else", "entirely"]);
  assert.deepEqual(decode(first), [1, 2, 3]);
});

Deno.test("encode() can be called again from a getter while it is encoding", () => {
  const inner = { x: [undefined, 1n] };
  const value = {
    get nested() {
      return encode(inner);
    },
  };
  const copy = decode(encode(value)) as { nested: Uint8Array };
  assertRoundTrip(inner);
  assert.ok(difference(decode(copy.nested), inner) === undefined);
});

Deno.test("encode() accepts values nested 100 levels deep", () => {
  let value: unknown = 1;
  for (let i = 0; i < 99; i++) value = [value];
  assertRoundTrip(value);
  let map: unknown = 1;
  for (let i = 0; i < 99; i++) map = new Map([["k", map]]);
  assertRoundTrip(map);
});

// --- What cannot be sent --------------------------------------------------------

Deno.test("encode() names the path of a function inside the arguments", () => {
  assertCannotSend(
    [{ onDone() {} }],
    "args",
    "Cannot send args[0].onDone: it is a function",
  );
  assertCannotSend(() => 1, "result", "Cannot send result: it is a function");
});

Deno.test("encode() names a key that is not an identifier with brackets and JSON quotes", () => {
  assertCannotSend(
    { "a b": Symbol("s") },
    "value",
    'Cannot send value["a b"]: it is a symbol',
  );
  assertCannotSend(
    { 0: [1, Symbol()] },
    "value",
    'Cannot send value["0"][1]: it is a symbol',
  );
});

Deno.test("encode() names an instance of an unsupported class", () => {
  class Foo {}
  assertCannotSend(
    { foo: new Foo() },
    "value",
    `Cannot send value.foo: it is an instance of Foo; ${ONLY_PLAIN}`,
  );
  assertCannotSend(
    [new (class {})()],
    "args",
    `Cannot send args[0]: it is an instance of an anonymous class; ${ONLY_PLAIN}`,
  );
});

Deno.test("encode() names a circular reference", () => {
  const value: { list: unknown[] } = { list: [] };
  value.list.push(value);
  assertCannotSend(
    value,
    "value",
    "Cannot send value.list[0]: it is a circular reference",
  );
  // Through a Map, with undefined beside it, so through nested encodings.
  const map = new Map<string, unknown>();
  map.set("self", [undefined, map]);
  assertCannotSend(
    map,
    "value",
    'Cannot send value.get("self")[1]: it is a circular reference',
  );
});

Deno.test("encode() names WeakMap, WeakSet and Promise", () => {
  assertCannotSend(
    { cache: new WeakMap() },
    "value",
    "Cannot send value.cache: it is a WeakMap, whose entries cannot be listed",
  );
  assertCannotSend(
    [new WeakSet()],
    "args",
    "Cannot send args[0]: it is a WeakSet, whose members cannot be listed",
  );
  const promise = Promise.resolve(1);
  assertCannotSend(
    { result: promise },
    "value",
    "Cannot send value.result: it is a Promise; await it and send its result",
  );
});

Deno.test("encode() names too deep nesting", () => {
  let value: unknown = 1;
  for (let i = 0; i < 100; i++) value = [value];
  const path = "value" + "[0]".repeat(100);
  assertCannotSend(
    value,
    "value",
    `Cannot send ${path}: it is nested too deeply (the limit is 100 levels)`,
  );
  let map: unknown = 1;
  for (let i = 0; i < 101; i++) map = new Map([["k", map]]);
  assert.throws(() => encode(map), SerializationError);
});

Deno.test("encode() names the parts of Maps and Sets", () => {
  const fn = () => 1;
  assertCannotSend(
    new Map([["key", fn]]),
    "value",
    'Cannot send value.get("key"): it is a function',
  );
  assertCannotSend(
    new Map([[2n, fn]]),
    "value",
    "Cannot send value.get(2n): it is a function",
  );
  assertCannotSend(
    new Map([[{}, fn]]),
    "value",
    "Cannot send [...value.values()][0]: it is a function",
  );
  assertCannotSend(
    new Map<unknown, number>([[1, 1], [fn, 1]]),
    "value",
    "Cannot send [...value.keys()][1]: it is a function",
  );
  assertCannotSend(
    new Set([1, fn]),
    "value",
    "Cannot send [...value][1]: it is a function",
  );
  assertCannotSend(
    { m: new Map([["a", { b: new Set([fn]) }]]) },
    "args",
    'Cannot send [...args.m.get("a").b][0]: it is a function',
  );
});

Deno.test("encode() names a property whose getter throws", () => {
  const value = {
    get broken(): number {
      throw new Error("nope");
    },
  };
  assertCannotSend(
    value,
    "value",
    "Cannot send value.broken: it could not be read: Error: nope",
  );
});

// --- Errors ------------------------------------------------------------------------

Deno.test("encode() keeps an error's name, message, stack, cause chain and code", () => {
  const root = new RangeError("too small");
  const error = new Error("outer", {
    cause: new TypeError("middle", { cause: root }),
  });
  Object.assign(error, { code: "E_OUTER", details: { attempt: 2 } });
  const copy = decode(encode(error)) as Error & { code: string };
  assert.ok(copy instanceof Error);
  assert.equal(copy.message, "outer");
  assert.equal(copy.stack, error.stack);
  assert.equal(copy.code, "E_OUTER");
  const middle = copy.cause as Error;
  assert.ok(middle instanceof TypeError);
  assert.equal(middle.message, "middle");
  assert.ok(middle.cause instanceof RangeError);
  assert.equal((middle.cause as Error).stack, root.stack);
  assertRoundTrip(error);
});

Deno.test("decode() rebuilds errors as the built-in class of their name", () => {
  for (
    const BuiltIn of [
      Error,
      TypeError,
      RangeError,
      SyntaxError,
      ReferenceError,
      EvalError,
      URIError,
    ]
  ) {
    const copy = decode(encode(new BuiltIn("x"))) as Error;
    assert.equal(Object.getPrototypeOf(copy), BuiltIn.prototype);
    assert.equal(copy.name, BuiltIn.name);
  }
  const aggregate = new AggregateError([new Error("a"), 1], "both failed");
  const copy = decode(encode(aggregate)) as AggregateError;
  assert.ok(copy instanceof AggregateError);
  assert.equal((copy.errors[0] as Error).message, "a");
  assert.equal(copy.errors[1], 1);
  assertRoundTrip(aggregate);
});

Deno.test("decode() rebuilds an error of another class as an Error with its name", () => {
  class ValidationError extends Error {
    field = "email";
    constructor(message: string) {
      super(message);
      this.name = "ValidationError";
    }
  }
  const copy = decode(encode([new ValidationError("bad email")])) as Error[];
  const error = copy[0] as Error & { field: string };
  assert.equal(Object.getPrototypeOf(error), Error.prototype);
  assert.equal(error.name, "ValidationError");
  assert.equal(error.message, "bad email");
  assert.equal(error.field, "email");
});

Deno.test("encode() sends an error whose cause or property cannot be sent, as text", () => {
  const error = new Error("failed", { cause: { onDone() {} } });
  Object.assign(error, { callback: Symbol("cb"), code: 7 });
  const copy = decode(encode({ error }, "result")) as {
    error: Error & Record<string, unknown>;
  };
  assert.equal(copy.error.message, "failed");
  assert.equal(copy.error.cause, "[object Object]");
  assert.equal(copy.error.callback, "Symbol(cb)");
  assert.equal(copy.error.code, 7);
});

Deno.test("encode() sends an error whose cause leads back to it", () => {
  const error = new Error("loop");
  error.cause = error;
  const copy = decode(encode(error)) as Error;
  assert.equal(copy.message, "loop");
  assert.equal(copy.cause, "Error: loop");
  const holder: Record<string, unknown> = {};
  const inner = new Error("inner", { cause: holder });
  holder.inner = inner;
  assert.doesNotThrow(() => encode(inner));
});

Deno.test("encode() sends an error with a cause chain deeper than the nesting limit", () => {
  let error = new Error("0");
  for (let i = 1; i <= 150; i++) error = new Error(String(i), { cause: error });
  const copy = decode(encode(error)) as Error;
  assert.equal(copy.message, "150");
});

Deno.test("toWireError() describes a thrown error as plain data", () => {
  const error = new TypeError("bad", { cause: "why" });
  Object.assign(error, { code: "E_BAD" });
  const wire = toWireError(error);
  assert.deepEqual(wire, {
    name: "TypeError",
    message: "bad",
    stack: error.stack,
    cause: "why",
    props: { code: "E_BAD" },
  });
  const copy = fromWireError(decode(encode(wire)) as typeof wire);
  assertRoundTrip(error);
  assert.equal(difference(copy, error), undefined);
});

Deno.test("toWireError() reports a thrown non-Error as an Error holding the value", () => {
  assert.deepEqual(toWireError("x"), {
    name: "Error",
    message: "x",
    props: { thrown: "x" },
  });
  assert.deepEqual(toWireError({ code: 1 }), {
    name: "Error",
    message: "[object Object]",
    props: { thrown: { code: 1 } },
  });
  const fn = () => 1;
  assert.deepEqual(toWireError(fn), {
    name: "Error",
    message: String(fn),
    props: { thrown: String(fn) },
  });
  assert.equal(toWireError(Object.create(null)).message, "[object Object]");
  const error = fromWireError(toWireError(undefined));
  assert.equal(error.message, "undefined");
  assert.ok(Object.hasOwn(error, "thrown"));
});

Deno.test("toWireError() never throws and its result always encodes", () => {
  const hostile = new Proxy(new Error("hostile"), {
    get(_target, key) {
      throw new Error(`no ${String(key)}`);
    },
    ownKeys() {
      throw new Error("no keys");
    },
  });
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  const withCyclicCause = new Error("c", { cause: cyclic });
  for (const thrown of [hostile, cyclic, withCyclicCause, Symbol("s"), null]) {
    const wire = toWireError(thrown);
    assert.equal(typeof wire.name, "string");
    assert.equal(typeof wire.message, "string");
    assert.doesNotThrow(() => encode(wire, "error"));
  }
  assert.equal(toWireError(withCyclicCause).cause, "[object Object]");
});

Deno.test("fromWireError() leaves out stack and cause the remote error did not have", () => {
  const error = fromWireError({ name: "TimeoutError", message: "slow" });
  assert.equal(error.name, "TimeoutError");
  assert.equal(error.stack, undefined);
  assert.ok(!Object.hasOwn(error, "cause"));
});

// --- Malformed input -------------------------------------------------------------

Deno.test("decode() rejects bytes that are not an encoded value with a ProtocolError", () => {
  const valid = encode([1, 2]);
  for (
    const bytes of [
      new Uint8Array([0xc1]), // never used in MessagePack
      new Uint8Array([...valid, 0]), // trailing byte
      valid.subarray(0, 2), // cut short
      new Uint8Array([0xd4, 0x7f, 0x00]), // unknown extension type
    ]
  ) {
    assert.throws(() => decode(bytes), ProtocolError);
  }
});

Deno.test("the MessagePack extension types keep the numbers the protocol fixed", () => {
  const cases: [string, unknown, number][] = [
    ["undefined", undefined, 0],
    ["-0", -0, 1],
    ["bigint", 10n, 2],
    ["Date", new Date(0), 3],
    ["array holding undefined", [undefined], 4],
    ["object holding undefined", { a: undefined }, 5],
    ["Map", new Map(), 6],
    ["Set", new Set(), 7],
    ["Error", new Error("x"), 8],
    ["ArrayBuffer", new ArrayBuffer(1), 9],
    ["DataView", new DataView(new ArrayBuffer(1)), 10],
    ["Int8Array", new Int8Array(1), 16],
    ["Float64Array", new Float64Array(1), 23],
    ["BigUint64Array", new BigUint64Array(1), 25],
  ];
  for (const [what, value, type] of cases) {
    const raw = rawDecode(encode(value));
    assert.ok(raw instanceof ExtData, what);
    assert.equal(raw.type, type, what);
  }
});

// --- Large binary values ------------------------------------------------------

Deno.test("encode() writes large Uint8Arrays, alone or among arguments, as MessagePack bin, byte for byte", async () => {
  const { encode: plainEncode } = await import("@msgpack/msgpack");
  const big = (n: number, seed: number) => {
    const bytes = new Uint8Array(n);
    for (let i = 0; i < n; i += 997) bytes[i] = (i + seed) & 0xff;
    return bytes;
  };
  const MiB = 1024 * 1024;
  const cases: unknown[] = [
    big(MiB, 1),
    [big(MiB + 3, 2)],
    [1, "two", big(MiB, 3), null, true, -7.5, big(2 * MiB, 4)],
    Array.from({ length: 20 }, (_, i) => i === 7 ? big(MiB, 5) : i),
    [new Uint8Array(MiB - 1), big(MiB, 6)],
  ];
  for (const value of cases) {
    assert.deepEqual(encode(value), plainEncode(value), show(value));
  }
  // Values the codec extends MessagePack for keep their own encoding.
  const mixed = [
    big(MiB, 7),
    new Map([[1n, new Date(0)]]),
    { a: undefined, b: -0 },
    [undefined, new Set([1])],
    new Float64Array([1.5, NaN]),
  ];
  assert.equal(difference(decode(encode(mixed)), mixed), undefined);
  const [view] = decode(encode(mixed)) as [Uint8Array];
  assert.deepEqual(view, mixed[0]);
  // An array holding undefined next to a large one still round trips.
  const holes = [undefined, big(MiB, 8), -0];
  assert.equal(difference(decode(encode(holes)), holes), undefined);
  // A value that cannot be sent is still refused with its path.
  assert.throws(
    () => encode([big(MiB, 9), () => 1], "args"),
    (e: unknown) =>
      e instanceof SerializationError && e.message.includes("args[1]"),
  );
});
