/**
 * The loop behind `pool.map`: reads inputs of unknown length as they
 * arrive, keeps up to a window of tasks pending, and yields each result as
 * soon as it is ready — in input order, or in completion order. It knows
 * nothing of pools: it is given a function that submits one input.
 *
 * @module
 */

/** One submitted input: its result, and how to cancel it. */
export interface Submitted {
  result: Promise<unknown>;
  cancel(reason: string): void;
}

/** Options of {@linkcode mapResults}. */
export interface MapLoopOptions {
  /** Results pending (running, or ready but not yet taken) at most. */
  window: number;
  /** Results in input order, else in completion order. */
  ordered: boolean;
  /** Stops the loop: it throws `aborted()` and cancels what is pending. */
  signal?: AbortSignal;
  /** The error thrown when `signal` is aborted. */
  aborted(): Error;
}

interface Entry {
  submitted: Submitted;
  settled: boolean;
  value?: unknown;
  failed: boolean;
  error?: unknown;
}

/**
 * Submits every input and yields the results as they are ready. An input
 * is read while fewer than `window` results are pending, however fast they
 * are taken; so a slow consumer holds the inputs back, and a slow input
 * does not hold back the results of those before it. A failed task ends
 * the loop with its error (in the order results are yielded); an input
 * that throws ends it after the results of the inputs before. Leaving the
 * loop cancels what is pending.
 *
 * @param items The inputs.
 * @param submit Submits one input.
 * @param options Window, order and signal.
 * @returns The results.
 */
export async function* mapResults<A, R>(
  items: Iterable<A> | AsyncIterable<A>,
  submit: (item: A) => Submitted,
  options: MapLoopOptions,
): AsyncGenerator<R, void, undefined> {
  const { window, ordered, signal } = options;
  const pending: Entry[] = [];
  /** Settled entries, in completion order (unordered results). */
  const ready: Entry[] = [];
  let inputDone = false;
  let inputFailed = false;
  let inputError: unknown;
  let stopped = false;
  let wake: (() => void) | undefined;
  let slot: (() => void) | undefined;
  const abort = () => {
    stopped = true;
    for (const { submitted } of pending) submitted.cancel("aborted");
    wake?.();
    slot?.();
  };
  signal?.addEventListener("abort", abort, { once: true });
  const feed = async () => {
    try {
      for await (const item of items as AsyncIterable<A>) {
        while (pending.length >= window && !stopped) {
          await new Promise<void>((resolve) => slot = resolve);
          slot = undefined;
        }
        if (stopped) break;
        const entry: Entry = {
          submitted: submit(item),
          settled: false,
          failed: false,
        };
        pending.push(entry);
        entry.submitted.result.then((value) => {
          entry.value = value;
        }, (error) => {
          entry.failed = true;
          entry.error = error;
        }).finally(() => {
          entry.settled = true;
          ready.push(entry);
          wake?.();
        });
      }
    } catch (error) {
      inputFailed = true;
      inputError = error;
    } finally {
      inputDone = true;
      wake?.();
    }
  };
  const feeding = feed();
  try {
    for (;;) {
      if (signal?.aborted) throw options.aborted();
      let next: Entry | undefined;
      if (ordered) {
        if (pending[0]?.settled) next = pending.shift();
      } else if (ready.length > 0) {
        next = ready.shift()!;
        pending.splice(pending.indexOf(next), 1);
      }
      if (next) {
        slot?.();
        if (next.failed) throw next.error;
        yield next.value as R;
        continue;
      }
      if (inputDone && pending.length === 0) {
        if (inputFailed) throw inputError;
        return;
      }
      await new Promise<void>((resolve) => wake = resolve);
      wake = undefined;
    }
  } finally {
    stopped = true;
    slot?.();
    signal?.removeEventListener("abort", abort);
    for (const { submitted } of pending) {
      submitted.cancel("cancelled: the map was left early or failed");
    }
    feeding.catch(() => {});
  }
}
