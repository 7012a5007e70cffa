/**
 * Turns a backend into a persister: checks every input (validation.ts), refuses calls before
 * Initialize with FAILED_PRECONDITION, and converts pages into the listing API. The server and
 * embedded users both go through here, so every backend obeys the same rules.
 */
import type { AppIdCursor, Backend, SyncBackend } from "./backend";
import { notInitialized } from "@burr-state/client/protocol";
import type { AsyncStatePersister, LoadQuery, PersistedState, SaveInput, SaveResult, SyncStatePersister } from "@burr-state/client/protocol";
import { checkLoad, checkPartition, checkSave, defaultLimits, type Limits } from "@burr-state/client/protocol";

export interface GuardOptions {
  limits?: Limits;
  /** App ids read from the backend per page when listing. */
  listPageSize?: number;
}

const defaultPageSize = 1000;

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

  close(): void {
    this.backend.close();
  }
}
