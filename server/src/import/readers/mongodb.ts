/**
 * MongoDBBasePersister's collection: one document per step (partition_key, which Burr leaves
 * null for the default partition, app_id, sequence_id, position, state as the JSON text Burr
 * wrote, status, created_at as Python's isoformat text), read by created_at, then _id (insert
 * order within one writer).
 */
import { MongoClient, type Document } from "mongodb";
import { parseBurrTime } from "../burr-time";
import { describeStep, partitionOf, sequenceIdOf, utf8, type BurrReader, type BurrStep } from "./step";

export async function openMongoReader(connectUrl: string, database: string, collectionName: string, partition: string | null): Promise<BurrReader> {
  const client = await new MongoClient(connectUrl, { serverSelectionTimeoutMS: 10_000 }).connect();
  const collection = client.db(database).collection(collectionName);
  // Burr saves the default partition as null (or ""): both are the default partition here.
  const filter: Document = partition === null ? {} : partition === "" ? { partition_key: { $in: [null, ""] } } : { partition_key: partition };
  return {
    count: () => collection.countDocuments(filter),
    async *steps(): AsyncIterable<BurrStep> {
      for await (const doc of collection.find(filter).sort({ created_at: 1, _id: 1 }).batchSize(500)) {
        const at = describeStep(doc.partition_key, doc.app_id, doc.sequence_id);
        if (typeof doc.app_id !== "string" || typeof doc.position !== "string" || typeof doc.status !== "string" || typeof doc.state !== "string") {
          throw new Error(`${at}: document ${String(doc._id)} is not one Burr's MongoDB persister writes (app_id, position, status and state are strings)`);
        }
        yield {
          partitionKey: partitionOf(doc.partition_key),
          appId: doc.app_id,
          sequenceId: sequenceIdOf(doc.sequence_id, at),
          position: doc.position,
          // Verbatim: Burr wrote json.dumps of the serialized state, as the Python persister does.
          state: utf8(doc.state),
          status: doc.status,
          createdAt: parseBurrTime(doc.created_at),
        };
      }
    },
    close: () => client.close(),
  };
}
