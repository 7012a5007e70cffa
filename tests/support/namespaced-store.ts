/** A store under test on a shared database: a namespace of its own for the suite and for each fresh store. */
import type { StoreUnderTest } from "./subjects";

export interface Namespaces {
  /** A namespace (table, key prefix, collection) no other suite or run uses. */
  unique(label: string): string;
  /** The store URL of one namespace. */
  urlOf(namespace: string): string;
  /** Deletes what these namespaces hold. */
  drop(namespaces: string[]): Promise<void>;
}

/** The suite's store and each fresh one in a new namespace; cleanup drops them all. */
export function namespacedStore({ unique, urlOf, drop }: Namespaces): StoreUnderTest {
  const used: string[] = [];
  const urlOfNew = (label: string) => {
    const namespace = unique(label);
    used.push(namespace);
    return urlOf(namespace);
  };
  return {
    url: urlOfNew("suite"),
    freshUrl: () => urlOfNew("fresh"),
    cleanup: () => drop(used),
  };
}
