import { decode, encode } from "../src/codec.ts";
import { encodeFrame, FrameDecoder, workerMessage } from "../src/protocol.ts";
const chunk = new Uint8Array(64 * 1024);
const batch = [chunk, chunk, chunk, chunk];
const N = 4096; // 1 GiB
let t = performance.now();
let e!: Uint8Array;
for (let i = 0; i < N; i++) e = encode(batch);
console.log(
  "encode MB/s",
  (N * 262144 / 1e6) / ((performance.now() - t) / 1000),
);
t = performance.now();
for (let i = 0; i < N; i++) decode(e);
console.log(
  "decode MB/s",
  (N * 262144 / 1e6) / ((performance.now() - t) / 1000),
);
t = performance.now();
let f!: Uint8Array;
for (let i = 0; i < N; i++) f = encodeFrame({ t: "yield", id: 1 }, e);
console.log(
  "frame MB/s",
  (N * 262144 / 1e6) / ((performance.now() - t) / 1000),
);
const d = new FrameDecoder(workerMessage);
t = performance.now();
for (let i = 0; i < N; i++) {
  for (let k = 0; k < f.length; k += 65536) d.push(f.subarray(k, k + 65536));
}
console.log(
  "deframe MB/s",
  (N * 262144 / 1e6) / ((performance.now() - t) / 1000),
);
t = performance.now();
for (let i = 0; i < N; i++) e.slice();
console.log(
  "slice MB/s",
  (N * 262144 / 1e6) / ((performance.now() - t) / 1000),
);
