//! `GET /api/stream`: server-sent events, a snapshot first, then the changes. A client that
//! falls behind gets a fresh snapshot instead of a growing backlog.

use std::{convert::Infallible, sync::Arc};

use axum::{
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use crate::{live::Shared, routes::App, snapshot};

async fn snapshot_event(shared: &Shared) -> Event {
    Event::default().event("snapshot").data(snapshot::snapshot(shared).await.to_string())
}

pub(crate) async fn stream(State(app): State<App>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribe before reading the snapshot, so nothing that happens meanwhile is lost.
    let updates = app.shared.hub.subscribe();
    let first = snapshot_event(&app.shared).await;
    let changes = futures::stream::unfold((updates, Arc::clone(&app.shared)), |(mut updates, shared)| async move {
        let event = match updates.recv().await {
            Ok(update) => Event::default().event(update.event).data(&*update.data),
            Err(RecvError::Lagged(_)) => {
                // Skip the backlog: the snapshot has everything it held.
                updates = updates.resubscribe();
                snapshot_event(&shared).await
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), (updates, shared)))
    });
    let events =
        futures::stream::once(async move { Ok(first) }).chain(changes).take_until(app.cancel.cancelled_owned());
    Sse::new(events).keep_alive(KeepAlive::default())
}
