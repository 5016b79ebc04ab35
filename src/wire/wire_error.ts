/**
 * Errors as data: the {@linkcode WireError} an error becomes to cross the
 * wire, how it is read from a thrown error ({@linkcode readError}) and
 * rebuilt on the other side ({@linkcode fromWireError}), and the registry of
 * built-in error classes that come back as themselves
 * ({@linkcode errorNamed}).
 *
 * Which parts of an error can be sent is the codec's to say: `codec.ts`
 * turns a thrown value into a sendable `WireError` (`toWireError`) and
 * encodes the errors it meets inside values.
 *
 * @module
 */

/** An error as it crosses the wire: plain data that {@linkcode encode} always accepts. */
export interface WireError {
  /** The error's class name, e.g. `"TypeError"`, or the `name` it was given. */
  name: string;
  /** The error's message. */
  message: string;
  /** The stack as the sender printed it, when it had one. */
  stack?: string;
  /** The error's `cause`, present only when the error had one: any value that can be sent, or its text. */
  cause?: unknown;
  /**
   * The error's own enumerable properties other than the four above, such as
   * `code`, and the `errors` of an `AggregateError`; each is a value that can
   * be sent, or its text.
   */
  props?: Record<string, unknown>;
}

/**
 * Rebuilds an error from a {@linkcode WireError}: an instance of the built-in
 * class of that name (`TypeError`, `AggregateError`, …), or else an `Error`
 * whose `name` is the remote one. The stack is the remote stack (none when
 * the remote error had none), `cause` is set only when the remote error had
 * one, and `props` become own properties.
 *
 * @param wire The error as data, e.g. from {@linkcode toWireError}.
 * @returns The error.
 *
 * @example Rebuilding a remote error
 * ```ts
 * import { fromWireError } from "./wire_error.ts";
 *
 * const error = fromWireError({ name: "ValueError", message: "bad", props: { code: 7 } });
 * console.log(error.name, error.message, (error as Error & { code: number }).code); // "ValueError" "bad" 7
 * ```
 */
export function fromWireError(wire: WireError): Error {
  const name = typeof wire.name === "string" ? wire.name : "Error";
  const message = typeof wire.message === "string" ? wire.message : "";
  const options = Object.hasOwn(wire, "cause")
    ? { cause: wire.cause }
    : undefined;
  const props = wire.props !== null && typeof wire.props === "object"
    ? wire.props
    : {};
  const error = name === "AggregateError"
    ? new AggregateError(
      Array.isArray(props.errors) ? props.errors : [],
      message,
      options,
    )
    : errorNamed(name, message, options);
  if (typeof wire.stack === "string") {
    Object.defineProperty(error, "stack", {
      value: wire.stack,
      writable: true,
      configurable: true,
    });
  } else {
    delete error.stack;
  }
  for (const key of Object.keys(props)) {
    if (key === "errors" && name === "AggregateError") continue;
    setOwn(error, key, props[key]);
  }
  return error;
}

const BUILT_IN_ERRORS = new Map<string, ErrorConstructor>([
  ["Error", Error],
  ["TypeError", TypeError],
  ["RangeError", RangeError],
  ["SyntaxError", SyntaxError],
  ["ReferenceError", ReferenceError],
  ["EvalError", EvalError],
  ["URIError", URIError],
]);

/**
 * A new error of the built-in class of this name (`TypeError`,
 * `RangeError`, …, not `AggregateError`, which needs its errors), or else an
 * `Error` whose `name` is this one.
 *
 * @param name The class name the error had where it was thrown.
 * @param message Its message.
 * @param options Its `cause`, when it had one.
 * @returns The error, with the stack of this place.
 *
 * @example
 * ```ts
 * import { errorNamed } from "./wire_error.ts";
 *
 * console.log(errorNamed("TypeError", "bad") instanceof TypeError); // true
 * console.log(errorNamed("ValueError", "bad").name); // "ValueError"
 * ```
 */
export function errorNamed(
  name: string,
  message: string,
  options?: { cause?: unknown },
): Error {
  const BuiltIn = BUILT_IN_ERRORS.get(name);
  if (BuiltIn) return new BuiltIn(message, options);
  const error = new Error(message, options);
  error.name = name;
  return error;
}

/**
 * Reads what is to be sent of an error, without throwing and without
 * checking that it can be sent: name, message, stack, `cause` when it has
 * one, and its own enumerable properties (with `errors` for an
 * `AggregateError`) as `props`.
 *
 * @param error The error.
 * @returns Its parts; see {@linkcode makeSendable} for those that cannot be sent.
 *
 * @example
 * ```ts
 * import { readError } from "./wire_error.ts";
 *
 * const wire = readError(Object.assign(new RangeError("far"), { code: 7 }));
 * console.log(wire.name, wire.message, wire.props); // "RangeError" "far" { code: 7 }
 * ```
 */
export function readError(error: Error): WireError {
  const name = read(error, "name");
  const message = read(error, "message");
  const stack = read(error, "stack");
  const wire: WireError = {
    name: typeof name === "string"
      ? name
      : name === undefined
      ? "Error"
      : text(name),
    message: typeof message === "string"
      ? message
      : message === undefined
      ? ""
      : text(message),
  };
  if (typeof stack === "string") wire.stack = stack;
  try {
    if (Object.hasOwn(error, "cause")) wire.cause = read(error, "cause");
    const props: Record<string, unknown> = {};
    let any = false;
    for (const key of Object.keys(error)) {
      if (
        key === "name" || key === "message" || key === "stack" ||
        key === "cause"
      ) continue;
      setOwn(props, key, read(error, key));
      any = true;
    }
    if (error instanceof AggregateError) {
      props.errors = read(error, "errors");
      any = true;
    }
    if (any) wire.props = props;
  } catch {
    // A proxy that refuses to list its keys: send the rest.
  }
  return wire;
}

function read(object: object, key: string): unknown {
  try {
    return (object as Record<string, unknown>)[key];
  } catch (error) {
    return `[${key} could not be read: ${text(error)}]`;
  }
}

/**
 * Replaces each part of a wire error that cannot be sent (its `cause`, each
 * of its `props`, each of an `AggregateError`'s `errors`) by what
 * `sendableOrText` gives for it.
 *
 * @param wire The error as data, changed in place.
 * @param sendableOrText The part itself when it can be sent at `depth` (1
 *   for the top of a value), else its text: the codec knows.
 *
 * @example
 * ```ts
 * import { makeSendable, type WireError } from "./wire_error.ts";
 *
 * const wire: WireError = { name: "Error", message: "x", cause: () => {} };
 * makeSendable(wire, (value) => typeof value === "function" ? String(value) : value);
 * console.log(typeof wire.cause); // "string"
 * ```
 */
export function makeSendable(
  wire: WireError,
  sendableOrText: (value: unknown, depth: number) => unknown,
): void {
  if (Object.hasOwn(wire, "cause")) wire.cause = sendableOrText(wire.cause, 2);
  const props = wire.props;
  if (props === undefined) return;
  for (const key of Object.keys(props)) {
    const value = props[key];
    props[key] = key === "errors" && Array.isArray(value)
      ? Array.from(value, (item) => sendableOrText(item, 4))
      : sendableOrText(value, 3);
  }
}

/**
 * `String(value)`, and something still when that throws.
 *
 * @param value Anything.
 * @returns Its text.
 *
 * @example
 * ```ts
 * import { text } from "./wire_error.ts";
 *
 * console.log(text(Symbol("why"))); // "Symbol(why)"
 * ```
 */
export function text(value: unknown): string {
  try {
    return String(value);
  } catch {
    try {
      return Object.prototype.toString.call(value);
    } catch {
      return "[a value that cannot be printed]";
    }
  }
}

/**
 * Sets an own, enumerable, writable property, even one named `__proto__`
 * or one an inherited setter would catch.
 *
 * @param object The object.
 * @param key The property's name.
 * @param value Its value.
 *
 * @example
 * ```ts
 * import { setOwn } from "./wire_error.ts";
 *
 * const object = {};
 * setOwn(object, "__proto__", 1);
 * console.log(Object.keys(object)); // ["__proto__"]
 * ```
 */
export function setOwn(object: object, key: string, value: unknown): void {
  Object.defineProperty(object, key, {
    value,
    writable: true,
    enumerable: true,
    configurable: true,
  });
}
