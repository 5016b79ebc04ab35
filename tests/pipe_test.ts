/**
 * The worker's protocol pipes (worker/pipe.ts): whatever is written arrives
 * whole and in order, also when the reader falls behind, and a full pipe
 * holds back only the writes, never the event loop (the worker must go on
 * reading its input, e.g. a cancel, while its results wait).
 */
import assert from "node:assert/strict";

const child = new URL("./fixtures/pipe_child.ts", import.meta.url).pathname;

Deno.test("a full output pipe holds back the worker's writes, not its event loop, and every byte arrives in order both ways", async () => {
  const size = 8 * 1024 * 1024; // Past any pipe's buffer.
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", child, String(size)],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const errors = process.stderr.pipeThrough(new TextDecoderStream())
    .getReader();
  let said = "";
  const until = async (text: string) => {
    while (!said.includes(text)) {
      const { value, done } = await errors.read();
      if (done) throw new Error(`the child ended, having said: ${said}`);
      said += value;
    }
  };
  // Nothing of the output is read yet: the child can only read its input if
  // its event loop still runs.
  const writer = process.stdin.getWriter();
  const input = new Uint8Array(3 * 1024 * 1024);
  for (let i = 0; i < input.length; i++) input[i] = (i * 7) % 256;
  const sent = writer.write(input).then(() => writer.close());
  // (A writer that blocked its event loop would never say so: fail, not hang.)
  const guard = setTimeout(() => {
    process.kill();
    errors.cancel();
  }, 60_000);
  await until("the event loop runs while the output waits");
  clearTimeout(guard);
  const output = new Uint8Array(
    await new Response(process.stdout).arrayBuffer(),
  );
  await sent;
  await until("read ");
  assert.equal((await process.status).code, 0, said);
  assert.equal(output.length, size);
  for (let i = 0; i < size; i++) {
    if (output[i] !== i % 251) assert.fail(`byte ${i} is ${output[i]}`);
  }
  let sum = 0;
  for (const byte of input) sum = (sum + byte) % 1_000_003;
  assert.match(said, new RegExp(`read ${input.length} ${sum}`));
  errors.releaseLock();
  await process.stderr.cancel().catch(() => {});
});

for (const mode of ["write", "close-only"]) {
  Deno.test(`a worker whose client has gone still closes its output pipe (${mode}): it settles, never hangs`, async () => {
    const process = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("./fixtures/pipe_gone_child.ts", import.meta.url).pathname,
        mode,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // The reader goes before anything is written.
    await process.stdout.cancel();
    const guard = setTimeout(() => process.kill("SIGKILL"), 20_000);
    const [status, errors] = await Promise.all([
      process.status,
      new Response(process.stderr).text(),
    ]);
    clearTimeout(guard);
    assert.equal(status.signal, null, `the child hung: ${errors}`);
    assert.match(
      errors,
      mode === "write"
        ? /write failed: .*; (closed|close failed: .*)/
        : /nothing written; (closed|close failed: .*)/,
    );
  });
}
