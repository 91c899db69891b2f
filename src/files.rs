//! Uploaded files on disk, named by the SHA-256 of their bytes, so the same bytes sent twice
//! are stored once. An upload streams into a temporary file that is synced and then renamed
//! into place, so a crash never leaves a half-written file under a real name. What the bytes
//! are is sniffed from the bytes themselves: the four inline image types are decoded (with
//! limits against decompression bombs) and get a thumbnail; everything else is a download.

use std::collections::HashMap;
use std::io::{BufReader, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::security::hex;
use crate::store::{self, ImageInfo, Storage, StoreError};

/// The type every file that is not an inline image is served as.
pub const DOWNLOAD_TYPE: &str = "application/octet-stream";
/// Images are shown fitting this box (CSS pixels), never enlarged.
pub const SHOWN_WIDTH: u32 = 480;
pub const SHOWN_HEIGHT: u32 = 360;
/// An image that fitting would make narrower than this (a long screenshot, a receipt) is
/// shown this wide instead, or its own width if less, and cut to its top: not a sliver.
pub const MIN_SHOWN_WIDTH: u32 = 160;
/// An image whose decoded pixels would take more memory than this is offered as a download.
const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;
/// Nor is one wider or taller than this decoded.
const MAX_IMAGE_SIDE: u32 = 16_384;
/// Bytes kept from the start of an upload to sniff its type.
const SNIFF_BYTES: usize = 64;
/// Bytes of an upload gathered in memory between writes.
const WRITE_BUFFER: usize = 256 * 1024;
/// After an upload goes over the limit, this much more is read and dropped so the client gets
/// the 413 instead of a reset connection; a larger excess is cut off.
const DRAIN_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the file is larger than the limit")]
    TooLarge,
    #[error("the upload stopped sending")]
    Stalled,
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    #[error("the file could not be stored: {0}")]
    Disk(#[from] std::io::Error),
}

/// Bytes now stored under their hash.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub hash: String,
    pub size: u64,
    /// The first bytes, for sniffing.
    pub head: Vec<u8>,
}

/// What the stored bytes turned out to be.
#[derive(Debug, Clone)]
pub struct Sniffed {
    pub media_type: String,
    pub image: Option<ImageInfo>,
}

pub struct FileStore {
    /// This instance's copies; with a store that keeps the bytes, only a cache of them.
    dir: PathBuf,
    /// The store, when it keeps every file's bytes (several instances share it).
    keeper: Option<Arc<dyn Storage>>,
    /// Uploads in progress, renamed into `dir` once complete and synced.
    incoming: PathBuf,
    /// Whose image is decoded next.
    decoding: DecodeTurns,
}

impl FileStore {
    /// Opens (creating) `dir`, and drops uploads a previous run left unfinished. `storage`
    /// keeps the bytes too if it is [shared](Storage::is_shared).
    pub fn open(dir: &Path, storage: &Arc<dyn Storage>) -> std::io::Result<FileStore> {
        let incoming = dir.join("incoming");
        std::fs::create_dir_all(&incoming)?;
        for leftover in std::fs::read_dir(&incoming)?.flatten() {
            let _ = std::fs::remove_file(leftover.path());
        }
        Ok(FileStore {
            dir: dir.to_owned(),
            keeper: storage.is_shared().then(|| storage.clone()),
            incoming,
            decoding: DecodeTurns::new(DECODES_AT_ONCE, DECODES_PER_LOGIN),
        })
    }

    /// Where the bytes with this hash live. `None` unless `hash` is 64 lowercase hex digits,
    /// so no stored name can point outside the directory.
    pub fn path(&self, hash: &str) -> Option<PathBuf> {
        stored_name(hash, false).map(|name| self.dir.join(name))
    }

    pub fn thumbnail_path(&self, hash: &str) -> Option<PathBuf> {
        stored_name(hash, true).map(|name| self.dir.join(name))
    }

    /// Streams an upload to disk, hashing as it goes, and moves it under its hash (or drops it
    /// if those bytes are stored already). Over `limit` bytes, or with nothing arriving for
    /// `idle`, nothing is kept.
    pub async fn receive<E: std::fmt::Display>(
        &self,
        mut chunks: impl Stream<Item = Result<Bytes, E>> + Unpin,
        limit: u64,
        idle: std::time::Duration,
    ) -> Result<StoredFile, UploadError> {
        let temp = TempFile::new(&self.incoming);
        let file = tokio::fs::File::options()
            .write(true)
            .create_new(true)
            .open(&temp.path)
            .await?;
        // Each write to a tokio file is a trip to the blocking pool: gather chunks first.
        let mut file = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut hasher = Sha256::new();
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        let mut size: u64 = 0;
        loop {
            let chunk = match tokio::time::timeout(idle, chunks.next()).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(_) => return Err(UploadError::Stalled),
            };
            let chunk = chunk.map_err(|e| UploadError::Interrupted(e.to_string()))?;
            size += chunk.len() as u64;
            if size > limit {
                drop(file);
                drain(&mut chunks, DRAIN_BYTES).await;
                return Err(UploadError::TooLarge);
            }
            let wanted = SNIFF_BYTES.saturating_sub(head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..wanted]);
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        let hash = hex(&hasher.finalize());
        let path = self.dir.join(&hash);
        // Same bytes as a stored (and synced) file: nothing new to keep here.
        if !tokio::fs::try_exists(&path).await? {
            file.get_ref().sync_all().await?;
            drop(file);
            temp.persist(&path).await?;
            sync_dir(&self.dir).await?;
        }
        self.keep(&hash).await?;
        Ok(StoredFile { hash, size, head })
    }

    /// Puts the file stored here as `key` (a [stored name](stored_name)) in the store that
    /// keeps the bytes, if there is one.
    async fn keep(&self, key: &str) -> std::io::Result<()> {
        let Some(keeper) = &self.keeper else {
            return Ok(());
        };
        let path = self.dir.join(key);
        let key = key.to_owned();
        store::blocking(keeper, move |storage| {
            let mut file = std::fs::File::open(&path)
                .map_err(|e| StoreError::Database(format!("{}: {e}", path.display())))?;
            storage.put_file_bytes(&key, &mut file)
        })
        .await
        .map_err(std::io::Error::other)?;
        Ok(())
    }

    /// The bytes of a stored file (`thumbnail`: of its thumbnail), and how many: from this
    /// instance's disk, or else from the store that keeps them. `None` if neither has them.
    pub async fn read(&self, hash: &str, thumbnail: bool) -> std::io::Result<Option<FileBytes>> {
        let Some(key) = stored_name(hash, thumbnail) else {
            return Ok(None);
        };
        match tokio::fs::File::open(self.dir.join(&key)).await {
            Ok(file) => {
                let length = file.metadata().await?.len();
                return Ok(Some(FileBytes {
                    length,
                    chunks: disk_chunks(file),
                }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let Some(keeper) = &self.keeper else {
            return Ok(None);
        };
        let looked_up = key.clone();
        let found = store::blocking(keeper, move |storage| storage.file_bytes(&looked_up))
            .await
            .map_err(std::io::Error::other)?;
        Ok(found.map(|(length, count)| FileBytes {
            length,
            chunks: stored_chunks(keeper.clone(), key, count),
        }))
    }

    /// Sniffs stored bytes from their content. An inline image type that decodes within the
    /// limits gets a thumbnail; anything else (SVG and HTML included) is a download. `login`
    /// is who uploaded it: each login waits for its own turn (see [`DecodeTurns`]).
    pub async fn sniff(&self, file: &StoredFile, login: &str) -> Sniffed {
        let download = Sniffed {
            media_type: DOWNLOAD_TYPE.into(),
            image: None,
        };
        let Some(format) = inline_image_format(&file.head) else {
            return download;
        };
        let (Some(source), Some(thumb)) = (self.path(&file.hash), self.thumbnail_path(&file.hash))
        else {
            return download;
        };
        let Some(_turn) = self.decoding.take(login).await else {
            return download;
        };
        let incoming = self.incoming.clone();
        let made =
            tokio::task::spawn_blocking(move || make_thumbnail(&source, format, &thumb, &incoming))
                .await;
        match made {
            Ok(Ok(info)) => {
                let Some(thumb) = stored_name(&file.hash, true) else {
                    return download;
                };
                if let Err(e) = self.keep(&thumb).await {
                    tracing::warn!(error = %e, hash = %file.hash, "could not store a thumbnail");
                    return download;
                }
                Sniffed {
                    media_type: format.to_mime_type().into(),
                    image: Some(info),
                }
            }
            Ok(Err(e)) => {
                tracing::info!(error = %e, hash = %file.hash, "not shown inline: it did not decode");
                download
            }
            Err(e) => {
                tracing::warn!(error = %e, hash = %file.hash, "image decoding failed");
                download
            }
        }
    }
}

/// A stored file's bytes, as they stream out.
pub struct FileBytes {
    pub length: u64,
    pub chunks: BoxStream<'static, std::io::Result<Bytes>>,
}

/// Bytes read from disk at a time for a download.
const READ_CHUNK: usize = 64 * 1024;

fn disk_chunks(file: tokio::fs::File) -> BoxStream<'static, std::io::Result<Bytes>> {
    futures_util::stream::unfold(file, |mut file| async move {
        let mut buffer = vec![0; READ_CHUNK];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(Bytes::from(buffer)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    })
    .boxed()
}

/// The chunks of a file the store keeps, read one at a time as the client takes them.
fn stored_chunks(
    keeper: Arc<dyn Storage>,
    key: String,
    count: u32,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    futures_util::stream::unfold(0, move |seq| {
        let (keeper, key) = (keeper.clone(), key.clone());
        async move {
            if seq >= count {
                return None;
            }
            let read = store::blocking(&keeper, move |storage| storage.file_chunk(&key, seq)).await;
            let chunk = match read {
                Ok(Some(bytes)) => Ok(Bytes::from(bytes)),
                Ok(None) => Err(std::io::Error::other(format!("chunk {seq} is missing"))),
                Err(e) => Err(std::io::Error::other(e)),
            };
            // After an error the stream ends: the client sees a cut-short download.
            let next = if chunk.is_ok() { seq + 1 } else { count };
            Some((chunk, next))
        }
    })
    .boxed()
}

/// Images decoded at once: each may take up to `MAX_DECODE_BYTES`.
const DECODES_AT_ONCE: usize = 1;
/// Images of one login decoded, or waiting for a turn, at once.
const DECODES_PER_LOGIN: usize = 1;

/// Turns at decoding images. Turns are given in order of asking, and a login asks only
/// once its previous image is done, so a login that uploads a hundred images waits behind
/// everyone else's one rather than putting everyone behind its hundred.
struct DecodeTurns {
    at_once: Arc<Semaphore>,
    per_login: usize,
    /// Only logins with an image decoding or waiting: their semaphore, and how many.
    logins: Mutex<HashMap<String, (Arc<Semaphore>, usize)>>,
}

/// A turn at decoding (or the wait for one); the next turn is given when it is dropped.
struct DecodeTurn<'a> {
    turns: &'a DecodeTurns,
    login: String,
    permits: Vec<OwnedSemaphorePermit>,
}

impl DecodeTurns {
    fn new(at_once: usize, per_login: usize) -> DecodeTurns {
        DecodeTurns {
            at_once: Arc::new(Semaphore::new(at_once.max(1))),
            per_login: per_login.max(1),
            logins: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for `login`'s turn; `None` only if the semaphores were closed (never).
    async fn take(&self, login: &str) -> Option<DecodeTurn<'_>> {
        let own = {
            let mut logins = self.logins.lock().expect("decode turns lock");
            let (own, users) = logins
                .entry(login.to_owned())
                .or_insert_with(|| (Arc::new(Semaphore::new(self.per_login)), 0));
            *users += 1;
            own.clone()
        };
        // Counted before waiting, and uncounted on drop even if the wait is abandoned (the
        // upload was cancelled).
        let mut turn = DecodeTurn {
            turns: self,
            login: login.to_owned(),
            permits: Vec::with_capacity(2),
        };
        turn.permits.push(own.acquire_owned().await.ok()?);
        turn.permits
            .push(self.at_once.clone().acquire_owned().await.ok()?);
        Some(turn)
    }
}

impl Drop for DecodeTurn<'_> {
    fn drop(&mut self) {
        // The turn at once first: it goes to whoever asked first, not to this login's next.
        while let Some(permit) = self.permits.pop() {
            drop(permit);
        }
        let mut logins = self.turns.logins.lock().expect("decode turns lock");
        if let Some((_, users)) = logins.get_mut(&self.login) {
            *users -= 1;
            if *users == 0 {
                logins.remove(&self.login);
            }
        }
    }
}

/// The inline image type these first bytes announce, if any. SVG is never one: it can carry
/// scripts.
fn inline_image_format(head: &[u8]) -> Option<ImageFormat> {
    match image::guess_format(head).ok()? {
        format @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP) => {
            Some(format)
        }
        _ => None,
    }
}

/// Decodes the image within limits, upright per its EXIF orientation, and writes a
/// thumbnail of what is shown (see `shown_size`): PNG if it has transparency, JPEG
/// otherwise. (An animated GIF's thumbnail is its first frame; the page shows the GIF.)
fn make_thumbnail(
    source: &Path,
    format: ImageFormat,
    thumb: &Path,
    incoming: &Path,
) -> anyhow::Result<ImageInfo> {
    let mut reader = ImageReader::with_format(BufReader::new(std::fs::File::open(source)?), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder()?;
    let orientation = decoder.orientation()?;
    let mut image = DynamicImage::from_decoder(decoder)?;
    image.apply_orientation(orientation);
    let (width, height) = (image.width(), image.height());
    // A tall image's thumbnail is the top that is shown, at the proportions it is shown at.
    let (shown_width, shown_height) = shown_size(width, height);
    let top = shown_top(width, height);
    if top < height {
        image = image.crop_imm(0, 0, width, top);
    }
    // Twice the shown size, so it is sharp on high-density screens.
    let (thumb_width, thumb_height) = fit_within(width, top, 2 * shown_width, 2 * shown_height);
    let small = image.thumbnail_exact(thumb_width, thumb_height);
    let mut encoded = Cursor::new(Vec::new());
    let thumb_type = if small.color().has_alpha() {
        small.write_to(&mut encoded, ImageFormat::Png)?;
        ImageFormat::Png
    } else {
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, 85);
        small.to_rgb8().write_with_encoder(encoder)?;
        ImageFormat::Jpeg
    };
    write_atomically(thumb, incoming, encoded.get_ref())?;
    Ok(ImageInfo {
        width,
        height,
        thumb_width,
        thumb_height,
        thumb_type: thumb_type.to_mime_type().into(),
    })
}

/// The largest size with the same proportions that fits in `max_width` × `max_height`,
/// never larger than the original, and at least 1 × 1.
pub fn fit_within(width: u32, height: u32, max_width: u32, max_height: u32) -> (u32, u32) {
    if width <= max_width && height <= max_height {
        return (width.max(1), height.max(1));
    }
    let scale = f64::min(
        f64::from(max_width) / f64::from(width),
        f64::from(max_height) / f64::from(height),
    );
    let scaled = |side: u32| ((f64::from(side) * scale).round() as u32).max(1);
    (scaled(width), scaled(height))
}

/// The size an image is shown at (CSS pixels): fitting `SHOWN_WIDTH` × `SHOWN_HEIGHT` at its
/// proportions, or, when that would be narrower than `MIN_SHOWN_WIDTH`, that wide (never
/// wider than itself) and cut to its top.
pub fn shown_size(width: u32, height: u32) -> (u32, u32) {
    let fitted = fit_within(width, height, SHOWN_WIDTH, SHOWN_HEIGHT);
    let least = MIN_SHOWN_WIDTH.min(width);
    if fitted.0 >= least {
        return fitted;
    }
    let scale = f64::from(least) / f64::from(width);
    let scaled_height = (f64::from(height) * scale).round() as u32;
    (least, scaled_height.clamp(1, SHOWN_HEIGHT))
}

/// How many rows from the top of an image its shown size holds: all of them, but for a
/// tall image cut to its top.
fn shown_top(width: u32, height: u32) -> u32 {
    let (shown_width, shown_height) = shown_size(width, height);
    let rows = (f64::from(width) * f64::from(shown_height) / f64::from(shown_width)).round() as u32;
    if fit_within(width, height, SHOWN_WIDTH, SHOWN_HEIGHT) == (shown_width, shown_height) {
        height
    } else {
        rows.clamp(1, height)
    }
}

/// Writes `bytes` to a temporary file, syncs it, and renames it to `path`.
fn write_atomically(path: &Path, incoming: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let temp = incoming.join(temp_name());
    let written = (|| {
        let mut file = std::fs::File::create_new(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Reads and drops up to `budget` more bytes of an upload.
async fn drain<E>(chunks: &mut (impl Stream<Item = Result<Bytes, E>> + Unpin), budget: u64) {
    let mut left = budget;
    while let Some(Ok(chunk)) = chunks.next().await {
        left = left.saturating_sub(chunk.len() as u64);
        if left == 0 {
            break;
        }
    }
}

/// A name under `incoming/` whose file is removed on drop unless persisted.
struct TempFile {
    path: PathBuf,
    persisted: bool,
}

impl TempFile {
    fn new(dir: &Path) -> TempFile {
        TempFile {
            path: dir.join(temp_name()),
            persisted: false,
        }
    }

    async fn persist(mut self, to: &Path) -> std::io::Result<()> {
        tokio::fs::rename(&self.path, to).await?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn temp_name() -> String {
    let bytes: [u8; 12] = rand::rng().random();
    format!("{}.part", hex(&bytes))
}

/// Makes a rename in `dir` durable.
async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
        .await
        .map_err(std::io::Error::other)?
}

/// The name a stored file's bytes go by, on disk and in a store that keeps them: the hash, or
/// for the file's thumbnail the hash and `.thumb`. `None` unless `hash` is 64 lowercase hex
/// digits, so no name can point outside the directory.
pub fn stored_name(hash: &str, thumbnail: bool) -> Option<String> {
    is_hash(hash).then(|| match thumbnail {
        true => format!("{hash}.thumb"),
        false => hash.to_owned(),
    })
}

fn is_hash(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The name a file was uploaded with, made safe to store and show: only its last path
/// component, without control characters, at most 200 characters; "file" if nothing is left.
pub fn clean_file_name(name: Option<&str>) -> String {
    const MAX_CHARS: usize = 200;
    let last = name
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_CHARS)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        "file".into()
    } else {
        cleaned.to_owned()
    }
}

/// A `Content-Disposition` value (RFC 6266): an ASCII `filename` fallback for old clients
/// and the exact name as RFC 8187 `filename*`.
pub fn content_disposition(kind: &str, name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' && c != '%' => c,
            _ => '_',
        })
        .collect();
    let mut encoded = String::new();
    for byte in name.bytes() {
        let plain = byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte);
        if plain {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_logins_queue_of_images_waits_behind_anothers_one() {
        let turns = Arc::new(DecodeTurns::new(1, 1));
        let decoding = turns.take("mallory").await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for who in ["mallory", "mallory", "mallory", "alice", "mallory"] {
            let (turns, order) = (turns.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let _turn = turns.take(who).await.unwrap();
                order.lock().unwrap().push(who);
            }));
            // Each asks in this order (the test runtime has one thread).
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
        }
        drop(decoding);
        for task in waiting {
            task.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(
            order[0], "alice",
            "asked after three of mallory's: {order:?}"
        );
        assert_eq!(order.len(), 5);
        assert!(turns.logins.lock().unwrap().is_empty(), "nothing kept");
    }

    #[test]
    fn names_keep_only_their_last_component_and_no_control_characters() {
        assert_eq!(clean_file_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(clean_file_name(Some("C:\\Users\\me\\cat.png")), "cat.png");
        assert_eq!(clean_file_name(Some("a\r\nb.txt")), "ab.txt");
        assert_eq!(clean_file_name(Some("..")), "file");
        assert_eq!(clean_file_name(None), "file");
    }

    #[test]
    fn dispositions_quote_nothing_dangerous_and_keep_the_exact_name() {
        let header = content_disposition("attachment", "rép\"ort; x=1.pdf");
        assert_eq!(
            header,
            "attachment; filename=\"r_p_ort; x=1.pdf\"; filename*=UTF-8''r%C3%A9p%22ort%3B%20x%3D1.pdf"
        );
        assert!(axum::http::HeaderValue::from_str(&header).is_ok());
    }

    #[test]
    fn thumbnails_keep_proportions_and_never_grow() {
        assert_eq!(fit_within(1200, 600, 480, 360), (480, 240));
        assert_eq!(fit_within(600, 1200, 480, 360), (180, 360));
        assert_eq!(fit_within(100, 50, 480, 360), (100, 50));
        assert_eq!(fit_within(10_000, 1, 480, 360), (480, 1));
    }

    #[test]
    fn a_tall_image_is_shown_wide_enough_and_cut_to_its_top() {
        assert_eq!(shown_size(300, 3000), (160, 360));
        assert_eq!(shown_top(300, 3000), 675);
        assert_eq!(shown_size(100, 3000), (100, 360));
        assert_eq!(shown_top(100, 3000), 360);
        // Anything else fits whole, as before.
        assert_eq!(shown_size(600, 1200), (180, 360));
        assert_eq!(shown_top(600, 1200), 1200);
        assert_eq!(shown_size(1200, 600), (480, 240));
        assert_eq!(shown_size(10_000, 1), (480, 1));
    }

    #[test]
    fn only_the_four_image_types_are_inline() {
        assert_eq!(
            inline_image_format(b"\x89PNG\r\n\x1a\n\0\0"),
            Some(ImageFormat::Png)
        );
        assert_eq!(inline_image_format(b"<svg xmlns="), None);
        assert_eq!(inline_image_format(b"<html><script>"), None);
    }
}
