//! The graceful interrupt: SIGINT (and SIGTERM, SIGHUP) on Unix,
//! CTRL_C / CTRL_BREAK on Windows, turned into messages on a channel.

use crate::error::FakeError;
use crate::journal::{JournalWriter, Record};
use std::sync::mpsc::{Receiver, channel};

pub(crate) struct Interrupts {
    arrivals: Receiver<()>,
}

impl Interrupts {
    /// Takes over the interrupt signals for the rest of the process's life
    /// (only once per process).
    pub(crate) fn install() -> Result<Self, FakeError> {
        let (sender, arrivals) = channel();
        ctrlc::set_handler(move || {
            let _ = sender.send(());
        })
        .map_err(|e| FakeError::failed(format!("cannot handle interrupts: {e}")))?;
        Ok(Self { arrivals })
    }

    /// Blocks until the next interrupt and journals it.
    pub(crate) fn next(&self, journal: &JournalWriter) {
        // The sender lives in the handler for the whole process: recv only
        // returns when an interrupt arrived.
        let _ = self.arrivals.recv();
        journal.record(Record::InterruptReceived);
    }

    /// Waits up to `timeout` for the next interrupt; journals it and returns
    /// `true` when one came.
    pub(crate) fn next_within(
        &self,
        journal: &JournalWriter,
        timeout: std::time::Duration,
    ) -> bool {
        match self.arrivals.recv_timeout(timeout) {
            Ok(()) => {
                journal.record(Record::InterruptReceived);
                true
            }
            Err(_) => false,
        }
    }

    /// Blocks until an interrupt the process honours. With `ignore`, every
    /// interrupt is journaled as ignored and this never returns.
    pub(crate) fn wait_honoured(&self, journal: &JournalWriter, ignore: bool) {
        loop {
            self.next(journal);
            if !ignore {
                return;
            }
            journal.record(Record::InterruptIgnored);
        }
    }
}
