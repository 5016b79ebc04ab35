// How a command's end is read from an ssh2 exec channel, without a server:
// a fake channel plays the events ssh2 emits. And how the socket is corked
// so that ssh2's writes leave together, over a loopback connection.
import * as assert from "node:assert/strict";
import { Duplex, PassThrough } from "node:stream";
import type { ClientChannel } from "npm:ssh2@1.17.0";
import { connect, createServer, type Socket } from "node:net";
import { batchWrites, corked } from "../src/transport/ssh/batching.ts";
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

/** A TCP connection to a loopback server; the server's side echoes nothing and records what it gets. */
async function loopbackPair(): Promise<{
  client: Socket;
  received: () => string;
  send: (text: string) => void;
  close: () => Promise<void>;
}> {
  let got = "";
  let peer: Socket | undefined;
  const server = createServer((socket) => {
    peer = socket;
    socket.on("data", (data) => got += data.toString());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  const client = connect({ host: "127.0.0.1", port });
  await new Promise((resolve) => client.once("connect", resolve));
  while (!peer) await new Promise((resolve) => setTimeout(resolve, 5));
  return {
    client,
    received: () => got,
    send: (text) => peer!.write(text),
    close: async () => {
      client.destroy();
      peer!.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * Waits until `ok()` holds (the bytes are on their way over loopback); past
 * 10 s (a loopback write takes well under a millisecond) they were held back.
 */
async function until(ok: () => boolean, what: () => string): Promise<void> {
  for (let waited = 0; !ok(); waited += 5) {
    if (waited > 10_000) throw new Error(`held back: got ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

Deno.test("what is written while a read is handled leaves with nothing more written", async () => {
  const pair = await loopbackPair();
  try {
    batchWrites(pair.client);
    // As ssh2 does: a reply written from its own 'data' listener, after ours.
    pair.client.on("data", () => {
      pair.client.write("len|");
      pair.client.write("payload|");
      pair.client.write("mac");
    });
    pair.send("window adjust");
    await until(() => pair.received() === "len|payload|mac", pair.received);
  } finally {
    await pair.close();
  }
});

Deno.test("a corked write leaves whole, and a write without a socket runs as it is", async () => {
  const pair = await loopbackPair();
  try {
    corked(pair.client, () => {
      for (let i = 0; i < 48; i++) pair.client.write(`${i},`);
    });
    const expected = Array.from({ length: 48 }, (_, i) => `${i},`).join("");
    await until(() => pair.received() === expected, pair.received);
    let ran = false;
    corked(null, () => ran = true);
    assert.equal(ran, true);
  } finally {
    await pair.close();
  }
});
