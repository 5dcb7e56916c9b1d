//! The dashboard: a [`Source`] brings snapshots, refreshed on the
//! [`Collector`]'s thread; the [`App`] turns them into what each view shows
//! and handles keys, and `ui` draws the app. The UI thread waits for what
//! comes next (a key from the terminal's reader thread, a snapshot from the
//! collector) and redraws only when it changed something.

pub mod app;
pub mod collector;
pub mod source;
pub mod ui;

use std::io::{self, Stdout};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use crossterm::event::{self, Event as TermEvent};
use crossterm::execute;
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};
use ratatui::Terminal;
use ratatui::backend::{Backend, CrosstermBackend};

pub use app::{Action, App, Tab};
pub use collector::{Collector, Input};
pub use source::{Local, Remote, Snapshot, Source};

/// Why the dashboard could not run.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error("the dashboard needs a terminal: {0} (run it in an interactive shell, or `kubectl exec -it`)")]
    NoTerminal(#[source] io::Error),
    #[error("terminal: {0}")]
    Io(#[from] io::Error),
}

fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, crossterm::cursor::Show);
}

/// Raw mode and the alternate screen, undone when dropped: on quit, on an
/// error, and (through the panic hook) on a panic.
struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    fn new() -> Result<TerminalGuard, TuiError> {
        enable_raw_mode().map_err(TuiError::NoTerminal)?;
        if let Err(e) = execute!(io::stdout(), EnterAlternateScreen) {
            restore();
            return Err(e.into());
        }
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // The terminal first, so the panic's message is readable.
            restore();
            previous(info);
        }));
        match Terminal::new(CrosstermBackend::new(io::stdout())) {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(e) => {
                restore();
                Err(e.into())
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Runs the dashboard until the user quits.
pub fn run(source: Box<dyn Source>, refresh: Duration) -> Result<(), TuiError> {
    let app = App::new(source.describe());
    let mut guard = TerminalGuard::new()?;
    let (tx, inputs) = mpsc::channel();
    let mut dash = Dashboard::new(app, Collector::spawn(source, refresh, tx.clone())?);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new().name("dpdbg-tui-keys".into()).spawn(move || read_terminal(&tx, &stop))?
    };
    let r = dash.run(&mut guard.terminal, &inputs);
    // Nothing reads the terminal once the dashboard has given it back.
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    r
}

/// How long the terminal's reader waits for input before it looks whether
/// the dashboard has quit.
const READ_TICK: Duration = Duration::from_millis(100);

/// The terminal's reader thread: every key and resize to the UI thread.
fn read_terminal(ui: &Sender<Input>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let input = match event::poll(READ_TICK) {
            Ok(false) => continue,
            Ok(true) => match event::read() {
                Ok(ev) => Input::Term(ev),
                Err(e) => Input::TermFailed(e),
            },
            Err(e) => Input::TermFailed(e),
        };
        let failed = matches!(input, Input::TermFailed(_));
        if ui.send(input).is_err() || failed {
            return;
        }
    }
}

/// The UI thread's side: the app, and the collector it tells which view is shown.
pub struct Dashboard {
    pub app: App,
    collector: Collector,
}

/// Inputs taken in before a redraw, at most: a burst of keys is drawn once.
const BURST: usize = 64;

impl Dashboard {
    pub fn new(app: App, collector: Collector) -> Dashboard {
        Dashboard { app, collector }
    }

    /// Until a key asks to quit (or every sender is gone): draw, wait for
    /// the next input, take it in.
    pub fn run<B: Backend>(&mut self, terminal: &mut Terminal<B>, inputs: &Receiver<Input>) -> Result<(), TuiError> {
        self.draw(terminal)?;
        while self.step(terminal, inputs)? == Action::None {}
        Ok(())
    }

    /// Waits for the next input, takes it and whatever else has come, and
    /// draws what changed.
    pub fn step<B: Backend>(
        &mut self,
        terminal: &mut Terminal<B>,
        inputs: &Receiver<Input>,
    ) -> Result<Action, TuiError> {
        let Ok(first) = inputs.recv() else { return Ok(Action::Quit) };
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(input) = next.take() {
            if self.take(input)? == Action::Quit {
                return Ok(Action::Quit);
            }
            taken += 1;
            if taken < BURST {
                next = inputs.try_recv().ok();
            }
        }
        self.draw(terminal)?;
        Ok(Action::None)
    }

    /// Draws the app when something changed since the last frame.
    pub fn draw<B: Backend>(&mut self, terminal: &mut Terminal<B>) -> Result<(), TuiError> {
        if self.app.dirty {
            self.app.dirty = false;
            terminal.draw(|f| ui::draw(f, &mut self.app))?;
        }
        Ok(())
    }

    /// Takes one input in.
    pub fn take(&mut self, input: Input) -> Result<Action, TuiError> {
        match input {
            Input::Term(TermEvent::Key(k)) => {
                let was = self.app.tab;
                if self.app.on_key(k) == Action::Quit {
                    return Ok(Action::Quit);
                }
                // A view that needs data it has not got (Programs' statistics) gets it now.
                if self.app.tab != was {
                    self.collector.programs(self.app.tab == Tab::Programs);
                }
                // A drop's details open: why it was dropped, asked of the collector.
                if let Some(ev) = self.app.wants_explanation() {
                    self.collector.explain(ev);
                }
            }
            Input::Term(TermEvent::Resize(..)) => self.app.dirty = true,
            Input::Term(_) => {}
            Input::TermFailed(e) => return Err(e.into()),
            Input::Explained { timestamp_ns, endpoint, result } => {
                self.app.explained(timestamp_ns, endpoint, result);
            }
            Input::Refreshed { result, source } => {
                match result {
                    Ok(s) => self.app.ingest(*s),
                    Err(e) => self.app.failed(e),
                }
                if source != self.app.source {
                    self.app.source = source;
                    self.app.dirty = true;
                }
            }
        }
        Ok(Action::None)
    }
}

#[cfg(test)]
mod tests;
