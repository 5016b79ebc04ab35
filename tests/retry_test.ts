import * as assert from "node:assert/strict";
import { backoff, retry, retryAfterMs } from "../src/_retry.ts";
import { after, sleep } from "../src/_timers.ts";

Deno.test("retry: returns the first success and counts attempts from 1", async () => {
  const seen: number[] = [];
  const value = await retry((attempt) => {
    seen.push(attempt);
    if (attempt < 3) return Promise.reject(new Error("not yet"));
    return Promise.resolve("done");
  }, { minDelay: 1 });
  assert.equal(value, "done");
  assert.deepEqual(seen, [1, 2, 3]);
});

Deno.test("retry: throws the last failure as it is once the attempts are spent", async () => {
  class Refused extends Error {}
  let calls = 0;
  await assert.rejects(
    retry(() => Promise.reject(new Refused(`refused ${++calls}`)), {
      maxAttempts: 4,
      minDelay: 1,
    }),
    (error) => error instanceof Refused && error.message === "refused 4",
  );
  assert.equal(calls, 4);
});

Deno.test("retry: a failure that is not retriable is thrown at once", async () => {
  let calls = 0;
  await assert.rejects(
    retry(() => Promise.reject(new Error(`fatal ${++calls}`)), {
      minDelay: 1,
      isRetriable: (error) => !(error as Error).message.startsWith("fatal"),
    }),
    /fatal 1/,
  );
  assert.equal(calls, 1);
});

Deno.test("retry: the delay a failure asks for replaces the backoff, capped at maxDelay", async () => {
  const delays: number[] = [];
  let calls = 0;
  await retry(() => {
    if (++calls < 3) return Promise.reject({ wait: calls === 1 ? 5 : 99_999 });
    return Promise.resolve();
  }, {
    minDelay: 10_000,
    maxDelay: 20,
    retryAfter: (error) => (error as { wait: number }).wait,
    onRetry: (_e, _a, delay) => delays.push(delay),
  });
  assert.deepEqual(delays, [5, 20]);
});

Deno.test("retry: an abort ends the wait with the signal's reason", async () => {
  const controller = new AbortController();
  after(20, () => controller.abort(new Error("stopped")));
  const started = performance.now();
  await assert.rejects(
    retry(() => Promise.reject(new Error("down")), {
      minDelay: 60_000,
      jitter: 0,
      signal: controller.signal,
    }),
    /stopped/,
  );
  assert.ok(performance.now() - started < 5_000);
});

Deno.test("retry: an aborted signal runs no attempt", async () => {
  let calls = 0;
  await assert.rejects(
    retry(() => Promise.resolve(++calls), { signal: AbortSignal.abort() }),
  );
  assert.equal(calls, 0);
});

Deno.test("backoff: doubles from minDelay up to maxDelay, jitter within the nominal delay", () => {
  const fixed = [1, 2, 3, 4, 5].map((a) =>
    backoff(a, { minDelay: 100, maxDelay: 1_000, jitter: 0 })
  );
  assert.deepEqual(fixed, [100, 200, 400, 800, 1_000]);
  for (let i = 0; i < 200; i++) {
    const full = backoff(3, { minDelay: 100 });
    assert.ok(full >= 0 && full <= 400);
    const half = backoff(3, { minDelay: 100, jitter: 0.5 });
    assert.ok(half >= 200 && half <= 400);
  }
});

Deno.test("retryAfterMs: seconds, HTTP dates, and nothing readable", () => {
  assert.equal(retryAfterMs("3"), 3_000);
  assert.equal(retryAfterMs("0.5"), 500);
  assert.equal(
    retryAfterMs(
      "Wed, 21 Oct 2015 07:28:10 GMT",
      Date.parse("2015-10-21T07:28:00Z"),
    ),
    10_000,
  );
  assert.equal(retryAfterMs("Wed, 21 Oct 2015 07:28:10 GMT", Date.now()), 0);
  assert.equal(retryAfterMs(null), undefined);
  assert.equal(retryAfterMs("soon"), undefined);
});

Deno.test("sleep: ends early with the signal's reason", async () => {
  await sleep(1);
  await assert.rejects(sleep(60_000, AbortSignal.timeout(10)), {
    name: "TimeoutError",
  });
  await assert.rejects(sleep(1, AbortSignal.abort(new Error("no"))), /no/);
});

Deno.test("after: fires once, and can be cancelled", async () => {
  let fired = 0;
  after(5, () => fired++);
  const cancel = after(5, () => fired += 10);
  cancel();
  await sleep(30);
  assert.equal(fired, 1);
});
