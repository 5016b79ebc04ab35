import assert from "node:assert/strict";
import { z } from "zod";
import {
  AmbiguousRequestError,
  HttpClient,
  HttpError,
} from "../providers/_http.ts";
import { createOnce } from "../providers/_create.ts";
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

/**
 * A loopback server speaking just enough HTTP/1.1 by hand to do what
 * `Deno.serve` cannot: read a request and close the connection without an
 * answer. `answer` gets the request's first line and returns the raw
 * response, or `undefined` to drop the connection.
 */
function raw(answer: (line: string) => string | undefined) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const lines: string[] = [];
  const conns = new Set<Deno.Conn>();
  const serving = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      (async () => {
        const buffer = new Uint8Array(64 * 1024);
        let text = "";
        while (!requestComplete(text)) {
          const n = await conn.read(buffer).catch(() => null);
          if (n === null) break;
          text += new TextDecoder().decode(buffer.subarray(0, n));
        }
        const line = text.split("\r\n")[0];
        lines.push(line);
        const response = answer(line);
        if (response !== undefined) {
          await conn.write(new TextEncoder().encode(response)).catch(() => {});
        }
        conns.delete(conn);
        conn.close();
      })();
    }
  })();
  const client = (
    extra: Partial<ConstructorParameters<typeof HttpClient>[0]> = {},
  ) =>
    new HttpClient({
      provider: "Cloud",
      baseUrl: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/api`,
      baseDelayMs: 1,
      maxDelayMs: 5,
      ...extra,
    });
  return {
    lines,
    client,
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const conn of conns) conn.close();
      await serving.catch(() => {});
    },
  };
}

function requestComplete(text: string): boolean {
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return false;
  const length = /content-length: *(\d+)/i.exec(text.slice(0, end));
  return text.length >= end + 4 + Number(length?.[1] ?? 0);
}

function json(status: number, body: unknown): string {
  const text = JSON.stringify(body);
  return `HTTP/1.1 ${status} X\r\ncontent-type: application/json\r\n` +
    `content-length: ${text.length}\r\nconnection: close\r\n\r\n${text}`;
}

Deno.test("a create whose connection drops is not sent again but rejects as ambiguous", async () => {
  await using s = raw(() => undefined);
  const error = await rejects(
    () =>
      s.client().request("/instances", {
        method: "POST",
        body: { hostname: "sky-a-0" },
        schema: z.string(),
        once: true,
      }),
    AmbiguousRequestError,
    "Cloud API: POST /instances may or may not have taken effect",
  );
  assert.equal(error.name, "AmbiguousRequestError");
  assert.equal(error.status, undefined);
  assert.deepEqual(s.lines, ["POST /api/instances HTTP/1.1"]);
});

Deno.test("without once, a dropped connection is retried as before", async () => {
  let n = 0;
  await using s = raw(() => n++ === 0 ? undefined : json(200, { ok: true }));
  assert.deepEqual(
    await s.client().request("/instances", { schema: Ok }),
    { ok: true },
  );
  assert.equal(s.lines.length, 2);
});

Deno.test("a create answered 5xx is ambiguous; 429 is retried; 4xx is a plain refusal", async () => {
  await using s = serve([
    () =>
      new Response("busy", { status: 429, headers: { "retry-after": "0" } }),
    () => Response.json({ message: "gateway" }, { status: 502 }),
    () => Response.json({ message: "no such image" }, { status: 400 }),
  ]);
  const create = () =>
    s.client().request("/instances", {
      method: "POST",
      body: {},
      schema: Ok,
      once: true,
    });
  const ambiguous = await rejects(
    create,
    AmbiguousRequestError,
    "may or may not have taken effect: answered 502: gateway",
  );
  assert.equal(ambiguous.status, 502);
  assert.equal(s.seen.length, 2);
  const refused = await rejects(create, HttpError, "400: no such image");
  assert.ok(!(refused instanceof AmbiguousRequestError));
  assert.equal(s.seen.length, 3);
});

Deno.test("a create answered 2xx in a shape we cannot read is ambiguous, not lost", async () => {
  await using s = serve([() => Response.json({ surprise: true })]);
  const error = await rejects(
    () =>
      s.client().request("/instances", {
        method: "POST",
        schema: z.string(),
        once: true,
      }),
    AmbiguousRequestError,
    "answered 200 but Cloud API: POST /instances answered in an unexpected shape",
  );
  assert.equal(error.status, 200);
});

Deno.test("a create that times out is ambiguous and sent once", async () => {
  // A server that accepts the connection and never answers.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) conns.push(conn);
  })();
  try {
    const client = new HttpClient({
      provider: "Cloud",
      baseUrl: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
      timeoutMs: 100,
      baseDelayMs: 1,
    });
    await rejects(
      () =>
        client.request("/instances", {
          method: "POST",
          schema: Ok,
          once: true,
        }),
      AmbiguousRequestError,
      "may or may not have taken effect",
    );
    assert.equal(conns.length, 1);
  } finally {
    listener.close();
    conns.forEach((c) => c.close());
    await accepting.catch(() => {});
  }
});

/** A cloud that creates instances by hostname, and can lose the answer. */
function cloud(options: { drop: number }) {
  const instances: { id: string; hostname: string }[] = [];
  let drops = options.drop;
  const server = raw((line) => {
    if (line.startsWith("POST /api/instances")) {
      const id = `i-${instances.length + 1}`;
      instances.push({ id, hostname: "sky-a-0" });
      return drops-- > 0 ? undefined : json(200, id);
    }
    if (line.startsWith("GET /api/instances")) return json(200, instances);
    return json(404, { message: "no route" });
  });
  const api = server.client();
  const launch = (lookup = true) =>
    createOnce({
      what: "instance sky-a-0",
      delayMs: 0,
      create: () =>
        api.request("/instances", {
          method: "POST",
          body: { hostname: "sky-a-0" },
          schema: z.string(),
          once: true,
        }),
      lookup: async () =>
        lookup
          ? (await api.request("/instances", {
            schema: z.array(z.object({ id: z.string(), hostname: z.string() })),
          })).find((i) => i.hostname === "sky-a-0")?.id
          : undefined,
    });
  return { instances, server, launch };
}

Deno.test("createOnce: a create that succeeds and then drops the connection leaves exactly one instance", async () => {
  const c = cloud({ drop: 1 });
  await using _ = c.server;
  assert.equal(await c.launch(), "i-1");
  assert.equal(c.instances.length, 1);
  assert.deepEqual(c.server.lines, [
    "POST /api/instances HTTP/1.1",
    "GET /api/instances HTTP/1.1",
  ]);
});

Deno.test("createOnce: sends the create again only when the lookup finds nothing", async () => {
  const c = cloud({ drop: 1 });
  await using _ = c.server;
  // A lookup that sees nothing (the create did not take effect, as far as
  // it can tell) lets the create be sent again.
  assert.equal(await c.launch(false), "i-2");
  assert.equal(c.server.lines.filter((l) => l.startsWith("POST")).length, 2);
});

Deno.test("createOnce: gives up after its attempts saying what may be left", async () => {
  const c = cloud({ drop: 5 });
  await using _ = c.server;
  await rejects(
    () => c.launch(false),
    ProvisioningError,
    "Could not create the instance sky-a-0 after 3 attempt(s)",
  );
});

Deno.test("createOnce: a clear refusal is not looked up nor retried", async () => {
  await using s = serve([
    () => Response.json({ message: "bad type" }, { status: 400 }),
  ]);
  let lookups = 0;
  await rejects(
    () =>
      createOnce({
        what: "instance",
        delayMs: 0,
        create: () =>
          s.client().request("/instances", {
            method: "POST",
            schema: z.string(),
            once: true,
          }),
        lookup: () => Promise.resolve(String(++lookups)),
      }),
    HttpError,
    "400: bad type",
  );
  assert.equal(lookups, 0);
  assert.equal(s.seen.length, 1);
});

Deno.test("a create answered with an accepted 5xx in a shape we cannot read is ambiguous", async () => {
  await using s = serve([
    () => new Response("<html>bad gateway</html>", { status: 503 }),
    () => Response.json({ message: "Not enough resources" }, { status: 503 }),
  ]);
  const create = () =>
    s.client().request("/instances", {
      method: "POST",
      schema: z.object({ message: z.string() }),
      accept: [503],
      once: true,
    });
  const error = await rejects(
    create,
    AmbiguousRequestError,
    "may or may not have taken effect: answered 503",
  );
  assert.equal(error.status, 503);
  // The API's own refusal, in the shape expected, is an answer.
  assert.deepEqual(await create(), { message: "Not enough resources" });
});
