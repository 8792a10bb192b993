//! Span and trace ids: random, except for the one span the caller names
//! ids for on this thread (an incident's root, whose ids follow from the
//! incident's UID and which every other span already points at). The
//! SDK's tracer takes ids only from its generator, so this is where a
//! chosen id can enter.

use std::cell::Cell;

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

thread_local! {
    static CHOSEN: Cell<Option<(TraceId, SpanId)>> = const { Cell::new(None) };
}

#[derive(Debug, Default)]
pub(super) struct Ids {
    random: RandomIdGenerator,
}

impl IdGenerator for Ids {
    fn new_trace_id(&self) -> TraceId {
        CHOSEN
            .with(Cell::get)
            .map_or_else(|| self.random.new_trace_id(), |(trace, _)| trace)
    }

    fn new_span_id(&self) -> SpanId {
        CHOSEN
            .with(Cell::get)
            .map_or_else(|| self.random.new_span_id(), |(_, span)| span)
    }
}

/// Runs `build` with the generator answering `ids` on this thread.
pub(super) fn with_chosen<T>(ids: (TraceId, SpanId), build: impl FnOnce() -> T) -> T {
    /// Forgets the chosen ids however `build` ends, a panic included.
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CHOSEN.with(|c| c.set(None));
        }
    }
    CHOSEN.with(|c| c.set(Some(ids)));
    let _reset = Reset;
    build()
}
