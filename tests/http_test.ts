import assert from "node:assert/strict";
import { z } from "zod";
import { HttpClient, HttpError } from "../providers/_http.ts";
import { ConfigError, ProvisioningError } from "../src/errors.ts";

async function rejects<E extends Error>(
  fn: () => Promise<unknown>,
  type: new (...args: any[]) => E,
  includes: string,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    assert.ok(error instanceof type, `expected ${type.name}, got ${error}`);
    assert.ok(
      (error as Error).message.includes(includes),
      `"${(error as Error).message}" should include "${includes}"`,
    );
    return error as E;
  }
  throw new assert.AssertionError({ message: "expected a rejection" });
}

/** A loopback server answering from a script of responses, recording requests. */
function serve(answers: (() => Response)[]) {
  const seen: { url: URL; headers: Headers }[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      seen.push({
        url: new URL(request.url),
        headers: new Headers(request.headers),
      });
      const next = answers.shift();
      return next ? next() : new Response("no more answers", { status: 599 });
    },
  );
  const client = (
    extra: Partial<ConstructorParameters<typeof HttpClient>[0]> = {},
  ) =>
    new HttpClient({
      provider: "Cloud",
      baseUrl: `http://127.0.0.1:${server.addr.port}/api`,
      baseDelayMs: 1,
      maxDelayMs: 5,
      ...extra,
    });
  return { seen, client, [Symbol.asyncDispose]: () => server.shutdown() };
}

const Ok = z.object({ ok: z.boolean() });

Deno.test("rate limits and server errors are retried, then the body is checked", async () => {
  await using s = serve([
    () =>
      new Response("slow down", {
        status: 429,
        headers: { "retry-after": "0" },
      }),
    () =>
      new Response(JSON.stringify({ error: "overloaded" }), { status: 503 }),
    () => Response.json({ ok: true }),
  ]);
  const body = await s.client().request("/thing", {
    method: "POST",
    body: { a: 1 },
    query: { x: 1, y: undefined },
    schema: Ok,
  });
  assert.deepEqual(body, { ok: true });
  assert.deepEqual(s.seen.length, 3);
  assert.deepEqual(s.seen[2].url.pathname, "/api/thing");
  assert.deepEqual(s.seen[2].url.search, "?x=1");
  assert.deepEqual(s.seen[2].headers.get("content-type"), "application/json");
});

Deno.test("a 4xx is not retried and carries the provider's own message", async () => {
  await using s = serve([
    () =>
      Response.json({ msg: "offer 42 is no longer available" }, {
        status: 400,
      }),
  ]);
  const error = await rejects(
    () => s.client().request("/asks/42/", { method: "PUT", schema: Ok }),
    HttpError,
    "Cloud API: PUT /asks/42/ → 400: offer 42 is no longer available",
  );
  assert.deepEqual(error.status, 400);
  assert.deepEqual(s.seen.length, 1);
});

Deno.test("GraphQL-style error lists are joined into the message", async () => {
  await using s = serve([
    () =>
      Response.json({ errors: [{ message: "a" }, { message: "b" }] }, {
        status: 400,
      }),
  ]);
  await rejects(
    () => s.client().request("/graphql", { schema: Ok }),
    HttpError,
    "400: a; b",
  );
});

Deno.test("refused credentials are a ConfigError with the hint", async () => {
  await using s = serve([
    () => Response.json({ error: "invalid api key" }, { status: 401 }),
  ]);
  await rejects(
    () =>
      s.client({ credentialsHint: "Set CLOUD_KEY" }).request("/me", {
        schema: Ok,
      }),
    ConfigError,
    "Cloud refused the credentials (401: invalid api key). Set CLOUD_KEY",
  );
});

Deno.test("a 401 calls onUnauthorized once and tries again with new headers", async () => {
  await using s = serve([
    () => new Response("expired", { status: 401 }),
    () => Response.json({ ok: true }),
  ]);
  let token = "old";
  const body = await s.client({
    headers: () => ({ authorization: `Bearer ${token}` }),
    onUnauthorized: () => {
      token = "new";
    },
  }).request("/me", { schema: Ok });
  assert.deepEqual(body, { ok: true });
  assert.deepEqual(s.seen.map((r) => r.headers.get("authorization")), [
    "Bearer old",
    "Bearer new",
  ]);
});

Deno.test("an answer of the wrong shape names the call", async () => {
  await using s = serve([() => Response.json({ ok: "yes" })]);
  await rejects(
    () => s.client().request("/me", { schema: Ok }),
    ProvisioningError,
    "Cloud API: GET /me answered in an unexpected shape",
  );
});

Deno.test("server errors give up after the attempts with the last status", async () => {
  await using s = serve(
    Array.from(
      { length: 3 },
      () => () => new Response("down", { status: 502 }),
    ),
  );
  await rejects(
    () => s.client({ attempts: 3 }).request("/me", { schema: Ok }),
    HttpError,
    "→ 502: down",
  );
  assert.deepEqual(s.seen.length, 3);
});

Deno.test("a plain-text answer is the value itself when the request allows text", async () => {
  await using s = serve([
    () => new Response("deadc0de-a5d2-4972-ae4e-d429115d055b\n"),
    () => Response.json("quoted-id"),
    () => new Response("not json"),
  ]);
  const client = s.client();
  assert.equal(
    await client.request("/instances", {
      method: "POST",
      schema: z.string(),
      text: true,
    }),
    "deadc0de-a5d2-4972-ae4e-d429115d055b",
  );
  assert.equal(
    await client.request("/scripts", { schema: z.string(), text: true }),
    "quoted-id",
  );
  await rejects(
    () => client.request("/sshkeys", { schema: z.string() }),
    ProvisioningError,
    "answered with something that is not JSON",
  );
});
