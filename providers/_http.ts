/**
 * The HTTP client the REST and GraphQL clouds share: JSON over `fetch`,
 * responses checked with zod, rate limits and server errors retried with
 * exponential backoff and full jitter, and every other failure reported with
 * the provider's own message.
 *
 * Internal to the providers; not part of the public API.
 *
 * @module
 */
import type { z } from "npm:zod@4.6.7";
import { ConfigError, ProvisioningError } from "../src/errors.ts";
import { retry, retryAfterMs } from "../src/_retry.ts";

/** Options of {@linkcode HttpClient}. */
export interface HttpClientOptions {
  /** The provider's display name, used in messages, e.g. `"RunPod"`. */
  provider: string;
  /** The API's base URL; request paths are appended to it. */
  baseUrl: string;
  /**
   * Headers sent with every request, typically authentication. Called before
   * each attempt, so a token may be refreshed here.
   */
  headers?: () => Record<string, string> | Promise<Record<string, string>>;
  /**
   * Called once when a request is answered 401, before trying it again, e.g.
   * to drop a cached OAuth token. Without it a 401 is not retried.
   */
  onUnauthorized?: () => void | Promise<void>;
  /** What to tell the user when the API refuses the credentials (401/403). */
  credentialsHint?: string;
  /** Attempts for retryable failures (429, 5xx, network). @default 5 */
  attempts?: number;
  /** First backoff delay, in ms; doubled each attempt. @default 250 */
  baseDelayMs?: number;
  /** Largest backoff delay, in ms. @default 8000 */
  maxDelayMs?: number;
  /** Timeout of one attempt, in ms. @default 30000 */
  timeoutMs?: number;
}

/** One request. */
export interface HttpRequest<T> {
  /** The HTTP method. @default "GET" */
  method?: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Query parameters; `undefined` values are left out. */
  query?: Record<string, string | number | boolean | undefined>;
  /** A JSON body. */
  body?: unknown;
  /** A form-encoded body (`application/x-www-form-urlencoded`). */
  form?: Record<string, string>;
  /** The schema of a successful response's JSON body. */
  schema: z.ZodType<T>;
  /** Statuses that are not errors although not 2xx (e.g. 404 on a delete). */
  accept?: number[];
  /** Extra headers for this request. */
  headers?: Record<string, string>;
  /**
   * The API may answer with plain text (e.g. a bare id): a body that is not
   * JSON is then the value itself, trimmed, instead of an error.
   * @default false
   */
  text?: boolean;
  /**
   * The request creates something (an instance, a pod, a key) and must not
   * be sent twice blindly. A failure that leaves open whether the server
   * acted on it — a network error, the attempt's timeout, a 5xx, or a 2xx
   * whose body cannot be read or parsed — is then not retried but rejects
   * with an {@linkcode AmbiguousRequestError}, so that the caller can look
   * up whether the create took effect before trying again (see
   * `createOnce` in `_create.ts`). Answers that say the request was not
   * acted on (429, a 401 refreshed through `onUnauthorized`) are still
   * retried, and any other 4xx is an {@linkcode HttpError} as usual.
   * @default false
   */
  once?: boolean;
}

/**
 * An API answered with an error: the status and the provider's own message.
 *
 * @example
 * ```ts
 * import { HttpError } from "./_http.ts";
 *
 * const error = new HttpError("RunPod", "POST", "/graphql", 400, "bad bid");
 * console.log(error.message); // "RunPod API: POST /graphql → 400: bad bid"
 * ```
 */
export class HttpError extends ProvisioningError {
  /** The HTTP status. */
  readonly status: number;
  /** The provider's own message. */
  readonly detail: string;

  /**
   * Creates the error.
   *
   * @param provider The provider's display name.
   * @param method The request's method.
   * @param path The request's path.
   * @param status The response status.
   * @param detail The provider's message.
   */
  constructor(
    provider: string,
    method: string,
    path: string,
    status: number,
    detail: string,
  ) {
    super(`${provider} API: ${method} ${path} → ${status}: ${detail}`);
    this.name = "HttpError";
    this.status = status;
    this.detail = detail;
  }
}

/**
 * A request that creates something ({@linkcode HttpRequest.once}) failed in
 * a way that leaves open whether the server acted on it: the connection
 * dropped, the attempt timed out, the server answered 5xx, or it answered 2xx
 * with a body that could not be read or parsed. Look up by the name or label
 * the request set whether it took effect before sending it again.
 *
 * @example
 * ```ts
 * import { AmbiguousRequestError } from "./_http.ts";
 *
 * const error = new AmbiguousRequestError(
 *   "Verda",
 *   "POST",
 *   "/instances",
 *   "the connection closed",
 * );
 * console.log(error.message);
 * // "Verda API: POST /instances may or may not have taken effect: the connection closed"
 * ```
 */
export class AmbiguousRequestError extends ProvisioningError {
  /** The response status, when there was a response. */
  readonly status: number | undefined;

  /**
   * Creates the error.
   *
   * @param provider The provider's display name.
   * @param method The request's method.
   * @param path The request's path.
   * @param detail What went wrong.
   * @param options The response status, when there was one, and the cause.
   */
  constructor(
    provider: string,
    method: string,
    path: string,
    detail: string,
    options: { status?: number; cause?: unknown } = {},
  ) {
    super(
      `${provider} API: ${method} ${path} may or may not have taken effect: ${detail}`,
      { cause: options.cause },
    );
    this.name = "AmbiguousRequestError";
    this.status = options.status;
  }
}

/**
 * A small JSON client for a cloud's API.
 *
 * @example
 * ```ts ignore
 * import { z } from "npm:zod@4.6.7";
 * import { HttpClient } from "./_http.ts";
 *
 * const api = new HttpClient({
 *   provider: "VastAI",
 *   baseUrl: "https://console.vast.ai/api/v0",
 *   headers: () => ({ Authorization: `Bearer ${Deno.env.get("VAST_API_KEY")}` }),
 * });
 * const me = await api.request("/users/current/", {
 *   schema: z.object({ id: z.number() }),
 * });
 * ```
 */
export class HttpClient {
  readonly #options: HttpClientOptions;

  /**
   * Creates a client.
   *
   * @param options The provider, base URL, headers and retry policy.
   */
  constructor(options: HttpClientOptions) {
    this.#options = options;
  }

  /**
   * Sends a request and returns its checked JSON body.
   *
   * @param path The path under the base URL.
   * @param request Method, query, body and the response schema.
   * @returns The response body, parsed by the schema (`undefined` bodies are
   * parsed as `null`).
   * @throws {ConfigError} When the API refuses the credentials (401/403).
   * @throws {HttpError} On any other error status, after retries for 429/5xx.
   * @throws {AmbiguousRequestError} For a `once` request whose failure leaves
   * open whether the server acted on it.
   * @throws {ProvisioningError} When the response does not match the schema
   * or the API cannot be reached.
   */
  async request<T>(path: string, request: HttpRequest<T>): Promise<T> {
    const o = this.#options;
    const method = request.method ?? "GET";
    const url = new URL(o.baseUrl.replace(/\/$/, "") + path);
    for (const [key, value] of Object.entries(request.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    let refreshed = false;
    // The failures worth another attempt, with the delay each asks for.
    const transient = new WeakMap<Error, number | undefined>();
    const attempt = async (): Promise<T> => {
      for (;;) {
        const headers: Record<string, string> = {
          accept: "application/json",
          ...(await o.headers?.()),
          ...request.headers,
        };
        let body: string | undefined;
        if (request.form) {
          headers["content-type"] = "application/x-www-form-urlencoded";
          body = new URLSearchParams(request.form).toString();
        } else if (request.body !== undefined) {
          headers["content-type"] = "application/json";
          body = JSON.stringify(request.body);
        }
        let response: Response;
        let text: string;
        try {
          response = await fetch(url, {
            method,
            headers,
            body,
            signal: AbortSignal.timeout(o.timeoutMs ?? 30_000),
          });
          text = await response.text();
        } catch (error) {
          const detail = (error as Error).message;
          if (request.once) {
            throw new AmbiguousRequestError(o.provider, method, path, detail, {
              cause: error,
            });
          }
          const failed = new ProvisioningError(
            `${o.provider} API: ${method} ${path} failed: ${detail}`,
            { cause: error },
          );
          transient.set(failed, undefined);
          throw failed;
        }
        if (response.ok || request.accept?.includes(response.status)) {
          // A create answered 2xx (or an accepted 5xx) in a shape we cannot
          // read may have taken effect all the same.
          const parse = () =>
            this.#parse(method, path, text, request.schema, request.text);
          if (!request.once || (!response.ok && response.status < 500)) {
            return parse();
          }
          try {
            return parse();
          } catch (error) {
            throw new AmbiguousRequestError(
              o.provider,
              method,
              path,
              `answered ${response.status} but ${(error as Error).message}`,
              { status: response.status, cause: error },
            );
          }
        }
        const detail = errorDetail(text) || response.statusText;
        if (response.status === 401 && o.onUnauthorized && !refreshed) {
          // A refreshed token is not another attempt: send it again now.
          refreshed = true;
          await o.onUnauthorized();
          continue;
        }
        if (response.status === 401 || response.status === 403) {
          throw new ConfigError(
            `${o.provider} refused the credentials (${response.status}: ${detail})` +
              (o.credentialsHint ? `. ${o.credentialsHint}` : ""),
          );
        }
        const failed = new HttpError(
          o.provider,
          method,
          path,
          response.status,
          detail,
        );
        if (response.status !== 429 && response.status < 500) throw failed;
        if (request.once && response.status !== 429) {
          throw new AmbiguousRequestError(
            o.provider,
            method,
            path,
            `answered ${response.status}: ${detail}`,
            { status: response.status, cause: failed },
          );
        }
        transient.set(
          failed,
          retryAfterMs(response.headers.get("retry-after")),
        );
        throw failed;
      }
    };
    return await retry(attempt, {
      maxAttempts: o.attempts ?? 5,
      minDelay: o.baseDelayMs ?? 250,
      maxDelay: o.maxDelayMs ?? 8_000,
      isRetriable: (error) => transient.has(error as Error),
      retryAfter: (error) => transient.get(error as Error),
    });
  }

  #parse<T>(
    method: string,
    path: string,
    text: string,
    schema: z.ZodType<T>,
    plain = false,
  ): T {
    let json: unknown = null;
    if (text.trim() !== "") {
      try {
        json = JSON.parse(text);
      } catch {
        if (plain) {
          return this.#parse(method, path, JSON.stringify(text.trim()), schema);
        }
        throw new ProvisioningError(
          `${this.#options.provider} API: ${method} ${path} answered with ` +
            `something that is not JSON: ${text.slice(0, 200)}`,
        );
      }
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new ProvisioningError(
        `${this.#options.provider} API: ${method} ${path} answered in an ` +
          `unexpected shape: ${parsed.error.message}`,
      );
    }
    return parsed.data;
  }
}

/** The provider's own message from an error body, in the shapes clouds use. */
export function errorDetail(text: string): string {
  try {
    const json = JSON.parse(text) as Record<string, unknown>;
    const errors = json.errors;
    if (Array.isArray(errors) && errors.length > 0) {
      return errors.map((e) =>
        typeof e === "object" && e && "message" in e
          ? String(e.message)
          : String(e)
      ).join("; ");
    }
    for (
      const key of ["msg", "message", "error_description", "error", "detail"]
    ) {
      const value = json[key];
      if (typeof value === "string" && value) return value;
      if (value && typeof value === "object" && "message" in value) {
        return String((value as { message: unknown }).message);
      }
    }
  } catch {
    // Not JSON: the text itself.
  }
  return text.trim().slice(0, 500);
}
