//! Worker threads of the HTTP plane: each runs a current-thread tokio runtime, accepts on
//! its own SO_REUSEPORT socket of each listener and keeps its own backend connections
//! (see `upstream_pool`), so a request is read, forwarded and answered on one thread and
//! never wakes another (the nginx and HAProxy model). The kernel spreads new connections
//! over the sockets of a listener.

use std::cell::Cell;
use std::sync::Mutex;
use std::thread::JoinHandle;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::runtime::lock;

thread_local! {
    /// The index of the worker running on this thread; 0 on any other thread.
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The worker this code runs on (0 outside the workers): picks its backend connections.
pub fn current() -> usize {
    INDEX.with(Cell::get)
}

/// The default worker count: one per CPU this process may run on.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

struct Worker {
    handle: Handle,
    /// Dropped (or sent) to end the worker's thread; its runtime then drops what is left.
    _stop: oneshot::Sender<()>,
    _thread: JoinHandle<()>,
}

/// The plane's worker threads, started on demand and stopped when this is dropped.
#[derive(Default)]
pub struct Workers {
    started: Mutex<Vec<Worker>>,
}

impl Workers {
    /// The runtimes of workers 0..n, starting the ones not running yet.
    pub fn first(&self, n: usize) -> std::io::Result<Vec<Handle>> {
        let mut started = lock(&self.started);
        while started.len() < n {
            let index = started.len();
            started.push(start(index)?);
        }
        Ok(started[..n].iter().map(|w| w.handle.clone()).collect())
    }
}

fn start(index: usize) -> std::io::Result<Worker> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(format!("tandem-http-{index}"))
        .spawn(move || {
            INDEX.with(|i| i.set(index));
            runtime.block_on(async {
                let _ = stopped.await;
            });
            tracing::debug!(worker = index, "HTTP worker stopped");
        })?;
    tracing::debug!(worker = index, "HTTP worker started");
    Ok(Worker {
        handle,
        _stop: stop,
        _thread: thread,
    })
}
