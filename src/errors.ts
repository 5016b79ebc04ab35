/**
 * Error classes that callers of the library catch.
 *
 * Every class sets `name`, so an error can be recognised by name after it has
 * crossed a process boundary, and keeps `cause` where there is one.
 *
 * @module
 */

/**
 * A task threw on the worker. The remote error's class name, message, stack
 * and cause are kept.
 *
 * @example
 * ```ts
 * import { RemoteError } from "./errors.ts";
 *
 * const error = new RemoteError({ name: "ValueError", message: "bad input" });
 * console.log(error.message); // "ValueError: bad input"
 * console.log(error.remoteName); // "ValueError"
 * ```
 */
export class RemoteError extends Error {
  /** The class name of the error thrown on the worker, e.g. `"TypeError"`. */
  readonly remoteName: string;
  /** The stack of the remote error, with paths mapped back to the client's sources. */
  readonly remoteStack: string | undefined;
  /** Which node the task ran on, when known. */
  readonly node: number | undefined;

  /**
   * Creates the error.
   *
   * @param remote The remote error as it came over the wire.
   * @param options `cause` (the remote error's own cause) and the node.
   */
  constructor(
    remote: { name: string; message: string; stack?: string },
    options: { cause?: unknown; node?: number } = {},
  ) {
    super(`${remote.name}: ${remote.message}`, { cause: options.cause });
    this.name = "RemoteError";
    this.remoteName = remote.name;
    this.remoteStack = remote.stack;
    this.node = options.node;
  }
}

/**
 * A task did not finish within its timeout.
 *
 * @example
 * ```ts
 * import { TaskTimeoutError } from "./errors.ts";
 *
 * const error = new TaskTimeoutError("square", 1000);
 * console.log(error.timeoutMs); // 1000
 * ```
 */
export class TaskTimeoutError extends Error {
  /** The timeout that was exceeded, in milliseconds. */
  readonly timeoutMs: number;
  /**
   * Creates the error.
   *
   * @param task The compute's name.
   * @param timeoutMs The timeout that was exceeded, in milliseconds.
   */
  constructor(task: string, timeoutMs: number) {
    super(`Task '${task}' timed out after ${timeoutMs} ms`);
    this.name = "TaskTimeoutError";
    this.timeoutMs = timeoutMs;
  }
}

/**
 * A task was cancelled by its caller (through {@linkcode TaskHandle.cancel} or an
 * `AbortSignal`), or because a sibling in the same group failed.
 *
 * @example
 * ```ts
 * import { TaskCancelledError } from "./errors.ts";
 *
 * console.log(new TaskCancelledError("square").name); // "TaskCancelledError"
 * ```
 */
export class TaskCancelledError extends Error {
  /**
   * Creates the error.
   *
   * @param task The compute's name.
   * @param reason Why it was cancelled.
   */
  constructor(task: string, reason = "cancelled by the caller") {
    super(`Task '${task}' was ${reason}`);
    this.name = "TaskCancelledError";
  }
}

/**
 * Machines could not be provisioned or a node could not be brought up.
 *
 * @example
 * ```ts
 * import { ProvisioningError } from "./errors.ts";
 *
 * const error = new ProvisioningError("node 1 did not start");
 * console.log(error.message); // "node 1 did not start"
 * ```
 */
export class ProvisioningError extends Error {
  /**
   * Creates the error.
   *
   * @param message What failed.
   * @param options The underlying error.
   */
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = "ProvisioningError";
  }
}

/**
 * No provider could offer the requested machines.
 *
 * @example
 * ```ts
 * import { NoOffersError } from "./errors.ts";
 *
 * const error = new NoOffersError("No instances available for T4 on aws (us-east-1)");
 * console.log(error.name); // "NoOffersError"
 * ```
 */
export class NoOffersError extends ProvisioningError {
  /**
   * Creates the error.
   *
   * @param message Which accelerators were asked of which providers.
   * @param options The underlying error.
   */
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = "NoOffersError";
  }
}

/**
 * A value cannot be sent to or from a worker. The message names the path of
 * the offending part, such as `args[0].onDone is a function`.
 *
 * @example
 * ```ts
 * import { SerializationError } from "./errors.ts";
 *
 * const error = new SerializationError("args[0].onDone", "is a function");
 * console.log(error.message); // "Cannot send args[0].onDone: it is a function"
 * ```
 */
export class SerializationError extends Error {
  /** The path of the value that cannot be sent, e.g. `args[0].onDone`. */
  readonly path: string;
  /**
   * Creates the error.
   *
   * @param path The path of the value that cannot be sent.
   * @param problem What is wrong with it, e.g. `is a function`.
   */
  constructor(
    path: string,
    problem: string,
    options: { cause?: unknown } = {},
  ) {
    super(`Cannot send ${path}: it ${problem}`, options);
    this.name = "SerializationError";
    this.path = path;
  }
}

/**
 * The pool is closed (or closing): it takes no new tasks, and the tasks it
 * still had are rejected with this error.
 *
 * @example
 * ```ts
 * import { PoolClosedError } from "./errors.ts";
 *
 * console.log(new PoolClosedError().message); // "The pool is closed"
 * ```
 */
export class PoolClosedError extends Error {
  /**
   * Creates the error.
   *
   * @param message Why the task could not run.
   */
  constructor(message = "The pool is closed") {
    super(message);
    this.name = "PoolClosedError";
  }
}

/**
 * Options are invalid or credentials are missing. The message names the
 * option or the environment variable to fix.
 *
 * @example
 * ```ts
 * import { ConfigError } from "./errors.ts";
 *
 * const error = new ConfigError("Set RUNPOD_API_KEY");
 * console.log(error.name); // "ConfigError"
 * ```
 */
export class ConfigError extends Error {
  /**
   * Creates the error.
   *
   * @param message What to fix.
   * @param options The underlying error.
   */
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = "ConfigError";
  }
}

/**
 * A node stopped answering: its worker exited, or its connection was lost.
 * Tasks that were running on it fail with this error unless they are retried.
 *
 * @example
 * ```ts
 * import { NodeLostError } from "./errors.ts";
 *
 * console.log(new NodeLostError(1, "worker exited with code 137").message);
 * ```
 */
export class NodeLostError extends Error {
  /** The node's index. */
  readonly node: number;
  /**
   * Creates the error.
   *
   * @param node The node's index.
   * @param reason Why it was lost.
   */
  constructor(node: number, reason: string, options: { cause?: unknown } = {}) {
    super(`Node ${node} was lost: ${reason}`, options);
    this.name = "NodeLostError";
    this.node = node;
  }
}

/**
 * The worker and the client do not speak the same protocol, or a frame was
 * malformed.
 *
 * @example
 * ```ts
 * import { ProtocolError } from "./errors.ts";
 *
 * console.log(new ProtocolError("frame of 5 GiB exceeds the limit").name);
 * ```
 */
export class ProtocolError extends Error {
  /**
   * Creates the error.
   *
   * @param message What was wrong with the input.
   */
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = "ProtocolError";
  }
}
