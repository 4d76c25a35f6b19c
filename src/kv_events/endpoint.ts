/**
 * ZMQ TCP endpoints as engines write them: `tcp://host:port` to connect, `tcp://*:port` (or
 * `tcp://0.0.0.0:port`) to bind on every interface. IPv6 literals go in brackets
 * (`tcp://[::1]:5557`). Other transports (`ipc://`, `inproc://`) and interface names are not
 * supported: the router reaches engines over the network.
 *
 * @module
 */

/** A parsed `tcp://` endpoint. */
export interface TcpEndpoint {
  /** Host name or IP literal (without brackets); `0.0.0.0` for `*`. */
  readonly hostname: string;
  /** Port; 0 only when binding (any free port). */
  readonly port: number;
  /** The host was `*`: bind on every interface. */
  readonly wildcard: boolean;
}

const HOST_RE = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+|\*))$/;

/**
 * Parses `tcp://host:port`; throws a `RangeError` that names the value when it is not one.
 * @param forBind allow port 0 and `*` (a bound socket); a connecting socket needs both real
 */
export function parseEndpoint(text: string, forBind = false): TcpEndpoint {
  const fail = (why: string): never => {
    throw new RangeError(`endpoint ${why}, got ${JSON.stringify(text)}`);
  };
  if (typeof text !== "string" || !text.startsWith("tcp://")) fail("must be tcp://host:port");
  const rest = text.slice(6);
  const colon = rest.lastIndexOf(":");
  if (colon <= 0) fail("must be tcp://host:port");
  const hostPart = rest.slice(0, colon);
  const portPart = rest.slice(colon + 1);
  const m = HOST_RE.exec(hostPart);
  if (m === null) fail("has an invalid host");
  const host = m![1] ?? m![2];
  if (!/^\d{1,5}$/.test(portPart)) fail("has an invalid port");
  const port = Number(portPart);
  if (port > 65535 || (port === 0 && !forBind)) fail("has an invalid port");
  const wildcard = host === "*";
  if (wildcard && !forBind) fail("with * can only be bound, not connected to");
  return { hostname: wildcard ? "0.0.0.0" : host, port, wildcard };
}

/** `tcp://host:port` for a parsed endpoint (IPv6 in brackets). */
export function formatEndpoint(hostname: string, port: number): string {
  return `tcp://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
}
