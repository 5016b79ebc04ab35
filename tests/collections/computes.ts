// Computes that use the pool's collections from tasks (the conformance
// suite's, and the benchmarks'). They hold no permission: a task reaches
// collections through its worker.
import * as sky from "../../mod.ts";

/** Adds 1 to counter `name`, `n` times, `parallel` calls in flight at once. */
export const increment = sky.compute(
  async (name: string, n: number, parallel: number) => {
    const counter = sky.counter(name);
    let next = 0;
    const lanes = Array.from({ length: parallel }, async () => {
      while (next < n) {
        next++;
        await counter.add(1);
      }
    });
    await Promise.all(lanes);
    return sky.instanceInfo().node;
  },
);

/** Takes values from queue `name` until it is closed; returns them, and counts them in `done`. */
export const drain = sky.compute(async (name: string, done: string) => {
  const taken: unknown[] = [];
  for await (const value of sky.queue(name)) {
    taken.push(value);
    await sky.counter(done).add(1);
  }
  return taken;
});

/** Waits for a value of queue `name`. */
export const take = sky.compute((name: string, timeout?: number) =>
  sky.queue(name).get({ timeout })
);

/** Puts a value in queue `name`. */
export const put = sky.compute((name: string, value: unknown) =>
  sky.queue(name).put(value)
);

/** Appends `item` to the list under `key` of dict `name`, `n` times, with update(). */
export const append = sky.compute(
  async (name: string, key: string, item: string, n: number) => {
    const dict = sky.dict<string[]>(name);
    for (let i = 0; i < n; i++) {
      await dict.update(key, (list = []) => [...list, `${item}${i}`]);
    }
  },
);

/** Stores `value` under `key` of dict `name`, and returns what it reads back. */
export const store = sky.compute(
  async (name: string, key: string, value: unknown) => {
    const dict = sky.dict(name);
    await dict.set(key, value);
    return await dict.get(key);
  },
);

/** Tries to store a function in a dict: a SerializationError. */
export const storeFunction = sky.compute(async (name: string) => {
  await sky.dict(name).set("f", (() => 1) as unknown);
});

/**
 * Says `arrived` in queue `signal` (when given), then waits at barrier
 * `name`; returns its place in the round and its node.
 */
export const meet = sky.compute(
  async (name: string, parties: number, signal?: string) => {
    if (signal) await sky.queue(signal).put(sky.instanceInfo().node);
    const place = await sky.barrier(name, parties).wait({ timeout: 60_000 });
    return { place, node: sky.instanceInfo().node };
  },
);

/** Acquires lock `name`, says so in queue `signal`, then waits for ever (or for `hold` ms and returns without releasing). */
export const holdLock = sky.compute(
  async (name: string, signal: string, hold?: number) => {
    await sky.lock(name).acquire();
    await sky.queue(signal).put(sky.instanceInfo().node);
    if (hold === undefined) await sky.queue(`${signal}-never`).get();
    else await new Promise((r) => setTimeout(r, hold));
    return sky.instanceInfo().node;
  },
);

/** Reads counter `name`. */
export const counterValue = sky.compute((name: string) =>
  sky.counter(name).value()
);
