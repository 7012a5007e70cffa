/**
 * grpc-js has no protobuf-es plugin: this turns a generated service descriptor into the
 * ServiceDefinition grpc-js serves and builds clients from. Messages are encoded with the
 * generated schemas; nothing is generated or edited by hand here.
 */
import { create, fromBinary, toBinary, type DescMessage, type DescMethod, type DescService, type MessageShape } from "@bufbuild/protobuf";
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";

function methodDefinition(service: DescService, method: DescMethod): MethodDefinition<unknown, unknown> {
  // The encoded bytes are wrapped, not copied: they are a fresh array nobody else holds.
  const serialize = (schema: DescMessage) => (message: MessageShape<DescMessage>) => {
    const bytes = toBinary(schema, create(schema, message));
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
  const deserialize = (schema: DescMessage) => (bytes: Buffer) => fromBinary(schema, bytes);
  return {
    path: `/${service.typeName}/${method.name}`,
    originalName: method.localName,
    requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
    responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
    requestSerialize: serialize(method.input) as (value: unknown) => Buffer,
    requestDeserialize: deserialize(method.input),
    responseSerialize: serialize(method.output) as (value: unknown) => Buffer,
    responseDeserialize: deserialize(method.output),
  };
}

/** Methods keyed by their local (camelCase) name, as grpc-js handlers and clients expect. */
export function serviceDefinition(service: DescService): ServiceDefinition {
  return Object.fromEntries(service.methods.map((method) => [method.localName, methodDefinition(service, method)]));
}

/** The same paths with bytes in and out: for a worker thread that only moves encoded messages. */
export function rawServiceDefinition(service: DescService): ServiceDefinition {
  const identity = (bytes: Buffer) => bytes;
  return Object.fromEntries(
    service.methods.map((method) => [
      method.localName,
      {
        ...methodDefinition(service, method),
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    ]),
  );
}
