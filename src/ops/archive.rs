//! The backup archive: a tar holding, in this order,
//! - `chat-backup.json`: the format, its version, when, and how many documents each
//!   collection had;
//! - `database.bson`: the store's dump of every collection ([`Storage::dump`]);
//! - `files/…`: every file under the data directory's `files/` (attachments), as stored.
//!
//! `tar tf` lists it. The same archive comes from a running server (through its backup
//! endpoint) and from a stopped data directory, and restores either way.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use tar::EntryType;
use time::OffsetDateTime;

use super::OpsError;
use crate::store::{DATABASE_DIR, PoloStore, Storage};
use crate::views::rfc3339;

const MANIFEST: &str = "chat-backup.json";
const DATABASE: &str = "database.bson";
/// Under the data directory, and in the archive.
pub const FILES: &str = "files";
const FORMAT: &str = "chat-backup";
const VERSION: u32 = 1;

/// What an archive says about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    /// When the snapshot was taken (RFC 3339, UTC).
    pub created_at: String,
    /// Documents per collection.
    pub documents: BTreeMap<String, u64>,
    /// Files listed under `files/` when the archive was written.
    pub files: u64,
}

/// A dump of the store at one point in time, waiting in an unnamed temporary file to be
/// archived: the store's writes wait only while it is written to local disk, not while a
/// client downloads it.
pub struct Snapshot {
    database: File,
    documents: BTreeMap<String, u64>,
    taken_at: OffsetDateTime,
}

/// Dumps the store into a temporary file in `scratch_dir` (the data directory: the same
/// disk, and not a RAM-backed `/tmp`).
pub fn snapshot(storage: &dyn Storage, scratch_dir: &Path) -> Result<Snapshot, OpsError> {
    let scratch = tempfile::tempfile_in(scratch_dir).map_err(OpsError::io(format!(
        "creating a temporary file in {}",
        scratch_dir.display()
    )))?;
    let taken_at = OffsetDateTime::now_utc();
    let mut out = BufWriter::new(scratch);
    let documents = storage.dump(&mut out)?;
    let mut database = out
        .into_inner()
        .map_err(|e| OpsError::io("writing the snapshot")(e.into_error()))?;
    database
        .seek(SeekFrom::Start(0))
        .map_err(OpsError::io("rereading the snapshot"))?;
    Ok(Snapshot {
        database,
        documents,
        taken_at,
    })
}

/// Writes the archive of `snapshot` and of the files under `data_dir/files` to `out`.
pub fn write_archive(
    mut snapshot: Snapshot,
    data_dir: &Path,
    out: impl Write,
) -> Result<Manifest, OpsError> {
    let files = list_files(&data_dir.join(FILES))?;
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        created_at: rfc3339(snapshot.taken_at),
        documents: snapshot.documents,
        files: files.len() as u64,
    };
    let mut tar = tar::Builder::new(out);
    let text = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    tar.append_data(
        &mut entry_header(text.len() as u64, snapshot.taken_at),
        MANIFEST,
        text.as_slice(),
    )
    .map_err(OpsError::io("writing the archive"))?;
    let size = snapshot
        .database
        .metadata()
        .map_err(OpsError::io("reading the snapshot"))?
        .len();
    tar.append_data(
        &mut entry_header(size, snapshot.taken_at),
        DATABASE,
        &mut snapshot.database,
    )
    .map_err(OpsError::io("writing the archive"))?;
    for (path, name) in files {
        let mut file = match File::open(&path) {
            Ok(file) => file,
            // Removed since it was listed: it was not part of the snapshot either.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(OpsError::io(format!("reading {}", path.display()))(e)),
        };
        tar.append_file(name, &mut file)
            .map_err(OpsError::io("writing the archive"))?;
    }
    let mut out = tar
        .into_inner()
        .map_err(OpsError::io("writing the archive"))?;
    out.flush().map_err(OpsError::io("writing the archive"))?;
    Ok(manifest)
}

fn entry_header(size: u64, at: OffsetDateTime) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(at.unix_timestamp().max(0) as u64);
    header
}

/// Every regular file under `root`, with its name in the archive (`files/a/b`), in name
/// order.
fn list_files(root: &Path) -> Result<Vec<(PathBuf, String)>, OpsError> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let listing = OpsError::io(format!("listing {}", dir.display()));
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(listing(e)),
        };
        for entry in entries {
            let (path, kind) = match entry.and_then(|e| Ok((e.path(), e.file_type()?))) {
                Ok(found) => found,
                Err(e) => return Err(OpsError::io(format!("listing {}", dir.display()))(e)),
            };
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                let below = path.strip_prefix(root).unwrap_or(&path);
                let mut name = String::from(FILES);
                for part in below.components() {
                    name.push('/');
                    name.push_str(&part.as_os_str().to_string_lossy());
                }
                found.push((path, name));
            }
        }
    }
    found.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(found)
}

/// Restores an archive into `data_dir`, which must be empty or missing, unless `force`
/// (then its database and files are replaced, once it is sure no server holds them). A
/// restore that fails takes away what it wrote, so that it can simply be run again.
pub fn restore(archive: impl Read, data_dir: &Path, force: bool) -> Result<Manifest, OpsError> {
    prepare_target(data_dir, force)?;
    unpack(archive, data_dir).inspect_err(|_| {
        let _ = remove_restorable(data_dir);
    })
}

fn unpack(archive: impl Read, data_dir: &Path) -> Result<Manifest, OpsError> {
    let mut archive = tar::Archive::new(archive);
    let mut entries = archive
        .entries()
        .map_err(OpsError::io("reading the archive"))?;
    let manifest: Manifest = match entries.next() {
        Some(Ok(entry))
            if entry.path().is_ok_and(|p| p == Path::new(MANIFEST))
                && entry.header().entry_type() == EntryType::Regular =>
        {
            serde_json::from_reader(entry)
                .map_err(|e| OpsError::Invalid(format!("a damaged {MANIFEST}: {e}")))?
        }
        Some(Err(e)) => return Err(OpsError::io("reading the archive")(e)),
        _ => return Err(OpsError::Invalid("this is not a chat backup".into())),
    };
    if manifest.format != FORMAT || manifest.version != VERSION {
        return Err(OpsError::Invalid(format!(
            "this is a {} version {} archive; this chat reads {FORMAT} version {VERSION}",
            manifest.format, manifest.version
        )));
    }
    let mut restored_database = false;
    for entry in entries {
        let mut entry = entry.map_err(OpsError::io("reading the archive"))?;
        let path = entry
            .path()
            .map_err(OpsError::io("reading the archive"))?
            .into_owned();
        let kind = entry.header().entry_type();
        if path == Path::new(DATABASE) && !restored_database {
            if kind != EntryType::Regular {
                return Err(refused(&path, kind));
            }
            let store = PoloStore::open(data_dir)?;
            let loaded = store.load(&mut BufReader::new(&mut entry))?;
            let expected: BTreeMap<String, u64> = manifest
                .documents
                .iter()
                .filter(|(_, count)| **count > 0)
                .map(|(name, count)| (name.clone(), *count))
                .collect();
            if loaded != expected {
                return Err(OpsError::Invalid(format!(
                    "the archive's database holds {loaded:?}, its manifest says {expected:?}"
                )));
            }
            restored_database = true;
        } else if is_file_entry(&path) {
            match kind {
                EntryType::Regular => restore_file(data_dir, &path, &mut entry)?,
                EntryType::Directory => restore_directory(data_dir, &path)?,
                other => return Err(refused(&path, other)),
            }
        } else if path
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(OpsError::Invalid(format!(
                "refusing {}: a path that leads out of the data directory",
                path.display()
            )));
        } else {
            return Err(OpsError::Invalid(format!(
                "unexpected {} in the archive",
                path.display()
            )));
        }
    }
    if !restored_database {
        return Err(OpsError::Invalid("the archive holds no database".into()));
    }
    Ok(manifest)
}

/// Only plain files and directories are restored: a link (symbolic or hard), a device or a
/// FIFO could point outside the data directory, and would then be served as an attachment.
fn refused(path: &Path, kind: EntryType) -> OpsError {
    OpsError::Invalid(format!(
        "refusing {}: it is a {}, and a backup holds only plain files and directories",
        path.display(),
        match kind {
            EntryType::Symlink => "symbolic link",
            EntryType::Link => "hard link",
            EntryType::Char | EntryType::Block => "device",
            EntryType::Fifo => "FIFO",
            _ => "special entry",
        }
    ))
}

/// Writes one file of the archive under `data_dir`. Never over anything already there,
/// and never through a link: each directory on the way must be a real one.
fn restore_file(data_dir: &Path, path: &Path, contents: &mut impl Read) -> Result<(), OpsError> {
    let target = data_dir.join(path);
    if let Some(parent) = path.parent() {
        restore_directory(data_dir, parent)?;
    }
    let writing = OpsError::io(format!("restoring {}", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target)
        .map_err(writing)?;
    std::io::copy(contents, &mut file)
        .map_err(OpsError::io(format!("restoring {}", path.display())))?;
    Ok(())
}

/// Makes `path` (relative, plain names only) under `data_dir`, a real directory at every
/// step.
fn restore_directory(data_dir: &Path, path: &Path) -> Result<(), OpsError> {
    let mut at = data_dir.to_path_buf();
    for part in path.components() {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(found) if found.is_dir() => continue,
            Ok(_) => {
                return Err(OpsError::Invalid(format!(
                    "refusing {}: {} is not a directory",
                    path.display(),
                    at.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&at)
                    .map_err(OpsError::io(format!("restoring {}", path.display())))?;
            }
            Err(e) => return Err(OpsError::io(format!("restoring {}", path.display()))(e)),
        }
    }
    Ok(())
}

/// `files/` and then plain names only.
fn is_file_entry(path: &Path) -> bool {
    let mut components = path.components();
    components.next() == Some(Component::Normal(FILES.as_ref()))
        && components.clone().next().is_some()
        && components.all(|c| matches!(c, Component::Normal(_)))
}

/// Makes sure `data_dir` can take a restore: created if missing; if it holds anything,
/// refused unless `force`, and then its database and files are removed first.
fn prepare_target(data_dir: &Path, force: bool) -> Result<(), OpsError> {
    let preparing = OpsError::io(format!("preparing {}", data_dir.display()));
    let empty = match std::fs::read_dir(data_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return std::fs::create_dir_all(data_dir).map_err(preparing);
        }
        Err(e) => return Err(preparing(e)),
        Ok(mut entries) => entries.next().is_none(),
    };
    if empty {
        return Ok(());
    }
    if !force {
        return Err(OpsError::Invalid(format!(
            "{} is not empty: restore into an empty directory, or pass --force to replace its \
             database and files",
            data_dir.display()
        )));
    }
    if data_dir.join(DATABASE_DIR).exists() {
        // Fails while a server holds the database: RocksDB locks it.
        drop(PoloStore::open(data_dir)?);
    }
    remove_restorable(data_dir)
}

/// Removes what a restore writes: the database and the files.
fn remove_restorable(data_dir: &Path) -> Result<(), OpsError> {
    for part in [DATABASE_DIR, FILES] {
        let path = data_dir.join(part);
        match std::fs::remove_dir_all(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(OpsError::io(format!("removing {}", path.display()))(e));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::is_file_entry;

    #[test]
    fn only_plain_paths_under_files_are_restored() {
        assert!(is_file_entry(Path::new("files/ab12")));
        assert!(is_file_entry(Path::new("files/ab/ab12")));
        for unsafe_or_other in [
            "files",
            "files/",
            "files/../chat.db/CURRENT",
            "/files/x",
            "../files/x",
            "chat.db/CURRENT",
            "database.bson",
        ] {
            assert!(
                !is_file_entry(Path::new(unsafe_or_other)),
                "{unsafe_or_other}"
            );
        }
    }
}
