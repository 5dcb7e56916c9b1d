//! The dashboard: a [`Source`] brings snapshots, the [`App`] turns them
//! into what each view shows and handles keys, and `ui` draws the app. The
//! loop redraws only when a snapshot, a key or a resize changed something.

pub mod app;
pub mod source;
pub mod ui;

use std::io::{self, Stdout};
use std::time::{Duration, Instant};

use crossterm::event::{self, Event as TermEvent};
use crossterm::execute;
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

pub use app::{Action, App, Tab};
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
pub fn run(source: &mut dyn Source, refresh: Duration) -> Result<(), TuiError> {
    let mut app = App::new(source.describe());
    let mut guard = TerminalGuard::new()?;
    let mut next = Instant::now();
    loop {
        if Instant::now() >= next {
            next = Instant::now() + refresh;
            match source.refresh(app.tab == Tab::Programs) {
                Ok(s) => app.ingest(s),
                Err(e) => app.failed(e),
            }
            let described = source.describe();
            if described != app.source {
                app.source = described;
                app.dirty = true;
            }
        }
        if app.dirty {
            app.dirty = false;
            guard.terminal.draw(|f| ui::draw(f, &mut app))?;
        }
        let wait = next.saturating_duration_since(Instant::now());
        if event::poll(wait)? {
            match event::read()? {
                TermEvent::Key(k) => {
                    let was = app.tab;
                    if app.on_key(k) == Action::Quit {
                        return Ok(());
                    }
                    // A view that needs data it has not got (Programs' statistics) gets it now.
                    if app.tab != was && app.tab == Tab::Programs {
                        next = Instant::now();
                    }
                }
                TermEvent::Resize(..) => app.dirty = true,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
