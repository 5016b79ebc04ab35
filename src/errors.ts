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
  /** `"RemoteError"`, by which the error is known across processes. */
  override name = "RemoteError";

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
  /** `"TaskTimeoutError"`, by which the error is known across processes. */
  override name = "TaskTimeoutError";

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
  /** `"TaskCancelledError"`, by which the error is known across processes. */
  override name = "TaskCancelledError";

  /**
   * Creates the error.
   *
   * @param task The compute's name.
   * @param reason Why it was cancelled.
   */
  constructor(task: string, reason = "cancelled by the caller") {
    super(`Task '${task}' was ${reason}`);
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
  /** `"ProvisioningError"`, by which the error is known across processes. */
  override name = "ProvisioningError";
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
  /** `"NoOffersError"`, by which the error is known across processes. */
  override name = "NoOffersError";
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
  /** `"SerializationError"`, by which the error is known across processes. */
  override name = "SerializationError";

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
  /** `"PoolClosedError"`, by which the error is known across processes. */
  override name = "PoolClosedError";

  /**
   * Creates the error.
   *
   * @param message Why the task could not run.
   */
  constructor(message = "The pool is closed") {
    super(message);
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
  /** `"ConfigError"`, by which the error is known across processes. */
  override name = "ConfigError";
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
  /** `"NodeLostError"`, by which the error is known across processes. */
  override name = "NodeLostError";

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
  /** `"ProtocolError"`, by which the error is known across processes. */
  override name = "ProtocolError";
}

/**
 * The pool's budget (`budget: { maxCost }`) stopped it: a launch or a
 * scale-up that would pass `maxCost` within the next cost interval was
 * refused, or the spend reached `maxCost` and the pool failed its queued and
 * running tasks with this error and closed.
 *
 * @example
 * ```ts
 * import { BudgetExceededError } from "./errors.ts";
 *
 * const error = new BudgetExceededError("Spent $20.00: the budget's maxCost is $20.00", {
 *   spent: 20,
 *   maxCost: 20,
 * });
 * console.log(error.name, error.maxCost); // BudgetExceededError 20
 * ```
 */
export class BudgetExceededError extends Error {
  /** `"BudgetExceededError"`, by which the error is known across processes. */
  override name = "BudgetExceededError";

  /** Dollars spent when the error was made. */
  readonly spent: number;
  /** The budget's cap, in dollars. */
  readonly maxCost: number;
  /**
   * Creates the error.
   *
   * @param message What was refused or stopped, naming the cap.
   * @param figures What was spent, and the cap.
   */
  constructor(
    message: string,
    figures: { spent: number; maxCost: number; cause?: unknown },
  ) {
    super(message, { cause: figures.cause });
    this.spent = figures.spent;
    this.maxCost = figures.maxCost;
  }
}

/**
 * A queue was closed: `put` refuses values, and `get` finds it closed and
 * empty (its async iterator then simply ends).
 *
 * @example
 * ```ts
 * import { QueueClosedError } from "./errors.ts";
 *
 * const error = new QueueClosedError("work");
 * console.log(error.message); // "The queue 'work' is closed"
 * ```
 */
export class QueueClosedError extends Error {
  /** `"QueueClosedError"`, by which the error is known across processes. */
  override name = "QueueClosedError";

  /** The queue's name. */
  readonly queue: string;

  /**
   * Creates the error.
   *
   * @param queue The queue's name.
   * @param message What happened.
   */
  constructor(queue: string, message = `The queue '${queue}' is closed`) {
    super(message);
    this.queue = queue;
  }
}
