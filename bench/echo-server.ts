/**
 * The loopback floor of the hop rows: a TCP server that answers each request frame with as many
 * bytes as the frame asks for. A frame is [request length u32 BE][answer length u32 BE] followed
 * by the request's bytes; the answer goes out once the whole request is in. So a client can time
 * a raw request-response of exactly a Save's or a Load's message sizes, with nothing on either
 * side but the socket (no HTTP/2, no protobuf, no store).
 *
 *   tsx bench/echo-server.ts --listen 127.0.0.1:0
 */
import * as net from "node:net";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { listen: { type: "string" } } });
const [host, port] = (values.listen ?? "127.0.0.1:0").split(":");

const headerBytes = 8;

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  let buffered: Buffer = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    while (buffered.length >= headerBytes) {
      const requestBytes = buffered.readUInt32BE(0);
      const answerBytes = buffered.readUInt32BE(4);
      if (buffered.length < headerBytes + requestBytes) break;
      buffered = buffered.subarray(headerBytes + requestBytes);
      socket.write(Buffer.alloc(answerBytes, 1));
    }
  });
  socket.on("error", () => {});
});

server.listen(Number(port), host, () => {
  const address = server.address() as net.AddressInfo;
  process.stderr.write(`${JSON.stringify({ event: "started", port: address.port })}\n`);
});
process.once("SIGTERM", () => server.close(() => process.exit(0)));
