/**
 * The base image of sky.Container() (providers/container/image.ts): the
 * Dockerfile it is built from, how `skyward image build` chooses between the
 * Dockerfile and debootstrap routes, and a real build of the Dockerfile
 * route on the test daemon, from a base image already in its store (there
 * is no registry here, so `FROM debian:bookworm-slim` itself is not pulled).
 */
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import {
  DEFAULT_IMAGE,
  dockerfile,
  registryProbeUrl,
} from "../providers/container/image.ts";
import { requireDocker } from "./rig/dockerd.ts";
import { square } from "./fixtures/cluster.ts";

const cli = new URL("../cli.ts", import.meta.url).pathname;

/** Runs `skyward image ...` as a user would; returns its exit code and output. */
async function skyward(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", cli, "image", ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return {
    code: out.code,
    stdout: text.decode(out.stdout),
    stderr: text.decode(out.stderr),
  };
}

/** The instructions of a Dockerfile, continuation lines joined. */
function instructions(text: string): { op: string; args: string }[] {
  const out: { op: string; args: string }[] = [];
  let open = "";
  for (const line of text.split("\n")) {
    if (!open && (line.trim() === "" || line.startsWith("#"))) continue;
    const joined = open + line;
    if (joined.endsWith("\\")) {
      open = joined.slice(0, -1) + "\n";
      continue;
    }
    open = "";
    const match = /^([A-Z]+)\s+(.*)$/s.exec(joined);
    assert.ok(match, `not an instruction: ${joined}`);
    out.push({ op: match[1], args: match[2] });
  }
  assert.equal(open, "", "the last instruction is left open");
  return out;
}

const canDebootstrap = Deno.uid() === 0 &&
  (await new Deno.Command("sh", { args: ["-c", "command -v debootstrap"] })
    .output()).success;

Deno.test("the Dockerfile starts from debian:bookworm-slim and its RUN is valid sh", async () => {
  const text = dockerfile();
  const steps = instructions(text);
  assert.deepEqual(steps.map((s) => s.op), ["FROM", "RUN", "CMD"]);
  assert.equal(steps[0].args, "debian:bookworm-slim");
  assert.deepEqual(JSON.parse(steps[2].args), ["/bin/sh"]);
  const run = steps[1].args;
  assert.match(
    run,
    /apt-get install -y --no-install-recommends openssh-server/,
  );
  assert.match(run, /useradd -m -u 1000 -s \/bin\/sh sky/);
  assert.match(run, /rm -f \/etc\/ssh\/ssh_host_\*/);
  assert.match(run, new RegExp(`'${DEFAULT_IMAGE}' >/etc/skyward-image`));
  // The shell parses it.
  const check = await new Deno.Command("sh", { args: ["-n", "-c", run] })
    .output();
  assert.ok(check.success, new TextDecoder().decode(check.stderr));
  assert.equal(
    instructions(dockerfile({ base: "registry.example/debian:trixie-slim" }))[0]
      .args,
    "registry.example/debian:trixie-slim",
  );
  assert.throws(() => dockerfile({ base: "debian; rm -rf /" }), TypeError);
});

Deno.test("`skyward image dockerfile` prints the Dockerfile, with --suite picking the base", async () => {
  const out = await skyward(["dockerfile", "--suite", "trixie"]);
  assert.equal(out.code, 0, out.stderr);
  assert.equal(instructions(out.stdout)[0].args, "debian:trixie-slim");
});

Deno.test("the registry probed is the base image's, over HTTP only on loopback", () => {
  assert.equal(
    registryProbeUrl("debian:bookworm-slim"),
    "https://registry-1.docker.io/v2/",
  );
  assert.equal(
    registryProbeUrl("library/debian:bookworm-slim"),
    "https://registry-1.docker.io/v2/",
  );
  assert.equal(
    registryProbeUrl("ghcr.io/me/debian:12"),
    "https://ghcr.io/v2/",
  );
  assert.equal(
    registryProbeUrl("localhost:5000/debian:12"),
    "http://localhost:5000/v2/",
  );
});

/** `skyward image build --dry-run --force` of a never-built tag on `base`. */
function dryRunBuild(base: string) {
  return skyward([
    "build",
    "--dry-run",
    "--force",
    "--tag",
    "skytest-never-built:1",
    "--base",
    base,
  ]);
}

Deno.test("`skyward image build` takes the Dockerfile route when the base's registry answers", async () => {
  // A registry on loopback: its API root answers 401, as registries do.
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) =>
      new URL(request.url).pathname === "/v2/"
        ? new Response("{}", { status: 401 })
        : new Response("", { status: 404 }),
  );
  const base = `127.0.0.1:${server.addr.port}/debian:bookworm-slim`;
  const out = await dryRunBuild(base);
  assert.equal(out.code, 0, out.stderr);
  assert.match(
    out.stdout,
    new RegExp(
      `Would build skytest-never-built:1 by the dockerfile route: the registry of ${base} answers`,
    ),
  );
  assert.equal(
    out.stdout.includes("(debootstrap if that build fails)"),
    canDebootstrap,
  );
});

Deno.test("`skyward image build` falls back to debootstrap when the base's registry does not answer", async () => {
  // A port nothing listens on.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const base = `127.0.0.1:${port}/debian:bookworm-slim`;
  const out = await dryRunBuild(base);
  if (canDebootstrap) {
    assert.equal(out.code, 0, out.stderr);
    assert.match(
      out.stdout,
      /by the debootstrap route: .* is not in docker's store and its registry does not answer/,
    );
  } else {
    assert.equal(out.code, 1);
    assert.match(out.stderr, /the debootstrap route cannot run either/);
  }
});

Deno.test("`skyward image build` refuses options of the other route and both routes at once", async () => {
  for (
    const [args, message] of [
      [
        ["--dockerfile", "--debootstrap"],
        /Choose one of --dockerfile and --debootstrap/,
      ],
      [
        ["--dockerfile", "--mirror", "http://127.0.0.1:1/debian"],
        /'mirror' is for the debootstrap route/,
      ],
      [
        ["--debootstrap", "--base", "debian:12"],
        /'base' is for the Dockerfile route/,
      ],
      [["--binary", "rkt"], /--binary must be docker or podman/],
    ] as const
  ) {
    const out = await skyward(["build", "--dry-run", "--force", ...args]);
    assert.equal(out.code, 2, `${args.join(" ")}: ${out.stdout}`);
    assert.match(out.stderr, message);
  }
  const help = await skyward(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--dockerfile/);
});

const docker = await requireDocker();

Deno.test({
  name: "an image built by the Dockerfile route runs a container pool",
  ignore: docker.host === null,
  fn: async () => {
    const env = { DOCKER_HOST: docker.host! };
    const tag = `skytest-dockerfile-${Date.now().toString(36)}:1`;
    // The base is in the store: the automatic choice is the Dockerfile.
    const plan = await skyward([
      "build",
      "--dry-run",
      "--tag",
      tag,
      "--base",
      DEFAULT_IMAGE,
    ], env);
    assert.match(
      plan.stdout,
      new RegExp(
        `by the dockerfile route: the base image ${DEFAULT_IMAGE} is in docker's store`,
      ),
    );
    try {
      const built = await skyward([
        "build",
        "--dockerfile",
        "--network",
        "none",
        "--tag",
        tag,
        "--base",
        DEFAULT_IMAGE,
      ], env);
      assert.equal(built.code, 0, built.stderr);
      assert.match(
        built.stdout,
        new RegExp(`${tag}: built from the Dockerfile`),
      );
      await using pool = await sky.ComputePool.start({
        provider: sky.Container({
          host: docker.host!,
          image: tag,
          cache: false,
        }),
        console: "silent",
        provisionTimeout: 180_000,
      });
      assert.equal(await pool.run(square(7)), 49);
    } finally {
      await new Deno.Command("docker", {
        args: ["image", "rm", "-f", tag],
        env,
        stdout: "null",
        stderr: "null",
      }).output();
    }
  },
});
