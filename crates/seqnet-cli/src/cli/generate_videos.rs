//! `seqnet generate-videos`: writes a synthetic video set (the class is the
//! direction of motion) as a datastore folder.

use super::{out, shown, Result};
use seqnet_data::synthetic::SyntheticVideos;
use std::path::PathBuf;

/// `seqnet generate-videos`'s arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: seqnet generate-videos --out videos/train --count 1200 --classes 4 --seed 1"
)]
pub struct Args {
    /// The folder to write (labels.csv and one .npy per video).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of videos.
    #[arg(long, value_name = "N", default_value_t = 400, value_parser = super::count)]
    pub count: u64,
    /// Number of classes (motion directions), 2 to 8.
    #[arg(long, value_name = "K", default_value_t = 4, value_parser = super::count)]
    pub classes: u64,
    /// Fewest frames per video.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = super::count)]
    pub min_frames: u64,
    /// Most frames per video.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = super::count)]
    pub max_frames: u64,
    /// Frame height and width in pixels.
    #[arg(long, value_name = "PIXELS", default_value_t = 28, value_parser = super::count)]
    pub size: u64,
    /// Seed of the generator.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
}

/// Runs `seqnet generate-videos`.
pub fn run(args: Args) -> Result<()> {
    let settings = SyntheticVideos {
        count: args.count as usize,
        classes: args.classes as usize,
        min_frames: args.min_frames as usize,
        max_frames: args.max_frames as usize,
        size: args.size as usize,
        seed: args.seed,
        ..SyntheticVideos::default()
    };
    let classes = settings.write(&args.out)?;
    out(&format!(
        "wrote {} videos of {}×{} frames ({} classes: {}) to {}\n",
        args.count,
        args.size,
        args.size,
        classes.len(),
        classes.join(", "),
        shown(&args.out)
    ))
}
