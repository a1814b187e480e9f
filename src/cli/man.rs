//! `pipe man`: manual pages in roff, generated from the clap definitions so they always say
//! what the command line accepts. The one file that imports clap_mangen.

use std::path::PathBuf;

use super::{print, CliError, Internal};

#[derive(clap::Args)]
pub struct Args {
    /// Print this subcommand's page (pipe-run(1) for `run`) [default: pipe(1)]
    #[arg(value_name = "COMMAND")]
    command: Option<String>,
    /// Write every page (pipe.1, pipe-run.1, …) into this folder instead of printing one,
    /// replacing older ones there
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    to: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<u8, CliError> {
    let mut pipe = super::command().disable_help_subcommand(true);
    if let Some(dir) = &args.to {
        clap_mangen::generate_to(pipe, dir).map_err(Internal::io(format!(
            "write the manual pages to {}",
            dir.display()
        )))?;
        return Ok(super::exit::OK);
    }
    // Building names each subcommand `pipe-run`, as the pages refer to one another.
    pipe.build();
    let page = match &args.command {
        None => pipe,
        Some(name) => match pipe.find_subcommand(name) {
            Some(sub) => sub.clone(),
            None => {
                let names = pipe.get_subcommands().map(|c| c.get_name());
                let hint = match crate::pipeline::suggest(name, names) {
                    Some(s) => format!(": did you mean `{s}`?"),
                    None => ": `pipe help` lists them".into(),
                };
                return Err(CliError::Invalid(format!("no subcommand `{name}`{hint}")));
            }
        },
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .map_err(Internal::io("render the manual page"))?;
    print(&String::from_utf8_lossy(&roff))?;
    Ok(super::exit::OK)
}
