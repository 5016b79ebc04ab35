import assert from "node:assert/strict";
import fc from "fast-check";
import { encode as msgpack } from "@msgpack/msgpack";
import {
  encodeFrame,
  FrameDecoder,
  MAX_FRAME_BYTES,
  PART_BYTES,
} from "../src/wire/frames.ts";
import { FrameWriter } from "../src/wire/frame_writer.ts";
import {
  clientMessage,
  fastClientMessage,
  fastWorkerMessage,
  PROTOCOL_VERSION,
  workerMessage,
} from "../src/wire/messages.ts";
import { ProtocolError } from "../src/errors.ts";

const WORKER = new URL("../worker/main.ts", import.meta.url).pathname;

Deno.test("frames survive being split at every byte boundary", () => {
  const frames = [
    encodeFrame(
      { t: "call", id: 1, m: "a.ts", k: "1:1" },
      new Uint8Array([1, 2, 3]),
    ),
    encodeFrame({ t: "cancel", id: 1 }),
    encodeFrame({ t: "bye" }),
  ];
  const all = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of frames) {
    all.set(f, at);
    at += f.length;
  }
  for (let cut = 0; cut <= all.length; cut++) {
    const decoder = new FrameDecoder(clientMessage);
    const out = [
      ...decoder.push(all.subarray(0, cut)),
      ...decoder.push(all.subarray(cut)),
    ];
    assert.equal(out.length, 3);
    const [call] = out;
    assert.ok(!(call instanceof ProtocolError));
    assert.deepEqual(call.header, { t: "call", id: 1, m: "a.ts", k: "1:1" });
    assert.deepEqual([...call.payload], [1, 2, 3]);
  }
});

/** A FrameWriter whose writes are recorded, each taking a turn of the event loop. */
function recordingWriter(): { writer: FrameWriter; writes: Uint8Array[] } {
  const writes: Uint8Array[] = [];
  const writer = new FrameWriter(
    new WritableStream<Uint8Array>({
      async write(chunk) {
        writes.push(chunk.slice());
        await new Promise((resolve) => setTimeout(resolve, 0));
      },
    }),
  );
  return { writer, writes };
}

Deno.test("a large message goes in parts, between which other tasks' messages pass, and arrives whole", async () => {
  const { writer, writes } = recordingWriter();
  const big = new Uint8Array(PART_BYTES * 8 + 123).map((_, i) => i % 251);
  const sent = writer.send({ t: "ok", id: 1 }, big);
  await new Promise((resolve) => setTimeout(resolve, 0));
  // Sent while the large message is being written.
  writer.send({ t: "ok", id: 2 }, new Uint8Array([7]));
  await sent;
  await writer.close();
  assert.ok(writes.length >= 9, `${writes.length} writes`);
  assert.ok(writes.every((w) => w.length <= PART_BYTES + 1024));
  const decoder = new FrameDecoder(workerMessage);
  const frames = writes.flatMap((w) => decoder.push(w));
  assert.equal(frames.length, 2);
  const [small, whole] = frames;
  assert.ok(
    !(small instanceof ProtocolError) && !(whole instanceof ProtocolError),
  );
  // The small message overtook the large one.
  assert.deepEqual(small.header, { t: "ok", id: 2 });
  assert.deepEqual(whole.header, { t: "ok", id: 1 });
  assert.deepEqual(whole.payload, big);
});

Deno.test("messages of one task keep their order behind a large one", async () => {
  const { writer, writes } = recordingWriter();
  writer.send({ t: "yield", id: 5 }, new Uint8Array(PART_BYTES * 3));
  writer.send({ t: "ok", id: 5 });
  await writer.close();
  const decoder = new FrameDecoder(workerMessage);
  const frames = writes.flatMap((w) => decoder.push(w));
  assert.deepEqual(
    frames.map((f) => f instanceof ProtocolError ? f.message : f.header.t),
    ["yield", "ok"],
  );
});

Deno.test("a part of an unknown message, or parts longer than announced, are ProtocolErrors", () => {
  const decoder = new FrameDecoder(workerMessage);
  const stray = decoder.push(
    encodeFrame({ t: "part", p: 9 }, new Uint8Array(3)),
  );
  assert.ok(stray[0] instanceof ProtocolError);
  assert.match(stray[0].message, /unknown message 9/);
  const long = decoder.push(
    encodeFrame(
      { t: "part", p: 1, n: 2, h: { t: "ok", id: 1 } },
      new Uint8Array(3),
    ),
  );
  assert.ok(long[0] instanceof ProtocolError);
  assert.match(long[0].message, /more parts of message 1/);
});

Deno.test("a frame with an invalid header is a ProtocolError in its place and the stream stays in sync", () => {
  const bad = msgpack({ t: "call", id: "not a number" });
  const frame = new Uint8Array(8 + bad.length);
  new DataView(frame.buffer).setUint32(0, 4 + bad.length);
  new DataView(frame.buffer).setUint32(4, bad.length);
  frame.set(bad, 8);
  const decoder = new FrameDecoder(clientMessage);
  const out = decoder.push(frame);
  assert.ok(out[0] instanceof ProtocolError);
  assert.match((out[0] as ProtocolError).message, /invalid message/);
  const next = decoder.push(encodeFrame({ t: "bye" }));
  assert.ok(!(next[0] instanceof ProtocolError));
});

Deno.test("an oversized frame length is refused", () => {
  const decoder = new FrameDecoder(workerMessage);
  const head = new Uint8Array(4);
  new DataView(head.buffer).setUint32(0, MAX_FRAME_BYTES + 1);
  assert.throws(() => decoder.push(head), /a frame is 4 to/);
});

async function feedWorker(
  input: Uint8Array,
): Promise<{ code: number; stderr: string; stdout: Uint8Array }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", WORKER],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(input).catch(() => {});
  await writer.close().catch(() => {});
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  const output = await child.output();
  clearTimeout(timer);
  return {
    code: output.code,
    stderr: new TextDecoder().decode(output.stderr),
    stdout: output.stdout,
  };
}

function replies(stdout: Uint8Array) {
  const decoder = new FrameDecoder(workerMessage);
  return decoder.push(stdout).map((f) =>
    f instanceof ProtocolError ? f : f.header
  );
}

Deno.test("the worker answers random and mutated input with protocol errors and never crashes or hangs", async () => {
  const valid = encodeFrame({
    t: "hello",
    v: PROTOCOL_VERSION,
    code: "x",
    deno: Deno.version.deno,
    modules: [],
    concurrency: 1,
  });
  const inputs = fc.sample(
    fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })).map(
        ([at, byte]) => {
          const mutated = valid.slice();
          mutated[at] = byte;
          return mutated;
        },
      ),
      fc.nat(valid.length - 1).map((cut) => valid.slice(0, cut)),
    ),
    { numRuns: 12, seed: 42 },
  );
  // Two workers at a time keep the test short on a small machine.
  for (let i = 0; i < inputs.length; i += 2) {
    const results = await Promise.all(inputs.slice(i, i + 2).map(feedWorker));
    for (const result of results) {
      assert.ok(
        [0, 2].includes(result.code),
        `exit code ${result.code}: ${result.stderr}`,
      );
      assert.doesNotMatch(result.stderr, /Uncaught|panicked/);
      for (const reply of replies(result.stdout)) {
        assert.ok(
          !(reply instanceof ProtocolError),
          "the worker's own frames are valid",
        );
        assert.ok(
          ["perr", "hello"].includes(reply.t),
          `unexpected reply ${reply.t}`,
        );
      }
    }
  }
});

Deno.test("after a bad frame the worker still answers a valid handshake", async () => {
  const bad = msgpack({ t: "nonsense" });
  const frame = new Uint8Array(8 + bad.length);
  new DataView(frame.buffer).setUint32(0, 4 + bad.length);
  new DataView(frame.buffer).setUint32(4, bad.length);
  frame.set(bad, 8);
  const hello = encodeFrame({
    t: "hello",
    v: PROTOCOL_VERSION,
    code: "x",
    deno: Deno.version.deno,
    modules: [],
    concurrency: 1,
  });
  const input = new Uint8Array(frame.length + hello.length);
  input.set(frame);
  input.set(hello, frame.length);
  const result = await feedWorker(input);
  assert.equal(result.code, 0, result.stderr);
  const got = replies(result.stdout).map((r) => (r as { t: string }).t);
  assert.deepEqual(got, ["perr", "hello"]);
});

Deno.test("a handshake from another protocol version fails clearly", async () => {
  const result = await feedWorker(encodeFrame({
    t: "hello",
    v: PROTOCOL_VERSION + 1,
    code: "x",
    deno: Deno.version.deno,
    modules: [],
    concurrency: 1,
  }));
  const [reply] = replies(result.stdout) as { t: string; failed?: boolean }[];
  assert.equal(reply.t, "hello");
  assert.equal(reply.failed, true);
});

Deno.test("FrameWriter.send refuses a payload past its message limit and sends nothing", async () => {
  const writes: Uint8Array[] = [];
  const writer = new FrameWriter(
    new WritableStream<Uint8Array>({ write: (c) => void writes.push(c) }),
    { maxMessageBytes: 1024 },
  );
  assert.equal(writer.maxMessageBytes, 1024);
  assert.throws(
    () => writer.send({ t: "ok", id: 1 }, new Uint8Array(1025)),
    (e: Error) =>
      e instanceof ProtocolError &&
      e.message ===
        "Cannot send a message of 1025 bytes: the limit is 1024",
  );
  await writer.send({ t: "ok", id: 2 }, new Uint8Array(1024));
  const frames = new FrameDecoder(workerMessage).push(
    new Uint8Array(writes.flatMap((w) => [...w])),
  );
  assert.deepEqual(
    frames.map((f) => !(f instanceof ProtocolError) && f.header),
    [
      { t: "ok", id: 2 },
    ],
  );
});

Deno.test("a log message of no task is sent without an id, and one carrying nil is read as such", () => {
  const [sent] = new FrameDecoder(workerMessage).push(
    encodeFrame({ t: "log", id: undefined, s: "stdout", l: "top level" }),
  );
  assert.ok(!(sent instanceof ProtocolError), String(sent));
  assert.deepEqual(sent.header, { t: "log", s: "stdout", l: "top level" });
  // An older sender wrote `nil` for the missing id.
  const head = msgpack({ t: "log", id: null, s: "stderr", l: "x" });
  const frame = new Uint8Array(8 + head.length);
  new DataView(frame.buffer).setUint32(0, 4 + head.length);
  new DataView(frame.buffer).setUint32(4, head.length);
  frame.set(head, 8);
  const [old] = new FrameDecoder(workerMessage).push(frame);
  assert.ok(!(old instanceof ProtocolError), String(old));
  assert.equal(old.header.t, "log");
});

Deno.test("large messages in parts arrive whole and in order however their bytes are cut (as SSH's 32 KiB packets cut them)", async () => {
  const { writer, writes } = recordingWriter();
  const big = new Uint8Array(PART_BYTES * 3 + 77).map((_, i) => (i * 7) % 253);
  const other = new Uint8Array(PART_BYTES + 5).map((_, i) => i % 13);
  writer.send({ t: "ok", id: 1 }, big);
  writer.send({ t: "yield", id: 2 }, other);
  writer.send({ t: "ok", id: 2 }, new Uint8Array([9]));
  await writer.close();
  const stream = new Uint8Array(writes.reduce((n, w) => n + w.length, 0));
  let at = 0;
  for (const w of writes) {
    stream.set(w, at);
    at += w.length;
  }
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 70_000 }), {
        minLength: 1,
        maxLength: 8,
      }),
      (sizes) => {
        const decoder = new FrameDecoder(workerMessage);
        const frames = [];
        for (let from = 0, i = 0; from < stream.length; i++) {
          const to = Math.min(stream.length, from + sizes[i % sizes.length]);
          frames.push(...decoder.push(stream.subarray(from, to)));
          from = to;
        }
        assert.equal(decoder.pending, 0);
        assert.deepEqual(
          frames.map((f) =>
            f instanceof ProtocolError
              ? f.message
              : `${f.header.t} ${
                (f.header as { id: number }).id
              } ${f.payload.length}`
          ),
          [`yield 2 ${other.length}`, `ok 2 1`, `ok 1 ${big.length}`],
        );
        const whole = frames[2] as { payload: Uint8Array };
        assert.deepEqual(whole.payload, big);
        assert.deepEqual((frames[0] as { payload: Uint8Array }).payload, other);
      },
    ),
    { numRuns: 30 },
  );
  // Cut inside a part, the decoder says bytes of a frame are pending.
  const decoder = new FrameDecoder(workerMessage);
  decoder.push(stream.subarray(0, PART_BYTES / 2));
  assert.ok(decoder.pending > 0);
  // A part past its message's announced size is still an error, also when
  // its bytes come in pieces.
  const bad = new FrameDecoder(workerMessage);
  const first = encodeFrame(
    { t: "part", p: 3, n: 100_000, h: { t: "ok", id: 1 } },
    new Uint8Array(90_000),
  );
  const second = encodeFrame({ t: "part", p: 3 }, new Uint8Array(90_000));
  const out = [
    ...bad.push(first.subarray(0, 1000)),
    ...bad.push(first.subarray(1000)),
    ...bad.push(second.subarray(0, 1000)),
    ...bad.push(second.subarray(1000)),
  ];
  assert.equal(out.length, 1);
  assert.ok(out[0] instanceof ProtocolError);
  assert.match(out[0].message, /more parts of message 3/);
});

/** The frames of the writes, decoded, as `t id size` (or the error's message). */
function decoded(writes: Uint8Array[]): string[] {
  const decoder = new FrameDecoder(workerMessage);
  return writes.flatMap((w) => decoder.push(w)).map((f) =>
    f instanceof ProtocolError
      ? f.message
      : `${f.header.t} ${(f.header as { id: number }).id} ${f.payload.length}`
  );
}

Deno.test("a message streamed as its bytes come goes in parts, other tasks' messages between them, its task's next message after it", async () => {
  const { writer, writes } = recordingWriter();
  const big = new Uint8Array(PART_BYTES * 5 + 999).map((_, i) => (i * 3) % 241);
  const stream = writer.stream({ t: "ok", id: 1 }, big.length);
  // Sent before its last bytes come: waits for it.
  writer.send({ t: "log", id: 1, s: "stdout", l: "after" });
  let done = false;
  stream.done.then(() => done = true);
  // Its bytes come in pieces of odd sizes, a turn apart; another task's
  // result meanwhile.
  const sizes = [1000, PART_BYTES * 2 + 1, 17, PART_BYTES, big.length];
  let from = 0;
  for (const [i, size] of sizes.entries()) {
    const to = Math.min(from + size, big.length);
    stream.push(big.subarray(from, to));
    from = to;
    if (i === 1) writer.send({ t: "ok", id: 2 }, new Uint8Array([5]));
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (from < big.length) assert.equal(done, false);
  }
  await stream.done;
  await writer.close();
  assert.deepEqual(decoded(writes), [
    "ok 2 1",
    `ok 1 ${big.length}`,
    "log 1 0",
  ]);
  const decoder = new FrameDecoder(workerMessage);
  const whole = writes.flatMap((w) => decoder.push(w))
    .find((f) => !(f instanceof ProtocolError) && f.payload.length > 1000);
  assert.ok(whole && !(whole instanceof ProtocolError));
  assert.deepEqual(whole.payload, big);
});

Deno.test("a streamed message abandoned half-way is dropped by the receiver, and its task's next message goes", async () => {
  const { writer, writes } = recordingWriter();
  const stream = writer.stream({ t: "ok", id: 3 }, PART_BYTES * 4);
  stream.push(new Uint8Array(PART_BYTES * 2));
  writer.send({ t: "err", id: 3 }, new Uint8Array([1, 2]));
  await new Promise((resolve) => setTimeout(resolve, 20));
  stream.abort();
  await stream.done;
  // Ignored once abandoned.
  stream.push(new Uint8Array(10));
  await writer.close();
  const decoder = new FrameDecoder(workerMessage);
  const frames = writes.flatMap((w) => decoder.push(w));
  assert.deepEqual(
    frames.map((f) => f instanceof ProtocolError ? f.message : f.header.t),
    ["err"],
  );
  // What the receiver held of it is gone: a further part of it is a part
  // of an unknown message.
  const part = encodeFrame(
    { t: "part", p: 1, h: { t: "ok", id: 3 } },
    new Uint8Array(8),
  );
  const [stray] = decoder.push(part);
  assert.ok(stray instanceof ProtocolError);
  assert.match(stray.message, /unknown message 1/);
});

Deno.test("a streamed message abandoned before any part is written sends nothing of it", async () => {
  const { writer, writes } = recordingWriter();
  writer.send({ t: "yield", id: 4 }, new Uint8Array(PART_BYTES * 2));
  const stream = writer.stream({ t: "ok", id: 4 }, PART_BYTES * 2);
  stream.push(new Uint8Array(PART_BYTES));
  stream.abort();
  writer.send({ t: "err", id: 4 });
  await writer.close();
  assert.deepEqual(decoded(writes), [`yield 4 ${PART_BYTES * 2}`, "err 4 0"]);
  assert.ok(
    !writes.some((w) => w.length < 64 && w.includes(0x78)),
    "no abandoning part",
  );
});

Deno.test("FrameWriter.stream refuses a size past the limit, and bytes past the announced size", () => {
  const writer = new FrameWriter(new WritableStream(), {
    maxMessageBytes: PART_BYTES * 4,
  });
  assert.throws(
    () => writer.stream({ t: "ok", id: 1 }, PART_BYTES * 4 + 1),
    ProtocolError,
  );
  assert.throws(() => writer.stream({ t: "ok", id: 1 }, 10), RangeError);
  const stream = writer.stream({ t: "ok", id: 1 }, PART_BYTES * 2);
  stream.push(new Uint8Array(PART_BYTES * 2 - 1));
  assert.throws(() => stream.push(new Uint8Array(2)), RangeError);
  stream.abort();
});

/** A `FrameWriter` whose writes wait until `release()` is called. */
function heldWriter() {
  const writes: Uint8Array[] = [];
  let release!: () => void;
  let gate = new Promise<void>((resolve) => release = resolve);
  const writer = new FrameWriter(
    new WritableStream<Uint8Array>({
      async write(chunk) {
        writes.push(chunk.slice());
        await gate;
      },
    }),
  );
  return {
    writer,
    writes,
    release() {
      release();
      gate = new Promise<void>((resolve) => release = resolve);
    },
  };
}

Deno.test("a call in parts is known from its first part: the receiver's sink is told in order as it fills, other tasks' messages between, and no frame comes of it", async () => {
  const { writer, writes } = recordingWriter();
  const big = new Uint8Array(PART_BYTES * 3 + 5).map((_, i) => (i * 5) % 251);
  writer.send({ t: "call", id: 1, m: "a.ts", k: "echo" }, big);
  writer.send({ t: "call", id: 2, m: "a.ts", k: "echo" }, new Uint8Array([7]));
  await writer.close();
  const decoder = new FrameDecoder(clientMessage);
  const events: string[] = [];
  let buffer: Uint8Array | undefined;
  decoder.onstream = (header, payload) => {
    events.push(`start ${header.t} ${(header as { id: number }).id}`);
    buffer = payload;
    return {
      progress: (filled) => events.push(`filled ${filled}`),
      abort: () => events.push("abort"),
    };
  };
  for (const w of writes) {
    for (const frame of decoder.push(w)) {
      assert.ok(!(frame instanceof ProtocolError), String(frame));
      events.push(`frame ${frame.header.t} ${frame.payload.length}`);
    }
  }
  // The sink hears of the call first, then of each part in order; the
  // small call passes before the large one is whole.
  assert.equal(events.find((e) => !e.startsWith("frame")), "start call 1");
  assert.deepEqual(events.filter((e) => e.startsWith("filled")), [
    `filled ${PART_BYTES}`,
    `filled ${PART_BYTES * 2}`,
    `filled ${PART_BYTES * 3}`,
    `filled ${big.length}`,
  ]);
  assert.ok(
    events.indexOf("frame call 1") < events.indexOf(`filled ${big.length}`),
  );
  assert.deepEqual(buffer, big);
  // Without a sink the message comes whole, once.
  const plain = new FrameDecoder(clientMessage);
  assert.deepEqual(
    writes.flatMap((w) => plain.push(w)).map((f) =>
      f instanceof ProtocolError ? f.message : f.header.t
    ),
    ["call", "call"],
  );
});

Deno.test("FrameWriter.abandon stops a call half-way with an x part: the receiver aborts its sink, and the task's later messages still go", async () => {
  const { writer, writes, release } = heldWriter();
  const sent = writer.send(
    { t: "call", id: 5, m: "a.ts", k: "echo" },
    new Uint8Array(PART_BYTES * 8),
  );
  writer.send({ t: "stop", id: 5 });
  // Not yet started: nothing of it is sent.
  writer.send(
    { t: "call", id: 6, m: "a.ts", k: "echo" },
    new Uint8Array(PART_BYTES * 2),
  );
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(writer.abandon(6), true);
  assert.equal(writer.abandon(7), false);
  // Two parts of call 5 go; then the task is cancelled.
  release();
  await new Promise((resolve) => setTimeout(resolve, 0));
  release();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(writer.abandon(5), true);
  assert.equal(writer.abandon(5), false);
  for (let i = 0; i < 20; i++) {
    release();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  await sent;
  const closed = writer.close();
  for (let i = 0; i < 5; i++) {
    release();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  await closed;
  const decoder = new FrameDecoder(clientMessage);
  const events: string[] = [];
  decoder.onstream = (header) => {
    const id = (header as { id: number }).id;
    return {
      progress: (filled) => events.push(`${id} filled ${filled}`),
      abort: () => events.push(`${id} abort`),
    };
  };
  for (const w of writes) {
    for (const frame of decoder.push(w)) {
      events.push(
        frame instanceof ProtocolError ? frame.message : frame.header.t,
      );
    }
  }
  assert.equal(events.filter((e) => e === "5 abort").length, 1);
  assert.ok(!events.includes(`5 filled ${PART_BYTES * 8}`), events.join());
  assert.ok(!events.some((e) => e.startsWith("6 ")), events.join());
  assert.equal(events.at(-1), "stop");
  assert.ok(events.indexOf("stop") > events.indexOf("5 abort"));
  assert.equal(decoder.pending, 0);
});

Deno.test("a first part must carry its message's header and a size within the limit; the decoder's end aborts what was on its way", () => {
  const decoder = new FrameDecoder(clientMessage);
  const [headless] = decoder.push(
    encodeFrame({ t: "part", p: 1, n: 10 }, new Uint8Array(4)),
  );
  assert.ok(headless instanceof ProtocolError);
  assert.match(headless.message, /first part of message 1 without its header/);
  const [huge] = decoder.push(encodeFrame(
    { t: "part", p: 2, n: 2 ** 32, h: { t: "ping" } },
    new Uint8Array(4),
  ));
  assert.ok(huge instanceof ProtocolError);
  assert.match(huge.message, /the limit is 4294967295/);
  // An invalid header is reported once, at its first part; its other
  // parts are dropped.
  const bad = [
    ...decoder.push(encodeFrame(
      { t: "part", p: 3, n: 8, h: { t: "nonsense" } as never },
      new Uint8Array(4),
    )),
    ...decoder.push(encodeFrame({ t: "part", p: 3 }, new Uint8Array(4))),
  ];
  assert.equal(bad.length, 1);
  assert.match((bad[0] as ProtocolError).message, /invalid message/);
  const aborted: number[] = [];
  decoder.onstream = (header) => ({
    progress() {},
    abort: () => aborted.push((header as { id: number }).id),
  });
  decoder.push(encodeFrame(
    { t: "part", p: 4, n: 8, h: { t: "call", id: 9, m: "a.ts", k: "k" } },
    new Uint8Array(4),
  ));
  decoder.end();
  assert.deepEqual(aborted, [9]);
});

/** A worker process driven frame by frame: what it answers, as it comes. */
function driveWorker() {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", WORKER],
    cwd: new URL("..", import.meta.url).pathname,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdin = child.stdin.getWriter();
  const decoder = new FrameDecoder(workerMessage);
  const got: { header: { t: string; id?: number }; payload: Uint8Array }[] = [];
  let wake = () => {};
  const reading = (async () => {
    for await (const chunk of child.stdout) {
      for (const frame of decoder.push(chunk)) {
        if (frame instanceof ProtocolError) throw frame;
        got.push(frame as (typeof got)[number]);
      }
      wake();
    }
    wake();
  })();
  const stderr = new Response(child.stderr).text();
  return {
    write: (bytes: Uint8Array) => stdin.write(bytes),
    /** The next reply to task `id` (or of type `t`), waited for. */
    async reply(match: { id?: number; t?: string }) {
      for (;;) {
        const at = got.findIndex((f) =>
          (match.id === undefined || f.header.id === match.id) &&
          (match.t === undefined || f.header.t === match.t) &&
          !["log", "credit"].includes(f.header.t)
        );
        if (at >= 0) return got.splice(at, 1)[0];
        await new Promise<void>((resolve) => wake = resolve);
      }
    },
    async end() {
      await stdin.close().catch(() => {});
      const status = await child.status;
      await reading.catch(() => {});
      return { code: status.code, stderr: await stderr };
    },
  };
}

Deno.test("a call whose argument comes in parts: small tasks of its shared sandbox run meanwhile, abandoned half-way it is dropped (the sandbox never runs it and goes on), and whole it arrives byte for byte", async () => {
  const { encode, decode } = await import("../src/wire/codec.ts");
  const { countShared } = await import("./fixtures/sandboxed.ts");
  const { echo } = await import("./fixtures/computes.ts");
  const counter = { m: "tests/fixtures/sandboxed.ts", k: countShared.id.key };
  const echoer = { m: "tests/fixtures/computes.ts", k: echo.id.key };
  const worker = driveWorker();
  try {
    await worker.write(encodeFrame({
      t: "hello",
      v: PROTOCOL_VERSION,
      code: "x",
      deno: Deno.version.deno,
      modules: [],
      concurrency: 1,
    }));
    assert.equal((await worker.reply({ t: "hello" })).header.t, "hello");
    const value = async (id: number) => {
      const reply = await worker.reply({ id });
      assert.equal(reply.header.t, "ok", JSON.stringify(reply.header));
      return decode(reply.payload);
    };
    await worker.write(
      encodeFrame({ t: "call", id: 1, ...counter }, encode([])),
    );
    assert.equal(await value(1), 1);
    // Call 2's argument: its first two parts of eight.
    const args = encode([new Uint8Array(PART_BYTES * 8)]);
    const part = (p: number, i: number, bytes: Uint8Array, id: number) =>
      encodeFrame({
        t: "part",
        p,
        ...(i === 0
          ? { n: bytes.length, h: { t: "call", id, ...counter } }
          : {}),
      }, bytes.subarray(i * PART_BYTES, (i + 1) * PART_BYTES));
    // The shared sandbox's counter shows which tasks ran there, in order.
    for (let i = 0; i < 2; i++) await worker.write(part(1, i, args, 2));
    // A small task of the same sandbox runs while the argument is half-way.
    await worker.write(
      encodeFrame({ t: "call", id: 3, ...counter }, encode([])),
    );
    assert.equal(await value(3), 2);
    // Abandoned: its task fails as cancelled, and never runs.
    await worker.write(encodeFrame({ t: "part", p: 1, x: true }));
    const dropped = await worker.reply({ id: 2 });
    assert.equal(dropped.header.t, "err");
    assert.match(
      JSON.stringify(decode(dropped.payload)),
      /TaskCancelledError/,
    );
    // The same sandbox goes on: the counter was not reset, nor bumped by 2.
    await worker.write(
      encodeFrame({ t: "call", id: 4, ...counter }, encode([])),
    );
    assert.equal(await value(4), 3);
    // Whole, a large argument arrives byte for byte, its parts a turn apart.
    const big = new Uint8Array(PART_BYTES * 5 + 3).map((_, i) => (i * 7) % 251);
    const bigArgs = encode([big]);
    const parts = Math.ceil(bigArgs.length / PART_BYTES);
    for (let i = 0; i < parts; i++) {
      await worker.write(part(2, i, bigArgs, 5));
      if (i === 2) {
        await worker.write(
          encodeFrame({ t: "call", id: 6, ...counter }, encode([])),
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await worker.write(
      encodeFrame({ t: "call", id: 7, ...echoer }, encode([9])),
    );
    assert.equal(await value(6), 4);
    assert.equal(await value(7), 9);
    // Call 5 started once its argument had all come, after call 6.
    assert.equal(await value(5), 5);
    // Echo's big argument, in parts, comes back whole.
    for (let i = 0; i < parts; i++) {
      await worker.write(encodeFrame({
        t: "part",
        p: 3,
        ...(i === 0
          ? { n: bigArgs.length, h: { t: "call", id: 8, ...echoer } }
          : {}),
      }, bigArgs.subarray(i * PART_BYTES, (i + 1) * PART_BYTES)));
    }
    assert.deepEqual(await value(8), big);
    // The input ends half-way through an argument: the worker ends cleanly.
    await worker.write(part(4, 0, args, 9));
  } finally {
    const { code, stderr } = await worker.end();
    assert.equal(code, 0, stderr);
    assert.doesNotMatch(stderr, /Uncaught|panicked/);
  }
});
Deno.test("the hand check of every task's messages accepts exactly what the schema accepts, as it is", () => {
  const headers: unknown[] = [
    { t: "ok", id: 3 },
    { t: "ok", id: 0 },
    { t: "ok", id: -1 },
    { t: "ok", id: 1.5 },
    { t: "ok", id: 2 ** 53 },
    { t: "ok", id: "3" },
    { t: "ok" },
    { t: "ok", id: 3, extra: true },
    { t: "err", id: 3 },
    { t: "err", id: 3, path: "[0]", problem: "a symbol" },
    { t: "yield", id: 9 },
    { t: "open", id: 9 },
    { t: "credit", id: 1, s: 0, n: 5 },
    { t: "log", id: null, s: "stdout", l: "hi" },
    { t: "call", id: 1, m: "a.ts", k: "f" },
    { t: "call", id: 1, m: "a.ts", k: 7 },
    { t: "call", id: 1, m: "a.ts" },
    { t: "call", id: 1, m: "a.ts", k: "f", streams: [[0, true]] },
    { t: "cancel", id: 4 },
    { t: "nope", id: 4 },
    Object.assign(Object.create({ inherited: 1 }), { t: "ok", id: 3 }),
    [],
    null,
    "ok",
  ];
  for (
    const [fast, full] of [
      [fastWorkerMessage, workerMessage],
      [fastClientMessage, clientMessage],
    ] as const
  ) {
    for (const header of headers) {
      const quick = fast.safeParse(header);
      const slow = full.safeParse(header);
      assert.equal(quick.success, slow.success, JSON.stringify(header));
      if (quick.success && slow.success) {
        assert.deepEqual(quick.data, slow.data, JSON.stringify(header));
      }
    }
  }
});

Deno.test("FrameWriter: a frame written by its sink while a write is under way goes after it, once, and the writer goes on", async () => {
  const seen: number[] = [];
  const sink = new WritableStream<Uint8Array>({
    write(chunk) {
      const id = new FrameDecoder(clientMessage).push(chunk)
        .map((f) => (f as { header: { id: number } }).header.id);
      seen.push(...id);
      // The sink calls back into the writer while it is being written to.
      if (id.includes(1)) writer.write(encodeFrame({ t: "cancel", id: 2 }));
    },
  });
  const writer = new FrameWriter(sink);
  await writer.write(encodeFrame({ t: "cancel", id: 1 }));
  await writer.write(encodeFrame({ t: "cancel", id: 3 }));
  await writer.close();
  assert.deepEqual(seen, [1, 2, 3]);
});
