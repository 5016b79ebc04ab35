// The baseline of the round-trip benchmark: a Deno child process that echoes
// length-prefixed frames over stdio, with no decoding of what they hold.
const input = Deno.stdin.readable.getReader();
const output = Deno.stdout.writable.getWriter();
let buffer = new Uint8Array(0);
for (;;) {
  const { value, done } = await input.read();
  if (done) break;
  const joined = new Uint8Array(buffer.length + value.length);
  joined.set(buffer);
  joined.set(value, buffer.length);
  buffer = joined;
  let at = 0;
  while (buffer.length - at >= 4) {
    const length = new DataView(buffer.buffer, buffer.byteOffset + at, 4)
      .getUint32(0);
    if (buffer.length - at < 4 + length) break;
    await output.write(buffer.slice(at, at + 4 + length));
    at += 4 + length;
  }
  buffer = buffer.slice(at);
}
