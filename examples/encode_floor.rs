//! What the Parquet writer alone costs a backfill: the rows of a table's
//! data files, read back into memory, written again with the properties
//! risktail writes its files with (`sink::writer_properties`), into memory,
//! timed. No parsing, no Delta, no disk: the floor under a backfill's time
//! per row that no change to risktail's own code can go below.
//!
//! ```sh
//! cargo run --release --example encode_floor -- lake_dense/risk_events/event_date=2026-01-26
//! cargo run --release --example encode_floor -- lake_mixed/risk_events/event_date=*
//! ```
//!
//! Prints the rows, the best and median of five encodes, and the bytes
//! written; then the same without statistics and without compression, to
//! show what each costs (risktail keeps both: readers skip files by the
//! statistics, and the table is read from object stores).

use std::time::Instant;

use deltalake::arrow::record_batch::RecordBatch;
use deltalake::parquet::arrow::ArrowWriter;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::{EnabledStatistics, WriterProperties};

fn main() -> anyhow::Result<()> {
    let dirs: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(!dirs.is_empty(), "usage: encode_floor PARTITION_DIR...");
    let mut batches = Vec::new();
    for dir in &dirs {
        batches.extend(read_dir(dir)?);
    }
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    println!("{rows} rows from {} folders", dirs.len());
    let ours = risktail::sink::writer_properties();
    let without = |stats: bool, compress: bool| {
        let mut b = ours.clone().into_builder();
        if !stats {
            b = b.set_statistics_enabled(EnabledStatistics::None);
        }
        if !compress {
            b = b.set_compression(Compression::UNCOMPRESSED);
        }
        b.build()
    };
    for (label, props) in [
        ("risktail's properties", ours.clone()),
        ("without statistics", without(false, true)),
        ("without compression", without(true, false)),
    ] {
        let (best, median, bytes) = time(&batches, props)?;
        println!(
            "{label:24} best {:7.1} ms  median {:7.1} ms  {:6.0} ns a row  {bytes} bytes",
            best * 1e3,
            median * 1e3,
            best * 1e9 / rows.max(1) as f64
        );
    }
    Ok(())
}

/// Every row of the Parquet files in `dir`, in batches of 10,000.
fn read_dir(dir: &str) -> anyhow::Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.sort();
    for path in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
    {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path)?)?
            .with_batch_size(10_000)
            .build()?;
        for batch in reader {
            batches.push(batch?);
        }
    }
    anyhow::ensure!(!batches.is_empty(), "no Parquet rows in {dir}");
    Ok(batches)
}

/// Best and median seconds of five encodes of `batches`, and the bytes one
/// wrote.
fn time(batches: &[RecordBatch], props: WriterProperties) -> anyhow::Result<(f64, f64, usize)> {
    let mut secs = Vec::new();
    let mut bytes = 0;
    for _ in 0..5 {
        let start = Instant::now();
        let mut w = ArrowWriter::try_new(Vec::new(), batches[0].schema(), Some(props.clone()))?;
        for b in batches {
            w.write(b)?;
        }
        bytes = w.into_inner()?.len();
        secs.push(start.elapsed().as_secs_f64());
    }
    secs.sort_by(f64::total_cmp);
    Ok((secs[0], secs[secs.len() / 2], bytes))
}
