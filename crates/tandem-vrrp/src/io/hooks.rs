//! Transition hooks: operator commands run on every state change, in order, each awaited
//! up to a timeout, on a task of their own so a slow script never delays the protocol.

use std::time::Duration;
use tokio::sync::mpsc;

/// One state change, as hooks see it in their environment.
#[derive(Clone, Debug)]
pub struct HookEvent {
    pub instance: String,
    pub old_state: String,
    pub new_state: String,
    pub reason: String,
}

#[derive(Clone)]
pub struct HookRunner {
    queue: Option<mpsc::UnboundedSender<HookEvent>>,
}

impl HookRunner {
    /// No hooks configured: events are dropped.
    pub fn none() -> Self {
        HookRunner { queue: None }
    }

    pub fn start(commands: Vec<String>, timeout: Duration) -> Self {
        if commands.is_empty() {
            return Self::none();
        }
        let (queue, mut events) = mpsc::unbounded_channel::<HookEvent>();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                for command in &commands {
                    run_one(command, &event, timeout).await;
                }
            }
        });
        HookRunner { queue: Some(queue) }
    }

    pub fn notify(&self, event: HookEvent) {
        if let Some(q) = &self.queue {
            let _ = q.send(event);
        }
    }
}

async fn run_one(command: &str, event: &HookEvent, timeout: Duration) {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("TANDEM_INSTANCE", &event.instance)
        .env("TANDEM_OLD_STATE", &event.old_state)
        .env("TANDEM_NEW_STATE", &event.new_state)
        .env("TANDEM_REASON", &event.reason)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(%command, error = %e, "transition hook could not start");
            return;
        }
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => {
            tracing::debug!(%command, instance = %event.instance, "transition hook done")
        }
        Ok(Ok(status)) => {
            tracing::warn!(%command, instance = %event.instance, %status, "transition hook failed")
        }
        Ok(Err(e)) => tracing::warn!(%command, error = %e, "transition hook: wait failed"),
        Err(_) => {
            let _ = child.kill().await;
            tracing::warn!(%command, instance = %event.instance, timeout_ms = timeout.as_millis() as u64,
                "transition hook killed at its timeout");
        }
    }
}
