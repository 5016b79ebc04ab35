// The channel between the worker process and a sandbox process, over a real
// Unix socket: messages and their buffers arrive whole and in order, a large
// payload lets later messages pass, and a frame past its limits from an
// untrusted side ends the channel.
import assert from "node:assert/strict";
import { Channel, PART_BYTES } from "../worker/sandbox/channel.ts";
import { moduleFlags, permissionFlags } from "../worker/sandbox/process.ts";
import { tempRoot } from "./helpers.ts";
import { encode as msgpack } from "@msgpack/msgpack";

const root = await tempRoot();

/** Two ends of a Unix socket: the channel under test, and the raw peer. */
async function pair(): Promise<{
  listener: Deno.Listener;
  near: Channel;
  far: Deno.Conn;
}> {
  const path = `${await Deno.makeTempDir({ dir: root })}/socket`;
  const listener = Deno.listen({ transport: "unix", path });
  const accepted = listener.accept();
  const near = new Channel(await Deno.connect({ transport: "unix", path }));
  return { listener, near, far: await accepted };
}

/** Collects the messages a channel receives until `count` have come. */
function receive(channel: Channel, count: number): Promise<unknown[]> {
  const got: unknown[] = [];
  return new Promise((resolve) => {
    channel.onmessage = (event) => {
      got.push(event.data);
      if (got.length === count) resolve(got);
    };
  });
}

Deno.test("a channel delivers messages in order, their array buffers byte for byte", async () => {
  const { listener, near, far } = await pair();
  const other = new Channel(far);
  const got = receive(other, 3);
  const bytes = new Uint8Array(300_000).map((_, i) => i & 255);
  near.postMessage({ t: "ok", id: 1, b: bytes.slice().buffer });
  near.postMessage({ t: "batch", messages: [{ t: "log", l: "é" }, { n: 2 }] });
  near.postMessage([3, "key", new ArrayBuffer(0), [[0, true]]]);
  const [first, second, third] = await got as [
    { b: ArrayBuffer },
    unknown,
    unknown[],
  ];
  assert.deepEqual(new Uint8Array(first.b), bytes);
  assert.deepEqual(second, {
    t: "batch",
    messages: [{ t: "log", l: "é" }, { n: 2 }],
  });
  assert.equal(third[0], 3);
  assert.ok(third[2] instanceof ArrayBuffer);
  near.close();
  other.close();
  listener.close();
});

Deno.test("a large payload goes in parts, and a message posted after it arrives first", async () => {
  const { listener, near, far } = await pair();
  const other = new Channel(far);
  const got = receive(other, 2);
  const big = new Uint8Array(32 * PART_BYTES + 5).fill(9);
  near.postBytes({ t: "ok", id: 1 }, [new Uint8Array([1, 2]), big]);
  // Posted once the payload's first parts are on their way.
  setTimeout(() => near.postMessage({ t: "ok", id: 2 }), 0);
  const [first, second] = await got as { id: number; b?: ArrayBuffer }[];
  assert.equal(first.id, 2);
  assert.equal(second.id, 1);
  const joined = new Uint8Array(second.b!);
  assert.equal(joined.length, big.length + 2);
  assert.deepEqual([...joined.subarray(0, 3)], [1, 2, 9]);
  assert.equal(joined[joined.length - 1], 9);
  near.close();
  other.close();
  listener.close();
});

Deno.test("a frame past the channel's limits ends it with a reason", async () => {
  const { listener, near, far } = await pair();
  const ended = new Promise<string | undefined>((resolve) =>
    near.onclose = resolve
  );
  // A header claimed to be 1 GiB long.
  const frame = new Uint8Array(8);
  new DataView(frame.buffer).setUint32(0, 2 ** 30);
  await far.write(frame);
  assert.match(String(await ended), /limits/);
  far.close();
  listener.close();
});

Deno.test("a sandbox process gets the worker's module flags and exactly its permissions as flags", () => {
  assert.deepEqual(
    moduleFlags([
      "/usr/bin/deno",
      "run",
      "--quiet",
      "--no-prompt",
      "-A",
      "--unstable-worker-options",
      "--cached-only",
      "--frozen",
      "--config",
      "/code/deno.json",
      "/lib/worker/main.ts",
      "--not-a-flag-of-deno",
    ]),
    ["--quiet", "--cached-only", "--frozen", "--config", "/code/deno.json"],
  );
  assert.deepEqual(
    permissionFlags({
      read: ["/data", "/b"],
      write: false,
      net: true,
      env: [],
      sys: ["hostname"],
    }),
    [
      "--allow-read=/data,/b",
      "--allow-net",
      "--allow-sys=hostname",
    ],
  );
  assert.throws(
    () => permissionFlags({ read: ["/a,b"] }),
    /Cannot grant read access to "\/a,b": .* cannot hold a comma/,
  );
});

Deno.test("many small messages of one turn, bytes inside them, arrive whole and in order around a large one", async () => {
  const { listener, near, far } = await pair();
  const other = new Channel(far);
  const count = 2_001;
  const got = receive(other, count);
  const large = new Uint8Array(700_000).map((_, i) => (i * 7) & 255);
  for (let i = 0; i < count; i++) {
    if (i === 1_000) near.postMessage({ i, b: large.slice().buffer });
    // Small bytes travel inside the message, as MessagePack's bin.
    else near.postMessage({ i, v: new Uint8Array(i % 50).fill(i & 255) });
  }
  const messages = await got as {
    i: number;
    v?: Uint8Array;
    b?: ArrayBuffer;
  }[];
  assert.deepEqual(messages.map((m) => m.i), [...Array(count).keys()]);
  for (const m of messages) {
    if (m.i === 1_000) assert.deepEqual(new Uint8Array(m.b!), large);
    else assert.deepEqual(m.v, new Uint8Array(m.i % 50).fill(m.i & 255));
  }
  near.close();
  other.close();
  listener.close();
});

Deno.test("a payload taken as it comes reaches its sink part by part, in order, with messages posted meanwhile delivered between", async () => {
  const { listener, near, far } = await pair();
  const other = new Channel(far);
  const events: string[] = [];
  const pushed: Uint8Array[] = [];
  let ended!: () => void;
  const end = new Promise<void>((resolve) => ended = resolve);
  other.onstream = (data, total) => {
    events.push(`start ${data.t} ${data.id} ${total}`);
    return {
      push: (bytes) => {
        assert.ok(bytes.length <= PART_BYTES);
        if (pushed.length === 0) events.push("first bytes");
        pushed.push(bytes);
      },
      end: () => {
        events.push("end");
        ended();
      },
      abort: () => events.push("abort"),
    };
  };
  other.onmessage = (event) => events.push(`message ${event.data.id}`);
  const big = new Uint8Array(24 * PART_BYTES + 3).map((_, i) => (i * 5) % 251);
  near.postBytes({ t: "ok", id: 1 }, [new Uint8Array([7]), big]);
  setTimeout(() => near.postMessage({ t: "ok", id: 2 }), 0);
  await end;
  // The small result came while the large one was on its way, not after.
  assert.equal(events[0], `start ok 1 ${big.length + 1}`);
  assert.equal(events.at(-1), "end");
  assert.ok(events.includes("message 2"));
  assert.ok(events.indexOf("message 2") < events.length - 1);
  assert.ok(!events.includes("abort"));
  const joined = new Uint8Array(pushed.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of pushed) {
    joined.set(p, at);
    at += p.length;
  }
  assert.equal(joined[0], 7);
  assert.deepEqual(joined.subarray(1), big);
  near.close();
  other.close();
  listener.close();
});

Deno.test("a payload taken as it comes whose sender dies half-way aborts its sink", async () => {
  const { listener, near, far } = await pair();
  const events: string[] = [];
  const aborted = new Promise<void>((resolve) => {
    near.onstream = () => ({
      push: () => {
        if (!events.includes("push")) events.push("push");
      },
      end: () => events.push("end"),
      abort: () => {
        events.push("abort");
        resolve();
      },
    });
  });
  // The sender's frames, written raw: a payload of 10 parts announced, two sent.
  const header = msgpack({ t: "ok", id: 1 });
  const head = new Uint8Array(16 + header.length);
  const view = new DataView(head.buffer);
  view.setUint32(0, 0x80000000 | header.length);
  view.setUint32(4, 1);
  view.setFloat64(8, 10 * PART_BYTES);
  head.set(header, 16);
  await far.write(head);
  for (let i = 0; i < 2; i++) {
    const part = new Uint8Array(12 + PART_BYTES);
    const pv = new DataView(part.buffer);
    pv.setUint32(0, 0xffffffff);
    pv.setUint32(4, 1);
    pv.setUint32(8, PART_BYTES);
    for (let at = 0; at < part.length;) {
      at += await far.write(part.subarray(at));
    }
  }
  far.close();
  await aborted;
  assert.deepEqual(events, ["push", "abort"]);
  listener.close();
});

Deno.test("a payload given as it comes goes part by part, messages posted meanwhile arrive first, and its message arrives once whole", async () => {
  const { listener, near, far } = await pair();
  const other = new Channel(far);
  const got = receive(other, 3);
  const big = new Uint8Array(PART_BYTES * 2 + 9).map((_, i) => (i * 11) & 255);
  const out = near.postStream({ t: "task", task: [1, "k"] }, big.length);
  out.push(big.subarray(0, PART_BYTES + 3));
  near.postMessage({ t: "small", n: 1 });
  await new Promise((resolve) => setTimeout(resolve, 20));
  near.postMessage({ t: "small", n: 2 });
  out.push(big.subarray(PART_BYTES + 3));
  assert.throws(() => out.push(new Uint8Array(1)), RangeError);
  const [first, second, whole] = await got as Record<string, unknown>[];
  assert.deepEqual([first, second], [{ t: "small", n: 1 }, {
    t: "small",
    n: 2,
  }]);
  assert.deepEqual(whole.task, [1, "k"]);
  assert.deepEqual(new Uint8Array(whole.b as ArrayBuffer), big);
  near.close();
  other.close();
  listener.close();
});

Deno.test("a payload abandoned half-way is dropped by the receiver (its sink aborted), its message never arrives, and the channel goes on", async () => {
  const { listener, near, far } = await pair();
  const other = new Channel(far);
  const got = receive(other, 2);
  const out = near.postStream({ t: "task", task: [1, "k"] }, PART_BYTES * 4);
  out.push(new Uint8Array(PART_BYTES * 2));
  await new Promise((resolve) => setTimeout(resolve, 20));
  out.abort();
  out.push(new Uint8Array(8)); // Ignored once abandoned.
  near.postMessage({ t: "after" });
  // Taken as it comes, the receiver's sink is told.
  const events: string[] = [];
  other.onstream = () => ({
    push: () => void (events.includes("push") || events.push("push")),
    end: () => events.push("end"),
    abort: () => events.push("abort"),
  });
  const sunk = near.postStream({ t: "ok", id: 2 }, PART_BYTES * 3);
  sunk.push(new Uint8Array(PART_BYTES));
  await new Promise((resolve) => setTimeout(resolve, 20));
  sunk.abort();
  other.onstream = null;
  const last = near.postStream({ t: "task", task: [3, "k"] }, 5);
  last.push(new Uint8Array([1, 2, 3, 4, 5]));
  const messages = await got as Record<string, unknown>[];
  assert.deepEqual(messages[0], { t: "after" });
  assert.deepEqual(messages[1].task, [3, "k"]);
  assert.deepEqual(events, ["push", "abort"]);
  near.close();
  other.close();
  listener.close();
});

Deno.test("payloads abandoned half-way do not count against the payloads a channel takes in parts at once", async () => {
  const { listener, near, far } = await pair();
  const other = new Channel(far);
  let closed: string | undefined = "open";
  other.onclose = (reason) => closed = reason;
  const got = receive(other, 1);
  // More than the 1024 a receiver holds at once, each abandoned.
  for (let i = 0; i < 1100; i++) {
    const out = near.postStream({ t: "task", task: [i, "k"] }, 10);
    out.push(new Uint8Array(3));
    await new Promise((resolve) => setTimeout(resolve, 0));
    out.abort();
  }
  const out = near.postStream({ t: "task", task: [9999, "k"] }, 2);
  out.push(new Uint8Array([4, 2]));
  const [whole] = await got as Record<string, unknown>[];
  assert.deepEqual(whole.task, [9999, "k"]);
  assert.equal(closed, "open");
  near.close();
  other.close();
  listener.close();
});
