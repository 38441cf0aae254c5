// The one shared store: the few pieces of state more than one screen reads, and a topic-based
// notify/subscribe so screens react to each other without importing each other.
//
// Topics (detail in parentheses):
//   pipelines         the pipeline list was loaded ()
//   batch-created     this page created a batch ({batch})
//   batch-changed     a batch was read or acted on ({batch}, without jobs)
//   batch-removed     a batch is gone ({id})
//   uploads           a batch's uploads from this page moved on ({batchId})
//   follow            something may have changed: refresh the list and stats soon ()
//   stats-stale       the statistics changed: read them again ()
//   list-stale        the list filters changed elsewhere (a status chip): reload ()
//   signed-out        the token is gone: drop everything shown ()

export function createStore(state) {
  const listeners = new Map();
  return {
    state,
    /** Subscribe; returns the function that unsubscribes. */
    on(topic, fn) {
      if (!listeners.has(topic)) listeners.set(topic, new Set());
      listeners.get(topic).add(fn);
      return () => listeners.get(topic).delete(fn);
    },
    emit(topic, detail = {}) {
      for (const fn of [...(listeners.get(topic) || [])]) fn(detail);
    },
  };
}

export const store = createStore({
  pipelines: [], // sorted by name
  sessions: new Map(), // batch id -> UploadSession started from this page
  uploaded: new Map(), // batch id -> names of its files storage accepted from this page
  rows: new Map(), // batch id -> its row in the list (batches.js owns it; detail.js reads it)
});
