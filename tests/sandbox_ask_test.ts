// A sandbox asks its worker process something and gets the answer, or the
// error the worker's handler threw, for the task that asked.
import assert from "node:assert/strict";
import { decode, encode } from "../src/wire/codec.ts";
import { SandboxManager } from "../worker/sandbox/manager.ts";
import { DEFAULT_PERMISSIONS } from "../worker/sandbox/permissions.ts";

const codeDir = new URL("..", import.meta.url).pathname;
const MODULE = "tests/fixtures/ask.ts";

Deno.test("a task asks its worker process through its sandbox's channel, and gets the answer or the error", async () => {
  const asked: [string, number | undefined][] = [];
  const sandboxes = new SandboxManager({
    codeDir,
    instance: {
      node: 0,
      totalNodes: 1,
      isHead: true,
      headAddr: "127.0.0.1",
      headPort: 0,
      peers: [],
      accelerators: [],
      jobId: "test",
      hostname: "localhost",
    },
    log: () => {},
    fatal: (reason) => assert.fail(reason),
    ask(request, task) {
      const text = new TextDecoder().decode(request);
      asked.push([text, task]);
      if (text === "refuse") {
        return Promise.reject(new RangeError("not today"));
      }
      return Promise.resolve(new TextEncoder().encode(text.toUpperCase()));
    },
  });
  try {
    sandboxes.define(MODULE, "askWorker", {
      kind: "deno",
      permissions: DEFAULT_PERMISSIONS,
      isolation: "shared",
    });
    const run = async (id: number, text: string) => {
      const outcome = await sandboxes.run(
        id,
        MODULE,
        "askWorker",
        encode([text], "args"),
      );
      assert.notEqual(outcome.t, "ser");
      return { t: outcome.t, value: decode((outcome as { b: Uint8Array }).b) };
    };
    assert.deepEqual(await run(1, "hello"), { t: "ok", value: "HELLO" });
    const refused = await run(2, "refuse");
    assert.equal(refused.t, "err");
    assert.match(
      JSON.stringify(refused.value),
      /RangeError.*not today/,
    );
    assert.deepEqual(asked, [["hello", 1], ["refuse", 2]]);
  } finally {
    sandboxes.close();
  }
});
