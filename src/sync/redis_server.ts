/**
 * A throwaway `redis-server` child process for tests and benchmarks: bound to 127.0.0.1 on a free
 * port, no persistence (`--save ''`, `--appendonly no`), stopped and restarted on the same port so
 * that clients see "Redis went away and came back".
 *
 * The binary is Debian's `redis-server` package (`apt-get install -y redis-server`);
 * {@linkcode findRedisServer} says whether it is there so that tests can skip with a clear message.
 *
 * @module
 */

/** A running (or stopped, restartable) Redis server. */
export interface RedisServerHandle {
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** Whether the process is running. */
  readonly running: boolean;
  /** The process id while it runs (tests stop and continue it to hang the server). */
  readonly pid: number | null;
  /** Stops the process (SIGTERM, then SIGKILL after 2 s) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port (empty: nothing was persisted). */
  restart(): Promise<void>;
}

/** Options of {@linkcode startRedisServer}. */
export interface RedisServerOptions {
  /** Binary; default `REDIS_SERVER` from the environment, else `redis-server` on the PATH. */
  readonly binary?: string;
  /** Port; default a free one. */
  readonly port?: number;
  /** Time to wait for PONG, ms; default 10000. */
  readonly readyTimeoutMs?: number;
}

function binaryOf(opts: RedisServerOptions): string {
  if (opts.binary) return opts.binary;
  try {
    return Deno.env.get("REDIS_SERVER") || "redis-server";
  } catch {
    return "redis-server";
  }
}

/** The `redis-server` binary's version line, or null when it cannot be run. */
export async function findRedisServer(binary?: string): Promise<string | null> {
  try {
    const out = await new Deno.Command(binaryOf({ binary }), {
      args: ["--version"],
      stdout: "piped",
      stderr: "null",
      stdin: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  } catch {
    return null;
  }
}

/** A TCP port that was free a moment ago (bind port 0, read it, close). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * The pid of the Redis server answering on `port` (from `INFO server`), or null when none answers.
 * Checking the pid, not just PING, makes sure the server that answers is the one we started: a
 * port freed by `freePort` can be taken by another process before our server binds it.
 */
async function serverPid(port: number): Promise<number | null> {
  let conn: Deno.TcpConn | undefined;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode("INFO server\r\n"));
    const buf = new Uint8Array(16 * 1024);
    let text = "";
    for (let i = 0; i < 16 && !/process_id:\d+\r\n/.test(text); i++) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    const m = /process_id:(\d+)/.exec(text);
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  } finally {
    conn?.close();
  }
}

/** Starts `redis-server` and resolves once it answers PING. */
export async function startRedisServer(
  opts: RedisServerOptions = {},
): Promise<RedisServerHandle> {
  const binary = binaryOf(opts);
  const port = opts.port ?? freePort();
  const readyMs = opts.readyTimeoutMs ?? 10_000;
  let child: Deno.ChildProcess | null = null;

  const spawn = async () => {
    const proc = new Deno.Command(binary, {
      args: [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "no",
        "--loglevel",
        "warning",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    child = proc;
    const deadline = performance.now() + readyMs;
    let exited = false;
    proc.status.then(() => exited = true);
    while ((await serverPid(port)) !== proc.pid) {
      if (exited || performance.now() > deadline) {
        await stopChild();
        throw new Error(
          `redis-server on port ${port} did not answer within ${readyMs} ms` +
            (exited ? " (it exited; is the port taken?)" : ""),
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const stopChild = async () => {
    const c = child;
    child = null;
    if (!c) return;
    try {
      c.kill("SIGTERM");
    } catch { /* already gone */ }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const killed = await Promise.race([
      c.status.then(() => false),
      new Promise<boolean>((r) => timer = setTimeout(() => r(true), 2000)),
    ]);
    clearTimeout(timer);
    if (killed) {
      try {
        c.kill("SIGKILL");
      } catch { /* gone meanwhile */ }
      await c.status;
    }
  };

  await spawn();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get running() {
      return child !== null;
    },
    get pid() {
      return child?.pid ?? null;
    },
    stop: stopChild,
    async restart() {
      await stopChild();
      await spawn();
    },
  };
}
