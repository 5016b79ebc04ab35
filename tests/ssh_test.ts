/**
 * The SSH transport against real `sshd` hosts of the rig (tests/rig/rig.ts).
 * Without root or `sshd` these tests are ignored with the reason printed;
 * under `CI=true` that is a failure instead.
 */

import { SshConnection } from "../src/transport/ssh/connection.ts";
import {
  HostKeyMismatchError,
  SshAuthenticationError,
  SshConnectionError,
} from "../src/transport/ssh/errors.ts";
import type { SshConnectOptions } from "../src/transport/ssh/options.ts";
import {
  fingerprint,
  hostKeyAlgorithms,
  lookupKnownHosts,
  parsePublicKey,
} from "../src/transport/host_keys.ts";
import {
  changeHostKey,
  requireRig,
  rigExec,
  type RigHost,
  startSshd,
  stopSshd,
} from "./rig/rig.ts";
import { rigTester } from "./clouds.ts";

const { rig, reason } = await requireRig({ hosts: 3 });
if (!rig) console.warn(`ssh_test.ts: SSH rig tests ignored: ${reason}`);

const rigTest = rigTester(rig);

function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`Assertion failed: ${message}`);
}

function assertEquals<T>(actual: T, expected: T, what: string): void {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) {
    throw new Error(`Assertion failed: ${what}: expected ${e}, got ${a}`);
  }
}

async function assertRejects<E extends Error>(
  fn: () => Promise<unknown>,
  type: new (...args: never[]) => E,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    if (error instanceof type) return error;
    throw new Error(`Expected ${type.name}, got ${error}`, { cause: error });
  }
  throw new Error(`Expected ${type.name}, but it resolved`);
}

const keys = new Map<string, string>();
async function options(host: RigHost, extra: Partial<SshConnectOptions> = {}) {
  if (!keys.has(host.keyPath)) {
    keys.set(host.keyPath, await Deno.readTextFile(host.keyPath));
  }
  return {
    host: host.address,
    port: host.port,
    user: host.user,
    privateKey: keys.get(host.keyPath)!,
    hostKey: host.hostKey,
    ...extra,
  } satisfies SshConnectOptions;
}

async function sha256(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    data as Uint8Array<ArrayBuffer>,
  );
  return Array.from(
    new Uint8Array(digest),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

function randomBytes(size: number): Uint8Array {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) {
    crypto.getRandomValues(data.subarray(i, i + 65536));
  }
  return data;
}

async function readAll(
  stream: ReadableStream<Uint8Array>,
  size: number,
): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let offset = 0;
  for await (const chunk of stream) {
    assert(
      chunk.constructor === Uint8Array,
      "chunks are plain Uint8Arrays, not Buffers",
    );
    assert(offset + chunk.byteLength <= size, "no more bytes than were sent");
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  assertEquals(offset, size, "bytes read back");
  return out;
}

/** TCP connections established to the host's sshd, seen from inside the host. */
async function sshdConnections(host: RigHost): Promise<number> {
  const out = await rigExec(host.index, [
    "ss",
    "-tnH",
    "state",
    "established",
    "( sport = :22 )",
  ]);
  return out.split("\n").filter((line) => line.trim()).length;
}

async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 5_000,
) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// ---------------------------------------------------------------------------
// Without the rig

const KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHTAioQyUXKKn8Esjmd83zPsuCCmfen8TSFqiTbD6p23";
const OTHER =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDjWnjpX+reFB7v4Ub6+x3Q80KOiPSw5jutRrdlqB+a3";

Deno.test("parsePublicKey() gives the fingerprint ssh-keygen -l prints", () => {
  const key = parsePublicKey(`${KEY} comment`);
  assertEquals(key.type, "ssh-ed25519", "type");
  assertEquals(
    key.fingerprint,
    "SHA256:t5ExNF5GuBwZBwjsq3ndWQd7Bcu5oZfVoI7rOU+B7tg",
    "fp",
  );
  assertEquals(key.line, KEY, "line without comment");
  assertEquals(
    hostKeyAlgorithms([key, parsePublicKey(KEY)]),
    ["ssh-ed25519"],
    "algorithms",
  );
});

Deno.test("lookupKnownHosts() finds plain, [host]:port, hashed, wildcard and revoked entries", () => {
  const text = [
    "# comment",
    // `ssh-keygen -H` of "10.0.0.5 KEY" and "[db.example]:2222 KEY".
    `|1|ntwVdPAhLGWbh927ySS9rkiRuTI=|HKE8bnqJOVSEo70ODBJQypE1LMg= ${KEY}`,
    `|1|r1BR1ELkNKo3q85UuuDuwFWQcl4=|1RHB6MtY7KMcEiJX1X4Z0sdXEtA= ${KEY}`,
    `web.example,10.0.0.9 ${OTHER}`,
    `*.lan,!bad.lan ${KEY}`,
    `@revoked * ${OTHER}`,
    `@cert-authority *.example ${KEY}`,
    "garbage line",
  ].join("\n");
  const keys = (host: string, port = 22) =>
    lookupKnownHosts(text, host, port).keys.map((k) => k.line);
  assertEquals(keys("10.0.0.5"), [KEY], "hashed host");
  assertEquals(keys("10.0.0.5", 2200), [], "hashed host, other port");
  assertEquals(keys("db.example", 2222), [KEY], "hashed [host]:port");
  assertEquals(keys("10.0.0.9"), [OTHER], "plain list");
  assertEquals(keys("WEB.example"), [OTHER], "case-insensitive");
  assertEquals(keys("box.lan"), [KEY], "wildcard");
  assertEquals(keys("bad.lan"), [], "negated");
  assertEquals(keys("unknown"), [], "unknown host");
  assertEquals(lookupKnownHosts(text, "any", 22).revoked.map((k) => k.line), [
    OTHER,
  ], "revoked");
});

Deno.test("connect() rejects bad options with a TypeError before dialling", async () => {
  const base = { host: "127.0.0.1", port: 1, user: "u", retries: 0 };
  await assertRejects(
    () => SshConnection.connect({ ...base, privateKey: "not a key" }),
    TypeError,
  );
  await assertRejects(
    () => SshConnection.connect({ ...base, privateKey: KEY }),
    TypeError,
  );
  await assertRejects(
    () => SshConnection.connect({ ...base, user: "", privateKey: "x" }),
    TypeError,
  );
});

// ---------------------------------------------------------------------------
// On the rig

rigTest(
  "run() runs a command on every host as that host's user",
  async (hosts) => {
    for (const host of hosts) {
      await using ssh = await SshConnection.connect(await options(host));
      const result = await ssh.run(
        'hostname; id -un; echo "$HOME"; echo "$GREETING"',
        {
          env: { GREETING: "it's $x" },
        },
      );
      assertEquals(result.code, 0, "exit code");
      assertEquals(
        result.stdout,
        `${host.name}\n${host.user}\n/home/${host.user}\nit's $x\n`,
        "output",
      );
      assertEquals(
        ssh.hostKey.fingerprint,
        parsePublicKey(host.hostKey).fingerprint,
        "pinned key",
      );
    }
  },
);

rigTest("run() gives exit code, stderr and stdin", async ([host]) => {
  await using ssh = await SshConnection.connect(await options(host));
  const result = await ssh.run("cat; echo oops >&2; exit 3", {
    stdin: "from stdin",
  });
  assertEquals(
    result,
    { code: 3, stdout: "from stdin", stderr: "oops\n" },
    "result",
  );
});

rigTest(
  "exec() echoes 16 MiB of random bytes through cat exactly",
  async ([host]) => {
    await using ssh = await SshConnection.connect(await options(host));
    const data = randomBytes(16 << 20);
    const process = await ssh.exec("cat");
    const writing = (async () => {
      const writer = process.writable.getWriter();
      for (let i = 0; i < data.byteLength; i += 100_003) {
        await writer.write(
          data.subarray(i, Math.min(i + 100_003, data.byteLength)),
        );
      }
      await writer.close();
    })();
    const [echoed] = await Promise.all([
      readAll(process.readable, data.byteLength),
      writing,
    ]);
    await process.stderr.cancel();
    assertEquals(
      await sha256(echoed),
      await sha256(data),
      "sha256 of the echo",
    );
    assertEquals(await process.exited, { code: 0 }, "exit");
  },
);

rigTest(
  "exec() applies backpressure: an unread stdout stops the writer",
  async ([host]) => {
    await using ssh = await SshConnection.connect(await options(host));
    const total = 64 << 20;
    let pulled = 0;
    const source = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (pulled >= total) return controller.close();
        pulled += 1 << 16;
        controller.enqueue(new Uint8Array(1 << 16));
      },
    }, { highWaterMark: 0 });
    const process = await ssh.exec("cat");
    const piping = source.pipeTo(process.writable);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert(
      pulled < 24 << 20,
      `the writer stalls while stdout is unread (pulled ${pulled} bytes)`,
    );
    await readAll(process.readable, total);
    await piping;
    await process.stderr.cancel();
    assertEquals(await process.exited, { code: 0 }, "exit");
  },
);

rigTest("exec() kill() ends the command with SIGKILL", async ([host]) => {
  await using ssh = await SshConnection.connect(await options(host));
  const process = await ssh.exec("echo started; exec sleep 60");
  const reader = process.readable.getReader();
  assertEquals(
    new TextDecoder().decode((await reader.read()).value),
    "started\n",
    "output",
  );
  reader.releaseLock();
  process.kill();
  const exit = await process.exited;
  assertEquals(exit, { code: null, signal: "SIGKILL" }, "exit");
  await process.readable.cancel();
  await process.stderr.cancel();
});

rigTest(
  "upload() writes files with their modes, then exists() sees them",
  async ([host]) => {
    await using ssh = await SshConnection.connect(await options(host));
    const dir = `upload-test-${crypto.randomUUID().slice(0, 8)}`;
    const big = randomBytes((3 << 20) + 17);
    try {
      assertEquals(await ssh.exists(dir), false, "exists before upload");
      await ssh.upload([
        {
          path: "bin/run.sh",
          data: new TextEncoder().encode("#!/bin/sh\necho ran\n"),
          mode: 0o755,
        },
        { path: "data/deep/nested/big.bin", data: big },
        { path: "empty", data: new Uint8Array(0) },
      ], `~/${dir}`);
      assertEquals(
        await ssh.exists(`${dir}/data/deep/nested/big.bin`),
        true,
        "exists after",
      );
      assertEquals(
        await ssh.exists(`/home/${host.user}/${dir}/empty`),
        true,
        "absolute path",
      );
      assertEquals(await ssh.exists(`${dir}/missing`), false, "missing file");
      const check = await ssh.run(
        `cd ${dir} && ./bin/run.sh && stat -c '%a %s' bin/run.sh empty data/deep/nested/big.bin && ` +
          `sha256sum data/deep/nested/big.bin | cut -d' ' -f1 && ls -a data/deep/nested`,
      );
      assertEquals(
        check.stdout,
        `ran\n755 19\n644 0\n644 ${big.byteLength}\n${await sha256(
          big,
        )}\n.\n..\nbig.bin\n`,
        "files on the host",
      );
      // A second upload of the same tree replaces files in place.
      await ssh.upload([{
        path: "empty",
        data: new TextEncoder().encode("x"),
        mode: 0o600,
      }], dir);
      assertEquals(
        (await ssh.run(`stat -c '%a %s' ${dir}/empty`)).stdout,
        "600 1\n",
        "replaced",
      );
    } finally {
      await ssh.run(`rm -rf ${dir}`);
    }
  },
);

rigTest(
  "upload() refuses paths that leave the target directory",
  async ([host]) => {
    await using ssh = await SshConnection.connect(await options(host));
    for (const path of ["../evil", "/etc/passwd", "a//b"]) {
      await assertRejects(
        () => ssh.upload([{ path, data: new Uint8Array(1) }], "x"),
        TypeError,
      );
    }
  },
);

rigTest(
  "connect() refuses a host presenting another key, naming host:port",
  async (hosts) => {
    const [host, other] = hosts;
    const error = await assertRejects(
      async () =>
        await SshConnection.connect(
          await options(host, { hostKey: other.hostKey }),
        ),
      HostKeyMismatchError,
    );
    assert(
      error.message.includes(`${host.address}:22`),
      `message names the host: ${error.message}`,
    );
    assertEquals(
      error.actual,
      parsePublicKey(host.hostKey).fingerprint,
      "presented key",
    );
    assertEquals(error.retriable, false, "retriable");

    // The same through a fingerprint, and through a known_hosts file.
    const wrongFingerprint = fingerprint(parsePublicKey(other.hostKey).data);
    await assertRejects(
      async () =>
        await SshConnection.connect(
          await options(host, { hostKey: wrongFingerprint }),
        ),
      HostKeyMismatchError,
    );
    const knownHosts = await Deno.makeTempFile();
    try {
      await Deno.writeTextFile(
        knownHosts,
        `# test\n${host.address} ${other.hostKey}\n`,
      );
      await assertRejects(
        async () =>
          await SshConnection.connect(
            await options(host, {
              hostKey: undefined,
              knownHostsPath: knownHosts,
            }),
          ),
        HostKeyMismatchError,
      );
      await Deno.writeTextFile(
        knownHosts,
        `other.example ${other.hostKey}\n${host.address} ${host.hostKey}\n`,
      );
      await using ssh = await SshConnection.connect(
        await options(host, { hostKey: undefined, knownHostsPath: knownHosts }),
      );
      assertEquals(
        ssh.hostKey.line,
        parsePublicKey(host.hostKey).line,
        "key from known_hosts",
      );
    } finally {
      await Deno.remove(knownHosts);
    }
    // Unknown hosts can be refused.
    const refused = await assertRejects(
      async () =>
        await SshConnection.connect(
          await options(host, {
            hostKey: undefined,
            acceptUnknownHostKey: false,
          }),
        ),
      HostKeyMismatchError,
    );
    assert(refused.message.includes("unknown"), `says why: ${refused.message}`);
    // With no key given and no entry, the first key seen is pinned.
    await using trusting = await SshConnection.connect(
      await options(host, { hostKey: undefined }),
    );
    assertEquals(
      trusting.hostKey.fingerprint,
      parsePublicKey(host.hostKey).fingerprint,
      "pinned",
    );
  },
);

rigTest(
  "connect() reports a refused key as an authentication error naming user@host",
  async ([host]) => {
    const dir = await Deno.makeTempDir();
    try {
      await new Deno.Command("ssh-keygen", {
        args: ["-q", "-t", "ed25519", "-N", "", "-f", `${dir}/key`],
        stdout: "null",
      }).output();
      const started = Date.now();
      const error = await assertRejects(
        async () =>
          await SshConnection.connect(
            await options(host, {
              privateKey: await Deno.readFile(`${dir}/key`),
            }),
          ),
        SshAuthenticationError,
      );
      assert(
        error.message.includes(`${host.user}@${host.address}:22`),
        `message names user@host: ${error.message}`,
      );
      assert(
        !error.message.includes("PRIVATE KEY"),
        "the key is not in the message",
      );
      assert(
        Date.now() - started < 5_000,
        "an authentication failure is not retried",
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

rigTest(
  "connect() gives up on a closed port after its retries, naming the host",
  async ([host]) => {
    const error = await assertRejects(
      async () =>
        await SshConnection.connect(
          await options(host, { port: 2, retries: 2, retryDelay: 10 }),
        ),
      SshConnectionError,
    );
    assert(
      /after 3 attempt/.test(error.message),
      `message counts attempts: ${error.message}`,
    );
    assert(
      error.message.includes(`${host.address}:2`),
      `message names the host: ${error.message}`,
    );
  },
);

rigTest(
  "connect() with no retries makes one attempt and says so",
  async ([host]) => {
    const error = await assertRejects(
      async () =>
        await SshConnection.connect(
          await options(host, { port: 2, retries: 0 }),
        ),
      SshConnectionError,
    );
    assert(
      /after 1 attempt\(s\)/.test(error.message),
      `message counts one attempt: ${error.message}`,
    );
    assert(error.retriable, "a refused connection may pass later");
  },
);

rigTest(
  "connect() stops retrying when its signal aborts, with the signal's reason",
  async ([host]) => {
    const controller = new AbortController();
    const reason = new Error("the caller gave up");
    const connecting = SshConnection.connect(
      await options(host, {
        port: 2,
        retries: 1_000_000,
        retryDelay: 20,
        maxRetryDelay: 20,
        signal: controller.signal,
      }),
    );
    // Aborts while it is between attempts (or in one): either way it ends.
    setTimeout(() => controller.abort(reason), 200);
    const error = await connecting.then(
      () => undefined,
      (error: unknown) => error,
    );
    assert(error === reason, `rejects with the reason, got ${error}`);
  },
);

rigTest(
  "the connection comes back after sshd is killed and restarted, verifying the pinned key",
  async (hosts) => {
    const host = hosts[1];
    const disconnects: SshConnectionError[] = [];
    let reconnected!: () => void;
    const reconnect = new Promise<void>((resolve) => reconnected = resolve);
    await using ssh = await SshConnection.connect(
      await options(host, {
        retries: 20,
        retryDelay: 50,
        maxRetryDelay: 300,
        onDisconnect: (error) => disconnects.push(error),
        onReconnect: () => reconnected(),
      }),
    );
    const process = await ssh.exec("cat");
    try {
      await stopSshd(host.index);
      const lost = await assertRejects(
        () => process.exited,
        SshConnectionError,
      );
      assert(
        lost.message.includes(host.address),
        `loss names the host: ${lost.message}`,
      );
      await assertRejects(
        () => new Response(process.readable).arrayBuffer(),
        SshConnectionError,
      );
      assertEquals(ssh.state, "reconnecting", "state while sshd is down");
      await new Promise((resolve) => setTimeout(resolve, 300));
    } finally {
      await startSshd(host.index);
    }
    await reconnect;
    assertEquals(disconnects.length, 1, "onDisconnect calls");
    assertEquals(ssh.state, "connected", "state");
    assertEquals(ssh.generation, 2, "TCP connections made");
    assertEquals(
      (await ssh.run("hostname")).stdout,
      `${host.name}\n`,
      "works again",
    );
    await waitFor(
      "one connection to the host",
      async () => (await sshdConnections(host)) === 1,
    );
    // An explicit reconnect replaces the connection rather than adding one.
    await ssh.reconnect();
    assertEquals(ssh.generation, 3, "TCP connections made");
    await ssh.run("true");
    await waitFor(
      "one connection to the host",
      async () => (await sshdConnections(host)) === 1,
    );
    await ssh.close();
    await waitFor(
      "no connection to the host",
      async () => (await sshdConnections(host)) === 0,
    );
  },
);

rigTest(
  "a reconnect to a host whose key changed is refused and closes the connection",
  async (hosts) => {
    const host = hosts[2];
    let disconnected!: () => void;
    const disconnect = new Promise<void>((resolve) => disconnected = resolve);
    await using ssh = await SshConnection.connect(
      await options(host, {
        hostKey: undefined,
        retryDelay: 50,
        onDisconnect: () => disconnected(),
      }),
    );
    const changed = await changeHostKey(host.index);
    try {
      await disconnect;
      const error = await ssh.closed;
      assert(
        error instanceof HostKeyMismatchError,
        `closed with a host key error: ${error}`,
      );
      assert(
        error.message.includes(`${host.address}:22`),
        `names the host: ${error.message}`,
      );
      assertEquals(
        error.actual,
        parsePublicKey(changed.hostKey).fingerprint,
        "new key",
      );
      assertEquals(ssh.state, "closed", "state");
      await assertRejects(() => ssh.run("true"), SshConnectionError);
    } finally {
      await changed.restore();
    }
  },
);

rigTest(
  "with reconnect off, a dropped connection closes with the reason",
  async (hosts) => {
    const host = hosts[0];
    const ssh = await SshConnection.connect(
      await options(host, { reconnect: false }),
    );
    try {
      await stopSshd(host.index);
      const error = await ssh.closed;
      assert(
        error instanceof SshConnectionError,
        `closed with an error: ${error}`,
      );
      assertEquals(ssh.state, "closed", "state");
    } finally {
      await ssh.close();
      await startSshd(host.index);
    }
  },
);

rigTest(
  "close() fails open channels and leaves nothing running",
  async ([host]) => {
    const ssh = await SshConnection.connect(await options(host));
    const process = await ssh.exec("cat");
    await ssh.close();
    await assertRejects(() => process.exited, SshConnectionError);
    assertEquals(await ssh.closed, undefined, "closed cleanly");
    await assertRejects(() => ssh.exec("true"), SshConnectionError);
    await waitFor(
      "no connection to the host",
      async () => (await sshdConnections(host)) === 0,
    );
  },
);

Deno.test({
  name: "rig: take down the rig this file brought up",
  ignore: !rig?.created,
  fn: () => rig!.release(),
});
