//! `pipe completions SHELL`: a completion script for the shell, generated from the same clap
//! definitions that parse the command line, so it can never offer a flag pipe does not have.
//! The one file that imports clap_complete.

use clap_complete::Shell as Generator;

use super::{print, CliError};

#[derive(clap::Args)]
pub struct Args {
    /// The shell to complete for
    #[arg(value_enum)]
    shell: Shell,
}

/// The shells of the README's install section; elvish and others stay out until asked for.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Shell {
    /// For ~/.local/share/bash-completion/completions/pipe
    Bash,
    /// For a file named `_pipe` in a folder of $fpath
    Zsh,
    /// For ~/.config/fish/completions/pipe.fish
    Fish,
    /// For your PowerShell $PROFILE
    Powershell,
}

pub fn run(args: Args) -> Result<u8, CliError> {
    let generator = match args.shell {
        Shell::Bash => Generator::Bash,
        Shell::Zsh => Generator::Zsh,
        Shell::Fish => Generator::Fish,
        Shell::Powershell => Generator::PowerShell,
    };
    let mut script = Vec::new();
    clap_complete::generate(generator, &mut super::command(), "pipe", &mut script);
    print(&String::from_utf8_lossy(&script))?;
    Ok(super::exit::OK)
}
