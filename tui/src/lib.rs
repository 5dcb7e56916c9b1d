//! The dashboard: app state apart from drawing. Only the skeleton for now;
//! views for endpoints, verdicts and conntrack come with the TUI issue.

use ratatui::Frame;
use ratatui::widgets::{Block, Borders, Paragraph};

/// What the dashboard shows; filled by a collector, drawn by `draw`.
#[derive(Debug, Default)]
pub struct App {
    pub title: String,
}

pub fn draw(frame: &mut Frame, app: &App) {
    let block = Block::default().borders(Borders::ALL).title(app.title.as_str());
    frame.render_widget(Paragraph::new("dpdbg dashboard").block(block), frame.area());
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::{Terminal, backend::TestBackend};

    #[test]
    fn draws_title() {
        let mut t = Terminal::new(TestBackend::new(30, 3)).unwrap();
        let app = App { title: "dpdbg".into() };
        t.draw(|f| draw(f, &app)).unwrap();
        let buf = t.backend().buffer();
        let line: String = (0..30).map(|x| buf[(x, 0)].symbol().to_string()).collect();
        assert!(line.contains("dpdbg"), "{line}");
    }
}
