/**
 * The dashboard's web server (loaded on first use, as it brings `hono` and
 * `uplot`): serves the page, its script and style, uPlot's files read from
 * the npm package in Deno's cache (nothing from a CDN), and a stream of
 * server-sent events carrying the view of the pool each time it changes.
 *
 * It listens on 127.0.0.1 only, and every path sits under a random token:
 * a request without it is refused.
 *
 * @module
 */
import { Hono } from "npm:hono@4.13.23";
import { type SSEStreamingApi, streamSSE } from "npm:hono@4.13.23/streaming";
// The page's files are part of this module's graph: Deno caches them with
// the code (also when the library runs from JSR), and uPlot's are read from
// the npm package in Deno's cache.
import html from "./page/index.html" with { type: "text" };
import appJs from "./page/app.js" with { type: "text" };
import appCss from "./page/app.css" with { type: "text" };
import uplotJs from "npm:uplot@1.6.32/dist/uPlot.iife.min.js" with {
  type: "text",
};
import uplotCss from "npm:uplot@1.6.32/dist/uPlot.min.css" with {
  type: "text",
};
import { ConfigError } from "../errors.ts";
import { logger } from "../log.ts";
import { after, sleep } from "../_timers.ts";
import { type DashboardRecord, DashboardState } from "./state.ts";
import type { DashboardServeOptions, DashboardServer } from "./serve.ts";

const log = logger("dashboard");

/** How often, at most, the page gets a new view, in milliseconds. */
const UPDATE_EVERY = 200;
/** How soon a page reconnects once its stream ended, in milliseconds. */
const RETRY = 1_000;

/** A page's stream of views. */
interface Client {
  stream: SSEStreamingApi;
  /** The page's id (from the query), the same across its reconnections. */
  page: string;
  /** The views sent so far, in order. */
  sent: Promise<void>;
  /** Ends the stream. */
  end: () => void;
}

/** The files of the page, by name: their content type and text. */
const FILES: Record<string, { type: string; text: string }> = {
  "": { type: "text/html; charset=utf-8", text: html },
  "app.js": { type: "text/javascript; charset=utf-8", text: appJs },
  "app.css": { type: "text/css; charset=utf-8", text: appCss },
  "uplot.js": { type: "text/javascript; charset=utf-8", text: uplotJs },
  "uplot.css": { type: "text/css; charset=utf-8", text: uplotCss },
};

/** Compares two strings in a time that does not depend on where they differ. */
function sameToken(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

const REFUSED = "Forbidden: this dashboard's address holds a token; " +
  "open the address the pool printed.\n";

/**
 * Starts the dashboard's server.
 *
 * @param options The port (default: a free one).
 * @returns The running server.
 * @throws {ConfigError} When the port cannot be listened on.
 *
 * @example
 * ```ts ignore
 * const server = await serveDashboard({ port: 0 });
 * server.apply({ type: "ClusterReady", time: Date.now(), pool: "p", nodes: 1, elapsedMs: 5 });
 * await server.close();
 * ```
 */
export function serveDashboard(
  options: DashboardServeOptions = {},
): Promise<DashboardServer> {
  // Failures (a port taken) reach the caller as a rejection.
  return Promise.resolve().then(() => listen(options));
}

/** Starts listening and returns the server. */
function listen(options: DashboardServeOptions): DashboardServer {
  const token = options.token ??
    [...crypto.getRandomValues(new Uint8Array(16))].map((b) =>
      b.toString(16).padStart(2, "0")
    ).join("");
  let state = new DashboardState();
  /** The pages connected now; each stream sends the views in order. */
  const clients = new Set<Client>();
  /** Pages by id: when each was last connected, and the last view it got. */
  const pages = new Map<string, { seen: number; got: number }>();
  /** Whether streams are held open (the program is busy anyway). */
  let holding = options.keepAlive !== false;
  let ended = false;
  let sequence = 0;
  let cancelTimer: (() => void) | undefined;

  const send = (client: Client, data: string, id: number) => {
    client.sent = client.sent.then(async () => {
      await client.stream.writeSSE({ data, id: String(id), retry: RETRY });
      const page = pages.get(client.page);
      if (page) page.got = id;
    }).catch(() => client.end());
  };
  /** Sends the current view to every page. */
  const broadcast = () => {
    cancelTimer?.();
    cancelTimer = undefined;
    const data = JSON.stringify(state.snapshot());
    const id = ++sequence;
    for (const client of clients) send(client, data, id);
  };
  const schedule = () => {
    cancelTimer ??= after(UPDATE_EVERY, broadcast, { keepAlive: false });
  };
  /** Ends every stream once its views are sent: the pages reconnect. */
  const release = async () => {
    const all = [...clients];
    for (const client of all) client.end();
    await Promise.all(all.map((c) => c.sent));
  };

  const app = new Hono();
  app.use("*", async (c, next) => {
    const [, given = ""] = c.req.path.split("/");
    if (!sameToken(given, token)) return c.text(REFUSED, 403);
    await next();
    c.header("Cache-Control", "no-store");
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Referrer-Policy", "no-referrer");
    c.header(
      "Content-Security-Policy",
      "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
    );
  });
  app.get("/:token", (c) => c.redirect(`/${token}/`));
  app.get("/:token/events", (c) => {
    const pageId = (c.req.query("page") ?? "").slice(0, 64);
    return streamSSE(c, async (stream) => {
      let end!: () => void;
      const done = new Promise<void>((r) => end = r);
      const client: Client = {
        stream,
        page: pageId,
        sent: Promise.resolve(),
        end,
      };
      const now = Date.now();
      // Pages gone for a while are forgotten.
      for (const [id, page] of pages) {
        const connected = [...clients].some((c) => c.page === id);
        if (now - page.seen > 10 * RETRY && !connected) pages.delete(id);
      }
      pages.set(pageId, { seen: now, got: pages.get(pageId)?.got ?? 0 });
      stream.onAbort(() => end());
      send(client, JSON.stringify(state.snapshot()), sequence);
      if (ended || !holding) end();
      else clients.add(client);
      await done;
      clients.delete(client);
      pages.set(pageId, {
        seen: Date.now(),
        got: pages.get(pageId)?.got ?? 0,
      });
      await client.sent;
    });
  });
  app.get("/:token/:file{.*}", (c) => {
    const name = c.req.param("file");
    const file = Object.hasOwn(FILES, name) ? FILES[name] : undefined;
    if (!file) return c.text("Not found\n", 404);
    return c.body(file.text, 200, { "Content-Type": file.type });
  });

  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: "127.0.0.1",
      port: options.port ?? 0,
      onListen: () => {},
    }, app.fetch);
  } catch (error) {
    throw new ConfigError(
      `Cannot start the dashboard on 127.0.0.1:${options.port ?? 0}: ${
        error instanceof Error ? error.message : String(error)
      }. Give another 'port', or none for a free one.`,
      { cause: error },
    );
  }
  if (options.keepAlive === false) server.unref();
  const url = `http://127.0.0.1:${server.addr.port}/${token}/`;
  log.debug("Dashboard listening on 127.0.0.1:{port}", {
    port: server.addr.port,
  });
  let closing: Promise<void> | undefined;

  const dashboard: DashboardServer = {
    url,
    apply(record: DashboardRecord) {
      state.apply(record);
      schedule();
    },
    reset() {
      state = new DashboardState();
      schedule();
    },
    state: () => state.snapshot(),
    hold(busy: boolean) {
      if (holding === busy || options.keepAlive !== false) return;
      holding = busy;
      if (!busy) release();
    },
    async finish(time = Date.now()) {
      state.close(time);
      broadcast();
      await Promise.all([...clients].map((c) => c.sent));
    },
    close() {
      closing ??= (async () => {
        await dashboard.finish();
        ended = true;
        // Pages between two streams (they reconnect within RETRY ms) get
        // the last view when they do; those gone for longer are not waited
        // for.
        const last = sequence;
        for (let waited = 0; waited < 2 * RETRY; waited += 50) {
          const now = Date.now();
          const missing = [...pages.values()].some((p) =>
            p.got < last && now - p.seen < 3 * RETRY
          );
          if (!missing) break;
          await sleep(50);
        }
        await release();
        await server.shutdown();
      })();
      return closing;
    },
  };
  return dashboard;
}
