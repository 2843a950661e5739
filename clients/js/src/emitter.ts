/** A small typed event emitter: `on` returns the function that removes the listener.
 * A listener that throws does not stop the others (the error is reported on the console). */
export class Emitter<Events extends object> {
  private listeners: { [K in keyof Events]?: Array<(value: Events[K]) => void> } = {};

  on<K extends keyof Events>(name: K, listener: (value: Events[K]) => void): () => void {
    (this.listeners[name] ??= []).push(listener);
    return () => {
      this.listeners[name] = (this.listeners[name] ?? []).filter((l) => l !== listener);
    };
  }

  protected emit<K extends keyof Events>(name: K, value: Events[K]): void {
    for (const listener of this.listeners[name] ?? []) {
      try {
        listener(value);
      } catch (e) {
        console.error(`listener of "${String(name)}" failed`, e);
      }
    }
  }
}
