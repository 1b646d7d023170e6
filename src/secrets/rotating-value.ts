/**
 * A secret that may be replaced while the service runs. Readers ask for `current` each time they use
 * it (a request in flight keeps what it read), and listeners hear of each replacement.
 */
export class RotatingValue<T> {
  #value: T
  readonly #listeners: Array<(next: T, previous: T) => void> = []

  constructor (initial: T) {
    this.#value = initial
  }

  get current (): T {
    return this.#value
  }

  set (next: T): void {
    const previous = this.#value
    this.#value = next
    for (const listener of this.#listeners) listener(next, previous)
  }

  onChange (listener: (next: T, previous: T) => void): void {
    this.#listeners.push(listener)
  }
}
