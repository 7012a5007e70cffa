/**
 * The sync client's worker as one self-contained script (sync-worker.ts with grpc-js and
 * protobuf-es bundled in). Empty in the sources; the build (scripts/build.js) writes the
 * bundled script into this module's compiled output, so it travels inside the package and
 * inside any bundle made from it.
 */
export const bundledWorker: string = "";
