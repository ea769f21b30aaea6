//! Response streams: the SSE answer of a call, change-notification streams, and what each holds while open.

use super::*;

/// The SSE answer of a tools/call: notifications as they come, then the response.
pub(super) fn call_stream(
    id: RequestId,
    future: BoxFuture<Result<Bytes, ErrorObject>>,
    rx: mpsc::UnboundedReceiver<Bytes>,
    cancel: CancellationToken,
    hold: Hold,
    keep_alive: Duration,
) -> impl futures_util::Stream<Item = Bytes> + Send + Sync + 'static {
    struct State {
        id: RequestId,
        future: Option<BoxFuture<Result<Bytes, ErrorObject>>>,
        rx: mpsc::UnboundedReceiver<Bytes>,
        cancel: CancellationToken,
        _hold: Hold,
        tick: tokio::time::Interval,
    }
    impl Drop for State {
        fn drop(&mut self) {
            if self.future.is_some() {
                self.cancel.cancel();
                tracing::debug!(request = %self.id, "response stream closed before the answer: request cancelled");
            }
        }
    }
    let mut tick = tokio::time::interval(keep_alive);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.reset();
    let state = State {
        id,
        future: Some(future),
        rx,
        cancel,
        _hold: hold,
        tick,
    };
    let s = stream::unfold(state, |mut st| async move {
        let future = st.future.as_mut()?;
        tokio::select! {
            biased;
            _ = st.cancel.cancelled() => None,
            Some(note) = st.rx.recv() => Some((sse::encode_event(&note), st)),
            out = future => {
                st.future = None;
                if st.cancel.is_cancelled() {
                    // Cancelled by the client: no response is sent for it.
                    return None;
                }
                let bytes = match out {
                    Ok(result) => jsonrpc::result_bytes(&st.id, &result),
                    Err(e) => jsonrpc::error_bytes(Some(&st.id), &e),
                };
                // Notifications sent in the handler's last poll precede the response.
                let mut frames = Vec::new();
                while let Ok(note) = st.rx.try_recv() {
                    frames.extend_from_slice(&sse::encode_event(&note));
                }
                frames.extend_from_slice(&sse::encode_event(&bytes));
                Some((Bytes::from(frames), st))
            }
            _ = st.tick.tick() => Some((sse::keep_alive(), st)),
        }
    });
    SyncStream(Box::pin(s))
}

/// The notification a change stream sends for each list, when its client wants it.
#[derive(Default)]
pub(super) struct ListFrames {
    pub(super) tools: Option<Vec<u8>>,
    pub(super) prompts: Option<Vec<u8>>,
    pub(super) resources: Option<Vec<u8>>,
}

impl ListFrames {
    /// The SSE frames for what changed between `old` and `new` (empty: nothing wanted;
    /// without `old`, every list counts as changed).
    fn for_change(&self, old: Option<ListChanges>, new: ListChanges) -> Vec<u8> {
        let differs = |f: fn(&ListChanges) -> u64| old.is_none_or(|o| f(&o) != f(&new));
        let mut out = Vec::new();
        for (changed, frame) in [
            (differs(|c| c.tools), &self.tools),
            (differs(|c| c.prompts), &self.prompts),
            (differs(|c| c.resources), &self.resources),
        ] {
            if let (true, Some(f)) = (changed, frame) {
                out.extend_from_slice(&sse::encode_event(f));
            }
        }
        out
    }
}

/// Notifications a change stream passes on as they come, beside list changes (a
/// session's pushed ones, or a listen stream's resource updates).
pub(super) type Pushed = Arc<tokio::sync::Mutex<mpsc::Receiver<Bytes>>>;

/// List-change notifications (the ones in `frames`; keep-alives only with none) and
/// the `pushed` ones, until shutdown.
pub(super) fn change_stream(
    changes: Arc<tokio::sync::Mutex<watch::Receiver<ListChanges>>>,
    frames: ListFrames,
    pushed: Option<Pushed>,
    shutdown: CancellationToken,
    keep_alive: Duration,
    guard: StreamHold,
) -> impl futures_util::Stream<Item = Bytes> + Send + Sync + 'static {
    let frames = Arc::new(frames);
    let mut tick = tokio::time::interval(keep_alive);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.reset();
    // What the receiver had delivered when the stream opened (None: a change is
    // pending or the receiver is busy, so the first change counts for every list).
    let last = changes
        .try_lock()
        .ok()
        .filter(|rx| !rx.has_changed().unwrap_or(true))
        .map(|rx| *rx.borrow());
    let state = (changes, tick, guard, last);
    let s = stream::unfold(state, move |(changes, mut tick, guard, mut last)| {
        let frames = frames.clone();
        let shutdown = shutdown.clone();
        let pushed = pushed.clone();
        async move {
            loop {
                let next_pushed = async {
                    match &pushed {
                        Some(rx) => rx.clone().lock_owned().await.recv().await,
                        None => std::future::pending().await,
                    }
                };
                // Cancel-safe: a change is marked seen only when this resolves.
                let changed = async {
                    let mut rx = changes.clone().lock_owned().await;
                    match rx.changed().await {
                        Ok(()) => Some(*rx.borrow_and_update()),
                        Err(_) => None,
                    }
                };
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    change = changed => match change {
                        None => return None,
                        Some(new) => {
                            let out = frames.for_change(last, new);
                            last = Some(new);
                            if !out.is_empty() {
                                return Some((Bytes::from(out), (changes, tick, guard, last)));
                            }
                        }
                    },
                    Some(note) = next_pushed => {
                        return Some((sse::encode_event(&note), (changes, tick, guard, last)));
                    }
                    _ = tick.tick() => return Some((sse::keep_alive(), (changes, tick, guard, last))),
                }
            }
        }
    });
    SyncStream(Box::pin(s))
}

/// Makes a `Send` stream `Sync` (hyper's boxed body needs it); it is only ever polled
/// through `&mut`, so sharing `&` references is harmless.
pub(super) struct SyncStream<S>(Pin<Box<S>>);
// SAFETY: the wrapped stream is only accessed through `Pin<&mut Self>`; no `&self`
// method exposes it, so no data race can come from sharing `&SyncStream`.
unsafe impl<S: Send> Sync for SyncStream<S> {}
impl<S: futures_util::Stream> futures_util::Stream for SyncStream<S> {
    type Item = S::Item;
    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.as_mut().poll_next(cx)
    }
}

/// What a request holds while it is handled: its session slot, its share of the
/// in-flight cap and of the body budget.
pub(super) struct Hold {
    pub(super) _session: Option<crate::session::InflightGuard>,
    pub(super) _slot: OwnedSemaphorePermit,
    pub(super) _budget: Option<Arc<body::BudgetShare>>,
}

/// What a long-lived stream holds while open: its session's stream slot and its share
/// of the stream cap.
pub(super) struct StreamHold {
    pub(super) _session: Option<crate::session::InflightGuard>,
    pub(super) _slot: OwnedSemaphorePermit,
}
