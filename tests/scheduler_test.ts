/**
 * The scheduler on its own, with nodes whose sessions are fakes that record
 * what was sent and cancelled: the order work reaches nodes, and that every
 * way of cancelling a task tells the worker and settles it once.
 */
import assert from "node:assert/strict";
import {
  RemoteError,
  TaskCancelledError,
  TaskTimeoutError,
} from "../src/errors.ts";
import type { EventInit } from "../src/events.ts";
import type { Job } from "../src/pool/job.ts";
import type { NodeSession } from "../src/pool/node.ts";
import type { PoolNode } from "../src/pool/node_state.ts";
import { Scheduler } from "../src/pool/scheduler.ts";
import { encode } from "../src/wire/codec.ts";

/** A worker's session that answers only when told to. */
class FakeSession {
  lostReason: string | undefined = undefined;
  codeUrl = "file:///code/";
  /** Task ids in the order they were sent. */
  sent: number[] = [];
  /** Task ids the worker was asked to drop. */
  cancelled: number[] = [];
  #calls = new Map<
    number,
    { resolve(payload: Uint8Array): void; reject(error: Error): void }
  >();

  call(id: number): Promise<Uint8Array> {
    this.sent.push(id);
    return new Promise((resolve, reject) =>
      this.#calls.set(id, { resolve, reject })
    );
  }
  cancel(id: number): void {
    if (this.#calls.has(id)) this.cancelled.push(id);
  }
  forget(id: number): void {
    this.#calls.delete(id);
  }
  post(): void {}

  /** The worker returns `value` for task `id` (ignored once forgotten). */
  answer(id: number, value: unknown): void {
    this.#calls.get(id)?.resolve(encode(value));
    this.#calls.delete(id);
  }
  /** The worker fails task `id`. */
  fail(id: number, error: Error): void {
    this.#calls.get(id)?.reject(error);
    this.#calls.delete(id);
  }
}

function fakeNode(index: number, options: { gated?: boolean } = {}) {
  const session = new FakeSession();
  const node = {
    index,
    instance: { id: `i-${index}`, status: "running" },
    session: session as unknown as NodeSession,
    restarts: 0,
    state: options.gated ? "admitting" : "ready",
    running: new Set<Job>(),
    pinned: [] as Job[],
    gapMs: Infinity,
    lastDoneAt: 0,
    idleSince: 0,
    view: "",
  } as unknown as PoolNode;
  return { node, session };
}

function fakeJob(id: number, options: Partial<Job> = {}): Job {
  return {
    id,
    name: `task-${id}`,
    module: "main.ts",
    key: "task",
    args: encode([]),
    spec: { kind: "deno", permissions: {} } as Job["spec"],
    timeout: undefined,
    sentAt: 0,
    queuedAt: 0,
    settled: false,
    attempts: 0,
    resolve: () => {},
    reject: () => {},
    ...options,
  };
}

function scheduler(nodes: PoolNode[], slots = { concurrency: 1, prefetch: 0 }) {
  const events: EventInit[] = [];
  const s = new Scheduler({
    ...slots,
    provisionTimeout: 60_000,
    moduleOf: () => undefined,
    nodes: () => nodes,
    closed: () => false,
    emit: (e) => events.push(e),
    starting: () => 0,
    abandoned: () => undefined,
    activity: () => {},
    backlog: () => {},
  });
  return { s, events };
}

function started(events: EventInit[]): number[] {
  return events.flatMap((e) => e.type === "TaskStarted" ? [e.task] : []);
}

Deno.test("a task pinned to a node is sent there before the shared queue", async () => {
  const { node, session } = fakeNode(0);
  session.codeUrl = ""; // Still starting: nothing is sent.
  const { s } = scheduler([node]);
  const shared = s.submit(fakeJob(1));
  const pinned = s.submit(fakeJob(2, { pin: 0 }));
  assert.deepEqual(session.sent, []);
  session.codeUrl = "file:///code/";
  s.drain();
  assert.deepEqual(session.sent, [2]);
  session.answer(2, "pinned");
  assert.equal(await pinned, "pinned");
  assert.deepEqual(session.sent, [2, 1]);
  session.answer(1, "shared");
  assert.equal(await shared, "shared");
});

Deno.test("a task cancelled while it waits is never sent, and rejects with TaskCancelledError", async () => {
  const { node, session } = fakeNode(0);
  const { s, events } = scheduler([node]);
  const first = fakeJob(1);
  const waiting = fakeJob(2);
  const running = s.submit(first);
  const cancelled = s.submit(waiting);
  s.abort(waiting, "aborted");
  await assert.rejects(cancelled, TaskCancelledError);
  session.answer(1, 1);
  assert.equal(await running, 1);
  assert.deepEqual(session.sent, [1]);
  assert.deepEqual(session.cancelled, [], "nothing to drop on the worker");
  assert.deepEqual(started(events), [1]);
});

Deno.test("tasks go round robin over the nodes that take work; a node awaiting its health check gets only its probe", async () => {
  const a = fakeNode(0);
  const gated = fakeNode(1, { gated: true });
  const c = fakeNode(2);
  const { s } = scheduler([a.node, gated.node, c.node], {
    concurrency: 4,
    prefetch: 0,
  });
  const results = [1, 2, 3, 4].map((id) => s.submit(fakeJob(id)));
  const probe = s.submit(fakeJob(5, { pin: 1, probe: true }));
  assert.deepEqual(a.session.sent, [1, 3]);
  assert.deepEqual(c.session.sent, [2, 4]);
  assert.deepEqual(gated.session.sent, [5]);
  for (const id of [1, 3]) a.session.answer(id, id);
  for (const id of [2, 4]) c.session.answer(id, id);
  gated.session.answer(5, "healthy");
  assert.deepEqual(await Promise.all(results), [1, 2, 3, 4]);
  assert.equal(await probe, "healthy");
});

Deno.test("a timeout, the caller's cancel and the worker's cancel each drop the task on the worker and settle it once", async () => {
  const { node, session } = fakeNode(0);
  const { s, events } = scheduler([node], { concurrency: 3, prefetch: 0 });
  const timed = fakeJob(1, { timeout: 1 });
  const byCaller = fakeJob(2);
  const byWorker = fakeJob(3);
  const results = [timed, byCaller, byWorker].map((job) => s.submit(job));
  s.abort(byCaller, "no longer needed");
  session.fail(
    3,
    new RemoteError({ name: "TaskCancelledError", message: "cancelled" }),
  );
  const [timeout, callerCancel, workerCancel] = await Promise.all(
    results.map((p) => p.then(() => undefined, (e: Error) => e)),
  );
  assert.ok(timeout instanceof TaskTimeoutError);
  assert.ok(callerCancel instanceof TaskCancelledError);
  assert.match(callerCancel.message, /no longer needed/);
  assert.ok(workerCancel instanceof TaskCancelledError);
  assert.deepEqual(session.cancelled.sort(), [1, 2]);
  // A late answer of a dropped task changes nothing.
  session.answer(1, "late");
  session.answer(2, "late");
  const failed = events.flatMap((e) => e.type === "TaskFailed" ? [e.task] : []);
  assert.deepEqual(failed.sort(), [1, 2, 3]);
  assert.equal(node.running.size, 0);
  assert.equal(s.jobs.size, 0);
});
