//! Drawing: one function per view, from the app state alone.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Sparkline, Table, TableState, Tabs, Wrap};

use crate::app::{App, Tab};

/// Below this the views cannot be laid out legibly: say so instead.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 16;

fn human(n: f64) -> String {
    let a = n.abs();
    if a >= 1e9 {
        format!("{:.1}G", n / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", n / 1e3)
    } else if a >= 10.0 || n == n.trunc() {
        format!("{n:.0}")
    } else {
        format!("{n:.1}")
    }
}

/// A rate as a sparkline's bar height. Sparkline takes whole numbers and
/// scales to the largest in view, so rates go in thousandths of a packet a
/// second (0.5 pkt/s is 500), and any rate above zero is at least 1: a
/// trickle of drops draws a bar, however small beside a flood.
pub(crate) fn bar(rate: f64) -> u64 {
    if rate > 0.0 { ((rate * 1000.0).round() as u64).max(1) } else { 0 }
}

fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

fn header(cells: &[&str]) -> Row<'static> {
    Row::new(cells.iter().map(|c| Cell::from(c.to_string()))).style(bold().fg(Color::Yellow))
}

/// A table column: its title, the width it needs, whether it takes the
/// spare width, and how long it stays when the terminal is narrow (columns
/// with lower `keep` go first; 255 never goes).
struct Col {
    title: &'static str,
    width: u16,
    flex: bool,
    keep: u8,
}

const fn col(title: &'static str, width: u16, keep: u8) -> Col {
    Col { title, width, flex: false, keep }
}

const fn flex(title: &'static str, width: u16) -> Col {
    Col { title, width, flex: true, keep: 255 }
}

/// The columns that fit in `width`, as indexes, and their constraints. The
/// constraints never ask for more than there is: an over-full set leaves
/// ratatui's solver to pick among answers, and the picks differ between runs.
fn fit(cols: &[Col], width: u16) -> (Vec<usize>, Vec<Constraint>) {
    let inner = width.saturating_sub(2);
    let mut kept: Vec<usize> = (0..cols.len()).collect();
    let need = |k: &[usize]| k.iter().map(|&i| cols[i].width).sum::<u16>() + k.len().saturating_sub(1) as u16;
    while need(&kept) > inner {
        let Some(pos) = kept
            .iter()
            .enumerate()
            .filter(|(_, i)| cols[**i].keep < 255)
            .min_by_key(|(p, i)| (cols[**i].keep, std::cmp::Reverse(*p)))
            .map(|(p, _)| p)
        else {
            break;
        };
        kept.remove(pos);
    }
    let constraints = kept
        .iter()
        .map(|&i| if cols[i].flex { Constraint::Fill(1) } else { Constraint::Length(cols[i].width) })
        .collect();
    (kept, constraints)
}

/// A table of `rows` (every column's text, styled) cut to the columns that fit `area`.
fn fitted<'a>(cols: &[Col], rows: Vec<(Vec<String>, Style)>, area: Rect) -> Table<'a> {
    let (kept, widths) = fit(cols, area.width);
    let head: Vec<&str> = kept.iter().map(|&i| cols[i].title).collect();
    let rows = rows.into_iter().map(|(cells, style)| {
        let mut cells: Vec<Option<String>> = cells.into_iter().map(Some).collect();
        Row::new(kept.iter().map(|&i| cells.get_mut(i).and_then(Option::take).unwrap_or_default())).style(style)
    });
    Table::new(rows, widths).header(header(&head))
}

fn selected_style() -> Style {
    Style::default().add_modifier(Modifier::REVERSED)
}

pub fn draw(frame: &mut Frame, app: &mut App) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = format!(
            "Terminal too small: {}x{}.\ndpdbg tui needs at least {MIN_WIDTH}x{MIN_HEIGHT}.\nResize, or press q to quit.",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(msg).wrap(Wrap { trim: true }), area);
        return;
    }
    let [top, body, status] =
        Layout::vertical([Constraint::Length(3), Constraint::Min(5), Constraint::Length(1)]).areas(area);
    let titles: Vec<Line> =
        Tab::ALL.iter().enumerate().map(|(i, t)| Line::from(format!("{} {}", i + 1, t.title()))).collect();
    let selected = Tab::ALL.iter().position(|t| *t == app.tab).unwrap_or(0);
    let tabs = Tabs::new(titles)
        .select(selected)
        .highlight_style(bold().fg(Color::Cyan).add_modifier(Modifier::REVERSED))
        .block(Block::default().borders(Borders::ALL).title(format!(" dpdbg · {} ", app.source)));
    frame.render_widget(tabs, top);
    // Rows a page moves: the body less borders and the header.
    app.page = body.height.saturating_sub(3) as usize;
    match app.tab {
        Tab::Overview => overview(frame, app, body),
        Tab::Endpoints => endpoints(frame, app, body),
        Tab::Policy => policy(frame, app, body),
        Tab::Conntrack => conntrack(frame, app, body),
        Tab::Drops => drops(frame, app, body),
        Tab::Programs => programs(frame, app, body),
    }
    let mut left = vec![Span::raw(" ? help  q quit  Tab/1-6 views  ↑↓ move ")];
    if app.paused {
        left.push(Span::styled(" PAUSED (p) ", bold().fg(Color::Black).bg(Color::Yellow)));
    }
    if let Some(e) = &app.error {
        left.push(Span::styled(format!(" error: {e} "), bold().fg(Color::White).bg(Color::Red)));
    }
    frame.render_widget(Paragraph::new(Line::from(left)), status);
    if app.help {
        help(frame, area);
    }
}

fn overview(frame: &mut Frame, app: &App, area: Rect) {
    let [left, right] = Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(area);
    let o = &app.overview;
    let mut lines = vec![
        Line::from(vec![
            Span::styled("datapath    ", bold()),
            Span::raw(if o.loaded { "loaded" } else { "not loaded (dpdbg datapath load)" }),
        ]),
        Line::from(vec![Span::styled("programs    ", bold()), Span::raw(o.programs.join(", "))]),
        Line::from(vec![Span::styled("events      ", bold()), Span::raw(o.transport.clone())]),
        Line::from(vec![Span::styled("aggregation ", bold()), Span::raw(o.aggregation.clone())]),
        Line::from(vec![Span::styled("clock       ", bold()), Span::raw(o.clock.clone())]),
        Line::from(vec![Span::styled("lost events ", bold()), Span::raw(app.events_lost.to_string())]),
        Line::from(Span::styled("attachments", bold())),
    ];
    if o.attachments.is_empty() {
        lines.push(Line::from("  (none)"));
    }
    lines.extend(o.attachments.iter().map(|a| Line::from(format!("  {a}"))));
    frame.render_widget(Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" Datapath ")), left);
    let [fwd, drp, reasons, talk] =
        Layout::vertical([Constraint::Length(4), Constraint::Length(4), Constraint::Fill(1), Constraint::Fill(1)])
            .areas(right);
    let spark = |title: String, data: &std::collections::VecDeque<f64>, color: Color, area: Rect, f: &mut Frame| {
        let width = area.width.saturating_sub(2) as usize;
        let tail: Vec<u64> = data.iter().skip(data.len().saturating_sub(width)).map(|r| bar(*r)).collect();
        f.render_widget(
            Sparkline::default()
                .block(Block::default().borders(Borders::ALL).title(title))
                .data(&tail)
                .style(Style::default().fg(color)),
            area,
        );
    };
    let last = |d: &std::collections::VecDeque<f64>| d.back().copied().unwrap_or(0.0);
    spark(format!(" forwarded {} pkt/s ", human(last(&app.fwd_history))), &app.fwd_history, Color::Green, fwd, frame);
    spark(format!(" dropped {} pkt/s ", human(last(&app.drop_history))), &app.drop_history, Color::Red, drp, frame);
    let rows = app
        .drops_by_reason
        .iter()
        .map(|(r, n, rate)| (vec![r.clone(), n.to_string(), human(*rate)], Style::default()))
        .collect();
    frame.render_widget(
        fitted(&[flex("DROP REASON", 24), col("PACKETS", 12, 2), col("PKT/S", 9, 1)], rows, reasons)
            .block(Block::default().borders(Borders::ALL).title(" Drops by reason ")),
        reasons,
    );
    let rows = app.talkers.iter().map(|(t, bps)| (vec![t.clone(), human(*bps)], Style::default())).collect();
    frame.render_widget(
        fitted(&[flex("CONNECTION", 30), col("BYTES/S", 9, 1)], rows, talk)
            .block(Block::default().borders(Borders::ALL).title(" Top talkers ")),
        talk,
    );
}

fn table_state(app: &App) -> TableState {
    TableState::default().with_selected(Some(app.selected()))
}

fn endpoints(frame: &mut Frame, app: &App, area: Rect) {
    let cols = [
        col("ID", 6, 255),
        col("NAME", 14, 7),
        col("IDENTITY", 9, 6),
        flex("ADDRESSES", 16),
        col("INTERFACE", 14, 4),
        col("ENFORCE", 8, 5),
        col("FWD PKTS", 9, 3),
        col("FWD B", 8, 1),
        col("FWD/S", 7, 255),
        col("DROPS", 8, 3),
        col("DROP B", 8, 1),
        col("DROP/S", 7, 255),
    ];
    let rows = app
        .endpoints
        .iter()
        .map(|e| {
            (
                vec![
                    e.id.to_string(),
                    e.name.clone(),
                    e.identity.to_string(),
                    e.addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" "),
                    e.interface.clone(),
                    e.enforcement.to_string(),
                    e.fwd_packets.to_string(),
                    human(e.fwd_bytes as f64),
                    human(e.fwd_pps),
                    e.drop_packets.to_string(),
                    human(e.drop_bytes as f64),
                    human(e.drop_pps),
                ],
                Style::default(),
            )
        })
        .collect();
    let title = if app.endpoints.is_empty() { " Endpoints: none " } else { " Endpoints " };
    let t = fitted(&cols, rows, area)
        .row_highlight_style(selected_style())
        .block(Block::default().borders(Borders::ALL).title(title));
    frame.render_stateful_widget(t, area, &mut table_state(app));
}

fn policy(frame: &mut Frame, app: &App, area: Rect) {
    let [rules, feed] = Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    let cols = [
        flex("RULE", 30),
        col("ENDPOINT NAME", 14, 4),
        col("PEER LABELS", 16, 3),
        col("ACTION", 6, 255),
        col("PACKETS", 10, 2),
        col("BYTES", 8, 1),
        col("PKT/S", 8, 255),
    ];
    let rows = app
        .rules
        .iter()
        .map(|r| {
            let style = if r.action == "deny" { Style::default().fg(Color::Red) } else { Style::default() };
            (
                vec![
                    r.rule.clone(),
                    r.endpoint_name.clone(),
                    r.peer_labels.clone(),
                    r.action.to_string(),
                    r.packets.to_string(),
                    human(r.bytes as f64),
                    human(r.pps),
                ],
                style,
            )
        })
        .collect();
    let title = if app.rules.is_empty() { " Policy rules: none " } else { " Policy rules " };
    let t = fitted(&cols, rows, rules)
        .row_highlight_style(selected_style())
        .block(Block::default().borders(Borders::ALL).title(title));
    frame.render_stateful_widget(t, rules, &mut table_state(app));
    let lines: Vec<Line> = app.verdicts.iter().take(feed.height as usize).map(|l| Line::from(l.clone())).collect();
    let title =
        if app.paused { " Policy verdicts (newest first, paused) " } else { " Policy verdicts (newest first) " };
    frame.render_widget(Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)), feed);
}

fn conntrack(frame: &mut Frame, app: &App, area: Rect) {
    let visible = app.visible_ct();
    let filter = if app.filtering {
        format!(" filter: {}▏ (Enter keeps, Esc clears) ", app.ct_filter)
    } else if app.ct_filter.is_empty() {
        " / filter ".to_string()
    } else {
        format!(" filter: {} ", app.ct_filter)
    };
    let title =
        format!(" Conntrack: {} of {} · sort: {} (s) ·{filter}", visible.len(), app.ct.len(), app.ct_sort.name());
    let cols = [
        col("PROTO", 6, 255),
        flex("SOURCE", 21),
        flex("DESTINATION", 21),
        col("PODS", 19, 2),
        col("DIR", 7, 3),
        col("STATE", 11, 255),
        col("FLAGS", 12, 1),
        col("PACKETS", 8, 4),
        col("BYTES", 8, 5),
        col("B/S", 8, 255),
        col("AGE", 7, 2),
        col("LEFT", 7, 6),
    ];
    let addr =
        |ip: std::net::IpAddr, port: u16| if ip.is_ipv6() { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") };
    // Only the rows on screen are turned into text: the table can hold a million.
    let height = area.height.saturating_sub(3).max(1) as usize;
    let selected = app.selected().min(visible.len().saturating_sub(1));
    let start = (selected + 1).saturating_sub(height);
    let rows = visible
        .iter()
        .skip(start)
        .take(height)
        .map(|r| {
            let v = &r.view;
            (
                vec![
                    dpdbg::flow::proto_name(v.proto).map_or_else(|| v.proto.to_string(), str::to_string),
                    addr(v.src, v.sport),
                    addr(v.dst, v.dport),
                    // Looked up for the rows on screen only.
                    match (app.pod_at(v.src), app.pod_at(v.dst)) {
                        (None, None) => String::new(),
                        (s, d) => format!("{} -> {}", s.as_deref().unwrap_or("-"), d.as_deref().unwrap_or("-")),
                    },
                    v.direction.to_string(),
                    v.state.to_string(),
                    v.flags.join(","),
                    r.packets.to_string(),
                    human(r.bytes as f64),
                    human(r.bps),
                    format!("{}s", v.age_s),
                    format!("{}s", v.expires_in_s),
                ],
                Style::default(),
            )
        })
        .collect();
    let t = fitted(&cols, rows, area)
        .row_highlight_style(selected_style())
        .block(Block::default().borders(Borders::ALL).title(title));
    frame.render_stateful_widget(t, area, &mut TableState::default().with_selected(Some(selected - start)));
}

fn drops(frame: &mut Frame, app: &App, area: Rect) {
    let (list, detail) = if app.detail {
        let [a, b] = Layout::vertical([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(area);
        (a, Some(b))
    } else {
        (area, None)
    };
    let cols =
        [col("TIME", 27, 2), col("REASON", 26, 255), col("ENDPOINT", 8, 1), col("NAME", 14, 3), flex("PACKET", 20)];
    let rows = app
        .drops
        .iter()
        .map(|d| {
            (
                vec![
                    d.time.clone(),
                    d.reason.clone(),
                    d.endpoint.to_string(),
                    d.endpoint_name.clone(),
                    d.summary.clone(),
                ],
                Style::default(),
            )
        })
        .collect();
    let title =
        if app.drops.is_empty() { " Drops: none yet " } else { " Drops (newest first; Enter: details and why) " };
    let t = fitted(&cols, rows, list)
        .row_highlight_style(selected_style())
        .block(Block::default().borders(Borders::ALL).title(title));
    frame.render_stateful_widget(t, list, &mut table_state(app));
    if let (Some(area), Some(d)) = (detail, app.selected_drop()) {
        let mut text = String::new();
        // Why first: the explanation's parts, one a line.
        match &d.explanation {
            Some(crate::app::Explained::Done(Ok(why))) => {
                for (i, part) in why.split("; ").enumerate() {
                    text.push_str(if i == 0 { "Why: " } else { "     " });
                    text.push_str(part);
                    text.push('\n');
                }
            }
            Some(crate::app::Explained::Done(Err(e))) => text.push_str(&format!("Why: cannot explain: {e}\n")),
            Some(crate::app::Explained::Pending) => text.push_str("Why: explaining…\n"),
            None => {}
        }
        let _ = dpdbg::flow::write_verbose(&mut text, &d.event.data);
        let _ = dpdbg::flow::hexdump(&mut text, &d.event.data);
        let lines: Vec<Line> = text.lines().map(|l| Line::from(l.to_string())).collect();
        frame.render_widget(
            Paragraph::new(lines)
                .block(Block::default().borders(Borders::ALL).title(format!(" {} · {} ", d.reason, d.summary))),
            area,
        );
    }
}

fn programs(frame: &mut Frame, app: &App, area: Rect) {
    let cols = [
        col("ID", 6, 255),
        col("TYPE", 14, 2),
        col("NAME", 16, 255),
        col("RUNS", 12, 3),
        col("RUNS/S", 9, 255),
        col("AVG NS", 8, 255),
        col("CPU %", 7, 255),
        flex("ATTACHED", 20),
    ];
    let rows = app
        .programs
        .iter()
        .map(|p| {
            (
                vec![
                    p.id.to_string(),
                    p.prog_type.to_string(),
                    p.name.clone(),
                    p.runs.to_string(),
                    human(p.runs_per_s),
                    format!("{:.0}", p.avg_ns),
                    format!("{:.2}", p.cpu_pct),
                    p.attached.clone(),
                ],
                Style::default(),
            )
        })
        .collect();
    let t = fitted(&cols, rows, area)
        .row_highlight_style(selected_style())
        .block(Block::default().borders(Borders::ALL).title(" Programs (kernel statistics on while shown) "));
    frame.render_stateful_widget(t, area, &mut table_state(app));
}

fn help(frame: &mut Frame, area: Rect) {
    let text = [
        "Tab / Shift-Tab, 1-6   switch view",
        "↑ ↓  j k               move",
        "PgUp PgDn  g G         page, top, bottom",
        "Enter                  details of a drop, and why",
        "/                      filter conntrack (IP, port, protocol, state)",
        "s                      sort conntrack: bytes, packets, age, time left",
        "p                      pause / resume",
        "Esc                    close details, clear the filter",
        "?                      this help (any key closes it)",
        "q  Ctrl-C              quit",
    ];
    let w = 72.min(area.width);
    let h = (text.len() as u16 + 2).min(area.height);
    let r = Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h };
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(text.iter().map(|l| Line::from(*l)).collect::<Vec<_>>())
            .block(Block::default().borders(Borders::ALL).title(" Keys ")),
        r,
    );
}
