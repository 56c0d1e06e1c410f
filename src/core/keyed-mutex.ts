/**
 * Async sections that run one at a time per key, in call order, and freely
 * across keys. In memory: what it guards must also be safe after a restart
 * (the journal's recovery runs before any request is taken).
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, section: () => Promise<T>): Promise<T> {
    const result = (this.tails.get(key) ?? Promise.resolve()).then(section, section);
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    // Forget a key once nothing waits on it, so the map does not grow.
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}
