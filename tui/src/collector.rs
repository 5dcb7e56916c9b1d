//! The collector (bpftop's shape): a thread of its own refreshes from the
//! [`Source`] every interval and sends each result to the UI thread, which
//! only takes in what comes (keys, snapshots) and draws. A refresh in flight
//! (a server far away, ten thousand conntrack entries) holds no key up.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crossterm::event::Event as TermEvent;

use crate::source::{Snapshot, Source};

/// What reaches the UI thread, in the order it came.
#[derive(Debug)]
pub enum Input {
    /// A key, a resize, … from the terminal.
    Term(TermEvent),
    /// The terminal could not be read.
    TermFailed(std::io::Error),
    /// A refresh's result (boxed: a snapshot is large beside a key), and
    /// where the data comes from now (the title).
    Refreshed { result: Result<Box<Snapshot>, String>, source: String },
}

/// The UI thread's handle on the collector thread. Dropping it ends the
/// thread once its refresh in flight, if any, is over (the UI does not wait
/// for it).
pub struct Collector {
    programs: Sender<bool>,
}

impl Collector {
    /// Starts refreshing from `source` now and every `every` after, sending
    /// each result to `ui`.
    pub fn spawn(source: Box<dyn Source>, every: Duration, ui: Sender<Input>) -> std::io::Result<Collector> {
        let (programs, asks) = mpsc::channel();
        std::thread::Builder::new()
            .name("dpdbg-tui-collector".into())
            .spawn(move || collect(source, every, asks, ui))?;
        Ok(Collector { programs })
    }

    /// Whether the Programs view is shown: the kernel's program statistics
    /// are read only while it is, and a view that turns them on gets a
    /// refresh at once.
    pub fn programs(&self, shown: bool) {
        let _ = self.programs.send(shown);
    }
}

fn collect(mut source: Box<dyn Source>, every: Duration, asks: Receiver<bool>, ui: Sender<Input>) {
    let mut programs = false;
    let mut next = Instant::now();
    loop {
        // Until the next refresh is due, or the Programs view wants one now.
        loop {
            match asks.recv_timeout(next.saturating_duration_since(Instant::now())) {
                Ok(shown) => {
                    let now = shown && !programs;
                    programs = shown;
                    if now {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        next = Instant::now() + every;
        let result = source.refresh(programs).map(Box::new);
        if ui.send(Input::Refreshed { result, source: source.describe() }).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{self, Receiver, Sender};
    use std::time::{Duration, Instant};

    use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
    use dpdbg::maps::Endpoint;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::{Collector, Input};
    use crate::Dashboard;
    use crate::app::{Action, App, Tab};
    use crate::source::{Snapshot, Source};

    /// A source whose every refresh says it began (with the programs flag
    /// it was given) and then waits until the test hands it its snapshot.
    struct Gated {
        began: Sender<bool>,
        release: Receiver<Snapshot>,
    }

    impl Source for Gated {
        fn refresh(&mut self, programs: bool) -> Result<Snapshot, String> {
            let _ = self.began.send(programs);
            self.release.recv().map_err(|_| "the test ended".to_string())
        }

        fn describe(&self) -> String {
            "a gated source".into()
        }
    }

    struct Rig {
        dash: Dashboard,
        term: Terminal<TestBackend>,
        inputs: Receiver<Input>,
        keys: Sender<Input>,
        began: Receiver<bool>,
        release: Sender<Snapshot>,
    }

    fn rig(every: Duration) -> Rig {
        let (began_tx, began) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let (keys, inputs) = mpsc::channel();
        let source = Gated { began: began_tx, release: release_rx };
        let collector = Collector::spawn(Box::new(source), every, keys.clone()).unwrap();
        let dash = Dashboard::new(App::new("a gated source".into()).with_wall_offset(0), collector);
        let term = Terminal::new(TestBackend::new(100, 30)).unwrap();
        Rig { dash, term, inputs, keys, began, release }
    }

    fn key(c: char) -> Input {
        Input::Term(TermEvent::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)))
    }

    fn screen(t: &Terminal<TestBackend>) -> String {
        let b = t.backend().buffer();
        let w = b.area.width as usize;
        b.content.chunks(w).map(|row| row.iter().map(|c| c.symbol()).collect::<String>() + "\n").collect()
    }

    fn endpoint() -> Endpoint {
        Endpoint {
            ip: "198.18.0.9".parse().unwrap(),
            endpoint_id: 109,
            identity: 1009,
            ifindex: 7,
            mac: "02:00:00:00:00:09".into(),
            enforce_ingress: false,
            enforce_egress: false,
        }
    }

    const WAIT: Duration = Duration::from_secs(10);

    #[test]
    fn keys_answer_while_a_refresh_is_in_flight() {
        let mut r = rig(Duration::from_millis(100));
        r.dash.draw(&mut r.term).unwrap();
        // The collector's first refresh has begun and waits on the test.
        assert_eq!(r.began.recv_timeout(WAIT), Ok(false));
        assert!(!screen(&r.term).contains("IDENTITY"), "{}", screen(&r.term));

        // A key typed meanwhile is taken and drawn, the refresh still held.
        r.keys.send(key('2')).unwrap();
        let t = Instant::now();
        assert_eq!(r.dash.step(&mut r.term, &r.inputs).unwrap(), Action::None);
        assert!(t.elapsed() < Duration::from_secs(1), "the key waited {:?}", t.elapsed());
        assert_eq!(r.dash.app.tab, Tab::Endpoints);
        let s = screen(&r.term);
        assert!(s.contains("IDENTITY") && !s.contains("198.18.0.9"), "the Endpoints view, with no data yet:\n{s}");
        assert!(r.inputs.try_recv().is_err(), "nothing came from the refresh in flight");
        assert!(r.began.try_recv().is_err(), "still the first refresh");

        // Released: its snapshot comes, and is drawn.
        r.release.send(Snapshot { endpoints: vec![endpoint()], ..Snapshot::default() }).unwrap();
        assert_eq!(r.dash.step(&mut r.term, &r.inputs).unwrap(), Action::None);
        let s = screen(&r.term);
        assert!(s.contains("198.18.0.9") && s.contains("109"), "the refreshed endpoints:\n{s}");

        // q quits whatever the collector is doing.
        assert_eq!(r.began.recv_timeout(WAIT), Ok(false), "the next refresh began");
        r.keys.send(key('q')).unwrap();
        assert_eq!(r.dash.step(&mut r.term, &r.inputs).unwrap(), Action::Quit);
    }

    #[test]
    fn the_programs_view_gets_its_statistics_at_once_and_only_while_shown() {
        // Refreshes an hour apart: any second one is the view asking.
        let mut r = rig(Duration::from_secs(3600));
        assert_eq!(r.began.recv_timeout(WAIT), Ok(false));
        r.release.send(Snapshot::default()).unwrap();
        r.dash.step(&mut r.term, &r.inputs).unwrap();

        r.keys.send(key('6')).unwrap();
        r.dash.step(&mut r.term, &r.inputs).unwrap();
        assert_eq!(r.dash.app.tab, Tab::Programs);
        assert_eq!(r.began.recv_timeout(WAIT), Ok(true), "a refresh with the programs, at once");
        r.release.send(Snapshot::default()).unwrap();
        r.dash.step(&mut r.term, &r.inputs).unwrap();

        // Leaving the view asks for no refresh of its own.
        r.keys.send(key('1')).unwrap();
        r.dash.step(&mut r.term, &r.inputs).unwrap();
        assert!(r.began.recv_timeout(Duration::from_millis(300)).is_err(), "no refresh before it is due");
    }
}
