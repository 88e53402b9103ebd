//! Graceful shutdown: a [`CancellationToken`] cancelled on the first SIGINT or SIGTERM.
//!
//! Every long-running part of an operator (controllers, the health server, the lease
//! holder) takes a clone of the token and winds down when it fires, so the process
//! releases its Lease and finishes in-flight reconciles before exiting.
//!
//! ```no_run
//! # async fn demo() {
//! let token = datum_runtime::shutdown::on_signal();
//! token.cancelled().await; // returns after Ctrl-C or SIGTERM
//! # }
//! ```

pub use tokio_util::sync::CancellationToken;

/// A token cancelled when the process receives SIGINT or SIGTERM. Must be called inside a
/// tokio runtime.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let signal = wait_for_signal().await;
        tracing::info!(signal, "shutting down");
        trigger.cancel();
    });
    token
}

/// Waits for SIGINT or SIGTERM and names the one that came. If the handlers cannot be
/// installed, waits for Ctrl-C alone.
pub async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
