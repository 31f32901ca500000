//! `seqnet docs-figures`: draws the pictures of `docs/LSTM.md` — the LSTM
//! unit, a sequence through the layer, and the sequence options (padding
//! with and without sorting, truncation, splitting, padding direction) on
//! real mini-batches of Japanese Vowels, built by seqnet's own batcher.

use super::data::open_data;
use super::{ensure_parent, out, repository_path, shown};
use super::{CliError, Result};
use crate::plots::{BatchView, Cell, LstmFlow, MiniBatchFigure, Panel};
use seqnet_core::PaddingDirection;
use seqnet_data::{sort_by_length, BatchOptions, Batcher, Datastore, SequenceLength};
use std::path::PathBuf;

/// `seqnet docs-figures`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folder to write the pictures into.
    #[arg(long, value_name = "DIR", default_value = "docs/figures")]
    pub out: PathBuf,
    /// The sequences to draw [default: the repository's Japanese Vowels training set].
    #[arg(long, value_name = "DATA")]
    pub data: Option<PathBuf>,
    /// How many observations the pictures show, from the first.
    #[arg(long, value_name = "N", default_value = "16", value_parser = super::count)]
    pub observations: u64,
    /// Observations per mini-batch.
    #[arg(long, value_name = "N", default_value = "8", value_parser = super::count)]
    pub mini_batch_size: u64,
    /// Steps per chunk in the splitting picture.
    #[arg(long, value_name = "N", default_value = "8", value_parser = super::count)]
    pub chunk: u64,
}

/// The observations drawn and what every picture needs of them.
struct Source<'a> {
    store: &'a dyn Datastore,
    /// Datastore indices, in the order drawn.
    indices: Vec<usize>,
    /// Every observation's length, by datastore index.
    lengths: Vec<usize>,
    mini_batch_size: usize,
}

impl Source<'_> {
    /// The mini-batches of `indices` with `options`, as pictures see them
    /// (feature 1 of each real step).
    fn batches(&self, indices: &[usize], options: BatchOptions) -> Result<Vec<BatchView>> {
        let batcher = Batcher::for_datastore(options, self.store)?;
        indices
            .chunks(self.mini_batch_size)
            .enumerate()
            .map(|(k, ids)| {
                let mb = batcher.batch_indices(self.store, ids)?;
                Ok(self.view(format!("mini-batch {}", k + 1), &mb, options))
            })
            .collect()
    }

    fn view(&self, label: String, mb: &seqnet_data::MiniBatch, options: BatchOptions) -> BatchView {
        let b = mb.indices.len();
        let mut rows = vec![Vec::new(); b];
        let mut chunk_starts = Vec::new();
        for chunk in &mb.chunks {
            chunk_starts.push(rows[0].len());
            let x = &chunk.inputs.data; // [Tc, B, C]
            let lengths = chunk.inputs.seq_lengths();
            for (j, row) in rows.iter_mut().enumerate() {
                let span = lengths.span(j);
                for t in 0..x.shape()[0] {
                    row.push(if span.contains(&t) {
                        Cell::Real(x[[t, j, 0]])
                    } else {
                        Cell::Padding
                    });
                }
            }
        }
        // Steps that truncation left out, on the side it cut.
        if options.sequence_length == SequenceLength::Shortest {
            for (j, row) in rows.iter_mut().enumerate() {
                let cut = self.lengths[mb.indices[j]].saturating_sub(row.len());
                let cells = std::iter::repeat_n(Cell::Cut, cut);
                if options.direction == PaddingDirection::Left {
                    *row = cells.chain(row.drain(..)).collect();
                } else {
                    row.extend(cells);
                }
            }
        }
        BatchView {
            label,
            rows,
            chunk_starts,
        }
    }

    /// "N of M steps are padding (P %)" over `batches`.
    fn padding_share(batches: &[BatchView]) -> String {
        let cells = batches.iter().flat_map(|b| &b.rows).flatten();
        let (mut padded, mut all) = (0, 0);
        for c in cells {
            if *c != Cell::Cut {
                all += 1;
                padded += (*c == Cell::Padding) as usize;
            }
        }
        format!(
            "{padded} of {all} steps are padding ({:.0} %)",
            100.0 * padded as f64 / all.max(1) as f64
        )
    }
}

fn options(sequence_length: SequenceLength, direction: PaddingDirection) -> BatchOptions {
    BatchOptions {
        sequence_length,
        direction,
        padding_value: 0.0,
    }
}

/// Runs `seqnet docs-figures`.
pub fn run(args: Args) -> Result<()> {
    let path = args
        .data
        .clone()
        .unwrap_or_else(|| repository_path("data/japanese_vowels/JapaneseVowels_TRAIN.ts"));
    let data = open_data(&path, None)?;
    let store = data.store.as_ref();
    let n = (args.observations as usize).min(store.len());
    let source = Source {
        store,
        indices: (0..n).collect(),
        lengths: store.sequence_lengths()?,
        mini_batch_size: args.mini_batch_size as usize,
    };
    let range = feature_range(store, &source.indices)?;
    let what = format!(
        "{} observations 1–{n} in mini-batches of {}",
        path.file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
        source.mini_batch_size
    );
    let mut written = sequence_figures(&source, &args, &what, range)?;
    let cell = args.out.join("lstm_unit.png");
    crate::plots::lstm_cell_diagram(&cell)?;
    written.push(cell);
    let flow = args.out.join("lstm_flow.png");
    crate::plots::lstm_flow_diagram(&flow_of(store, 0)?, &flow)?;
    written.push(flow);
    let list: Vec<String> = written.iter().map(|p| shown(p)).collect();
    out(&format!("{}\n", list.join("\n")))
}

/// The four pictures of the sequence options; returns their paths.
fn sequence_figures(
    source: &Source,
    args: &Args,
    what: &str,
    range: (f32, f32),
) -> Result<Vec<PathBuf>> {
    let figure = |title: &str, panels: Vec<Panel>| MiniBatchFigure {
        title: title.to_string(),
        subtitle: what.to_string(),
        panels,
        feature: "feature 1".to_string(),
        range,
    };
    let panel = |title: &str, batches: Vec<BatchView>| Panel {
        title: title.to_string(),
        subtitle: Source::padding_share(&batches),
        batches,
    };
    let right = PaddingDirection::Right;
    let unsorted = source.batches(&source.indices, options(SequenceLength::Longest, right))?;
    let lengths: Vec<usize> = source.indices.iter().map(|&i| source.lengths[i]).collect();
    let sorted_ids: Vec<usize> = sort_by_length(&lengths)
        .into_iter()
        .map(|k| source.indices[k])
        .collect();
    let sorted = source.batches(&sorted_ids, options(SequenceLength::Longest, right))?;
    let mut written = Vec::new();
    let mut write = |name: &str, f: MiniBatchFigure| -> Result<()> {
        let p = args.out.join(name);
        ensure_parent(&p)?;
        crate::plots::minibatch_figure(&f, &p)?;
        written.push(p);
        Ok(())
    };
    write(
        "sequence_padding.png",
        figure(
            "Padding to the longest sequence",
            vec![
                panel("In the data's order", unsorted.clone()),
                panel("Sorted by length", sorted),
            ],
        ),
    )?;
    let shortest = source.batches(&source.indices, options(SequenceLength::Shortest, right))?;
    write(
        "sequence_truncation.png",
        figure(
            "Truncation to the shortest sequence",
            vec![
                panel("SequenceLength 'longest' (padding)", unsorted.clone()),
                panel("SequenceLength 'shortest' (truncation)", shortest),
            ],
        ),
    )?;
    let chunk = args.chunk as usize;
    let split = source.batches(
        &source.indices,
        options(SequenceLength::Fixed(chunk), right),
    )?;
    write(
        "sequence_splitting.png",
        figure(
            &format!("Splitting into chunks of {chunk} steps"),
            vec![Panel {
                subtitle: format!(
                    "{}; each chunk is one iteration, the state carried to the next",
                    Source::padding_share(&split)
                ),
                ..panel(&format!("SequenceLength {chunk}"), split)
            }],
        ),
    )?;
    let left = source.batches(
        &source.indices,
        options(SequenceLength::Longest, PaddingDirection::Left),
    )?;
    write(
        "sequence_padding_direction.png",
        figure(
            "Padding direction",
            vec![
                panel("SequencePaddingDirection 'right'", unsorted),
                panel("SequencePaddingDirection 'left'", left),
            ],
        ),
    )?;
    Ok(written)
}

/// The smallest and largest value of feature 1 over `indices`.
fn feature_range(store: &dyn Datastore, indices: &[usize]) -> Result<(f32, f32)> {
    let mut range = (f32::INFINITY, f32::NEG_INFINITY);
    for &i in indices {
        if let seqnet_data::Sequence::Features(x) = &store.read(i)?.data {
            for &v in x.column(0) {
                range = (range.0.min(v), range.1.max(v));
            }
        }
    }
    if range.0 > range.1 {
        return Err(CliError::NotWhatIsNeeded {
            path: "the data".into(),
            problem: "has no feature sequences to draw".into(),
        });
    }
    Ok(range)
}

/// The first four steps and the last of observation `i`, for the flow diagram.
fn flow_of(store: &dyn Datastore, i: usize) -> Result<LstmFlow> {
    let o = store.read(i)?;
    let seqnet_data::Sequence::Features(x) = &o.data else {
        return Err(CliError::NotWhatIsNeeded {
            path: format!("observation {}", i + 1),
            problem: "is not a feature sequence".into(),
        });
    };
    let t = x.nrows();
    let mut picked: Vec<usize> = (0..t.min(4)).collect();
    if t > 4 {
        picked.push(t - 1);
    }
    // Colours over all the features of the observation.
    let (lo, hi) = x
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    Ok(LstmFlow {
        steps: picked.iter().map(|&s| x.row(s).to_vec()).collect(),
        length: t,
        range: (lo, hi),
    })
}
