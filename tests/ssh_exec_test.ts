// How a command's end is read from an ssh2 exec channel, without a server:
// a fake channel plays the events ssh2 emits.
import * as assert from "node:assert/strict";
import { Duplex, PassThrough } from "node:stream";
import type { ClientChannel } from "npm:ssh2@1.17.0";
import { adoptChannel, type OpenChannel } from "../src/transport/ssh/exec.ts";

/** An exec channel as ssh2 gives it: a duplex stream with a stderr. */
class FakeChannel extends Duplex {
  stderr = new PassThrough();
  override _read(): void {}
  override _write(_chunk: unknown, _encoding: string, done: () => void) {
    done();
  }
  signal(): void {}
  close(): void {}
}

/**
 * Takes `channel` as the transport does, then ends it as ssh2 does (its
 * output ends, then `close` with the exit status), and returns how the
 * command ended.
 */
async function exitOf(
  channel: FakeChannel,
  ...closeArgs: unknown[]
): Promise<unknown> {
  const process = adoptChannel(
    channel as unknown as ClientChannel,
    new Set<OpenChannel>(),
  );
  const drained = Promise.all([
    process.readable.pipeTo(new WritableStream()),
    process.stderr.pipeTo(new WritableStream()),
  ]);
  channel.push(null);
  channel.stderr.end();
  channel.once("end", () => channel.emit("close", ...closeArgs));
  const exit = await process.exited;
  await drained;
  return exit;
}

Deno.test("a command's exit status is kept when ssh2 reported it before the channel was taken", async () => {
  // ssh2 parses a whole TCP read at once: for a short command, the exec's
  // success, its output, `exit-status` and the close can come in one read,
  // so `exit` is emitted before the exec's promise lets anyone listen.
  const channel = new FakeChannel();
  channel.emit("exit", 0);
  assert.deepEqual(await exitOf(channel, 0), { code: 0 });
});

Deno.test("a command killed by a signal says which, also when the exit event came early", async () => {
  assert.deepEqual(await exitOf(new FakeChannel(), null, "SIGKILL"), {
    code: null,
    signal: "SIGKILL",
  });
});

Deno.test("a channel closed with no status at all ends with code null", async () => {
  assert.deepEqual(await exitOf(new FakeChannel()), { code: null });
});
