/**
 * The worker's dead-man switch: no machine outlives a dead client for long.
 *
 * The client sends a heartbeat every few seconds. The worker counts any
 * bytes from the client as a sign of life; when it hears nothing for
 * `silenceMs` (a lost laptop, a network partition, a stopped client), or its
 * input ends without a goodbye (a killed client), it is *orphaned*: it stops
 * its tasks at once, and — where the provider said how a machine powers
 * itself off — waits `graceMs` for a client to come back (a new worker on the
 * same machine that heard from one), then runs the power-off command. At
 * `deadline` (the pool's hard TTL) it stops and powers off without grace.
 *
 * Its settings come from the `SKYWARD_DEADMAN` environment variable (JSON),
 * so they hold from the worker's first moment, before any handshake.
 *
 * @module
 */
import { sleep } from "../src/_timers.ts";

/** The dead-man switch's settings, as the pool sends them. */
export interface DeadManSettings {
  /** Silence from the client after which the worker is orphaned, in ms. */
  silenceMs: number;
  /** How long an orphaned worker waits for a client before powering off, in ms. */
  graceMs: number;
  /** A shell command that powers the machine off, when the provider has one. */
  powerOff?: string;
  /** Milliseconds from the worker's start to the pool's hard TTL, if it has one. */
  deadlineMs?: number;
}

/** What the switch does to the worker. */
export interface DeadManHooks {
  /** Stops the worker's tasks and closes its output (called once). */
  stop(): Promise<void>;
  /** Writes a line to the worker's stderr. */
  say(line: string): void;
  /** Ends the process. */
  exit(code: number): never;
}

/**
 * Reads the settings from the environment.
 *
 * @returns The settings, or `undefined` when none were given (no switch).
 * @throws {TypeError} When the variable is not valid JSON settings.
 */
export function deadManSettings(
  text = Deno.env.get("SKYWARD_DEADMAN"),
): DeadManSettings | undefined {
  if (!text) return undefined;
  const value = JSON.parse(text) as DeadManSettings;
  if (
    !(value.silenceMs > 0) || !(value.graceMs >= 0) ||
    (value.powerOff !== undefined && typeof value.powerOff !== "string") ||
    (value.deadlineMs !== undefined && typeof value.deadlineMs !== "number")
  ) {
    throw new TypeError(`SKYWARD_DEADMAN holds invalid settings: ${text}`);
  }
  return value;
}

/** Watches the client's heartbeat and stops (and powers off) when it is gone. */
export class DeadManSwitch {
  #settings: DeadManSettings;
  #hooks: DeadManHooks;
  /** A file, shared by the machine's workers, holding when a client was last heard. */
  #contactFile: string;
  #last = performance.now();
  #watch?: ReturnType<typeof setInterval>;
  #deadline?: ReturnType<typeof setTimeout>;
  #fired = false;

  /**
   * @param settings From {@linkcode deadManSettings}.
   * @param contactFile Where the machine's workers record a client's handshake.
   * @param hooks How to stop, report and exit.
   */
  constructor(
    settings: DeadManSettings,
    contactFile: string,
    hooks: DeadManHooks,
  ) {
    this.#settings = settings;
    this.#contactFile = contactFile;
    this.#hooks = hooks;
    if (settings.deadlineMs !== undefined) {
      this.#armDeadline(Math.max(0, settings.deadlineMs));
    }
  }

  /** Fires at the hard TTL (in steps: a timer holds at most ~24 days). */
  #armDeadline(ms: number): void {
    const step = Math.min(ms, 2_000_000_000);
    this.#deadline = setTimeout(() => {
      if (ms > step) this.#armDeadline(ms - step);
      else this.#fire("the pool's hard TTL has passed", 0);
    }, step);
  }

  /** Starts counting silence (once the worker reads its input). */
  start(): void {
    this.#last = performance.now();
    const step = Math.max(50, Math.min(1_000, this.#settings.silenceMs / 4));
    let tick = performance.now();
    this.#watch = setInterval(() => {
      // Time this worker was too busy to read its input is not silence.
      const now = performance.now();
      if (now - tick > 2 * step) this.#last += now - tick - step;
      tick = now;
      const silent = now - this.#last;
      if (silent > this.#settings.silenceMs) {
        this.#fire(
          `no heartbeat from the client for ${Math.round(silent)} ms`,
          this.#settings.graceMs,
        );
      }
    }, step);
  }

  /** Bytes arrived from the client. */
  heard(): void {
    this.#last = performance.now();
  }

  /** A client completed the handshake: other workers here must not power off. */
  async greeted(): Promise<void> {
    try {
      await Deno.writeTextFile(this.#contactFile, String(Date.now()));
    } catch {
      // A read-only directory: the grace period then simply runs out.
    }
  }

  /** The input ended without a goodbye: the client is gone. */
  inputEnded(): Promise<never> {
    return this.#fire(
      "the client's connection closed without a goodbye",
      this.#settings.graceMs,
    );
  }

  /** The client said goodbye: stop watching. */
  disarm(): void {
    this.#fired = true;
    clearInterval(this.#watch);
    clearTimeout(this.#deadline);
  }

  async #fire(reason: string, graceMs: number): Promise<never> {
    if (this.#fired) return await new Promise<never>(() => {});
    this.#fired = true;
    clearInterval(this.#watch);
    clearTimeout(this.#deadline);
    const orphanedAt = Date.now();
    // From here on nothing may end the process before the power-off: the
    // streams to the client are broken, and writing to them fails.
    const ignore = (event: Event) => event.preventDefault();
    globalThis.addEventListener("error", ignore);
    globalThis.addEventListener("unhandledrejection", ignore);
    const powerOff = this.#settings.powerOff;
    this.#hooks.say(
      `skyward worker: ${reason}; stopping${
        powerOff ? ` and powering the machine off in ${graceMs} ms` : ""
      }`,
    );
    // Stopping must not hang on a stream nobody reads any more.
    await Promise.race([
      this.#hooks.stop().catch(() => {}),
      sleep(2_000),
    ]);
    if (!powerOff) return this.#hooks.exit(3);
    if (graceMs > 0) await sleep(graceMs);
    const contact = Number(
      await Deno.readTextFile(this.#contactFile).catch(() => "0"),
    );
    if (graceMs > 0 && contact > orphanedAt) {
      this.#hooks.say(
        "skyward worker: a client came back to this machine; not powering off",
      );
      return this.#hooks.exit(3);
    }
    this.#hooks.say(`skyward worker: powering off: ${powerOff}`);
    try {
      const status = await new Deno.Command("/bin/sh", {
        args: ["-c", powerOff],
        stdin: "null",
        stdout: "null",
        stderr: "inherit",
      }).output();
      if (!status.success) {
        this.#hooks.say(
          `skyward worker: the power-off command failed with code ${status.code}`,
        );
      }
    } catch (error) {
      this.#hooks.say(
        `skyward worker: cannot run the power-off command: ${
          error instanceof Error ? error.message : String(error)
        }`,
      );
    }
    return this.#hooks.exit(3);
  }
}
