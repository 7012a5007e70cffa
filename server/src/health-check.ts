/**
 * `burr-state-server health`: asks a running server's grpc.health.v1.Health/Check and exits 0
 * when it answers SERVING, 1 otherwise. For container HEALTHCHECKs: nothing else to install.
 */
import { parseArgs } from "node:util";
import * as fs from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { serviceDefinition } from "@burr-state/client/protocol";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus, type HealthCheckResponse } from "@burr-state/client/gen/grpc/health/v1/health_pb";

/** The address to ask: --address, else BURR_LISTEN with a wildcard host replaced by loopback. */
export function healthAddress(given: string | undefined, env: NodeJS.ProcessEnv): string {
  if (given) return given;
  const listen = env.BURR_LISTEN ?? "127.0.0.1:50051";
  const at = listen.lastIndexOf(":");
  const host = listen.slice(0, at);
  const wildcard = host === "0.0.0.0" || host === "[::]" || host === "::" || host === "";
  return `${wildcard ? "127.0.0.1" : host}:${listen.slice(at + 1)}`;
}

export async function healthCheck(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { address: { type: "string" }, service: { type: "string" }, "timeout-ms": { type: "string" }, "tls-ca": { type: "string" } },
    strict: true,
  });
  const address = healthAddress(values.address, env);
  const caFile = values["tls-ca"] ?? env.BURR_HEALTH_TLS_CA;
  const credentials = caFile ? grpc.credentials.createSsl(fs.readFileSync(caFile)) : grpc.credentials.createInsecure();
  const Client = grpc.makeGenericClientConstructor(serviceDefinition(Health), Health.typeName);
  type Check = (request: object, options: grpc.CallOptions, callback: (error: Error | null, answer: HealthCheckResponse) => void) => void;
  const client = new Client(address, credentials) as unknown as grpc.Client & { check: Check };
  const deadline = Date.now() + Number(values["timeout-ms"] ?? 3000);
  try {
    const response = await new Promise<HealthCheckResponse>((resolve, reject) =>
      client.check.call(
        client,
        { service: values.service ?? "" },
        { deadline },
        (error, answer) => (error ? reject(error) : resolve(answer)),
      ),
    );
    const status = ServingStatus[response.status] ?? String(response.status);
    process.stdout.write(`${address}: ${status}\n`);
    return response.status === ServingStatus.SERVING ? 0 : 1;
  } catch (error) {
    process.stdout.write(`${address}: ${(error as Error).message}\n`);
    return 1;
  } finally {
    client.close();
  }
}
