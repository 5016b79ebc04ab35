// Task output and results that cannot hurt the worker or the user's
// terminal: a result past the size of one message fails its task, not the
// node; output is bounded (lines cut, floods dropped and counted); control
// characters are shown escaped; output at a module's top level arrives as
// the node's own.
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import type { PoolEvent } from "../src/events.ts";
import { LineSplitter, MAX_LINE_CHARS } from "../src/wire/output.ts";
import { square } from "./fixtures/computes.ts";
import { fresh, quiet } from "./fixtures/noisy_module.ts";
import {
  bigError,
  bigItem,
  bigResult,
  burst,
  flood,
  noNewline,
} from "./fixtures/output.ts";
import { tempRoot } from "./helpers.ts";

const root = await tempRoot();
/** The limit of one message on the workers of this file (the real one is 4 GiB). */
const LIMIT = 1024 * 1024;

/**
 * A pool whose workers have the lower limit. The variable is set only while
 * the workers start: the test runner shares one process environment between
 * test files, and the other files' workers keep the real limit.
 */
async function start(
  events: PoolEvent[] = [],
): Promise<sky.ComputePool> {
  Deno.env.set("SKYWARD_MAX_MESSAGE_BYTES", String(LIMIT));
  try {
    return await sky.ComputePool.start({
      provider: sky.Local({ root }),
      console: "silent",
      onEvent: (e) => events.push(e),
    });
  } finally {
    Deno.env.delete("SKYWARD_MAX_MESSAGE_BYTES");
  }
}

/** Resident memory of a process, in bytes (`VmRSS` of /proc/<pid>/status). */
async function rss(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]);
  assert.ok(kb > 0, `no VmRSS for ${pid}`);
  return kb * 1024;
}

function logs(events: PoolEvent[]): Extract<PoolEvent, { type: "Log" }>[] {
  return events.filter((e): e is Extract<PoolEvent, { type: "Log" }> =>
    e.type === "Log"
  );
}

Deno.test("a result too large for one message fails its task with a SerializationError naming the size and the limit; the node keeps serving", async () => {
  const events: PoolEvent[] = [];
  await using pool = await start(events);
  const pid = pool.workerPids[0];
  const error = await pool.run(bigResult(2 * LIMIT)).then(
    () => assert.fail("a result past the limit was sent"),
    (e) => e,
  );
  assert.ok(error instanceof sky.SerializationError, String(error));
  assert.equal(error.path, "result");
  assert.match(error.message, new RegExp(`is ${2 * LIMIT + 5} bytes`));
  assert.match(error.message, new RegExp(`limit of ${LIMIT} bytes`));
  // The same worker runs the next task: no retry, no node lost.
  assert.equal(await pool.run(square(4)), 16);
  assert.equal(pool.workerPids[0], pid);
  assert.deepEqual(
    events.filter((e) => e.type === "NodeLost" || e.type === "TaskStarted")
      .map((e) => e.type === "TaskStarted" ? e.name : e.type),
    ["bigResult", "square"],
  );
  // Under the limit, the same compute works.
  assert.equal((await pool.run(bigResult(LIMIT / 2))).length, LIMIT / 2);
});

Deno.test("a streamed item too large for one message fails its task, not the worker", async () => {
  const events: PoolEvent[] = [];
  await using pool = await start(events);
  const pid = pool.workerPids[0];
  const seen: unknown[] = [];
  const error = await (async () => {
    for await (const item of pool.run(bigItem(2 * LIMIT))) seen.push(item);
  })().then(() => assert.fail("an item past the limit was sent"), (e) => e);
  assert.ok(error instanceof sky.SerializationError, String(error));
  assert.match(error.message, /yielded.*past the limit of 1048576 bytes/);
  // What came before it arrived (unless it shared its batch).
  assert.deepEqual(seen, [1].slice(0, seen.length));
  assert.equal(await pool.run(square(5)), 25);
  assert.equal(pool.workerPids[0], pid);
  assert.ok(!events.some((e) => e.type === "NodeLost"));
});

Deno.test("an error too large for one message fails its task with an error saying so; the node keeps serving", async () => {
  await using pool = await start();
  const pid = pool.workerPids[0];
  const error = await pool.run(bigError(2 * LIMIT)).then(
    () => assert.fail("the task did not fail"),
    (e) => e,
  );
  assert.ok(error instanceof sky.RemoteError, String(error));
  assert.match(
    error.message,
    /^Error: The task failed, but its error is \d+ bytes once encoded, past the limit of 1048576 bytes/,
  );
  assert.equal(await pool.run(square(6)), 36);
  assert.equal(pool.workerPids[0], pid);
});

Deno.test("a task printing 1 MiB lines in a loop keeps the worker under 384 MiB resident", async () => {
  const BOUND = 384 * 1024 * 1024;
  const events: PoolEvent[] = [];
  const pool = await start(events);
  let peak = 0;
  let over = false;
  try {
    const pid = pool.workerPids[0]!;
    assert.match(
      await Deno.readTextFile(`/proc/${pid}/cmdline`),
      /worker\/main\.ts/,
    );
    // 1 GiB of output; the watch stops the test as soon as it is over the
    // bound, so that a regression cannot take the machine.
    const running = pool.run(flood(1024, 1024 * 1024));
    let done = false;
    running.then(() => done = true, () => done = true);
    while (!done) {
      peak = Math.max(peak, await rss(pid));
      if (peak > BOUND) {
        over = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    if (!over) assert.equal(await running, 1024);
  } finally {
    await pool.close();
  }
  assert.ok(
    !over,
    `the worker grew to ${Math.round(peak / 2 ** 20)} MiB resident`,
  );
  // Lines arrived cut to MAX_LINE_CHARS, with a marker.
  const lines = logs(events).filter((e) => e.line.startsWith("xxx"));
  assert.ok(lines.length > 0);
  for (const { line } of lines) {
    assert.ok(
      line.length < MAX_LINE_CHARS + 64 &&
        / … \[983040 more characters cut\]$/.test(line),
      `a line of ${line.length} characters ending ${line.slice(-60)}`,
    );
  }
});

Deno.test("a burst of output faster than it can be sent is dropped and counted in a marker line", async () => {
  const events: PoolEvent[] = [];
  await using pool = await start(events);
  assert.equal(await pool.run(burst(2000, 10_000)), 2000);
  // The marker follows the lines that went through, once they are written.
  const marker = /^\[skyward\] (\d+) lines of output dropped/;
  for (
    let i = 0;
    i < 100 && !logs(events).some((e) => marker.test(e.line));
    i++
  ) {
    await pool.run(square(i));
  }
  const task = logs(events).filter((e) => e.task !== undefined);
  const kept = task.filter((e) => !marker.test(e.line));
  const dropped = task.map((e) => marker.exec(e.line)?.[1]).filter(Boolean)
    .reduce((sum, n) => sum + Number(n), 0);
  assert.ok(
    dropped > 0,
    `no marker line in ${task.length} lines: ${
      task.slice(-3).map((e) => e.line.slice(0, 80)).join(" | ")
    }`,
  );
  assert.equal(kept.length + dropped, 2000);
  // What went through is the start of the output, in order.
  assert.deepEqual(
    kept.map((e) => Number(e.line.split(" ")[0])),
    kept.map((_, i) => i),
  );
});

Deno.test("output without newlines reaches the client cut at 64 Ki characters, with a marker", async () => {
  const events: PoolEvent[] = [];
  await using pool = await start(events);
  const BYTES = 16 * 1024 * 1024;
  assert.equal(await pool.run(noNewline(BYTES)), BYTES);
  let line: string | undefined;
  for (let i = 0; i < 100 && line === undefined; i++) {
    line = logs(events).find((e) => e.line.startsWith("zzz"))?.line;
    if (line === undefined) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(
    line !== undefined,
    `the line never arrived: ${
      logs(events).map((e) => `${e.line.slice(0, 40)}…(${e.line.length})`)
    }`,
  );
  assert.equal(
    line,
    "z".repeat(MAX_LINE_CHARS) +
      ` … [${BYTES - MAX_LINE_CHARS} more characters cut]`,
  );
});

Deno.test("the line splitter holds at most one cut line, however long the text without a newline", () => {
  const lines = new LineSplitter(1000);
  const chunk = "a".repeat(64 * 1024);
  for (let i = 0; i < 1024; i++) {
    assert.deepEqual(lines.push(chunk), []);
    assert.ok(lines.buffered <= 1000);
  }
  assert.deepEqual(lines.push("b\nc"), [
    "a".repeat(1000) +
    ` … [${64 * 1024 * 1024 - 1000 + 1} more characters cut]`,
  ]);
  assert.equal(lines.end(), "c");
  assert.equal(lines.end(), undefined);
  // A surrogate pair is never split.
  const emoji = new LineSplitter(3);
  assert.deepEqual(emoji.push("ab😀cd\n"), [
    "ab … [4 more characters cut]",
  ]);
});

Deno.test("output at a module's top level arrives as a Log event of its node, with no task", async () => {
  const events: PoolEvent[] = [];
  await using pool = await start(events);
  assert.equal(await pool.run(quiet(1)), 2);
  const lines = logs(events).map((e) => [e.node, e.task, e.stream, e.line]);
  assert.deepEqual(
    lines.filter(([, , , line]) => String(line).startsWith("noisy")),
    [
      [0, undefined, "stdout", "noisy module loading"],
      [0, undefined, "stderr", "noisy module warning"],
    ],
  );
  assert.ok(
    !lines.some(([, , , line]) => /invalid message/.test(String(line))),
    JSON.stringify(lines),
  );
});

Deno.test("a module's top-level output comes once per sandbox that runs a task, not from the spares loaded ahead", async () => {
  const events: PoolEvent[] = [];
  const pool = await start(events);
  try {
    for (let i = 0; i < 3; i++) assert.equal(await pool.run(fresh(i)), i + 1);
    // The spares taken next have loaded the module by now: what they
    // printed must not show until a task takes them.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assert.equal(await pool.run(quiet(1)), 2);
  } finally {
    await pool.close();
  }
  const loading = logs(events).filter((e) => e.line === "noisy module loading");
  // Three fresh sandboxes and one shared one ran tasks.
  assert.equal(loading.length, 4, JSON.stringify(loading));
});

Deno.test("a program's printed output holds no control character a task wrote, and its own lines stay apart", async () => {
  const script = new URL("./fixtures/rich_script.ts", import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-worker-options", script, root],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout);
  const err = new TextDecoder().decode(stderr);
  assert.equal(code, 0, err);
  // Not a terminal: the rich console prints as "log" does.
  assert.ok(
    // deno-lint-ignore no-control-regex
    !/[\x00-\x08\x0b-\x1f\x7f]/.test(out + err),
    JSON.stringify(out + err),
  );
  assert.match(
    out,
    /^\[node 0\] \\x1b\[2K\\r\[TaskCompleted\] Task 99 'forged' completed in 0\.0s$/m,
  );
  assert.match(err, /^\[node 0\] \\x1b\]0;pwned\\x07title set$/m);
  // Written straight to stdout on the node: the node's line, escaped too.
  assert.match(err, /^\[node 0\] \\x1b\[31mraw red\\x1b\[0m$/m);
  assert.match(out, /^user: task 3 done$/m);
});
