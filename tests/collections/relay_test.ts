/**
 * The worker's relay of collection calls (worker/collections.ts), with the
 * client played by the test: what a task leaves behind when it ends, and
 * what a reply nobody waits for any more took.
 */
import assert from "node:assert/strict";
import { CollectionRelay } from "../../worker/collections.ts";
import { decode, encode } from "../../src/wire/codec.ts";
import { pack, unpack } from "../../src/collections/_batch.ts";
import type { WorkerMessage } from "../../src/wire/messages.ts";

/** A relay, and the calls it sent to the client, decoded. */
function relay() {
  const sent: { header: WorkerMessage; calls: unknown[] }[] = [];
  const r = new CollectionRelay((header, payload) => {
    sent.push({
      header,
      calls: payload && payload.length > 0
        ? unpack(payload).map((b) => decode(b))
        : [],
    });
  });
  const flushed = async () => {
    await Promise.resolve();
    return sent.splice(0);
  };
  return { r, flushed };
}

Deno.test("a task that ends withdraws its blocked calls and releases the locks it kept", async () => {
  const { r, flushed } = relay();
  r.call(
    encode({ kind: "lock", name: "gpu", op: "acquire" }),
    "lock.acquire",
    1,
    () => {},
  );
  r.call(
    encode({ kind: "queue", name: "q", op: "get" }),
    "queue.get",
    1,
    () => {},
  );
  r.call(
    encode({ kind: "counter", name: "n", op: "add", n: 1 }),
    "counter.add",
    1,
    () => {},
  );
  await flushed();
  r.replies([1], undefined, pack([encode({ token: "t1" })]));
  r.taskEnded(1);
  const out = await flushed();
  const withdrawn = out.find((m) => "x" in m.header);
  const released = out.find((m) => !("x" in m.header));
  assert.equal(out.length, 2);
  assert.deepEqual(withdrawn?.header, { t: "coll", c: [2], x: true });
  assert.deepEqual(released?.calls, [
    { kind: "lock", name: "gpu", op: "release", token: "t1" },
  ]);
});

Deno.test("a value a withdrawn get took goes back in its queue", async () => {
  const { r, flushed } = relay();
  const c = r.call(
    encode({ kind: "queue", name: "q", op: "get" }),
    "queue.get",
    1,
    () => {
      throw new Error("nobody waits for it");
    },
  );
  r.withdraw(c);
  await flushed();
  // The client had answered before it heard of the withdrawal.
  r.replies([c], undefined, pack([encode({ value: new Uint8Array([7]) })]));
  const out = await flushed();
  assert.deepEqual(out[0].calls, [
    { kind: "queue", name: "q", op: "put", value: new Uint8Array([7]) },
  ]);
});

Deno.test("a lock taken outside any task stays held; one taken after its task ended is given back", async () => {
  const { r, flushed } = relay();
  const outside = r.call(
    encode({ kind: "lock", name: "a", op: "acquire" }),
    "lock.acquire",
    undefined,
    () => {},
  );
  r.taskEnded(5);
  const late = r.call(
    encode({ kind: "lock", name: "b", op: "acquire" }),
    "lock.acquire",
    5,
    () => {},
  );
  await flushed();
  r.replies(
    [outside, late],
    undefined,
    pack([encode({ token: "ta" }), encode({ token: "tb" })]),
  );
  const out = await flushed();
  assert.deepEqual(out.flatMap((m) => m.calls), [
    { kind: "lock", name: "b", op: "release", token: "tb" },
  ]);
});
