//! The `flotilla` binary.

use clap::Parser;

use flotilla_node::cli::{Cli, Commands, ServeArgs};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Commands::Serve(args)) => *args,
        Some(Commands::Cluster(args)) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            return runtime.block_on(flotilla_node::admin_cli::run(args));
        }
        Some(Commands::User(args)) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            return runtime.block_on(flotilla_node::user_cli::run(args));
        }
        None => ServeArgs::try_from_env()?,
    };
    let config = args.into_config()?;
    flotilla_node::telemetry::init_logging(&config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(flotilla_node::run(config))
}
