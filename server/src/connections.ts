/**
 * The server's own TCP listeners, in front of grpc-js: every connection is accepted here,
 * counted, and handed to grpc-js (createConnectionInjector, which does TLS when the credentials
 * say so). That gives three things grpc-js alone does not:
 *
 * - a connection limit: past --max-connections a newcomer takes the place of the oldest
 *   connection that has not sent a call yet, or is closed when every connection has;
 * - an idle timeout for connections that never send a call (a bare TCP connection, a TLS
 *   handshake or an HTTP/2 preface that goes no further): closed after --connection-idle-ms;
 * - a stop that always ends: silent connections are closed at once, the rest when the grace
 *   period ends, by destroying their sockets (grpc-js's own shutdown waits for clients that
 *   never read or never close).
 *
 * Refusals and closures are logged with fixed fields, so the logger's summarizing of repeated
 * error lines (log.ts) turns a flood into one line per window, never one per connection.
 */
import * as dns from "node:dns/promises";
import * as fs from "node:fs";
import * as net from "node:net";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "./log";

export interface ConnectionOptions {
  /** HOST:PORT ([V6]:PORT for IPv6); port 0 picks a free port. */
  listen: string;
  credentials: grpc.ServerCredentials;
  /** Open connections at most (lowered to fit the process's descriptor limit, see effectiveMaxConnections). */
  maxConnections: number;
  /** A connection that has sent no call this long after it opened is closed. */
  idleMs: number;
  log: Logger;
}

interface Tracked {
  socket: net.Socket;
  key: string;
  /** Calls seen on it; 0: a silent connection, first in line to be closed. */
  calls: number;
  idle?: NodeJS.Timeout;
}

/** Descriptors kept free for everything that is not a client connection (stores, logs, metrics, accept). */
export const reservedDescriptors = 100;

/** The soft RLIMIT_NOFILE of this process (Linux), or undefined where it cannot be read. */
export function descriptorLimit(): number | undefined {
  try {
    const line = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync("/proc/self/limits", "utf8"));
    return line && line[1] !== "unlimited" ? Number(line[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** --max-connections, lowered so that every accepted connection still gets a descriptor. */
export function effectiveMaxConnections(configured: number, limit = descriptorLimit()): number {
  return limit === undefined ? configured : Math.max(1, Math.min(configured, limit - reservedDescriptors));
}

const keyOf = (address: string | undefined, port: number | undefined) => `${address}:${port}`;

export function splitListen(listen: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen);
  if (!match) throw new Error(`--listen must be HOST:PORT (or [IPV6]:PORT), got ${JSON.stringify(listen)}`);
  const port = Number(match[3]);
  if (port > 65535) throw new Error(`--listen port must be at most 65535, got ${port}`);
  return { host: match[1] ?? match[2] ?? "", port };
}

export class ConnectionGate {
  readonly maxConnections: number;
  private readonly listeners: net.Server[] = [];
  private readonly open = new Map<net.Socket, Tracked>();
  private readonly byKey = new Map<string, Tracked>();
  private inject: (socket: net.Socket) => void = (socket) => socket.destroy();
  private stopping = false;

  constructor(private readonly options: ConnectionOptions) {
    this.maxConnections = effectiveMaxConnections(options.maxConnections);
  }

  /** Binds every address HOST resolves to (one port for all) and serves `server` there; resolves with the port. */
  async listen(server: grpc.Server): Promise<number> {
    const injector = server.createConnectionInjector(this.options.credentials);
    this.inject = (socket) => injector.injectConnection(socket);
    const { host, port } = splitListen(this.options.listen);
    const addresses = net.isIP(host) ? [host] : (await dns.lookup(host || "0.0.0.0", { all: true })).map((a) => a.address);
    let bound = port;
    const errors: string[] = [];
    for (const address of addresses) {
      try {
        bound = await this.bindOne(address, bound);
      } catch (error) {
        // Like grpc-js: one address that binds is enough (localhost without IPv6, say).
        errors.push(`${address}: ${(error as Error).message}`);
      }
    }
    if (this.listeners.length === 0) throw new Error(`cannot listen on ${this.options.listen}: ${errors.join("; ")}`);
    return bound;
  }

  private bindOne(host: string, port: number): Promise<number> {
    const listener = net.createServer((socket) => this.accept(socket));
    return new Promise((resolve, reject) => {
      listener.once("error", reject);
      listener.listen({ host, port }, () => {
        listener.off("error", reject);
        listener.on("error", (error) => this.options.log.error("listener_error", { cause: error.message }));
        this.listeners.push(listener);
        resolve((listener.address() as net.AddressInfo).port);
      });
    });
  }

  private accept(socket: net.Socket): void {
    socket.on("error", () => {});
    if (this.stopping) return void socket.destroy();
    if (this.open.size >= this.maxConnections) {
      const silent = this.oldestSilent();
      if (!silent) {
        socket.destroy();
        this.options.log.error("connection_refused", { reason: `--max-connections (${this.maxConnections}) are open and every one has sent a call` });
        return;
      }
      this.close(silent);
      this.options.log.error("connection_evicted", { reason: `--max-connections (${this.maxConnections}) reached: the oldest connection that had sent no call was closed to make room` });
    }
    const tracked: Tracked = { socket, key: keyOf(socket.remoteAddress, socket.remotePort), calls: 0 };
    tracked.idle = setTimeout(() => {
      this.close(tracked);
      this.options.log.error("connection_closed_idle", { reason: `no call within --connection-idle-ms (${this.options.idleMs} ms) of opening` });
    }, this.options.idleMs).unref();
    this.open.set(socket, tracked);
    this.byKey.set(tracked.key, tracked);
    socket.once("close", () => this.forget(tracked));
    this.inject(socket);
  }

  /** Closes a connection; it stops counting at once, not when its socket reports closing. */
  private close(tracked: Tracked): void {
    this.forget(tracked);
    tracked.socket.destroy();
  }

  private forget(tracked: Tracked): void {
    clearTimeout(tracked.idle);
    this.open.delete(tracked.socket);
    if (this.byKey.get(tracked.key) === tracked) this.byKey.delete(tracked.key);
  }

  /** Map iteration is insertion order: the first silent one is the oldest. */
  private oldestSilent(): Tracked | undefined {
    for (const tracked of this.open.values()) if (tracked.calls === 0) return tracked;
    return undefined;
  }

  /** Marks the connection a call came on as talking: no longer idle, never evicted. */
  readonly interceptor: grpc.ServerInterceptor = (_method, call) => {
    const tracked = this.byKey.get(call.getPeer());
    if (tracked && tracked.calls++ === 0) clearTimeout(tracked.idle);
    return new grpc.ServerInterceptingCall(call);
  };

  /** Stops accepting: closes the listeners and every connection that has not sent a call. */
  stopAccepting(): void {
    this.stopping = true;
    for (const listener of this.listeners) listener.close();
    for (const tracked of [...this.open.values()]) if (tracked.calls === 0) this.close(tracked);
  }

  /** Destroys every connection left; resolves once their sockets have closed. */
  async destroyAll(): Promise<void> {
    const closing = [...this.open.keys()].map((socket) => new Promise<void>((resolve) => (socket.closed ? resolve() : (socket.once("close", () => resolve()), socket.destroy()))));
    await Promise.all(closing);
  }
}
