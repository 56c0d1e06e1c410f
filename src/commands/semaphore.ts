/**
 * At most `limit` async sections at once; the others wait in call order.
 * The wait list is bounded by the callers themselves: each waiter is one
 * request in flight, and requests are bounded by the service's connections.
 */
export class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`Semaphore: limit must be a whole number ≥ 1, not ${limit}`);
  }

  async run<T>(section: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    else this.active++;
    try {
      return await section();
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter, so `active` stays counted.
      if (next) next();
      else this.active--;
    }
  }
}
