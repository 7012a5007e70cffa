/**
 * Server reflection, so grpcurl and `buf curl` work without the .proto. @grpc/reflection is
 * given the original file descriptors embedded in the generated code (its proto-loader route
 * rebuilds descriptors without file names or dependencies, which breaks real clients).
 */
import { toBinary, type DescFile } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { ReflectionService } from "@grpc/reflection";
import type { Server } from "@grpc/grpc-js";

function withDependencies(files: DescFile[]): DescFile[] {
  const seen = new Map<string, DescFile>();
  const visit = (file: DescFile) => {
    if (seen.has(file.name)) return;
    seen.set(file.name, file);
    file.dependencies.forEach(visit);
  };
  files.forEach(visit);
  return [...seen.values()];
}

export function addReflection(server: Server, files: DescFile[]): void {
  const fileDescriptorProtos = withDependencies(files).map((file) => Buffer.from(toBinary(FileDescriptorProtoSchema, file.proto)));
  // @grpc/reflection reads `fileDescriptorProtos` from each entry of a package definition.
  const packageDefinition = { files: { fileDescriptorProtos } } as unknown as ConstructorParameters<typeof ReflectionService>[0];
  new ReflectionService(packageDefinition).addToServer(server);
}
