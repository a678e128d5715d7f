//! The lease store: an append-only journal with fsync, compacted by rewrite-and-rename
//! (docs/adr/0004-dhcp-lease-store.md).
//!
//! File `leases.journal` in the state directory: an 8-byte header `RLJOURN1`, then records,
//! each `[len: u32 LE][crc32: u32 LE][len bytes of JSON: one Lease]`. A later record for an
//! address replaces the earlier one. [`Store::append`] writes a batch of records and
//! `fdatasync`s before it returns, so the caller may then send its ACKs.
//!
//! A crash can tear only the last record (appends are sequential). On open, records are read
//! until the first one that is short or fails its CRC; the file is cut back to the last good
//! record so later appends stay readable. When anything but a clean tail is cut, the whole file
//! is first copied aside (`leases.journal.damaged-<unix time>`) for inspection.
//!
//! Compaction writes the live records to `leases.journal.tmp`, fsyncs it, renames it over the
//! journal and fsyncs the directory: at every moment either the old or the new file is whole.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::core::Lease;

const HEADER: &[u8; 8] = b"RLJOURN1";
/// Largest record accepted on read; a longer length field means a damaged file.
const MAX_RECORD: u32 = 64 * 1024;
const FILE_NAME: &str = "leases.journal";

/// A lease-store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("lease store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not a lease journal.
    #[error("lease store {path}: not a roost lease journal (bad header)")]
    NotAJournal {
        /// The file.
        path: PathBuf,
    },
}

/// What opening the journal found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every lease record, in file order (later ones win).
    pub leases: Vec<Lease>,
    /// Records read.
    pub records: u64,
    /// Bytes cut from the end (a torn or damaged tail).
    pub cut_bytes: u64,
    /// Where the damaged file was copied, when more than a torn last record was cut.
    pub damaged_copy: Option<PathBuf>,
}

/// The open journal.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    path: PathBuf,
    file: Arc<File>,
    /// Which file `file` is: a compaction starts a new one.
    generation: u64,
    /// Records in the file now.
    records: u64,
    /// Bytes in the file now.
    len: u64,
    fsyncs: u64,
}

impl Store {
    /// Opens (or creates) the journal in `dir` and reads it.
    pub fn open(dir: &Path) -> Result<(Self, Loaded), StoreError> {
        let path = dir.join(FILE_NAME);
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(dir).map_err(io)?;
        // A compaction that crashed before its rename leaves a temporary file: ignore it.
        let _ = fs::remove_file(dir.join(format!("{FILE_NAME}.tmp")));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let mut loaded = Loaded::default();
        if bytes.is_empty() {
            file.write_all(HEADER).map_err(io)?;
            file.sync_all().map_err(io)?;
            sync_dir(dir).map_err(io)?;
            bytes.extend_from_slice(HEADER);
        } else if bytes.len() < HEADER.len() && HEADER.starts_with(&bytes) {
            // Torn while writing the header of a new file.
            file.set_len(0).map_err(io)?;
            write_at_end(&mut file, HEADER).map_err(io)?;
            file.sync_all().map_err(io)?;
            loaded.cut_bytes = bytes.len() as u64;
            bytes = HEADER.to_vec();
        } else if !bytes.starts_with(HEADER) {
            return Err(StoreError::NotAJournal { path });
        }
        let (leases, good) = parse(&bytes);
        loaded.records = leases.len() as u64;
        loaded.leases = leases;
        let total = bytes.len() as u64;
        if good < total {
            loaded.cut_bytes += total - good;
            if !is_torn_tail(&bytes[usize::try_from(good).unwrap_or(usize::MAX).min(bytes.len())..])
            {
                let copy = dir.join(format!("{FILE_NAME}.damaged-{}", unix_now()));
                fs::write(&copy, &bytes).map_err(io)?;
                loaded.damaged_copy = Some(copy);
            }
            file.set_len(good).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let store = Self {
            dir: dir.to_owned(),
            path,
            file: Arc::new(file),
            generation: 1,
            records: loaded.records,
            len: good,
            fsyncs: 0,
        };
        Ok((store, loaded))
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records in the journal.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bytes in the journal.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the journal holds no records.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// fsyncs done since open.
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs
    }

    /// Appends `leases` and makes them durable (one `fdatasync` for the batch).
    pub fn append(&mut self, leases: &[Lease]) -> Result<(), StoreError> {
        if leases.is_empty() {
            return Ok(());
        }
        self.write(leases)?;
        self.sync_handle().sync().map_err(|source| StoreError::Io {
            path: self.path.clone(),
            source,
        })?;
        self.fsyncs += 1;
        Ok(())
    }

    /// Appends `leases` without making them durable: they are not until a [`SyncHandle::sync`]
    /// taken after this call returns. A failed write may leave a torn record in the middle of
    /// the file once later records follow it: the caller must not append to this generation
    /// again but [`Store::compact`] first.
    pub fn write(&mut self, leases: &[Lease]) -> Result<(), StoreError> {
        if leases.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(leases.len() * 256);
        for lease in leases {
            encode(lease, &mut buf);
        }
        use std::os::unix::fs::FileExt as _;
        self.file
            .write_all_at(&buf, self.len)
            .map_err(|source| StoreError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.records += leases.len() as u64;
        self.len += buf.len() as u64;
        Ok(())
    }

    /// What makes the writes so far durable, usable from another thread (group commit).
    pub fn sync_handle(&self) -> SyncHandle {
        SyncHandle {
            file: Arc::clone(&self.file),
            generation: self.generation,
        }
    }

    /// The current file's generation (it changes with every compaction).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the journal has grown well past the `live` records it needs.
    pub fn wants_compaction(&self, live: usize) -> bool {
        self.records > 1024 && self.records > 4 * live as u64
    }

    /// Rewrites the journal to hold exactly `leases`.
    pub fn compact<'a>(
        &mut self,
        leases: impl IntoIterator<Item = &'a Lease>,
    ) -> Result<(), StoreError> {
        let tmp = self.dir.join(format!("{FILE_NAME}.tmp"));
        let io = |source| StoreError::Io {
            path: tmp.clone(),
            source,
        };
        let mut buf = HEADER.to_vec();
        let mut records = 0;
        for lease in leases {
            encode(lease, &mut buf);
            records += 1;
        }
        let mut file = File::create(&tmp).map_err(io)?;
        file.write_all(&buf).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(io)?;
        sync_dir(&self.dir).map_err(io)?;
        self.file = Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.path)
                .map_err(|source| StoreError::Io {
                    path: self.path.clone(),
                    source,
                })?,
        );
        self.generation += 1;
        self.records = records;
        self.len = buf.len() as u64;
        Ok(())
    }
}

/// The journal file of one generation, to `fdatasync` from the thread that sends the ACKs.
#[derive(Debug, Clone)]
pub struct SyncHandle {
    file: Arc<File>,
    /// The store's generation when the handle was taken.
    pub generation: u64,
}

impl SyncHandle {
    /// Makes every write to this generation's file that returned before this call durable.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

fn write_at_end(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::End(0))?;
    file.write_all(bytes)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One record's bytes.
pub fn encode(lease: &Lease, out: &mut Vec<u8>) {
    let json = serde_json::to_vec(lease).unwrap_or_default();
    let len = u32::try_from(json.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32(&json).to_le_bytes());
    out.extend_from_slice(&json);
}

/// Reads records after the header; returns them and the length of the good prefix.
fn parse(bytes: &[u8]) -> (Vec<Lease>, u64) {
    let mut leases = Vec::new();
    let mut at = HEADER.len();
    while let Some(head) = bytes.get(at..at + 8) {
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len > MAX_RECORD {
            break;
        }
        let end = at + 8 + len as usize;
        let Some(body) = bytes.get(at + 8..end) else {
            break;
        };
        if crc32(body) != crc {
            break;
        }
        let Ok(lease) = serde_json::from_slice::<Lease>(body) else {
            break;
        };
        leases.push(lease);
        at = end;
    }
    (leases, at.min(bytes.len()) as u64)
}

/// Whether what follows the last good record looks like one record cut short (what a crash
/// during an append leaves), rather than damage further up.
fn is_torn_tail(rest: &[u8]) -> bool {
    if rest.len() < 8 {
        return true;
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    // A torn append is one record shorter than it claims (or a whole one whose data did not
    // reach the disk, which reads as a CRC failure of exactly one record).
    len <= MAX_RECORD && rest.len() <= 8 + len as usize
}

/// CRC-32 (IEEE, as in zlib and Ethernet).
pub fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{ClientId, LeaseState};
    use roost_config::MacAddr;

    fn lease(n: u8, expires: u64) -> Lease {
        Lease {
            ip: std::net::Ipv4Addr::new(192, 168, 1, 100 + n),
            zone: "lan".into(),
            client_id: ClientId(vec![1, 2, 0, 0, 0, 0, n]),
            mac: MacAddr([2, 0, 0, 0, 0, n]),
            hostname: Some(format!("host{n}")),
            fqdn: None,
            state: LeaseState::Bound,
            starts: 1,
            expires,
        }
    }

    fn reopen(dir: &Path) -> (Store, Loaded) {
        Store::open(dir).unwrap()
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn appended_leases_are_read_back_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, loaded) = reopen(dir.path());
        assert!(loaded.leases.is_empty());
        s.append(&[lease(1, 10), lease(2, 20)]).unwrap();
        s.append(&[lease(1, 30)]).unwrap();
        drop(s);
        let (s, loaded) = reopen(dir.path());
        assert_eq!(
            loaded.leases,
            vec![lease(1, 10), lease(2, 20), lease(1, 30)]
        );
        assert_eq!(loaded.cut_bytes, 0);
        assert_eq!(s.records(), 3);
    }

    #[test]
    fn a_torn_last_record_is_skipped_at_every_cut_point_and_earlier_ones_survive() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = reopen(dir.path());
        s.append(&[lease(1, 10), lease(2, 20)]).unwrap();
        let whole = s.len();
        s.append(&[lease(3, 30)]).unwrap();
        let full = fs::read(s.path()).unwrap();
        drop(s);
        // Simulates a kill -9 (or power loss) at every byte of the last append.
        for cut in whole..full.len() as u64 {
            let path = dir.path().join(FILE_NAME);
            fs::write(&path, &full[..cut as usize]).unwrap();
            let (mut s, loaded) = reopen(dir.path());
            assert_eq!(
                loaded.leases,
                vec![lease(1, 10), lease(2, 20)],
                "cut at {cut}"
            );
            assert_eq!(loaded.cut_bytes, cut - whole);
            assert!(loaded.damaged_copy.is_none(), "a torn tail is not damage");
            // Appending after recovery gives a readable journal.
            s.append(&[lease(4, 40)]).unwrap();
            drop(s);
            let (_, again) = reopen(dir.path());
            assert_eq!(again.leases.len(), 3, "cut at {cut}");
            assert_eq!(again.leases[2], lease(4, 40));
        }
    }

    #[test]
    fn a_last_record_with_a_bad_checksum_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = reopen(dir.path());
        s.append(&[lease(1, 10), lease(2, 20)]).unwrap();
        let path = s.path().to_owned();
        drop(s);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let (_, loaded) = reopen(dir.path());
        assert_eq!(loaded.leases, vec![lease(1, 10)]);
        assert!(loaded.damaged_copy.is_none());
    }

    #[test]
    fn damage_before_the_tail_is_cut_and_the_file_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = reopen(dir.path());
        s.append(&[lease(1, 10), lease(2, 20), lease(3, 30)])
            .unwrap();
        let path = s.path().to_owned();
        drop(s);
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER.len() + 20] ^= 0xff; // inside the first record
        fs::write(&path, &bytes).unwrap();
        let (_, loaded) = reopen(dir.path());
        assert!(loaded.leases.is_empty());
        let copy = loaded.damaged_copy.expect("damaged file copied aside");
        assert_eq!(fs::read(copy).unwrap(), bytes);
    }

    #[test]
    fn garbage_length_after_the_last_record_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = reopen(dir.path());
        s.append(&[lease(1, 10)]).unwrap();
        let path = s.path().to_owned();
        drop(s);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5])
            .unwrap();
        drop(f);
        let (_, loaded) = reopen(dir.path());
        assert_eq!(loaded.leases, vec![lease(1, 10)]);
        assert_eq!(loaded.cut_bytes, 9);
    }

    #[test]
    fn a_torn_header_of_a_new_journal_is_repaired() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), &HEADER[..3]).unwrap();
        let (mut s, loaded) = reopen(dir.path());
        assert!(loaded.leases.is_empty());
        s.append(&[lease(1, 10)]).unwrap();
        drop(s);
        assert_eq!(reopen(dir.path()).1.leases, vec![lease(1, 10)]);
    }

    #[test]
    fn a_foreign_file_is_refused_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), b"hello world, not a journal").unwrap();
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::NotAJournal { .. })
        ));
        assert_eq!(
            fs::read(dir.path().join(FILE_NAME)).unwrap(),
            b"hello world, not a journal"
        );
    }

    #[test]
    fn compaction_keeps_exactly_the_live_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = reopen(dir.path());
        for round in 0..600u64 {
            s.append(&[lease(1, round), lease(2, round)]).unwrap();
        }
        assert!(s.wants_compaction(2));
        let live = [lease(1, 599), lease(2, 599)];
        s.compact(live.iter()).unwrap();
        assert_eq!(s.records(), 2);
        s.append(&[lease(3, 1)]).unwrap();
        drop(s);
        let (s, loaded) = reopen(dir.path());
        assert_eq!(
            loaded.leases,
            vec![lease(1, 599), lease(2, 599), lease(3, 1)]
        );
        assert!(!s.wants_compaction(3));
        assert!(!dir.path().join(format!("{FILE_NAME}.tmp")).exists());
    }

    #[test]
    fn a_leftover_compaction_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = reopen(dir.path());
        s.append(&[lease(1, 10)]).unwrap();
        drop(s);
        fs::write(
            dir.path().join(format!("{FILE_NAME}.tmp")),
            b"RLJOURN1partial",
        )
        .unwrap();
        let (_, loaded) = reopen(dir.path());
        assert_eq!(loaded.leases, vec![lease(1, 10)]);
    }
}
