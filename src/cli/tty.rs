//! The terminal's own state while live lines are drawn on it. A Ctrl-C makes the terminal echo
//! `^C` where the cursor stands, below or inside the live lines; their next redraw then starts a
//! line too low and leaves a stale spinner line on the screen. While a [`QuietControls`] is
//! held the terminal echoes control characters as nothing visible, and its settings are put
//! back as they were when it is dropped.

use std::io::{self, IsTerminal};

use nix::sys::termios::{self, LocalFlags, SetArg, Termios};

pub struct QuietControls {
    saved: Option<Termios>,
}

impl QuietControls {
    /// Quiets stdin's terminal, if stdin is one; anything that fails leaves it as it is.
    pub fn new() -> Self {
        let stdin = io::stdin();
        let saved = stdin
            .is_terminal()
            .then(|| termios::tcgetattr(&stdin).ok())
            .flatten()
            .filter(|saved| {
                let mut quiet = saved.clone();
                quiet.local_flags.remove(LocalFlags::ECHOCTL);
                termios::tcsetattr(&stdin, SetArg::TCSANOW, &quiet).is_ok()
            });
        QuietControls { saved }
    }
}

impl Drop for QuietControls {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = termios::tcsetattr(io::stdin(), SetArg::TCSANOW, saved);
        }
    }
}
