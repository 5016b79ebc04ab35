/**
 * The client's side of the streams of one task on one node: it pumps the
 * task's streamed arguments to the worker, and receives its streamed result
 * into an {@linkcode Inbox} that the caller iterates. The pool creates one
 * per dispatch and tells it when the task ends.
 *
 * @module
 */
import { encode, toWireError } from "../wire/codec.ts";
import type { CallStream, NodeSession } from "./node.ts";
import { Inbox, isStreamable, Pump, tee } from "../wire/stream.ts";

/** An argument streamed to the worker. */
export interface StreamArg {
  /** Its index among the arguments. */
  arg: number;
  /** The iterable, read once. */
  source: unknown;
  /** Whether it was a `ReadableStream` (the function then gets one too). */
  readable: boolean;
}

/**
 * Takes the streamed arguments out of a call's arguments: their places hold
 * `null` in what is encoded.
 *
 * @returns The arguments to encode and the streams, or `undefined` when no
 *   argument streams.
 */
export function splitStreams(
  args: readonly unknown[],
): { args: unknown[]; streams: StreamArg[] } | undefined {
  let streams: StreamArg[] | undefined;
  for (const [arg, value] of args.entries()) {
    if (!isStreamable(value)) continue;
    streams ??= [];
    streams.push({
      arg,
      source: value,
      readable: typeof ReadableStream !== "undefined" &&
        value instanceof ReadableStream,
    });
  }
  if (!streams) return undefined;
  const rest = [...args];
  for (const { arg } of streams) rest[arg] = null;
  return { args: rest, streams };
}

/**
 * Copies of a call's arguments, one per node of a broadcast: each streamed
 * argument is split so that every node gets every item (the slowest node
 * paces the source), with the kind it had.
 */
export function teeArgs(
  args: readonly unknown[],
  streams: StreamArg[],
  count: number,
): unknown[][] {
  const copies = Array.from({ length: count }, () => [...args]);
  for (const { arg, source, readable } of streams) {
    tee(source, count).forEach((branch, k) => {
      copies[k][arg] = readable ? ReadableStream.from(branch) : branch;
    });
  }
  return copies;
}

/** How long leaving a streamed result waits for the worker's generator to return, in ms. */
const STOP_WAIT_MS = 10_000;

/** The streams of one task on one node. */
export class StreamedCall {
  #session: NodeSession;
  #id: number;
  #streams: StreamArg[];
  #pumps = new Map<number, Pump>();
  #inbox: Inbox | undefined;
  #opened: (result: AsyncIterable<unknown>) => void;
  #cancel: () => void;
  #ended = false;
  #onEnd: (() => void) | undefined;

  /**
   * @param session The node's session.
   * @param id The task's id.
   * @param streams Its streamed arguments.
   * @param opened Called with the result's iterable when the worker says the result streams.
   * @param cancel Cancels the task outright (when its generator does not return in time).
   */
  constructor(
    session: NodeSession,
    id: number,
    streams: StreamArg[],
    opened: (result: AsyncIterable<unknown>) => void,
    cancel: () => void,
  ) {
    this.#session = session;
    this.#id = id;
    this.#streams = streams;
    this.#opened = opened;
    this.#cancel = cancel;
  }

  /**
   * Whether sending the task again would be wrong: it has streamed
   * arguments (read once), or its result started streaming.
   */
  get unrepeatable(): boolean {
    return this.#streams.length > 0 || this.#inbox !== undefined;
  }

  /** Whether the worker said the result streams. */
  get opened(): boolean {
    return this.#inbox !== undefined;
  }

  /** What the session tells this call. */
  get hooks(): CallStream & { args: [number, boolean][] } {
    return {
      args: this.#streams.map((s) => [s.arg, s.readable]),
      open: () => this.#open(),
      item: (payload) => this.#inbox?.push(payload),
      credit: (arg, bytes) => this.#pumps.get(arg)?.grant(bytes),
    };
  }

  /** Starts pumping the streamed arguments (after the call is sent). */
  start(): void {
    const id = this.#id;
    for (const { arg, source } of this.#streams) {
      const pump = new Pump(
        source,
        (batch) => this.#session.post({ t: "in", id, s: arg }, batch),
        `args[${arg}]`,
      );
      this.#pumps.set(arg, pump);
      pump.run().then(
        () => this.#session.post({ t: "in", id, s: arg, end: true }),
        (error) =>
          this.#session.post(
            { t: "in", id, s: arg, err: true, end: true },
            encode(toWireError(error), "error"),
          ),
      );
    }
  }

  /** The task ended: the result's iterable ends (or fails), the argument pumps stop. */
  end(error?: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const pump of this.#pumps.values()) pump.stop();
    if (error) this.#inbox?.fail(error);
    else this.#inbox?.end();
    this.#onEnd?.();
  }

  #open(): void {
    if (this.#inbox) return;
    const id = this.#id;
    this.#inbox = new Inbox(
      (n) => this.#session.post({ t: "credit", id, n }),
      () => this.#leave(),
    );
    this.#opened(this.#inbox);
  }

  /** The caller left the result: return the generator on the worker and wait for it. */
  async #leave(): Promise<void> {
    if (this.#ended) return;
    const ended = new Promise<void>((resolve) => this.#onEnd = resolve);
    this.#session.post({ t: "stop", id: this.#id });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = await Promise.race([
      ended.then(() => false),
      new Promise<boolean>((resolve) =>
        timer = setTimeout(() => resolve(true), STOP_WAIT_MS)
      ),
    ]);
    clearTimeout(timer);
    if (late) this.#cancel();
  }
}
