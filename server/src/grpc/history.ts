/**
 * The history and deletion calls of the StatePersister service: ListSteps, DeleteApp,
 * DeletePartition and Prune, a thin adapter like the rest (rules in the stores' guard, message
 * mapping in the client's wire module). Every delete is logged with its partition, app and
 * count: an audit trail of erasures, never any state.
 */
import type * as grpc from "@grpc/grpc-js";
import type { GuardedPersister } from "@burr-state/stores";
import {
  deleteAppResponse,
  deletePartitionResponse,
  fromListStepsRequest,
  fromPruneRequest,
  pruneResponse,
  stepsResponse,
} from "@burr-state/client/protocol";
import type {
  DeleteAppRequest,
  DeletePartitionRequest,
  ListStepsRequest,
  PruneRequest,
} from "@burr-state/client/gen/burr/state/v1/state_persister_pb";
import type { Logger } from "../log";
import { pagedHandler, unaryHandler } from "./handlers";

export function historyHandlers(persister: GuardedPersister, log: Logger): grpc.UntypedServiceImplementation {
  return {
    listSteps: pagedHandler("ListSteps", log, (request: ListStepsRequest) => persister.stepPages(fromListStepsRequest(request)), stepsResponse),
    deleteApp: unaryHandler("DeleteApp", log, async (request: DeleteAppRequest) => {
      const stepsDeleted = await persister.deleteApp(request.partitionKey, request.appId);
      log.info("deleted_app", { partitionKey: request.partitionKey ?? "", appId: request.appId, stepsDeleted });
      return deleteAppResponse(stepsDeleted);
    }),
    deletePartition: unaryHandler("DeletePartition", log, async (request: DeletePartitionRequest) => {
      const result = await persister.deletePartition(request.partitionKey);
      log.info("deleted_partition", { partitionKey: request.partitionKey ?? "", ...result });
      return deletePartitionResponse(result);
    }),
    prune: unaryHandler("Prune", log, async (request: PruneRequest) => {
      const query = fromPruneRequest(request);
      const stepsDeleted = await persister.prune(query);
      log.info("pruned", {
        partitionKey: query.partitionKey ?? null,
        appId: query.appId ?? null,
        keepLast: query.keepLast || null,
        olderThan: query.olderThan?.toISOString() ?? null,
        stepsDeleted,
      });
      return pruneResponse(stepsDeleted);
    }),
  };
}
