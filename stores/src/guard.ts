/**
 * Turns a backend into a persister: checks every input (validation.ts), refuses calls before
 * Initialize with FAILED_PRECONDITION, and converts pages into the listing API. The server and
 * embedded users both go through here, so every backend obeys the same rules.
 */
import type { AppIdCursor, Backend, HistoryBackend, StepCursor, StoredRow, SyncBackend, SyncHistoryBackend } from "./backend";
import { notInitialized } from "@burr-state/client/protocol";
import type {
  AsyncStatePersister,
  DeletePartitionResult,
  ListStepsQuery,
  LoadQuery,
  PersistedState,
  PruneQuery,
  SaveInput,
  SaveResult,
  StepInfo,
  SyncStatePersister,
} from "@burr-state/client/protocol";
import { checkDeleteApp, checkListSteps, checkLoad, checkPartition, checkPrune, checkSave, defaultLimits, type Limits } from "@burr-state/client/protocol";

export interface GuardOptions {
  limits?: Limits;
  /** App ids read from the backend per page when listing. */
  listPageSize?: number;
}

const defaultPageSize = 1000;

/** Rows one delete transaction (or script) removes at most: small enough that other calls never wait long behind it. */
export const deleteBatchSize = 1000;

/** A step as listings return it: the state only when asked for. */
const stepInfo = (row: StoredRow, includeState: boolean): StepInfo<Uint8Array> => {
  if (includeState) return row;
  const { state: _, ...rest } = row;
  return rest;
};

export class GuardedPersister implements AsyncStatePersister<Uint8Array> {
  private readonly limits: Limits;
  private readonly pageSize: number;
  /** Once the store has been seen initialized it stays so: no check per call after that. */
  private initialized = false;

  constructor(
    readonly backend: Backend,
    options: GuardOptions = {},
  ) {
    this.limits = options.limits ?? defaultLimits;
    this.pageSize = options.listPageSize ?? defaultPageSize;
  }

  async initialize(): Promise<void> {
    await this.backend.initialize();
    this.initialized = true;
  }

  async isInitialized(): Promise<boolean> {
    this.initialized = await this.backend.isInitialized();
    return this.initialized;
  }

  private async requireInitialized(): Promise<void> {
    if (this.initialized) return;
    if (!(await this.isInitialized())) throw notInitialized();
  }

  async save(input: SaveInput<Uint8Array>): Promise<SaveResult> {
    const row = checkSave(input, this.limits);
    await this.requireInitialized();
    return { createdAt: await this.backend.save(row) };
  }

  /** A save that keeps the step's original creation time (rows imported from elsewhere). */
  async saveCreatedAt(input: SaveInput<Uint8Array>, createdAt: Date): Promise<SaveResult> {
    const row = { ...checkSave(input, this.limits), createdAt };
    await this.requireInitialized();
    return { createdAt: await this.backend.save(row) };
  }

  async load(query: LoadQuery): Promise<PersistedState<Uint8Array> | null> {
    const key = checkLoad(query, this.limits);
    await this.requireInitialized();
    return this.backend.load(key);
  }

  async listAppIds(partitionKey?: string | null): Promise<string[]> {
    const ids: string[] = [];
    for await (const page of this.appIdPages(partitionKey)) ids.push(...page);
    return ids;
  }

  async *streamAppIds(partitionKey?: string | null): AsyncIterable<string> {
    for await (const page of this.appIdPages(partitionKey)) yield* page;
  }

  /** The listing in the backend's pages, for callers that forward chunks (the server). */
  async *appIdPages(partitionKey?: string | null): AsyncIterable<string[]> {
    const partition = checkPartition(partitionKey, this.limits);
    await this.requireInitialized();
    yield* this.backend.appIdPages(partition, this.pageSize);
  }

  async *listSteps(query: ListStepsQuery): AsyncIterable<StepInfo<Uint8Array>> {
    for await (const page of this.stepPages(query)) yield* page;
  }

  /** The steps in the backend's pages, for callers that forward chunks (the server). */
  async *stepPages(query: ListStepsQuery): AsyncIterable<StepInfo<Uint8Array>[]> {
    const key = checkListSteps(query, this.limits);
    await this.requireInitialized();
    let left = key.limit ?? Number.POSITIVE_INFINITY;
    for await (const page of this.history.stepPages(key, Math.min(this.pageSize, left))) {
      const rows = page.length > left ? page.slice(0, left) : page;
      left -= rows.length;
      if (rows.length > 0) yield rows.map((row) => stepInfo(row, key.includeState));
      if (left <= 0) return;
    }
  }

  async deleteApp(partitionKey: string | null | undefined, appId: string): Promise<number> {
    const key = checkDeleteApp(partitionKey, appId, this.limits);
    await this.requireInitialized();
    return this.history.deleteApp(key.partitionKey, key.appId, deleteBatchSize);
  }

  async deletePartition(partitionKey: string | null | undefined): Promise<DeletePartitionResult> {
    const partition = checkPartition(partitionKey, this.limits);
    await this.requireInitialized();
    return this.history.deletePartition(partition, deleteBatchSize);
  }

  async prune(query: PruneQuery): Promise<number> {
    const rule = checkPrune(query, this.limits);
    await this.requireInitialized();
    return this.history.prune(rule, deleteBatchSize);
  }

  /** The backend's history calls (every backend has them once issue 13 is done). */
  private get history(): HistoryBackend {
    return this.backend as Backend & HistoryBackend;
  }

  close(): Promise<void> {
    return this.backend.close();
  }
}

export class GuardedSyncPersister implements SyncStatePersister<Uint8Array> {
  private readonly limits: Limits;
  private readonly pageSize: number;
  private initialized = false;

  constructor(
    readonly backend: SyncBackend,
    options: GuardOptions = {},
  ) {
    this.limits = options.limits ?? defaultLimits;
    this.pageSize = options.listPageSize ?? defaultPageSize;
  }

  initialize(): void {
    this.backend.initialize();
    this.initialized = true;
  }

  isInitialized(): boolean {
    this.initialized = this.backend.isInitialized();
    return this.initialized;
  }

  private requireInitialized(): void {
    if (!this.initialized && !this.isInitialized()) throw notInitialized();
  }

  save(input: SaveInput<Uint8Array>): SaveResult {
    const row = checkSave(input, this.limits);
    this.requireInitialized();
    return { createdAt: this.backend.save(row) };
  }

  load(query: LoadQuery): PersistedState<Uint8Array> | null {
    const key = checkLoad(query, this.limits);
    this.requireInitialized();
    return this.backend.load(key);
  }

  listAppIds(partitionKey?: string | null): string[] {
    const partition = checkPartition(partitionKey, this.limits);
    this.requireInitialized();
    const ids: string[] = [];
    let cursor: AppIdCursor | null = null;
    do {
      const page = this.backend.appIdPage(partition, this.pageSize, cursor);
      ids.push(...page.ids);
      cursor = page.next;
    } while (cursor !== null);
    return ids;
  }

  *listSteps(query: ListStepsQuery): Iterable<StepInfo<Uint8Array>> {
    const key = checkListSteps(query, this.limits);
    this.requireInitialized();
    let left = key.limit ?? Number.POSITIVE_INFINITY;
    let cursor: StepCursor | null = null;
    do {
      const page = this.history.stepPage(key, Math.min(this.pageSize, left), cursor);
      const rows = page.rows.length > left ? page.rows.slice(0, left) : page.rows;
      left -= rows.length;
      for (const row of rows) yield stepInfo(row, key.includeState);
      cursor = page.next;
    } while (cursor !== null && left > 0);
  }

  deleteApp(partitionKey: string | null | undefined, appId: string): number {
    const key = checkDeleteApp(partitionKey, appId, this.limits);
    this.requireInitialized();
    return this.history.deleteApp(key.partitionKey, key.appId, deleteBatchSize);
  }

  deletePartition(partitionKey: string | null | undefined): DeletePartitionResult {
    const partition = checkPartition(partitionKey, this.limits);
    this.requireInitialized();
    return this.history.deletePartition(partition, deleteBatchSize);
  }

  prune(query: PruneQuery): number {
    const rule = checkPrune(query, this.limits);
    this.requireInitialized();
    return this.history.prune(rule, deleteBatchSize);
  }

  private get history(): SyncHistoryBackend {
    return this.backend as SyncBackend & SyncHistoryBackend;
  }

  close(): void {
    this.backend.close();
  }
}
