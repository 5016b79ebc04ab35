// Errors that name a file of the node's shipped copy of the project
// (`<node>/code/<hash>/tests/fixtures/x.ts`) name the user's own file
// instead, on the local provider.
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import {
  causeNamesFile,
  importMissing,
  readMissing,
} from "./fixtures/paths.ts";
import { tempRoot } from "./helpers.ts";

const root = await tempRoot();
const fixtures = new URL("./fixtures/", import.meta.url);

function start(): Promise<sky.ComputePool> {
  return sky.ComputePool.start({
    provider: sky.Local({ root }),
    console: "silent",
  });
}

/** Asserts that a text names no file under the nodes' directory. */
function namesNoShippedFile(text: string | undefined): void {
  assert.ok(text !== undefined);
  assert.ok(!text.includes(root), `names the shipped copy: ${text}`);
}

Deno.test("a module not found on the node is named by its path in the user's project", async () => {
  await using pool = await start();
  const error = await pool.run(importMissing("not_there")).then(
    () => undefined,
    (e) => e,
  );
  assert.ok(error instanceof sky.RemoteError, String(error));
  const wanted = new URL("./not_there.ts", fixtures).href;
  assert.match(error.message, /Module not found/);
  assert.ok(error.message.includes(`"${wanted}"`), error.message);
  namesNoShippedFile(error.message);
  namesNoShippedFile(error.remoteStack);
});

Deno.test("NotFound for a file beside the module names the user's path", async () => {
  await using pool = await start();
  const error = await pool.run(readMissing("data.csv")).then(
    () => undefined,
    (e) => e,
  );
  assert.ok(error instanceof sky.RemoteError, String(error));
  assert.equal(error.remoteName, "NotFound");
  const wanted = new URL("./data.csv", fixtures).pathname;
  assert.ok(error.message.includes(`'${wanted}'`), error.message);
  namesNoShippedFile(error.message);
  namesNoShippedFile(error.remoteStack);
});

Deno.test("an error's cause names the user's path too", async () => {
  await using pool = await start();
  const error = await pool.run(causeNamesFile("settings.json")).then(
    () => undefined,
    (e) => e,
  );
  assert.ok(error instanceof sky.RemoteError, String(error));
  const cause = error.cause as Error;
  assert.ok(cause instanceof Error, String(cause));
  const wanted = new URL("./settings.json", fixtures).pathname;
  assert.ok(cause.message.includes(wanted), cause.message);
  namesNoShippedFile(cause.message);
  namesNoShippedFile(cause.stack);
});

Deno.test("the missing import.meta.main guard error names the user's script", async () => {
  const script = new URL("./no_guard.ts", fixtures);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script.pathname],
    env: { XDG_CACHE_HOME: root, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.success, false);
  assert.match(
    stderr,
    /ConfigError: ComputePool\.start\(\) was called while a worker imported your module/,
  );
  assert.ok(stderr.includes(`(at ${script.href}:`), stderr);
  namesNoShippedFile(stderr);
});
