//! Search on a big store: how long `Storage::search` takes on a million messages, and how
//! fast messages are stored and indexed now that indexing runs after the commit, on the
//! store's `search-indexer` thread.
//!
//! Bodies are 4–24 words drawn with Zipf-like frequencies (exponent 1) from a vocabulary of
//! common English words followed by made-up ones, over 20 rooms, so term frequencies run
//! from "in most messages" to "in a few dozen".
//!
//! ```sh
//! cargo run --release --example searchbench                       # quick: 100k messages
//! cargo run --release --example searchbench -- --fill 1000000     # the issue's figure
//! # keep the filled store and search it again later without filling:
//! cargo run --release --example searchbench -- --fill 1000000 --store target/bench/search-1m
//! cargo run --release --example searchbench -- --fill 1000000 --store target/bench/search-1m --searches-only
//! ```
//!
//! Writes: people's messages are appended (durably, each commit synced) as fast as `append`
//! returns, with the indexer running beside; then one message per room with a word of its
//! own is appended, and search is asked for that word until it finds all of them: that wait
//! is the index lag (a room's messages are indexed in order, so its last one found means all
//! are). Messages ÷ (append time + lag) is the indexer's sustained rate when it is the
//! slower of the two. System lines (which the index skips) are appended the same way,
//! alternating, as the message path's own rate. Search latency: each query's first page (50
//! results), through the store as the `/search` handler calls it, HTML rendering aside, once
//! the index has caught up.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chat::domain::{SearchQuery, Slug, index_terms, words};
use chat::store::{MessageKind, MessageRecord, PendingMessage, PoloStore, RoomRecord, Storage};
use clap::Parser;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, Parser)]
#[command(name = "searchbench")]
struct Args {
    /// Messages in the store searched.
    #[arg(long, default_value_t = 100_000)]
    fill: u64,
    /// Distinct words in the vocabulary.
    #[arg(long, default_value_t = 50_000)]
    vocabulary: usize,
    /// Batch sizes for the write measurements (the committer commits up to 512 at once).
    #[arg(long, value_delimiter = ',', default_values_t = vec![16, 512])]
    batches: Vec<usize>,
    /// Seconds of appends per write measurement, at most; each runs twice per kind,
    /// alternating.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Messages per write measurement, at most (so measuring does not fill the disk).
    #[arg(long, default_value_t = 30_000)]
    max_messages: u64,
    /// Times each query is run.
    #[arg(long, default_value_t = 20)]
    repeat: usize,
    /// Where the temporary databases go (on disk, so fsync is real).
    #[arg(long, default_value = "target/bench")]
    work_dir: PathBuf,
    /// Keep the filled store here. A later run given the same directory tops it up to
    /// `--fill` instead of filling a new one (on a tmpfs when disk is short: then its fill
    /// rate and write costs are without a real fsync).
    #[arg(long)]
    store: Option<PathBuf>,
    /// Only search: no write measurements (which add messages to the store).
    #[arg(long)]
    searches_only: bool,
}

/// Words by rank, most frequent first, and a sampler with Zipf weights.
struct Vocabulary {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

const COMMON: [&str; 40] = [
    "the", "to", "and", "a", "i", "you", "it", "is", "that", "of", "in", "we", "for", "on", "this",
    "be", "have", "do", "not", "with", "but", "so", "can", "just", "what", "are", "if", "at",
    "was", "get", "me", "will", "deploy", "build", "test", "think", "know", "good", "today",
    "meeting",
];
const SYLLABLES: [&str; 40] = [
    "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "be", "da", "fe", "gi", "ho", "ju", "ke", "li",
    "ma", "no", "pe", "qu", "ri", "so", "tu", "va", "we", "xi", "yo", "za", "bri", "cla", "dro",
    "fli", "gra", "pla", "sto", "tre", "zen", "mor", "lin", "dar",
];

impl Vocabulary {
    fn new(size: usize) -> Vocabulary {
        let mut words: Vec<String> = COMMON.iter().map(|w| w.to_string()).collect();
        let mut n = SYLLABLES.len();
        while words.len() < size {
            let mut word = String::new();
            let mut rest = n;
            while rest > 0 {
                word.push_str(SYLLABLES[rest % SYLLABLES.len()]);
                rest /= SYLLABLES.len();
            }
            words.push(word);
            n += 1;
        }
        words.truncate(size);
        let mut total = 0.0;
        let cumulative = (0..size)
            .map(|rank| {
                total += 1.0 / (rank as f64 + 1.0);
                total
            })
            .collect();
        Vocabulary { words, cumulative }
    }

    fn word(&self, rng: &mut StdRng) -> &str {
        let total = *self.cumulative.last().unwrap();
        let at = rng.random::<f64>() * total;
        let rank = self.cumulative.partition_point(|&c| c < at);
        &self.words[rank.min(self.words.len() - 1)]
    }

    fn body(&self, rng: &mut StdRng) -> String {
        let words = rng.random_range(4..=24);
        let mut body = String::new();
        for i in 0..words {
            if i > 0 {
                body.push(' ');
            }
            body.push_str(self.word(rng));
        }
        body
    }
}

const ROOMS: usize = 20;

struct Writer {
    store: PoloStore,
    rooms: Vec<Slug>,
    next_ids: Vec<u64>,
    rng: StdRng,
    clock: i64,
    lag_marks: u64,
}

impl Writer {
    fn open(dir: &Path) -> anyhow::Result<Writer> {
        let store = PoloStore::open(dir)?;
        let rooms: Vec<Slug> = (0..ROOMS)
            .map(|n| Slug::parse(&format!("room-{n}")).unwrap())
            .collect();
        for slug in &rooms {
            store.create_room(&RoomRecord::new(slug.clone(), slug.to_string(), "", 0))?;
        }
        let mut next_ids = vec![0; ROOMS];
        let mut clock = 1_700_000_000_000;
        for record in store.rooms()? {
            if let Some(at) = rooms.iter().position(|slug| *slug == record.slug) {
                next_ids[at] = record.last_id.max(0) as u64;
                clock = clock.max(record.last_activity);
            }
        }
        Ok(Writer {
            store,
            rooms,
            next_ids,
            rng: StdRng::seed_from_u64(clock as u64),
            clock,
            lag_marks: 0,
        })
    }

    fn stored(&self) -> u64 {
        self.next_ids.iter().sum()
    }

    /// One group commit of `size` messages, the way the committer stores a batch.
    fn commit(
        &mut self,
        vocabulary: &Vocabulary,
        size: usize,
        kind: MessageKind,
    ) -> anyhow::Result<()> {
        self.clock += 1;
        let mut batch: Vec<PendingMessage> = Vec::with_capacity(size);
        for _ in 0..size {
            let room = self.rng.random_range(0..ROOMS);
            self.next_ids[room] += 1;
            let body = vocabulary.body(&mut self.rng);
            batch.push(
                MessageRecord::new(
                    &self.rooms[room],
                    self.next_ids[room],
                    kind,
                    "bench".into(),
                    String::new(),
                    body,
                    self.clock,
                )
                .into(),
            );
        }
        self.store.append(&batch)?;
        Ok(())
    }

    /// Appends one message per room holding a word of its own, then searches for it until
    /// every room's is found: how long the index took to catch up.
    fn index_lag(&mut self) -> anyhow::Result<Duration> {
        self.lag_marks += 1;
        let word = format!("lagmark{}", self.lag_marks);
        self.clock += 1;
        let mut batch: Vec<PendingMessage> = Vec::with_capacity(ROOMS);
        for (room, slug) in self.rooms.iter().enumerate() {
            self.next_ids[room] += 1;
            batch.push(
                MessageRecord::new(
                    slug,
                    self.next_ids[room],
                    MessageKind::User,
                    "bench".into(),
                    String::new(),
                    word.clone(),
                    self.clock,
                )
                .into(),
            );
        }
        self.store.append(&batch)?;
        let appended = Instant::now();
        let query = SearchQuery::parse(&word)?;
        while self.store.search(&query, None, 50, &|_| true)?.hits.len() < ROOMS {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(appended.elapsed())
    }

    /// Messages stored and seconds taken by commits of `size`, for at most `--seconds` and
    /// `--max-messages`.
    fn rate(
        &mut self,
        vocabulary: &Vocabulary,
        size: usize,
        kind: MessageKind,
        args: &Args,
    ) -> anyhow::Result<(u64, f64)> {
        let start = Instant::now();
        let mut messages = 0;
        while start.elapsed() < Duration::from_secs_f64(args.seconds)
            && messages < args.max_messages
        {
            self.commit(vocabulary, size, kind)?;
            messages += size as u64;
        }
        Ok((messages, start.elapsed().as_secs_f64()))
    }
}

/// People's messages and system lines, alternating so load on the machine hits both alike,
/// each followed by waiting for the index to catch up.
fn write_rates(
    writer: &mut Writer,
    vocabulary: &Vocabulary,
    args: &Args,
    label: &str,
) -> anyhow::Result<()> {
    println!("\nwrites, {label} (append durable, indexer running):");
    println!(
        "| batch | messages/s through append | system lines/s | ratio | index lag after the \
         last append | indexed/s (messages ÷ (append time + lag)) |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for &size in &args.batches {
        let (mut people, mut people_secs, mut plain, mut plain_secs) = (0, 0.0, 0, 0.0);
        let mut lags = Vec::new();
        for _ in 0..2 {
            let (n, s) = writer.rate(vocabulary, size, MessageKind::User, args)?;
            let lag = writer.index_lag()?;
            people += n;
            people_secs += s;
            lags.push((n, s, lag));
            let (n, s) = writer.rate(vocabulary, size, MessageKind::System, args)?;
            writer.index_lag()?;
            plain += n;
            plain_secs += s;
        }
        let (with, without) = (people as f64 / people_secs, plain as f64 / plain_secs);
        let lag_text: Vec<String> = lags
            .iter()
            .map(|(_, _, lag)| format!("{:.0} ms", lag.as_secs_f64() * 1000.0))
            .collect();
        let indexed: f64 = lags.iter().map(|(n, _, _)| *n as f64).sum::<f64>()
            / lags
                .iter()
                .map(|(_, s, lag)| s + lag.as_secs_f64())
                .sum::<f64>();
        println!(
            "| {size} | {with:.0} | {without:.0} | {:.2} | {} | {indexed:.0} |",
            with / without,
            lag_text.join(", ")
        );
    }
    Ok(())
}

/// Queries by how common their words are: (label, ranks of the words, starting rank offsets
/// so each class runs several different queries).
const QUERIES: [(&str, &[usize]); 11] = [
    ("1 word, rank 1-5", &[0]),
    ("1 word, rank 11-15", &[10]),
    ("1 word, rank 101-105", &[100]),
    ("1 word, rank 1001-1005", &[1000]),
    ("1 word, rank 10001-10005", &[10_000]),
    ("1 word, rank 40001-40005", &[40_000]),
    ("2 words, ranks 1 + 2", &[0, 1]),
    ("2 words, ranks 101 + 151", &[100, 150]),
    (
        "2 words, ranks 1001 + 1501 (rarely together)",
        &[1000, 1500],
    ),
    ("2 words, ranks 1 + 10001", &[0, 10_000]),
    ("3 words, ranks 1 + 11 + 101", &[0, 10, 100]),
];
const VARIANTS: usize = 5;

fn search_latency(store: &PoloStore, vocabulary: &Vocabulary, args: &Args) -> anyhow::Result<()> {
    println!(
        "\nsearch, first page of 50, {} runs of {VARIANTS} queries per row:",
        args.repeat
    );
    println!("| query | results (mean) | p50 ms | p99 ms | max ms |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let everywhere = |_: &Slug| true;
    for (label, ranks) in QUERIES {
        let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        let mut results = 0;
        let mut searches = 0;
        for variant in 0..VARIANTS {
            let words: Vec<&str> = ranks
                .iter()
                .filter_map(|&rank| vocabulary.words.get(rank + variant).map(String::as_str))
                .collect();
            let query = SearchQuery::parse(&words.join(" "))?;
            for _ in 0..args.repeat {
                let start = Instant::now();
                let page = store.search(&query, None, 50, &everywhere)?;
                let micros = start.elapsed().as_micros().max(1) as u64;
                latency.saturating_record(micros);
                all.saturating_record(micros);
                results += page.hits.len();
                searches += 1;
            }
        }
        println!(
            "| {label} | {:.0} | {:.2} | {:.2} | {:.2} |",
            results as f64 / searches as f64,
            latency.value_at_quantile(0.5) as f64 / 1000.0,
            latency.value_at_quantile(0.99) as f64 / 1000.0,
            latency.max() as f64 / 1000.0,
        );
    }
    let absent = SearchQuery::parse("zzzqqq")?;
    let start = Instant::now();
    store.search(&absent, None, 50, &everywhere)?;
    println!(
        "| a word in no message | 0 | {:.2} | | |",
        start.elapsed().as_secs_f64() * 1000.0
    );
    println!(
        "\nall queries: p50 {:.2} ms, p99 {:.2} ms over {} searches",
        all.value_at_quantile(0.5) as f64 / 1000.0,
        all.value_at_quantile(0.99) as f64 / 1000.0,
        all.len()
    );
    Ok(())
}

/// What each message costs the index: its words, and the terms (prefixes) it is indexed
/// under, over a sample of bodies.
fn index_growth(vocabulary: &Vocabulary) {
    let mut rng = StdRng::seed_from_u64(7);
    let (mut words_in, mut terms_in) = (0, 0);
    let sample = 10_000;
    for _ in 0..sample {
        let body = vocabulary.body(&mut rng);
        let mut distinct: Vec<String> = words(&body).map(|w| w.term).collect();
        distinct.sort_unstable();
        distinct.dedup();
        words_in += distinct.len();
        terms_in += index_terms(&body).len();
    }
    println!(
        "index terms per message: {:.2} for {:.2} distinct words ({:.2} per word), over {sample} bodies",
        terms_in as f64 / sample as f64,
        words_in as f64 / sample as f64,
        terms_in as f64 / words_in as f64
    );
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.work_dir)?;
    let dir = tempfile::Builder::new()
        .prefix("searchbench-")
        .tempdir_in(&args.work_dir)?;
    let vocabulary = Vocabulary::new(args.vocabulary);
    println!(
        "searchbench: databases under {}, {} words, {} rooms, fill {}",
        dir.path().display(),
        args.vocabulary,
        ROOMS,
        args.fill
    );

    index_growth(&vocabulary);
    if !args.searches_only {
        let mut empty = Writer::open(&dir.path().join("empty"))?;
        write_rates(&mut empty, &vocabulary, &args, "empty store")?;
    }

    let data = args
        .store
        .clone()
        .unwrap_or_else(|| dir.path().join("data"));
    let mut writer = Writer::open(&data)?;
    println!(
        "\nfilling {} to {} indexed messages in batches of 512…",
        data.display(),
        args.fill
    );
    let start = Instant::now();
    let already = writer.stored();
    let mut report = Instant::now();
    while writer.stored() < args.fill {
        let size = 512.min((args.fill - writer.stored()) as usize);
        writer.commit(&vocabulary, size, MessageKind::User)?;
        if report.elapsed() > Duration::from_secs(30) || writer.stored() == args.fill {
            println!(
                "  {:>9} stored, {:.0} messages/s on average",
                writer.stored(),
                (writer.stored() - already) as f64 / start.elapsed().as_secs_f64()
            );
            report = Instant::now();
        }
    }
    let filled = start.elapsed();
    println!(
        "  {} stored ({} before) in {:.1} s; {:.0} MB on disk",
        writer.stored(),
        already,
        filled.as_secs_f64(),
        dir_bytes(&data) as f64 / 1e6
    );
    if !args.searches_only {
        let lag = writer.index_lag()?;
        println!(
            "  index caught up {:.1} s after the last append: {:.0} messages indexed/s over the fill",
            lag.as_secs_f64(),
            (writer.stored() - already) as f64 / (filled + lag).as_secs_f64()
        );
        println!(
            "  {:.0} MB on disk once indexed",
            dir_bytes(&data) as f64 / 1e6
        );
    }

    search_latency(&writer.store, &vocabulary, &args)?;
    if !args.searches_only {
        let label = format!("store of {} messages", writer.stored());
        write_rates(&mut writer, &vocabulary, &args, &label)?;
    }
    Ok(())
}
