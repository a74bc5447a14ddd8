//! The log writer: lines gathered in memory and written to stdout or stderr by one thread, a
//! batch at a time.
//!
//! tracing-appender's non-blocking writer hands each line to its thread over a channel. Under
//! load that thread woke, wrote and slept again for nearly every line: a context switch, a
//! `write` and a cross-thread free per request, about 6 % of the server's CPU at 40,000
//! requests a second on 2 cores (`bench/pages.py`, profiled with `perf`). Here a line is
//! copied into a shared buffer under a mutex; the thread is woken when the buffer stops being
//! empty, waits a moment for more, and writes them all at once.
//!
//! Nothing is dropped: while the buffer holds more than its limit (the sink is slower than the
//! logging), a caller waits for the thread to take a batch, as the non-blocking writer's
//! non-lossy mode did. Lines not yet written when the process is killed are lost, as they were
//! in the channel.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::writer::EitherWriter;

/// How long the thread waits, after the first line of a batch, for more. A line reaches the
/// sink at most this much later than it was logged.
const GATHER: Duration = Duration::from_millis(5);

/// Buffered bytes above which a caller waits for the thread (about 3,000 access lines).
pub const BUFFER_LIMIT: usize = 1 << 20;

struct Shared {
    state: Mutex<State>,
    /// Signalled when the buffer stops being empty, and on close.
    filled: Condvar,
    /// Signalled when the thread has taken a batch, and on close.
    drained: Condvar,
    limit: usize,
}

#[derive(Default)]
struct State {
    lines: Vec<u8>,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only bytes behind: still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where the subscriber writes (a `MakeWriter`): cheap to clone, shared by every thread.
#[derive(Clone)]
pub struct BatchWriter(Arc<Shared>);

/// The writer for `target`: batched by a thread, or (if no thread can be started) written
/// line by line by the caller, with a warning on stderr.
pub fn for_target(target: super::LogTarget) -> (LogWriter, Option<BatchWriterGuard>) {
    let spawned = match target {
        super::LogTarget::Stdout => BatchWriter::spawn(std::io::stdout(), BUFFER_LIMIT),
        super::LogTarget::Stderr => BatchWriter::spawn(std::io::stderr(), BUFFER_LIMIT),
    };
    batched_or_direct(target, spawned)
}

fn batched_or_direct(
    target: super::LogTarget,
    spawned: std::io::Result<(BatchWriter, BatchWriterGuard)>,
) -> (LogWriter, Option<BatchWriterGuard>) {
    match spawned {
        Ok((writer, guard)) => (LogWriter::Batched(writer), Some(guard)),
        Err(e) => {
            eprintln!("vantus: cannot start the log writer thread ({e}); writing logs directly");
            (LogWriter::Direct(target), None)
        }
    }
}

/// What the subscriber writes to.
#[derive(Clone)]
pub enum LogWriter {
    Batched(BatchWriter),
    Direct(super::LogTarget),
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = EitherWriter<LineHandle<'a>, EitherWriter<std::io::Stdout, std::io::Stderr>>;

    fn make_writer(&'a self) -> Self::Writer {
        match self {
            LogWriter::Batched(w) => EitherWriter::A(w.make_writer()),
            LogWriter::Direct(super::LogTarget::Stdout) => {
                EitherWriter::B(EitherWriter::A(std::io::stdout()))
            }
            LogWriter::Direct(super::LogTarget::Stderr) => {
                EitherWriter::B(EitherWriter::B(std::io::stderr()))
            }
        }
    }
}

/// Keeps the writer thread; dropping it writes what is buffered and stops the thread.
pub struct BatchWriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl BatchWriter {
    /// Starts the thread that writes to `sink`, holding at most about `limit` bytes.
    pub fn spawn(
        sink: impl Write + Send + 'static,
        limit: usize,
    ) -> std::io::Result<(BatchWriter, BatchWriterGuard)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            filled: Condvar::new(),
            drained: Condvar::new(),
            limit,
        });
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn({
                let shared = shared.clone();
                move || write_batches(&shared, sink)
            })?;
        Ok((
            BatchWriter(shared.clone()),
            BatchWriterGuard {
                shared,
                thread: Some(thread),
            },
        ))
    }
}

fn write_batches(shared: &Shared, mut sink: impl Write) {
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        {
            let mut state = shared.lock();
            while state.lines.is_empty() && !state.closed {
                state = shared.filled.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.lines.is_empty() {
                return; // closed, and everything written
            }
            if !state.closed && state.lines.len() < shared.limit / 2 {
                drop(state);
                std::thread::sleep(GATHER);
                state = shared.lock();
            }
            std::mem::swap(&mut state.lines, &mut batch);
        }
        shared.drained.notify_all();
        // A sink that fails (a closed pipe) has nowhere to report to; the lines are dropped
        // rather than stopping the server.
        let _ = sink.write_all(&batch).and_then(|()| sink.flush());
        batch.clear();
        if batch.capacity() > shared.limit * 2 {
            batch.shrink_to(64 * 1024);
        }
    }
}

impl Drop for BatchWriterGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.filled.notify_all();
        self.shared.drained.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One line being written. It holds the buffer's lock until it is dropped, so a line
/// written in several pieces is never split by another thread's. (The subscriber formats
/// the whole line before it asks for a writer, so the lock is held only for the copy.)
pub struct LineHandle<'a> {
    shared: &'a Shared,
    state: Option<MutexGuard<'a, State>>,
    was_empty: bool,
}

impl Write for LineHandle<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(state) = self.state.as_mut() {
            state.lines.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineHandle<'_> {
    fn drop(&mut self) {
        let wrote = self.state.take().is_some_and(|s| !s.lines.is_empty());
        // Only the first line of a batch wakes the thread: a wake is a syscall.
        if self.was_empty && wrote {
            self.shared.filled.notify_one();
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchWriter {
    type Writer = LineHandle<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        let shared = &*self.0;
        let mut state = shared.lock();
        while state.lines.len() >= shared.limit && !state.closed {
            state = shared
                .drained
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
        if state.closed {
            // The guard is gone (a test that started a second server, say): nothing will
            // write these bytes, so they are not kept.
            return LineHandle {
                shared,
                was_empty: false,
                state: None,
            };
        }
        LineHandle {
            shared,
            was_empty: state.lines.is_empty(),
            state: Some(state),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter;

    /// A sink the test can read, optionally slow.
    #[derive(Clone, Default)]
    struct Sink {
        bytes: Arc<Mutex<Vec<u8>>>,
        delay: Duration,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(self.delay);
            self.bytes.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn log_lines(writer: &BatchWriter, thread: usize, count: usize) {
        for n in 0..count {
            writeln!(writer.make_writer(), "thread {thread} line {n}").unwrap();
        }
    }

    fn written_lines(sink: &Sink) -> Vec<String> {
        String::from_utf8(sink.bytes.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_line_is_written_whole_and_in_order_by_the_time_the_guard_is_dropped() {
        let sink = Sink::default();
        let (writer, guard) = BatchWriter::spawn(sink.clone(), BUFFER_LIMIT).unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let writer = writer.clone();
                s.spawn(move || log_lines(&writer, t, 5_000));
            }
        });
        drop(guard);
        let lines = written_lines(&sink);
        assert_eq!(lines.len(), 20_000);
        for t in 0..4 {
            let mine: Vec<&String> = lines
                .iter()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            let expected: Vec<String> =
                (0..5_000).map(|n| format!("thread {t} line {n}")).collect();
            assert_eq!(
                mine,
                expected.iter().collect::<Vec<_>>(),
                "thread {t}'s lines"
            );
        }
    }

    #[test]
    fn a_slow_sink_holds_callers_back_instead_of_dropping_lines() {
        let sink = Sink {
            delay: Duration::from_millis(20),
            ..Sink::default()
        };
        // A limit of a few lines: the callers must wait for the slow sink several times.
        let (writer, guard) = BatchWriter::spawn(sink.clone(), 64).unwrap();
        log_lines(&writer, 0, 200);
        let buffered = writer.0.lock().lines.len();
        assert!(
            buffered < 64 + 32,
            "the buffer stayed near its limit, held {buffered} bytes"
        );
        drop(guard);
        assert_eq!(written_lines(&sink).len(), 200);
    }

    #[test]
    fn lines_after_the_guard_is_dropped_are_not_kept() {
        let sink = Sink::default();
        let (writer, guard) = BatchWriter::spawn(sink.clone(), BUFFER_LIMIT).unwrap();
        drop(guard);
        log_lines(&writer, 0, 100);
        assert!(writer.0.lock().lines.is_empty());
        assert!(written_lines(&sink).is_empty());
    }

    #[test]
    fn without_a_thread_lines_go_directly_to_the_chosen_stream() {
        use super::super::LogTarget;
        let no_thread = || Err(std::io::Error::other("no threads left"));
        let (writer, guard) = batched_or_direct(LogTarget::Stdout, no_thread());
        assert!(guard.is_none());
        assert!(matches!(
            writer.make_writer(),
            EitherWriter::B(EitherWriter::A(_))
        ));
        let (writer, _) = batched_or_direct(LogTarget::Stderr, no_thread());
        assert!(matches!(
            writer.make_writer(),
            EitherWriter::B(EitherWriter::B(_))
        ));
        let (writer, guard) = for_target(LogTarget::Stderr);
        assert!(guard.is_some());
        assert!(matches!(writer.make_writer(), EitherWriter::A(_)));
    }

    #[test]
    fn a_line_on_a_quiet_writer_is_written_without_waiting_for_more() {
        let sink = Sink::default();
        let (writer, _guard) = BatchWriter::spawn(sink.clone(), BUFFER_LIMIT).unwrap();
        log_lines(&writer, 0, 1);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while written_lines(&sink).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the line was never written"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(written_lines(&sink), ["thread 0 line 0"]);
    }
}
