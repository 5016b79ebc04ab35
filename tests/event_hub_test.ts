/**
 * The event hub on its own: stamping, history, and the `pool.events`
 * iterators, also those started after the pool closed.
 */
import assert from "node:assert/strict";
import type { PoolEvent } from "../mod.ts";
import type { ConsoleSink } from "../src/pool/console.ts";
import { EventHub } from "../src/pool/event_hub.ts";

function hub(onEvent?: (e: PoolEvent) => void) {
  const printed: PoolEvent[] = [];
  let consoleClosed = false;
  const console: ConsoleSink = {
    event: (e) => printed.push(e),
    close: () => consoleClosed = true,
  };
  const h = new EventHub({ pool: "sky-test", onEvent, console });
  return { h, printed, consoleClosed: () => consoleClosed };
}

Deno.test("events are stamped with the pool and the time, and reach onEvent, the console and iterators", async () => {
  const seen: PoolEvent[] = [];
  const { h, printed } = hub((e) => seen.push(e));
  const iterator = h.events[Symbol.asyncIterator]();
  h.emit({ type: "ClusterReady", nodes: 1, elapsedMs: 5 });
  const { value } = await iterator.next();
  assert.equal(value.type, "ClusterReady");
  assert.equal(value.pool, "sky-test");
  assert.equal(typeof value.time, "number");
  assert.deepEqual(seen, [value]);
  assert.deepEqual(printed, [value]);
  await iterator.return!();
});

Deno.test("an onEvent that throws does not stop the other listeners", () => {
  const { h, printed } = hub(() => {
    throw new Error("listener bug");
  });
  h.emit({ type: "ClusterReady", nodes: 1, elapsedMs: 5 });
  assert.equal(printed.length, 1);
});

Deno.test("an iterator started late replays the lifecycle events only, and one started after close ends", async () => {
  const { h, consoleClosed } = hub();
  h.emit({ type: "ClusterReady", nodes: 1, elapsedMs: 5 });
  h.emit({ type: "TaskStarted", task: 1, name: "square", node: 0 });
  h.emit({ type: "Log", node: 0, stream: "stdout", line: "hi" });
  const live = Array.fromAsync(h.events);
  h.emit({ type: "ClusterDestroyed", elapsedMs: 9 });
  h.close();
  assert.ok(consoleClosed());
  assert.deepEqual((await live).map((e) => e.type), [
    "ClusterReady",
    "ClusterDestroyed",
  ]);
  const late = await Array.fromAsync(h.events);
  assert.deepEqual(late.map((e) => e.type), [
    "ClusterReady",
    "ClusterDestroyed",
  ]);
});
