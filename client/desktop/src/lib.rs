//! `tropa-desk`, the handlers' desktop app: case work over many
//! conversations, on `tropa-client` only (DESIGN §1, §7).
//!
//! * [`model`]: cases and conversations in memory, list filter and search
//!   (pure, unit-tested);
//! * [`session`]: the unlocked profile and its background sync (the I/O
//!   shell; the UI thread never waits on the network);
//! * [`app`]: screens, forms, dialogs, idle lock: every action, UI-free;
//! * [`ui`]: drawing it with egui.
//!
//! Nothing here makes a protocol decision or keeps a decrypted string once
//! the desk is locked.

#![forbid(unsafe_code)]

pub mod app;
pub mod model;
pub mod session;
pub mod ui;

pub use app::{App, Options};

/// The eframe application: [`App`] drawn by [`ui::draw`].
pub struct DeskApp(pub App);

impl eframe::App for DeskApp {
    /// Runs even while the window is hidden or minimised (when a repaint
    /// was asked for): the idle lock must not wait for the window to come
    /// back.
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.0.tick(std::time::Instant::now());
        if self.0.options().lock_after.is_some() && !self.0.is_locked() {
            ctx.request_repaint_after(std::time::Duration::from_secs(5));
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        ui::draw(&mut self.0, ui);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        // Texts handed to the sync are queued durably before the profile
        // closes.
        self.0.finish();
    }
}
