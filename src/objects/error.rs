//! What can go wrong with the object store: it cannot be reached, or what it holds is not what
//! pipe stored (damaged, missing, out of order).

#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    #[error("cannot open the object store {url}: {why}")]
    Open { url: String, why: String },
    #[error("the object store {bucket} failed on {name}: {why}")]
    Failed {
        bucket: String,
        name: String,
        why: String,
    },
    #[error("the object store {bucket} has no {name}")]
    Missing { bucket: String, name: String },
    #[error("refused {name} of the object store {bucket}: it does not hash to its name (its bytes hash to {got}): the object is damaged")]
    Corrupt {
        bucket: String,
        name: String,
        got: String,
    },
    #[error("log {log} has lost bytes {from}..{to}: a chunk is missing")]
    LogGap { log: String, from: u64, to: u64 },
    #[error("log {log} has a chunk at byte {at} inside the bytes before {end}: chunks were written twice or out of order")]
    LogOverlap { log: String, at: u64, end: u64 },
    #[error("log {log} has no end record: it is still being written, or its writer stopped")]
    LogOpen { log: String },
    #[error("log {log} ends at byte {got} but its end record says {expected}: chunks at its end are missing")]
    LogLength {
        log: String,
        expected: u64,
        got: u64,
    },
    #[error("log {log} does not hash to what its end record says: a chunk is damaged")]
    LogHash { log: String },
    #[error("refused the record {name}: {why}")]
    Record { name: String, why: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
