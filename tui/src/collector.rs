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
    /// A drop explained, by its event's time stamp and endpoint.
    Explained { timestamp_ns: u64, endpoint: u32, result: Result<String, String> },
}

/// What the UI asks of the collector.
enum Ask {
    /// Whether the Programs view is shown.
    Programs(bool),
    /// Explain this drop (between refreshes, on the collector's thread).
    Explain(Box<dpdbg::events::Event>),
}

/// The UI thread's handle on the collector thread. Dropping it ends the
/// thread once its refresh in flight, if any, is over (the UI does not wait
/// for it).
pub struct Collector {
    programs: Sender<Ask>,
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
        let _ = self.programs.send(Ask::Programs(shown));
    }

    /// Explains a drop off the UI thread; the answer comes as `Input::Explained`.
    pub fn explain(&self, ev: dpdbg::events::Event) {
        let _ = self.programs.send(Ask::Explain(Box::new(ev)));
    }
}

fn collect(mut source: Box<dyn Source>, every: Duration, asks: Receiver<Ask>, ui: Sender<Input>) {
    let mut programs = false;
    let mut next = Instant::now();
    loop {
        // Until the next refresh is due, or the Programs view wants one now.
        loop {
            match asks.recv_timeout(next.saturating_duration_since(Instant::now())) {
                Ok(Ask::Explain(ev)) => {
                    let result = source.explain(&ev);
                    let (timestamp_ns, endpoint) = (ev.hdr.timestamp_ns, ev.hdr.endpoint_id);
                    if ui.send(Input::Explained { timestamp_ns, endpoint, result }).is_err() {
                        return;
                    }
                }
                Ok(Ask::Programs(shown)) => {
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
        /// Explanations: the drop's time stamp when one begins, and its answer when the test gives it.
        explaining: Sender<u64>,
        why: Receiver<Result<String, String>>,
    }

    impl Source for Gated {
        fn refresh(&mut self, programs: bool) -> Result<Snapshot, String> {
            let _ = self.began.send(programs);
            self.release.recv().map_err(|_| "the test ended".to_string())
        }

        fn describe(&self) -> String {
            "a gated source".into()
        }

        fn explain(&mut self, ev: &dpdbg::events::Event) -> Result<String, String> {
            let _ = self.explaining.send(ev.hdr.timestamp_ns);
            self.why.recv().map_err(|_| "the test ended".to_string())?
        }
    }

    struct Rig {
        dash: Dashboard,
        term: Terminal<TestBackend>,
        inputs: Receiver<Input>,
        keys: Sender<Input>,
        began: Receiver<bool>,
        release: Sender<Snapshot>,
        explaining: Receiver<u64>,
        why: Sender<Result<String, String>>,
    }

    fn rig(every: Duration) -> Rig {
        let (began_tx, began) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let (keys, inputs) = mpsc::channel();
        let (explaining_tx, explaining) = mpsc::channel();
        let (why, why_rx) = mpsc::channel();
        let source = Gated { began: began_tx, release: release_rx, explaining: explaining_tx, why: why_rx };
        let collector = Collector::spawn(Box::new(source), every, keys.clone()).unwrap();
        let dash = Dashboard::new(App::new("a gated source".into()).with_wall_offset(0), collector);
        let term = Terminal::new(TestBackend::new(100, 30)).unwrap();
        Rig { dash, term, inputs, keys, began, release, explaining, why }
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

    /// Issue 23, item 1: Enter on the Drops view explains the drop on the
    /// collector's thread; the UI draws "explaining…" and takes keys until
    /// the answer comes, then shows it; a drop is explained once.
    #[test]
    fn enter_on_a_drop_explains_it_off_the_ui_thread() {
        let mut r = rig(Duration::from_secs(3600));
        assert_eq!(r.began.recv_timeout(WAIT), Ok(false));
        let drop = crate::tests::event(dpdbg::abi::EVENT_DROP, 133, 102, 5_000_000_000, 40000, 7777);
        r.release.send(Snapshot { events: vec![drop], ..Snapshot::default() }).unwrap();
        r.dash.step(&mut r.term, &r.inputs).unwrap();
        for k in ['5', '\n'] {
            let input = if k == '\n' {
                Input::Term(TermEvent::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)))
            } else {
                key(k)
            };
            r.keys.send(input).unwrap();
            r.dash.step(&mut r.term, &r.inputs).unwrap();
        }
        assert_eq!(r.explaining.recv_timeout(WAIT), Ok(5_000_000_000), "the collector was asked");
        assert!(screen(&r.term).contains("Why: explaining…"), "{}", screen(&r.term));
        // A key while the explanation is in flight is taken at once.
        r.keys.send(key('?')).unwrap();
        let t = Instant::now();
        r.dash.step(&mut r.term, &r.inputs).unwrap();
        assert!(t.elapsed() < Duration::from_secs(1) && r.dash.app.help, "the key waited {:?}", t.elapsed());
        r.keys.send(key('?')).unwrap();
        r.dash.step(&mut r.term, &r.inputs).unwrap();

        r.why
            .send(Ok("no rule matched: default deny; peer 198.18.0.1 is identity 1001; today: the same".into()))
            .unwrap();
        r.dash.step(&mut r.term, &r.inputs).unwrap();
        let s = screen(&r.term);
        assert!(s.contains("Why: no rule matched: default deny"), "{s}");
        assert!(s.contains("     peer 198.18.0.1 is identity 1001"), "one part a line:\n{s}");
        // Closed and opened again: not asked twice.
        for _ in 0..2 {
            r.keys.send(Input::Term(TermEvent::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)))).unwrap();
            r.dash.step(&mut r.term, &r.inputs).unwrap();
        }
        assert!(r.explaining.recv_timeout(Duration::from_millis(300)).is_err(), "explained once");
        assert!(screen(&r.term).contains("Why: no rule matched"));
    }
}
