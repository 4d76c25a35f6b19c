/**
 * The shell both bare reference proxies of the overhead bench share: arguments
 * `PORT UPSTREAM_PORT...`, `Deno.serve` on 127.0.0.1, requests spread round robin over the
 * upstream ports, a `listening on http://127.0.0.1:PORT` line once it listens, exit on SIGTERM.
 * The proxy itself is `forward`: how it sends one request to one upstream port.
 *
 * @module
 */

/** Serves `forward` on the port and upstream ports given as arguments. */
export function serveBareProxy(
  setup: (upstreamPorts: number[]) => (req: Request, upstream: number) => Promise<Response>,
): void {
  const [port, ...upstreams] = Deno.args.map(Number);
  const forward = setup(upstreams);
  let next = 0;
  Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen: (a) => console.log(`listening on http://127.0.0.1:${a.port}`),
  }, (req) => {
    const upstream = next;
    next = (next + 1) % upstreams.length;
    return forward(req, upstream);
  });
  Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
}
